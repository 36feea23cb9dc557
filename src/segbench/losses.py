"""Loss registry. Every loss takes (logits N x C x H x W, target N x H x W long) and honours
the ignore label: ignored pixels contribute nothing to the value or the gradient."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Registry

LossFactory = Callable[..., nn.Module]
LOSSES: Registry[LossFactory] = Registry("loss")


class CrossEntropy(nn.Module):
    def __init__(self, ignore_index: int = 255, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, weight=self.weight, ignore_index=self.ignore_index)


class Dice(nn.Module):
    """Soft multi-class Dice loss, 1 - mean over classes of 2|P.T| / (|P| + |T|).

    Classes absent from the batch's truth still count (their ideal prediction is zero mass),
    smoothed so an empty class with an empty prediction scores 1.
    """

    def __init__(self, ignore_index: int = 255, smooth: float = 1.0) -> None:
        super().__init__()
        self.ignore_index, self.smooth = ignore_index, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        num_classes = logits.shape[1]
        valid = (target != self.ignore_index).unsqueeze(1)
        probs = logits.float().softmax(1) * valid
        onehot = F.one_hot(torch.where(valid.squeeze(1), target, 0), num_classes).permute(0, 3, 1, 2) * valid
        dims = (0, 2, 3)
        inter = (probs * onehot).sum(dims)
        total = probs.sum(dims) + onehot.sum(dims)
        return 1 - ((2 * inter + self.smooth) / (total + self.smooth)).mean()


class CEDice(nn.Module):
    def __init__(self, ignore_index: int = 255, beta: float = 0.5) -> None:
        super().__init__()
        self.ce, self.dice, self.beta = CrossEntropy(ignore_index), Dice(ignore_index), beta

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.beta * self.ce(logits, target) + (1 - self.beta) * self.dice(logits, target)


LOSSES.add("cross_entropy", CrossEntropy)
LOSSES.add("dice", Dice)
LOSSES.add("ce_dice", CEDice)


def build_loss(name: str, ignore_index: int = 255, **kwargs) -> nn.Module:
    return LOSSES.get(name, "loss")(ignore_index=ignore_index, **kwargs)
