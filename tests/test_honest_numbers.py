"""No silent wrong numbers (issue 15): one mask reading per dataset, ignore colours, unlabelled
splits, a test split that never selected the epoch, an ignore index that would erase a class."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from conftest import TINY_PARAMS
from PIL import Image
from test_sources import PAL, labels, make_folder, make_params, one_line_error, photo, read, save

from segbench.config import params_from_dict
from segbench.data.preprocess import preprocess
from segbench.errors import ConfigError, DataError
from segbench.evaluate import split_source

VOID = (255, 255, 255)


# --- 1. folder mask_format auto: one reading per dataset -------------------------------------------

def test_auto_stops_on_a_dataset_whose_masks_read_255_two_ways(tmp_path):
    fg = labels(0, 2)
    with_ignore = fg.copy()
    with_ignore[:4, :4] = 255  # 0/1 masks with void: 255 is ignore here ...
    make_folder(tmp_path, {"a": fg * 255, "b": with_ignore})  # ... and foreground in a.png
    with pytest.raises(DataError) as exc:
        read("folder", tmp_path, folder={"classes": ["bg", "fg"]})
    message = one_line_error(exc)
    assert "a.png" in message and "b.png" in message and "two readings of 255" in message
    assert "mask_format to binary or index" in message
    raw = read("folder", tmp_path, folder={"classes": ["bg", "fg"], "mask_format": "index"})  # the way out
    assert raw.mask_format == "index"


@pytest.mark.parametrize("classes, scale, resolved", [(2, 255, "binary"), (2, 1, "index"), (3, 1, "index")])
def test_auto_resolves_once_and_the_manifest_records_it(tmp_path, classes, scale, resolved):
    masks = {f"m{i}": (labels(i, classes) * scale).astype(np.uint8) for i in range(4)}
    classes = ["bg", "fg", "other"][:classes]
    make_folder(tmp_path / "data", masks)
    params = make_params("folder", path=str(tmp_path / "data"), image_size=[8, 8], workers=1,
                         folder={"classes": classes})
    manifest = preprocess(params, tmp_path / "raw", tmp_path / "processed")
    assert manifest["mask_format"] == resolved


def test_auto_stops_on_colour_beside_single_channel_masks(tmp_path):
    make_folder(tmp_path, {"a": np.array(PAL, np.uint8)[labels(0, 3)], "b": labels(1, 3)})
    with pytest.raises(DataError) as exc:
        read("folder", tmp_path, folder={"classes": ["bg", "r", "g"], "palette": PAL})
    message = one_line_error(exc)
    assert "a.png" in message and "b.png" in message and "two readings" in message


# --- 2. ignore colours ---------------------------------------------------------------------------------

def void_mask(seed: int, share: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(RGB colour mask with a VOID band over `share` of the rows, the index mask it encodes)."""
    index = labels(seed, 3)
    rgb = np.array(PAL, np.uint8)[index]
    rows = int(round(index.shape[0] * share))
    rgb[:rows], index = VOID, np.where(np.arange(index.shape[0])[:, None] < rows, 255, index)
    return rgb, index.astype(np.uint8)


def test_a_30_percent_void_colour_needs_ignore_colors_not_max_unmatched(tmp_path):
    rgb, truth = void_mask(0)
    make_folder(tmp_path, {"a": rgb}, mask_ext=".jpg", quality=95, subsampling=0)
    folder = {"classes": ["bg", "r", "g"], "palette": PAL}
    raw = read("folder", tmp_path, folder=folder)  # default max_unmatched 0.02: void is 30% unmatched
    with pytest.raises(DataError) as exc:
        raw.decode_mask(raw.splits["train"][0].mask)
    assert "a.jpg" in one_line_error(exc)
    raw = read("folder", tmp_path, folder={**folder, "ignore_colors": [list(VOID)]})
    mask = raw.decode_mask(raw.splits["train"][0].mask)
    void = truth == 255
    assert (mask[void] == 255).mean() >= 0.999
    assert (mask[~void] == truth[~void]).mean() >= 0.98


def test_cityscapes_pairs_custom_ignore_colors(tmp_path):
    rgb, truth = void_mask(1)
    save(np.concatenate([photo(0), rgb], axis=1), tmp_path / "train" / "0.png")
    pairs = {"preset": "custom", "classes": ["bg", "r", "g"], "palette": PAL, "ignore_colors": [list(VOID)]}
    raw = read("cityscapes_pairs", tmp_path, cityscapes_pairs=pairs)
    assert np.array_equal(raw.decode_mask(raw.splits["train"][0].mask), truth)


def test_an_ignore_colour_that_is_a_class_colour_is_a_config_error(tmp_path):
    make_folder(tmp_path, {"a": np.array(PAL, np.uint8)[labels(0, 3)]})
    raw = read("folder", tmp_path, folder={"classes": ["bg", "r", "g"], "palette": PAL, "ignore_colors": [list(PAL[1])]})
    with pytest.raises(ConfigError) as exc:
        raw.decode_mask(raw.splits["train"][0].mask)
    assert "data.folder.ignore_colors" in one_line_error(exc) and "'r'" in one_line_error(exc)


# --- 3 and 4. unlabelled splits; the reported split never selected the epoch --------------------------

def split_folder(root, counts: dict[str, int], unlabelled: tuple[str, ...] = ()) -> None:
    for split, n in counts.items():
        for i in range(n):
            save(photo(i), root / split / "images" / f"{split}{i}.png")
            if split not in unlabelled:
                save(labels(i, 2), root / split / "masks" / f"{split}{i}.png")


def test_an_unlabelled_test_split_is_left_out_and_a_test_split_carved(tmp_path, capsys):
    split_folder(tmp_path / "data", {"train": 10, "val": 2, "test": 3}, unlabelled=("test",))
    params = make_params("folder", path=str(tmp_path / "data"), image_size=[8, 8], workers=1,
                         folder={"classes": ["bg", "fg"]})
    manifest = preprocess(params, tmp_path / "raw", tmp_path / "processed")
    assert manifest["unlabelled_splits"] == {"test": 3}
    assert manifest["test_from_train"] is True and manifest["val_from_train"] is False
    assert manifest["splits"] == {"train": 9, "val": 2, "test": 1}
    assert not any(f.startswith("test/") for f in manifest["files"]["test"])  # carved from train, not the unlabelled
    assert "carved from train" in split_source(manifest, "test")
    assert "selected the epoch" in split_source(manifest, "val")


def test_unlabelled_split_is_one_line_from_the_stage(tmp_path, monkeypatch, capsys):
    from conftest import write_params

    from segbench.cli import main

    split_folder(tmp_path / "data", {"train": 6, "test": 2}, unlabelled=("test",))
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"] = {"dataset": "folder", "path": str(tmp_path / "data"), "image_size": [8, 8], "workers": 1,
                   "folder": {"classes": ["bg", "fg"]}}
    write_params(tmp_path / "params.yaml", raw)
    monkeypatch.chdir(tmp_path)
    assert main(["preprocess"]) == 0
    out = capsys.readouterr().out
    assert "test: 2 images without masks: not evaluated" in out and "test and val carved from train" in out
    assert json.loads((tmp_path / "data/processed/manifest.json").read_text())["splits"]["test"] == 1


# --- 6. an ignore index inside the class range -----------------------------------------------------------

def test_ignore_index_naming_a_class_is_a_config_error_for_synthetic():
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"]["ignore_index"] = 3
    with pytest.raises(ConfigError) as exc:
        params_from_dict(raw)
    message = one_line_error(exc)
    assert "data.ignore_index: 3 is class 'triangle'" in message and "e.g. 255" in message


def test_ignore_index_naming_a_class_stops_preprocess_for_any_dataset(tmp_path):
    root = tmp_path / "camvid"
    for split in ("train", "trainannot"):
        (root / split).mkdir(parents=True)
    Image.fromarray(photo(0)).save(root / "train" / "a.png")
    Image.fromarray(labels(0, 11)).save(root / "trainannot" / "a.png")
    params = make_params("camvid", path=str(root), image_size=[8, 8], workers=1, ignore_index=3)
    with pytest.raises(DataError) as exc:
        preprocess(params, tmp_path / "raw", tmp_path / "processed")
    assert "data.ignore_index: 3 is class" in one_line_error(exc)
    assert not (tmp_path / "processed").exists()


# --- the README documents every data key -------------------------------------------------------

def schema_keys(cls, prefix: str) -> list[str]:
    import dataclasses

    keys = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.default_factory() if f.default_factory is not dataclasses.MISSING else None):
            keys += schema_keys(type(f.default_factory()), f"{prefix}.{f.name}")
        else:
            keys.append(f"{prefix}.{f.name}")
    return keys


def documented_keys(readme: str) -> set[str]:
    """Keys named in the first cell of the README's `data` table: `data.a.b`, or `data.a.b`, `.c`."""
    import re

    keys = set()
    for line in readme.splitlines():
        if line.startswith("| `data."):
            names = re.findall(r"`([\w.]+)`", line.split("|")[1])
            section = names[0].rsplit(".", 1)[0]
            keys |= {name if name.startswith("data.") else section + name for name in names}
    return keys


def test_every_data_key_is_in_the_datasets_page():
    from pathlib import Path

    from segbench.config import DataConfig

    keys = schema_keys(DataConfig, "data")
    assert "data.folder.ignore_colors" in keys and "data.synthetic.num_classes" in keys  # the walk nests
    documented = documented_keys((Path(__file__).resolve().parents[1] / "docs" / "datasets.md").read_text())
    missing = sorted(set(keys) - documented)
    assert not missing, f"docs/datasets.md's data table does not document: {missing}"
