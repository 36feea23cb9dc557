"""Optimiser and learning-rate scheduler registries.

A scheduler factory takes (optimizer, cfg, steps_per_epoch) and returns an `LRSchedule`, which
tells the training loop when to step it:
  none, step, cosine   once per epoch
  onecycle             once per optimiser step (per batch), over epochs * steps_per_epoch steps,
                       peaking at train.lr (OneCycleLR's default warm-up of 30%, cosine anneal)
  plateau              once per epoch with the validation mIoU (ReduceLROnPlateau, mode max):
                       lr x 0.1 after 2 epochs without improvement
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.optim import lr_scheduler

from .registry import Registry

OPTIMIZERS: Registry[Callable] = Registry("optimizer")
SCHEDULERS: Registry[Callable] = Registry("scheduler")

OPTIMIZERS.add("sgd", lambda params, cfg: torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                                           weight_decay=cfg.weight_decay))
OPTIMIZERS.add("adam", lambda params, cfg: torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay))
OPTIMIZERS.add("adamw", lambda params, cfg: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay))

PLATEAU_FACTOR, PLATEAU_PATIENCE = 0.1, 2


@dataclass
class LRSchedule:
    """A torch scheduler plus when the training loop steps it."""

    scheduler: lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau
    per_batch: bool = False  # step after every optimiser step instead of once per epoch
    on_metric: bool = False  # step once per epoch with the validation mIoU

    def after_batch(self) -> None:
        if self.per_batch:
            self.scheduler.step()

    def after_epoch(self, val_miou: float) -> None:
        if self.on_metric:
            self.scheduler.step(val_miou)
        elif not self.per_batch:
            self.scheduler.step()


def _onecycle(opt, cfg, steps_per_epoch: int) -> LRSchedule:
    total = max(2, cfg.epochs * max(1, steps_per_epoch))  # OneCycleLR needs >= 2 steps
    # Momentum (Adam: beta1) cycles 0.85-0.95 as in the recipe, but plain SGD stays momentum-free.
    cycle = not (cfg.optimizer == "sgd" and cfg.momentum == 0)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, cycle_momentum=cycle)
    return LRSchedule(sched, per_batch=True)


def _plateau(opt, cfg, steps_per_epoch: int) -> LRSchedule:
    sched = lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE)
    return LRSchedule(sched, on_metric=True)


SCHEDULERS.add("none", lambda opt, cfg, steps: LRSchedule(lr_scheduler.LambdaLR(opt, lambda _: 1.0)))
SCHEDULERS.add("cosine", lambda opt, cfg, steps: LRSchedule(lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))))
SCHEDULERS.add("step", lambda opt, cfg, steps: LRSchedule(lr_scheduler.StepLR(opt, step_size=max(1, cfg.epochs // 3), gamma=0.1)))
SCHEDULERS.add("onecycle", _onecycle)
SCHEDULERS.add("plateau", _plateau)


def build_optimizer(params, cfg) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg.optimizer, "train.optimizer")(params, cfg)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg, steps_per_epoch: int = 1) -> LRSchedule:
    return SCHEDULERS.get(cfg.scheduler, "train.scheduler")(optimizer, cfg, steps_per_epoch)
