"""Task seg_depth: depth metrics against closed forms, depth losses, params checks, the report's
depth plots, and one real `dvc repro` of the tiny DAG with a two-head model."""
import copy
import math

import numpy as np
import pytest
import torch
from conftest import TINY_PARAMS

from segbench.config import params_from_dict
from segbench.errors import ConfigError
from segbench.losses import Criterion, DepthLoss, Term, build_loss
from segbench.metrics import DepthErrors
from segbench.report.summary import summary_table
from segbench.report.tables import depth_tradeoff_table
from segbench.report.view import ModelMetrics
from segbench.tasks import depth_baseline_report, mean_depth_baseline

# --- metrics: closed forms ------------------------------------------------------------------------

def scores_of(pred, truth):
    errors = DepthErrors()
    errors.update(torch.as_tensor(pred, dtype=torch.float32), torch.as_tensor(truth, dtype=torch.float32))
    return errors.scores()


def test_depth_metrics_of_a_constant_ratio():
    truth = np.array([1.0, 2.0, 4.0, 8.0])
    s = scores_of(1.2 * truth, truth)  # every ratio 1.2 < 1.25
    assert s.abs_rel == pytest.approx(0.2)
    assert s.mae == pytest.approx(0.2 * truth.mean())
    assert s.rmse == pytest.approx(math.sqrt(np.mean((0.2 * truth) ** 2)))
    assert (s.delta1, s.delta2, s.delta3) == (1.0, 1.0, 1.0)
    s = scores_of(truth / 1.5, truth)  # ratio t/p = 1.5: beyond 1.25, within 1.25^2 = 1.5625
    assert (s.delta1, s.delta2, s.delta3) == (0.0, 1.0, 1.0)
    assert s.abs_rel == pytest.approx(1 - 1 / 1.5)
    s = scores_of(2.0 * truth, truth)  # ratio 2 > 1.25^3 = 1.953
    assert (s.delta1, s.delta2, s.delta3) == (0.0, 0.0, 0.0)
    assert s.abs_rel == pytest.approx(1.0)


def test_depth_metrics_mixed_pixels_and_unknown_depth_is_skipped():
    truth = np.array([[2.0, 4.0], [0.0, 5.0]])  # 0: unknown, not counted whatever is predicted there
    pred = np.array([[3.0, 4.0], [99.0, 4.0]])
    s = scores_of(pred, truth)
    errors = np.array([1.0, 0.0, -1.0])
    assert s.pixels == 3
    assert s.rmse == pytest.approx(math.sqrt(np.mean(errors ** 2)))
    assert s.mae == pytest.approx(2 / 3)
    assert s.abs_rel == pytest.approx((0.5 + 0 + 0.2) / 3)
    # ratios 1.5, 1.0, 1.25: 1.25 is not < 1.25
    assert s.delta1 == pytest.approx(1 / 3) and s.delta2 == pytest.approx(1.0)


def test_depth_metrics_do_not_depend_on_batching_and_empty_is_nan():
    rng = np.random.default_rng(0)
    truth = rng.uniform(1, 10, (6, 8, 8)) * (rng.random((6, 8, 8)) > 0.1)
    pred = truth + rng.normal(0, 1, truth.shape)
    whole = scores_of(pred, truth)
    batched = DepthErrors()
    for i in range(0, 6, 4):
        batched.update(torch.as_tensor(pred[i:i + 4], dtype=torch.float32), torch.as_tensor(truth[i:i + 4], dtype=torch.float32))
    assert batched.scores().rmse == pytest.approx(whole.rmse, rel=1e-12)
    assert batched.scores().delta1 == pytest.approx(whole.delta1, rel=1e-12)
    empty = scores_of(np.ones(4), np.zeros(4))
    assert empty.pixels == 0 and math.isnan(empty.rmse)


def test_non_positive_predictions_count_as_large_errors_not_nan():
    s = scores_of(np.array([-1.0, 0.0]), np.array([2.0, 2.0]))
    assert math.isfinite(s.abs_rel) and s.delta3 == 0.0


def test_mean_depth_baseline_is_the_std_of_the_split_when_its_mean_is_used():
    depths = np.random.default_rng(1).uniform(1, 9, (5, 4, 4)).astype(np.float32)
    depths[0, 0, 0] = 0  # unknown
    valid = depths[depths > 0].astype(np.float64)
    baseline = mean_depth_baseline(depths, float(valid.mean()))
    assert baseline.rmse == pytest.approx(valid.std(), rel=1e-5)
    report = depth_baseline_report(scores_of(valid * 1.1, valid).rmse, baseline)
    assert report["depth_rmse_vs_mean_baseline"] == pytest.approx(valid.std() / math.sqrt(np.mean((0.1 * valid) ** 2)), rel=1e-5)


# --- losses ---------------------------------------------------------------------------------------

def test_depth_losses_in_units_of_the_scale_over_known_pixels():
    truth = torch.tensor([[2.0, 4.0, 0.0]])
    pred = torch.tensor([[[3.0, 8.0, 50.0]]])  # N x 1 x W; the last pixel has unknown depth
    scale = 2.0
    diffs = torch.tensor([1.0, 4.0]) / scale
    assert DepthLoss("l1", scale)(pred, truth).item() == pytest.approx(diffs.abs().mean().item())
    assert DepthLoss("mse", scale)(pred, truth).item() == pytest.approx((diffs ** 2).mean().item())
    huber = torch.where(diffs.abs() < 1, 0.5 * diffs ** 2, diffs.abs() - 0.5).mean()
    assert DepthLoss("huber", scale, delta=1.0)(pred, truth).item() == pytest.approx(huber.item())
    none_known = DepthLoss("l1")(pred.requires_grad_(), torch.zeros(1, 3))
    assert none_known.item() == 0.0 and none_known.requires_grad


def test_seg_depth_loss_weights_the_depth_term():
    logits = torch.randn(2, 3, 4, 4)
    mask = torch.randint(0, 3, (2, 4, 4))
    depth_truth = torch.rand(2, 4, 4) * 5 + 1
    depth_pred = torch.rand(2, 1, 4, 4) * 5 + 1
    ce = build_loss("cross_entropy")
    loss = Criterion({"mask": Term(ce, "out", "mask"), "depth": Term(DepthLoss("l1"), "depth", "depth", 0.25)})
    terms = loss({"out": logits, "depth": depth_pred}, {"mask": mask, "depth": depth_truth})
    total, seg, dep = terms["loss"], terms["mask"], terms["depth"]
    assert seg.item() == pytest.approx(ce(logits, mask).item())
    assert dep.item() == pytest.approx((depth_pred[:, 0] - depth_truth).abs().mean().item(), rel=1e-6)
    assert total.item() == pytest.approx(seg.item() + 0.25 * dep.item())


# --- params -----------------------------------------------------------------------------------------

def tiny(**changes) -> dict:
    raw = copy.deepcopy(TINY_PARAMS)
    raw.update(changes)
    return raw


def test_seg_depth_params_reach_every_model():
    raw = tiny(task="seg_depth", models={"u": {"arch": "unet_lean", "train": {"depth_loss": "huber"}}})
    params = params_from_dict(raw)
    assert params.task == "seg_depth" and params.models["u"].task == "seg_depth"
    assert params.models["u"].train.depth_loss == "huber"


@pytest.mark.parametrize("raw, message", [
    (tiny(task="depth"), "task: unknown value 'depth'"),
    (tiny(task="seg_depth"), "models.deeplab.arch: deeplabv3 has no depth head"),
    (tiny(models={"u": {"arch": "unet", "train": {"select": "depth_rmse"}}}), "select: depth_rmse needs task: seg_depth"),
    (tiny(task="seg_depth", models={"u": {"arch": "unet", "train": {"depth_loss": "l2"}}}), "depth_loss"),
    (tiny(task="seg_depth", models={"u": {"arch": "unet", "depth_decoder": "both"}}), "depth_decoder"),
])
def test_bad_seg_depth_params_are_one_clear_error(raw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        params_from_dict(raw)
    assert "\n" not in str(info.value)


# --- report -----------------------------------------------------------------------------------------

def depth_model(name, rmse, train_time, latency, baseline=3.0):
    ev = {"miou": 0.5, "depth_rmse": rmse, "depth_abs_rel": 0.1, "depth_delta1": 0.9,
          "depth_rmse_mean_baseline": baseline, "depth_rmse_vs_mean_baseline": baseline / rmse}
    return ModelMetrics(name, {"train_time_s": train_time}, ev,
                        {"latency_cpu_ms": latency, "size_mb": 1.0, "gflops": 1.0, "params": 10})


def test_depth_tradeoff_front_prefers_lower_rmse_and_lower_cost():
    metrics = [depth_model("cheap", 1.0, 10, 1), depth_model("better", 0.5, 100, 10), depth_model("worse", 1.2, 50, 5)]
    table = depth_tradeoff_table(metrics)
    time_panel = table[table["setting"] == "training time (s)"].set_index("model")
    assert time_panel["pareto"].to_dict() == {"cheap": True, "better": True, "worse": False}
    assert (table["mean_baseline"] == 3.0).all()
    summary = summary_table(metrics)
    assert summary.loc["better", "depth_rmse_vs_mean_baseline"] == pytest.approx(6.0)


def test_segmentation_only_metrics_give_an_empty_depth_table_and_no_depth_columns():
    seg = ModelMetrics("seg", {"train_time_s": 1.0}, {"miou": 0.5}, {"latency_cpu_ms": 1.0, "size_mb": 1.0, "gflops": 1.0,
                                                                      "params": 10})
    table = depth_tradeoff_table([seg])
    assert len(table) == 4 and table["depth_rmse"].isna().all() and not table["pareto"].any()
    assert "depth_rmse" not in summary_table([seg]).columns


# --- the tiny DAG, for real: tests/test_params_files.py runs params/mask_depth.yaml through it -------

DEPTH_KEYS = {"depth_rmse", "depth_mae", "depth_abs_rel", "depth_delta1", "depth_delta2", "depth_delta3",
              "depth_rmse_mean_baseline", "depth_abs_rel_mean_baseline", "depth_rmse_vs_mean_baseline"}
