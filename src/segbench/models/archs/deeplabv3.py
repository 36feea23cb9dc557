"""Architecture `deeplabv3`: DeepLabV3 on a torchvision backbone.
Torch-free: validating params reads this file only; deeplabv3.py (with backbones.py) builds the model on the first build_model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ...errors import ConfigError
from ...registry import did_you_mean
from ...schema import option
from ..registry import SEGMENTATION, declare_model

# torchvision feature extractors DeepLabV3 can use (backbones.py builds them) and the output
# strides each supports: torchvision can dilate only MobileNetV3's last stage, stride 16 at best.
BACKBONE_STRIDES: dict[str, tuple[int, ...]] = {
    "resnet18": (8, 16, 32),
    "resnet50": (8, 16, 32),
    "vgg11_bn": (8, 16, 32),
    "mobilenet_v3_small": (16, 32),
}


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


declare_model("deeplabv3", DeepLabV3Options, ".deeplabv3", SEGMENTATION)
