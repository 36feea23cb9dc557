"""Architecture `unet_lean`: a lighter U-Net.
Torch-free: validating params reads this file only; unet_lean.py builds the model on the first build_model."""
from __future__ import annotations

from dataclasses import dataclass

from ...schema import option
from ..options import SEG_DEPTH, depth_decoder_option
from ..registry import declare_model


@dataclass(frozen=True)
class LeanUNetOptions:
    base_channels: int = option(24, min=1)
    depth_decoder: str = depth_decoder_option()


declare_model("unet_lean", LeanUNetOptions, ".unet_lean", SEG_DEPTH)
