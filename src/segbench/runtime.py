"""Where and how a stage computes: device, precision, threads, seeding.

One resolver for every stage (train, evaluate, profile, the torchrun launcher), so `device: auto`
means the same thing everywhere and an unavailable device is the same one-line error.
"""
from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from .environment import cpu_features
from .errors import ResourceError


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """`name` is auto | cpu | cuda (validated by the config); auto: CUDA when there is a GPU, else the
    CPU. `local_rank`: this process's GPU under torchrun."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ResourceError("device: cuda requested but no CUDA device is available; use device: auto or cpu")
    device = torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")
    if device.type == "cuda" and local_rank is not None:
        device = torch.device("cuda", local_rank)
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a generator for the DataLoader seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_threads(threads: int, local_processes: int = 1) -> None:
    """`threads` when given; with several processes on this machine, the cores shared out among
    them (torchrun would otherwise leave each process a single thread)."""
    if threads:
        torch.set_num_threads(threads)
    elif local_processes > 1:
        torch.set_num_threads(max(1, usable_cores() // local_processes))


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs: under autocast to `dtype`, or in float32 when dtype is None."""

    device_type: str
    dtype: torch.dtype | None = None

    @property
    def name(self) -> str:
        """How train.json records it: off | bf16 | fp16."""
        return {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none."""
        return torch.amp.GradScaler(self.device_type) if self.dtype == torch.float16 else None


def _autocast_available(device_type: str) -> bool:
    check = getattr(torch.amp, "is_autocast_available", None)
    return True if check is None else bool(check(device_type))


# /proc/cpuinfo flags of CPUs that compute bf16 natively (elsewhere autocast emulates it, slower than fp32)
NATIVE_BF16_CPU_FEATURES = ("avx512_bf16", "amx_bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 runs natively on `device`: a GPU that supports it, a CPU with NATIVE_BF16_CPU_FEATURES."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return _autocast_available(device.type) and bool(set(cpu_features()) & set(NATIVE_BF16_CPU_FEATURES))


def resolve_precision(amp: str, device: torch.device) -> Precision:
    """`amp` (off | auto | bf16 | fp16, validated by the config) on `device`, or why it cannot run
    there; auto is bf16 where `native_bf16`, else off."""
    if amp == "auto":
        amp = "bf16" if native_bf16(device) else "off"
    if amp == "off":
        return Precision(device.type)
    if amp == "fp16":
        if device.type != "cuda":
            raise ResourceError(f"amp: fp16 needs CUDA but training runs on {device.type}; use amp: bf16 or off")
        return Precision("cuda", torch.float16)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ResourceError("amp: bf16 is not supported by this GPU; use amp: fp16 or off")
    if not _autocast_available(device.type):
        raise ResourceError(f"amp: this torch has no bf16 autocast on {device.type}; use amp: off")
    return Precision(device.type, torch.bfloat16)
