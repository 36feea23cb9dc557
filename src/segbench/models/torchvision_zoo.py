"""torchvision's ready-made segmentation models, as reference rows for the benchmark.

They are built exactly as torchvision ships them (random init, no auxiliary head), so their
numbers compare with published ones. torchvision returns a dict ``{"out": logits, ...}``;
`OutOnly` unwraps it so every model in the registry returns a plain logits tensor.
"""
from __future__ import annotations

import torch
from torch import nn

from .options import TorchvisionOptions
from .registry import register_model


class OutOnly(nn.Module):
    """Return only the "out" logits of a torchvision segmentation model (already at input size):
    its aux head, when built, is a training device, not an output to score."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.model(x)["out"]}


def _register(arch: str) -> None:
    """`arch`: a constructor in torchvision.models.segmentation, imported when the model is built."""

    def build(num_classes: int, opts: TorchvisionOptions) -> nn.Module:
        from torchvision.models import segmentation

        # weights=None and weights_backbone=None: nothing is ever downloaded.
        factory = getattr(segmentation, arch)
        return OutOnly(factory(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False))

    register_model(arch, TorchvisionOptions)(build)


for _arch in ("deeplabv3_resnet50", "fcn_resnet50", "lraspp_mobilenet_v3_large"):
    _register(_arch)
