"""Fabricated outputs of the per-model stages, so the report can be tested without training.

Three models chosen to exercise the Pareto logic:
  big    the best mIoU, the highest costs, the only one with GPU (CUDA) keys
  small  cheaper, lower mIoU
  twin   the same mIoU and training time as `small` (a tie: both on that front), a larger size
         (dominated by `small` there), zero GFLOPs (alone on that front's cheap end, pushing
         `small` off it), and no latency at the extra profiled size
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CLASSES = ["background", "disk", "pole"]
MODELS = ("big", "small", "twin")

EVAL = {
    "big": {"miou": 0.6, "iou": [0.9, 0.8, 0.1]},
    "small": {"miou": 0.5, "iou": [0.85, 0.65, None]},   # pole undefined: absent from truth and prediction
    "twin": {"miou": 0.5, "iou": [0.8, 0.7, None]},
}
TRAIN_TIME = {"big": 120.0, "small": 10.0, "twin": 10.0}      # 12x: a log axis
LATENCY = {"big": 20.0, "small": 2.0, "twin": 2.0}            # exactly 10x: linear
LATENCY_48x64 = {"big": 31.0, "small": 3.0}                   # twin: not measured at this size
SIZE = {"big": 40.0, "small": 1.0, "twin": 5.0}
GFLOPS = {"big": 2.0, "small": 0.1, "twin": 0.0}
PARAMS = {"big": 10_000_000, "small": 250_000, "twin": 1_250_000}


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def fake_metrics(root: Path, models=MODELS) -> None:
    """metrics/<m>/{train,eval,profile}.json as the stages write them."""
    for m in models:
        ev = EVAL[m]
        write_json(root / "metrics" / m / "eval.json", {
            "split": "test", "miou": ev["miou"], "mrecall": ev["miou"] + 0.05, "accuracy": 0.9, "mdice": ev["miou"] + 0.1,
            "iou_per_class": dict(zip(CLASSES, ev["iou"])),
        })
        write_json(root / "metrics" / m / "train.json", {
            "train_time_s": TRAIN_TIME[m], "epochs": 3, "best_epoch": 3, "best_val_miou": ev["miou"], "images_per_s": 50.0,
        })
        profile = {"params": PARAMS[m], "size_mb": SIZE[m], "gflops": GFLOPS[m], "input_height": 32, "input_width": 32,
                   "threads": 2, "latency_cpu_ms": LATENCY[m], "latency_cpu_p90_ms": LATENCY[m] * 1.2,
                   "latency_cpu_min_ms": LATENCY[m] * 0.9, "latency_cpu_stop_reason": "stable"}
        if m in LATENCY_48x64:
            profile["latency_cpu_48x64_ms"] = LATENCY_48x64[m]
        if m == "big":
            profile.update({"latency_cuda_ms": 1.5, "latency_cuda_48x64_ms": 2.5, "latency_cuda_bf16_ms": 1.0,
                            "cuda_peak_allocated_mb": 100.0})
        write_json(root / "metrics" / m / "profile.json", profile)


def fake_train_logs(root: Path, models=("big", "small")) -> None:
    """plots/<m>/train_log/plots/metrics/<metric>.tsv in DVCLive's layout (step from 0)."""
    for k, m in enumerate(models):
        base = root / "plots" / m / "train_log" / "plots" / "metrics"
        base.mkdir(parents=True, exist_ok=True)
        for metric, start, stepping in (("train_loss", 1.5, -0.3), ("val_loss", 1.4, -0.25), ("val_miou", 0.2, 0.1),
                                        ("lr", 0.01, -0.002)):
            rows = "".join(f"{step}\t{start + stepping * step + 0.01 * k}\n" for step in range(3))
            (base / f"{metric}.tsv").write_text(f"step\t{metric}\n{rows}")


def fake_evaluate_plots(root: Path, models=MODELS) -> None:
    """The evaluate stage's per-model plots: confusion.csv (DVC confusion template) and two PNGs."""
    from matplotlib.figure import Figure

    for m in models:
        out = root / "plots" / m
        out.mkdir(parents=True, exist_ok=True)
        rows = [f"{a},{p}" for a in CLASSES for p in CLASSES for _ in range(2 if a == p else 1)]
        (out / "confusion.csv").write_text("actual,predicted\n" + "\n".join(rows) + "\n")
        (out / "confusion_matrix.csv").write_text("actual,predicted,pixels,share\n")
        for name in ("confusion.png", "predictions.png"):
            fig = Figure(figsize=(2, 2))
            fig.subplots().imshow(np.random.default_rng(0).random((4, 4)))
            fig.savefig(out / name, format="png", dpi=40)


def fake_run(root: Path, models=MODELS) -> None:
    fake_metrics(root, models)
    fake_train_logs(root, [m for m in ("big", "small") if m in models])
    fake_evaluate_plots(root, models)
