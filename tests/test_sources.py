"""Dataset sources (floodnet, cityscapes_pairs, stanford_background, folder) on tiny
fabricated datasets: layout discovery, splits, class names and exact mask decoding."""
from __future__ import annotations

import copy
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_PARAMS
from PIL import Image

from segbench.config import params_from_dict
from segbench.data.sources import SOURCES
from segbench.data.sources.cityscapes_pairs import CATEGORIES, TRAIN_CLASSES, cityscapes_palette
from segbench.data.sources.masks import map_colours, nearest_colour
from segbench.errors import ConfigError, DataError

H, W = 16, 24
FLOODNET = ("background", "building", "road", "water", "tree", "vehicle", "pool", "grass")
STANFORD = ("sky", "tree", "road", "grass", "water", "building", "mountain", "foreground object")


def make_params(dataset: str, **data):
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"]["dataset"] = dataset
    raw["data"].update(data)
    return params_from_dict(raw)


def read(dataset: str, root: Path, **data):
    params = make_params(dataset, **data)
    return SOURCES.get(dataset).read(params, root)


def one_line_error(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and message
    return message


def photo(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def labels(seed: int, num_classes: int, block: int = 4) -> np.ndarray:
    """Blocky labels (blocks survive JPEG better than single pixels)."""
    coarse = np.random.default_rng(100 + seed).integers(0, num_classes, (H // block, W // block))
    return coarse.repeat(block, 0).repeat(block, 1).astype(np.uint8)


def save(array: np.ndarray, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)
    return path


def noisy(rgb: np.ndarray, seed: int, amplitude: int = 12) -> np.ndarray:
    """Colours off by up to `amplitude` per channel, like a lossy codec."""
    noise = np.random.default_rng(seed).integers(-amplitude, amplitude + 1, rgb.shape)
    return np.clip(rgb.astype(np.int32) + noise, 0, 255).astype(np.uint8)


def check_picklable(raw, sample) -> None:
    for fn in (raw.decode_mask, raw.decode_image):
        clone = pickle.loads(pickle.dumps(fn))
        assert np.array_equal(clone(sample.mask if fn is raw.decode_mask else sample.image),
                              fn(sample.mask if fn is raw.decode_mask else sample.image))


def test_all_four_sources_are_registered_and_valid_dataset_names():
    for name in ("floodnet", "cityscapes_pairs", "stanford_background", "folder"):
        assert name in SOURCES.names()
        assert make_params(name).data.dataset == name


# --- floodnet -----------------------------------------------------------------------------


def make_floodnet(root: Path) -> dict[str, np.ndarray]:
    truth = {}
    for split, stems in (("train", ["7301", "6651", "10170"]), ("test", ["7577", "6336"])):
        for i, stem in enumerate(stems):
            save(photo(i), root / "FloodNet" / split / "image" / f"{stem}.jpg", quality=90)
            mask = labels(i + len(split), 8)
            mask[0, 0] = 255  # an ignored pixel
            name = f"{stem}_lab.png" if i % 2 == 0 else f"{stem}.png"  # both namings are accepted
            save(mask, root / "FloodNet" / split / "mask" / name)
            truth[stem] = mask
    return truth


def test_floodnet_classes_splits_and_masks(tmp_path):
    truth = make_floodnet(tmp_path)
    raw = read("floodnet", tmp_path)  # the dataset sits one folder down, as archives have it
    assert raw.class_names == FLOODNET
    assert sorted(raw.splits) == ["test", "train"]  # no val: preprocess makes it
    assert [s.image.name for s in raw.splits["train"]] == ["10170.jpg", "6651.jpg", "7301.jpg"]
    assert [s.mask.name for s in raw.splits["train"]] == ["10170_lab.png", "6651.png", "7301_lab.png"]
    assert len(raw.splits["test"]) == 2
    for split in ("train", "test"):
        for sample in raw.splits[split]:
            mask = raw.decode_mask(sample.mask)
            assert mask.dtype == np.uint8 and mask.shape == (H, W)
            assert np.array_equal(mask, truth[sample.image.stem])
            assert raw.decode_image(sample.image).shape == (H, W, 3)
    check_picklable(raw, raw.splits["train"][0])


def test_floodnet_image_without_mask_and_ten_class_masks_are_data_errors(tmp_path):
    make_floodnet(tmp_path)
    (tmp_path / "FloodNet/train/mask/6651.png").unlink()
    with pytest.raises(DataError) as exc:
        read("floodnet", tmp_path)
    message = one_line_error(exc)
    assert "6651.jpg" in message and "6651_lab.png" in message

    make_floodnet(tmp_path)
    raw = read("floodnet", tmp_path)
    sample = raw.splits["train"][0]
    save(np.full((H, W), 9, np.uint8), sample.mask)
    with pytest.raises(DataError) as exc:
        raw.decode_mask(sample.mask)
    message = one_line_error(exc)
    assert sample.mask.name in message and "0..7" in message and "10 original FloodNet classes" in message


def test_floodnet_missing_layout_names_what_is_expected(tmp_path):
    (tmp_path / "train" / "image").mkdir(parents=True)
    with pytest.raises(DataError) as exc:
        read("floodnet", tmp_path)
    assert "train/mask" in one_line_error(exc)


# --- cityscapes_pairs ---------------------------------------------------------------------

CS_COLOURS = {name: colour for name, colour in [
    ("void", (0, 0, 0)), ("road", (128, 64, 128)), ("building", (70, 70, 70)), ("pole", (153, 153, 153)),
    ("vegetation", (107, 142, 35)), ("sky", (70, 130, 180)), ("person", (220, 20, 60)), ("car", (0, 0, 142)),
    ("parking", (250, 170, 160)), ("truck", (0, 0, 70)), ("caravan", (0, 0, 90)),
]}
# label name -> (category index, training class index or None)
CS_TRUTH = {"void": (0, None), "road": (1, 0), "building": (2, 2), "pole": (3, 5), "vegetation": (4, 8),
            "sky": (5, 10), "person": (6, 11), "car": (7, 13), "parking": (1, None), "truck": (7, 14),
            "caravan": (7, None)}


def make_pairs(root: Path, mask_side: str = "right", jpeg: bool = False) -> dict[str, np.ndarray]:
    """Pair images whose mask halves use CS_COLOURS with noise; returns label-name maps."""
    names = list(CS_COLOURS)
    colours = np.array([CS_COLOURS[n] for n in names], np.uint8)
    truth = {}
    for split, count in (("train", 3), ("val", 2)):
        for i in range(count):
            which = labels(i + 10 * (split == "val"), len(names))
            # +-6 per channel: truck, caravan and car differ by 20 in blue only
            mask_rgb = noisy(colours[which], seed=i, amplitude=6)
            halves = [photo(i), mask_rgb] if mask_side == "right" else [mask_rgb, photo(i)]
            stem = f"{split}{i}"
            path = root / "cityscapes_data" / split / (f"{stem}.jpg" if jpeg else f"{stem}.png")
            save(np.concatenate(halves, axis=1), path, **({"quality": 95} if jpeg else {}))
            truth[stem] = np.array(names, dtype=object)[which]
    return truth


@pytest.mark.parametrize("grouping", ["categories", "classes"])
def test_cityscapes_pairs_maps_noisy_colours_to_classes(tmp_path, grouping):
    truth = make_pairs(tmp_path)
    raw = read("cityscapes_pairs", tmp_path, cityscapes_pairs={"grouping": grouping})
    assert raw.class_names == (CATEGORIES if grouping == "categories" else TRAIN_CLASSES)
    assert len(raw.class_names) == (8 if grouping == "categories" else 19)
    assert sorted(raw.splits) == ["train", "val"]  # no test split is invented
    assert [s.image.name for s in raw.splits["train"]] == ["train0.png", "train1.png", "train2.png"]
    assert all(s.image == s.mask for s in raw.splits["val"])
    for sample in raw.splits["train"] + raw.splits["val"]:
        names = truth[sample.image.stem]
        pick = 0 if grouping == "categories" else 1
        expected = np.vectorize(lambda n, pick=pick: 255 if CS_TRUTH[n][pick] is None else CS_TRUTH[n][pick])(names)
        mask = raw.decode_mask(sample.mask)
        assert mask.dtype == np.uint8 and mask.shape == (H, W)
        assert np.array_equal(mask, expected.astype(np.uint8))
        i = int(sample.image.stem[-1])
        assert np.array_equal(raw.decode_image(sample.image), photo(i))
    check_picklable(raw, raw.splits["train"][0])


def test_cityscapes_palette_tables():
    classes, colours, values, names = cityscapes_palette("categories", 255)
    assert classes == ("void", "flat", "construction", "object", "nature", "sky", "human", "vehicle")
    assert len(set(colours)) == len(colours)  # polegroup and license plate dropped
    assert "polegroup" not in names and "license plate" not in names
    assert values[colours.index((0, 0, 0))] == 0 and values[colours.index((0, 0, 142))] == 7
    classes, colours, values, names = cityscapes_palette("classes", 255)
    assert classes[:3] == ("road", "sidewalk", "building") and classes[-1] == "bicycle"
    assert sorted(v for v in values if v != 255) == list(range(19))
    assert values[colours.index((0, 0, 0))] == 255 and values[colours.index((119, 11, 32))] == 18


def test_cityscapes_pairs_mask_on_the_left(tmp_path):
    truth = make_pairs(tmp_path, mask_side="left")
    raw = read("cityscapes_pairs", tmp_path, cityscapes_pairs={"mask_side": "left"})
    sample = raw.splits["train"][1]
    assert np.array_equal(raw.decode_image(sample.image), photo(1))
    expected = np.vectorize(lambda n: CS_TRUTH[n][0])(truth["train1"]).astype(np.uint8)
    assert np.array_equal(raw.decode_mask(sample.mask), expected)


def test_cityscapes_pairs_real_jpeg_masks_decode_mostly_right(tmp_path):
    truth = make_pairs(tmp_path, jpeg=True)
    raw = read("cityscapes_pairs", tmp_path)
    for sample in raw.splits["train"]:
        expected = np.vectorize(lambda n: CS_TRUTH[n][0])(truth[sample.image.stem])
        assert (raw.decode_mask(sample.mask) == expected).mean() > 0.85


def test_cityscapes_pairs_unknown_colour_is_ignored_then_an_error(tmp_path):
    make_pairs(tmp_path)
    raw = read("cityscapes_pairs", tmp_path)
    path = raw.splits["train"][0].mask
    pair = np.asarray(Image.open(path)).copy()
    pair[0, W, :] = (255, 255, 255)  # 1 pixel of 384 (0.3% <= 2%): ignored
    save(pair, path)
    mask = raw.decode_mask(path)
    assert mask[0, 0] == 255 and (mask != 255).sum() == H * W - 1
    pair[:4, W:, :] = (255, 255, 255)  # 25%: an error
    save(pair, path)
    with pytest.raises(DataError) as exc:
        raw.decode_mask(path)
    message = one_line_error(exc)
    assert str(path) in message and "25.0%" in message and "(255, 255, 255)" in message
    assert "data.cityscapes_pairs.tolerance" in message and "nearest" in message


def test_cityscapes_pairs_custom_palette(tmp_path):
    colours = np.array([(0, 0, 0), (255, 0, 0), (0, 255, 0)], np.uint8)
    which = labels(0, 3)
    save(np.concatenate([photo(0), noisy(colours[which], 0, 20)], axis=1), tmp_path / "train" / "a.png")
    raw = read("cityscapes_pairs", tmp_path, cityscapes_pairs={
        "preset": "custom", "classes": ["bg", "red", "green"], "palette": colours.tolist()})
    assert raw.class_names == ("bg", "red", "green") and list(raw.splits) == ["train"]
    assert np.array_equal(raw.decode_mask(tmp_path / "train" / "a.png"), which)
    for bad in ({"classes": ["bg", "red"], "palette": colours.tolist()},
                {"classes": ["only"], "palette": colours[:1].tolist()},
                {"classes": [], "palette": []}):
        with pytest.raises(ConfigError) as exc:
            read("cityscapes_pairs", tmp_path, cityscapes_pairs={"preset": "custom", **bad})
        message = one_line_error(exc)
        assert "data.cityscapes_pairs.classes" in message and "data.cityscapes_pairs.palette" in message


def test_cityscapes_pairs_odd_width_is_a_data_error(tmp_path):
    save(np.zeros((H, 2 * W + 1, 3), np.uint8), tmp_path / "train" / "odd.png")
    raw = read("cityscapes_pairs", tmp_path)
    with pytest.raises(DataError) as exc:
        raw.decode_mask(raw.splits["train"][0].mask)
    assert "odd.png" in one_line_error(exc) and "side by side" in str(exc.value)


def test_palette_mapping_is_exact_and_fast():
    _, colours, values, names = cityscapes_palette("categories", 255)
    palette = np.array(colours, np.int64)
    rng = np.random.default_rng(0)
    which = rng.integers(0, len(colours), (64, 128)).repeat(8, 0).repeat(8, 1)  # 512 x 1024
    rgb = np.clip(palette[which] + rng.normal(0, 6, which.shape + (3,)), 0, 255).astype(np.uint8)
    nearest_colour(rgb[:8, :8], colours)  # builds the lookup table once
    start = time.perf_counter()
    out = map_colours(Path("x.png"), rgb, colours, values, names, ignore_index=255, tolerance=60.0,
                      max_unmatched=0.02, hint="")
    elapsed = time.perf_counter() - start
    print(f"\npalette mapping, 512 x 1024 mask, {len(colours)} colours: {elapsed * 1000:.1f} ms")
    small = rgb[:256, :256]
    start = time.perf_counter()
    nearest_colour(small, colours)
    print(f"palette mapping, 256 x 256 mask: {(time.perf_counter() - start) * 1000:.1f} ms")
    # brute force agrees exactly (index and distance), ties broken towards the first colour
    d2 = ((small[..., None, :].astype(np.int64) - palette) ** 2).sum(-1)
    index, dist2 = nearest_colour(small, colours)
    assert np.array_equal(index, d2.argmin(-1)) and np.array_equal(dist2, d2.min(-1))
    assert (out[:256, :256] == np.asarray(values, np.uint8)[d2.argmin(-1)]).all()


def test_nearest_colour_matches_brute_force_on_every_colour_cell():
    rng = np.random.default_rng(1)
    colours = tuple(tuple(int(v) for v in c) for c in rng.integers(0, 256, (12, 3)))
    rgb = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    palette = np.array(colours, np.int64)
    d2 = ((rgb[..., None, :].astype(np.int64) - palette) ** 2).sum(-1)
    index, dist2 = nearest_colour(rgb, colours)
    assert np.array_equal(index, d2.argmin(-1)) and np.array_equal(dist2, d2.min(-1))


# --- stanford_background ------------------------------------------------------------------


def write_regions(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(" ".join(str(v) for v in row) for row in values) + "\n")


def make_stanford(root: Path) -> dict[str, np.ndarray]:
    truth = {}
    for i, stem in enumerate(["6000124", "0000047", "1000001"]):
        save(photo(i), root / "iccv09Data" / "images" / f"{stem}.jpg", quality=90)
        values = labels(i, 8).astype(np.int64)
        values[:2, :3] = -1
        write_regions(root / "iccv09Data" / "labels" / f"{stem}.regions.txt", values)
        (root / "iccv09Data" / "labels" / f"{stem}.layers.txt").write_text("0\n")  # ignored
        truth[stem] = values
    return truth


def test_stanford_background_everything_in_train_and_unknown_is_ignored(tmp_path):
    truth = make_stanford(tmp_path)
    raw = read("stanford_background", tmp_path)
    assert raw.class_names == STANFORD
    assert list(raw.splits) == ["train"]  # preprocess makes val
    assert [s.image.stem for s in raw.splits["train"]] == ["0000047", "1000001", "6000124"]
    for sample in raw.splits["train"]:
        assert sample.mask.name == f"{sample.image.stem}.regions.txt"
        mask = raw.decode_mask(sample.mask)
        expected = np.where(truth[sample.image.stem] < 0, 255, truth[sample.image.stem])
        assert mask.dtype == np.uint8 and np.array_equal(mask, expected)
        assert (mask[:2, :3] == 255).all()
    check_picklable(raw, raw.splits["train"][0])


@pytest.mark.parametrize("content, words", [
    ("0 1 x 2\n", "'x' is not an integer"),
    ("0 1 2\n0 1\n", "line 2 has 2 values"),
    ("", "empty"),
    ("0 1 9\n", "value 9 out of range"),
    ("0.5 1\n", "'0.5' is not an integer"),
    ("0 99999999999999999999999\n", "out of range"),
    ("\x00\x01garbage\n", "is not an integer"),
])
def test_stanford_background_garbage_regions_file_is_a_data_error(tmp_path, content, words):
    make_stanford(tmp_path)
    raw = read("stanford_background", tmp_path)
    path = raw.splits["train"][0].mask
    path.write_text(content)
    with pytest.raises(DataError) as exc:
        raw.decode_mask(path)
    message = one_line_error(exc)
    assert str(path) in message and words in message and "-1..7" in message


def test_stanford_background_image_without_labels(tmp_path):
    make_stanford(tmp_path)
    (tmp_path / "iccv09Data" / "labels" / "1000001.regions.txt").unlink()
    with pytest.raises(DataError) as exc:
        read("stanford_background", tmp_path)
    assert "1000001.jpg" in one_line_error(exc) and "1000001.regions.txt" in str(exc.value)


# --- folder -------------------------------------------------------------------------------

PAL = [(0, 0, 0), (200, 30, 30), (30, 200, 30)]


def make_folder(root: Path, masks: dict[str, np.ndarray], image_ext: str = ".jpg", mask_ext: str = ".png",
                images: str = "images", mask_dir: str = "masks", **save_kw) -> None:
    for i, (stem, mask) in enumerate(masks.items()):
        save(photo(i), root / images / f"{stem}{image_ext}")
        save(mask, root / mask_dir / f"{stem}{mask_ext}", **save_kw)


def test_folder_requires_class_names(tmp_path):
    make_folder(tmp_path, {"a": labels(0, 3)})
    with pytest.raises(ConfigError) as exc:
        read("folder", tmp_path)
    assert one_line_error(exc) == "data.folder.classes: required for dataset folder: list the class names in index order"
    with pytest.raises(ConfigError) as exc:
        read("folder", tmp_path, folder={"classes": ["a", "b", "c"], "palette": PAL[:2]})
    assert "data.folder.palette" in one_line_error(exc)
    with pytest.raises(ConfigError) as exc:
        read("folder", tmp_path, folder={"classes": ["a", "b", "c"], "mask_format": "binary"})
    assert "exactly 2 classes" in one_line_error(exc)


def test_folder_flat_index_masks_everything_in_train(tmp_path):
    truth = {stem: labels(i, 3) for i, stem in enumerate(["b", "a", "c"])}
    make_folder(tmp_path, truth)
    save(photo(9), tmp_path / "images" / "d.png")  # any image extension ...
    save(labels(9, 3), tmp_path / "masks" / "d.bmp")  # ... for masks too
    truth["d"] = labels(9, 3)
    raw = read("folder", tmp_path, folder={"classes": ["bg", "x", "y"], "mask_format": "index"})
    assert raw.class_names == ("bg", "x", "y") and list(raw.splits) == ["train"]
    assert [s.image.name for s in raw.splits["train"]] == ["a.jpg", "b.jpg", "c.jpg", "d.png"]
    for sample in raw.splits["train"]:
        assert np.array_equal(raw.decode_mask(sample.mask), truth[sample.image.stem])
    check_picklable(raw, raw.splits["train"][0])


def test_folder_split_subfolders_and_custom_folder_names(tmp_path):
    for split, stems in (("train", ["t1", "t2"]), ("val", ["v1"]), ("test", ["s1", "s2"])):
        make_folder(tmp_path / "data" / split, {s: labels(i, 2) for i, s in enumerate(stems)},
                    images="img", mask_dir="ann")
    raw = read("folder", tmp_path, folder={"classes": ["bg", "fg"], "images": "img", "masks": "ann"})
    assert {k: [s.image.stem for s in v] for k, v in raw.splits.items()} == {
        "train": ["t1", "t2"], "val": ["v1"], "test": ["s1", "s2"]}


def test_folder_image_without_mask_is_a_data_error(tmp_path):
    make_folder(tmp_path, {"a": labels(0, 2), "b": labels(1, 2)})
    (tmp_path / "masks" / "b.png").unlink()
    with pytest.raises(DataError) as exc:
        read("folder", tmp_path, folder={"classes": ["bg", "fg"]})
    assert "b.jpg" in one_line_error(exc) and "no mask" in str(exc.value)


@pytest.mark.parametrize("fmt", ["binary", "auto"])
def test_folder_binary_0_255_becomes_0_1(tmp_path, fmt):
    fg = labels(0, 2)
    make_folder(tmp_path, {"a": fg * 255, "b": fg})  # 0/255 and 0/1 both work
    raw = read("folder", tmp_path, folder={"classes": ["bg", "fg"], "mask_format": fmt})
    for sample in raw.splits["train"]:
        assert np.array_equal(raw.decode_mask(sample.mask), fg)


def test_folder_binary_other_values_are_a_data_error(tmp_path):
    make_folder(tmp_path, {"a": (labels(0, 2) * 128)})
    raw = read("folder", tmp_path, folder={"classes": ["bg", "fg"], "mask_format": "binary"})
    with pytest.raises(DataError) as exc:
        raw.decode_mask(raw.splits["train"][0].mask)
    message = one_line_error(exc)
    assert "a.png" in message and "128" in message and "0 and 255" in message


@pytest.mark.parametrize("fmt", ["palette", "auto", "index"])
def test_folder_palette_mode_png_gives_its_indices(tmp_path, fmt):
    which = labels(0, 3)
    im = Image.frombytes("P", (W, H), which.tobytes())
    im.putpalette([v for c in PAL for v in c])
    (tmp_path / "masks").mkdir()
    im.save(tmp_path / "masks" / "a.png")
    save(photo(0), tmp_path / "images" / "a.jpg")
    raw = read("folder", tmp_path, folder={"classes": ["bg", "r", "g"], "mask_format": fmt})
    assert Image.open(raw.splits["train"][0].mask).mode == "P"
    assert np.array_equal(raw.decode_mask(raw.splits["train"][0].mask), which)


@pytest.mark.parametrize("fmt", ["palette", "auto"])
def test_folder_rgb_masks_with_a_palette(tmp_path, fmt):
    which = labels(0, 3, block=8)  # JPEG blocks are 8 x 8
    rgb = np.array(PAL, np.uint8)[which]
    make_folder(tmp_path, {"exact": rgb})
    save(rgb, tmp_path / "masks" / "lossy.jpg", quality=90, subsampling=0)  # nearest colour within 60
    save(photo(1), tmp_path / "images" / "lossy.jpg")
    params = {"classes": ["bg", "r", "g"], "mask_format": fmt, "palette": [list(c) for c in PAL]}
    raw = read("folder", tmp_path, folder=params)
    for sample in raw.splits["train"]:
        out = raw.decode_mask(sample.mask)
        if sample.mask.suffix == ".png":
            assert np.array_equal(out, which)
        else:
            assert (out == which).mean() > 0.9
    # A lossless mask must use the palette colours exactly: a new colour is named.
    rgb[5, 5] = (1, 2, 3)
    save(rgb, tmp_path / "masks" / "exact.png")
    with pytest.raises(DataError) as exc:
        raw.decode_mask(tmp_path / "masks" / "exact.png")
    message = one_line_error(exc)
    assert "exact.png" in message and "(1, 2, 3)" in message and "data.folder.palette" in message


def test_folder_rgb_mask_without_palette_says_set_the_palette(tmp_path):
    make_folder(tmp_path, {"a": np.array(PAL, np.uint8)[labels(0, 3)]})
    with pytest.raises(DataError) as exc:  # mask_format auto reads every mask once, up front
        read("folder", tmp_path, folder={"classes": ["bg", "r", "g"]})
    message = one_line_error(exc)
    assert "a.png" in message and "set it to the [R, G, B] colour of each class" in message
    assert "data.folder.palette" in message


def test_folder_grey_rgb_mask_is_read_as_indices(tmp_path):
    which = labels(0, 3)
    make_folder(tmp_path, {"a": np.repeat(which[..., None], 3, axis=2)})
    raw = read("folder", tmp_path, folder={"classes": ["bg", "r", "g"]})
    assert np.array_equal(raw.decode_mask(raw.splits["train"][0].mask), which)


def test_folder_layout_errors(tmp_path):
    with pytest.raises(DataError) as exc:
        read("folder", tmp_path, folder={"classes": ["bg", "fg"]})
    assert "missing images, masks" in one_line_error(exc)
    make_folder(tmp_path, {"a": labels(0, 2)})
    save(labels(0, 2), tmp_path / "masks" / "a.bmp")
    with pytest.raises(DataError) as exc:
        read("folder", tmp_path, folder={"classes": ["bg", "fg"]})
    assert "share the stem 'a'" in one_line_error(exc)


def test_unreadable_mask_is_a_data_error(tmp_path):
    make_folder(tmp_path, {"a": labels(0, 2)})
    (tmp_path / "masks" / "a.png").write_bytes(b"not a png")
    raw = read("folder", tmp_path, folder={"classes": ["bg", "fg"], "mask_format": "index"})
    with pytest.raises(DataError) as exc:
        raw.decode_mask(tmp_path / "masks" / "a.png")
    assert "a.png" in one_line_error(exc)
    with pytest.raises(DataError) as exc:  # auto reads every mask up front: the same one line, earlier
        read("folder", tmp_path, folder={"classes": ["bg", "fg"]})
    assert "a.png" in one_line_error(exc)


# --- decoders in worker processes ----------------------------------------------------------


def _decode(args):
    decode, path = args
    return decode(path)


def test_decoders_run_in_worker_processes(tmp_path):
    make_pairs(tmp_path / "pairs")
    make_stanford(tmp_path / "stanford")
    make_floodnet(tmp_path / "flood")
    make_folder(tmp_path / "folder", {"a": np.array(PAL, np.uint8)[labels(0, 3)]})
    raws = [read("cityscapes_pairs", tmp_path / "pairs"), read("stanford_background", tmp_path / "stanford"),
            read("floodnet", tmp_path / "flood"),
            read("folder", tmp_path / "folder", folder={"classes": ["a", "b", "c"], "palette": [list(c) for c in PAL]})]
    jobs = [(raw.decode_mask, raw.splits["train"][0].mask) for raw in raws]
    jobs += [(raw.decode_image, raw.splits["train"][0].image) for raw in raws]
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(_decode, jobs))
    for (decode, path), result in zip(jobs, results):
        assert np.array_equal(result, decode(path))


def test_folder_jpeg_mask_tolerance_is_a_param(tmp_path):
    """A heavily compressed colour mask fails at the default tolerance and decodes when it is raised."""
    which = labels(0, 3, block=8)
    rgb = np.array(PAL, np.uint8)[which].astype(np.int16)
    rgb[::2] += 70  # every other row pushed 70 away from its palette colour (beyond the default 60)
    make_folder(tmp_path, {"a": np.array(PAL, np.uint8)[which]})
    (tmp_path / "masks" / "a.png").unlink()
    save(np.clip(rgb, 0, 255).astype(np.uint8), tmp_path / "masks" / "a.jpg", quality=100, subsampling=0)
    params = {"classes": ["bg", "r", "g"], "palette": [list(c) for c in PAL]}
    raw = read("folder", tmp_path, folder=params)
    with pytest.raises(DataError) as exc:
        raw.decode_mask(raw.splits["train"][0].mask)
    assert "a.jpg" in one_line_error(exc)
    raw = read("folder", tmp_path, folder={**params, "tolerance": 200.0})
    assert (raw.decode_mask(raw.splits["train"][0].mask) == which).mean() > 0.9
