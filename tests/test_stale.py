"""What `dvc status` calls stale after an edit: a new architecture makes only its model's stages and
the plot stale, an edit to one architecture's module only the models built from it, a new dataset
layout nothing of a run on another dataset, and a changed environment fingerprint the profiles
(the same fingerprint rewritten: nothing).

Real DVC on a copy of the pipeline. Stages model_code and environment really run (a second, no
torch); every other stage's outputs are placeholders recorded with `dvc commit`, so no model trains:
what is stale depends only on the recorded hashes of deps, params and outs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import TINY_PARAMS, copy_pipeline, dvc, run, stale_stages, write_params

pytestmark = pytest.mark.integration

PARAMS = {**TINY_PARAMS, "models": {**TINY_PARAMS["models"], "unet_wide": {"arch": "unet", "base_channels": 8}}}

NEW_DECLARATION = '''"""Architecture `tiny`: one convolution."""
from dataclasses import dataclass

from ..registry import SEGMENTATION, declare_model


@dataclass(frozen=True)
class TinyOptions:
    """No options."""


declare_model("tiny", TinyOptions, ".tiny", SEGMENTATION)
'''
NEW_MODULE = '''"""One 3x3 convolution."""
from torch import nn

from .archs.tiny import TinyOptions
from .registry import register_model


@register_model("tiny", TinyOptions)
def build_tiny(num_classes: int, opts: TinyOptions) -> nn.Module:
    return nn.Conv2d(3, num_classes, 3, padding=1)
'''


def model_stages(model: str) -> set[str]:
    return {f"train@{model}-0", f"evaluate@{model}-0", f"aggregate@{model}", f"profile@{model}"}


def placeholder_outputs(repo: Path) -> None:
    """A file (or a folder holding one) for every output of the stages that are not run here."""
    from dvc.repo import Repo

    with Repo(str(repo)) as project:
        for stage in project.index.stages:
            if stage.name in ("model_code", "environment"):
                continue
            for out in stage.outs:
                path = Path(out.fs_path)
                if path.exists():
                    continue
                folder = not path.suffix or path.name == "train_log"
                target = path / "placeholder" if folder else path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(f"{stage.name}\n")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, request) -> Path:
    """The pipeline copy with every stage recorded in dvc.lock and its own src/ on the import path."""
    repo = tmp_path_factory.mktemp("stale") / "repo"
    copy_pipeline(repo)
    write_params(repo / "params.yaml", PARAMS)
    run(["git", "init", "-q"], repo)
    patch = pytest.MonkeyPatch()
    request.addfinalizer(patch.undo)
    patch.setenv("PYTHONPATH", str(repo / "src"))  # the stages run the copy's code, which the tests edit
    dvc(["repro", "model_code", "environment"], repo)
    placeholder_outputs(repo)
    dvc(["commit", "--force", "--quiet"], repo)
    assert stale_stages(repo) == set()
    return repo


def test_editing_one_architecture_stales_only_the_models_built_from_it(recorded):
    module = recorded / "src/segbench/models/unet.py"
    original = module.read_text()
    module.write_text(original + "# an edit\n")
    assert stale_stages(recorded) == {"model_code"}  # the manifests are rewritten first ...
    dvc(["repro", "model_code"], recorded)
    edited = {f"{s}@{m}" for m in ("unet", "unet_wide") for s in ("train", "evaluate")}
    assert stale_stages(recorded) == {s + "-0" for s in edited} | {"profile@unet", "profile@unet_wide"}  # ... then
    module.write_text(original)  # deeplab never was stale; reverting the edit restores the recorded hashes
    dvc(["repro", "model_code"], recorded)


def test_a_new_architecture_stales_only_its_model_and_the_plot(recorded):
    models = recorded / "src/segbench/models"
    (models / "archs/tiny.py").write_text(NEW_DECLARATION)
    (models / "tiny.py").write_text(NEW_MODULE)
    params = yaml.safe_load((recorded / "params.yaml").read_text())
    write_params(recorded / "params.yaml", {**params, "models": {**params["models"], "tiny": {"arch": "tiny"}}})
    try:
        assert stale_stages(recorded) == {"model_code", "plot"} | model_stages("tiny")
        dvc(["repro", "model_code"], recorded)
        assert stale_stages(recorded) == {"plot"} | model_stages("tiny")
        manifest = json.loads((recorded / "data/model_code/tiny.json").read_text())
        assert set(manifest["files"]) >= {"segbench/models/tiny.py", "segbench/models/archs/tiny.py"}
    finally:
        write_params(recorded / "params.yaml", params)
        (models / "archs/tiny.py").unlink()
        (models / "tiny.py").unlink()
        dvc(["repro", "model_code"], recorded)


def test_a_new_dataset_layout_stales_nothing_of_a_run_on_another(recorded):
    layout = recorded / "src/segbench/data/sources/my_layout.py"
    layout.write_text('"""A layout of my own."""\n')
    try:
        assert stale_stages(recorded) == set()
        synthetic = recorded / "src/segbench/data/sources/synthetic.py"  # the active layout is a dep
        original = synthetic.read_text()
        synthetic.write_text(original + "# an edit\n")
        assert stale_stages(recorded) == {"download", "preprocess"}  # both run the active layout
        synthetic.write_text(original)
    finally:
        layout.unlink()


def test_profiles_follow_the_environment_fingerprint(recorded):
    fingerprint = recorded / "metrics/environment.json"
    recorded_text = fingerprint.read_text()
    dvc(["repro", "environment"], recorded)  # the same machine writes the same fingerprint
    assert fingerprint.read_text() == recorded_text and stale_stages(recorded) == set()
    env = json.loads(recorded_text)
    fingerprint.write_text(json.dumps({**env, "cpu": "Another CPU", "cpu_features": ["avx2"]}, indent=2) + "\n")
    try:  # and the plot, which reads every metrics file (it shows where each number was measured)
        assert stale_stages(recorded) == {"profile@unet", "profile@unet_wide", "profile@deeplab", "plot"}
    finally:
        fingerprint.write_text(recorded_text)
