"""Deployment runtimes for the profile stage: one model, run the ways people ship it.

`prepare(backend, model, x, threads)` returns a `Runner`, a function from an input batch to the
logits, plus the seconds its set-up took (export, compilation and the first call). The profile
stage times the runner with the same timer as eager PyTorch and compares its logits with eager
fp32's (`agreement`), so a fast backend that changes the answer shows.

- `eager`: PyTorch fp32, the reference.
- `eager_bf16`: autocast to bf16, on a CPU only where it computes bf16 natively (AVX-512-BF16 or
  AMX-BF16; elsewhere autocast emulates it, slower than fp32).
- `compile`: `torch.compile` (inductor). It compiles on the first call at each input shape, and
  that time is set-up, not latency.
- `onnxruntime`: `torch.onnx.export` (static shapes, one export per size), then an ONNX Runtime
  session on the CPU execution provider.

A backend that cannot run a model raises `BackendUnavailable` with a one-line reason. The
profile stage records the reason and goes on.
"""
from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .errors import first_line
from .keys import BACKEND_TAGS
from .runtime import native_bf16

BACKENDS = tuple(BACKEND_TAGS)  # every name profile.backends accepts; each has a builder below (key names: segbench.keys)


class BackendUnavailable(Exception):
    """This backend cannot run this model here; the message is the one-line reason."""


@dataclass(frozen=True)
class Runner:
    run: Callable[[torch.Tensor], torch.Tensor]  # input batch -> logits (float32, on the CPU)
    setup_s: float  # export / compilation / session creation and the first call


class Logits(nn.Module):
    """The model's "out" logits as a plain tensor: what an exported or compiled graph returns."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def prepare(backend: str, model: nn.Module, x: torch.Tensor, threads: int) -> Runner:
    """A runner of `model` (in eval mode) on inputs shaped like `x`, or BackendUnavailable."""
    started = time.perf_counter()
    try:
        run = _BUILDERS[backend](model.eval(), x, threads)
        with torch.inference_mode():
            run(x)  # the first call: compilation, allocation
    except BackendUnavailable:
        raise
    except Exception as exc:  # an export, compiler or runtime failure is the backend's, not the stage's
        raise BackendUnavailable(f"{type(exc).__name__}: {first_line(exc)}"[:300]) from None
    finally:
        model.eval()  # torch.onnx.export puts the previous training flag back
    return Runner(run, time.perf_counter() - started)


def _eager(model: nn.Module, x: torch.Tensor, threads: int) -> Callable:
    return lambda inputs: model(inputs)["out"]


def _eager_bf16(model: nn.Module, x: torch.Tensor, threads: int) -> Callable:
    if not native_bf16(x.device):
        raise BackendUnavailable("this CPU has no native bf16 (AVX-512-BF16 or AMX-BF16): autocast would emulate it, "
                                 "slower than fp32")

    def run(inputs: torch.Tensor) -> torch.Tensor:
        with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
            return model(inputs)["out"].float()
    return run


def _compile(model: nn.Module, x: torch.Tensor, threads: int) -> Callable:
    return torch.compile(Logits(model))


def _onnxruntime(model: nn.Module, x: torch.Tensor, threads: int) -> Callable:
    import onnxruntime as ort

    buffer = io.BytesIO()
    # The TorchScript-based exporter: the dynamo one needs onnxscript. Static shapes: one graph per size.
    with warnings.catch_warnings():  # tracer warnings about shape arithmetic: static shapes make them moot
        warnings.simplefilter("ignore")
        torch.onnx.export(Logits(model), (x,), buffer, dynamo=False, input_names=["image"], output_names=["logits"])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3  # errors only: a warning is not a result
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    # A model whose output does not depend on its input (the prior) exports a graph without one.
    names = [i.name for i in session.get_inputs()]

    def run(inputs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: inputs.numpy() for name in names})[0])
    return run


_BUILDERS = {"eager": _eager, "eager_bf16": _eager_bf16, "compile": _compile, "onnxruntime": _onnxruntime}


def agreement(reference: torch.Tensor, output: torch.Tensor) -> dict[str, float]:
    """How far a backend's logits are from eager fp32's on the same input: the largest absolute
    difference, and the share of pixels whose predicted class (argmax) is the same."""
    reference, output = reference.float(), output.float()
    if reference.shape != output.shape:
        raise BackendUnavailable(f"output shape {tuple(output.shape)} differs from eager's {tuple(reference.shape)}")
    return {"max_abs_diff": float((reference - output).abs().max()),
            "argmax_agreement": float((reference.argmax(1) == output.argmax(1)).float().mean())}
