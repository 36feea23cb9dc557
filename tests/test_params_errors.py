"""A params mistake is one clear line on stderr, exit code 2, no traceback, nothing written."""
import copy

import pytest
from conftest import TINY_PARAMS, segbench, write_params

CASES = {
    "unknown_arch": (("models", "unet", "arch"), "unet3", ["models.unet.arch", "unet3", "deeplabv3", "unet"]),
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
