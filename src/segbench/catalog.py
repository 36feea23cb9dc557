"""The names params.yaml may use for losses, optimisers, schedulers and tasks, and what each
task outputs and scores: torch-free, so validating params (`segbench check`, and every stage
before its work) imports no torch.

The modules that implement them (losses, optim, tasks) register exactly these names;
tests/test_catalog.py checks both lists agree. Models are declared the same way in
`models.options`.
"""
from __future__ import annotations

from dataclasses import dataclass

LOSSES = ("bce", "binary_dice", "ce_dice", "cross_entropy", "dice", "focal", "jaccard", "weighted_ce")
DEPTH_LOSSES = ("huber", "l1", "mse")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("cosine", "none", "onecycle", "plateau", "step")


@dataclass(frozen=True)
class TaskSpec:
    outputs: tuple[str, ...]  # what the model must return
    targets: tuple[str, ...]  # the batch layout after the image
    scores: dict[str, bool]  # logged per epoch, may select the best epoch; True: higher is better


TASKS: dict[str, TaskSpec] = {
    "segmentation": TaskSpec(outputs=("out",), targets=("mask",), scores={"miou": True}),
    "seg_depth": TaskSpec(outputs=("out", "depth"), targets=("mask", "depth"), scores={"miou": True, "depth_rmse": False}),
}
