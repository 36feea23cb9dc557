"""Prediction samples: a few validation images with their truth and one checkpoint's prediction,
for looking at. `evaluate` predicts them (segbench.evaluate.predict_samples) and saves them as
arrays; `aggregate` draws every seed's side by side (segbench.model_figures). numpy only: the
drawing side imports no torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class PredictionSamples:
    images: np.ndarray  # N x H x W x 3 uint8 RGB (un-normalised)
    truth: np.ndarray  # N x H x W class indices (ignore_index for void)
    prediction: np.ndarray  # N x H x W class indices
    indices: list[int]  # positions in their split
    depth_truth: np.ndarray | None = None  # task seg_depth: N x H x W metres (0: unknown)
    depth_prediction: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """What an .npz file holds (segbench.io.save_npz): every field that is set."""
        return {name: np.asarray(value) for name, value in asdict(self).items() if value is not None}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> PredictionSamples:
        """The samples an .npz file held (segbench.io.load_npz)."""
        return cls(images=arrays["images"], truth=arrays["truth"], prediction=arrays["prediction"],
                   indices=[int(i) for i in arrays["indices"]], depth_truth=arrays.get("depth_truth"),
                   depth_prediction=arrays.get("depth_prediction"))
