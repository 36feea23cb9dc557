"""Evaluation: scores against an independent computation, average precision, plots and eval.json."""
import csv
import io
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from segbench import stats
from segbench.errors import DataError
from segbench.evaluate import evaluate_checkpoint, resolve_split
from segbench.metrics import ConfusionMatrix, ScoreHistogram, average_precision_from_counts
from segbench.model_figures import confusion_figure, confusion_plot_csv, predictions_figure
from segbench.samples import PredictionSamples

PNG = b"\x89PNG\r\n\x1a\n"
IGNORE = 255


def random_labels(rng, shape, num_classes, absent=(), ignore_share=0.1):
    labels = rng.integers(0, num_classes, shape)
    for k in absent:
        labels[labels == k] = 0
    labels[rng.random(shape) < ignore_share] = IGNORE
    return labels


def test_scores_match_independent_bincount_computation():
    rng = np.random.default_rng(0)
    c = 5
    truth = random_labels(rng, (3, 17, 19), c, absent=(4,))  # class 4 never true...
    pred = rng.integers(0, c - 1, truth.shape)  # ...nor predicted: undefined IoU
    cm = ConfusionMatrix(c, IGNORE)
    for i in range(3):  # batches accumulate
        cm.update(torch.from_numpy(pred[i]), torch.from_numpy(truth[i]))
    s = cm.scores()

    keep = truth != IGNORE
    t, p = truth[keep], pred[keep]
    ref = np.bincount(t * c + p, minlength=c * c).reshape(c, c)
    assert (cm.matrix.numpy() == ref).all()
    tp = np.array([np.sum((t == k) & (p == k)) for k in range(c)], float)
    fp = np.array([np.sum((t != k) & (p == k)) for k in range(c)], float)
    fn = np.array([np.sum((t == k) & (p != k)) for k in range(c)], float)
    iou = tp[:4] / (tp + fp + fn)[:4]
    assert s.iou[:4] == pytest.approx(iou)
    assert math.isnan(s.iou[4]) and math.isnan(s.recall[4]) and math.isnan(s.dice[4])
    assert s.miou == pytest.approx(iou.mean())
    assert s.recall[:4] == pytest.approx(tp[:4] / (tp + fn)[:4])
    assert s.dice[:4] == pytest.approx(2 * tp[:4] / (2 * tp + fp + fn)[:4])
    assert s.accuracy == pytest.approx(np.mean(t == p))
    freq = np.bincount(t, minlength=c)[:4] / len(t)
    assert s.fwiou == pytest.approx((freq * iou).sum())


def exact_average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Brute force: sort every score, one threshold per distinct score, sum (R_n - R_{n-1}) P_n."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], positive[order].astype(float)
    tp, fp = np.cumsum(y), np.cumsum(1 - y)
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp, fp = tp[last_of_tie], fp[last_of_tie]
    recall = tp / y.sum()
    return float((np.diff(recall, prepend=0.0) * tp / (tp + fp)).sum())


def test_histogram_average_precision_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(1)
    c = 4
    truth = torch.from_numpy(random_labels(rng, (4, 24, 24), c, absent=(3,)))
    logits = torch.randn(4, c, 24, 24, generator=gen)
    logits += 1.5 * torch.nn.functional.one_hot(truth.clamp(max=c - 1), c).permute(0, 3, 1, 2)  # informative
    probs = logits.softmax(1)
    hist = ScoreHistogram(c, IGNORE, bins=1000)
    hist.update(probs[:2], truth[:2])
    hist.update(probs[2:], truth[2:])
    ap = hist.average_precision()

    keep = (truth != IGNORE).numpy()
    flat_scores = probs.permute(0, 2, 3, 1).numpy()[keep]
    flat_truth = truth.numpy()[keep]
    for k in range(3):
        assert ap[k] == pytest.approx(exact_average_precision(flat_scores[:, k], flat_truth == k), abs=1e-3)
    assert 0.3 < ap[0] < 0.99  # neither trivial nor perfect: the test compares something
    assert math.isnan(ap[3])  # absent from the truth: undefined, and left out of mAP
    assert hist.map() == pytest.approx(np.mean(ap[:3]))


def test_perfect_scorer_has_average_precision_one():
    rng = np.random.default_rng(2)
    c = 3
    truth = torch.from_numpy(random_labels(rng, (2, 16, 16), c))
    onehot = torch.nn.functional.one_hot(truth.clamp(max=c - 1), c).permute(0, 3, 1, 2).float()
    noise = torch.rand(onehot.shape, generator=torch.Generator().manual_seed(0))
    ranked = torch.where(onehot == 1, 0.6 + 0.4 * noise, 0.4 * noise)
    for probs in (onehot, ranked):  # hard one-hot, and soft scores that rank every positive first
        hist = ScoreHistogram(c, IGNORE)
        hist.update(probs, truth)
        assert hist.average_precision() == pytest.approx([1.0] * c)
        assert hist.map() == pytest.approx(1.0)


def test_average_precision_from_counts_by_hand():
    # bins from low to high score: neg, pos, neg, pos -> ranked pos, neg, pos, neg
    assert average_precision_from_counts([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert math.isnan(average_precision_from_counts([0, 0], [3, 1]))


def test_confusion_plot_rows_give_each_actual_class_exact_shares():
    matrix = np.array([[1, 1, 1], [0, 0, 0], [0, 2, 6]])
    rows = list(csv.DictReader(io.StringIO(confusion_plot_csv(matrix, ["a", "b", "c"], resolution=1000))))
    counts = {}
    for r in rows:
        counts[r["actual"], r["predicted"]] = counts.get((r["actual"], r["predicted"]), 0) + 1
    assert sum(v for (a, _), v in counts.items() if a == "a") == 1000
    assert sorted(counts[("a", p)] for p in "abc") == [333, 333, 334]
    assert counts[("c", "b")] == 250 and counts[("c", "c")] == 750 and ("c", "a") not in counts
    assert not any(a == "b" for a, _ in counts)  # absent from the truth: no rows


def test_resolve_split_never_falls_back_to_the_split_that_selected_the_epoch():
    assert resolve_split({"splits": {"train": 4, "val": 2, "test": 2}}, "test") == "test"
    with pytest.raises(DataError, match="no 'test' split .* re-run preprocess"):
        resolve_split({"splits": {"train": 4, "val": 2}}, "test")
    assert resolve_split({"splits": {"train": 4, "val": 2, "test": 2}}, "val") == "val"
    with pytest.raises(DataError, match="no 'val' split"):
        resolve_split({"splits": {"train": 4, "test": 2}}, "val")


# --- a tiny checkpoint on a tiny cache, through the library and the CLI ----------------------

TINY = {
    "seed": 0,
    "data": {"dataset": "synthetic", "image_size": [32, 32],
             "synthetic": {"num_train": 4, "num_val": 7, "num_test": 3, "height": 32, "width": 32, "num_classes": 4}},
    "evaluate": {"batch_size": 4},
    "plot": {"dpi": 50},
    "models": {"unet": {"arch": "unet", "base_channels": 4}},
}


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    import yaml

    from segbench.checkpoint import save_checkpoint
    from segbench.config import params_from_dict
    from segbench.data.preprocess import preprocess
    from segbench.data.sources.synthetic import generate
    from segbench.models import build_model

    root = tmp_path_factory.mktemp("tiny")
    params = params_from_dict(TINY)
    syn = params.data.synthetic
    generate(root / "data/raw", seed=0, sizes={"train": syn.num_train, "val": syn.num_val, "test": syn.num_test},
             height=syn.height, width=syn.width, num_classes=syn.num_classes)
    manifest = preprocess(params, root / "data/raw", root / "data/processed", workers=1)
    torch.manual_seed(0)
    model = build_model("unet", manifest["num_classes"], base_channels=4)
    save_checkpoint(root / "data/checkpoints/unet/seed0.pt", model, arch="unet", options={"base_channels": 4},
                    class_names=manifest["class_names"], image_size=manifest["image_size"])
    (root / "params.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    return root


def test_cli_evaluate_writes_report_with_split_and_map_and_plot_files(tiny_repo, monkeypatch, capsys):
    from segbench.cli import main

    monkeypatch.chdir(tiny_repo)
    assert main(["evaluate", "unet", "0"]) == 0
    report = json.loads((tiny_repo / "metrics/unet/seeds/0/eval.json").read_text())
    names = ["background", "disk", "box", "triangle"]
    assert report["split"] == "test" and report["split_source"] == "the dataset's own"
    assert {"miou", "mrecall", "accuracy", "mdice", "fwiou", "iou_per_class", "recall_per_class",
            "dice_per_class", "map", "ap_per_class"} <= report.keys()
    assert list(report["ap_per_class"]) == names
    defined = [v for v in report["ap_per_class"].values() if v is not None]
    assert defined and report["map"] == pytest.approx(np.mean(defined))
    # the per-image statistics the bootstrap resamples: they sum to the split's scores
    per_image = np.load(tiny_repo / "metrics/unet/seeds/0/per_image.npz")
    test_masks = np.load(tiny_repo / "data/processed/test_masks.npy")
    assert per_image["mask_counts"].shape == (len(test_masks), len(names), 3)
    assert stats.SCORE_RULES["miou"].compute(per_image["mask_counts"].sum(0)) == pytest.approx(report["miou"])
    assert per_image["confusion"].sum() == int((test_masks != IGNORE).sum()) and list(per_image["class_names"]) == names
    samples = PredictionSamples.from_arrays(dict(np.load(tiny_repo / "metrics/unet/seeds/0/samples.npz")))
    assert samples.indices == list(range(6)) and samples.prediction.shape == samples.truth.shape == (6, 32, 32)
    assert not (tiny_repo / "plots/unet/seeds").exists()  # evaluate draws nothing: aggregate draws every seed's
    assert "unet seed 0: test mIoU" in capsys.readouterr().out

    (tiny_repo / "metrics/unet/seeds/0/train.json").write_text('{"train_time_s": 1.5}')  # no training in this fixture
    assert main(["aggregate", "unet"]) == 0  # the model's files: from its seeds (here one)
    summary = json.loads((tiny_repo / "metrics/unet/eval.json").read_text())
    assert summary["miou"] == {"mean": report["miou"], "std": None, "n": 1, "ci95_low": None, "ci95_high": None}
    plots = tiny_repo / "plots/unet"
    for png in ("confusion.png", "predictions.png"):
        assert (plots / png).read_bytes()[:8] == PNG
    rows = list(csv.DictReader(io.StringIO((plots / "confusion.csv").read_text())))
    present = sum(1 for v in report["recall_per_class"].values() if v is not None)
    assert len(rows) == 1000 * present and set(rows[0]) == {"actual", "predicted"}
    table = list(csv.DictReader(io.StringIO((plots / "confusion_matrix.csv").read_text())))
    assert len(table) == len(names) ** 2 and {"actual", "predicted", "pixels", "share"} == set(table[0])
    assert sum(int(r["pixels"]) for r in table) == int((test_masks != IGNORE).sum())
    assert not list(plots.glob(".*.tmp"))  # atomic writes leave no temporaries
    out = capsys.readouterr().out
    assert "unet: test mIoU" in out and "(1 seed: no interval)" in out


def test_library_evaluation_on_val_is_labelled_optimistic_and_draws_figures(tiny_repo):
    cache = tiny_repo / "data/processed"
    result = evaluate_checkpoint(tiny_repo / "data/checkpoints/unet/seed0.pt", cache, "val", batch_size=4, device="cpu")
    assert result.split == "val" and result.report["split"] == "val"
    assert "selected the epoch" in result.report["split_source"]
    assert int(result.confusion.matrix.sum()) == int((np.load(cache / "val_masks.npy") != IGNORE).sum())
    assert result.samples.indices == list(range(6))  # the first six validation images, in order
    assert result.samples.images.dtype == np.uint8 and result.samples.images.shape == (6, 32, 32, 3)
    raw = np.load(cache / "val_images.npy")[:6]
    assert np.abs(result.samples.images.astype(int) - raw).max() <= 1  # un-normalised back to the input
    fig = predictions_figure(result.samples, result.class_names)
    assert len(fig.axes) == 6 * 4
    wrong = replace(result.samples, prediction=np.zeros_like(result.samples.prediction))  # another seed: all class 0
    seeds = predictions_figure({"seed 0": result.samples, "seed 1": wrong}, result.class_names)
    assert len(seeds.axes) == 6 * 6  # input, truth, then each seed's prediction and errors
    assert [ax.get_title() for ax in seeds.axes[:6]] == ["input", "ground truth", "seed 0: prediction",
                                                         "seed 0: errors (red)", "seed 1: prediction", "seed 1: errors (red)"]
    truth = result.samples.truth[0]
    valid = truth < len(result.class_names)
    first, second = (float((p[valid] == truth[valid]).mean()) for p in (result.samples.prediction[0], wrong.prediction[0]))
    assert seeds.axes[0].get_ylabel() == f"#0  acc {first:.2f}/{second:.2f}"  # each seed's pixel accuracy
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:4] == result.class_names and "wrong" in legend
    assert len(confusion_figure(result.confusion.matrix.numpy(), result.class_names).axes) == 2  # matrix + colour bar


def test_train_subset_score_and_class_prior_counts(tiny_repo):
    from segbench.evaluate import prior_mask_counts, train_subset_scores
    from segbench.models import build_model
    from segbench.tasks import get_task

    cache = tiny_repo / "data/processed"
    ckpt = tiny_repo / "data/checkpoints/unet/seed0.pt"
    result = evaluate_checkpoint(ckpt, cache, "test", batch_size=4, device="cpu", train_subset=5)
    report = result.report
    assert 0 <= report["train_miou"] <= 1
    assert report["generalization_gap"] == pytest.approx(report["train_miou"] - report["miou"])
    off = evaluate_checkpoint(ckpt, cache, "test", batch_size=4, device="cpu", train_subset=0).report
    assert "train_miou" not in off and "generalization_gap" not in off  # 0: off
    # the subset is fixed: the same images (so the same score) every time, and in eval mode
    model = build_model("unet", 4, base_channels=4)
    task, dev = get_task("segmentation"), torch.device("cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = train_subset_scores(model, task, cache, 5, 4, dev, {"miou": 0.0})
    assert first == train_subset_scores(model, task, cache, 5, 4, dev, {"miou": 0.0})
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # eval mode: BatchNorm stats untouched
    # the prior's counts: on the same test images as the model's, each image predicted as the prior does
    prior = result.per_image["prior_mask_counts"]
    assert prior.shape == result.per_image["mask_counts"].shape
    truth = prior[..., 0] + prior[..., 2]
    assert np.array_equal(truth, result.per_image["mask_counts"][..., 0] + result.per_image["mask_counts"][..., 2])
    train_masks, test_masks = np.load(cache / "train_masks.npy"), np.load(cache / "test_masks.npy")
    uniform = np.full_like(train_masks, 1)  # a prior fit on masks of one class predicts it everywhere
    counts = prior_mask_counts(uniform, test_masks, 4, IGNORE)
    assert counts[:, 1, 0].sum() == int((test_masks == 1).sum()) and counts[:, [0, 2, 3], 0].sum() == 0
