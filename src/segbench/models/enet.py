"""ENet (Paszke et al., 2016): real-time segmentation from cheap ResNet-style bottlenecks.

Layout (paper, Table 1), for an H x W input:

    initial     3x3/2 conv (13 maps) concatenated with a 2x2 max-pool of the image -> 16 @ H/2
    stage 1     downsampling bottleneck -> 64 @ H/4, then 4 regular bottlenecks
    stage 2     downsampling bottleneck -> 128 @ H/8, then regular, dilated 2, asymmetric 5,
                dilated 4, regular, dilated 8, asymmetric 5, dilated 16
    stage 3     stage 2 without its downsampling bottleneck
    stage 4     upsampling bottleneck -> 64 @ H/4 (unpools with stage 2's indices), 2 regular
    stage 5     upsampling bottleneck -> 16 @ H/2 (unpools with stage 1's indices), 1 regular
    fullconv    3x3/2 transposed conv -> num_classes @ H

A bottleneck is a 1x1 projection (2x2/2 when downsampling) -> main conv (3x3, dilated 3x3,
5x1 + 1x5, or 2x2/2 transposed when upsampling) -> 1x1 expansion, each followed by BN and an
activation, then spatial dropout (p 0.01 in stage 1, 0.1 after) and a sum with the shortcut.
The shortcut of a downsampling bottleneck is a max-pool whose indices are kept, zero-padded
to the new width; the decoder's shortcut is a 1x1 conv + BN and max-unpooling with those
indices, so the decoder puts detail back where the encoder found it. The encoder uses PReLU,
the decoder ReLU (the paper found the decoder gains nothing from learned slopes).

Choices the paper leaves open follow the widely used PyTorch port, which gives 350,076
parameters for 8 classes: no conv has a bias (the paper drops them in the projections; BN
follows every conv anyway), one PReLU slope per activation rather than per channel, internal
width a quarter of the block's input width, BN + activation between the two asymmetric convs,
and a bias-free 3x3 final transposed conv.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .archs.enet import ENetOptions
from .common import pad_to_multiple
from .registry import register_model


def conv_bn_act(cin: int, cout: int, kernel: int | tuple[int, int], act: type[nn.Module], stride: int = 1,
                padding: int | tuple[int, int] = 0, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout), act(),
    )


class InitialBlock(nn.Module):
    """Conv and max-pool in parallel: the pool keeps the raw image at half resolution for free."""

    def __init__(self, cout: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, cout - 3, 3, stride=2, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


class RegularBottleneck(nn.Module):
    """Residual bottleneck; `kind` picks the main conv: regular, dilated or asymmetric 5x1+1x5."""

    def __init__(self, channels: int, act: type[nn.Module], dropout: float, kind: str = "regular",
                 dilation: int = 1) -> None:
        super().__init__()
        mid = channels // 4
        if kind == "asymmetric":
            main = nn.Sequential(conv_bn_act(mid, mid, (5, 1), act, padding=(2, 0)),
                                 conv_bn_act(mid, mid, (1, 5), act, padding=(0, 2)))
        else:
            main = conv_bn_act(mid, mid, 3, act, padding=dilation, dilation=dilation)
        self.branch = nn.Sequential(
            conv_bn_act(channels, mid, 1, act), main, conv_bn_act(mid, channels, 1, act), nn.Dropout2d(dropout),
        )
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.branch(x))


class DownsamplingBottleneck(nn.Module):
    """Halves H and W; returns the shortcut's max-pool indices for the matching unpooling."""

    def __init__(self, cin: int, cout: int, dropout: float) -> None:
        super().__init__()
        mid = cin // 4
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.branch = nn.Sequential(
            conv_bn_act(cin, mid, 2, nn.PReLU, stride=2), conv_bn_act(mid, mid, 3, nn.PReLU, padding=1),
            conv_bn_act(mid, cout, 1, nn.PReLU), nn.Dropout2d(dropout),
        )
        self.extra_channels = cout - cin
        self.act = nn.PReLU()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shortcut, indices = self.pool(x)
        # Zero maps widen the shortcut: no parameters, the branch learns the new channels.
        shortcut = F.pad(shortcut, [0, 0, 0, 0, 0, self.extra_channels])
        return self.act(shortcut + self.branch(x)), indices


class UpsamplingBottleneck(nn.Module):
    """Doubles H and W; the shortcut max-unpools with the encoder's indices."""

    def __init__(self, cin: int, cout: int, dropout: float) -> None:
        super().__init__()
        mid = cin // 4
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.unpool = nn.MaxUnpool2d(2)
        self.branch = nn.Sequential(
            conv_bn_act(cin, mid, 1, nn.ReLU),
            nn.ConvTranspose2d(mid, mid, 2, stride=2, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.Dropout2d(dropout),
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        shortcut = self.unpool(self.shortcut(x), indices)
        return self.act(shortcut + self.branch(x))


def encoder_stage(dropout: float) -> nn.Sequential:
    """Stages 2 and 3: dilation grows so the receptive field covers the frame at H/8."""
    pattern = [("regular", 1), ("regular", 2), ("asymmetric", 1), ("regular", 4),
               ("regular", 1), ("regular", 8), ("asymmetric", 1), ("regular", 16)]
    return nn.Sequential(*(RegularBottleneck(128, nn.PReLU, dropout, kind, d) for kind, d in pattern))


class ENet(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.initial = InitialBlock(16)
        self.down1 = DownsamplingBottleneck(16, 64, dropout=0.01)
        self.stage1 = nn.Sequential(*(RegularBottleneck(64, nn.PReLU, 0.01) for _ in range(4)))
        self.down2 = DownsamplingBottleneck(64, 128, dropout=0.1)
        self.stage2 = encoder_stage(0.1)
        self.stage3 = encoder_stage(0.1)
        self.up4 = UpsamplingBottleneck(128, 64, dropout=0.1)
        self.stage4 = nn.Sequential(*(RegularBottleneck(64, nn.ReLU, 0.1) for _ in range(2)))
        self.up5 = UpsamplingBottleneck(64, 16, dropout=0.1)
        self.stage5 = RegularBottleneck(16, nn.ReLU, 0.1)
        self.fullconv = nn.ConvTranspose2d(16, num_classes, 3, stride=2, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, 8)  # three halvings, each unpooled exactly
        y = self.initial(x)
        y, indices1 = self.down1(y)
        y, indices2 = self.down2(self.stage1(y))
        y = self.stage3(self.stage2(y))
        y = self.stage4(self.up4(y, indices2))
        y = self.stage5(self.up5(y, indices1))
        return {"out": self.fullconv(y, output_size=x.shape[-2:])[..., :h, :w]}


@register_model("enet", ENetOptions)
def build_enet(num_classes: int, opts: ENetOptions) -> nn.Module:
    return ENet(num_classes)
