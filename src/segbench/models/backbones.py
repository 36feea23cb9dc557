"""torchvision feature extractors with a chosen output stride (dilation instead of striding).

`build_backbone(name, output_stride, pretrained)` returns (module, out_channels); the module
maps (N, 3, H, W) to features at about H/output_stride. Pretrained weights are read only from
the local torch hub cache: nothing is downloaded, and a missing file is an error, never a
silent fall-back to random weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .archs.deeplabv3 import BACKBONE_STRIDES


def torchvision_models():
    """torchvision.models, imported on first use: 2 s that a stage building no torchvision model
    (or building none at all: validation, plot) does not pay."""
    import torchvision.models

    return torchvision.models


def hub_weights_path(weights: str) -> Path:
    """Where torch hub keeps the file of `weights`, a torchvision weights name ("ResNet18_Weights.IMAGENET1K_V1")."""
    enum_name, member = weights.split(".")
    url = getattr(getattr(torchvision_models(), enum_name), member).url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def load_local_weights(model: nn.Module, weights: str, what: str) -> None:
    path = hub_weights_path(weights)
    if not path.is_file():
        raise ConfigError(
            f"{what}: pretrained: true needs ImageNet weights at {path} (offline: nothing is downloaded); "
            f"place {path.name} there (or set TORCH_HOME), or set pretrained: false"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:
        raise ConfigError(f"{path}: not usable as {what} weights ({type(exc).__name__}: {exc})") from None


def _dilate_resnet_layer(layer: nn.Sequential, dilation: int, first_dilation: int) -> None:
    """Turn a strided ResNet stage into a dilated one (BasicBlock has no dilate switch)."""
    for i, block in enumerate(layer):
        d = first_dilation if i == 0 else dilation
        for conv in (m for m in block.modules() if isinstance(m, nn.Conv2d)):
            if conv.stride == (2, 2):
                conv.stride = (1, 1)
            if conv.kernel_size == (3, 3):
                conv.dilation, conv.padding = (d, d), (d, d)


def _resnet(net: nn.Module, output_stride: int) -> tuple[nn.Module, int]:
    layers = [net.layer1, net.layer2, net.layer3, net.layer4]
    dilation = 1
    for layer in layers[4 - {32: 0, 16: 1, 8: 2}[output_stride]:]:
        previous, dilation = dilation, dilation * 2
        _dilate_resnet_layer(layer, dilation, previous)
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, *layers), net.fc.in_features


def _vgg(net: nn.Module, output_stride: int) -> tuple[nn.Module, int]:
    features = net.features
    pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
    drop = {32: 0, 16: 1, 8: 2}[output_stride]
    # Without the last pool the map is at stride 16 and nothing after it needs dilation;
    # without pool 4 too, the convs of block 5 see a 2x finer map and get dilation 2.
    if drop == 2:
        for m in features[pools[3]:]:
            if isinstance(m, nn.Conv2d):
                m.dilation, m.padding = (2, 2), (2, 2)
    kept = [m for i, m in enumerate(features) if i not in pools[len(pools) - drop:]]
    for m in kept:
        if isinstance(m, nn.MaxPool2d):
            m.ceil_mode = True  # inputs under 16 px would otherwise pool to an empty map
    return nn.Sequential(*kept), 512


def _mobilenet(net: nn.Module, output_stride: int) -> tuple[nn.Module, int]:
    return net.features, net.features[-1].out_channels


@dataclass(frozen=True)
class BackboneEntry:
    weights: str  # the torchvision weights for `pretrained`, by name (torchvision loads lazily)
    extract: Callable[[nn.Module, int], tuple[nn.Module, int]]


# The names and the output strides each supports are declared in archs/deeplabv3.py (BACKBONE_STRIDES).
BACKBONES: Registry[BackboneEntry] = Registry("backbone")
BACKBONES.add("resnet18", BackboneEntry("ResNet18_Weights.IMAGENET1K_V1", _resnet))
BACKBONES.add("resnet50", BackboneEntry("ResNet50_Weights.IMAGENET1K_V1", _resnet))
BACKBONES.add("vgg11_bn", BackboneEntry("VGG11_BN_Weights.IMAGENET1K_V1", _vgg))
BACKBONES.add("mobilenet_v3_small", BackboneEntry("MobileNet_V3_Small_Weights.IMAGENET1K_V1", _mobilenet))


def build_backbone(name: str, output_stride: int = 16, pretrained: bool = False,
                   where: str = "backbone") -> tuple[nn.Module, int]:
    entry = BACKBONES.get(name, f"{where}.backbone")
    if output_stride not in BACKBONE_STRIDES[name]:
        raise ConfigError(f"{where}.output_stride: {output_stride} not available for {name}; "
                          f"valid: {', '.join(map(str, BACKBONE_STRIDES[name]))}")
    extra = {"dilated": output_stride == 16} if name.startswith("mobilenet") else {}
    net = getattr(torchvision_models(), name)(weights=None, **extra)
    if pretrained:
        load_local_weights(net, entry.weights, f"{where}.pretrained")
    return entry.extract(net, output_stride)
