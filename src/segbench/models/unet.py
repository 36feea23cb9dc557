"""U-Net (Ronneberger et al., 2015): double 3x3 conv + BN + ReLU, max-pool down,
transposed-conv (or bilinear) up, skip concatenation. Four down/up levels."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..schema import option
from . import register_model


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


class UNet(nn.Module):
    def __init__(self, num_classes: int, base_channels: int = 32, bilinear: bool = False, in_channels: int = 3) -> None:
        super().__init__()
        c = [base_channels * 2**i for i in range(5)]
        self.inc = DoubleConv(in_channels, c[0])
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), DoubleConv(c[i], c[i + 1])) for i in range(4))
        self.ups = nn.ModuleList(Up(c[i + 1], c[i], bilinear) for i in reversed(range(4)))
        self.head = nn.Conv2d(c[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Inputs smaller than 16 px cannot be pooled 4 times: pad, then crop the logits back.
        ph, pw = max(0, 16 - h), max(0, 16 - w)
        if ph or pw:
            x = F.pad(x, [0, pw, 0, ph])
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return self.head(y)[..., :h, :w]


@dataclass(frozen=True)
class UNetOptions:
    base_channels: int = option(32, min=1)
    bilinear: bool = False


@register_model("unet", UNetOptions)
def build_unet(num_classes: int, opts: UNetOptions) -> nn.Module:
    return UNet(num_classes, base_channels=opts.base_channels, bilinear=opts.bilinear)
