"""Loss registry. Every loss takes (logits N x C x H x W, target N x H x W long) and honours
the ignore label: ignored pixels contribute nothing to the value or the gradient.

Losses compute in float32 whatever the logits' dtype, so they are safe under autocast.

Multi-class: cross_entropy, weighted_ce (class weights from the training split's pixel counts,
see `class_weights_from_manifest`), focal, dice, jaccard (soft IoU), ce_dice.
Binary masks (target 0 = background, 1 = foreground): bce, binary_dice. They accept either a
1-channel logit (the foreground logit) or the 2-channel logit every segbench model produces for
`num_classes: 2`; for the latter the foreground logit is `logits[:, 1] - logits[:, 0]`, so that
sigmoid of it equals the softmax foreground probability and argmax prediction stays consistent.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError, DataError
from .registry import Registry


@dataclass(frozen=True)
class LossOptions:
    """Everything a loss factory may read; each loss takes only what it needs."""

    ignore_index: int = 255
    beta: float = 0.5  # ce_dice: beta * CE + (1 - beta) * Dice
    focal_gamma: float = 2.0
    class_weights: torch.Tensor | None = None  # weighted_ce: one weight per class


LossFactory = Callable[[LossOptions], nn.Module]
LOSSES: Registry[LossFactory] = Registry("loss")


class CrossEntropy(nn.Module):
    def __init__(self, ignore_index: int = 255, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, weight=self.weight, ignore_index=self.ignore_index)


class Focal(nn.Module):
    """Focal loss (Lin et al. 2017): mean over valid pixels of -(1 - p_t)^gamma * log p_t.

    gamma = 0 is plain cross-entropy; larger gamma down-weights pixels already classified well.
    """

    def __init__(self, ignore_index: int = 255, gamma: float = 2.0) -> None:
        super().__init__()
        self.ignore_index, self.gamma = ignore_index, gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != self.ignore_index
        log_p = logits.float().log_softmax(1)
        log_pt = log_p.gather(1, torch.where(valid, target, 0).unsqueeze(1)).squeeze(1)
        pt = log_pt.exp()
        # clamped away from 0: for gamma < 1 the power's gradient at a saturated pixel is infinite
        loss = -((1 - pt).clamp(min=1e-12) ** self.gamma) * log_pt if self.gamma else -log_pt
        count = valid.sum()
        return (loss * valid).sum() / count.clamp(min=1)


def _soft_counts(logits: torch.Tensor, target: torch.Tensor,
                 ignore_index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class soft intersection, predicted mass and true mass over the valid pixels of the batch."""
    num_classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)
    probs = logits.float().softmax(1) * valid
    onehot = F.one_hot(torch.where(valid.squeeze(1), target, 0), num_classes).permute(0, 3, 1, 2) * valid
    dims = (0, 2, 3)
    return (probs * onehot).sum(dims), probs.sum(dims), onehot.sum(dims).float()


class Dice(nn.Module):
    """Soft multi-class Dice loss, 1 - mean over classes of (2|P.T| + s) / (|P| + |T| + s).

    Classes absent from the batch's truth still count (their ideal prediction is zero mass),
    smoothed so an empty class with an empty prediction scores 1.
    """

    def __init__(self, ignore_index: int = 255, smooth: float = 1.0) -> None:
        super().__init__()
        self.ignore_index, self.smooth = ignore_index, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        inter, pred, true = _soft_counts(logits, target, self.ignore_index)
        return 1 - ((2 * inter + self.smooth) / (pred + true + self.smooth)).mean()


class Jaccard(nn.Module):
    """Soft IoU loss, 1 - mean over classes of (|P.T| + s) / (|P| + |T| - |P.T| + s).

    Same conventions as Dice: every class counts, an absent class predicted empty scores 1.
    """

    def __init__(self, ignore_index: int = 255, smooth: float = 1.0) -> None:
        super().__init__()
        self.ignore_index, self.smooth = ignore_index, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        inter, pred, true = _soft_counts(logits, target, self.ignore_index)
        return 1 - ((inter + self.smooth) / (pred + true - inter + self.smooth)).mean()


class CEDice(nn.Module):
    """beta * cross-entropy + (1 - beta) * Dice; beta = 1 is CE, beta = 0 is Dice."""

    def __init__(self, ignore_index: int = 255, beta: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= beta <= 1.0:
            raise ConfigError(f"train.beta: {beta!r} is out of range; expected a number >= 0 and <= 1")
        self.ce, self.dice, self.beta = CrossEntropy(ignore_index), Dice(ignore_index), beta

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.beta == 1.0:
            return self.ce(logits, target)
        if self.beta == 0.0:
            return self.dice(logits, target)
        return self.beta * self.ce(logits, target) + (1 - self.beta) * self.dice(logits, target)


def binary_logit(logits: torch.Tensor, loss_name: str) -> torch.Tensor:
    """The foreground logit N x H x W from a 1-channel or a 2-channel (background, foreground) logit."""
    channels = logits.shape[1]
    if channels == 1:
        return logits[:, 0].float()
    if channels == 2:
        return (logits[:, 1] - logits[:, 0]).float()
    raise ConfigError(f"train.loss: {loss_name} is for binary masks (num_classes 2, or a 1-channel logit); "
                      f"this model outputs {channels} classes: use cross_entropy, dice, focal, ...")


def _binary_target(target: torch.Tensor, ignore_index: int, loss_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    valid = target != ignore_index
    if bool(((target > 1) & valid).any()):
        raise ConfigError(f"train.loss: {loss_name} needs binary masks (0, 1 or {ignore_index} for ignore); "
                          f"found class {int(target[(target > 1) & valid][0])}")
    return (target == 1).float(), valid


class BinaryCrossEntropy(nn.Module):
    """Sigmoid binary cross-entropy on the foreground logit, mean over valid pixels."""

    def __init__(self, ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z = binary_logit(logits, "bce")
        truth, valid = _binary_target(target, self.ignore_index, "bce")
        loss = F.binary_cross_entropy_with_logits(z, truth, reduction="none")
        return (loss * valid).sum() / valid.sum().clamp(min=1)


class BinaryDice(nn.Module):
    """Soft Dice of the foreground only: 1 - (2 sum(p t) + s) / (sum(p) + sum(t) + s), p = sigmoid(logit)."""

    def __init__(self, ignore_index: int = 255, smooth: float = 1.0) -> None:
        super().__init__()
        self.ignore_index, self.smooth = ignore_index, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = binary_logit(logits, "binary_dice").sigmoid()
        truth, valid = _binary_target(target, self.ignore_index, "binary_dice")
        p = p * valid
        truth = truth * valid
        return 1 - (2 * (p * truth).sum() + self.smooth) / (p.sum() + truth.sum() + self.smooth)


def _weighted_ce(opts: LossOptions) -> nn.Module:
    if opts.class_weights is None:
        raise ConfigError("train.loss: weighted_ce needs class weights; compute them with "
                          "segbench.losses.class_weights_from_manifest(manifest, 'inverse' | 'median')")
    return CrossEntropy(opts.ignore_index, weight=opts.class_weights)


LOSSES.add("cross_entropy", lambda o: CrossEntropy(o.ignore_index))
LOSSES.add("weighted_ce", _weighted_ce)
LOSSES.add("focal", lambda o: Focal(o.ignore_index, o.focal_gamma))
LOSSES.add("dice", lambda o: Dice(o.ignore_index))
LOSSES.add("jaccard", lambda o: Jaccard(o.ignore_index))
LOSSES.add("ce_dice", lambda o: CEDice(o.ignore_index, o.beta))
LOSSES.add("bce", lambda o: BinaryCrossEntropy(o.ignore_index))
LOSSES.add("binary_dice", lambda o: BinaryDice(o.ignore_index))

CLASS_WEIGHTINGS = ("inverse", "median")


def class_weights_from_manifest(manifest: dict, method: str = "inverse") -> torch.Tensor:
    """One weight per class (in `class_names` order) from the training split's pixel counts.

    With f_c = pixels of class c / all labelled pixels, over the classes present (K of them):
      inverse: w_c = 1 / (K f_c)        (a perfectly balanced split gives every class 1)
      median:  w_c = median(f) / f_c    (median-frequency balancing, Eigen & Fergus 2015; the
               frequency is over the whole split, as the manifest keeps no per-image counts)
    A class with no training pixel gets the largest weight of the present classes: it never
    appears as a training target, and a finite weight keeps the validation loss finite.
    """
    if method not in CLASS_WEIGHTINGS:
        raise ConfigError(f"train.class_weighting: unknown value {method!r}; valid: {', '.join(CLASS_WEIGHTINGS)}")
    names, pixels = manifest.get("class_names"), manifest.get("class_pixels")
    if not names or not isinstance(pixels, dict):
        raise DataError("manifest.json: no class_pixels; re-run preprocess to compute class weights")
    counts = np.array([float(pixels.get(name, 0)) for name in names])
    present = counts > 0
    if not present.any():
        raise DataError("manifest.json: class_pixels are all zero; the training split has no labelled pixel")
    freq = counts / counts.sum()
    if method == "inverse":
        weights = np.where(present, 1.0 / (present.sum() * np.where(present, freq, 1.0)), 0.0)
    else:
        weights = np.where(present, np.median(freq[present]) / np.where(present, freq, 1.0), 0.0)
    weights[~present] = weights[present].max()
    return torch.tensor(weights, dtype=torch.float32)


def build_loss(name: str, ignore_index: int = 255, *, beta: float = 0.5, focal_gamma: float = 2.0,
               class_weights: torch.Tensor | None = None) -> nn.Module:
    """The loss registered as `name`; settings a loss does not use are ignored."""
    opts = LossOptions(ignore_index=ignore_index, beta=beta, focal_gamma=focal_gamma, class_weights=class_weights)
    return LOSSES.get(name, "train.loss")(opts)


# --- depth (task seg_depth) ----------------------------------------------------------------------
# Depth losses take (pred N x 1 x H x W or N x H x W, target N x H x W) in metres and average over
# the valid pixels (target > 0; 0 marks unknown depth). Both sides are divided by `scale` first
# (training uses the training split's depth standard deviation), so a loss value and the weight
# `train.depth_weight` mean the same on any dataset, whatever its depth range; huber's `delta` is in
# those units too.

DEPTH_LOSSES: Registry[Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = Registry("depth loss")
DEPTH_LOSSES.add("l1", lambda p, t, delta: F.l1_loss(p, t))
DEPTH_LOSSES.add("huber", lambda p, t, delta: F.huber_loss(p, t, delta=delta))  # smooth-L1 scaled by delta
DEPTH_LOSSES.add("mse", lambda p, t, delta: F.mse_loss(p, t))


class DepthLoss(nn.Module):
    def __init__(self, name: str, scale: float = 1.0, delta: float = 1.0) -> None:
        super().__init__()
        self.fn = DEPTH_LOSSES.get(name, "train.depth_loss")
        if not scale > 0:
            raise DataError(f"depth scale {scale!r}: expected > 0 (the training split's depth std; re-run preprocess)")
        self.name, self.scale, self.delta = name, float(scale), delta

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred = pred.float().reshape(target.shape)
        valid = target > 0
        if not valid.any():  # a batch without known depth: zero, yet still attached to the graph
            return pred.sum() * 0.0
        return self.fn(pred[valid] / self.scale, target[valid].float() / self.scale, self.delta)


@dataclass(frozen=True)
class Term:
    """One named term of a Criterion: `loss(outputs[output], targets[target])`, times `weight`."""

    loss: nn.Module
    output: str = "out"  # the model output it reads
    target: str = "mask"  # the batch target it compares with
    weight: float = 1.0


class Criterion(nn.Module):
    """The training objective: a weighted sum of named terms.

    `criterion(outputs, targets)` -> `{"loss": total, "<term>": unweighted value, ...}`: the total
    to back-propagate and each term for the logs (a task names them: "mask", "depth").
    """

    def __init__(self, terms: dict[str, Term]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("a Criterion needs at least one term")
        self.weights = {name: term.weight for name, term in terms.items()}
        self.routes = {name: (term.output, term.target) for name, term in terms.items()}
        self.losses = nn.ModuleDict({name: term.loss for name, term in terms.items()})

    def forward(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        values = {name: self.losses[name](outputs[out], targets[target]) for name, (out, target) in self.routes.items()}
        total = None
        for name, value in values.items():
            weighted = value if self.weights[name] == 1.0 else self.weights[name] * value
            total = weighted if total is None else total + weighted
        return {"loss": total, **values}
