"""The depth side of `task: seg_depth`: a per-pixel depth head and the branch that feeds it.

A depth-capable model (unet, unet_lean, resnet_unet) adds, next to its segmentation head,
either a second decoder of its own structure ending in a `DepthHead` (`depth_decoder:
separate`: the encoder is shared, the decoders are not) or just a `DepthHead` on the
segmentation decoder's final features (`depth_decoder: shared`).

The head predicts a normalised residual z and returns `mean + std * z` in metres. `mean` and
`std` are buffers (saved in the state_dict, moved by `.to()`), set once from the training
split by `set_depth_statistics`: the head then starts near the mean depth and its 1x1 conv
learns values of order one whatever the depth range of the dataset.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from ..errors import DataError
from .options import DEPTH_DECODERS


class DepthHead(nn.Module):
    """1x1 conv to one channel, then `mean + std * z`: (N, C, H, W) -> (N, 1, H, W) depth."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, kernel_size=1)
        self.register_buffer("mean", torch.tensor(0.0))
        self.register_buffer("std", torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In the buffers' dtype (float32 unless the whole model was cast): under autocast the conv
        # gives half precision, and a 0-dim buffer would not promote it back.
        z = self.conv(x).to(self.mean.dtype)
        return self.mean + self.std * z


class DepthBranch(nn.Module):
    """A DepthHead fed by its own decoder, or (decoder None) by the segmentation decoder's output."""

    def __init__(self, decoder: nn.Module | None, width: int) -> None:
        super().__init__()
        self.decoder = decoder
        self.head = DepthHead(width)

    def forward(self, shared: torch.Tensor, *decoder_inputs: Any) -> torch.Tensor:
        return self.head(shared if self.decoder is None else self.decoder(*decoder_inputs))


def depth_branch(depth_decoder: str | None, make_decoder: Callable[[], nn.Module], width: int) -> DepthBranch | None:
    """The depth branch a model builds for `depth_decoder` (None: segmentation only, no branch).

    Built after the segmentation modules, so a segmentation-only model draws the same random
    numbers (and gets the same weights for a seed) as before depth existed.
    """
    if depth_decoder is None:
        return None
    if depth_decoder not in DEPTH_DECODERS:
        raise ValueError(f"depth_decoder: {depth_decoder!r}; expected one of {DEPTH_DECODERS}")
    return DepthBranch(make_decoder() if depth_decoder == "separate" else None, width)


def set_depth_statistics(model: nn.Module, mean: float, std: float) -> None:
    """Set `mean` and `std` (metres) on every DepthHead in `model`; a model without one is left as is."""
    if not math.isfinite(mean) or not math.isfinite(std) or std <= 0:
        raise DataError(f"depth statistics: mean {mean!r}, std {std!r} are not valid; expected finite numbers "
                        "with std > 0 (is the training split's depth constant or empty?)")
    with torch.no_grad():
        for head in (m for m in model.modules() if isinstance(m, DepthHead)):
            head.mean.fill_(mean)
            head.std.fill_(std)
