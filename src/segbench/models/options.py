"""What `models:` in params.yaml may say, without the code that builds it: torch-free.

Every built-in architecture is declared here with its options dataclass, the tasks it has
heads for and the module that builds it. Validating params reads only this module, so
`segbench check`, download, preprocess, aggregate and plot never import torch; the building
module is imported on the first `build_model` of its architecture, and registers its builder
with `registry.register_model` under the same name (a mismatch in options or tasks is an
error there, and tests/test_models.py checks every declaration has its builder).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..errors import ConfigError
from ..registry import did_you_mean
from ..schema import option
from .registry import SEGMENTATION, declare_model

SEG_DEPTH = ("segmentation", "seg_depth")

# torchvision feature extractors DeepLabV3 can use (backbones.py builds them) and the output
# strides each supports: torchvision can dilate only MobileNetV3's last stage, stride 16 at best.
BACKBONE_STRIDES: dict[str, tuple[int, ...]] = {
    "resnet18": (8, 16, 32),
    "resnet50": (8, 16, 32),
    "vgg11_bn": (8, 16, 32),
    "mobilenet_v3_small": (16, 32),
}
RESNET_UNET_ENCODERS = ("resnet18", "resnet34")  # resnet_unet.py: torchvision constructor and weights per name
DEPTH_DECODERS = ("separate", "shared")  # multitask.py: how a depth branch reads the features


def depth_decoder_option() -> Any:
    """The `depth_decoder` field of a depth-capable model's options (read only under seg_depth)."""
    return option("separate", choices=DEPTH_DECODERS)


@dataclass(frozen=True)
class UNetOptions:
    base_channels: int = option(32, min=1)
    bilinear: bool = False
    depth_decoder: str = depth_decoder_option()


@dataclass(frozen=True)
class LeanUNetOptions:
    base_channels: int = option(24, min=1)
    depth_decoder: str = depth_decoder_option()


@dataclass(frozen=True)
class ResNetUNetOptions:
    encoder: str = option("resnet18", choices=RESNET_UNET_ENCODERS)
    skips: bool = True
    pretrained: bool = False
    depth_decoder: str = depth_decoder_option()


@dataclass(frozen=True)
class DeepLabV3Options:
    backbone: str = option("resnet18", choices=lambda: sorted(BACKBONE_STRIDES))
    aspp: bool = True
    output_stride: int = option(16, choices=(8, 16, 32))
    head_channels: int = option(256, min=1)
    atrous_rates: Optional[tuple[int, int, int]] = option(None, min=1)  # None: (6,12,18) at OS 16, doubled at OS 8
    pretrained: bool = False
    # Momentum of every BatchNorm layer; null keeps each layer's own. torchvision's MobileNetV3
    # uses 0.01, tuned for ImageNet-length training: over a few hundred steps its running
    # statistics stay near their initial values, and evaluation (which uses them) sees
    # unnormalised features. PyTorch's own default is 0.1.
    bn_momentum: Optional[float] = option(None, min=0.0, max=1.0, min_exclusive=True)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONE_STRIDES:  # unreachable through parse (choices); a direct constructor call
            raise ConfigError(f"backbone: unknown {self.backbone!r}{did_you_mean(self.backbone, list(BACKBONE_STRIDES))}")
        allowed = BACKBONE_STRIDES[self.backbone]
        if self.output_stride not in allowed:
            raise ConfigError(f"output_stride: {self.output_stride} not available for backbone {self.backbone}; "
                              f"valid: {', '.join(map(str, allowed))}")


@dataclass(frozen=True)
class BaseConvOptions:
    base_channels: int = option(32, min=1)


@dataclass(frozen=True)
class PriorOptions:
    grid_size: tuple[int, int] = option((64, 64), min=1)


@dataclass(frozen=True)
class ENetOptions:
    """ENet has no options: the paper fixes every width and rate."""


@dataclass(frozen=True)
class ESNetOptions:
    """ESNet has no options: the paper fixes every width, kernel and dilation."""


@dataclass(frozen=True)
class TorchvisionOptions:
    """No options: the point of these rows is torchvision's model exactly as shipped."""


declare_model("unet", UNetOptions, ".unet", SEG_DEPTH)
declare_model("unet_lean", LeanUNetOptions, ".unet_lean", SEG_DEPTH)
declare_model("resnet_unet", ResNetUNetOptions, ".resnet_unet", SEG_DEPTH)
declare_model("deeplabv3", DeepLabV3Options, ".deeplabv3", SEGMENTATION)
declare_model("fcn_baseline", BaseConvOptions, ".fcn_baseline", SEGMENTATION)
declare_model("prior_baseline", PriorOptions, ".prior", SEGMENTATION)
declare_model("enet", ENetOptions, ".enet", SEGMENTATION)
declare_model("esnet", ESNetOptions, ".esnet", SEGMENTATION)
for _arch in ("deeplabv3_resnet50", "fcn_resnet50", "lraspp_mobilenet_v3_large"):
    declare_model(_arch, TorchvisionOptions, ".torchvision_zoo", SEGMENTATION)
