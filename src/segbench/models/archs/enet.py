"""Architecture `enet`: ENet.
Torch-free: validating params reads this file only; enet.py builds the model on the first build_model."""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import SEGMENTATION, declare_model


@dataclass(frozen=True)
class ENetOptions:
    """ENet has no options: the paper fixes every width and rate."""


declare_model("enet", ENetOptions, ".enet", SEGMENTATION)
