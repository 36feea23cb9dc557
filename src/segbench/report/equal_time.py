"""Models compared at equal training time, from the DVCLive logs' `elapsed_s` and `val_mIoU` per epoch.

A seed's curve is the best validation mIoU reached so far against the training seconds so far (a
step function: it holds between epochs and after training ends). The budget is `plot.equal_time_s`
or, when unset, the shortest training time among learned models (each model's shortest seed), so
every seed of every learned model has run at least that long. Pure: logs in, tables out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

COLUMNS = ["model", "time_s", "seeds", "val_miou", "val_miou_min", "val_miou_max", "env"]


def best_so_far(log: pd.DataFrame | None) -> np.ndarray:
    """[epochs, 2]: (elapsed_s, best val mIoU so far) of one seed's log; empty without both columns."""
    if log is None or not {"elapsed_s", "val_miou"} <= set(log):
        return np.zeros((0, 2))
    rows = log[["elapsed_s", "val_miou"]].dropna().sort_values("elapsed_s").to_numpy(float)
    if len(rows):
        rows[:, 1] = np.maximum.accumulate(rows[:, 1])
    return rows


def value_at(curve: np.ndarray, t: float) -> float:
    """A seed's best val mIoU within `t` training seconds; NaN before its first epoch."""
    i = int(np.searchsorted(curve[:, 0], t, side="right"))
    return float(curve[i - 1, 1]) if i else math.nan


def time_table(curves: dict[str, list[np.ndarray]], envs: dict[str, str] | None = None) -> pd.DataFrame:
    """Long form on a common grid (every epoch time of every model): per model, from when all its
    seeds have an epoch to the end of its longest seed, the mean over seeds of the best val mIoU so
    far and its lowest and highest seed; `env`: where the model's training was timed."""
    envs = envs or {}
    grid = np.unique(np.concatenate([c[:, 0] for runs in curves.values() for c in runs] or [np.zeros(0)]))
    rows = []
    for model, runs in curves.items():
        runs = [c for c in runs if len(c)]
        if not runs:
            continue
        start, end = max(c[0, 0] for c in runs), max(c[-1, 0] for c in runs)
        for t in grid[(grid >= start) & (grid <= end)]:
            values = [value_at(c, t) for c in runs]
            rows.append([model, t, len(runs), float(np.mean(values)), min(values), max(values), envs.get(model, "")])
    return pd.DataFrame(rows, columns=COLUMNS)


@dataclass(frozen=True)
class EqualTime:
    budget_s: float  # NaN: no learned model logged its training time
    chosen: bool  # True: plot.equal_time_s; False: the shortest learned model's training time
    miou: dict[str, float]  # model -> mean over seeds of the best val mIoU within the budget (NaN: a seed had none)
    per_seed: dict[str, list[float]] = field(default_factory=dict)  # model -> each seed's value (the interval's basis)

    @property
    def best(self) -> str:
        """The model with the highest mIoU at the budget ("" when none has one)."""
        scored = {m: v for m, v in self.miou.items() if not math.isnan(v)}
        return max(scored, key=scored.get) if scored else ""


def equal_time(curves: dict[str, list[np.ndarray]], budget_s: float | None = None) -> EqualTime:
    """Each model's best val mIoU within the budget (`budget_s`, else the shortest learned model's
    training time: the minimum over models of their shortest seed's last epoch time)."""
    ends = [min(c[-1, 0] for c in runs) for runs in curves.values() if runs and all(len(c) for c in runs)]
    budget = float(budget_s) if budget_s is not None else (min(ends) if ends else math.nan)
    miou = {}
    for model, runs in curves.items():
        values = [value_at(c, budget) for c in runs if len(c)] if not math.isnan(budget) else []
        miou[model] = float(np.mean(values)) if values and len(values) == len(runs) else math.nan
    per_seed = {m: [value_at(c, budget) for c in runs] for m, runs in curves.items() if not math.isnan(miou[m])}
    return EqualTime(budget, budget_s is not None, miou, per_seed)
