"""Every loss against its closed form on a hand-made 1 x C x 1 x 4 batch.

The batch has an ignored pixel (index 2) and, for the multi-class losses, a class (2) absent
from the truth; both cases are where losses usually go wrong.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import train_setting_error

from segbench.errors import ConfigError
from segbench.losses import LOSSES, build_loss, class_weights_from_manifest

IGNORE = 255
# logits[class][pixel]; pixel 2 is ignored, class 2 never appears in the truth
LOGITS = [[2.0, -1.0, 5.0, 0.5],
          [0.0, 1.5, -3.0, 0.2],
          [-1.0, 0.3, 1.0, 0.1]]
TARGET = [0, 1, IGNORE, 0]
VALID = [0, 1, 3]


def batch(logits=LOGITS, target=TARGET):
    x = torch.tensor(logits).reshape(1, len(logits), 1, 4).requires_grad_(True)
    return x, torch.tensor(target).reshape(1, 1, 4)


def softmax(pixel: int) -> list[float]:
    exps = [math.exp(LOGITS[c][pixel]) for c in range(3)]
    return [e / sum(exps) for e in exps]


def soft_counts():
    inter, pred, true = [0.0] * 3, [0.0] * 3, [0.0] * 3
    for i in VALID:
        p = softmax(i)
        for c in range(3):
            pred[c] += p[c]
            true[c] += TARGET[i] == c
            inter[c] += p[c] * (TARGET[i] == c)
    return inter, pred, true


def value_and_ignored_grad(name: str, **kwargs):
    logits, target = batch()
    loss = build_loss(name, IGNORE, **kwargs)(logits, target)
    loss.backward()
    assert torch.all(logits.grad[..., 2] == 0), f"{name}: the ignored pixel got a gradient"
    return loss.item()


def test_batch_layout_matches_the_table():
    logits, _ = batch()
    assert logits[0, :, 0, 1].tolist() == pytest.approx([-1.0, 1.5, 0.3])


def test_cross_entropy():
    expected = sum(-math.log(softmax(i)[TARGET[i]]) for i in VALID) / 3
    assert value_and_ignored_grad("cross_entropy") == pytest.approx(expected, rel=1e-6)


def test_weighted_cross_entropy():
    w = torch.tensor([0.5, 2.0, 7.0])
    nll = {i: -math.log(softmax(i)[TARGET[i]]) for i in VALID}
    expected = sum(w[TARGET[i]].item() * nll[i] for i in VALID) / sum(w[TARGET[i]].item() for i in VALID)
    assert value_and_ignored_grad("weighted_ce", class_weights=w) == pytest.approx(expected, rel=1e-6)


def test_weighted_ce_without_weights_is_a_clear_error():
    with pytest.raises(ConfigError, match="weighted_ce needs class weights"):
        build_loss("weighted_ce", IGNORE)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.0])
def test_focal(gamma):
    expected = sum(-(1 - softmax(i)[TARGET[i]]) ** gamma * math.log(softmax(i)[TARGET[i]]) for i in VALID) / 3
    assert value_and_ignored_grad("focal", focal_gamma=gamma) == pytest.approx(expected, rel=1e-6)


def test_focal_with_gamma_zero_is_cross_entropy():
    logits, target = batch()
    assert build_loss("focal", IGNORE, focal_gamma=0.0)(logits, target).item() == pytest.approx(
        F.cross_entropy(logits, target, ignore_index=IGNORE).item(), rel=1e-6)


def test_dice_counts_the_absent_class():
    inter, pred, true = soft_counts()
    assert true[2] == 0
    expected = 1 - sum((2 * inter[c] + 1) / (pred[c] + true[c] + 1) for c in range(3)) / 3
    assert value_and_ignored_grad("dice") == pytest.approx(expected, rel=1e-6)


def test_jaccard():
    inter, pred, true = soft_counts()
    expected = 1 - sum((inter[c] + 1) / (pred[c] + true[c] - inter[c] + 1) for c in range(3)) / 3
    assert value_and_ignored_grad("jaccard") == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_ce_dice_mixes_by_beta(beta):
    logits, target = batch()
    ce = build_loss("cross_entropy", IGNORE)(logits, target).item()
    dice = build_loss("dice", IGNORE)(logits, target).item()
    mixed = value_and_ignored_grad("ce_dice", beta=beta)
    assert mixed == pytest.approx(beta * ce + (1 - beta) * dice, rel=1e-6)
    if beta == 1.0:
        assert mixed == ce
    if beta == 0.0:
        assert mixed == dice


BINARY_LOGITS = [[0.5, -1.0, 2.0, 1.0],   # background
                 [-0.5, 2.0, -4.0, 1.5]]  # foreground
BINARY_TARGET = [0, 1, IGNORE, 1]


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def foreground_probs() -> dict[int, float]:
    return {i: sigmoid(BINARY_LOGITS[1][i] - BINARY_LOGITS[0][i]) for i in VALID}


def binary_value(name: str, logits: torch.Tensor) -> float:
    _, target = batch(BINARY_LOGITS, BINARY_TARGET)
    loss = build_loss(name, IGNORE)(logits, target)
    loss.backward()
    assert torch.all(logits.grad[..., 2] == 0)
    return loss.item()


def test_bce_two_channel_and_one_channel():
    p = foreground_probs()
    expected = sum(-math.log(p[i]) if BINARY_TARGET[i] == 1 else -math.log(1 - p[i]) for i in VALID) / 3
    two, _ = batch(BINARY_LOGITS, BINARY_TARGET)
    assert binary_value("bce", two) == pytest.approx(expected, rel=1e-6)
    one = (two[:, 1:] - two[:, :1]).detach().clone().requires_grad_(True)
    assert binary_value("bce", one) == pytest.approx(expected, rel=1e-6)


def test_binary_dice():
    p = foreground_probs()
    t = {i: float(BINARY_TARGET[i] == 1) for i in VALID}
    expected = 1 - (2 * sum(p[i] * t[i] for i in VALID) + 1) / (sum(p.values()) + sum(t.values()) + 1)
    logits, _ = batch(BINARY_LOGITS, BINARY_TARGET)
    assert binary_value("binary_dice", logits) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", ["bce", "binary_dice"])
def test_binary_losses_reject_multiclass(name):
    logits, target = batch()
    with pytest.raises(ConfigError, match="binary masks"):
        build_loss(name, IGNORE)(logits, target)
    two, _ = batch(BINARY_LOGITS, BINARY_TARGET)
    with pytest.raises(ConfigError, match="found class 2"):
        build_loss(name, IGNORE)(two, torch.tensor([0, 2, 1, 0]).reshape(1, 1, 4))


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_is_finite_on_an_all_ignored_batch_but_cross_entropy(name):
    channels = 2 if name in ("bce", "binary_dice") else 3
    logits = torch.randn(1, channels, 2, 2, requires_grad=True)
    target = torch.full((1, 2, 2), IGNORE)
    loss = build_loss(name, IGNORE, class_weights=torch.ones(channels))(logits, target)
    if name in ("cross_entropy", "weighted_ce", "ce_dice"):
        return  # PyTorch's mean over zero pixels is NaN; the training loop reports it
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.all(logits.grad == 0)


MANIFEST = {"class_names": ["sky", "road", "pole", "bike"], "class_pixels": {"sky": 60, "road": 30, "pole": 10, "bike": 0}}


def test_inverse_frequency_weights():
    # present classes: freq 0.6, 0.3, 0.1 (K = 3); w = 1 / (K f); the absent class gets the largest
    w = class_weights_from_manifest(MANIFEST, "inverse")
    assert w.tolist() == pytest.approx([1 / 1.8, 1 / 0.9, 1 / 0.3, 1 / 0.3], rel=1e-6)


def test_median_frequency_weights():
    # median frequency 0.3; w = 0.3 / f
    w = class_weights_from_manifest(MANIFEST, "median")
    assert w.tolist() == pytest.approx([0.5, 1.0, 3.0, 3.0], rel=1e-6)


def test_balanced_classes_weigh_one():
    manifest = {"class_names": ["a", "b"], "class_pixels": {"a": 7, "b": 7}}
    for method in ("inverse", "median"):
        assert class_weights_from_manifest(manifest, method).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("key,value,needle", [
    ("beta", 1.5, "train.beta: 1.5 is out of range"),
    ("beta", -0.1, "train.beta"),
    ("focal_gamma", -1, "train.focal_gamma"),
    ("class_weighting", "mean", "train.class_weighting: unknown value 'mean'"),
    ("loss", "focall", "did you mean 'focal'"),
])
def test_bad_loss_settings_are_one_line_config_errors(key, value, needle):
    message = train_setting_error(key, value)
    assert needle in message and "\n" not in message
