"""How busy the machine was while a number was measured.

`ContentionMonitor` samples, while a timing runs, how much of the CPUs this process may use went
to *other* processes (busy time minus this process tree's own) and to the hypervisor (steal
time). Above `CONTENTION_THRESHOLD` the timing is marked contended: a busy machine slows
2-thread PyTorch by up to 5x, and such a number must not sit unmarked beside quiet ones.
`wait_for_quiet` waits, before a timing, for a quiet moment.

A leaf module: the standard library and psutil only.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable

import psutil

# Other processes (or the hypervisor, as steal) taking more than this share of the CPU time this
# process may use, on average over a timing, mark the timing as contended.
CONTENTION_THRESHOLD = 0.15


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity), or all of them where that is unknown."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class Contention:
    """What other processes took while a timing ran, as shares of the usable CPU time (0..1)."""

    other_cpu: float      # mean share used by processes outside the measured process tree
    other_cpu_max: float  # the busiest sample
    steal: float          # mean share the hypervisor gave to other machines
    seconds: float        # how long was sampled
    samples: int
    threshold: float = CONTENTION_THRESHOLD

    @property
    def contended(self) -> bool:
        return self.other_cpu > self.threshold or self.steal > self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {"other_cpu": self.other_cpu, "other_cpu_max": self.other_cpu_max, "steal": self.steal,
                "seconds": self.seconds, "samples": self.samples, "threshold": self.threshold,
                "contended": self.contended}



def contention_warning(record: dict[str, Any], what: str) -> str:
    """One line for stderr from a recorded `Contention.as_dict()`."""
    return (f"segbench: warning: other processes used {record['other_cpu']:.0%} of the CPU (steal {record['steal']:.0%}) "
            f"while {what} (threshold {record['threshold']:.0%}): its timings are marked contended; quality metrics "
            "are unaffected; re-run on a quiet machine for comparable costs")


class _Counters:
    """Cumulative CPU seconds: busy and steal on the usable CPUs, total there, and the measured tree's."""

    def __init__(self, root: psutil.Process, cpus: list[int]) -> None:
        self.root, self.cpus = root, cpus

    def read(self) -> tuple[float, float, float, float]:
        per_cpu = psutil.cpu_times(percpu=True)
        times = [per_cpu[i] for i in self.cpus if i < len(per_cpu)] or per_cpu
        busy = sum(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0) for t in times)
        steal = sum(getattr(t, "steal", 0.0) for t in times)
        total = busy + steal + sum(t.idle + getattr(t, "iowait", 0.0) for t in times)
        return busy, steal, total, self.tree_cpu()

    def tree_cpu(self) -> float:
        """CPU seconds of the root process, its reaped children and its live descendants."""
        total = 0.0
        try:
            t = self.root.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
            children = self.root.children(recursive=True)
        except psutil.Error:
            return total
        for child in children:
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.Error:  # it exited between listing and reading
                continue
        return total


class ContentionMonitor:
    """Samples other processes' CPU share every `interval_s` in a daemon thread while in the
    `with` block; `.result` afterwards. `root_pid`: the process tree that is being measured (this
    process by default; the torchrun agent for a data-parallel run, so the ranks count as one)."""

    def __init__(self, interval_s: float = 0.5, threshold: float = CONTENTION_THRESHOLD,
                 root_pid: int | None = None) -> None:
        self.interval_s, self.threshold = interval_s, threshold
        self._counters = _Counters(psutil.Process(root_pid or os.getpid()), usable_cpus())
        self._shares: list[tuple[float, float, float]] = []  # (other, steal, seconds) per sample
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.result: Contention | None = None

    def __enter__(self) -> ContentionMonitor:
        self._start, self._last = time.perf_counter(), self._counters.read()
        self._thread = threading.Thread(target=self._run, name="segbench-contention", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        now = self._counters.read()
        busy, steal, total, own = (b - a for a, b in zip(self._last, now))
        self._last = now
        if total <= 0:
            return
        other = max(0.0, busy - max(0.0, own)) / total
        self._shares.append((min(1.0, other), min(1.0, max(0.0, steal) / total), total))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.result = summarize_shares(self._shares, time.perf_counter() - self._start, self.threshold)


def summarize_shares(shares: Iterable[tuple[float, float, float]], seconds: float,
                     threshold: float = CONTENTION_THRESHOLD) -> Contention:
    """Time-weighted means (each sample weighs by the CPU time it covered) and the busiest sample."""
    shares = list(shares)
    weight = sum(w for _, _, w in shares)
    if not shares or weight <= 0:
        return Contention(0.0, 0.0, 0.0, seconds, 0, threshold)
    other = sum(o * w for o, _, w in shares) / weight
    steal = sum(s * w for _, s, w in shares) / weight
    return Contention(other, max(o for o, _, _ in shares), steal, seconds, len(shares), threshold)


def wait_for_quiet(max_wait_s: float, window_s: float = 0.5, threshold: float = CONTENTION_THRESHOLD) -> dict[str, Any]:
    """Before a timing: watch `window_s` windows until one is quiet (other processes and steal under
    `threshold`) or `max_wait_s` has passed. Returns {"waited_s", "quiet"} for the metrics file."""
    started = time.perf_counter()
    while True:
        with ContentionMonitor(interval_s=window_s, threshold=threshold) as monitor:
            time.sleep(window_s)
        waited = time.perf_counter() - started
        if not monitor.result.contended:
            return {"waited_s": waited, "quiet": True}
        if waited >= max_wait_s:
            return {"waited_s": waited, "quiet": False}
