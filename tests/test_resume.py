"""Resume after SIGKILL: a killed train stage continues from its last epoch and ends exactly where
an uninterrupted run ends (CPU, same seed); a resume file of another run is ignored."""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import BIN, TINY_PARAMS, write_params

import segbench.cli as cli
import segbench.engine as train_module
from segbench import paths

TIMES = ("train_time_s", "time_per_epoch_s", "images_per_s", "data_wait_fraction", "contention", "peak_rss_mb")
EPOCHS = 5


def resume_params(**train) -> dict:
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"]["synthetic"].update(num_train=48, num_val=8, num_test=2, num_classes=4)
    raw["data"]["workers"] = 1
    raw["train"] = {"epochs": EPOCHS, "batch_size": 8, "lr": 0.01, "optimizer": "adam", "scheduler": "cosine",
                    "device": "cpu", "threads": 1, "augment": True, **train}  # augment: its draws must replay too
    raw["models"] = {"unet": {"arch": "unet", "base_channels": 4}}
    return raw


@pytest.fixture
def prepared(workspace, monkeypatch) -> Path:
    """The workspace after `segbench download` and `segbench preprocess` (in-process: same code, no start-up)."""
    write_params(workspace / "params.yaml", resume_params())
    monkeypatch.chdir(workspace)
    assert cli.main(["download"]) == 0 and cli.main(["preprocess"]) == 0
    return workspace


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


SEED = 0  # the fixtures' params list no seeds: the default, [0]
CHECKPOINT = paths.checkpoint_path("unet", SEED)
RESUME = Path("data/checkpoints/unet/seed0.resume.pt")  # beside the seed's checkpoint, named as users see it
TRAIN_JSON = paths.seed_metrics_path("unet", SEED, "train")
LOG = paths.train_log_dir("unet", SEED) / "plots/metrics"
TRAIN = ["train", "unet", str(SEED)]


def outputs() -> dict:
    """What a train run leaves: metrics without times, final weights, the DVCLive curves."""
    metrics = json.loads(TRAIN_JSON.read_text())
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)["state_dict"]
    curves = {p.name: p.read_text() for p in sorted(LOG.iterdir()) if p.name != "elapsed_s.tsv"}  # a time
    elapsed = [float(row.split("\t")[1]) for row in (LOG / "elapsed_s.tsv").read_text().splitlines()[1:]]
    return {"metrics": {k: v for k, v in metrics.items() if k not in TIMES}, "state": state, "curves": curves,
            "elapsed": elapsed}


def clear_outputs() -> None:
    for path in (TRAIN_JSON, CHECKPOINT):
        path.unlink()


def assert_same(a: dict, b: dict) -> None:
    assert a["metrics"] == b["metrics"]
    assert a["state"].keys() == b["state"].keys()
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"]), "weights differ"
    assert a["curves"] == b["curves"]
    # training seconds per epoch, cumulative over a resumed run's attempts: one per epoch, never falling
    assert len(a["elapsed"]) == len(b["elapsed"]) and all(x <= y for x, y in zip(b["elapsed"], b["elapsed"][1:]))


def start_training() -> subprocess.Popen:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.Popen([sys.executable, "-m", "segbench", *TRAIN], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_after_first_resume_checkpoint(proc: subprocess.Popen, timeout: float = 120) -> int:
    """SIGKILL the run as soon as its first resume checkpoint exists; the epoch it holds."""
    deadline = time.monotonic() + timeout
    while not RESUME.exists():
        if proc.poll() is not None:
            pytest.fail(f"training ended (rc {proc.returncode}) before a resume checkpoint appeared:\n{proc.communicate()}")
        assert time.monotonic() < deadline, "no resume checkpoint in time"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    epoch = torch.load(RESUME, map_location="cpu", weights_only=True)["progress"]["epoch"]
    assert 1 <= epoch < EPOCHS, f"killed too late (after epoch {epoch} of {EPOCHS}): nothing left to resume"
    return epoch


def test_sigkilled_training_resumes_and_matches_an_uninterrupted_run(prepared, capsys):
    assert cli.main(TRAIN) == 0  # the uninterrupted reference, in-process
    reference = outputs()
    assert not RESUME.exists()  # removed once the run is complete
    clear_outputs()

    killed_at = kill_after_first_resume_checkpoint(start_training())
    assert not TRAIN_JSON.exists()

    capsys.readouterr()
    assert cli.main(TRAIN) == 0  # as `dvc repro` would, after the kill
    assert f"resuming from {RESUME} after epoch {killed_at}" in capsys.readouterr().out
    assert not RESUME.exists()
    result = outputs()
    assert_same(result, reference)
    assert result["metrics"]["epochs"] == EPOCHS
    steps = [line.split("\t")[0] for line in result["curves"]["val_miou.tsv"].splitlines()[1:]]
    assert steps == [str(i) for i in range(EPOCHS)]  # every epoch logged once


def interrupt_after_epochs(monkeypatch, epochs: int) -> None:
    """Ctrl-C in the middle of epoch `epochs` + 1 (after `epochs` resume checkpoints)."""
    real = train_module.train_one_epoch
    seen = []

    def interrupted(*args, **kwargs):
        seen.append(1)
        if len(seen) > epochs:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_one_epoch", interrupted)


def test_a_resume_file_from_other_params_is_ignored(prepared, monkeypatch, capsys):
    with monkeypatch.context() as patch:
        interrupt_after_epochs(patch, 2)
        assert cli.main(TRAIN) == 130
    assert RESUME.exists()

    write_params(prepared / "params.yaml", resume_params(lr=0.02))
    capsys.readouterr()
    assert cli.main(TRAIN) == 0
    assert f"{RESUME}: written by a different run (params, data, code or process count changed); starting fresh" \
        in capsys.readouterr().out
    fresh_after_stale = outputs()
    assert fresh_after_stale["metrics"]["epochs"] == EPOCHS and not RESUME.exists()

    clear_outputs()
    assert cli.main(TRAIN) == 0  # no resume file at all
    assert_same(outputs(), fresh_after_stale)


def test_an_unreadable_resume_file_is_ignored(prepared, capsys):
    RESUME.parent.mkdir(parents=True, exist_ok=True)
    RESUME.write_bytes(b"half a checkpoint")
    assert cli.main(TRAIN) == 0
    out = capsys.readouterr().out
    assert "unreadable checkpoint" in out and "starting fresh" in out
    assert not RESUME.exists()


def test_killed_after_the_last_epoch_finishes_without_training_again(prepared, monkeypatch, capsys):
    assert cli.main(TRAIN) == 0
    reference = outputs()
    clear_outputs()
    with monkeypatch.context() as patch:  # every epoch done, killed before the checkpoint was written
        patch.setattr(train_module, "save_checkpoint", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        assert cli.main(TRAIN) == 130
    assert RESUME.exists()
    with monkeypatch.context() as patch:
        interrupt_after_epochs(patch, 0)  # any training step would raise
        assert cli.main(TRAIN) == 0
    assert f"after epoch {EPOCHS}" in capsys.readouterr().out
    assert_same(outputs(), reference)


def test_a_run_that_stopped_early_stays_stopped_when_resumed(prepared, monkeypatch, capsys):
    from types import SimpleNamespace

    write_params(prepared / "params.yaml", resume_params(patience=1))
    scores = iter([0.5, 0.4, 0.9, 0.9, 0.9])  # no better epoch 2: stop there (epoch 3 would improve)
    monkeypatch.setattr(train_module, "run_evaluation",
                        lambda *a, **k: SimpleNamespace(scores={"miou": next(scores)}, losses={"loss": 0.1}))
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "save_checkpoint", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        assert cli.main(TRAIN) == 130
    with monkeypatch.context() as patch:
        interrupt_after_epochs(patch, 0)
        assert cli.main(TRAIN) == 0
    metrics = json.loads(TRAIN_JSON.read_text())
    assert metrics["stopped_early"] == 1 and metrics["epochs"] == 2 and metrics["best_epoch"] == 1


def test_augmentation_draws_do_not_depend_on_the_dataloader_workers(prepared):
    """Each sample's augmentation is seeded from (seed, epoch, index): 0 or 2 worker processes
    (persistent across epochs) produce the same training, so a resumed run needs no worker state."""
    from segbench.config import params_from_dict

    def trained(workers: int) -> dict:
        params = params_from_dict(resume_params(epochs=2, num_workers=workers))
        result = train_module.train(params.model("unet"), Path("data/processed"), seed=SEED, augmentation=params.augmentation)
        return result.model.state_dict()

    a, b = trained(0), trained(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
