"""A lean U-Net (~0.52 M parameters at the default width, vs 7.8 M for `unet`).

Same shape as the U-Net of `unet.py` (four max-pool levels, skip concatenation, widths
doubling per level), made cheap in three ways:

- depthwise-separable convs: a 3x3 depthwise conv then a 1x1 pointwise conv (then BN + ReLU,
  as Xception) costs 9*cin + cin*cout weights instead of 9*cin*cout, about 8x fewer;
- a narrower base width (24 instead of 32, so widths 24, 48, 96, 192, 384);
- bilinear upsampling instead of transposed convs: the decoder learns only in its convs.

The first conv sees just 3 channels, where a depthwise conv would be nearly free and too
weak, so it stays a full 3x3 conv. Upsampling goes to the skip's exact size and pooling
uses ceil mode, so any input size works without padding.

Under task seg_depth a depth branch (see `multitask`) reads the encoder's skips through a
second up path (`depth_decoder: separate`) or the segmentation decoder's output (`shared`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .archs.unet_lean import LeanUNetOptions
from .common import UpPath
from .multitask import depth_branch
from .registry import register_model


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 + pointwise 1x1, then BN + ReLU (no bias: BN follows)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )


class SeparableDoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(SeparableConv(cin, cout), SeparableConv(cout, cout))


class LeanUp(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = SeparableDoubleConv(cin + cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([skip, x], dim=1))


def up_path(c: list[int]) -> UpPath:
    return UpPath(LeanUp(c[i + 1], c[i]) for i in reversed(range(4)))


class LeanUNet(nn.Module):
    def __init__(self, num_classes: int, base_channels: int = 24, in_channels: int = 3,
                 depth_decoder: str | None = None) -> None:
        super().__init__()
        c = [base_channels * 2**i for i in range(5)]
        self.inc = nn.Sequential(
            nn.Conv2d(in_channels, c[0], 3, padding=1, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True),
            SeparableConv(c[0], c[0]),
        )
        # ceil_mode: a 1-pixel map pools to 1 pixel, never to 0.
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), SeparableDoubleConv(c[i], c[i + 1])) for i in range(4)
        )
        self.ups = up_path(c)
        self.head = nn.Conv2d(c[0], num_classes, kernel_size=1)
        self.depth = depth_branch(depth_decoder, lambda: up_path(c), c[0])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = self.ups(skips)
        logits = self.head(y)
        return {"out": logits} if self.depth is None else {"out": logits, "depth": self.depth(y, skips)}


@register_model("unet_lean", LeanUNetOptions, tasks=("segmentation", "seg_depth"))
def build_unet_lean(num_classes: int, opts: LeanUNetOptions, task: str = "segmentation") -> nn.Module:
    return LeanUNet(num_classes, base_channels=opts.base_channels,
                    depth_decoder=opts.depth_decoder if task == "seg_depth" else None)
