"""`segbench diff`'s library entry points: load two revisions (or every experiment and a baseline)
and compare them with segbench.revisions.quality. Reads only what the comparison needs: the per-image files of
the models both revisions hold, and dvc.lock only when those are missing.
"""
from __future__ import annotations

from pathlib import Path

from .arrays import PerImageReader
from .params import file_changes
from .quality import Evidence, ExperimentSummary, RevisionDiff, diff_revisions, summarize_experiment
from .read import Revision, RevisionData, RevisionError, evaluated_data, open_scm, read_revision, resolve, shared_models

DEFAULT_RESAMPLES, DEFAULT_BOOTSTRAP_SEED = 2000, 0


def compare_revisions(a: str, b: str, root: Path = Path("."), params_file: str = "params.yaml",
                      resamples: int | None = None) -> RevisionDiff:
    """A and B (git revisions, branches, tags, DVC experiment names, or `workspace`) compared."""
    scm = open_scm(root)
    data_a = read_revision(resolve(a, root, scm), root, scm, params_file)
    data_b = read_revision(resolve(b, root, scm), root, scm, params_file)
    return compare_loaded(data_a, data_b, root, resamples)


def compare_loaded(data_a: RevisionData, data_b: RevisionData, root: Path, resamples: int | None = None) -> RevisionDiff:
    models = shared_models(data_a, data_b)
    count, seed = bootstrap_settings(data_b, data_a)
    evidence = gather_evidence(data_a, data_b, models, root)
    return diff_revisions(data_a, data_b, models, evidence, resamples or count, seed)


def bootstrap_settings(*revisions: RevisionData) -> tuple[int, int]:
    """params `plot.bootstrap` and `plot.bootstrap_seed` (the run's own comparison settings), B's first."""
    for data in revisions:
        plot = (data.params or {}).get("plot")
        if isinstance(plot, dict) and isinstance(plot.get("bootstrap"), int):
            seed = plot.get("bootstrap_seed")
            return plot["bootstrap"], seed if isinstance(seed, int) else DEFAULT_BOOTSTRAP_SEED
    return DEFAULT_RESAMPLES, DEFAULT_BOOTSTRAP_SEED


def gather_evidence(a: RevisionData, b: RevisionData, models: list[str], root: Path) -> dict[str, Evidence]:
    """Per model: both revisions' per-image statistics, or why not and the evaluated data's fingerprints."""
    reader_a, reader_b = PerImageReader(a.revision, root), PerImageReader(b.revision, root)
    found = {}
    for model in models:
        per_a = reader_a.load(model, sorted(a.models[model].seeds))
        per_b = reader_b.load(model, sorted(b.models[model].seeds)) if per_a.available else None
        if per_a.available and per_b.available:
            found[model] = Evidence(per_a.arrays, per_b.arrays)
        else:
            missing = per_a.missing or per_b.missing
            found[model] = Evidence(missing=missing, data_a=evaluated_data(a, model), data_b=evaluated_data(b, model))
    return found


def compare_experiments(baseline: str, root: Path = Path("."), params_file: str = "params.yaml",
                        resamples: int | None = None) -> tuple[str, list[ExperimentSummary]]:
    """(the baseline's label, one summary per DVC experiment of the repository against it)."""
    from dvc.repo.experiments.utils import exp_refs

    scm = open_scm(root)
    base = read_revision(resolve(baseline, root, scm), root, scm, params_file)
    summaries = []
    for ref in sorted(exp_refs(scm), key=lambda r: r.name):
        revision = Revision(ref.name, scm.get_ref(str(ref)))
        try:
            data = read_revision(revision, root, scm, params_file)
            changes = file_changes(base.params, data.params)
            summaries.append(summarize_experiment(ref.name, revision, changes, compare_loaded(base, data, root, resamples)))
        except RevisionError as exc:
            summaries.append(summarize_experiment(ref.name, revision, [], None, str(exc)))
    return base.revision.label, summaries
