"""Architecture `unet`: U-Net (segmentation, and a depth head under task seg_depth).
Torch-free: validating params reads this file only; unet.py builds the model on the first build_model."""
from __future__ import annotations

from dataclasses import dataclass

from ...schema import option
from ..options import SEG_DEPTH, depth_decoder_option
from ..registry import declare_model


@dataclass(frozen=True)
class UNetOptions:
    base_channels: int = option(32, min=1)
    bilinear: bool = False
    depth_decoder: str = depth_decoder_option()


declare_model("unet", UNetOptions, ".unet", SEG_DEPTH)
