"""Cost of a model: parameters, serialized size, FLOPs, latency, memory, environment.

Latency is measured the careful way: inputs created before the timed region, warm-up runs,
torch.inference_mode, explicit thread count, CUDA events + synchronisation on GPU, and
adaptive repetition until the median is stable (95% confidence interval of the median within
`target_rel_ci` of it) or the time budget is spent. `stop_reason` records which.
"""
from __future__ import annotations

import math
import os
import platform
import resource
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from .io import state_dict_bytes


@dataclass(frozen=True)
class Timing:
    times_ms: np.ndarray
    stop_reason: str  # "stable", "time_budget" or "max_runs"

    def summary(self, prefix: str) -> dict:
        t = self.times_ms
        return {
            f"{prefix}_ms": float(np.median(t)),
            f"{prefix}_p90_ms": float(np.percentile(t, 90)),
            f"{prefix}_min_ms": float(t.min()),
            f"{prefix}_std_ms": float(t.std(ddof=1)) if len(t) > 1 else 0.0,
            f"{prefix}_runs": int(len(t)),
            f"{prefix}_median_rel_ci": median_rel_ci(t),
        }


def median_rel_ci(times: np.ndarray, z: float = 1.96) -> float:
    """Half-width of the distribution-free 95% CI of the median, relative to the median."""
    n = len(times)
    if n < 3:
        return float("inf")
    s = np.sort(times)
    half = z * math.sqrt(n) / 2
    lo, hi = max(0, int(math.floor(n / 2 - half))), min(n - 1, int(math.ceil(n / 2 + half)))
    return float((s[hi] - s[lo]) / 2 / np.median(s))


def measure(run: Callable[[], None], *, warmup: int = 5, min_runs: int = 20, max_runs: int = 500,
            time_budget_s: float = 8.0, target_rel_ci: float = 0.02,
            clock: Callable[[Callable[[], None]], float] | None = None) -> Timing:
    """Time `run` (seconds per call via `clock`, wall clock by default) adaptively."""
    clock = clock or _wall_clock
    for _ in range(warmup):
        run()
    times: list[float] = []
    started = time.perf_counter()
    while True:
        times.append(clock(run) * 1e3)
        n = len(times)
        if n >= min_runs and median_rel_ci(np.asarray(times)) <= target_rel_ci:
            reason = "stable"
            break
        if n >= max_runs:
            reason = "max_runs"
            break
        if n >= 3 and time.perf_counter() - started > time_budget_s:
            reason = "time_budget"
            break
    return Timing(np.asarray(times), reason)


def _wall_clock(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _cuda_clock(run: Callable[[], None]) -> float:
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    begin.record()
    run()
    end.record()
    torch.cuda.synchronize()
    return begin.elapsed_time(end) / 1e3


def count_flops(model: nn.Module, input_size: tuple[int, int]) -> float:
    """Forward-pass FLOPs at batch 1 (a multiply-add counts 2), via torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, *input_size)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(x)
    return float(counter.get_total_flops())


def environment() -> dict:
    import torchvision

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    env = {"cpu": cpu, "logical_cores": os.cpu_count(), "torch": torch.__version__, "torchvision": torchvision.__version__}
    if torch.cuda.is_available():
        env["cuda_device"] = torch.cuda.get_device_name(0)
    return env


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return peak / 1024


def profile(model: nn.Module, input_size: tuple[int, int], *, threads: int = 0, warmup: int = 5, min_runs: int = 20,
            max_runs: int = 500, time_budget_s: float = 8.0, cuda: bool | None = None) -> dict:
    """Everything profile.json holds, for any nn.Module taking (N, 3, H, W)."""
    model = model.eval()
    if threads:
        torch.set_num_threads(threads)
    h, w = input_size
    result = {
        "params": int(sum(p.numel() for p in model.parameters())),
        "size_mb": len(state_dict_bytes(model.state_dict())) / 1e6,
        "gflops": count_flops(model, input_size) / 1e9,
        "input_height": h,
        "input_width": w,
        "threads": torch.get_num_threads(),
    }
    x = torch.randn(1, 3, h, w)

    def run_cpu() -> None:
        with torch.inference_mode():
            model(x)

    cpu = measure(run_cpu, warmup=warmup, min_runs=min_runs, max_runs=max_runs, time_budget_s=time_budget_s)
    result.update(cpu.summary("latency_cpu"))
    result["latency_cpu_stop_reason"] = cpu.stop_reason
    result["peak_rss_mb"] = _peak_rss_mb()

    if cuda if cuda is not None else torch.cuda.is_available():
        result.update(_profile_cuda(model, x, warmup, min_runs, max_runs, time_budget_s))
    result["env"] = environment()
    return result


def _profile_cuda(model: nn.Module, x: torch.Tensor, warmup: int, min_runs: int, max_runs: int, budget: float) -> dict:
    gpu_model, gx = model.to("cuda"), x.to("cuda")
    torch.cuda.reset_peak_memory_stats()

    def run() -> None:
        with torch.inference_mode():
            gpu_model(gx)

    timing = measure(run, warmup=warmup, min_runs=min_runs, max_runs=max_runs, time_budget_s=budget, clock=_cuda_clock)
    out = timing.summary("latency_cuda")
    out["latency_cuda_stop_reason"] = timing.stop_reason
    out["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    model.to("cpu")
    return out
