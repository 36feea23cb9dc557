"""Training throughput per precision, side by side in one process: fp32, bf16 autocast, and bf16
with channels_last, for every default model (params.yaml), on this machine's CPU.

One training step is forward + loss + backward + optimizer step on a batch of `train.batch_size`
random images at the training size. Each setting gets warm-up steps, then as many timed steps as
fit in `--seconds`; the figure is images per second from the median step. `amp: auto` picks bf16
only where the CPU has native bf16 (AVX-512-BF16 / AMX-BF16): this table says what that choice
is worth here.

    python benchmarks/bench_precision.py [--seconds 4]

Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from torch import nn

from segbench.config import load_params
from segbench.environment import describe_env, fingerprint
from segbench.models import build_model
from segbench.runtime import NATIVE_BF16_CPU_FEATURES, native_bf16

SETTINGS = (("fp32", None, False), ("bf16", torch.bfloat16, False), ("bf16+channels_last", torch.bfloat16, True))


def step_time(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, dtype, seconds: float) -> float:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    amp = torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with amp:
            loss = loss_fn(model(images)["out"].float(), masks)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    times, started = [], time.perf_counter()
    while len(times) < 5 or time.perf_counter() - started < seconds:
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    params = load_params(args.params)
    h, w = params.data.image_size
    classes = params.data.synthetic.num_classes
    native = native_bf16(torch.device("cpu"))
    print(f"environment: {describe_env(fingerprint())}; native bf16 ({' or '.join(NATIVE_BF16_CPU_FEATURES)}): "
          f"{native}; threads {torch.get_num_threads()}")
    print(f"{'model':<36}" + "".join(f"{name + ' img/s':>26}" for name, _, _ in SETTINGS) + f"{'bf16 / fp32':>13}")
    for name, spec in params.models.items():
        torch.manual_seed(0)
        model = build_model(spec.arch, classes, **spec.options).train()
        if not any(p.requires_grad for p in model.parameters()):
            continue
        batch = spec.train.batch_size
        rates = []
        for _, dtype, channels_last in SETTINGS:
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            model = model.to(memory_format=fmt)
            images = torch.randn(batch, 3, h, w).contiguous(memory_format=fmt)
            masks = torch.randint(0, classes, (batch, h, w))
            rates.append(batch / step_time(model, images, masks, dtype, args.seconds))
        print(f"{name:<36}" + "".join(f"{r:>26.1f}" for r in rates) + f"{rates[1] / rates[0]:>12.2f}x")


if __name__ == "__main__":
    main()
