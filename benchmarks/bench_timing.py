"""Does segbench's CPU latency agree with torch.utils.benchmark, and is it repeatable?

    python benchmarks/bench_timing.py [--size 64 64] [--repeats 5] [--threads 0]

For each model, alternates in one process: segbench.profile.profile(...)["latency_cpu_ms"]
and torch.utils.benchmark.Timer(...).blocked_autorange() (same model, input, thread count,
inference mode), plus single calls timed by Timer (median of per-call times, the
statistic segbench reports; a blocked_autorange block is a mean). Prints the medians, their
ratios (target: within 5%) and the coefficient of variation of segbench's median over the
repeats (target: <= 3%). Asserts nothing.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils import benchmark

from segbench.config import ProfileConfig
from segbench.models import build_model
from segbench.profile import profile

MODELS = {
    "unet(base 16)": ("unet", {"base_channels": 16}),
    "deeplabv3(mobilenet_v3_small)": ("deeplabv3", {"backbone": "mobilenet_v3_small"}),
    "enet": ("enet", {}),
}


def segbench_median_ms(model: torch.nn.Module, size: tuple[int, int], args) -> float:
    result = profile(model, size, ProfileConfig(input_sizes=(), batch_size=1, threads=args.threads, warmup=5, min_runs=20,
                                                max_runs=300, time_budget_s=args.budget, device="cpu", quiet_wait_s=0,
                                                backends=("eager",)))
    return result["latency_cpu_ms"]


def torch_timer_median_ms(model: torch.nn.Module, size: tuple[int, int], threads: int, min_run_time: float) -> float:
    x = torch.randn(1, 3, *size)
    timer = benchmark.Timer(stmt="with torch.inference_mode():\n    model(x)", globals={"model": model, "x": x, "torch": torch},
                            num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def torch_timer_per_call_median_ms(model: torch.nn.Module, size: tuple[int, int], threads: int, calls: int = 40) -> float:
    """Median of single calls, each timed by Timer: the same statistic as segbench's (a block's time is a mean)."""
    x = torch.randn(1, 3, *size)
    timer = benchmark.Timer(stmt="with torch.inference_mode():\n    model(x)", globals={"model": model, "x": x, "torch": torch},
                            num_threads=threads)
    return statistics.median(timer.timeit(number=1).median for _ in range(calls)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="0: torch.get_num_threads()")
    parser.add_argument("--budget", type=float, default=2.0, help="segbench time budget per run (s)")
    args = parser.parse_args()
    args.threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(args.threads)
    size = tuple(args.size)
    torch.manual_seed(0)
    models = {name: build_model(arch, 6, **opts).eval() for name, (arch, opts) in MODELS.items()}
    ours: dict[str, list[float]] = {name: [] for name in models}
    theirs: dict[str, list[float]] = {name: [] for name in models}
    single: dict[str, list[float]] = {name: [] for name in models}
    started = time.perf_counter()
    for _ in range(args.repeats):
        for name, model in models.items():  # alternate the two methods so drift hits both alike
            ours[name].append(segbench_median_ms(model, size, args))
            theirs[name].append(torch_timer_median_ms(model, size, args.threads, min_run_time=1.0))
            single[name].append(torch_timer_per_call_median_ms(model, size, args.threads))
    print(f"CPU latency, batch 1, {size[0]}x{size[1]}, {args.threads} threads, {args.repeats} alternating repeats "
          f"({time.perf_counter() - started:.0f} s)")
    print("| model | segbench median ms | torch Timer median ms | ratio segbench/Timer | Timer single-call median ms | "
          f"ratio segbench/single-call | segbench CV over {args.repeats} runs | Timer CV over {args.repeats} runs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in models:
        a, b, c = (statistics.median(v[name]) for v in (ours, theirs, single))
        cv, cv_timer = (statistics.stdev(v[name]) / statistics.mean(v[name]) if len(v[name]) > 1 else float("nan")
                        for v in (ours, theirs))
        print(f"| {name} | {a:.3f} | {b:.3f} | {a / b:.3f} | {c:.3f} | {a / c:.3f} | {cv:.1%} | {cv_timer:.1%} |")
    for name in models:
        print(f"segbench medians, {name}: " + ", ".join(f"{v:.2f}" for v in ours[name]) + " ms")
    print("targets: ratio within 0.95-1.05, CV <= 3%")


if __name__ == "__main__":
    main()
