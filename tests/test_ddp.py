"""Data-parallel training on CPU (gloo): 2 processes vs 1, the torchrun launcher, rank-0-only outputs."""
from __future__ import annotations

import copy
import inspect
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, TINY_PARAMS, run

import segbench.cli as cli
from segbench import paths
from segbench.config import params_from_dict
from segbench.data.preprocess import preprocess
from segbench.data.sources.synthetic import generate
from segbench.distributed import DistContext, inside_torchrun, per_rank_batch, torchrun_command
from segbench.errors import ConfigError, TrainingError
from segbench.models import MODELS, ModelEntry
from segbench.models.unet import UNetOptions, build_unet

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="this torch build has no torch.distributed with the gloo backend")

def strip_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """The U-Net without BatchNorm: with BatchNorm each rank normalises by its own half-batch
    statistics (SyncBatchNorm runs on CUDA only), so 2 processes would legitimately differ from 1."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.BatchNorm2d):
                setattr(module, name, torch.nn.Identity())
    return model


# The stage's CLI with `unet_nobn` registered, for torchrun to start on each rank.
LAUNCHER = f"""import sys
import torch
from segbench.cli import main
from segbench.models import register_model
from segbench.models.unet import UNetOptions, build_unet

{inspect.getsource(strip_batchnorm)}
register_model("unet_nobn", UNetOptions)(lambda num_classes, opts: strip_batchnorm(build_unet(num_classes, opts)))
sys.exit(main(sys.argv[1:]))
"""


def ddp_params(arch: str = "unet", **train) -> dict:
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"]["synthetic"].update(num_train=16, num_val=4, num_test=1, num_classes=4)
    # SGD: an update is linear in the gradient, so rounding differences stay at rounding size
    # (Adam divides by sqrt(v), which magnifies them for near-zero gradients).
    raw["train"] = {"epochs": 2, "batch_size": 8, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "scheduler": "cosine",
                    "device": "cpu", "threads": 1, **train}
    raw["models"] = {"nobn" if arch == "unet_nobn" else "unet": {"arch": arch, "base_channels": 4}}
    return raw


@pytest.fixture(scope="module")
def ddp_workspace(tmp_path_factory) -> Path:
    """data/processed for 16 training images of 32x32 (no augmentation: a rotation's padding is
    ignored pixels, and unequal pixel counts per rank would change the mean loss's weighting)."""
    root = tmp_path_factory.mktemp("ddp")
    params = params_from_dict(ddp_params())
    cfg = params.data.synthetic
    generate(root / "raw", seed=params.seed, sizes={"train": cfg.num_train, "val": cfg.num_val, "test": cfg.num_test},
             height=cfg.height, width=cfg.width, num_classes=cfg.num_classes)
    preprocess(params, root / "raw", root / "data/processed", workers=1)
    (root / "train_nobn.py").write_text(LAUNCHER)
    return root


@pytest.fixture
def nobn_registered(monkeypatch):
    entry = ModelEntry(build=lambda n, opts: strip_batchnorm(build_unet(n, opts)), options=UNetOptions)
    monkeypatch.setitem(MODELS._items, "unet_nobn", entry)


def state_of(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_two_processes_match_one_with_the_same_global_batch(ddp_workspace, nobn_registered):
    from segbench.engine import train

    raw = ddp_params("unet_nobn")
    (ddp_workspace / "params.yaml").write_text(yaml.safe_dump(raw))
    params = params_from_dict(raw)
    seed = params.seeds[0]  # no seeds in the params: the default, [0]
    single = train(params.model("nobn"), ddp_workspace / "data/processed", seed=seed)

    proc = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "train_nobn.py", "train", "nobn", str(seed)], ddp_workspace)
    assert proc.stdout.count("best val mIoU") == 1, proc.stdout  # rank 0 alone reports
    metrics = json.loads((ddp_workspace / paths.seed_metrics_path("nobn", seed, "train")).read_text())
    assert metrics["world_size"] == 2 and metrics["epochs"] == 2
    assert not (ddp_workspace / f"data/checkpoints/nobn/seed{seed}.resume.pt").exists()
    steps = (ddp_workspace / paths.train_log_dir("nobn", seed) / "plots/metrics/val_miou.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in steps] == ["step", "0", "1"]  # one log, not one per rank

    # Same samples per global batch (DistributedSampler order, 4 + 4 = the single process's 8), the
    # loss a per-pixel mean over equal pixel counts: DDP's averaged gradient is the single process's
    # up to float32 summation order (~1e-7 relative), and 4 SGD steps keep weights within ~1e-7
    # (measured: 1.5e-8). 1e-6 is far below any real difference: measured on this model, batches of 4
    # instead of 8 move weights by 0.13, and lr 1% higher by 6e-4.
    ddp = state_of(ddp_workspace / paths.checkpoint_path("nobn", seed))
    ref = single.model.state_dict()
    diff = max((ddp[k].float() - ref[k].float()).abs().max().item() for k in ref)
    print(f"max |w_ddp - w_single| = {diff:.3g}")
    assert diff < 1e-6
    assert metrics["best_val_miou"] == pytest.approx(single.metrics["best_val_miou"], abs=1e-6)
    assert metrics["final_train_loss"] == pytest.approx(single.metrics["final_train_loss"], rel=1e-5)


def test_launcher_torchrun_relaunches_the_stage_and_resumes_after_sigkill(ddp_workspace):
    """train.launcher: torchrun through the real stage script; the stage SIGKILLed (its process group,
    as when a terminal or CI job dies) after the first resume checkpoint; then run again."""
    epochs = 20
    (ddp_workspace / "params.yaml").write_text(yaml.safe_dump(ddp_params(launcher="torchrun", nproc=2, threads=0,
                                                                         epochs=epochs)))
    resume = ddp_workspace / "data/checkpoints/unet/seed0.resume.pt"
    stage = [sys.executable, str(REPO / "stages/train.py"), "unet", "0"]
    proc = subprocess.Popen(stage, cwd=ddp_workspace, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not resume.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no resume checkpoint in time"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    killed_at = torch.load(resume, weights_only=True)["progress"]["epoch"]
    assert killed_at < epochs
    time.sleep(2)  # the ranks die with torchrun (they run in sessions of their own): nothing moves on
    assert torch.load(resume, weights_only=True)["progress"]["epoch"] == killed_at
    assert not (ddp_workspace / paths.checkpoint_path("unet", 0)).exists()

    out = run(stage, ddp_workspace).stdout
    assert f"resuming from data/checkpoints/unet/seed0.resume.pt after epoch {killed_at}" in out
    assert out.count("best val mIoU") == 1 and "on 2 processes" in out, out  # rank 0 alone reports
    metrics = json.loads((ddp_workspace / paths.seed_metrics_path("unet", 0, "train")).read_text())
    assert metrics["world_size"] == 2 and metrics["epochs"] == epochs and metrics["threads"] >= 1
    # the resume file is gone; a SIGKILL that lands mid-write also leaves that write's hidden temporary
    # (.seed0.resume.pt.*.tmp), which nothing reads
    left = sorted(p.name for p in (ddp_workspace / "data/checkpoints/unet").iterdir() if not p.name.endswith(".tmp"))
    assert left == ["seed0.pt"]
    steps = (ddp_workspace / paths.train_log_dir("unet", 0) / "plots/metrics/val_miou.tsv").read_text().splitlines()[1:]
    assert [line.split("\t")[0] for line in steps] == [str(i) for i in range(epochs)]


def test_relaunch_is_an_argument_list_and_its_exit_code_propagates(ddp_workspace, monkeypatch):
    raw = ddp_params(launcher="torchrun", nproc=2)
    (ddp_workspace / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(ddp_workspace)
    for var in ("LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append((cmd, kwargs))
        return types.SimpleNamespace(returncode=3)

    monkeypatch.setattr("segbench.distributed.subprocess.run", fake_run)
    with pytest.raises(SystemExit) as info:
        cli.main(["--params", "params.yaml", "train", "unet", "0"])
    assert info.value.code == 3
    (cmd, kwargs), = calls
    assert cmd == torchrun_command(2, ["--params", "params.yaml", "train", "unet", "0"])
    assert cmd[:3] == [sys.executable, "-m", "segbench.distributed"] and "--standalone" in cmd
    assert cmd[cmd.index("--nproc_per_node") + 1] == "2" and "shell" not in kwargs


def test_inside_torchrun_is_detected_from_its_environment():
    assert not inside_torchrun({})
    assert inside_torchrun({"LOCAL_RANK": "0", "WORLD_SIZE": "2", "RANK": "0"})


@pytest.mark.parametrize("train,needle", [
    ({"launcher": "torchrun", "nproc": 3, "batch_size": 8}, "batch_size: 8 is not divisible by nproc 3"),
    ({"nproc": 2}, "nproc: 2 needs launcher: torchrun"),
    ({"sync_bn": True, "device": "cpu"}, "sync_bn: true needs CUDA"),
    ({"launcher": "mpirun"}, "train.launcher"),
    ({"nproc": 0, "launcher": "torchrun"}, "train.nproc: 0"),
])
def test_bad_distributed_settings_are_one_line_config_errors(train, needle):
    raw = ddp_params(**train)
    with pytest.raises(ConfigError) as info:
        params_from_dict(raw)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_global_batch_split_across_ranks():
    assert per_rank_batch(8, 2) == 4 and per_rank_batch(8, 1) == 8
    with pytest.raises(TrainingError, match="train.batch_size: 6 is not divisible by the 4 processes"):
        per_rank_batch(6, 4)
    assert DistContext().broadcast([1.0, float("nan")])[0] == 1.0  # a single process needs no group
