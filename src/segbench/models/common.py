"""Small helpers shared by model families (not an architecture: registers nothing)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the bottom and right edges so H and W are multiples of `multiple`.

    Networks that stride a fixed number of times and add or unpool exact shapes (ENet, ESNet,
    the no-skip baseline) need sizes that halve cleanly; padding then cropping the logits back
    with ``[..., :h, :w]`` lets them accept any input size, odd or tiny, without changing the
    architecture. Padding at the bottom/right keeps pixel (0, 0) aligned, so the crop is exact.
    """
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    return F.pad(x, [0, pw, 0, ph]) if ph or pw else x


class UpPath(nn.ModuleList):
    """A U-Net decoder: blocks `up(y, skip)` applied from the bottleneck up to the finest map.

    Takes the encoder's maps finest first, bottleneck last (and leaves that list as it is, so a
    second decoder, e.g. for depth, can read the same maps).
    """

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        y = skips[-1]
        for up, skip in zip(self, reversed(skips[:-1]), strict=True):
            y = up(y, skip)
        return y
