"""Architecture `esnet`: ESNet.
Torch-free: validating params reads this file only; esnet.py builds the model on the first build_model."""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import SEGMENTATION, declare_model


@dataclass(frozen=True)
class ESNetOptions:
    """ESNet has no options: the paper fixes every width, kernel and dilation."""


declare_model("esnet", ESNetOptions, ".esnet", SEGMENTATION)
