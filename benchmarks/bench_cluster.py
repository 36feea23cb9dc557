"""segbench cluster-repro on the committed default run's DAG: each stage sleeps its measured time (scaled).

Builds a DVC project with the default's stages and edges (dvc.yaml's, read through DVC), each command
a sleep of the stage's duration times --scale, and runs `segbench cluster-repro --workers N` for each
N. Prints the makespan against the critical-path bound and a sequential run, the profile stages'
overlaps with any other stage (from the stages' own timestamps; must be 0), and the per-stage overhead
of the coordinator plus Dask beside `dvc repro`'s own bookkeeping on the same project.

Durations: train@M-S from metrics/M/seeds/S/train.json `train_time_s` (measured); the others are not
recorded per stage, so they are stated estimates (ESTIMATE_S; profile: 700 s for 7 models, the
default run's profile time). Times a busy machine: read ratios, not absolutes.

    python benchmarks/bench_cluster.py [--scale 0.02] [--workers 1 2 4 8 21]
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

import networkx as nx
import yaml

REPO = Path(__file__).resolve().parents[1]
ESTIMATE_S = {"download": 5, "preprocess": 10, "model_code": 3, "environment": 3, "evaluate": 8, "aggregate": 6,
              "profile": 100, "plot": 30}
SLEEP = '''\
import json, pathlib, sys, time
name, seconds, out = sys.argv[1], float(sys.argv[2]), pathlib.Path(sys.argv[3])
start = time.time(); time.sleep(seconds)
out.parent.mkdir(parents=True, exist_ok=True); out.write_text(name)
pathlib.Path("times").mkdir(exist_ok=True)
pathlib.Path("times", name + ".json").write_text(json.dumps([start, time.time()]))
'''


def default_graph() -> nx.DiGraph:
    """stage -> upstream stage edges of the committed dvc.yaml, by name."""
    from dvc.repo import Repo

    graph = Repo(str(REPO)).index.graph
    return nx.DiGraph([(s.name, u.name) for s in graph for u in graph.successors(s)])


def durations(graph: nx.DiGraph) -> dict[str, float]:
    found = {}
    for name in graph:
        group, _, key = name.partition("@")
        if group == "train":
            model, _, seed = key.rpartition("-")
            found[name] = json.loads((REPO / "metrics" / model / "seeds" / seed / "train.json").read_text())["train_time_s"]
        else:
            found[name] = ESTIMATE_S[group]
    return found


def _sleep(name: str, seconds: float, out: str, deps: list[str]) -> dict:
    return {"cmd": f"python sleep.py {name} {seconds:.3f} {out}", "deps": ["sleep.py", *deps], "outs": [out]}


def replay_dvc_yaml(seconds: dict[str, float], scale: float) -> dict:
    """The default's stages under the same names (so the same resources) and edges; each command sleeps.
    Per-model and per-seed stages are `foreach` over their keys, as dvc.yaml's matrix names them."""
    stages = {name: _sleep(name, seconds[name] * scale, f"out/{name}.txt", deps) for name, deps in (
        ("download", []), ("preprocess", ["out/download.txt"]), ("model_code", []), ("environment", []))}
    runs = [n.partition("@")[2] for n in seconds if n.startswith("train@")]
    models = sorted({r.rpartition("-")[0] for r in runs})
    first = {m: min((r for r in runs if r.rpartition("-")[0] == m), key=lambda r: int(r.rpartition("-")[2])) for m in models}
    per_run = {"train": ["out/preprocess.txt", "out/model_code.txt"],
               "evaluate": ["out/preprocess.txt", "out/model_code.txt", "out/train/${item.model}/${item.seed}.txt"]}
    for group, deps in per_run.items():
        items = {r: {"model": r.rpartition("-")[0], "seed": r.rpartition("-")[2],
                     "secs": round(seconds[f"{group}@{r}"] * scale, 3)} for r in runs}
        out = f"out/{group}/${{item.model}}/${{item.seed}}.txt"
        stages[group] = {"foreach": items, "do": {"cmd": f"python sleep.py {group}@${{key}} ${{item.secs}} {out}",
                                                 "deps": ["sleep.py", *deps], "outs": [out]}}
    per_model = {"aggregate": ["out/train/${key}", "out/evaluate/${key}"],
                 "profile": ["out/model_code.txt", "out/environment.txt", "out/train/${key}/${item.first}.txt"]}
    for group, deps in per_model.items():
        items = {m: {"secs": round(seconds[f"{group}@{m}"] * scale, 3), "first": first[m].rpartition("-")[2]} for m in models}
        out = f"out/{group}/${{key}}.txt"
        stages[group] = {"foreach": items, "do": {"cmd": f"python sleep.py {group}@${{key}} ${{item.secs}} {out}",
                                                 "deps": ["sleep.py", *deps], "outs": [out]}}
    stages["plot"] = _sleep("plot", seconds["plot"] * scale, "out/plot.txt",
                            ["out/train", "out/evaluate", "out/aggregate", "out/profile", "out/environment.txt"])
    return {"stages": stages}


def replay_project(root: Path, seconds: dict[str, float], scale: float) -> None:
    root.mkdir(parents=True)
    (root / "dvc.yaml").write_text(yaml.safe_dump(replay_dvc_yaml(seconds, scale), sort_keys=False))
    (root / "sleep.py").write_text(SLEEP)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                [sys.executable, "-m", "dvc", "config", "core.analytics", "false"]):
        subprocess.run(cmd, cwd=root, check=True)


def check_same_graph(root: Path, graph: nx.DiGraph) -> None:
    """The replay has the default's stages and edges (else its numbers describe another DAG)."""
    from dvc.repo import Repo

    replay = Repo(str(root)).index.graph
    edges = {(s.name, u.name) for s in replay for u in replay.successors(s)}
    assert edges == set(graph.edges), sorted(edges ^ set(graph.edges))[:5]


def critical_path(graph: nx.DiGraph, seconds: dict[str, float]) -> float:
    finish: dict[str, float] = {}
    for name in reversed(list(nx.topological_sort(graph))):  # upstream first
        finish[name] = seconds[name] + max((finish[u] for u in graph.successors(name)), default=0.0)
    return max(finish.values())


def spans(root: Path) -> dict[str, tuple[float, float]]:
    return {p.stem: tuple(json.loads(p.read_text())) for p in (root / "times").glob("*.json")}


def profile_overlaps(found: dict[str, tuple[float, float]]) -> int:
    return sum(1 for p, (a, b) in found.items() if p.startswith("profile@")
               for n, (c, d) in found.items() if n != p and a < d and c < b)


def run(cmd: list[str], root: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=root, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.02, help="sleep this share of each stage's duration")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 21])
    parser.add_argument("--no-dvc-baseline", action="store_true", help="skip the sequential `dvc repro` run")
    args = parser.parse_args()
    graph = default_graph()
    seconds = durations(graph)
    stages, total = len(graph), sum(seconds.values()) * args.scale
    bound = critical_path(graph, seconds) * args.scale
    print(f"{stages} stages; scale {args.scale}: sequential sleep {total:.1f} s, critical path {bound:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template"
        replay_project(template, seconds, args.scale)
        check_same_graph(template, graph)
        sequential = float("nan")
        if not args.no_dvc_baseline:
            copy = Path(tmp) / "dvc"
            shutil.copytree(template, copy)
            sequential = run([sys.executable, "-m", "dvc", "repro", "-q"], copy)
            print(f"dvc repro (sequential): {sequential:.1f} s wall; bookkeeping {(sequential - total) / stages:.2f} s/stage")
        # bound: max(critical path, sleep total / workers); speedup: dvc repro's wall / this wall
        print("workers  wall_s  makespan_s  bound_s  wall/bound  speedup_vs_dvc_repro  profile_overlaps  overhead_s/stage")
        for n in args.workers:
            copy = Path(tmp) / f"w{n}"
            shutil.copytree(template, copy)
            wall = run([sys.executable, "-m", "segbench", "cluster-repro", "--workers", str(n)], copy)
            found = spans(copy)
            makespan = max(b for _, b in found.values()) - min(a for a, _ in found.values())
            lower = max(bound, total / n)
            overhead = (wall - lower) / stages if n == 1 else float("nan")
            print(f"{n:7d}  {wall:6.1f}  {makespan:10.1f}  {lower:7.1f}  {wall / lower:9.2f}x  {sequential / wall:19.2f}x"
                  f"  {profile_overlaps(found):16d}  {overhead:16.2f}")


if __name__ == "__main__":
    main()
