"""Real data end to end: `dvc repro` on CamVid read in place from ../shared/datasets/camvid."""
from __future__ import annotations

import copy
import json

from conftest import TINY_PARAMS, run, write_params
from test_preprocess import CAMVID, needs_camvid


@needs_camvid
def test_dvc_repro_on_camvid_subset(workspace):
    params = copy.deepcopy(TINY_PARAMS)
    params["seeds"] = [0]  # one training seed (dvc.yaml's matrix reads it from params.yaml)
    params["data"] = {"dataset": "camvid", "path": str(CAMVID), "image_size": [45, 60], "subset": 8}
    params["models"] = {"unet": {"arch": "unet", "base_channels": 4}}
    write_params(workspace / "params.yaml", params)
    run(["dvc", "repro"], workspace)

    source = json.loads((workspace / "data/raw/source.json").read_text())
    assert source["path"] == str(CAMVID.resolve()) and source["files"] >= 1402  # 701 images + 701 masks
    manifest = json.loads((workspace / "data/processed/manifest.json").read_text())
    assert manifest["splits"] == {"train": 8, "val": 8, "test": 8} and manifest["num_classes"] == 11
    report = json.loads((workspace / "metrics/unet/eval.json").read_text())  # the summary over seeds
    assert report["split"] == "test" and report["seeds"] == [0]
    assert list(report["iou_per_class"]) == manifest["class_names"]
    assert 0.0 <= report["miou"]["mean"] <= 1.0
    # nothing from the dataset is copied into the workspace
    assert not list((workspace / "data/raw").glob("*.png")) and not (workspace / "data/raw/train").exists()
    # up to date on a second run
    again = run(["dvc", "repro"], workspace)
    assert "Running stage" not in again.stdout
