"""Where a number was measured.

`fingerprint()` is the environment every metrics file records under "env": the CPU model and
the instruction-set features that change PyTorch's speed (AVX2, AVX-512, AVX-512-BF16, AMX),
core counts, the Python / torch / torchvision / numpy / ONNX Runtime / CUDA versions and the GPU. Its `id` is a
short hash of those fields: two timings are comparable only when their ids are equal.

How busy the machine was is segbench.contention's.

The standard library, psutil and segbench.contention only. It reads the torch version without
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
from pathlib import Path
from typing import Any, Iterable

import psutil

from .contention import usable_cpus

# The CPU flags (/proc/cpuinfo names) that select a different PyTorch kernel, so a different speed.
SPEED_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                  "amx_int8", "avx_vnni")
# The fingerprint fields that decide whether two timings are comparable (the id hashes them).
TIMING_FIELDS = ("cpu", "cpu_features", "logical_cores", "usable_cores", "python", "torch", "torchvision", "numpy",
                 "onnxruntime", "cuda", "gpu")


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
        "onnxruntime": _distribution_version("onnxruntime"),  # a profile backend
        "cuda": cuda,
        "gpu": _gpu_name(),
        "os": f"{platform.system()} {platform.release()}",
    }
    env["id"] = environment_id(env)
    return env


def timing_fingerprint() -> dict[str, Any]:
    """The fingerprint's TIMING_FIELDS and id only: what stage `environment` records. The kernel
    release and the physical core count are left out, so a kernel update re-profiles nothing."""
    env = fingerprint()
    return {**{k: env[k] for k in TIMING_FIELDS}, "id": env["id"]}


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


def group_fingerprints(recorded: Iterable[tuple[str, Any]]) -> dict[str, tuple[dict[str, Any], list[str]]]:
    """(source, a metrics file's "env") pairs -> {environment id: (its fingerprint, the sources measured there)},
    in the order first seen: which environments a set of timings comes from."""
    groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for source, env in recorded:
        for found in recorded_fingerprints(env):
            groups.setdefault(fingerprint_id(found), (found, []))[1].append(source)
    return groups
