"""The plan: DVC's own graph and order, as `dvc repro [TARGET ...]` would walk it."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..registry import did_you_mean
from .resources import ClusterError


@dataclass
class Plan:
    stages: list            # dvc.stage.Stage, in DVC's order (upstream first)
    upstream: dict          # stage -> the stages of the plan it depends on
    sources: dict = None    # stage -> every stage whose outs it reads (in the plan or not, `dvc add`ed data too)

    def names(self) -> list[str]:
        return [stage.addressing for stage in self.stages]


def open_repo(root: str):
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(root)
    except NotDvcRepoError:
        raise ClusterError(f"{root}: not a DVC project (no .dvc folder); run it where `dvc repro` would run") from None


def _collect(repo, targets: list[str]) -> list:
    from dvc.exceptions import DvcException
    from dvc.repo.reproduce import collect_stages

    stages = []
    for target in targets:
        try:
            stages.extend(collect_stages(repo, [target]))
        except DvcException:
            names = [stage.addressing for stage in repo.index.stages]
            raise ClusterError(f"{target}: not a stage of dvc.yaml{did_you_mean(target, names)}; "
                               f"stages: {', '.join(names[:8])}{', ...' if len(names) > 8 else ''}") from None
    return stages


def build_plan(repo, targets: list[str], downstream: bool = False) -> Plan:
    """The stages `dvc repro TARGETS [--downstream]` visits, in its order, with their upstream edges
    (dvc.repo.reproduce: collect_stages, get_active_graph, plan_repro). Stages without a command
    (`dvc add`ed data) and frozen stages are left out: DVC only verifies them."""
    from dvc.repo.reproduce import get_active_graph, plan_repro

    stages = _collect(repo, targets or ["dvc.yaml"])
    graph = get_active_graph(repo.index.graph)
    steps = [s for s in plan_repro(graph, stages, downstream=downstream) if s.cmd and not s.frozen]
    chosen = set(steps)
    return Plan(steps, {s: [u for u in graph.successors(s) if u in chosen] for s in steps},
                {s: list(graph.successors(s)) for s in steps})


def removable_outs(stage) -> tuple[str, ...]:
    """The outs DVC deletes before a run (all but persist ones), relative to the workspace."""
    return tuple(os.path.relpath(out.fs_path, stage.repo.root_dir) for out in stage.outs if not out.persist)
