"""torchvision's ready-made segmentation models, as reference rows for the benchmark.

They are built exactly as torchvision ships them (random init, no auxiliary head), so their
numbers compare with published ones. torchvision returns a dict ``{"out": logits, ...}``;
`OutOnly` unwraps it so every model in the registry returns a plain logits tensor.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import segmentation

from .registry import register_model


class OutOnly(nn.Module):
    """Return only the "out" logits of a torchvision segmentation model (already at input size):
    its aux head, when built, is a training device, not an output to score."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.model(x)["out"]}


@dataclass(frozen=True)
class TorchvisionOptions:
    """No options: the point of these rows is torchvision's model exactly as shipped."""


def _register(arch: str, factory: Callable[..., nn.Module]) -> None:
    def build(num_classes: int, opts: TorchvisionOptions) -> nn.Module:
        # weights=None and weights_backbone=None: nothing is ever downloaded.
        return OutOnly(factory(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False))

    register_model(arch, TorchvisionOptions)(build)


_register("deeplabv3_resnet50", segmentation.deeplabv3_resnet50)
_register("fcn_resnet50", segmentation.fcn_resnet50)
_register("lraspp_mobilenet_v3_large", segmentation.lraspp_mobilenet_v3_large)
