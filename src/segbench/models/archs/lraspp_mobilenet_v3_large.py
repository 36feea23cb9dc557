"""Architecture `lraspp_mobilenet_v3_large`: torchvision's lraspp_mobilenet_v3_large, exactly as shipped.
Torch-free: validating params reads this file only; torchvision_zoo.py builds the model on the first build_model."""
from __future__ import annotations

from ..options import TorchvisionOptions
from ..registry import SEGMENTATION, declare_model

declare_model("lraspp_mobilenet_v3_large", TorchvisionOptions, ".torchvision_zoo", SEGMENTATION)
