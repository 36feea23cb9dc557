"""Where the pipeline's outputs live: the one place that knows.

dvc.yaml declares these paths as outs, metrics and plots; the CLI writes them, the report reads
them back. Spelling them once here (and checking dvc.yaml against this module in
tests/test_dag.py) keeps the three from drifting apart. Paths are relative to the repository
root, where DVC runs the stages. A leaf module: it imports nothing from segbench.
"""
from __future__ import annotations

from pathlib import Path

RAW_DIR = Path("data/raw")
PROCESSED_DIR = Path("data/processed")
CHECKPOINT_DIR = Path("data/checkpoints")
METRICS_DIR = Path("metrics")
PLOTS_DIR = Path("plots")
# The machine and software this run measures on (stage `environment`, segbench.environment): the
# profile stages depend on it, so a new machine re-profiles and the same one does not. In git.
ENVIRONMENT_PATH = METRICS_DIR / "environment.json"
# One file per model naming its code and the code's hashes (stage `model_code`, segbench.models.code):
# a model's stages depend on its own file, so an edit to one architecture re-runs its models only.
MODEL_CODE_DIR = Path("data/model_code")

METRIC_PARTS = ("train", "eval", "profile")  # metrics/<model>/<part>.json, one per per-model stage

# The report's figures: plots/<name>.csv (the data `dvc plots` draws) and plots/<name>.png.
REPORT_FIGURES = ("miou_vs_train_time", "miou_vs_latency_cpu", "miou_vs_latency_cuda", "miou_vs_size",
                  "miou_vs_gflops", "iou_per_class", "training_curves", "depth_rmse_vs_cost",
                  "val_miou_vs_train_time", "miou_vs_resources")
# Figures of what a run may not measure (GPU latency, depth) live in one folder out, written only when
# measured: DVC requires every declared out to exist, and `dvc plots` reports a declared plot file that is
# missing as an error, while a folder's definition draws whatever files it holds. The folder always holds
# miou_vs_resources (throughput and peak memory, measured by every run): git keeps no empty folder, and a
# missing folder out would make a fresh clone's `dvc status` call the plot stage changed.
MEASURED_DIR_NAME = "measured"
MEASURED_FIGURES = ("miou_vs_resources", "miou_vs_latency_cuda", "depth_rmse_vs_cost")
# The page `dvc plots show` fills (.dvc/config: plots.html_template = ../plots/report_template.html).
REPORT_TEMPLATE = PLOTS_DIR / "report_template.html"


# --- per model and seed (train@<model>-<seed>, evaluate@<model>-<seed>) --------------------------
# Each training seed of a model has its own checkpoint and its own metrics under .../seeds/<seed>/;
# the aggregate stage summarises them into the model's metrics/<model>/{train,eval}.json.

SEED_PARTS = ("train", "eval")  # metrics/<model>/seeds/<seed>/<part>.json


def checkpoint_path(model: str, seed: int) -> Path:
    return CHECKPOINT_DIR / model / f"seed{seed}.pt"


def seeds_dir(model: str, root: Path) -> Path:
    """<root>/<model>/seeds: every seed's files (root: METRICS_DIR or PLOTS_DIR)."""
    return Path(root) / model / "seeds"


def seed_metrics_path(model: str, seed: int, part: str, metrics_dir: Path = METRICS_DIR) -> Path:
    if part not in SEED_PARTS:
        raise ValueError(f"seed metrics part {part!r}: expected one of {', '.join(SEED_PARTS)}")
    return seeds_dir(model, metrics_dir) / str(seed) / f"{part}.json"


def per_image_path(model: str, seed: int, metrics_dir: Path = METRICS_DIR) -> Path:
    """The evaluated split's per-image statistics (segbench.stats): what the bootstrap resamples."""
    return seeds_dir(model, metrics_dir) / str(seed) / "per_image.npz"


def train_log_dir(model: str, seed: int, plots_dir: Path = PLOTS_DIR) -> Path:
    """The DVCLive log of one training run (its per-epoch curves)."""
    return seeds_dir(model, plots_dir) / str(seed) / "train_log"


def samples_path(model: str, seed: int, metrics_dir: Path = METRICS_DIR) -> Path:
    """The first validation images with this seed's predictions (segbench.samples): aggregate draws them."""
    return seeds_dir(model, metrics_dir) / str(seed) / "samples.npz"


# --- per model (aggregate@<model>, profile@<model>) -----------------------------------------------

def model_code_path(model: str) -> Path:
    """The files a model is built from and their SHA-256 (train, evaluate and profile depend on it)."""
    return MODEL_CODE_DIR / f"{model}.json"


def metrics_path(model: str, part: str, metrics_dir: Path = METRICS_DIR) -> Path:
    """metrics/<model>/<part>.json: train and eval summarise the seeds (aggregate), profile is once per model."""
    if part not in METRIC_PARTS:
        raise ValueError(f"metrics part {part!r}: expected one of {', '.join(METRIC_PARTS)}")
    return Path(metrics_dir) / model / f"{part}.json"


def model_plots_dir(model: str, plots_dir: Path = PLOTS_DIR) -> Path:
    return Path(plots_dir) / model


def confusion_csv(model: str) -> Path:
    """The confusion matrix (every seed's pooled) as DVC's confusion template wants it (rows of actual, predicted)."""
    return model_plots_dir(model) / "confusion.csv"


def confusion_matrix_csv(model: str) -> Path:
    """The confusion matrix as a table of counts (every seed's pooled)."""
    return model_plots_dir(model) / "confusion_matrix.csv"


def confusion_png(model: str) -> Path:
    return model_plots_dir(model) / "confusion.png"


def predictions_png(model: str) -> Path:
    """The first validation images, every seed's prediction side by side."""
    return model_plots_dir(model) / "predictions.png"


def aggregate_plot_files(model: str) -> list[Path]:
    """Every file the aggregate stage writes under plots/<model>."""
    return [confusion_csv(model), confusion_matrix_csv(model), confusion_png(model), predictions_png(model)]


# --- across models (the plot stage) --------------------------------------------------------------

def report_figure(name: str, plots_dir: Path = PLOTS_DIR) -> tuple[Path, Path]:
    """A report figure's data file and PNG."""
    if name not in REPORT_FIGURES:
        raise ValueError(f"report figure {name!r}: not in segbench.paths.REPORT_FIGURES (nor in dvc.yaml)")
    folder = Path(plots_dir) / MEASURED_DIR_NAME if name in MEASURED_FIGURES else Path(plots_dir)
    return folder / f"{name}.csv", folder / f"{name}.png"


def measured_dir(plots_dir: Path = PLOTS_DIR) -> Path:
    """The folder out of the figures a run may not measure (MEASURED_FIGURES)."""
    return Path(plots_dir) / MEASURED_DIR_NAME


def summary_csv(plots_dir: Path = PLOTS_DIR) -> Path:
    return Path(plots_dir) / "summary.csv"


def summary_md(plots_dir: Path = PLOTS_DIR) -> Path:
    return Path(plots_dir) / "summary.md"


def report_files(plots_dir: Path = PLOTS_DIR) -> list[Path]:
    """Every file build_report writes (the plot stage's outs, less the page template)."""
    fixed = [name for name in REPORT_FIGURES if name not in MEASURED_FIGURES]
    figures = [path for name in fixed for path in report_figure(name, plots_dir)]
    return [*figures, measured_dir(plots_dir), summary_csv(plots_dir), summary_md(plots_dir)]
