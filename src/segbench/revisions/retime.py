"""`segbench diff --retime`: latency verdicts between two revisions that survive a re-run.

Timings from two runs are not comparable on shared machines (a re-run of one commit measured every
latency lower, 0.63-0.97x): the drift between runs moves all of them together. What compares is a
ratio measured side by side (pyperf's habit): each revision's code is checked out into a temporary
`git worktree` (the working tree itself for `workspace`), and in alternating rounds (A then B, then B
then A, ...) a fresh process per revision (PYTHONPATH=<checkout>/src) builds each model from that
revision's own params entry (random initialisation, fixed seed: weights do not change latency) and
times it with segbench's own latency routine (segbench.latency.time_round) at A's profiled sizes and
CPU backends. Per row, Welch's t on the log medians over rounds, Holm over every row (the policy of
quality's verdicts): `better` / `worse` when rejected, else `same`, with the ratio B / A of the rounds'
geometric means.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as sps

from ..report.cost_tests import Estimate, welch
from ..stats import holm_reject
from .read import RevisionError

# Run in the revision's checkout, with its segbench first on the path: builds and times every model named.
WORKER = """
import json, sys
import torch
from segbench.config import load_params
from segbench.latency import Budget, RoundJob, time_round
from segbench.models import build_model

job = json.loads(sys.argv[1])
params = load_params("params.yaml")
out = {}
for name in job["models"]:
    spec = params.model(name)
    torch.manual_seed(0)
    model = build_model(spec.arch, job["num_classes"], task=spec.task, **spec.options).eval()
    sizes = [tuple(s) for s in job["sizes"]]
    round_job = RoundJob(sizes=sizes, batch_size=1, budget=Budget(**job["budget"]), backends=tuple(job["backends"]),
                         threads=job["threads"] or torch.get_num_threads(), cuda=False, amp_dtype="bfloat16", agreement=False)
    out[name] = {key.name: timing.median_ms for key, timing in time_round(model, round_job).timings.items()}
print("SEGBENCH_RETIME " + json.dumps(out))
"""


@dataclass(frozen=True)
class RetimedRow:
    model: str
    key: str           # the latency key (latency_cpu_onnxruntime_750x1000_ms)
    a_ms: float        # geometric mean over rounds of the rounds' medians
    b_ms: float
    ratio: float       # B / A
    low: float         # its 95% Welch interval
    high: float
    p: float
    verdict: str       # better / worse / same (Holm over every row); "needs >= 2 rounds"


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode:
        raise RevisionError(f"git {' '.join(args)}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
    return done.stdout.strip()


@contextmanager
def checkout(root: Path, revision: str):
    """The revision's code: the working tree for `workspace`, else a temporary detached git worktree."""
    if revision == "workspace":
        yield Path(root).resolve()
        return
    commit = _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="segbench-retime-") as tmp:
        where = Path(tmp) / "tree"
        _git(root, "worktree", "add", "--detach", "--quiet", str(where), commit)
        try:
            yield where
        finally:
            _git(root, "worktree", "remove", "--force", str(where))


def run_worker(tree: Path, job: dict) -> dict[str, dict[str, float]]:
    """One round of one revision: a fresh process importing that revision's segbench."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(job)], cwd=tree, env=env,
                          capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("SEGBENCH_RETIME ")]
    if done.returncode or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RevisionError(f"--retime: timing the models of {tree} failed: {last}")
    return json.loads(lines[-1].removeprefix("SEGBENCH_RETIME "))


def interleave(trees: tuple[Path, Path], job: dict, rounds: int) -> list[list[dict]]:
    """[side][round] -> {model: {key: median ms}}; A first in even rounds, B first in odd ones."""
    out: list[list[dict]] = [[], []]
    for r in range(rounds):
        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
            out[side].append(run_worker(trees[side], job))
    return out


def verdicts(timed: list[list[dict]]) -> list[RetimedRow]:
    """Per (model, key) both sides timed: Welch on the log medians over rounds, Holm over the rows."""
    a_rounds, b_rounds = timed
    rows, p_values = [], []
    for model in a_rounds[0]:
        for key in a_rounds[0][model]:
            a = np.log([r[model][key] for r in a_rounds if key in r.get(model, {})])
            b = np.log([r[model][key] for r in b_rounds if key in r.get(model, {})])
            if len(b) == 0:
                continue
            rows.append((model, key, a, b))
            enough = len(a) >= 2 and len(b) >= 2 and (a.std() > 0 or b.std() > 0)
            p_values.append(sps.ttest_ind(b, a, equal_var=False).pvalue if enough else 1.0)
    rejected = holm_reject(p_values) if p_values else np.zeros(0, bool)
    out = []
    for (model, key, a, b), p, reject in zip(rows, p_values, rejected):
        if min(len(a), len(b)) < 2:
            diff, low, high, verdict = b.mean() - a.mean(), math.nan, math.nan, "needs >= 2 rounds"
        else:
            c = welch(_log_estimate(b), _log_estimate(a))  # the Welch interval the summary's cost tests use
            diff, low, high = c.diff, c.low, c.high
            verdict = ("better" if diff < 0 else "worse") if reject else "same"
        out.append(RetimedRow(model, key, float(np.exp(a.mean())), float(np.exp(b.mean())), float(np.exp(diff)),
                              float(np.exp(low)), float(np.exp(high)), float(p), verdict))
    return out


def _log_estimate(logs: np.ndarray) -> Estimate:
    return Estimate(float(logs.mean()), float(logs.std(ddof=1)) / math.sqrt(len(logs)), len(logs) - 1, len(logs))


def job_for(params, models: list[str]) -> dict:
    """What both sides time: A's training size and profile.input_sizes, A's CPU backends, budget and threads."""
    from ..sections import DEFAULT_PROFILED_SIZE

    profile = params.profile
    sizes = [list(params.data.image_size), *[list(s) for s in (profile.input_sizes
                                                             if profile.input_sizes is not None else [DEFAULT_PROFILED_SIZE])]]
    source = getattr(params.data, params.data.dataset, None)
    classes = getattr(source, "num_classes", None) or len(getattr(source, "classes", None) or ()) or 2
    budget = {"warmup": profile.warmup, "min_runs": profile.min_runs, "max_runs": profile.max_runs,
              "time_budget_s": profile.time_budget_s}
    return {"models": models, "sizes": sizes, "backends": list(profile.backends), "budget": budget,
            "threads": profile.threads, "num_classes": int(classes)}  # 0: torch's default, as the profile stage


def retime(a: str, b: str, root: Path = Path("."), rounds: int = 5, params_file: str = "params.yaml") -> list[RetimedRow]:
    """Re-time the models both revisions define, side by side, and compare them (module doc)."""
    from ..config import load_params

    if rounds < 2:
        raise RevisionError(f"--rounds {rounds}: a verdict needs at least 2 rounds per revision")
    with ExitStack() as stack:
        trees = (stack.enter_context(checkout(root, a)), stack.enter_context(checkout(root, b)))
        params = [load_params(tree / params_file) for tree in trees]
        models = [m for m in params[0].models if m in params[1].models]
        if not models:
            raise RevisionError(f"--retime: {a} and {b} define no model in common")
        return verdicts(interleave(trees, job_for(params[0], models), rounds))


def render(rows: list[RetimedRow], a: str, b: str, rounds: int) -> str:
    """A plain table: one row per model and latency, the verdict with the ratio and its interval."""
    lines = [f"Latency re-timed side by side on this machine now ({rounds} interleaved rounds each; "
             f"Welch on log medians, Holm over {len(rows)} rows):",
             f"{'model':<28} {'latency':<38} {a + ' (ms)':>12} {b + ' (ms)':>12}  verdict (B / A, 95% CI)"]
    for r in rows:
        lines.append(f"{r.model:<28} {r.key:<38} {r.a_ms:>12.3f} {r.b_ms:>12.3f}  "
                     f"{r.verdict} ({r.ratio:.3f}x [{r.low:.3f}, {r.high:.3f}])")
    return "\n".join(lines)
