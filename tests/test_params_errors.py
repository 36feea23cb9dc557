"""A params mistake is one clear line on stderr, exit code 2, no traceback, nothing written."""
import copy
import shutil

import pytest
from conftest import REPO, TINY_PARAMS, segbench, write_params

from segbench.config import pipeline_keys

CASES = {
    "unknown_arch": (("models", "unet", "arch"), "unet3", ["models.unet.arch", "unet3", "did you mean 'unet'?", "deeplabv3"]),
    "unknown_dataset": (("data", "dataset"), "cityscapez", ["data.dataset", "cityscapez", "synthetic"]),
    "misspelled_key": (("train", "epocs"), 3, ["train.epocs", "unknown key", "epochs"]),
    "negative_epochs": (("train", "epochs"), -1, ["train.epochs", "-1", ">= 1"]),
    "model_override_bad_type": (("models", "unet", "train", "lr"), "fast", ["models.unet.train.lr", "'fast'", "number"]),
    "bad_backbone": (("models", "deeplab", "backbone"), "resnet19", ["models.deeplab.backbone", "resnet19", "resnet18"]),
    "bad_bool": (("models", "deeplab", "aspp"), "maybe", ["models.deeplab.aspp", "maybe", "true or false"]),
    "unknown_section": (("trian",), {}, ["trian", "unknown section", "train"]),
}


def set_key(params: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(params)
    node = out
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return out


# Every case through `check` in this process (a stage process spends seconds importing torch);
# the stage commands share its loader, so two cases each through the real CLI suffice there.
STAGE_CASES = [(case, stage) for case in ("misspelled_key", "unknown_arch")
               for stage in (["check"], ["download"], ["train", "unet", "0"], ["plot"])]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_params_fail_cleanly_in_check(tmp_path, monkeypatch, capsys, case):
    from segbench.cli import main

    path, value, must_mention = CASES[case]
    write_params(tmp_path / "params.yaml", set_key(TINY_PARAMS, path, value))
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segbench: error: params.yaml: "), lines
    assert all(needle in lines[0] for needle in must_mention), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing half-written


@pytest.mark.parametrize("case,stage", STAGE_CASES)
def test_bad_params_fail_cleanly(tmp_path, case, stage):
    path, value, must_mention = CASES[case]
    write_params(tmp_path / "params.yaml", set_key(TINY_PARAMS, path, value))
    proc = segbench(stage, tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("segbench: error: params.yaml: ")
    for needle in must_mention:
        assert needle in lines[0], (needle, lines[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing half-written


def test_empty_models_and_case_duplicates(tmp_path, monkeypatch, capsys):
    from segbench.cli import main

    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml", set_key(TINY_PARAMS, ("models",), {}))
    assert main(["check"]) == 2 and "models: must be a non-empty mapping" in capsys.readouterr().err
    models = {"UNet": {"arch": "unet"}, "unet": {"arch": "unet"}}
    write_params(tmp_path / "params.yaml", set_key(TINY_PARAMS, ("models",), models))
    assert main(["check"]) == 2 and "models.unet: duplicates models.UNet" in capsys.readouterr().err


def test_invalid_yaml_names_the_line(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 0\ntrain:\n  epochs: [1\n")
    proc = segbench(["check"], tmp_path)
    assert proc.returncode == 2 and "params.yaml: line" in proc.stderr and "not valid YAML" in proc.stderr


def test_unknown_model_name_on_the_command_line(tmp_path):
    write_params(tmp_path / "params.yaml", TINY_PARAMS)
    proc = segbench(["train", "nope", "0"], tmp_path)
    assert proc.returncode == 2 and "no model named 'nope'" in proc.stderr and "unet, deeplab" in proc.stderr


def test_valid_params_pass(tmp_path):
    write_params(tmp_path / "params.yaml", TINY_PARAMS)
    proc = segbench(["check"], tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_shipped_params_files_are_valid():
    from conftest import REPO

    from segbench.config import load_params

    default = load_params(REPO / "params.yaml")
    assert {"unet", "unet_aug", "deeplabv3_resnet18", "deeplabv3_resnet18_aspp", "deeplabv3_vgg11_bn_aspp",
            "deeplabv3_mobilenet_v3_small_aspp", "prior_baseline"} <= set(default.models)
    full = load_params(REPO / "params" / "full.yaml")
    from segbench.models import MODELS

    assert {spec.arch for spec in full.models.values()} == set(MODELS.names())  # the whole zoo


def without(params: dict, dotted: str) -> dict:
    out = copy.deepcopy(params)
    *parents, last = dotted.split(".")
    node = out
    for key in parents:
        node = node[key]
    del node[last]
    return out


def test_the_keys_dvc_yaml_reads_come_from_dvc_yaml(tmp_path):
    """Derived from the file (interpolations and stage params), so the list cannot drift; and DVC
    itself refuses a file without an interpolated one (`dvc repro` then stops before any stage)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    keys = pipeline_keys(REPO / "dvc.yaml")
    assert {"seeds", "models", "data", "train", "plot.dpi"} <= set(keys) and "item" not in keys
    assert set(keys["seeds"]) >= {"train", "evaluate", "profile"}  # ${seeds} in their matrix / deps
    shutil.copy2(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    write_params(tmp_path / "params.yaml", without(TINY_PARAMS, "seeds"))
    Repo.init(str(tmp_path), no_scm=True)
    with pytest.raises(DvcException, match="seeds"), Repo(str(tmp_path)) as repo:
        repo.index.stages  # noqa: B018 -- the parse of dvc.yaml over params.yaml


@pytest.mark.parametrize("key", sorted(pipeline_keys(REPO / "dvc.yaml")))
def test_check_beside_dvc_yaml_names_a_missing_key_it_reads(tmp_path, monkeypatch, capsys, key):
    """No silent default for what dvc.yaml reads: `segbench --params FILE check` at the repository root."""
    from segbench.cli import main

    shutil.copy2(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    write_params(tmp_path / "shipped.yaml", without(TINY_PARAMS, key))
    monkeypatch.chdir(tmp_path)
    assert main(["--params", "shipped.yaml", "check"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"segbench: error: shipped.yaml: {key}: required key is missing; "
                                                   "dvc.yaml reads it (stage"), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvc.yaml", "shipped.yaml"]  # nothing written
