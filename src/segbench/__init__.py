"""segbench: reproducible benchmarking of semantic-segmentation models on PyTorch and DVC.

Library entry points (usable from a notebook):
    segbench.models.build_model, segbench.losses.build_loss, segbench.metrics.ConfusionMatrix,
    segbench.data.dataset.SegmentationCache, segbench.profile.profile, segbench.config.load_params
"""
from .errors import ConfigError, DataError, SegbenchError, TrainingError

__version__ = "0.1.0"
__all__ = ["SegbenchError", "ConfigError", "DataError", "TrainingError", "__version__"]
