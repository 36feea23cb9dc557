"""Timing a model's forward pass: one round of every size, backend and device (segbench.profile
runs the rounds, each in its own process, and combines them).

Inputs are created before the timed region; a first checked call, warm-up, torch.inference_mode,
an explicit thread count, CUDA events with synchronisation on GPU, and adaptive repetition
(segbench.timing.measure). The training size keeps the plain keys; every other size its own.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from .backends import BackendUnavailable, agreement, prepare
from .environment import peak_rss_mb
from .errors import ResourceError, SegbenchError, first_line
from .keys import BACKEND_TAGS, PRECISION_TAGS, LatencyKey, agreement_keys, setup_key, size_tag, throughput_key
from .timing import Clock, Timing, measure

AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}

def _cuda_clock(run: Callable[[], None]) -> float:
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    begin.record()
    run()
    end.record()
    torch.cuda.synchronize()
    return begin.elapsed_time(end) / 1e3


def make_input(batch: int, size: tuple[int, int], device: str = "cpu") -> torch.Tensor:
    """The input tensor; built once per size, always outside the timed region."""
    return torch.randn(batch, 3, *size).to(device)


def forward_or_fail(model: nn.Module, x: torch.Tensor) -> None:
    """One forward pass; a model that cannot take this input is the user's choice of size, not our bug."""
    try:
        with torch.inference_mode():
            model(x)
    except torch.cuda.OutOfMemoryError:  # a RuntimeError too, but the size is fine: the GPU is not
        shape = "x".join(map(str, x.shape))
        fix = ("lower profile.batch_size (the throughput batch)" if x.shape[0] > 1 else
               f"remove {size_tag(tuple(x.shape[2:]))} from profile.input_sizes")
        raise ResourceError(f"profile: CUDA out of memory running {type(model).__name__} on input {shape}; {fix}, "
                            "or set profile.device: cpu; make sure no other process holds the GPU (nvidia-smi)") from None
    except (RuntimeError, ValueError) as exc:
        raise SegbenchError(
            f"profile: {type(model).__name__} fails on input {'x'.join(map(str, x.shape))} "
            f"(size {size_tag(tuple(x.shape[2:]))}): {first_line(exc)}; "
            "remove that size from profile.input_sizes or use one the model accepts") from None


@dataclass(frozen=True)
class Budget:
    """How hard to try at each size: `measure`'s keyword arguments."""

    warmup: int
    min_runs: int
    max_runs: int
    time_budget_s: float
    floor_runs: int = 3  # runs even past the budget (a large frame): fewer when rounds give the interval

    def kwargs(self) -> dict:
        return {"warmup": self.warmup, "min_runs": self.min_runs, "max_runs": self.max_runs,
                "time_budget_s": self.time_budget_s, "floor_runs": self.floor_runs}


def _time_forward(model: nn.Module, x: torch.Tensor, budget: Budget, clock: Optional[Clock] = None,
                  autocast: Optional[torch.dtype] = None) -> Timing:
    """Latency of model(x): one checked first call (it counts as a warm-up run), then `measure`."""
    amp = torch.autocast(x.device.type, dtype=autocast) if autocast is not None else nullcontext()
    with amp:
        started = time.perf_counter()
        forward_or_fail(model, x)
        first_s = time.perf_counter() - started
        # A first call over half the budget (a large frame on CPU) is warm-up enough.
        more_warmup = 0 if first_s > budget.time_budget_s / 2 else max(0, budget.warmup - 1)
        with torch.inference_mode():
            return measure(lambda: model(x), clock=clock, **budget.kwargs() | {"warmup": more_warmup})


def _profile_device(model: nn.Module, sizes: list[tuple[int, int]], batch_size: int, budget: Budget, precision: str = "",
                    device: str = "cpu", clock: Optional[Clock] = None, autocast: Optional[torch.dtype] = None,
                    skip: frozenset[str] = frozenset()) -> Round:
    """Latency at every size (batch 1) but those in `skip` (key names), and throughput at the first
    size (batch `batch_size`)."""
    out = Round()
    for i, size in enumerate(sizes):
        key = LatencyKey(device, precision, None if i == 0 else size)
        if key.name not in skip:
            out.timings[key] = _time_forward(model, make_input(1, size, device), budget, clock, autocast)
    x = make_input(batch_size, sizes[0], device)
    timing = _time_forward(model, x, budget, clock, autocast)
    throughput = throughput_key("_".join(filter(None, (device, precision))))
    out.numbers[throughput] = batch_size / (timing.median_ms / 1e3)
    out.numbers[throughput.replace("_ips", "_runs")] = int(len(timing.times_ms))
    out.numbers[throughput.replace("_ips", "_stop_reason")] = timing.stop_reason
    return out


@dataclass
class Round:
    """One round's measurements: the latency timings, and the other numbers (throughput, agreement, set-up, memory)."""

    timings: dict[LatencyKey, Timing] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)

    def update(self, other: Round) -> None:
        self.timings.update(other.timings)
        self.numbers.update(other.numbers)


@dataclass(frozen=True)
class RoundJob:
    """What one round times (picklable: it travels to the worker process)."""

    sizes: list[tuple[int, int]]
    batch_size: int
    budget: Budget
    backends: tuple[str, ...]
    threads: int
    cuda: bool
    amp_dtype: str
    # Later rounds: the latency keys already as precise as asked (not timed again), and whether to
    # compare each backend's output with eager fp32's (the first round's comparison is the one kept).
    skip: frozenset[str] = frozenset()
    agreement: bool = True


def time_round(model: nn.Module, job: RoundJob) -> Round:
    """One round in this process: eager fp32 at every size, then each backend, then the GPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(job.threads)
    try:
        out = _profile_device(model, job.sizes, job.batch_size, job.budget, skip=job.skip)
        out.numbers["peak_rss_mb"] = peak_rss_mb()
        out.update(profile_backends(model, job.sizes, job.budget, job.backends, job.threads, job.skip, job.agreement))
        if job.cuda:
            out.update(_profile_cuda(model, job.sizes, job.batch_size, job.budget, AMP_DTYPES[job.amp_dtype], job.skip))
    finally:
        torch.set_num_threads(previous)
    return out


def profile_backends(model: nn.Module, sizes: list[tuple[int, int]], budget: Budget, backends: Sequence[str],
                     threads: int, skip: frozenset[str] = frozenset(), compare: bool = True) -> Round:
    """CPU latency of each backend at every size (latency_cpu_<tag>[_<H>x<W>]_ms) but those in `skip`,
    its set-up time (setup_<tag>_s, summed over sizes: export or compilation) and, with `compare`, its
    agreement with eager fp32 on the same input (max_abs_diff_cpu_<tag>, argmax_agreement_cpu_<tag>,
    per size). A backend that cannot run the model gets its one-line reason in backend_errors
    instead, and no numbers."""
    out = Round()
    errors: dict[str, str] = {}
    references: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}  # size -> (input, eager fp32 logits)
    for backend in backends:
        try:
            out.update(_time_backend(model, sizes, budget, backend, threads, skip, references if compare else None))
        except BackendUnavailable as exc:
            errors[backend] = str(exc)
        except (RuntimeError, ValueError) as exc:  # it ran at one size and not at another
            errors[backend] = f"{type(exc).__name__}: {first_line(exc)}"[:300]
    if backends:
        out.numbers["backend_errors"] = errors
    return out


def _time_backend(model: nn.Module, sizes: list[tuple[int, int]], budget: Budget, backend: str, threads: int,
                  skip: frozenset[str], references: Optional[dict]) -> Round:
    """One backend at every size not in `skip`; `references` (size -> input and eager fp32 logits,
    filled as needed and shared between backends) for the agreement, None for none."""
    out = Round()
    setup_s = 0.0
    for i, size in enumerate(sizes):
        key = LatencyKey("cpu", BACKEND_TAGS[backend], None if i == 0 else size)
        if key.name in skip:
            continue
        if references is not None and size not in references:
            x = make_input(1, size)
            with torch.inference_mode():
                references[size] = (x, model(x)["out"])
        x = references[size][0] if references is not None else make_input(1, size)
        runner = prepare(backend, model, x, threads)
        with torch.inference_mode():
            output = runner.run(x)  # a second untimed call, in every round (a runtime's arena grows in its first calls)
            if references is not None:
                agree = agreement(references[size][1], output)
                diff_key, agreement_key = agreement_keys(key)
                out.numbers[diff_key], out.numbers[agreement_key] = agree["max_abs_diff"], agree["argmax_agreement"]
            out.timings[key] = measure(lambda run=runner.run, x=x: run(x), **budget.kwargs())
        setup_s += runner.setup_s
    if len(out.timings) == len(sizes):  # set-up summed over every size: a round that skipped one has none
        out.numbers[setup_key(backend)] = setup_s
    return out


def _profile_cuda(model: nn.Module, sizes: list[tuple[int, int]], batch_size: int, budget: Budget,
                  amp_dtype: torch.dtype, skip: frozenset[str] = frozenset()) -> Round:
    """fp32 and AMP (`amp_dtype`) latency and throughput with CUDA events, plus peak allocated memory."""
    model.to("cuda")
    try:
        torch.cuda.reset_peak_memory_stats()
        out = _profile_device(model, sizes, batch_size, budget, "", "cuda", _cuda_clock, skip=skip)
        if amp_dtype is not torch.bfloat16 or torch.cuda.is_bf16_supported():
            tag = PRECISION_TAGS[str(amp_dtype).removeprefix("torch.")]
            out.update(_profile_device(model, sizes, batch_size, budget, tag, "cuda", _cuda_clock, amp_dtype, skip))
        out.numbers["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    finally:
        model.to("cpu")
    return out
