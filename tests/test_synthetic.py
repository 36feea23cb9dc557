import numpy as np
import pytest
import torch
from PIL import Image

from segbench.data.sources.scenes import class_names, generate_scene
from segbench.data.sources.synthetic import generate, sample_rng
from segbench.metrics import ConfusionMatrix


def masks(split: str, n: int, seed: int = 0, size: int = 64, classes: int = 6) -> np.ndarray:
    return np.stack([generate_scene(sample_rng(seed, split, i), size, size, classes).mask for i in range(n)])


def test_same_seed_same_data_other_seed_other_data():
    a = generate_scene(sample_rng(3, "train", 5), 48, 40, 6)
    b = generate_scene(sample_rng(3, "train", 5), 48, 40, 6)
    c = generate_scene(sample_rng(4, "train", 5), 48, 40, 6)
    assert a.image.shape == (48, 40, 3) and a.mask.shape == (48, 40) and a.depth.shape == (48, 40)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) and np.array_equal(a.depth, b.depth)
    assert not np.array_equal(a.image, c.image)


def test_class_balance_is_strongly_imbalanced_with_a_rare_class():
    m = masks("train", 200)
    share = np.bincount(m.ravel(), minlength=6) / m.size
    assert len(class_names(6)) == 6 and m.max() == 5
    assert (share > 0).all()
    assert share.min() < 0.03  # the rare class ("pole")
    assert share[0] < 0.85  # background does not swamp the scene


def test_per_pixel_prior_scores_low_miou():
    train, val = masks("train", 200), masks("val", 60)
    prior = np.stack([(train == c).mean(0) for c in range(6)]).argmax(0)
    cm = ConfusionMatrix(6)
    cm.update(torch.from_numpy(np.broadcast_to(prior, val.shape).copy()), torch.from_numpy(val))
    assert cm.scores().miou <= 0.25


def test_colour_alone_does_not_decide_the_class():
    # The best per-colour-bin rule (fit on train, scored on val) stays far from a good model.
    def pairs(split, n):
        scenes = [generate_scene(sample_rng(0, split, i), 64, 64, 6) for i in range(n)]
        img = np.stack([s.image for s in scenes]).reshape(-1, 3) // 32  # 8 bins per channel
        return img[:, 0] * 64 + img[:, 1] * 8 + img[:, 2], np.stack([s.mask for s in scenes]).ravel()

    bins, labels = pairs("train", 150)
    votes = np.zeros((512, 6))
    np.add.at(votes, (bins, labels), 1)
    rule = votes.argmax(1)
    vb, vl = pairs("val", 50)
    cm = ConfusionMatrix(6)
    cm.update(torch.from_numpy(rule[vb]), torch.from_numpy(vl))
    assert cm.scores().miou < 0.3


def test_generate_writes_lossless_files_matching_the_samples(tmp_path):
    generate(tmp_path, seed=1, sizes={"train": 3, "val": 1, "test": 1}, height=32, width=40, num_classes=4)
    scene = generate_scene(sample_rng(1, "train", 2), 32, 40, 4)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "train/images/00002.png")), scene.image)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "train/masks/00002.png")), scene.mask)
    assert np.array_equal(np.load(tmp_path / "train/depths/00002.npy"), scene.depth)
    assert (tmp_path / "classes.json").read_text().strip() == '["background", "disk", "box", "triangle"]'


@pytest.mark.parametrize("n", [1, 9])
def test_class_count_outside_supported_range_is_an_error(n):
    from segbench.errors import DataError

    with pytest.raises(DataError):
        class_names(n)
