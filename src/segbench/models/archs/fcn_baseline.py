"""Architecture `fcn_baseline`: a plain fully-convolutional baseline.
Torch-free: validating params reads this file only; fcn_baseline.py builds the model on the first build_model."""
from __future__ import annotations

from dataclasses import dataclass

from ...schema import option
from ..registry import SEGMENTATION, declare_model


@dataclass(frozen=True)
class BaseConvOptions:
    base_channels: int = option(32, min=1)


declare_model("fcn_baseline", BaseConvOptions, ".fcn_baseline", SEGMENTATION)
