"""Where a number was measured, and how busy the machine was while it was measured.

`fingerprint()` is the environment every metrics file records under "env": the CPU model and
the instruction-set features that change PyTorch's speed (AVX2, AVX-512, AVX-512-BF16, AMX),
core counts, the Python / torch / torchvision / numpy / CUDA versions and the GPU. Its `id` is a
short hash of those fields: two timings are comparable only when their ids are equal.

`ContentionMonitor` samples, while a timing runs, how much of the CPUs this process may use went
to *other* processes (busy time minus this process tree's own) and to the hypervisor (steal
time). Above `CONTENTION_THRESHOLD` the timing is marked contended: a busy machine slows
2-thread PyTorch by up to 5x, and such a number must not sit unmarked beside quiet ones.

A leaf module: the standard library and psutil only. It reads the torch version without
importing torch, so a stage that needs no torch (`segbench check`, plot) stays fast.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import psutil

# The CPU flags (/proc/cpuinfo names) that select a different PyTorch kernel, so a different speed.
SPEED_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                  "amx_int8", "avx_vnni")
# The fingerprint fields that decide whether two timings are comparable (the id hashes them).
TIMING_FIELDS = ("cpu", "cpu_features", "logical_cores", "usable_cores", "python", "torch", "torchvision", "numpy",
                 "cuda", "gpu")
# Other processes (or the hypervisor, as steal) taking more than this share of the CPU time this
# process may use, on average over a timing, mark the timing as contended.
CONTENTION_THRESHOLD = 0.15


# --- the fingerprint -------------------------------------------------------------------------------

def _cpu_info() -> tuple[str, list[str]]:
    """(model name, the SPEED_FEATURES it has); off Linux, platform's name and no features."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model in (platform.processor(), platform.machine()):
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, [f for f in SPEED_FEATURES if f in flags]


def cpu_features() -> list[str]:
    """The SPEED_FEATURES this machine's CPU has."""
    return _cpu_info()[1]


def _version_module(package: str) -> dict[str, Any]:
    """The constants assigned in `package`/version.py (torch and torchvision generate one at build
    time: the version with its local tag, e.g. 2.14.1+cu130, and torch's CUDA version). Parsed,
    not imported: importing torch takes 2 s, and torchvision's file imports the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return {}
    version_file = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        tree = ast.parse(version_file.read_text())
    except (OSError, SyntaxError, ValueError):
        return {}
    found: dict[str, Any] = {}
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and isinstance(node.value, ast.Constant):
            found[target.id] = node.value.value
    return found


def _package_version(package: str) -> tuple[str | None, str | None]:
    """(__version__, the CUDA version it was built for) of torch or torchvision."""
    module = sys.modules.get(package)
    if module is not None:
        return module.__version__, getattr(getattr(module, "version", None), "cuda", None)
    found = _version_module(package)
    return found.get("__version__") or _distribution_version(package), found.get("cuda")


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _gpu_name() -> str | None:
    """The first GPU's name: torch's when torch is loaded, else nvidia-smi's; None without one."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (ru_maxrss is KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity), or all of them where that is unknown."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def fingerprint() -> dict[str, Any]:
    """The environment a number is measured in (metrics files' "env")."""
    cpu, features = _cpu_info()
    torch_version, cuda = _package_version("torch")
    env: dict[str, Any] = {
        "cpu": cpu,
        "cpu_features": features,
        "logical_cores": os.cpu_count() or 1,
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(usable_cpus()),
        "python": platform.python_version(),
        "torch": torch_version,
        "torchvision": _package_version("torchvision")[0],
        "numpy": _distribution_version("numpy"),
        "cuda": cuda,
        "gpu": _gpu_name(),
        "os": f"{platform.system()} {platform.release()}",
    }
    env["id"] = environment_id(env)
    return env


def environment_id(env: dict[str, Any]) -> str:
    """8 hex digits over the TIMING_FIELDS that `env` has: equal ids, comparable timings."""
    fields = {k: env[k] for k in TIMING_FIELDS if k in env}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]


def env_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The TIMING_FIELDS on which two fingerprints disagree, as `field: a vs b` (fields one of them
    lacks, from an older segbench, are not compared)."""
    return [f"{k}: {_show(a[k])} vs {_show(b[k])}" for k in TIMING_FIELDS if k in a and k in b and a[k] != b[k]]


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(value) or "none"
    return str(value)


def describe_env(env: dict[str, Any]) -> str:
    """CPU (features), cores, library versions, GPU: one phrase."""
    features = "+".join(env.get("cpu_features") or []) or "no AVX2"
    return (f"{env.get('cpu', '?')} ({features}), {env.get('usable_cores', env.get('logical_cores', '?'))} cores, "
            f"torch {env.get('torch', '?')}, torchvision {env.get('torchvision', '?')}, numpy {env.get('numpy', '?')}, "
            f"{env.get('gpu') or 'no GPU'}")


def is_fingerprint(value: Any) -> bool:
    return isinstance(value, dict) and "cpu" in value and "torch" in value


def recorded_fingerprints(env: Any) -> list[dict[str, Any]]:
    """The fingerprints a metrics file's "env" holds: one, or one per seed ({"per_seed": {seed: env}})
    when the aggregate stage found the seeds ran in different environments; [] when none is recorded."""
    if is_fingerprint(env):
        return [env]
    if isinstance(env, dict) and isinstance(env.get("per_seed"), dict):
        return [e for e in env["per_seed"].values() if is_fingerprint(e)]
    return []


def fingerprint_id(env: dict[str, Any]) -> str:
    """The id a fingerprint carries, or the one its fields give (an older segbench stored none)."""
    return env.get("id") or environment_id(env)


# --- contention ----------------------------------------------------------------------------------

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
