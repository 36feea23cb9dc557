"""Optimiser and learning-rate scheduler registries."""
from __future__ import annotations

from typing import Callable

import torch

from .registry import Registry

OPTIMIZERS: Registry[Callable] = Registry("optimizer")
SCHEDULERS: Registry[Callable] = Registry("scheduler")

OPTIMIZERS.add("sgd", lambda params, cfg: torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay))
OPTIMIZERS.add("adam", lambda params, cfg: torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay))
OPTIMIZERS.add("adamw", lambda params, cfg: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay))

# Schedulers step once per epoch; `epochs` is the planned number of epochs.
SCHEDULERS.add("none", lambda opt, epochs: torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0))
SCHEDULERS.add("cosine", lambda opt, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs)))
SCHEDULERS.add("step", lambda opt, epochs: torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1))


def build_optimizer(params, cfg) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg.optimizer, "train.optimizer")(params, cfg)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg) -> torch.optim.lr_scheduler.LRScheduler:
    return SCHEDULERS.get(cfg.scheduler, "train.scheduler")(optimizer, cfg.epochs)
