"""ESNet (Wang et al., 2019): a symmetric encoder-decoder of factorized convolution units.

Layout, for an H x W input:

    encoder   downsample 3 -> 16 @ H/2, 3 FCU (k 3)
              downsample 16 -> 64 @ H/4, 2 FCU (k 5)
              downsample 64 -> 128 @ H/8, 3 PFCU (dilations 2, 5, 9)
    decoder   upsample 128 -> 64 @ H/4, 2 FCU (k 5)
              upsample 64 -> 16 @ H/2, 2 FCU (k 3)
              2x2/2 transposed conv -> num_classes @ H

Factorizing every k x k conv into k x 1 then 1 x k keeps the receptive field for a
fraction of the weights; the PFCU's three dilated branches see context at three scales in
parallel and are summed with the shortcut. A downsampling block concatenates a 3x3/2 conv
with a 2x2 max-pool of its input (as ENet/ERFNet); an upsampling block is a 3x3/2
transposed conv + BN + ReLU, so the decoder mirrors the encoder.

Like the authors' code (and their 1.66 M parameter figure: 1,658,356 for 8 classes), every
conv has a bias, dropout is 0.03 in the encoder FCUs, 0.3 in the PFCUs and off in the
decoder, and one BatchNorm is shared by the three dilated branches of a PFCU (it is applied
to each branch separately, so its running statistics average over the three scales).
"""
from __future__ import annotations

import torch
from torch import nn

from .archs.esnet import ESNetOptions
from .common import pad_to_multiple
from .registry import register_model


def factorized_pair(channels: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    """k x 1 conv, ReLU, 1 x k conv: a k x k receptive field with 2k instead of k^2 weights."""
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(channels, channels, (kernel, 1), padding=(pad, 0), dilation=(dilation, 1)), nn.ReLU(),
        nn.Conv2d(channels, channels, (1, kernel), padding=(0, pad), dilation=(1, dilation)),
    )


class FCU(nn.Module):
    """Factorized convolution unit: two factorized pairs with BN, residual, ReLU."""

    def __init__(self, channels: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            factorized_pair(channels, kernel), nn.BatchNorm2d(channels, eps=1e-3), nn.ReLU(),
            factorized_pair(channels, kernel), nn.BatchNorm2d(channels, eps=1e-3), nn.Dropout2d(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.branch(x))


class PFCU(nn.Module):
    """Parallel factorized convolution unit: one 3x3 pair, then dilated pairs side by side."""

    def __init__(self, channels: int, dilations: tuple[int, ...] = (2, 5, 9), dropout: float = 0.3) -> None:
        super().__init__()
        self.stem = nn.Sequential(factorized_pair(channels, 3), nn.BatchNorm2d(channels, eps=1e-3), nn.ReLU())
        self.branches = nn.ModuleList(factorized_pair(channels, 3, d) for d in dilations)
        self.bn = nn.BatchNorm2d(channels, eps=1e-3)  # shared by the branches, see the module docstring
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        return torch.relu(x + sum(self.dropout(self.bn(branch(y))) for branch in self.branches))


class Downsample(nn.Module):
    """Concatenate a 3x3/2 conv (the new channels) with a max-pool (the old ones, for free)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout - cin, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


def upsample(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
        nn.BatchNorm2d(cout, eps=1e-3), nn.ReLU(),
    )


class ESNet(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            Downsample(3, 16), *(FCU(16, 3, 0.03) for _ in range(3)),
            Downsample(16, 64), *(FCU(64, 5, 0.03) for _ in range(2)),
            Downsample(64, 128), *(PFCU(128) for _ in range(3)),
        )
        self.decoder = nn.Sequential(
            upsample(128, 64), *(FCU(64, 5, 0.0) for _ in range(2)),
            upsample(64, 16), *(FCU(16, 3, 0.0) for _ in range(2)),
            nn.ConvTranspose2d(16, num_classes, 2, stride=2),
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, 8)  # three exact halvings, mirrored by three exact doublings
        return {"out": self.decoder(self.encoder(x))[..., :h, :w]}


@register_model("esnet", ESNetOptions)
def build_esnet(num_classes: int, opts: ESNetOptions) -> nn.Module:
    return ESNet(num_classes)
