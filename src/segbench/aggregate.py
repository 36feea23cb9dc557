"""One model's seeds summarised: the aggregate stage (aggregate@<model>).

Reads every listed seed's train.json, eval.json and per-image statistics (written by
train@<model>-<seed> and evaluate@<model>-<seed>) and writes the model's metrics/<model>/train.json
and eval.json, in which each measured number becomes {"mean", "std", "n", "ci95_low",
"ci95_high"} over the seeds (segbench.replicates.summarize; per-class values too), plus the
confusion matrix of every seed's predictions pooled and the first validation images with every seed's prediction.

Settings that are not measurements (device, threads, the split, the environment fingerprint) are
kept as they are when every seed agrees, and listed per seed when they do not. The training's
contention record becomes the worst seed's (contended when any seed was). Which seeds count is the params file's
`seeds:`; a seed folder left from an earlier list is not read.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import paths
from .errors import DataError
from .io import load_npz, read_json, save_figure, write_json, write_text
from .replicates import summarize
from .samples import PredictionSamples

# train.json / eval.json keys that describe how the run was made rather than what it measured
SETTINGS = frozenset({"device", "threads", "world_size", "split", "split_source", "env", "late_epochs", "amp"})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def aggregate_reports(reports: list[dict], seeds: list[int]) -> dict:
    """Merge per-seed reports key by key (first-seen order): numbers (null for undefined) become
    summaries, mappings (per-class values) merge recursively, anything else is kept when equal and
    listed per seed otherwise."""
    keys: dict[str, None] = {}
    for report in reports:
        keys.update(dict.fromkeys(report))
    merged: dict[str, Any] = {}
    for key in keys:
        values = [report.get(key) for report in reports]
        present = [v for v in values if v is not None]
        if key in SETTINGS:
            merged[key] = values[0] if all(v == values[0] for v in values) else {"per_seed": dict(zip(map(str, seeds), values))}
        elif key == "contention" and present:
            merged[key] = worst_contention(values, seeds)
        elif all(_is_number(v) for v in present):  # null in every seed: a summary with n 0
            merged[key] = summarize(values)
        elif present and all(isinstance(v, dict) for v in present):
            merged[key] = aggregate_reports([v if isinstance(v, dict) else {} for v in values], seeds)
        elif all(v == values[0] for v in values):
            merged[key] = values[0]
        else:
            merged[key] = {"per_seed": dict(zip(map(str, seeds), values))}
    return merged


def worst_contention(records: list[dict | None], seeds: list[int]) -> dict:
    """The seeds' contention records (segbench.environment) as one: the highest shares, contended
    when any seed was, and which seeds were."""
    present = [(seed, r) for seed, r in zip(seeds, records) if isinstance(r, dict)]
    contended = [seed for seed, r in present if r.get("contended")]
    worst = {k: max(float(r.get(k, 0.0)) for _, r in present) for k in ("other_cpu", "other_cpu_max", "steal")}
    return {**worst, "threshold": present[0][1].get("threshold"), "contended": bool(contended),
            "contended_seeds": contended}


def _read_seed(model: str, seed: int, part: str) -> dict:
    path = paths.seed_metrics_path(model, seed, part)
    if not path.is_file():
        raise DataError(f"{path}: file not found; run `dvc repro {part if part == 'train' else 'evaluate'}@{model}-{seed}` "
                        f"(seed {seed} is listed in seeds:)")
    report = read_json(path)
    if not isinstance(report, dict):
        raise DataError(f"{path}: expected a JSON object of metrics")
    return report


def pooled_confusion(model: str, seeds: list[int]) -> tuple[np.ndarray, list[str]]:
    """The sum of every seed's confusion matrix (the same test images, each seed's predictions)."""
    total, names = None, None
    for seed in seeds:
        path = paths.per_image_path(model, seed)
        data = load_npz(path)
        if "confusion" not in data or "class_names" not in data:
            raise DataError(f"{path}: no confusion matrix or class names; re-run evaluate@{model}-{seed}")
        seed_names = [str(n) for n in data["class_names"]]
        if names is not None and seed_names != names:
            raise DataError(f"{path}: classes {seed_names} differ from seed {seeds[0]}'s {names}; "
                            "the seeds were evaluated on different data: re-run `dvc repro`")
        names = seed_names
        total = data["confusion"].astype(np.int64) if total is None else total + data["confusion"]
    return total, names


def aggregate_model(model: str, seeds: list[int] | tuple[int, ...], dpi: int = 120) -> dict:
    """Write metrics/<model>/{train,eval}.json and plots/<model>/ (confusion, predictions); return
    {"train": ..., "eval": ...} as written."""
    from . import model_figures as figures

    seeds = list(seeds)
    summary = {}
    for part in paths.SEED_PARTS:
        reports = [_read_seed(model, seed, part) for seed in seeds]
        summary[part] = {"seeds": seeds, **aggregate_reports(reports, seeds)}
    matrix, names = pooled_confusion(model, seeds)
    write_text(paths.confusion_csv(model), figures.confusion_plot_csv(matrix, names))
    write_text(paths.confusion_matrix_csv(model), figures.confusion_table_csv(matrix, names))
    pooled = f", {len(seeds)} seeds pooled" if len(seeds) > 1 else ""
    split = summary["eval"].get("split", "evaluation")
    save_figure(figures.confusion_figure(matrix, names, f"confusion matrix ({split} split{pooled}, row-normalised)"),
                paths.confusion_png(model), dpi)
    samples = {f"seed {seed}": PredictionSamples.from_arrays(load_npz(paths.samples_path(model, seed))) for seed in seeds}
    save_figure(figures.predictions_figure(samples, names, "first validation images, every seed's predictions"),
                paths.predictions_png(model), dpi)
    for part in paths.SEED_PARTS:
        write_json(paths.metrics_path(model, part), summary[part])
    return summary
