"""Architecture `fcn_resnet50`: torchvision's fcn_resnet50, exactly as shipped.
Torch-free: validating params reads this file only; torchvision_zoo.py builds the model on the first build_model."""
from __future__ import annotations

from ..options import TorchvisionOptions
from ..registry import SEGMENTATION, declare_model

declare_model("fcn_resnet50", TorchvisionOptions, ".torchvision_zoo", SEGMENTATION)
