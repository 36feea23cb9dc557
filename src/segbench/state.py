"""The state of one training run: progress, early stopping, the random streams, the resume file.

`Progress` is the single copy of what a run has done so far (epochs, the per-epoch history, the
best epoch and its weights, the early-stopping counter, throughput counters). After every epoch
the whole state goes atomically to a resume file; a run killed part-way continues from it and
ends bit-identical to an uninterrupted one on CPU.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import load_resume, save_resume
from .distributed import DistContext

# A run whose last quarter of epochs raised its best validation score by less than this (relative) has plateaued.
PLATEAU_TOLERANCE = 0.01


@dataclass
class Progress:
    """A run so far: what the final metrics and a resume need besides the model and optimiser."""

    epoch: int = 0  # epochs completed
    history: list[dict] = field(default_factory=list)  # one row per epoch: train/val losses, val scores, lr
    best_epoch: int = 0  # 0: none yet
    best_state: dict | None = None  # the weights at best_epoch (CPU)
    stale: int = 0  # epochs since the best one (early stopping)
    stopped_early: bool = False
    images: int = 0
    step_time: float = 0.0
    data_wait: float = 0.0
    elapsed: float = 0.0  # wall seconds of training, over every attempt of this run

    @property
    def best(self) -> dict:
        """The history row of the best epoch ({} before the first)."""
        return self.history[self.best_epoch - 1] if self.best_epoch else {}

    def improves(self, row: dict, select: str, higher_is_better: bool) -> bool:
        """Whether `row` beats the best epoch on `val_<select>`; a NaN score never does."""
        score = row[f"val_{select}"]
        if not math.isfinite(score):
            return False
        if not self.best_epoch:
            return True
        best = self.best[f"val_{select}"]
        return score > best if higher_is_better else score < best

    def record(self, row: dict, improved: bool, best_state, patience: int, last_epoch: int) -> None:
        """Add an epoch's row; keep `best_state` when it improved; stop after `patience` epochs
        (0: never) without improvement, unless this was the last epoch anyway."""
        self.history.append(row)
        self.epoch = row["epoch"]
        if improved:
            self.best_epoch, self.best_state, self.stale = self.epoch, best_state, 0
        else:
            self.stale += 1
        self.stopped_early = patience > 0 and self.stale >= patience and self.epoch < last_epoch

    def convergence(self, select: str, higher_is_better: bool) -> dict:
        """train.json's plateau test (docs/measurement.md "Converged or not"): the run `converged` when the best
        `val_<select>` of its last quarter of epochs (at least 2) improves on the best before them by
        less than PLATEAU_TOLERANCE, relative; early stopping found a plateau by definition; a run too
        short to have epochs before its last quarter cannot show one. `late_gain`: that relative
        improvement (null when it cannot be computed)."""
        window = max(2, math.ceil(self.epoch / 4))
        scores = [row.get(f"val_{select}", math.nan) for row in self.history]
        early, late = [s for s in scores[:-window] if math.isfinite(s)], [s for s in scores[-window:] if math.isfinite(s)]
        gain = math.nan
        if early and late:
            before, after = (max(early), max(late)) if higher_is_better else (min(early), min(late))
            gain = ((after - before) if higher_is_better else (before - after)) / max(abs(before), 1e-12)
        converged = self.stopped_early or (math.isfinite(gain) and gain < PLATEAU_TOLERANCE)
        return {"converged": bool(converged), "late_gain": None if math.isnan(gain) else gain, "late_epochs": window}

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def rng_state(loader_generator: torch.Generator) -> dict:
    """Every random stream training draws from, as tensors and plain values (weights_only loads it)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(), "loader": loader_generator.get_state(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                       "cached_gaussian": float(cached)},
             "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, loader_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    loader_generator.set_state(state["loader"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"], np_state["has_gauss"],
                         np_state["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def cpu_state(model: nn.Module, copy: bool = True) -> dict:
    """The weights on the CPU; `copy`: detached from the model's storage (which training changes)."""
    return {k: (v.detach().cpu().clone() if copy else v.detach().cpu()) for k, v in model.state_dict().items()}


@dataclass
class Optimisation:
    """What a training step changes besides the weights; saved and restored with them."""

    optimizer: torch.optim.Optimizer
    schedule: object  # segbench.optim.LRSchedule
    scaler: torch.amp.GradScaler | None


@dataclass(frozen=True)
class ResumeFile:
    """The resume checkpoint of one run: only a file with this run's fingerprint is ever used."""

    path: Path
    fingerprint: str
    name: str  # the model, for messages

    def load(self, dist: DistContext) -> dict | None:
        """Rank 0 reads it and hands it to every rank; None: start fresh (and say why)."""
        saved, note = load_resume(self.path, self.fingerprint) if dist.is_main else (None, "")
        if dist.is_main:
            if saved is not None:
                print(f"{self.name}: resuming from {self.path} after epoch {saved['progress']['epoch']}", flush=True)
            elif note:
                print(f"{self.name}: {note}", flush=True)
        return dist.broadcast_object(saved)

    def save(self, model: nn.Module, opt: Optimisation, generator: torch.Generator, progress: Progress) -> None:
        saved_progress = progress.as_dict()
        if progress.best_epoch == progress.epoch:  # the best weights are the model's: store them once
            saved_progress["best_state"] = None
        save_resume(self.path, self.fingerprint, {
            "model": cpu_state(model, copy=False), "optimizer": opt.optimizer.state_dict(),
            "scheduler": opt.schedule.scheduler.state_dict(),
            "scaler": opt.scaler.state_dict() if opt.scaler is not None else None,
            "rng": rng_state(generator), "progress": saved_progress})


def restore(saved: dict, model: nn.Module, opt: Optimisation, generator: torch.Generator) -> Progress:
    """Put a resume file's state back into the model, optimiser and random streams."""
    model.load_state_dict(saved["model"])
    opt.optimizer.load_state_dict(saved["optimizer"])
    opt.schedule.scheduler.load_state_dict(saved["scheduler"])
    if opt.scaler is not None and saved.get("scaler"):
        opt.scaler.load_state_dict(saved["scaler"])
    restore_rng(saved["rng"], generator)
    progress = Progress(**saved["progress"])
    if progress.best_state is None and progress.best_epoch == progress.epoch:
        progress.best_state = saved["model"]
    return progress
