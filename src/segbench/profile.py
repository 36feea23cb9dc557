"""Cost of a model: parameters, serialized size, FLOPs, latency, throughput, memory, environment.

Latency is measured the careful way: inputs created before the timed region, warm-up runs,
torch.inference_mode, an explicit thread count (recorded), CUDA events + synchronisation on
GPU, and adaptive repetition (segbench.timing.measure). Every size and backend is timed in
`profile.rounds` rounds, each in a fresh worker process, and more rounds (up to `max_rounds`)
while some latency's 95% interval is wider than `target_rel_ci` of it: the reported median and
its interval then cover the spread between processes, not only within one
(segbench.timing.combine_rounds). The training size keeps the plain keys (`latency_cpu_ms`);
every other size gets its own (`latency_cpu_750x1000_ms`).
"""
from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .config import ProfileConfig
from .contention import ContentionMonitor, wait_for_quiet
from .environment import fingerprint
from .errors import SegbenchError
from .io import state_dict_bytes
from .latency import Budget, Round, RoundJob, forward_or_fail, make_input, time_round
from .timing import combine_rounds, precise_keys, widest_interval

# The frame size a course assignment times (H, W); profiled beside the training size by default.
DEFAULT_EXTRA_SIZE = (750, 1000)


def count_flops(model: nn.Module, input_size: tuple[int, int]) -> float:
    """Forward-pass FLOPs at batch 1 (a multiply-add counts 2; a conv's bias is not counted),
    via torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    x = make_input(1, input_size)
    counter = FlopCounterMode(display=False)
    with counter:
        forward_or_fail(model, x)
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


def profile(model: nn.Module, input_size: tuple[int, int], cfg: ProfileConfig | None = None) -> dict:
    """Everything profile.json holds, for any nn.Module taking (N, 3, H, W), measured as `cfg`
    (params.yaml `profile:`; None: its defaults) says.

    `input_size` is the training size (plain keys); `cfg.input_sizes` lists further [H, W] sizes
    (None: 750x1000). `cfg.threads` 0 means torch.get_num_threads(); the count is set explicitly
    for the run and recorded. `cfg.device` auto times the GPU when there is one; CUDA keys are
    absent, not zero, without a GPU. The time budget is per size, backend and round.

    Other processes' CPU use is sampled while the timings run ("contention", segbench.contention);
    with `cfg.quiet_wait_s`, timing starts once the machine is quiet or after that many seconds.
    `cfg.backends` (segbench.backends) beside eager fp32 get CPU latency at every size, set-up time
    and agreement with eager fp32; one that cannot run the model records why in `backend_errors`.
    A model that cannot be sent to a worker process (a class defined in a notebook) is timed in
    this process, each round in turn (`rounds_in_process`).
    """
    cfg = cfg or ProfileConfig()
    job = RoundJob(sizes=resolve_sizes(input_size, cfg.input_sizes), batch_size=cfg.batch_size,
                   budget=Budget(cfg.warmup, cfg.min_runs, cfg.max_runs, cfg.time_budget_s,
                                 floor_runs=3 if cfg.max_rounds == 1 else 2),
                   backends=tuple(b for b in cfg.backends if b != "eager"), threads=cfg.threads or torch.get_num_threads(),
                   cuda=_use_cuda(cfg.device), amp_dtype=cfg.amp_dtype)
    model = model.eval()
    result = static_costs(model, job.sizes[0]) | {"throughput_batch_size": cfg.batch_size, "threads": job.threads}
    if cfg.quiet_wait_s > 0:
        wait = wait_for_quiet(cfg.quiet_wait_s)
        result["quiet_wait_s"], result["started_quiet"] = wait["waited_s"], wait["quiet"]
    with ContentionMonitor() as monitor:
        result.update(run_rounds(model, job, cfg))
    result["contention"] = monitor.result.as_dict()
    result["env"] = environment()
    return result


def run_rounds(model: nn.Module, job: RoundJob, cfg: ProfileConfig) -> dict:
    """`cfg.rounds` rounds, then more up to `cfg.max_rounds` while some latency is wider than
    `cfg.target_rel_ci`; their timings combined, the other numbers from the rounds. A round after
    the first `cfg.rounds` times only the latencies still wider than the target (each key's
    `_rounds` says how many it had), and only the first compares backends with eager fp32."""
    workers = cfg.max_rounds > 1 and _portable(model)
    rounds: list[Round] = []
    combined: dict = {}
    while len(rounds) < cfg.rounds or (len(rounds) < cfg.max_rounds and widest_interval(combined) > cfg.target_rel_ci):
        skip = precise_keys(combined, cfg.target_rel_ci) if len(rounds) >= cfg.rounds else frozenset()
        this = replace(job, skip=skip, agreement=not rounds)
        rounds.append(_in_worker(model, this) if workers else time_round(model, this))
        combined = combine_rounds([r.timings for r in rounds])
    numbers = _merge_numbers([r.numbers for r in rounds])
    reason = "target" if widest_interval(combined) <= cfg.target_rel_ci else "max_rounds"
    return combined | numbers | {"rounds": len(rounds), "rounds_stop_reason": reason,
                                 "rounds_in_process": not workers and len(rounds) > 1}


def _portable(model: nn.Module) -> bool:
    """Whether the model can be sent to a worker process (not a class defined in a notebook or a function)."""
    try:
        pickle.dumps(model)
    except Exception:  # pickling fails in many ways (local classes, lambdas, open handles)
        return False
    return True


def _in_worker(model: nn.Module, job: RoundJob) -> Round:
    """One round in a fresh process, forked from a server process (multiprocessing's forkserver) that
    has only imported torch and the model's modules: nothing measured or allocated is shared with
    this process or an earlier round, and a round starts without importing torch again (seconds per
    round). The model travels through torch.multiprocessing (tensors in shared memory)."""
    import torch.multiprocessing as torch_mp

    context = torch_mp.get_context("forkserver")
    modules = {type(m).__module__ for m in model.modules()} - {"__main__"}
    context.set_forkserver_preload(sorted(modules | {"segbench.latency"}))  # used when the server starts: once
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(time_round, model, job).result()


def _merge_numbers(rounds: list[dict]) -> dict:
    """The non-latency numbers over rounds: throughput and set-up times their median, run counts summed,
    memory its peak, agreement and errors the first round's (deterministic)."""
    out = dict(rounds[0])
    for key in out:
        values = [r[key] for r in rounds if key in r]
        if key.startswith("throughput_") and key.endswith("_ips") or key.startswith("setup_"):
            out[key] = float(np.median(values))
        elif key.startswith("throughput_") and key.endswith("_runs"):
            out[key] = int(sum(values))
        elif key.endswith("peak_rss_mb") or key.endswith("peak_allocated_mb"):
            out[key] = float(max(values))
    return out


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


