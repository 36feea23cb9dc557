"""The bad-input catalogue (issue 9): every user mistake is one line on stderr naming the file,
key or value and what would be valid; exit code 2; no traceback; nothing written (no new file,
no .tmp / .partial left); and the outputs already there -- another model's checkpoint and
metrics -- byte for byte untouched.

Most cases call `segbench.cli.main` in-process (torch is imported once for the whole file); a
few run the real CLI in a subprocess, and one runs `dvc repro` with a trained good model and a
broken second one.
"""
from __future__ import annotations

import copy
import hashlib
import io
import re
import sys
import tarfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
from conftest import TINY_PARAMS, run, segbench, write_params
from PIL import Image

from segbench.cli import main

# --- the workspace every case starts from --------------------------------------------------

BASE = copy.deepcopy(TINY_PARAMS)
BASE["models"] = {"good": {"arch": "prior_baseline"}, **BASE["models"]}
CAMVID = {"dataset": "camvid", "path": "camvid", "image_size": [12, 16], "workers": 1}
PAIRS = {"dataset": "cityscapes_pairs", "path": "pairs", "image_size": [8, 8], "workers": 1}
# What a previous, successful run of model `good` left behind: must survive every failure.
GOOD_OUTPUTS = {
    "data/checkpoints/good/seed0.pt": b"PK\x03\x04 a checkpoint of model good",
    "metrics/good/seeds/0/train.json": b'{"train_time_s": 0.1, "best_val_miou": 0.11}\n',
    "metrics/good/seeds/0/eval.json": b'{"miou": 0.12}\n',
    "metrics/good/train.json": b'{"seeds": [0], "train_time_s": {"mean": 0.1, "n": 1}}\n',
    "metrics/good/eval.json": b'{"seeds": [0], "miou": {"mean": 0.12, "n": 1}}\n',
    "metrics/good/profile.json": b'{"params": 0, "latency_cpu_ms": 0.1}\n',
    "plots/good/confusion.png": b"\x89PNG\r\n\x1a\n not really",
}


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root: 'dir' or the file's sha256."""
    return {p.relative_to(root).as_posix(): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def fake_camvid(root: Path, counts: dict[str, int], size=(12, 16)) -> None:
    rng = np.random.default_rng(0)
    h, w = size
    for split, n in counts.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / split / f"{split}_{i:03d}.jpg")
            Image.fromarray(rng.integers(0, 12, (h, w), dtype=np.uint8)).save(root / f"{split}annot" / f"{split}_{i:03d}.png")


def fake_pairs(root: Path, bad_colour: Optional[tuple[int, int, int]]) -> None:
    """cityscapes_pairs: photo | colour mask side by side (PNG, so colours are exact)."""
    (root / "train").mkdir(parents=True)
    road, sky = (128, 64, 128), (70, 130, 180)
    for i in range(4):
        pair = np.zeros((8, 16, 3), np.uint8)
        pair[:, :8] = 90
        pair[:4, 8:], pair[4:, 8:] = sky, road
        if i == 2 and bad_colour is not None:
            pair[:, 8:] = bad_colour
        Image.fromarray(pair).save(root / "train" / f"{i}.png")


def tar_gz(path: Path, members: dict[str, bytes]) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


# --- the cases -----------------------------------------------------------------------------

@dataclass
class Case:
    args: list[str]  # the command line after `segbench`
    needles: list[str]  # each must appear in the one error line
    edit: Callable[[dict], None] = lambda params: None  # change the params
    setup: Callable[[Path], None] = lambda root: None  # make / damage files (before the snapshot)
    raw_params: Optional[bytes] = None  # params.yaml exactly (instead of BASE + edit)


def put(*path_and_value):
    *path, value = path_and_value

    def edit(params: dict) -> None:
        node = params
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return edit


def camvid(damage: Callable[[Path], None] = lambda root: None, counts=None) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        fake_camvid(root / "camvid", counts or {"train": 4, "val": 2, "test": 2})
        damage(root / "camvid")
    return setup


def binary_folder(root: Path, rows: dict[str, list[int]]) -> None:
    """folder layout: 8x8 masks tiled from `rows`, with blank images."""
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for stem, values in rows.items():
        Image.fromarray(np.tile(np.uint8(values), (8, 8 // len(values)))).save(root / "masks" / f"{stem}.png")
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / f"{stem}.png")


def images_without_masks(root: Path) -> None:
    """folder layout: two images, and a masks/ folder with nothing in it."""
    binary_folder(root, {"a": [0, 255], "b": [0, 255]})
    for mask in (root / "masks").iterdir():
        mask.unlink()


def truncate(rel: str, keep: int) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        (root / rel).write_bytes((root / rel).read_bytes()[:keep])
    return damage


def write(rel: str, data: bytes) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return damage


def save_mask(rel: str, mask: np.ndarray) -> Callable[[Path], None]:
    return lambda root: Image.fromarray(mask).save(root / rel)


def truncated_checkpoint(root: Path) -> None:
    import torch

    from segbench.io import save_torch

    path = root / "data/checkpoints/unet/seed0.pt"
    save_torch(path, {"format": 1, "arch": "unet", "state_dict": {"w": torch.zeros(4096)}})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def metrics_edited_by_hand(root: Path) -> None:
    for model in ("unet", "deeplab"):
        for part in ("train", "eval", "profile"):
            (root / f"metrics/{model}").mkdir(parents=True, exist_ok=True)
            (root / f"metrics/{model}/{part}.json").write_text('{"seeds": [0], "miou": 0.5}\n')
    (root / "metrics/unet/eval.json").write_text('{"seeds": [0],\n "miou": 0.5,\n "mdice": 0.4\n')  # a lost closing brace


def one_seed_evaluated(root: Path) -> None:
    """Seed 0 of unet trained and evaluated; params now also list seed 1, never run."""
    for part in ("train", "eval"):
        (root / "metrics/unet/seeds/0").mkdir(parents=True, exist_ok=True)
        (root / f"metrics/unet/seeds/0/{part}.json").write_text('{"miou": 0.5}\n')


def archive(members: dict[str, bytes], sha256: Optional[str] = None) -> Callable[[dict], None]:
    """data.url: a file:// archive made in the case's folder (its checksum unless `sha256`)."""
    def edit(params: dict) -> None:
        params["data"] = {"dataset": "camvid", "image_size": [12, 16], "url": "ARCHIVE", "sha256": sha256 or "SHA"}
        params["_archive"] = members
    return edit


CASES: dict[str, Case] = {
    # params.yaml: every level, every registry
    "unknown top-level key": Case(["check"], ["params.yaml", "trian", "unknown section", "valid:", "train"],
                                  put("trian", {"epochs": 1})),
    "unknown key in data": Case(["download"], ["data.datset", "unknown key", "did you mean 'dataset'"],
                                put("data", "datset", "camvid")),
    "unknown key in train": Case(["train", "unet", "0"], ["train.epocs", "unknown key", "epochs"], put("train", "epocs", 3)),
    "unknown model option": Case(["check"], ["models.unet.base_channel", "unknown key", "base_channels"],
                                 put("models", "unet", "base_channel", 8)),
    "unknown key in a model's train override": Case(
        ["evaluate", "unet", "0"], ["models.unet.train.learning_rate", "unknown key", "lr"],
        put("models", "unet", "train", "learning_rate", 0.1)),
    "wrong type": Case(["profile", "unet"], ["train.batch_size", "'eight'", "an integer"],
                       put("train", "batch_size", "eight")),
    "out-of-range value": Case(["check"], ["evaluate.samples", "1000", "out of range", "<= 64"],
                               put("evaluate", "samples", 1000)),
    "unknown arch": Case(["plot"], ["models.unet.arch", "'unet3'", "did you mean 'unet'?", "valid:", "unet_lean"],
                         put("models", "unet", "arch", "unet3")),
    "unknown loss": Case(["check"], ["train.loss", "'dice_ce'", "ce_dice"], put("train", "loss", "dice_ce")),
    "unknown optimiser": Case(["check"], ["train.optimizer", "'rmsprop'", "adamw"], put("train", "optimizer", "rmsprop")),
    "unknown scheduler": Case(["check"], ["train.scheduler", "'linear'", "onecycle"], put("train", "scheduler", "linear")),
    "unknown dataset": Case(["preprocess"], ["data.dataset", "'cityscape'", "cityscapes_pairs"],
                            put("data", "dataset", "cityscape")),
    "unknown backbone": Case(["check"], ["models.deeplab.backbone", "'resnet19'", "resnet18"],
                             put("models", "deeplab", "backbone", "resnet19")),
    "output stride the backbone lacks": Case(["check"], ["models.deeplab", "output_stride", "8", "16, 32"],
                                             put("models", "deeplab", "output_stride", 8)),
    "empty models": Case(["check"], ["models", "non-empty mapping"], put("models", {})),
    "model names differing only in case": Case(
        ["check"], ["models.unet", "duplicates models.UNet"],
        put("models", {"UNet": {"arch": "unet"}, "unet": {"arch": "unet"}})),
    # No architecture needs a divisible size (each pads or interpolates, test_models checks odd
    # sizes); what does break is a BatchNorm layer fed one value per channel in training.
    "batch of one through a 1x1 BatchNorm map": Case(
        ["train", "deeplab", "0"], ["train.batch_size", "1", "models.deeplab", "BatchNorm", "at least 2"],
        put("train", "batch_size", 1)),
    "url without sha256": Case(["download"], ["sha256", "required with url", "sha256sum"],
                               put("data", "url", "https://example.com/camvid.zip")),
    "params file missing": Case(["--params", "params-typo.yaml", "check"], ["params-typo.yaml", "file not found"]),
    "params file not text": Case(["check"], ["params.yaml", "UTF-8"], raw_params=b"seed: 0\n\xff\xfe\x00garbage"),
    # data (the datasets issue's list)
    "truncated image": Case(["preprocess"], ["train_001.jpg", "unreadable image"],
                            put("data", CAMVID), camvid(truncate("train/train_001.jpg", 120))),
    "mask size differs": Case(["preprocess"], ["train_001.png", "must match", "train_001.jpg"], put("data", CAMVID),
                              camvid(save_mask("trainannot/train_001.png", np.zeros((5, 5), np.uint8)))),
    "mask value out of range": Case(["preprocess"], ["train_001.png", "class index 12 out of range", "0..10", "255"],
                                    put("data", CAMVID),
                                    camvid(save_mask("trainannot/train_001.png", np.full((12, 16), 12, np.uint8)))),
    "image with no mask": Case(["preprocess"], ["train_002.jpg", "has no mask"], put("data", CAMVID),
                               camvid(lambda r: (r / "trainannot/train_002.png").unlink())),
    "empty split": Case(["preprocess"], ["camvid", "split 'test' is empty"], put("data", CAMVID),
                        camvid(counts={"train": 4, "val": 2, "test": 0})),
    "checksum mismatch": Case(["download"], ["data.sha256", "checksum mismatch", "expected " + "0" * 64],
                              archive({"train/a.jpg": b"x"}, sha256="0" * 64)),
    "path-traversal archive": Case(["download"], ["../escape.txt", "'..'", "refusing to extract"],
                                   archive({"train/a.jpg": b"x", "../escape.txt": b"gotcha"})),
    "palette colour beyond tolerance": Case(["preprocess"], ["2.png", "farther than 60", "(0, 255, 255)", "tolerance"],
                                            put("data", PAIRS), lambda root: fake_pairs(root / "pairs", (0, 255, 255))),
    # silent wrong numbers (issue 15): stop instead
    "ignore index naming a class": Case(["check"], ["data.ignore_index: 3 is class 'triangle'", "e.g. 255"],
                                        put("data", "ignore_index", 3)),
    "ignore index naming a class (any dataset)": Case(["preprocess"], ["data.ignore_index: 2 is class", "camvid"],
                                                      put("data", {**CAMVID, "ignore_index": 2}), camvid()),
    "masks reading 255 two ways": Case(
        ["preprocess"], ["a.png", "b.png", "two readings of 255"],
        put("data", {"dataset": "folder", "path": "folder", "image_size": [8, 8], "workers": 1,
                     "folder": {"classes": ["bg", "fg"]}}),
        lambda root: binary_folder(root / "folder", {"a": [0, 255], "b": [0, 1, 255, 1]})),
    "folder dataset whose mask folder is empty": Case(
        ["preprocess"], ["folder/masks", "no mask"],
        put("data", {"dataset": "folder", "path": "folder", "image_size": [8, 8], "workers": 1,
                     "folder": {"classes": ["bg", "fg"]}}),
        lambda root: images_without_masks(root / "folder")),
    # outputs damaged between stages
    "truncated checkpoint (profile)": Case(["profile", "unet"], ["data/checkpoints/unet/seed0.pt", "truncated or corrupt",
                                                                  "re-run the train stage"], setup=truncated_checkpoint),
    "metrics edited into invalid JSON": Case(["plot"], ["metrics/unet/eval.json", "not valid JSON", "line 4"],
                                             setup=metrics_edited_by_hand),
    # seed replicates (issue 16)
    "seeds listing a seed twice": Case(["check"], ["seeds: [0, 1, 0]", "more than once"], put("seeds", [0, 1, 0])),
    "seeds empty": Case(["check"], ["seeds: []", "at least one"], put("seeds", [])),
    "a seed per model": Case(["check"], ["models.unet.seeds", "one list for every model", "seeds=[...]"],
                             put("models", "unet", "seeds", [0, 1])),
    "training a seed that is not listed": Case(["train", "unet", "7"], ["seeds: [0]", "seed 7", "add it there"]),
    "a seed that is not a number": Case(["evaluate", "unet", "one"], ["seed 'one'", "not an integer"]),
    "aggregating a seed never run": Case(["aggregate", "unet"], ["metrics/unet/seeds/1/train.json", "file not found",
                                                                 "train@unet-1"], put("seeds", [0, 1]),
                                         setup=one_seed_evaluated),
    "report from aggregates of other seeds": Case(["plot"], ["metrics/good/train.json", "summarises seeds [0]",
                                                             "seeds: [0, 1]", "aggregate@good"], put("seeds", [0, 1]),
                                                  setup=metrics_edited_by_hand),
}


def prepare(root: Path, case: Case) -> None:
    root.mkdir()
    for rel, data in GOOD_OUTPUTS.items():
        write(rel, data)(root)
    if case.raw_params is not None:
        (root / "params.yaml").write_bytes(case.raw_params)
    else:
        params = copy.deepcopy(BASE)
        case.edit(params)
        members = params.pop("_archive", None)
        if members is not None:
            digest = tar_gz(root / "dataset.tar.gz", members)
            params["data"]["url"] = (root / "dataset.tar.gz").as_uri()
            params["data"]["sha256"] = digest if params["data"]["sha256"] == "SHA" else params["data"]["sha256"]
        write_params(root / "params.yaml", params)
    case.setup(root)


def run_in_process(root: Path, args: list[str], monkeypatch, capsys) -> tuple[Optional[int], str]:
    monkeypatch.chdir(root)
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    except Exception:  # what a user would see: a traceback
        return None, capsys.readouterr().err + traceback.format_exc()
    return code, capsys.readouterr().err


def assert_one_clean_line(code, stderr: str, needles: list[str]) -> str:
    assert "Traceback" not in stderr, stderr
    assert code == 2, (code, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("segbench: error: "), line
    missing = [n for n in needles if n not in line]
    assert not missing, f"{missing} not in: {line}"
    return line


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_touches_nothing(tmp_path, monkeypatch, capsys, name):
    case = CASES[name]
    root = tmp_path / "bench"
    prepare(root, case)
    before = snapshot(root)
    code, stderr = run_in_process(root, case.args, monkeypatch, capsys)
    assert_one_clean_line(code, stderr, case.needles)
    assert snapshot(root) == before  # no new file, no .tmp / .partial, nothing changed
    assert not (tmp_path / "escape.txt").exists() and not (root / "data" / "escape.txt").exists()


# --- the real CLI, in a subprocess ----------------------------------------------------------

SUBPROCESS_CASES = {
    "YAML syntax error": (["check"], ["params.yaml", "line 3", "not valid YAML"],
                          lambda root: (root / "params.yaml").write_text("seed: 0\ntrain:\n  epochs: [1\n")),
    "truncated checkpoint (evaluate)": (["evaluate", "unet", "0"], ["data/checkpoints/unet/seed0.pt", "truncated or corrupt",
                                                                "re-run the train stage"], truncated_checkpoint),
    "unknown key in a model's options": (["train", "deeplab", "0"], ["models.deeplab.head_channel", "head_channels"],
                                         lambda root: write_params(root / "params.yaml", _with(
                                             put("models", "deeplab", "head_channel", 8)))),
}


def _with(edit) -> dict:
    params = copy.deepcopy(BASE)
    edit(params)
    return params


@pytest.mark.parametrize("name", list(SUBPROCESS_CASES))
def test_bad_input_through_the_real_cli(tmp_path, name):
    args, needles, setup = SUBPROCESS_CASES[name]
    root = tmp_path / "bench"
    prepare(root, Case(args, needles))
    setup(root)
    before = snapshot(root)
    proc = segbench(args, root)
    assert_one_clean_line(proc.returncode, proc.stderr, needles)
    assert snapshot(root) == before


# --- dvc repro: a broken model does not touch a good one -------------------------------------

@pytest.mark.integration
def test_broken_second_model_leaves_the_first_models_outputs_alone(workspace, tmp_path, monkeypatch):
    dvc = [sys.executable, "-m", "dvc", "repro"]
    params = copy.deepcopy(TINY_PARAMS)
    params["models"] = {"good": {"arch": "prior_baseline"}}
    write_params(workspace / "params.yaml", params)
    run([*dvc, "train@good-0"], workspace)
    good = ["data/checkpoints/good/seed0.pt", "metrics/good/seeds/0/train.json"]
    before = {rel: (workspace / rel).read_bytes() for rel in good}

    # Its ImageNet weights are not where `pretrained: true` reads them: fails in train@bad only.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    params["models"]["bad"] = {"arch": "resnet_unet", "pretrained": True}
    write_params(workspace / "params.yaml", params)
    proc = run([*dvc, "train@bad-0"], workspace, check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    ours = [line for line in proc.stderr.splitlines() if line.startswith("segbench: error:")]
    assert len(ours) == 1, proc.stderr
    assert "resnet_unet.pretrained" in ours[0] and "resnet18-" in ours[0] and "pretrained: false" in ours[0]
    assert not re.search(r"Running stage '(download|preprocess|train@good-0)'", proc.stdout), proc.stdout
    assert {rel: (workspace / rel).read_bytes() for rel in good} == before
    assert not (workspace / "data/checkpoints/bad").exists() and not (workspace / "metrics/bad").exists()
    assert not list(workspace.rglob("*.tmp")) and not list(workspace.rglob("*.partial"))
    status = run([sys.executable, "-m", "dvc", "status", "train@good-0"], workspace)
    assert "up to date" in status.stdout, status.stdout
