"""Depth maps through the data layer: synthetic scenes, read_depth, the folder source,
the preprocess cache and SegmentationCache (with augmentation)."""
from __future__ import annotations

import copy
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_PARAMS
from PIL import Image

from segbench.config import AugmentConfig, params_from_dict
from segbench.data.dataset import SegmentationCache
from segbench.data.preprocess import preprocess
from segbench.data.sources import SOURCES
from segbench.data.sources.depth import read_depth
from segbench.data.sources.scenes import generate_scene
from segbench.data.sources.synthetic import generate, sample_rng
from segbench.errors import ConfigError, DataError

H, W = 16, 24


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert message and "\n" not in message
    return message


def nothing_written(tmp_path: Path, out: Path) -> bool:
    return not out.exists() and not list(tmp_path.glob(f".{out.name}*"))


# --- synthetic ----------------------------------------------------------------------------

# sha256 of image + mask bytes, computed with the generator as it was before depth existed:
# the default benchmark's images and masks must not change.
PINNED = {
    (0, "train", 0, 32, 32, 8): "0380f305353b222ffc90ffe6b7de6a9c31bd4021ccf8009aeb7ecc9a35da10bf",
    (7, "val", 3, 48, 40, 5): "1266e4f04d00d53f6ce42e831d097044816b53a2483d6ef0b186cabdb0737736",
    (1, "train", 2, 64, 64, 8): "63ec69ca44018cc34b0d06c8372277de91af2482a7d4cd7f703a73c4c94405b7",
}


@pytest.mark.parametrize("key", list(PINNED))
def test_images_and_masks_are_unchanged_by_depth(key):
    seed, split, i, h, w, k = key
    scene = generate_scene(sample_rng(seed, split, i), h, w, k)
    assert hashlib.sha256(scene.image.tobytes() + scene.mask.tobytes()).hexdigest() == PINNED[key]


def test_generated_depth_agrees_with_the_occlusions():
    overlaps = 0
    for i in range(80):
        scene = generate_scene(sample_rng(i % 3, "train", i), 40, 48, 8)
        depth, layers = scene.depth, scene.layers
        assert depth.dtype == np.float32 and depth.shape == (40, 48)
        assert np.isfinite(depth).all() and (depth > 0).all()
        expected_mask = np.zeros((40, 48), np.uint8)
        expected_depth = np.full((40, 48), np.nan, np.float32)
        for layer in layers:  # paint order: the last layer covering a pixel is what the camera sees
            expected_mask[layer.shape] = layer.class_index
            expected_depth[layer.shape] = layer.depth
        covered = ~np.isnan(expected_depth)
        assert np.array_equal(scene.mask, expected_mask)
        assert np.array_equal(depth[covered], expected_depth[covered])
        # the ground: one depth per row, farther towards the top, seen where nothing covers it
        ground = scene.ground
        assert (ground == ground[:, :1]).all() and (np.diff(ground[:, 0]) < 0).all()
        assert np.array_equal(depth[~covered], ground[~covered])
        for j, layer in enumerate(layers):  # an object is in front of all the ground it hides ...
            assert (ground[layer.shape] > layer.depth).all()
            base = ground[np.flatnonzero(layer.shape.any(axis=1))[-1], 0]
            assert layer.depth <= 0.96 * base * (1 + 1e-6)  # ... standing at its lowest row, or nearer
            if not any((earlier.shape & layer.shape).any() for earlier in layers[:j]):
                assert layer.depth >= 0.88 * base * (1 - 1e-6)  # nothing to occlude: just its base
        for a, earlier in enumerate(layers):
            for later in layers[a + 1:]:
                if (earlier.shape & later.shape).any():
                    overlaps += 1
                    assert later.depth < earlier.depth
    assert overlaps > 50  # the check above is not vacuous


def test_depth_is_deterministic_and_varies_between_samples():
    a = generate_scene(sample_rng(2, "val", 4), 32, 32, 6).depth
    b = generate_scene(sample_rng(2, "val", 4), 32, 32, 6).depth
    c = generate_scene(sample_rng(2, "val", 5), 32, 32, 6).depth
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def synthetic_params(**data):
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"].update({"workers": 1, **data})
    return params_from_dict(raw)


def test_generate_writes_depths_and_the_source_reads_them(tmp_path):
    generate(tmp_path, seed=1, sizes={"train": 3, "val": 1}, height=32, width=40, num_classes=4)
    scene = generate_scene(sample_rng(1, "train", 2), 32, 40, 4)
    saved = np.load(tmp_path / "train/depths/00002.npy", allow_pickle=False)
    assert saved.dtype == np.float32 and np.array_equal(saved, scene.depth)
    raw = SOURCES.get("synthetic").read(synthetic_params(), tmp_path)
    sample = raw.splits["train"][2]
    assert sample.depth == tmp_path / "train/depths/00002.npy"
    assert np.array_equal(raw.decode_depth(sample.depth), scene.depth)


def test_old_synthetic_folder_without_depths_still_reads(tmp_path):
    generate(tmp_path / "raw", seed=0, sizes={"train": 4, "val": 2, "test": 1}, height=32, width=32, num_classes=4)
    for split in ("train", "val", "test"):
        shutil.rmtree(tmp_path / "raw" / split / "depths")
    raw = SOURCES.get("synthetic").read(synthetic_params(), tmp_path / "raw")
    assert raw.decode_depth is None and all(s.depth is None for s in raw.splits["train"])
    manifest = preprocess(synthetic_params(), tmp_path / "raw", tmp_path / "processed")
    assert manifest["has_depth"] is False and "depth" not in manifest and "depth_valid_fraction" not in manifest
    assert not list((tmp_path / "processed").glob("*_depths.npy"))


def test_synthetic_preprocess_caches_depth_with_stats(tmp_path):
    generate(tmp_path / "raw", seed=0, sizes={"train": 4, "val": 2, "test": 1}, height=32, width=32, num_classes=4)
    manifest = preprocess(synthetic_params(image_size=[32, 32]), tmp_path / "raw", tmp_path / "processed")
    depths = np.load(tmp_path / "processed" / "train_depths.npy")
    assert manifest["has_depth"] is True and depths.shape == (4, 32, 32) and depths.dtype == np.float32
    for i in range(4):
        assert np.array_equal(depths[i], generate_scene(sample_rng(0, "train", i), 32, 32, 4).depth)
    assert manifest["depth_valid_fraction"] == {"train": 1.0, "val": 1.0, "test": 1.0}
    stats = manifest["depth"]
    assert stats["unit"] == "m" and 1.5 <= stats["min"] < stats["mean"] < stats["max"] <= 13.0
    assert stats["mean"] == pytest.approx(depths.astype(np.float64).mean())
    assert stats["std"] == pytest.approx(depths.astype(np.float64).std())


# --- read_depth ---------------------------------------------------------------------------

def test_read_depth_npy_in_metres_and_bad_values_are_no_depth(tmp_path):
    values = np.array([[1.25, 0.0, -2.0], [np.nan, np.inf, 7.5]], np.float64)
    np.save(tmp_path / "d.npy", values)
    depth = read_depth(tmp_path / "d.npy")
    assert depth.dtype == np.float32
    np.testing.assert_array_equal(depth, np.array([[1.25, 0, 0], [0, 0, 7.5]], np.float32))
    np.save(tmp_path / "i.npy", np.array([[3, 0]], np.uint16))
    np.testing.assert_array_equal(read_depth(tmp_path / "i.npy", scale=1000.0), [[3.0, 0.0]])  # .npy: metres, no scale


def test_read_depth_16_bit_png_divided_by_scale(tmp_path):
    mm = np.array([[0, 1500, 65535], [250, 1000, 3000]], np.uint16)
    Image.fromarray(mm).save(tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").mode.startswith("I")
    np.testing.assert_allclose(read_depth(tmp_path / "d.png"), mm / 1000.0, rtol=1e-6)
    np.testing.assert_allclose(read_depth(tmp_path / "d.png", scale=256.0), mm / 256.0, rtol=1e-6)
    assert read_depth(tmp_path / "d.png")[0, 0] == 0.0
    Image.fromarray(np.array([[0, 20]], np.uint8)).save(tmp_path / "e.png")
    np.testing.assert_allclose(read_depth(tmp_path / "e.png", scale=10.0), [[0.0, 2.0]])


def _bad_depth(path: Path, how: str) -> Path:
    if how == "rgb png":
        path = path / "rgb.png"
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    elif how == "3-d npy":
        path = path / "cube.npy"
        np.save(path, np.ones((4, 4, 3), np.float32))
    elif how == "pickled npy":
        path = path / "objects.npy"
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif how == "not a file format":
        path = path / "junk.png"
        path.write_bytes(b"not a png")
    elif how == "bool npy":
        path = path / "flags.npy"
        np.save(path, np.ones((4, 4), bool))
    return path


@pytest.mark.parametrize("how", ["rgb png", "3-d npy", "pickled npy", "not a file format", "bool npy"])
def test_read_depth_bad_input_is_one_line_naming_the_file(tmp_path, how):
    path = _bad_depth(tmp_path, how)
    with pytest.raises(DataError) as info:
        read_depth(path)
    message = one_line(info)
    assert str(path) in message and "expected" in message


# --- folder source ------------------------------------------------------------------------

def blocky(seed: int, high: int, block: int = 4, size=(H, W)) -> np.ndarray:
    coarse = np.random.default_rng(seed).integers(1, high, (size[0] // block, size[1] // block))
    return coarse.repeat(block, 0).repeat(block, 1)


def make_depth_folder(root: Path, stems: list[str], depth_format: dict[str, str], size=(H, W)) -> dict[str, np.ndarray]:
    """images/, masks/ (index) and depths/ (16-bit mm PNG or .npy metres); returns the depth in metres per stem."""
    for sub in ("images", "masks", "depths"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, stem in enumerate(stems):
        pixels = np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"{stem}.png")
        Image.fromarray(blocky(10 + i, 3, size=size).astype(np.uint8)).save(root / "masks" / f"{stem}.png")
        mm = blocky(20 + i, 9000, size=size).astype(np.uint16)
        mm[0, :] = 0  # a row with no depth
        truth[stem] = mm / 1000.0
        if depth_format.get(stem) == "npy":
            np.save(root / "depths" / f"{stem}.npy", (mm / 1000.0).astype(np.float32))
        elif depth_format.get(stem) == "png":
            Image.fromarray(mm).save(root / "depths" / f"{stem}.png")
    return truth


def folder_params(root: Path, **data):
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"] = {"dataset": "folder", "path": str(root), "image_size": [H // 2, W // 2], "workers": 1,
                   "folder": {"classes": ["bg", "a", "b"], "mask_format": "index"}, **data}
    return params_from_dict(raw)


def test_folder_reads_png_and_npy_depth_maps(tmp_path):
    stems = ["a", "b", "c", "d"]
    truth = make_depth_folder(tmp_path, stems, {"a": "png", "b": "npy", "c": "png", "d": "npy"})
    raw = SOURCES.get("folder").read(folder_params(tmp_path), tmp_path)
    assert [s.depth.name for s in raw.splits["train"]] == ["a.png", "b.npy", "c.png", "d.npy"]
    for s in raw.splits["train"]:
        np.testing.assert_allclose(raw.decode_depth(s.depth), truth[s.image.stem], rtol=1e-6)


def test_folder_depth_scale_is_used_and_validated(tmp_path):
    truth = make_depth_folder(tmp_path, ["a", "b"], {"a": "png", "b": "png"})
    raw = SOURCES.get("folder").read(folder_params(tmp_path, folder={"classes": ["bg", "a", "b"], "depth_scale": 100.0}),
                                     tmp_path)
    np.testing.assert_allclose(raw.decode_depth(raw.splits["train"][0].depth), truth["a"] * 10, rtol=1e-6)
    with pytest.raises(ConfigError) as info:
        folder_params(tmp_path, folder={"classes": ["bg", "a", "b"], "depth_scale": 0})
    assert "data.folder.depth_scale" in one_line(info)


def test_folder_without_depths_folder_has_no_depth(tmp_path):
    make_depth_folder(tmp_path, ["a", "b", "c"], {})
    (tmp_path / "depths").rmdir()
    raw = SOURCES.get("folder").read(folder_params(tmp_path), tmp_path)
    assert raw.decode_depth is None and all(s.depth is None for s in raw.splits["train"])


def test_folder_image_without_depth_map_is_one_line_error(tmp_path):
    make_depth_folder(tmp_path, ["a", "b", "c"], {"a": "png", "c": "npy"})
    with pytest.raises(DataError) as info:
        SOURCES.get("folder").read(folder_params(tmp_path), tmp_path)
    message = one_line(info)
    assert "b.png" in message and str(tmp_path / "depths") in message


def test_folder_split_without_depths_while_others_have_them_is_an_error(tmp_path):
    make_depth_folder(tmp_path / "train", ["a", "b"], {"a": "png", "b": "png"})
    make_depth_folder(tmp_path / "val", ["c"], {})
    (tmp_path / "val" / "depths").rmdir()
    with pytest.raises(DataError) as info:
        SOURCES.get("folder").read(folder_params(tmp_path), tmp_path)
    assert str(tmp_path / "val" / "depths") in one_line(info)


# --- preprocess ---------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [1, 2])
def test_preprocess_resizes_depth_nearest_and_records_stats(tmp_path, workers):
    stems = [f"s{i}" for i in range(6)]
    truth = make_depth_folder(tmp_path / "root", stems, {s: ("png" if i % 2 else "npy") for i, s in enumerate(stems)})
    out = tmp_path / "processed"
    manifest = preprocess(folder_params(tmp_path / "root", workers=workers), tmp_path / "raw", out)
    assert manifest["has_depth"] is True
    for split, count in manifest["splits"].items():
        depths = np.load(out / f"{split}_depths.npy")
        assert depths.dtype == np.float32 and depths.shape == (count, H // 2, W // 2)
        for i, name in enumerate(manifest["files"][split]):
            # 2x nearest downscale: exactly every other source pixel, no blended depths
            np.testing.assert_allclose(depths[i], truth[Path(name).stem][::2, ::2], rtol=1e-6)
        assert manifest["depth_valid_fraction"][split] == pytest.approx((depths > 0).mean())
    train = np.load(out / "train_depths.npy").astype(np.float64)
    valid = train[train > 0]
    stats = manifest["depth"]
    assert stats["unit"] == "m"
    assert stats["mean"] == pytest.approx(valid.mean()) and stats["std"] == pytest.approx(valid.std())
    assert stats["min"] == pytest.approx(valid.min()) and stats["max"] == pytest.approx(valid.max())
    assert stats["min"] > 0  # the invalid zeros are left out


def test_preprocess_non_integer_resize_never_blends_depths(tmp_path):
    truth = make_depth_folder(tmp_path / "root", ["a", "b", "c"], {"a": "npy", "b": "npy", "c": "npy"})
    out = tmp_path / "processed"
    manifest = preprocess(folder_params(tmp_path / "root", image_size=[11, 17]), tmp_path / "raw", out)
    for split in manifest["splits"]:
        for i, name in enumerate(manifest["files"][split]):
            depth = np.load(out / f"{split}_depths.npy")[i]
            assert set(np.unique(depth)) <= set(np.unique(truth[Path(name).stem].astype(np.float32)))


def test_preprocess_depth_size_mismatch_names_the_file_and_writes_nothing(tmp_path):
    make_depth_folder(tmp_path / "root", ["a", "b", "c"], {"a": "png", "b": "png", "c": "png"})
    bad = tmp_path / "root" / "depths" / "b.png"
    Image.fromarray(np.ones((H, W + 2), np.uint16)).save(bad)
    out = tmp_path / "processed"
    with pytest.raises(DataError) as info:
        preprocess(folder_params(tmp_path / "root", workers=2), tmp_path / "raw", out)
    message = one_line(info)
    assert str(bad) in message and f"{W + 2}x{H}" in message and f"{W}x{H}" in message
    assert nothing_written(tmp_path, out)


def test_preprocess_rgb_depth_map_names_the_file_and_writes_nothing(tmp_path):
    make_depth_folder(tmp_path / "root", ["a", "b", "c"], {"a": "png", "b": "png", "c": "png"})
    bad = tmp_path / "root" / "depths" / "c.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(bad)
    out = tmp_path / "processed"
    with pytest.raises(DataError) as info:
        preprocess(folder_params(tmp_path / "root"), tmp_path / "raw", out)
    assert str(bad) in one_line(info)
    assert nothing_written(tmp_path, out)


# --- SegmentationCache --------------------------------------------------------------------

CLASS_DEPTH = np.array([0.0, 1.5, 3.0, 4.5, 6.0, 255.0], np.float32)  # 255: the mask's fill value, a valid depth here


def class_depth_cache(tmp_path: Path, n: int = 4, size: int = 64) -> Path:
    """A cache whose depth is a function of the class (classes 1..5), so alignment is checkable."""
    root = tmp_path / "root"
    for sub in ("images", "masks", "depths"):
        (root / sub).mkdir(parents=True)
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255]], np.uint8)
    for i in range(n):
        mask = blocky(i, 6, block=8, size=(size, size)).astype(np.uint8)
        Image.fromarray(palette[mask]).save(root / "images" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
        np.save(root / "depths" / f"{i}.npy", CLASS_DEPTH[mask])
    out = tmp_path / "processed"
    classes = ["bg", "r", "g", "b", "y", "m"]
    preprocess(folder_params(root, image_size=[size, size], folder={"classes": classes, "mask_format": "index"},
                             val_fraction=0.25), tmp_path / "raw", out)
    return out


def test_cache_with_depth_returns_triples_and_without_pairs(tmp_path):
    out = class_depth_cache(tmp_path, size=32)
    data = SegmentationCache(out, "train", depth=True)
    image, mask, depth = data[0]
    assert data.has_depth and image.shape == (3, 32, 32) and mask.dtype.is_floating_point is False
    assert depth.shape == (32, 32) and str(depth.dtype) == "torch.float32"
    np.testing.assert_array_equal(depth.numpy(), CLASS_DEPTH[mask.numpy()])
    plain = SegmentationCache(out, "train")
    assert not plain.has_depth and len(plain[0]) == 2
    assert all((a == b).all() for a, b in zip(plain[0], data[0][:2]))


def test_cache_without_depth_asked_for_depth_is_a_data_error(tmp_path):
    generate(tmp_path / "raw", seed=0, sizes={"train": 3, "val": 1, "test": 1}, height=32, width=32, num_classes=3)
    for split in ("train", "val", "test"):
        shutil.rmtree(tmp_path / "raw" / split / "depths")
    preprocess(synthetic_params(), tmp_path / "raw", tmp_path / "processed")
    with pytest.raises(DataError) as info:
        SegmentationCache(tmp_path / "processed", "train", depth=True)
    message = one_line(info)
    assert "seg_depth" in message and "'synthetic'" in message and str(tmp_path / "processed") in message


def test_augmentation_moves_depth_with_the_mask_and_padding_has_no_depth(tmp_path):
    out = class_depth_cache(tmp_path)
    cfg = AugmentConfig(hflip=0.5, crop_p=1.0, crop_scale=(0.3, 0.6), rotate=30, rotate_p=1.0, jitter_p=1.0)
    data = SegmentationCache(out, "train", augment=cfg, seed=3, depth=True)
    padded_pixels = 0
    for epoch in (1, 2):
        data.set_epoch(epoch)
        for i in range(len(data)):
            _, mask, depth = (t.numpy() for t in data[i])
            padded = mask == 255  # the source masks have no ignore pixels: 255 is rotation padding
            padded_pixels += padded.sum()
            assert (depth[padded] == 0).all()  # no depth, even though the mask's fill value is 255
            np.testing.assert_array_equal(depth[~padded], CLASS_DEPTH[mask[~padded]])  # nearest, aligned
    assert padded_pixels > 0


def test_augmentation_with_depth_is_deterministic_and_keeps_image_and_mask_as_without(tmp_path):
    out = class_depth_cache(tmp_path)
    cfg = AugmentConfig(hflip=0.5, crop_p=1.0, rotate=20, rotate_p=0.7, jitter_p=0.5)
    with_depth = SegmentationCache(out, "train", augment=cfg, seed=1, depth=True)
    without = SegmentationCache(out, "train", augment=cfg, seed=1)
    runs = []
    for dataset in (with_depth, with_depth, without):
        dataset.set_epoch(4)
        runs.append([dataset[i] for i in range(len(dataset))])
    for a, b, c in zip(*runs):
        assert all((x == y).all() for x, y in zip(a, b))  # same epoch, same draws
        assert len(c) == 2 and all((x == y).all() for x, y in zip(a[:2], c))
