"""Evaluation: run a model over a split and score it with its task's meters (a confusion matrix,
softmax-score histograms for average precision, depth errors for task seg_depth), and predict a
few samples to look at. The figures drawn from the result are the report side's
(segbench.model_figures).

Nothing here knows about DVC or where files go: the caller (cli.py, a notebook) picks paths.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from .checkpoint import load_checkpoint
from .data.dataset import load_manifest
from .environment import fingerprint
from .errors import DataError
from .metrics import ConfusionMatrix, PerImageCounts
from .models.archs.prior_baseline import PriorOptions
from .models.prior import PriorBaseline
from .runtime import resolve_device
from .samples import PredictionSamples
from .tasks import Segmentation, get_task


@dataclass(frozen=True)
class Evaluation:
    """One pass over a split: the task's meters, and the mean loss terms per batch (total "loss"
    and each named term; empty when no criterion was given)."""

    meters: list
    losses: dict[str, float]

    @property
    def scores(self) -> dict[str, float]:
        """What training logs per epoch: {"miou": ...} (and "depth_rmse" for seg_depth)."""
        return {k: v for meter in self.meters for k, v in meter.scores().items()}

    @property
    def confusion(self) -> ConfusionMatrix:
        return self.meters[0].confusion

    def per_image(self) -> dict[str, np.ndarray]:
        """The meters' per-image statistics (empty unless run with per_image=True)."""
        return {k: v for meter in self.meters for k, v in meter.per_image().items()}

    def report(self, class_names: list[str]) -> dict:
        """The scores of eval.json: flat values plus per-class ones keyed by class name."""
        return {k: v for meter in self.meters for k, v in meter.report(class_names).items()}


@torch.inference_mode()
def run_evaluation(model: nn.Module, loader: DataLoader, task: Segmentation, num_classes: int, ignore_index: int,
                   device: torch.device, criterion: nn.Module | None = None, ap_bins: int | None = None,
                   per_image: bool = False) -> Evaluation:
    """One pass over `loader` in float32. `ap_bins` also collects the score histograms for average
    precision and `per_image` the per-image statistics (the per-epoch validation during training
    needs neither)."""
    was_training = model.training
    model.eval()
    meters = task.meters(num_classes, ignore_index, ap_bins, per_image)
    sums: dict[str, float] = {}
    batches = 0
    for batch in loader:
        images, targets = task.unpack(batch, device)
        outputs = model(images)
        missing = [name for name in task.outputs if name not in outputs]
        if missing:
            raise DataError(f"task {task.name} scores the model's {' and '.join(missing)} output but the model returns "
                            f"only {', '.join(outputs)}; build it with task={task.name!r}")
        if criterion is not None:
            for name, value in criterion(outputs, targets).items():
                sums[name] = sums.get(name, 0.0) + float(value)
            batches += 1
        for meter in meters:
            meter.update(outputs, targets)
    model.train(was_training)
    return Evaluation(meters, {name: total / batches for name, total in sums.items()})


def resolve_split(manifest: dict, requested: str, where: str = "cache") -> str:
    """`requested` when the cache has it. There is no fallback: preprocess carves a test split when
    the dataset has none, and scoring on val (which selected the epoch) is only ever asked for."""
    available = [s for s, n in manifest.get("splits", {}).items() if n]
    if requested in available:
        return requested
    raise DataError(f"{where}: no {requested!r} split to evaluate on (has: {', '.join(available) or 'none'}); "
                    "re-run preprocess (it carves a test split from train when the dataset has none)")


def split_source(manifest: dict, split: str) -> str:
    """Where the scored split came from, for eval.json and the summary."""
    if split == "val":
        return "val: the split that selected the epoch (optimistic)"
    if manifest.get(f"{split}_from_train"):
        return f"carved from train (data.{split}_fraction {manifest[f'{split}_fraction']}, seeded): the dataset has none"
    return "the dataset's own"


# --- the setup behind a score: the training split, the class prior ----------------------------

TRAIN_SUBSET_SEED = 0  # the same training images for every model and seed


def train_subset_scores(model: nn.Module, task: Segmentation, cache_dir, count: int, batch_size: int,
                        device: torch.device, test: dict) -> dict[str, float]:
    """The model scored in eval mode on `count` training images (a fixed, seeded subset; all when the
    split is smaller) beside `test`'s scores: train_miou and generalization_gap (train - test), and
    for seg_depth train_depth_rmse and depth_rmse_gap (test - train). {} when `count` is 0."""
    if count <= 0:
        return {}
    data = task.dataset(cache_dir, "train")
    rng = np.random.default_rng(TRAIN_SUBSET_SEED)
    chosen = np.sort(rng.choice(len(data), size=min(count, len(data)), replace=False)).tolist()
    loader = DataLoader(Subset(data, chosen), batch_size=batch_size, shuffle=False)
    scores = run_evaluation(model, loader, task, len(data.class_names), data.manifest["ignore_index"], device).scores
    out = {"train_miou": scores["miou"], "generalization_gap": scores["miou"] - test["miou"]}
    if "depth_rmse" in scores and "depth_rmse" in test:
        out.update(train_depth_rmse=scores["depth_rmse"], depth_rmse_gap=test["depth_rmse"] - scores["depth_rmse"])
    return out


def prior_mask_counts(train_masks: np.ndarray, test_masks: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """Per test image and class, (tp, fp, fn) of the class-prior predictor (the `prior_baseline` model
    with its default grid, fit on the training masks): [images, classes, 3], like `mask_counts`."""
    prior = PriorBaseline(num_classes, PriorOptions().grid_size)
    prior.fit_from_masks(torch.from_numpy(np.asarray(train_masks).astype(np.int64)), ignore_index)
    prediction = prior(torch.zeros(1, 1, *test_masks.shape[-2:]))["out"].argmax(1)
    counts = PerImageCounts(num_classes, ignore_index)
    for i in range(0, len(test_masks), 64):
        block = torch.from_numpy(np.asarray(test_masks[i:i + 64]).astype(np.int64))
        counts.update(prediction.expand_as(block), block)
    return counts.counts()


# --- prediction samples --------------------------------------------------------------------

@torch.inference_mode()
def predict_samples(model: nn.Module, data, count: int, device: torch.device) -> PredictionSamples:
    """Predict the first `count` items of a SegmentationCache (deterministic: no shuffling)."""
    indices = list(range(min(count, len(data))))
    if not indices:
        raise DataError("no samples to draw: the split is empty")
    items = [data[i] for i in indices]
    images = torch.stack([item[0] for item in items])
    truth = torch.stack([item[1] for item in items])
    was_training = model.training
    model.eval()
    outputs = model(images.to(device))
    model.train(was_training)
    logits, depth = outputs["out"], outputs.get("depth")
    rgb = images.permute(0, 2, 3, 1).numpy() * data.std + data.mean
    depths = {}
    if depth is not None and len(items[0]) > 2:
        depths = {"depth_truth": torch.stack([item[2] for item in items]).numpy(),
                  "depth_prediction": depth.float().cpu()[:, 0].numpy()}
    return PredictionSamples(np.clip(rgb, 0, 255).round().astype(np.uint8), truth.numpy(), logits.argmax(1).cpu().numpy(),
                             indices, **depths)


# --- one checkpoint, end to end --------------------------------------------------------------

@dataclass(frozen=True)
class CheckpointEvaluation:
    """Everything `evaluate_checkpoint` found; segbench.model_figures draws it (notebook friendly)."""

    report: dict  # the eval.json content
    confusion: ConfusionMatrix
    class_names: list[str]
    split: str
    samples: PredictionSamples  # the first validation images, predicted (segbench.samples)
    per_image: dict  # segbench.stats' per-image statistics ("mask_counts", "depth_sums" for seg_depth) and the
                     # class prior's "prior_mask_counts" on the same images


def evaluate_checkpoint(checkpoint_path, cache_dir, split: str = "test", batch_size: int = 32, device: str = "auto",
                        samples: int = 6, ap_bins: int = 1000, train_subset: int = 0) -> CheckpointEvaluation:
    """Score a checkpoint on `split` (and on `train_subset` training images: train_subset_scores), keep
    the class prior's per-image counts on the same images, and predict the first `samples`
    validation images. Figures: segbench.model_figures."""
    dev = resolve_device(device)
    model, ckpt = load_checkpoint(checkpoint_path)
    task = get_task(ckpt.get("task", "segmentation"))
    manifest = load_manifest(cache_dir)
    split = resolve_split(manifest, split, str(cache_dir))
    data = task.dataset(cache_dir, split)
    if list(ckpt["class_names"]) != list(data.class_names):
        raise DataError(f"{checkpoint_path}: trained for classes {ckpt['class_names']} but {cache_dir} has "
                        f"{data.class_names}; re-run training on this data")
    model = model.to(dev)
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    evaluation = run_evaluation(model, loader, task, len(data.class_names), data.manifest["ignore_index"], dev,
                                ap_bins=ap_bins, per_image=True)
    report = {"split": split, "split_source": split_source(manifest, split), **evaluation.report(data.class_names)}
    report.update(task.baselines(data, report))
    report.update(train_subset_scores(model, task, cache_dir, train_subset, batch_size, dev, evaluation.scores))
    ignore = data.manifest["ignore_index"]
    per_image = {**evaluation.per_image(), "prior_mask_counts": prior_mask_counts(
        task.dataset(cache_dir, "train").masks, data.masks, len(data.class_names), ignore)}
    report["env"] = fingerprint()  # every metrics file says where it was made
    val = data if split == "val" else task.dataset(cache_dir, "val")
    return CheckpointEvaluation(report=report, confusion=evaluation.confusion,
                                class_names=list(data.class_names), split=split, per_image=per_image,
                                samples=predict_samples(model, val, samples, dev))
