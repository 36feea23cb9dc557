"""Cost of a model: parameters, serialized size, FLOPs, latency, throughput, memory, environment.

Latency is measured the careful way: inputs created before the timed region, warm-up runs,
torch.inference_mode, an explicit thread count (recorded), CUDA events + synchronisation on
GPU, and adaptive repetition until the median is stable (95% confidence interval of the
median within `target_rel_ci` of it) or the per-size time budget is spent. `stop_reason`
records which. The training size keeps the plain keys (`latency_cpu_ms`); every other
size gets its own (`latency_cpu_750x1000_ms`).
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .backends import BackendUnavailable, agreement, prepare
from .config import ProfileConfig
from .contention import ContentionMonitor, wait_for_quiet
from .environment import fingerprint, peak_rss_mb
from .errors import ResourceError, SegbenchError, first_line
from .io import state_dict_bytes
from .keys import BACKEND_TAGS, PRECISION_TAGS, LatencyKey, agreement_keys, setup_key, size_tag, throughput_key

# The frame size a course assignment times (H, W); profiled beside the training size by default.
DEFAULT_EXTRA_SIZE = (750, 1000)
AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}

Clock = Callable[[Callable[[], None]], float]


@dataclass(frozen=True)
class Timing:
    times_ms: np.ndarray
    stop_reason: str  # "stable", "time_budget" or "max_runs"

    def summary(self, key: LatencyKey) -> dict:
        t = self.times_ms
        return {
            key.name: float(np.median(t)),
            key.stat("p90_ms"): float(np.percentile(t, 90)),
            key.stat("min_ms"): float(t.min()),
            key.stat("std_ms"): float(t.std(ddof=1)) if len(t) > 1 else 0.0,
            key.stat("runs"): int(len(t)),
            key.stat("median_rel_ci"): median_rel_ci(t),
            key.stat("stop_reason"): self.stop_reason,
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
            time_budget_s: float = 8.0, target_rel_ci: float = 0.02, clock: Optional[Clock] = None,
            now: Callable[[], float] = time.perf_counter) -> Timing:
    """Time `run` adaptively; `clock(run)` returns the seconds one call took (wall clock by default).

    Warm-up stops early once it has used half the budget (a 750x1000 frame can take seconds);
    timing stops when the median is stable, at `max_runs`, or, after at least 3 runs, when
    the budget (warm-up included) is spent.
    """
    clock = clock or _wall_clock
    started = now()
    # Warm up for `warmup` runs and at least a quarter of the budget (at most 0.5 s): the first
    # calls in a process (thread-pool spin-up, allocator growth, CPU clock ramp) run slow for
    # longer than a handful of fast calls, which showed as a high first median across repeats.
    warm_s = min(0.5, time_budget_s / 4) if warmup else 0.0
    runs = 0
    while warmup and (runs < warmup or now() - started < warm_s):
        run()
        runs += 1
        if now() - started > time_budget_s / 2:
            break
    times: list[float] = []
    while True:
        times.append(clock(run) * 1e3)
        n = len(times)
        if n >= min_runs and median_rel_ci(np.asarray(times)) <= target_rel_ci:
            reason = "stable"
            break
        if n >= max_runs:
            reason = "max_runs"
            break
        if n >= 3 and now() - started > time_budget_s:
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


def make_input(batch: int, size: tuple[int, int], device: str = "cpu") -> torch.Tensor:
    """The input tensor; built once per size, always outside the timed region."""
    return torch.randn(batch, 3, *size).to(device)


def _forward_or_fail(model: nn.Module, x: torch.Tensor) -> None:
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


def count_flops(model: nn.Module, input_size: tuple[int, int]) -> float:
    """Forward-pass FLOPs at batch 1 (a multiply-add counts 2; a conv's bias is not counted),
    via torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    x = make_input(1, input_size)
    counter = FlopCounterMode(display=False)
    with counter:
        _forward_or_fail(model, x)
    return float(counter.get_total_flops())


def environment() -> dict:
    """The environment fingerprint (segbench.environment) every metrics file records as "env"."""
    return fingerprint()


def resolve_sizes(train_size: tuple[int, int], input_sizes: Optional[Iterable[Sequence[int]]]) -> list[tuple[int, int]]:
    """The training size first (plain keys), then each other requested size once."""
    extra = [DEFAULT_EXTRA_SIZE] if input_sizes is None else [(int(h), int(w)) for h, w in input_sizes]
    sizes = [tuple(train_size)]
    for size in extra:
        if size not in sizes:
            sizes.append(size)
    return sizes


@dataclass(frozen=True)
class _Budget:
    """How hard to try at each size: `measure`'s keyword arguments."""

    warmup: int
    min_runs: int
    max_runs: int
    time_budget_s: float

    def kwargs(self) -> dict:
        return {"warmup": self.warmup, "min_runs": self.min_runs, "max_runs": self.max_runs,
                "time_budget_s": self.time_budget_s}


def _time_forward(model: nn.Module, x: torch.Tensor, budget: _Budget, clock: Optional[Clock] = None,
                  autocast: Optional[torch.dtype] = None) -> Timing:
    """Latency of model(x): one checked first call (it counts as a warm-up run), then `measure`."""
    amp = torch.autocast(x.device.type, dtype=autocast) if autocast is not None else nullcontext()
    with amp:
        started = time.perf_counter()
        _forward_or_fail(model, x)
        first_s = time.perf_counter() - started
        # A first call over half the budget (a large frame on CPU) is warm-up enough.
        more_warmup = 0 if first_s > budget.time_budget_s / 2 else max(0, budget.warmup - 1)
        with torch.inference_mode():
            kwargs = budget.kwargs() | {"warmup": more_warmup}
            return measure(lambda: model(x), clock=clock, **kwargs)


def _profile_device(model: nn.Module, sizes: list[tuple[int, int]], batch_size: int, budget: _Budget, precision: str = "",
                    device: str = "cpu", clock: Optional[Clock] = None, autocast: Optional[torch.dtype] = None) -> dict:
    """Latency at every size (batch 1) and throughput at the first size (batch `batch_size`)."""
    out: dict = {}
    for i, size in enumerate(sizes):
        x = make_input(1, size, device)
        timing = _time_forward(model, x, budget, clock, autocast)
        out.update(timing.summary(LatencyKey(device, precision, None if i == 0 else size)))
    x = make_input(batch_size, sizes[0], device)
    timing = _time_forward(model, x, budget, clock, autocast)
    throughput = throughput_key("_".join(filter(None, (device, precision))))
    out[throughput] = batch_size / (float(np.median(timing.times_ms)) / 1e3)
    out[throughput.replace("_ips", "_runs")] = int(len(timing.times_ms))
    out[throughput.replace("_ips", "_stop_reason")] = timing.stop_reason
    return out


def profile(model: nn.Module, input_size: tuple[int, int], cfg: ProfileConfig | None = None) -> dict:
    """Everything profile.json holds, for any nn.Module taking (N, 3, H, W), measured as `cfg`
    (params.yaml `profile:`; None: its defaults) says.

    `input_size` is the training size (plain keys); `cfg.input_sizes` lists further [H, W] sizes
    (None: 750x1000). `cfg.threads` 0 means torch.get_num_threads(); the count is set explicitly
    for the run, recorded, and restored afterwards. `cfg.device` auto times the GPU when there is
    one; CUDA keys are absent, not zero, without a GPU. The time budget is per size (and per
    precision on GPU).

    Other processes' CPU use is sampled while the timings run ("contention", segbench.environment);
    with `cfg.quiet_wait_s`, timing starts once the machine is quiet or after that many seconds.
    `cfg.backends` (segbench.backends) beside eager fp32 get CPU latency at every size, set-up time
    and agreement with eager fp32; one that cannot run the model records why in `backend_errors`.
    """
    cfg = cfg or ProfileConfig()
    cuda = _use_cuda(cfg.device)
    model = model.eval()
    sizes = resolve_sizes(input_size, cfg.input_sizes)
    budget = _Budget(cfg.warmup, cfg.min_runs, cfg.max_runs, cfg.time_budget_s)
    previous_threads = torch.get_num_threads()
    used_threads = cfg.threads or previous_threads
    torch.set_num_threads(used_threads)
    try:
        result = static_costs(model, sizes[0]) | {"throughput_batch_size": cfg.batch_size, "threads": used_threads}
        if cfg.quiet_wait_s > 0:
            wait = wait_for_quiet(cfg.quiet_wait_s)
            result["quiet_wait_s"], result["started_quiet"] = wait["waited_s"], wait["quiet"]
        with ContentionMonitor() as monitor:
            result.update(_profile_device(model, sizes, cfg.batch_size, budget))
            result["peak_rss_mb"] = peak_rss_mb()
            others = [b for b in cfg.backends if b != "eager"]
            result.update(profile_backends(model, sizes, budget, others, used_threads))
            if cuda:
                result.update(_profile_cuda(model, sizes, cfg.batch_size, budget, AMP_DTYPES[cfg.amp_dtype]))
    finally:
        torch.set_num_threads(previous_threads)
    result["contention"] = monitor.result.as_dict()
    result["env"] = environment()
    return result


def _use_cuda(device: str) -> bool:
    if device == "cuda" and not torch.cuda.is_available():
        raise SegbenchError("profile.device: cuda requested but no CUDA device is available; use auto or cpu")
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


def static_costs(model: nn.Module, size: tuple[int, int]) -> dict:
    """What does not depend on the machine: parameters, serialized size, FLOPs and MACs at `size`."""
    flops = count_flops(model, size)
    return {
        "params": int(sum(p.numel() for p in model.parameters())),
        "size_mb": len(state_dict_bytes(model.state_dict())) / 1e6,
        "gflops": flops / 1e9,
        "gmacs": flops / 2e9,  # torch's counter: 2 FLOPs per multiply-add, so MACs are half
        "input_height": size[0],
        "input_width": size[1],
    }


def profile_backends(model: nn.Module, sizes: list[tuple[int, int]], budget: _Budget, backends: Sequence[str],
                     threads: int) -> dict:
    """CPU latency of each backend at every size (latency_cpu_<tag>[_<H>x<W>]_ms), its set-up time
    (setup_<tag>_s, summed over sizes: export or compilation) and its agreement with eager fp32 on
    the same input (max_abs_diff_cpu_<tag>, argmax_agreement_cpu_<tag>, per size). A backend that
    cannot run the model gets its one-line reason in backend_errors instead, and no numbers."""
    out: dict = {}
    errors: dict[str, str] = {}
    for backend in backends:
        numbers = {}
        try:
            for i, size in enumerate(sizes):
                key = LatencyKey("cpu", BACKEND_TAGS[backend], None if i == 0 else size)
                x = make_input(1, size)
                with torch.inference_mode():
                    reference = model(x)["out"]
                runner = prepare(backend, model, x, threads)
                with torch.inference_mode():
                    agree = agreement(reference, runner.run(x))
                    timing = measure(lambda run=runner.run, x=x: run(x), **budget.kwargs())
                numbers.update(timing.summary(key))
                diff_key, agreement_key = agreement_keys(key)
                numbers[diff_key], numbers[agreement_key] = agree["max_abs_diff"], agree["argmax_agreement"]
                numbers[setup_key(backend)] = numbers.get(setup_key(backend), 0.0) + runner.setup_s
        except BackendUnavailable as exc:
            errors[backend] = str(exc)
            continue
        except (RuntimeError, ValueError) as exc:  # it ran at one size and not at another
            errors[backend] = f"{type(exc).__name__}: {first_line(exc)}"[:300]
            continue
        out.update(numbers)
    if backends:
        out["backend_errors"] = errors
    return out


def _profile_cuda(model: nn.Module, sizes: list[tuple[int, int]], batch_size: int, budget: _Budget,
                  amp_dtype: torch.dtype) -> dict:
    """fp32 and AMP (`amp_dtype`) latency and throughput with CUDA events, plus peak allocated memory."""
    model.to("cuda")
    try:
        torch.cuda.reset_peak_memory_stats()
        out = _profile_device(model, sizes, batch_size, budget, "", "cuda", _cuda_clock)
        if amp_dtype is not torch.bfloat16 or torch.cuda.is_bf16_supported():
            tag = PRECISION_TAGS[str(amp_dtype).removeprefix("torch.")]
            out.update(_profile_device(model, sizes, batch_size, budget, tag, "cuda", _cuda_clock, amp_dtype))
        out["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    finally:
        model.to("cpu")
    return out
