"""The mask + depth study (params/mask_depth.yaml), run for real with `dvc repro` in a scratch copy
of this repository, then its depth table: each model's depth RMSE against the RMSE of predicting
the training split's mean depth everywhere, and what it cost.

    python benchmarks/bench_mask_depth.py [--params params/mask_depth.yaml] [--subset N] [--epochs N] [--lr X] [--seeds N]
                                          [--models unet_lean_l1 resnet34_unet_l1 ...] [--keep DIR]

--subset sets data.subset (the 24 / 1000-image tiers); --epochs and --lr set train.epochs and
train.lr for every model; --seeds N keeps the file's first N training seeds (each row is the mean
over them); --models keeps only those rows. The copy
lives in a temporary folder (or --keep DIR, to look at its plots afterwards). Asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from scratch import scratch_repo

REPO = Path(__file__).resolve().parents[1]


def mean(metrics: dict) -> dict:
    """A metrics file's scores as numbers: the mean over seeds where aggregate summarised several."""
    return {k: v["mean"] if isinstance(v, dict) and "mean" in v else v for k, v in metrics.items()}


def table(dest: Path, models: list[str]) -> list[dict]:
    rows = []
    for name in models:
        read = lambda part, name=name: mean(json.loads((dest / "metrics" / name / f"{part}.json").read_text()))  # noqa: E731
        ev, train, prof = read("eval"), read("train"), read("profile")
        rows.append({"model": name, "params_m": prof["params"] / 1e6, "depth_rmse": ev["depth_rmse"],
                     "mean_rmse": ev["depth_rmse_mean_baseline"], "x_better": ev["depth_rmse_vs_mean_baseline"],
                     "abs_rel": ev["depth_abs_rel"], "delta1": ev["depth_delta1"], "miou": ev["miou"],
                     "train_s": train["train_time_s"], "cpu_ms": prof["latency_cpu_ms"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=REPO / "params" / "mask_depth.yaml")
    ap.add_argument("--subset", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()

    params = yaml.safe_load(args.params.read_text())
    if args.subset is not None:
        params["data"]["subset"] = args.subset
    if args.epochs is not None:
        params["train"]["epochs"] = args.epochs
    if args.lr is not None:
        params["train"]["lr"] = args.lr
    if args.seeds is not None:
        params["seeds"] = params["seeds"][:args.seeds]
    if args.models:
        params["models"] = {k: v for k, v in params["models"].items() if k in args.models}
    dest = args.keep or Path(tempfile.mkdtemp(prefix="segbench-mask-depth-"))
    dest.mkdir(parents=True, exist_ok=True)
    scratch_repo(dest, params)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=dest, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"dvc repro failed in {dest}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    print(f"dvc repro: {time.perf_counter() - started:.0f} s in {dest} (subset {params['data'].get('subset')})\n")
    header = ("model", "params M", "depth RMSE m", "mean-depth RMSE m", "x better", "AbsRel", "d<1.25", "mIoU",
              "train s", "CPU ms")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in sorted(table(dest, list(params["models"])), key=lambda r: r["depth_rmse"]):
        print(f"| {r['model']} | {r['params_m']:.2f} | {r['depth_rmse']:.3f} | {r['mean_rmse']:.3f} | {r['x_better']:.2f} | "
              f"{r['abs_rel']:.3f} | {r['delta1']:.3f} | {r['miou']:.3f} | {r['train_s']:.0f} | {r['cpu_ms']:.2f} |")
    if args.keep is None:
        shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    main()
