"""Validating params and the stages that run no model import no torch: the names params may
use are declared torch-free (segbench.catalog, segbench.models.archs), and each declaration
matches what the implementing module registers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fake_run import MODELS, fake_run

from segbench import catalog
from segbench.models import MODELS as ARCHS
from segbench.models import builder
from segbench.models.archs.deeplabv3 import BACKBONE_STRIDES
from segbench.models.archs.resnet_unet import ENCODERS as RESNET_UNET_ENCODERS

REPO = Path(__file__).resolve().parents[1]


def _run_stages(root: Path, params: dict, *commands: list[str]) -> dict:
    """Each of `commands` (segbench CLI argument lists) in one fresh interpreter in `root`; their
    exit codes and whether torch / torchvision got imported."""
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    code = ("import json, sys\nfrom segbench.cli import main\n"
            f"rc = [main(args) for args in {list(commands)!r}]\n"
            "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules, 'torchvision': 'torchvision' in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_check_aggregate_and_plot_do_not_import_torch(tmp_path):
    fake_run(tmp_path)
    params = {"seeds": [0, 1, 2], "models": {m: {"arch": "unet"} for m in MODELS}, "plot": {"dpi": 50, "bootstrap": 200}}
    result = _run_stages(tmp_path, params, ["check"], ["aggregate", "big"], ["plot"])
    assert result == {"rc": [0, 0, 0], "torch": False, "torchvision": False}
    assert (tmp_path / "plots" / "summary.md").is_file()


def test_download_and_preprocess_do_not_import_torch(tmp_path):
    synthetic = {"num_train": 4, "num_val": 2, "num_test": 2, "height": 32, "width": 32, "num_classes": 3}
    params = {"data": {"image_size": [32, 32], "synthetic": synthetic, "workers": 1},
              "models": {"deeplab": {"arch": "deeplabv3", "backbone": "mobilenet_v3_small"}}}
    result = _run_stages(tmp_path, params, ["download"], ["preprocess"])
    assert result == {"rc": [0, 0], "torch": False, "torchvision": False}
    assert (tmp_path / "data" / "processed").is_dir()


@pytest.mark.parametrize("path", sorted(p.relative_to(REPO).as_posix() for p in [REPO / "params.yaml",
                                                                                 *(REPO / "params").glob("*.yaml")]))
def test_every_committed_params_file_validates_without_torch(path):
    code = ("import sys\nfrom segbench.config import load_params\n"
            f"load_params({path!r})\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.split()[-1] == "False"


def test_declared_names_are_the_implemented_ones():
    from segbench import losses, optim, tasks
    from segbench.models.backbones import BACKBONES
    from segbench.models.resnet_unet import ENCODERS

    assert set(catalog.LOSSES) == set(losses.LOSSES.names())
    assert set(catalog.DEPTH_LOSSES) == set(losses.DEPTH_LOSSES.names())
    assert set(catalog.OPTIMIZERS) == set(optim.OPTIMIZERS.names())
    assert set(catalog.SCHEDULERS) == set(optim.SCHEDULERS.names())
    assert set(catalog.TASKS) == set(tasks.TASKS.names())
    for name, spec in catalog.TASKS.items():
        task = tasks.get_task(name)
        assert (task.outputs, task.targets, task.scores) == (spec.outputs, spec.targets, spec.scores)
    assert set(BACKBONE_STRIDES) == set(BACKBONES.names())
    assert set(RESNET_UNET_ENCODERS) == set(ENCODERS)


def test_every_declared_architecture_has_its_builder():
    for arch in ARCHS.names():
        assert callable(builder(arch)), arch


def test_a_builder_registered_with_other_options_than_declared_is_refused():
    from segbench.models.archs.enet import ENetOptions
    from segbench.models.registry import register_model

    with pytest.raises(RuntimeError, match="declared with UNetOptions"):
        register_model("unet", ENetOptions, tasks=("segmentation", "seg_depth"))(lambda n, o, t: None)


def test_help_of_every_command_prints_without_torch():
    code = ("import contextlib, io, json, sys\nfrom segbench.cli import build_parser\n"
            "parser = build_parser()\ncommands = list(parser._subparsers._group_actions[0].choices)\nout = {}\n"
            "for args in [['--help']] + [[c, '--help'] for c in commands]:\n"
            "    buf = io.StringIO()\n"
            "    with contextlib.redirect_stdout(buf):\n"
            "        try:\n            parser.parse_args(args)\n"
            "        except SystemExit as exc:\n            out[' '.join(args)] = (exc.code, buf.getvalue())\n"
            "print(json.dumps({'help': out, 'torch': 'torch' in sys.modules}))")
    result = json.loads(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                                       check=True).stdout.splitlines()[-1])
    assert not result["torch"]
    assert len(result["help"]) > 8 and all(code == 0 and text for code, text in result["help"].values()), result["help"]
    assert "95 percent CI" in " ".join(result["help"]["--help"][1].split())  # argparse formats '%' in the command list
    assert not [args for args, (_, text) in result["help"].items() if "%%" in text]
