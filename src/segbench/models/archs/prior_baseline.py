"""Architecture `prior_baseline`: no network, each pixel's most frequent training class.
Torch-free: validating params reads this file only; prior.py builds the model on the first build_model."""
from __future__ import annotations

from dataclasses import dataclass

from ...schema import option
from ..registry import SEGMENTATION, declare_model


@dataclass(frozen=True)
class PriorOptions:
    grid_size: tuple[int, int] = option((64, 64), min=1)


declare_model("prior_baseline", PriorOptions, ".prior", SEGMENTATION)
