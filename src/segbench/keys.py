"""The names of metrics keys, built and parsed in one place (stdlib only).

profile.json names a latency `latency_<device>[_<tag>][_<H>x<W>]_ms`: device `cpu` or `cuda`; tag
the backend (CPU) or precision (GPU), none for eager fp32; the training size has no size suffix.
Its statistics share the prefix (`latency_cpu_750x1000_p90_ms`, `..._runs`, `..._stop_reason`).
Every writer (profile, backends) builds names with `LatencyKey`, and every reader (the report,
the CLI) parses them with `parse_latency_key`, so a new backend or size cannot be dropped by a
pattern that does not know it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

DEVICES = ("cpu", "cuda")
# profile.backends name -> the tag in its keys (eager fp32 has none)
BACKEND_TAGS = {"eager": "", "eager_bf16": "bf16", "compile": "compile", "onnxruntime": "onnxruntime"}
TAG_BACKENDS = {tag: backend for backend, tag in BACKEND_TAGS.items()}
# GPU precisions timed beside fp32 (profile.amp_dtype) -> their tag
PRECISION_TAGS = {"bfloat16": "bf16", "float16": "fp16"}
_TAGS = {"cpu": set(BACKEND_TAGS.values()) - {""}, "cuda": set(PRECISION_TAGS.values())}
# tags that run in reduced precision: their agreement with eager fp32 is reported, not required
REDUCED_PRECISION_TAGS = frozenset({"bf16", "fp16"})
# the argmax agreement with eager fp32 an fp32 backend must reach to count (as fastest, in the summary)
FP32_AGREEMENT = 0.999
# the statistics the profile stage writes beside each median, as suffixes of the key's prefix: the 95%
# interval of the median over the profiling rounds (separate processes), how many rounds and runs it rests on
TIMING_STATS = ("ci95_low_ms", "ci95_high_ms", "rounds", "p90_ms", "min_ms", "std_ms", "runs", "median_rel_ci",
                "stop_reason")

# per-epoch training-log metrics (DVCLive), in the order the report's curves list them
# (elapsed_s: the training seconds so far, over every attempt of a resumed run)
CURVE_METRICS = ("train_loss", "val_loss", "val_miou", "lr", "val_depth_rmse", "train_depth_loss", "val_depth_loss",
                 "elapsed_s")

_SIZE = re.compile(r"(\d+)x(\d+)")


def size_tag(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


@dataclass(frozen=True)
class LatencyKey:
    """One latency measurement's name: device, backend/precision tag ("" eager fp32), size (None: the training size)."""

    device: str = "cpu"
    tag: str = ""
    size: tuple[int, int] | None = None

    @property
    def prefix(self) -> str:
        parts = ["latency", self.device, self.tag, size_tag(self.size) if self.size else ""]
        return "_".join(p for p in parts if p)

    @property
    def name(self) -> str:
        """The median's key: latency_cpu_onnxruntime_750x1000_ms."""
        return f"{self.prefix}_ms"

    def stat(self, stat: str) -> str:
        """A statistic beside the median (one of TIMING_STATS): latency_cpu_750x1000_p90_ms."""
        return f"{self.prefix}_{stat}"

    @property
    def backend(self) -> str:
        """The profile.backends name on CPU ("eager", "onnxruntime", ...); the precision tag or "fp32" on GPU."""
        if self.device == "cpu":
            return TAG_BACKENDS[self.tag]
        return self.tag or "fp32"

    @property
    def size_suffix(self) -> str:
        """"" at the training size, "_<H>x<W>" otherwise: the suffix agreement keys share."""
        return f"_{size_tag(self.size)}" if self.size else ""

    def setting(self, training_size: str) -> str:
        """How the report names where it was measured: "48x64", "32x32 bf16 (training size)"."""
        size = size_tag(self.size) if self.size else training_size
        return size + (f" {self.tag}" if self.tag else "") + ("" if self.size else " (training size)")


def parse_latency_key(key: str) -> LatencyKey | None:
    """The LatencyKey a median's key names; None for any other key (statistics, throughput, setup)."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "latency" or parts[-1] != "ms" or parts[1] not in DEVICES:
        return None
    device, middle = parts[1], parts[2:-1]
    size = None
    if middle and (match := _SIZE.fullmatch(middle[-1])):
        size = (int(match[1]), int(match[2]))
        middle = middle[:-1]
    tag = "_".join(middle)
    if tag and tag not in _TAGS[device]:
        return None
    return LatencyKey(device, tag, size)


def latency_keys(profile: dict, device: str | None = None) -> list[LatencyKey]:
    """Every latency median in a profile.json, training size first, then by area; eager before the other tags."""
    found = [k for k in map(parse_latency_key, profile) if k and (device is None or k.device == device)]
    return sorted(found, key=lambda k: (k.device, k.size is not None, (k.size or (0, 0))[0] * (k.size or (0, 0))[1],
                                        k.size or (0, 0), k.tag))


def throughput_key(device_tag: str) -> str:
    """throughput_<device>[_<precision>]_ips, at profile.batch_size and the training size."""
    return f"throughput_{device_tag}_ips"


def agreement_keys(key: LatencyKey) -> tuple[str, str]:
    """(max_abs_diff key, argmax_agreement key) of a CPU backend's output against eager fp32 at key's size."""
    return (f"max_abs_diff_cpu_{key.tag}{key.size_suffix}", f"argmax_agreement_cpu_{key.tag}{key.size_suffix}")


def setup_key(backend: str) -> str:
    """setup_<tag>_s: a backend's export or compilation time, summed over sizes."""
    return f"setup_{BACKEND_TAGS[backend]}_s"
