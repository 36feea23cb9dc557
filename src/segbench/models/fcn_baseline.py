"""BaseConv: a plain encoder-decoder with no skip connections, the baseline U-Net is judged by.

The encoder is U-Net's (double 3x3 conv + BN + ReLU, then 2x2 max-pool, four times, widths
doubling from `base_channels`); the decoder undoes each pool with a 2x2/2 transposed conv
followed by a double conv, halving the width. Everything the decoder knows must pass through
the H/16 bottleneck, so comparing with `unet` at the same `base_channels` isolates what the
skips contribute (fine boundaries, small objects).
"""
from __future__ import annotations

import torch
from torch import nn

from .archs.fcn_baseline import BaseConvOptions
from .common import pad_to_multiple
from .registry import register_model
from .unet import DoubleConv


class UpNoSkip(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            DoubleConv(cout, cout),
        )


class BaseConv(nn.Module):
    def __init__(self, num_classes: int, base_channels: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        c = [base_channels * 2**i for i in range(5)]
        self.encoder = nn.Sequential(
            DoubleConv(in_channels, c[0]),
            *(nn.Sequential(nn.MaxPool2d(2), DoubleConv(c[i], c[i + 1])) for i in range(4)),
        )
        self.decoder = nn.Sequential(*(UpNoSkip(c[i + 1], c[i]) for i in reversed(range(4))))
        self.head = nn.Conv2d(c[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, 16)  # four exact halvings, undone by four exact doublings
        return {"out": self.head(self.decoder(self.encoder(x)))[..., :h, :w]}


@register_model("fcn_baseline", BaseConvOptions)
def build_fcn_baseline(num_classes: int, opts: BaseConvOptions) -> nn.Module:
    return BaseConv(num_classes, base_channels=opts.base_channels)
