"""Costs between two revisions: which changed beyond their measurement noise, and which cannot be compared.

- Parameters, size and FLOPs do not depend on the machine: any change is a real one.
- Timings and memory depend on where they were measured. Two are compared only when both come
  from one environment (segbench.environment's fingerprint: CPU and its features, cores, library
  versions, GPU), with the same precision, threads and input size, on a quiet machine; otherwise
  the row is "not comparable" and names the fields that differ.
- Timings (training time, time per epoch, latency, throughput) from the same environment: identical
  when bit-identical (one run), otherwise "not comparable (another run)" with the ratio B / A. Their
  intervals (over profiling rounds, over seeds) cover one run's noise, not the drift between two runs
  on shared machines: a re-run of one commit in the same environment measured all 36 latencies lower
  (0.63-0.97x), and 12 of their 36 intervals did not overlap the first run's. Training memory: the
  Welch interval over the seeds.
"""
from __future__ import annotations

from ..environment import env_differences, fingerprint_id, recorded_fingerprints
from ..keys import LatencyKey, latency_keys, size_tag, throughput_key
from .read import ModelMetrics
from .rows import (
    NO_INTERVAL,
    NOT_COMPARABLE,
    SAME,
    Row,
    another_run,
    exact_row,
    identical_row,
    not_comparable,
    number,
    seed_row,
)

STATIC_COSTS = {"params": "parameters", "size_mb": "size (MB)", "gflops": "GFLOPs", "gmacs": "GMACs"}
TRAINING_COSTS = {"train_time_s": "training time per seed (s)", "time_per_epoch_s": "time per epoch (s)",
                  "peak_rss_mb": "peak memory, training (MB)", "cuda_peak_allocated_mb": "peak GPU memory, training (MB)"}
PROFILE_MEMORY = {"peak_rss_mb": "peak memory, profiling (MB)", "cuda_peak_allocated_mb": "peak GPU memory, profiling (MB)"}
TRAINING_SETTINGS = ("amp", "device", "threads", "world_size")  # train.json: how it ran, beside the environment
HEADLINE_COSTS = ("train_time_s", LatencyKey().name, "size_mb")
TRAINING_TIMES = ("train_time_s", "time_per_epoch_s")


def cost_rows(a: ModelMetrics, b: ModelMetrics) -> list[Row]:
    """Every cost both revisions hold (and those only one does, as not comparable)."""
    rows = [exact_row(k, label, number(a.profile.get(k)), number(b.profile.get(k)))
            for k, label in STATIC_COSTS.items() if k in a.profile or k in b.profile]
    rows += training_rows(a, b)
    rows += latency_rows(a.profile, b.profile)
    rows += profile_memory_rows(a.profile, b.profile)
    return rows


# --- where a timing was made ------------------------------------------------------------------------

def environment_mismatch(env_a, env_b) -> list[str]:
    """The fields on which two metrics files' environments differ; [] when both hold one and the same."""
    a, b = recorded_fingerprints(env_a), recorded_fingerprints(env_b)
    if not a or not b:
        return [] if not a and not b else ["environment: recorded in one revision only"]
    for side, found in (("A", a), ("B", b)):
        if len({fingerprint_id(e) for e in found}) > 1:
            return [f"environment: {side}'s seeds ran in {len({fingerprint_id(e) for e in found})} environments"]
    if fingerprint_id(a[0]) == fingerprint_id(b[0]):
        return []
    return env_differences(a[0], b[0]) or [f"environment id: {fingerprint_id(a[0])} vs {fingerprint_id(b[0])}"]


def _setting(record: dict, key: str):
    value = record.get(key)
    return sorted(map(str, value["per_seed"].values())) if isinstance(value, dict) and "per_seed" in value else value


def setting_mismatch(a: dict, b: dict, keys) -> list[str]:
    return [f"{k}: {_setting(a, k)} vs {_setting(b, k)}" for k in keys
            if k in a and k in b and _setting(a, k) != _setting(b, k)]


def contention_mismatch(a: dict, b: dict) -> list[str]:
    """A timing made on a busy machine (docs/measurement.md "Honest timings") compares with nothing."""
    busy = [side for side, record in (("A", a), ("B", b)) if (record.get("contention") or {}).get("contended")]
    return [f"contended timing at {' and '.join(busy)}"] if busy else []


def _why(differences: list[str]) -> str:
    return "measured differently: " + "; ".join(differences)


def timing_differences(a: ModelMetrics, b: ModelMetrics) -> list[str]:
    """Why some of a model's timings are not comparable: the training's and the profile's reasons, once each."""
    found = _training_mismatch(a, b) + _profile_mismatch(a.profile, b.profile)
    return list(dict.fromkeys(found))


# --- training -------------------------------------------------------------------------------------

def _training_mismatch(a: ModelMetrics, b: ModelMetrics) -> list[str]:
    return (environment_mismatch(a.train.get("env"), b.train.get("env"))
            + setting_mismatch(a.train, b.train, TRAINING_SETTINGS) + contention_mismatch(a.train, b.train))


def training_rows(a: ModelMetrics, b: ModelMetrics) -> list[Row]:
    differences = _training_mismatch(a, b)
    rows = []
    for key, label in TRAINING_COSTS.items():
        if key not in a.train and key not in b.train:
            continue
        if differences:
            rows.append(not_comparable(key, label, a.train.get(key), b.train.get(key), False, _why(differences)))
            continue
        a_values, b_values = a.seed_values("train", key), b.seed_values("train", key)
        old, new = number(a.train.get(key)), number(b.train.get(key))
        if key in TRAINING_TIMES:
            same = identical_row(key, label, a_values, b_values, False, old, new)
            rows.append(same or another_run(key, label, old, new, False))
            continue
        row = seed_row(key, label, a_values, b_values, False, old, new)
        if row is not None:
            rows.append(row)
    return rows


# --- inference ------------------------------------------------------------------------------------

def _profile_mismatch(a: dict, b: dict) -> list[str]:
    return environment_mismatch(a.get("env"), b.get("env")) + setting_mismatch(a, b, ("threads",)) + contention_mismatch(a, b)


def _input_size(profile: dict) -> str | None:
    h, w = profile.get("input_height"), profile.get("input_width")
    return size_tag((h, w)) if h and w else None


def _label(key: LatencyKey, what: str = "latency", unit: str = "ms") -> str:
    """CPU latency (ms), CPU latency onnxruntime 750x1000 (ms), GPU latency bf16 (ms), CPU throughput (images/s)."""
    parts = [key.device.upper(), what, key.backend if key.tag else "", size_tag(key.size) if key.size else ""]
    return " ".join(p for p in parts if p) + f" ({unit})"


def latency_rows(a: dict, b: dict) -> list[Row]:
    """Each latency median either profile holds, and the throughput at each training-size setting."""
    differences = _profile_mismatch(a, b)
    keys = {k: None for k in latency_keys(a) + latency_keys(b)}
    rows = []
    size_differs = _input_size(a) != _input_size(b)
    for key in keys:
        extra = [f"input size: {_input_size(a)} vs {_input_size(b)}"] if key.size is None and size_differs else []
        rows.append(_timed_row(key.name, _label(key), a, b, False, differences + extra))
        throughput = throughput_key("_".join(filter(None, (key.device, key.tag))))
        if key.size is None and (throughput in a or throughput in b):
            rows.append(_timed_row(throughput, _label(key, "throughput", "images/s"), a, b, True, differences + extra))
    return rows


def _timed_row(name: str, label: str, a: dict, b: dict, higher_is_better: bool, differences: list[str]) -> Row:
    if differences:
        return not_comparable(name, label, a.get(name), b.get(name), higher_is_better, _why(differences))
    return another_run(name, label, number(a.get(name)), number(b.get(name)), higher_is_better)


def profile_memory_rows(a: dict, b: dict) -> list[Row]:
    """Peak memory while profiling: one reading a side, so only "the same" or "no interval"."""
    differences = _profile_mismatch(a, b)
    rows = []
    for key, label in PROFILE_MEMORY.items():
        if key not in a and key not in b:
            continue
        if differences:
            rows.append(not_comparable(key, label, a.get(key), b.get(key), False, _why(differences)))
            continue
        old, new = number(a.get(key)), number(b.get(key))
        if old is None or new is None:
            rows.append(Row(key, label, old, new, False, NOT_COMPARABLE, note="measured in one revision only"))
        else:
            rows.append(Row(key, label, old, new, False, SAME if old == new else NO_INTERVAL, note="one reading a side"))
    return rows
