"""Preprocess stage and augmentation: real files on disk, real CamVid when present."""
from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, TINY_PARAMS, run, write_params
from PIL import Image

from segbench.config import AugmentConfig, params_from_dict
from segbench.data.dataset import SegmentationCache, build_augmentation
from segbench.data.preprocess import preprocess
from segbench.errors import DataError

CAMVID = Path(os.environ.get("SEGBENCH_CAMVID", REPO.parent / "shared" / "datasets" / "camvid"))
needs_camvid = pytest.mark.skipif(not (CAMVID / "trainannot").is_dir(),
                                  reason=f"CamVid not found at {CAMVID} (set SEGBENCH_CAMVID)")


def camvid_params(root: Path, **data) -> object:
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"] = {"dataset": "camvid", "path": str(root), "image_size": [24, 32], "workers": 1, **data}
    return params_from_dict(raw)


def fake_camvid(root: Path, counts: dict[str, int], size=(36, 48), seed=0) -> Path:
    """A SegNet-layout folder with random blocky masks (values 0..11; 11 is void)."""
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in counts.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            mask = np.kron(rng.integers(0, 12, (h // 6, w // 6)), np.ones((6, 6), np.int64)).astype(np.uint8)
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / split / f"{split}_{i:03d}.jpg", quality=90)
            Image.fromarray(mask).save(root / f"{split}annot" / f"{split}_{i:03d}.png")
    return root


def load_cache(out: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    return np.load(out / f"{split}_images.npy"), np.load(out / f"{split}_masks.npy")


def test_camvid_layout_void_is_ignored_and_stats_recorded(tmp_path):
    root = fake_camvid(tmp_path / "camvid", {"train": 6, "val": 3, "test": 2})
    manifest = preprocess(camvid_params(root), tmp_path / "raw", tmp_path / "processed")
    assert manifest["splits"] == {"train": 6, "val": 3, "test": 2}
    assert manifest["num_classes"] == 11 and manifest["class_names"][0] == "Sky"
    images, masks = load_cache(tmp_path / "processed", "train")
    assert images.shape == (6, 24, 32, 3) and masks.shape == (6, 24, 32)
    assert set(np.unique(masks)) <= set(range(11)) | {255}
    assert 255 in masks and 11 not in masks
    # counts are the masks' own bincount; frequencies sum to 1 over labelled pixels
    counts = np.bincount(masks.ravel(), minlength=256)
    assert manifest["class_pixels"]["Sky"] == counts[0]
    assert manifest["ignored_pixels"]["train"] == counts[255]
    assert sum(manifest["class_frequency"].values()) == pytest.approx(1.0)
    assert manifest["files"]["test"] == ["test/test_000.jpg", "test/test_001.jpg"]


def test_masks_resize_nearest_and_image_area(tmp_path):
    root = fake_camvid(tmp_path / "camvid", {"train": 3, "val": 1})
    preprocess(camvid_params(root, image_size=[18, 24]), tmp_path / "raw", tmp_path / "processed")
    _, masks = load_cache(tmp_path / "processed", "train")
    source = np.asarray(Image.open(root / "trainannot" / "train_000.png"))
    source = np.where(source == 11, 255, source)
    # 36x48 -> 18x24 nearest: every output value is one of the source block values, none blended
    assert set(np.unique(masks[0])) <= set(np.unique(source))
    assert (masks[0] == source[::2, ::2]).mean() > 0.95


def test_missing_val_and_test_splits_are_carved_deterministically(tmp_path):
    root = fake_camvid(tmp_path / "camvid", {"train": 20})
    a = preprocess(camvid_params(root, val_fraction=0.25), tmp_path / "raw", tmp_path / "a")
    b = preprocess(camvid_params(root, val_fraction=0.25), tmp_path / "raw", tmp_path / "b")
    # test first (data.test_fraction 0.1 of 20), then val from what is left: three disjoint splits
    assert a["splits"] == {"train": 14, "val": 4, "test": 2}  # val: round(18 * 0.25)
    assert a["val_from_train"] is True and a["test_from_train"] is True and a["test_fraction"] == 0.1
    assert a["files"] == b["files"]
    files = {split: set(a["files"][split]) for split in ("train", "val", "test")}
    assert not files["train"] & files["val"] and not files["train"] & files["test"] and not files["val"] & files["test"]
    raw = copy.deepcopy(TINY_PARAMS)
    raw["seed"] = 1
    raw["data"] = {"dataset": "camvid", "path": str(root), "image_size": [24, 32], "val_fraction": 0.25}
    c = preprocess(params_from_dict(raw), tmp_path / "raw", tmp_path / "c")
    assert c["files"]["val"] != a["files"]["val"]


def test_subset_is_deterministic_and_parallel_equals_serial(tmp_path):
    root = fake_camvid(tmp_path / "camvid", {"train": 12, "val": 4, "test": 4})
    serial = preprocess(camvid_params(root, subset=5, workers=1), tmp_path / "raw", tmp_path / "serial")
    parallel = preprocess(camvid_params(root, subset=5, workers=2), tmp_path / "raw", tmp_path / "parallel")
    assert serial["splits"] == {"train": 5, "val": 4, "test": 4}
    assert serial == parallel
    for split in ("train", "val", "test"):
        for x, y in zip(load_cache(tmp_path / "serial", split), load_cache(tmp_path / "parallel", split)):
            np.testing.assert_array_equal(x, y)


def _break(root: Path, how: str) -> str:
    """Damage a fake CamVid folder; returns the file name the error must mention."""
    if how == "truncated image":
        path = root / "train" / "train_001.jpg"
        path.write_bytes(path.read_bytes()[:200])
    elif how == "not an image":
        path = root / "train" / "train_001.jpg"
        path.write_bytes(b"this is not a jpeg")
    elif how == "mask size differs":
        path = root / "trainannot" / "train_001.png"
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(path)
    elif how == "mask value out of range":
        path = root / "trainannot" / "train_001.png"
        Image.fromarray(np.full((36, 48), 12, np.uint8)).save(path)
    elif how == "image with no mask":
        path = root / "train" / "train_001.jpg"
        (root / "trainannot" / "train_001.png").unlink()
    elif how == "empty split":
        path = root / "test"
        for f in (root / "test").iterdir():
            f.unlink()
    else:
        raise AssertionError(how)
    return path.name


@pytest.mark.parametrize("how", ["truncated image", "not an image", "mask size differs", "mask value out of range",
                                 "image with no mask", "empty split"])
def test_bad_data_is_one_line_and_nothing_written(tmp_path, how):
    root = fake_camvid(tmp_path / "camvid", {"train": 4, "val": 2, "test": 2})
    name = _break(root, how)
    out = tmp_path / "processed"
    with pytest.raises(DataError) as info:
        preprocess(camvid_params(root, workers=2), tmp_path / "raw", out)
    message = str(info.value)
    assert name in message and "\n" not in message
    assert not out.exists() and not list(tmp_path.glob(".processed*"))


def test_bad_data_keeps_previous_cache_and_cli_exits_2(tmp_path):
    root = fake_camvid(tmp_path / "camvid", {"train": 4, "val": 2})
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"] = {"dataset": "camvid", "path": str(root), "image_size": [24, 32]}
    write_params(tmp_path / "params.yaml", raw)
    ok = run([sys.executable, "-m", "segbench", "preprocess"], tmp_path)
    assert "val" in ok.stdout
    before = (tmp_path / "data/processed/train_masks.npy").read_bytes()
    _break(root, "mask value out of range")
    proc = run([sys.executable, "-m", "segbench", "preprocess"], tmp_path, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segbench: error:") and "train_001.png" in lines[0]
    assert "class index 12 out of range" in lines[0]
    assert (tmp_path / "data/processed/train_masks.npy").read_bytes() == before


def test_dataset_without_data_says_what_to_set(tmp_path):
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"] = {"dataset": "camvid", "image_size": [24, 32]}
    write_params(tmp_path / "params.yaml", raw)
    proc = run([sys.executable, "-m", "segbench", "download"], tmp_path, check=False)
    assert proc.returncode == 2
    assert "data.path" in proc.stderr and "trainannot" in proc.stderr
    assert not (tmp_path / "data" / "raw").exists()


# --- augmentation -------------------------------------------------------------------------

PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255]], np.float32)


def _blocky_pair(rng, h=64, w=64):
    mask = np.kron(rng.integers(1, 6, (h // 8, w // 8)), np.ones((8, 8), np.int64)).astype(np.uint8)
    return PALETTE[mask].astype(np.uint8), mask


def test_augmentation_keeps_image_and_mask_aligned():
    """Colour encodes the class, so after any geometry the image must still 'say' the mask's class."""
    cfg = AugmentConfig(hflip=1.0, crop_p=1.0, crop_scale=(0.3, 0.6), rotate=30, rotate_p=1.0, jitter_p=0.0)
    transform = build_augmentation(cfg, (64, 64), ignore_index=255, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(10):
        image, mask = _blocky_pair(rng)
        out = transform(image=image, mask=mask)
        img, msk = out["image"], out["mask"]
        assert img.shape == (64, 64, 3) and msk.shape == (64, 64)
        valid = msk != 255
        assert set(np.unique(msk[valid])) <= set(range(1, 6))  # nearest: no blended class indices
        said = np.argmin(((img[..., None, :].astype(np.float32) - PALETTE) ** 2).sum(-1), axis=-1)
        # interior pixels (all 8 neighbours share the class): linear image resampling blends only at edges
        padded = np.pad(msk, 1, mode="edge")
        interior = valid & np.all([padded[1 + dy:65 + dy, 1 + dx:65 + dx] == msk
                                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
        agree = (said == msk)[interior].mean()
        assert agree > 0.99, agree
        # rotation padding: black image corners carry the ignore label, never a class
        assert msk[0, 0] == 255 and (img[0, 0] == 0).all()


def test_augmentation_misalignment_would_be_caught():
    """The check above fails when the mask does not follow the image (guards the test itself)."""
    rng = np.random.default_rng(0)
    image, mask = _blocky_pair(rng)
    flipped = image[:, ::-1]
    said = np.argmin(((flipped[..., None, :].astype(np.float32) - PALETTE) ** 2).sum(-1), axis=-1)
    assert (said == mask).mean() < 0.6


def test_dataset_augments_train_only_and_reseeds_per_epoch(tmp_path):
    root = fake_camvid(tmp_path / "camvid", {"train": 4, "val": 2, "test": 1})
    preprocess(camvid_params(root), tmp_path / "raw", tmp_path / "processed")
    plain = SegmentationCache(tmp_path / "processed", "train")
    aug = SegmentationCache(tmp_path / "processed", "train", augment=AugmentConfig(hflip=0.5, crop_p=1.0), seed=0)
    aug.set_epoch(1)
    first = [aug[i][1] for i in range(4)]
    aug.set_epoch(1)
    again = [aug[i][1] for i in range(4)]
    aug.set_epoch(2)
    other = [aug[i][1] for i in range(4)]
    assert all((a == b).all() for a, b in zip(first, again))
    assert any((a != b).any() for a, b in zip(first, other))
    assert any((a != plain[i][1]).any() for i, a in enumerate(first))


@needs_camvid
def test_real_camvid_full_preprocess(tmp_path):
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"] = {"dataset": "camvid", "path": str(CAMVID), "image_size": [90, 120], "subset": 24}
    manifest = preprocess(params_from_dict(raw), tmp_path / "raw", tmp_path / "processed")
    assert manifest["splits"] == {"train": 24, "val": 24, "test": 24}
    assert manifest["ignored_pixels"]["train"] > 0
    images, masks = load_cache(tmp_path / "processed", "test")
    assert images.shape == (24, 90, 120, 3) and masks.max() == 255 and masks[masks != 255].max() <= 10
    # Road and Building dominate CamVid (README of the dataset); the rare classes are rare
    freq = manifest["class_frequency"]
    assert freq["Road"] > 0.2 and freq["Bicyclist"] < 0.05
