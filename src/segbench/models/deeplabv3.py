"""DeepLabV3 (Chen et al., 2017) over a torchvision backbone, with ASPP or a plain head.

`aspp: false` replaces the ASPP module by one 3x3 conv + BN + ReLU, the ablation the course
studies ask for; everything else (backbone, output stride, classifier) stays the same.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .archs.deeplabv3 import DeepLabV3Options
from .backbones import build_backbone
from .registry import register_model


class PlainHead(nn.Sequential):
    def __init__(self, cin: int, channels: int, num_classes: int) -> None:
        super().__init__(
            nn.Conv2d(cin, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, num_classes, 1),
        )


def _aspp() -> type:
    """torchvision's ASPP module class, imported when a model with ASPP is built."""
    from torchvision.models.segmentation.deeplabv3 import ASPP

    return ASPP


class ASPPHead(nn.Sequential):
    """torchvision's ASPP, then 3x3 conv + BN + ReLU and the 1x1 classifier (as DeepLabHead)."""

    def __init__(self, cin: int, channels: int, num_classes: int, rates: tuple[int, ...]) -> None:
        super().__init__(
            _aspp()(cin, list(rates), out_channels=channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, num_classes, 1),
        )


class DeepLabV3(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.head(self.backbone(x))
        return {"out": F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)}


@register_model("deeplabv3", DeepLabV3Options)
def build_deeplabv3(num_classes: int, opts: DeepLabV3Options) -> nn.Module:
    backbone, channels = build_backbone(opts.backbone, opts.output_stride, opts.pretrained, where="deeplabv3")
    if opts.aspp:
        rates = opts.atrous_rates or tuple(r * 16 // min(opts.output_stride, 16) for r in (6, 12, 18))
        head = ASPPHead(channels, opts.head_channels, num_classes, rates)
    else:
        head = PlainHead(channels, opts.head_channels, num_classes)
    model = DeepLabV3(backbone, head)
    if opts.bn_momentum is not None:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = opts.bn_momentum
    return model
