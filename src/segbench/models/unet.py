"""U-Net (Ronneberger et al., 2015): double 3x3 conv + BN + ReLU, max-pool down,
transposed-conv (or bilinear) up, skip concatenation. Four down/up levels.

Under task seg_depth a depth branch (see `multitask`) reads the encoder's skips through a
second up path (`depth_decoder: separate`) or the segmentation decoder's output (`shared`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .archs.unet import UNetOptions
from .common import UpPath
from .multitask import depth_branch
from .registry import register_model


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, mid: int | None = None) -> None:
        mid = mid or cout
        super().__init__(
            nn.Conv2d(cin, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    def __init__(self, cin: int, cout: int, bilinear: bool) -> None:
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            self.conv = DoubleConv(cin + cout, cout)
        else:
            self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(cin // 2 + cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        # Odd sizes: pooling floored, so the upsampled map can be a pixel short of the skip.
        dy, dx = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        if dy or dx:
            x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, x], dim=1))


def up_path(c: list[int], bilinear: bool) -> UpPath:
    return UpPath(Up(c[i + 1], c[i], bilinear) for i in reversed(range(4)))


class UNet(nn.Module):
    def __init__(self, num_classes: int, base_channels: int = 32, bilinear: bool = False, in_channels: int = 3,
                 depth_decoder: str | None = None) -> None:
        super().__init__()
        c = [base_channels * 2**i for i in range(5)]
        self.inc = DoubleConv(in_channels, c[0])
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), DoubleConv(c[i], c[i + 1])) for i in range(4))
        self.ups = up_path(c, bilinear)
        self.head = nn.Conv2d(c[0], num_classes, kernel_size=1)
        self.depth = depth_branch(depth_decoder, lambda: up_path(c, bilinear), c[0])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        # Inputs smaller than 16 px cannot be pooled 4 times: pad, then crop the outputs back.
        ph, pw = max(0, 16 - h), max(0, 16 - w)
        if ph or pw:
            x = F.pad(x, [0, pw, 0, ph])
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = self.ups(skips)
        logits = self.head(y)[..., :h, :w]
        if self.depth is None:
            return {"out": logits}
        return {"out": logits, "depth": self.depth(y, skips)[..., :h, :w]}


@register_model("unet", UNetOptions, tasks=("segmentation", "seg_depth"))
def build_unet(num_classes: int, opts: UNetOptions, task: str = "segmentation") -> nn.Module:
    return UNet(num_classes, base_channels=opts.base_channels, bilinear=opts.bilinear,
                depth_decoder=opts.depth_decoder if task == "seg_depth" else None)
