"""U-Net decoder over a torchvision ResNet-18 or -34 encoder (as segmentation_models_pytorch's Unet).

The encoder (`encoder: resnet18` or `resnet34`: both of BasicBlocks, so the same widths) yields
features at strides 2, 4, 8, 16 and 32 (64, 64, 128, 256, 512 channels).
Each of five decoder blocks upsamples 2x (to the exact size of the matching encoder map,
so odd input sizes need no padding), concatenates that map (the skip), and applies two
3x3 conv + BN + ReLU; widths 256, 128, 64, 32, 16, then a 1x1 classifier at full size.

`skips: false` builds the same decoder with nothing concatenated: the ablation that shows
what the skips add on top of a strong encoder. `pretrained: true` loads ImageNet weights
for the encoder from the local torch hub cache only (see `backbones.load_local_weights`).

Under task seg_depth a depth branch (see `multitask`) reads the encoder's features through a
second `ResNetDecoder` (`depth_decoder: separate`) or the segmentation decoder's output (`shared`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .archs.resnet_unet import ResNetUNetOptions
from .backbones import load_local_weights, torchvision_models
from .multitask import depth_branch
from .registry import register_model

DECODER_CHANNELS = (256, 128, 64, 32, 16)
# encoder option (archs/resnet_unet.py: ENCODERS) -> (torchvision.models constructor, ImageNet weights for `pretrained`)
ENCODERS = {
    "resnet18": ("resnet18", "ResNet18_Weights.IMAGENET1K_V1"),
    "resnet34": ("resnet34", "ResNet34_Weights.IMAGENET1K_V1"),
}


class ResNetEncoder(nn.Module):
    """ResNet without its classifier. Attribute names are torchvision's, so the state_dict
    keys are those of an ImageNet checkpoint minus `fc.*`."""

    def __init__(self, net: nn.Module) -> None:  # a torchvision ResNet
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


class ResNetDecoder(nn.ModuleList):
    """Five DecoderBlocks from the encoder's stride-32 map to `DECODER_CHANNELS[-1]` features at full size."""

    def __init__(self, encoder_channels: tuple[int, ...], skips: bool) -> None:
        # Skips from strides 16, 8, 4, 2; the last block (to full size) has none.
        skip_channels = list(reversed(encoder_channels[:-1])) + [0]
        if not skips:
            skip_channels = [0] * len(skip_channels)
        widths = (encoder_channels[-1], *DECODER_CHANNELS)
        super().__init__(DecoderBlock(widths[i], skip_channels[i], widths[i + 1]) for i in range(len(DECODER_CHANNELS)))
        self.skips = skips

    def forward(self, features: list[torch.Tensor], size: torch.Size) -> torch.Tensor:
        """`features`: the encoder's maps at strides 2 ... 32; `size`: the input's (H, W)."""
        *finer, y = features
        finer = finer[::-1]  # strides 16, 8, 4, 2; the last block goes to full size
        sizes = [f.shape[-2:] for f in finer] + [size]
        skips = finer + [None] if self.skips else [None] * len(sizes)
        for block, block_size, skip in zip(self, sizes, skips, strict=True):
            y = block(y, block_size, skip)
        return y


class ResNetUNet(nn.Module):
    def __init__(self, encoder: ResNetEncoder, num_classes: int, skips: bool = True,
                 depth_decoder: str | None = None) -> None:
        super().__init__()
        self.encoder, self.skips = encoder, skips
        self.blocks = ResNetDecoder(encoder.channels, skips)
        self.head = nn.Conv2d(DECODER_CHANNELS[-1], num_classes, kernel_size=1)
        self.depth = depth_branch(depth_decoder, lambda: ResNetDecoder(encoder.channels, skips), DECODER_CHANNELS[-1])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder(x)
        y = self.blocks(features, x.shape[-2:])
        logits = self.head(y)
        if self.depth is None:
            return {"out": logits}
        return {"out": logits, "depth": self.depth(y, features, x.shape[-2:])}


@register_model("resnet_unet", ResNetUNetOptions, tasks=("segmentation", "seg_depth"))
def build_resnet_unet(num_classes: int, opts: ResNetUNetOptions, task: str = "segmentation") -> nn.Module:
    constructor, weights = ENCODERS[opts.encoder]
    net = getattr(torchvision_models(), constructor)(weights=None)
    if opts.pretrained:
        load_local_weights(net, weights, "resnet_unet.pretrained")
    return ResNetUNet(ResNetEncoder(net), num_classes, skips=opts.skips,
                      depth_decoder=opts.depth_decoder if task == "seg_depth" else None)
