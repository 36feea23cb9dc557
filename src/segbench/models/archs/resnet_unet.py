"""Architecture `resnet_unet`: a U-Net decoder on a torchvision ResNet encoder.
Torch-free: validating params reads this file only; resnet_unet.py builds the model on the first build_model."""
from __future__ import annotations

from dataclasses import dataclass

from ...schema import option
from ..options import SEG_DEPTH, depth_decoder_option
from ..registry import declare_model

ENCODERS = ("resnet18", "resnet34")  # resnet_unet.py: torchvision constructor and weights per name


@dataclass(frozen=True)
class ResNetUNetOptions:
    encoder: str = option("resnet18", choices=ENCODERS)
    skips: bool = True
    pretrained: bool = False
    depth_decoder: str = depth_decoder_option()


declare_model("resnet_unet", ResNetUNetOptions, ".resnet_unet", SEG_DEPTH)
