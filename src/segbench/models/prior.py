"""The per-pixel class prior: the floor every network on the benchmark has to beat.

It ignores the image and predicts, at each position, the class distribution that position
had in the training masks (road at the bottom, sky at the top, ...). Any model whose mIoU
is near this one has learned little beyond where classes usually are.

The prior lives in a buffer of log-probabilities on a fixed `grid_size` grid, so its shape
is known at build time and checkpoints load like any model's. `fit_from_masks` fills it by
counting; there are no trainable parameters, so the training loop fits it instead of
stepping an optimiser. `forward` resizes the grid to the input's H x W.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError
from .archs.prior_baseline import PriorOptions
from .registry import register_model


class PriorBaseline(nn.Module):
    def __init__(self, num_classes: int, grid_size: tuple[int, int] = (64, 64)) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.grid_size = tuple(grid_size)
        # Until fitted: uniform, so an unfitted prior is a valid (if useless) model.
        self.register_buffer("log_prior", torch.full((num_classes, *self.grid_size), -math.log(num_classes)))

    @torch.no_grad()
    def fit_from_masks(self, masks: torch.Tensor, ignore_index: int) -> None:
        """Set the prior from N x H x W class-index masks; `ignore_index` pixels do not count.

        Counts per class and pixel are resized to the grid (area-weighted when shrinking) and
        Laplace-smoothed (+1 per class), so no class ever gets probability 0 (log -inf).
        """
        if masks.dim() != 3:
            raise DataError(f"prior_baseline: masks must be N x H x W, got shape {tuple(masks.shape)}")
        masks = masks.long()
        labelled = masks != ignore_index
        bad = labelled & ((masks < 0) | (masks >= self.num_classes))
        if bad.any():
            raise DataError(
                f"prior_baseline: mask value {int(masks[bad][0])} is not a class; "
                f"expected 0..{self.num_classes - 1} or ignore_index {ignore_index}"
            )
        counts = torch.stack([(masks == c).sum(0) for c in range(self.num_classes)]).float()
        counts = F.interpolate(counts[None], size=self.grid_size, mode="bilinear", align_corners=False,
                               antialias=True)[0]
        probs = (counts + 1) / (counts.sum(0, keepdim=True) + self.num_classes)
        self.log_prior.copy_(probs.log())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Log-prior logits (N, num_classes, H, W) for x's N, H and W; x's pixels are unused."""
        prior = F.interpolate(self.log_prior[None], size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"out": prior.expand(x.shape[0], -1, -1, -1).contiguous()}


@register_model("prior_baseline", PriorOptions)
def build_prior_baseline(num_classes: int, opts: PriorOptions) -> nn.Module:
    return PriorBaseline(num_classes, opts.grid_size)
