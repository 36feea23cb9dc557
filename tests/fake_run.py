"""Fabricated outputs of the per-(model, seed) stages, so aggregate and the report can be tested
without training.

Per-image statistics are made first (per image and class: tp, fp, fn pixels on one fixed test
set), and each seed's eval.json is computed from them, as the evaluate stage does. Four models
chosen to exercise the significance-aware Pareto logic:
  big    the best mIoU by far, the highest costs, the only one with GPU (CUDA) keys
  small  cheaper, clearly lower mIoU
  twin   the very same predictions as `small` (statistically tied: a difference of exactly 0), the same
         training time, a larger size, zero GFLOPs and no latency at the extra profiled size
  worse  clearly below `small` and costlier in everything: off every front
Class "pole" is absent from the truth and never predicted: its IoU is undefined for every model.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segbench.samples import PredictionSamples

CLASSES = ["background", "disk", "pole"]
MODELS = ("big", "small", "twin", "worse")
SEEDS = (0, 1, 2)
IMAGES = 20

# target IoU of background and disk (pole: undefined)
QUALITY = {"big": (0.95, 0.85), "small": (0.85, 0.65), "twin": (0.85, 0.65), "worse": (0.7, 0.4)}
PREDICTIONS = {"twin": "small"}  # twin predicts exactly what small does (same seeds, same images)
TRAIN_TIME = {"big": 120.0, "small": 10.0, "twin": 10.0, "worse": 30.0}     # 12x: a log axis
LATENCY = {"big": 20.0, "small": 2.0, "twin": 2.0, "worse": 5.0}            # exactly 10x: linear
LATENCY_48x64 = {"big": 31.0, "small": 3.0, "worse": 6.0}                   # twin: not measured at this size
SIZE = {"big": 40.0, "small": 1.0, "twin": 5.0, "worse": 8.0}
GFLOPS = {"big": 2.0, "small": 0.1, "twin": 0.0, "worse": 0.5}
PARAMS = {"big": 10_000_000, "small": 250_000, "twin": 1_250_000, "worse": 2_000_000}
# The environment fingerprint every fabricated metrics file records (segbench.environment's keys).
ENV = {"cpu": "Test CPU 9000", "cpu_features": ["avx2", "fma"], "logical_cores": 2, "physical_cores": 2,
       "usable_cores": 2, "python": "3.11.7", "torch": "2.14.1", "torchvision": "0.29.1", "numpy": "2.4.6",
       "cuda": None, "gpu": None, "os": "Linux", "id": "0e1e2e3e"}
QUIET = {"other_cpu": 0.01, "other_cpu_max": 0.03, "steal": 0.0, "seconds": 10.0, "samples": 20, "threshold": 0.15,
         "contended": False}


def run_cli(root: Path, params: dict, *args: str) -> None:
    """`segbench <args>` (a stage's command) in `root` with `params` as its params.yaml; it must succeed."""
    import os

    import yaml

    from segbench.cli import main

    (root / "params.yaml").write_text(yaml.safe_dump(params))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(list(args)) == 0
    finally:
        os.chdir(cwd)


def edit_json(path: Path, changes: dict) -> None:
    """Merge `changes` into the JSON object in `path` (a metrics file made different on purpose)."""
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def truth_pixels() -> np.ndarray:
    """[images, classes] true pixels per class: the one test set every model is scored on."""
    rng = np.random.default_rng(1234)
    truth = np.zeros((IMAGES, len(CLASSES)), np.int64)
    truth[:, 0] = rng.integers(500, 700, IMAGES)
    truth[:, 1] = rng.integers(200, 400, IMAGES)
    return truth


def per_image_counts(model: str, seed: int) -> np.ndarray:
    """[images, classes, (tp, fp, fn)]: background and disk confused with each other, near the target IoU."""
    source = PREDICTIONS.get(model, model)
    rng = np.random.default_rng([sum(map(ord, source)), seed])
    truth = truth_pixels()
    counts = np.zeros((IMAGES, len(CLASSES), 3), np.int64)
    offset = rng.normal(0, 0.01)  # the seed's own luck
    for c, iou in enumerate(QUALITY[source]):
        share = 2 * iou / (1 + iou)  # tp / truth when fp == fn: IoU = share / (2 - share)
        r = np.clip(share + offset + rng.normal(0, 0.03, IMAGES), 0.05, 1.0)
        counts[:, c, 0] = np.round(r * truth[:, c])
        counts[:, c, 2] = truth[:, c] - counts[:, c, 0]
    counts[:, 0, 1], counts[:, 1, 1] = counts[:, 1, 2], counts[:, 0, 2]  # a missed disk pixel is a background one
    return counts


def prior_counts() -> np.ndarray:
    """[images, classes, (tp, fp, fn)] of the class prior: background everywhere (the most frequent class)."""
    truth = truth_pixels()
    counts = np.zeros((IMAGES, len(CLASSES), 3), np.int64)
    counts[:, 0, 0], counts[:, 0, 1] = truth[:, 0], truth[:, 1]
    counts[:, 1, 2] = truth[:, 1]
    return counts


TRAIN_GAP = 0.04  # train_miou - miou of every fabricated seed: under plot.overfit_gap


def eval_report(counts: np.ndarray) -> dict:
    """What the evaluate stage writes for these counts (segbench.metrics' definitions)."""
    tp, fp, fn = (counts.sum(0)[:, k].astype(float) for k in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        dice = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)

    def listed(values):
        return {name: None if np.isnan(v) else float(v) for name, v in zip(CLASSES, values)}
    return {"split": "test", "split_source": "the dataset's own", "miou": float(np.nanmean(iou)),
            "mrecall": float(np.nanmean(recall)), "accuracy": float(tp.sum() / (tp + fn).sum()),
            "mdice": float(np.nanmean(dice)), "iou_per_class": listed(iou), "recall_per_class": listed(recall)}


def confusion(counts: np.ndarray) -> np.ndarray:
    summed = counts.sum(0)
    matrix = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    matrix[0, 0], matrix[1, 1] = summed[0, 0], summed[1, 0]
    matrix[0, 1], matrix[1, 0] = summed[0, 2], summed[1, 2]
    return matrix


def fake_seed_outputs(root: Path, models=MODELS, seeds=SEEDS) -> None:
    """What train@<m>-<s> and evaluate@<m>-<s> write: per-seed train.json, eval.json, per_image.npz,
    samples.npz."""
    for m in models:
        for seed in seeds:
            counts = per_image_counts(m, seed)
            report = eval_report(counts)
            base = root / "metrics" / m / "seeds" / str(seed)
            train = {"train_miou": report["miou"] + TRAIN_GAP, "generalization_gap": TRAIN_GAP}
            write_json(base / "eval.json", report | train | {"env": ENV})
            write_json(base / "train.json", {
                "train_time_s": TRAIN_TIME[m] * (1 + 0.01 * seed), "epochs": 3, "best_epoch": 3,
                "best_val_miou": report["miou"] + 0.01, "images_per_s": 50.0, "device": "cpu", "threads": 2,
                "stopped_early": False, "converged": True, "late_gain": 0.002, "late_epochs": 2, "contention": QUIET,
                "env": ENV})
            np.savez_compressed(base / "per_image.npz", mask_counts=counts, confusion=confusion(counts),
                                class_names=np.asarray(CLASSES), prior_mask_counts=prior_counts())
            truth = np.random.default_rng(0).integers(0, len(CLASSES), (2, 8, 8))
            prediction = np.where(np.random.default_rng(seed).random((2, 8, 8)) < 0.8, truth, 0)
            samples = PredictionSamples(np.zeros((2, 8, 8, 3), np.uint8), truth, prediction, [0, 1])
            np.savez_compressed(base / "samples.npz", **samples.arrays())


def fake_profiles(root: Path, models=MODELS) -> None:
    """metrics/<m>/profile.json as the profile stage writes it."""
    for m in models:
        profile = {"params": PARAMS[m], "size_mb": SIZE[m], "gflops": GFLOPS[m], "input_height": 32, "input_width": 32,
                   "threads": 2, "latency_cpu_ms": LATENCY[m], "latency_cpu_p90_ms": LATENCY[m] * 1.2,
                   "latency_cpu_min_ms": LATENCY[m] * 0.9, "latency_cpu_stop_reason": "stable", "contention": QUIET,
                   "throughput_cpu_ips": 4000.0 / LATENCY[m], "peak_rss_mb": 300.0 + 10 * SIZE[m], "env": ENV}
        if m in LATENCY_48x64:
            profile["latency_cpu_48x64_ms"] = LATENCY_48x64[m]
        if m == "big":
            profile.update({"latency_cuda_ms": 1.5, "latency_cuda_48x64_ms": 2.5, "latency_cuda_bf16_ms": 1.0,
                            "cuda_peak_allocated_mb": 100.0})
        write_json(root / "metrics" / m / "profile.json", profile)


def fake_train_logs(root: Path, models=("big", "small"), seeds=SEEDS) -> None:
    """plots/<m>/seeds/<s>/train_log/plots/metrics/<metric>.tsv in DVCLive's layout (step from 0); elapsed_s:
    TRAIN_TIME spread evenly over the 3 epochs."""
    for k, m in enumerate(models):
        for seed in seeds:
            base = root / "plots" / m / "seeds" / str(seed) / "train_log" / "plots" / "metrics"
            base.mkdir(parents=True, exist_ok=True)
            for metric, start, stepping in (("train_loss", 1.5, -0.3), ("val_loss", 1.4, -0.25), ("val_miou", 0.2, 0.1),
                                            ("lr", 0.01, -0.002)):
                rows = "".join(f"{step}\t{start + stepping * step + 0.01 * k + 0.001 * seed}\n" for step in range(3))
                (base / f"{metric}.tsv").write_text(f"step\t{metric}\n{rows}")
            seconds = "".join(f"{step}\t{TRAIN_TIME[m] * (1 + 0.01 * seed) * (step + 1) / 3}\n" for step in range(3))
            (base / "elapsed_s.tsv").write_text(f"step\telapsed_s\n{seconds}")


def fake_aggregates(root: Path, models=MODELS, seeds=SEEDS) -> None:
    """Run the aggregate stage's function over the fabricated seeds (metrics/<m>/{train,eval}.json)."""
    import os

    from segbench.aggregate import aggregate_model

    cwd = os.getcwd()
    os.chdir(root)
    try:
        for m in models:
            aggregate_model(m, list(seeds), dpi=40)
    finally:
        os.chdir(cwd)


def fake_metrics(root: Path, models=MODELS, seeds=SEEDS) -> None:
    """Every metrics file the plot stage reads: per-seed outputs, their aggregates and the profiles."""
    fake_seed_outputs(root, models, seeds)
    fake_profiles(root, models)
    fake_aggregates(root, models, seeds)


def fake_run(root: Path, models=MODELS, seeds=SEEDS) -> None:
    fake_metrics(root, models, seeds)
    fake_train_logs(root, [m for m in ("big", "small") if m in models], seeds)
