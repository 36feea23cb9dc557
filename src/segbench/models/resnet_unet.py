"""U-Net decoder over a torchvision ResNet-18 encoder (as segmentation_models_pytorch's Unet).

The encoder yields features at strides 2, 4, 8, 16 and 32 (64, 64, 128, 256, 512 channels).
Each of five decoder blocks upsamples 2x (to the exact size of the matching encoder map,
so odd input sizes need no padding), concatenates that map (the skip), and applies two
3x3 conv + BN + ReLU; widths 256, 128, 64, 32, 16, then a 1x1 classifier at full size.

`skips: false` builds the same decoder with nothing concatenated: the ablation that shows
what the skips add on top of a strong encoder. `pretrained: true` loads ImageNet weights
for the encoder from the local torch hub cache only (see `backbones.load_local_weights`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from . import register_model
from .backbones import load_local_weights

DECODER_CHANNELS = (256, 128, 64, 32, 16)


class ResNetEncoder(nn.Module):
    """ResNet without its classifier. Attribute names are torchvision's, so the state_dict
    keys are those of an ImageNet checkpoint minus `fc.*`."""

    def __init__(self, net: torchvision.models.ResNet) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.channels = (net.conv1.out_channels, *(layer[-1].conv2.out_channels for layer in self.layers()))

    def layers(self) -> tuple[nn.Module, ...]:
        return self.layer1, self.layer2, self.layer3, self.layer4

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at strides 2, 4, 8, 16, 32."""
        features = [self.relu(self.bn1(self.conv1(x)))]
        y = self.maxpool(features[0])
        for layer in self.layers():
            y = layer(y)
            features.append(y)
        return features


class DecoderBlock(nn.Module):
    def __init__(self, cin: int, skip_channels: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin + skip_channels, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, size: torch.Size, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, size=size, mode="nearest")
        return self.conv(x if skip is None else torch.cat([x, skip], dim=1))


class ResNetUNet(nn.Module):
    def __init__(self, encoder: ResNetEncoder, num_classes: int, skips: bool = True) -> None:
        super().__init__()
        self.encoder, self.skips = encoder, skips
        # Skips from strides 16, 8, 4, 2; the last block (to full size) has none.
        skip_channels = list(reversed(encoder.channels[:-1])) + [0]
        if not skips:
            skip_channels = [0] * len(skip_channels)
        widths = (encoder.channels[-1], *DECODER_CHANNELS)
        self.blocks = nn.ModuleList(
            DecoderBlock(widths[i], skip_channels[i], widths[i + 1]) for i in range(len(DECODER_CHANNELS))
        )
        self.head = nn.Conv2d(DECODER_CHANNELS[-1], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *features, y = self.encoder(x)
        features.reverse()  # strides 16, 8, 4, 2; the last block goes to full size
        sizes = [f.shape[-2:] for f in features] + [x.shape[-2:]]
        skips = features + [None] if self.skips else [None] * len(sizes)
        for block, size, skip in zip(self.blocks, sizes, skips, strict=True):
            y = block(y, size, skip)
        return self.head(y)


@dataclass(frozen=True)
class ResNetUNetOptions:
    skips: bool = True
    pretrained: bool = False


@register_model("resnet_unet", ResNetUNetOptions)
def build_resnet_unet(num_classes: int, opts: ResNetUNetOptions) -> nn.Module:
    net = torchvision.models.resnet18(weights=None)
    if opts.pretrained:
        load_local_weights(net, torchvision.models.ResNet18_Weights.IMAGENET1K_V1, "resnet_unet.pretrained")
    return ResNetUNet(ResNetEncoder(net), num_classes, skips=opts.skips)
