import math

import numpy as np
import pytest
import torch

from segbench.metrics import (
    ConfusionMatrix,
    DepthErrors,
    depth_rmse_from_sums,
    depth_scores_from_sums,
    miou_from_counts,
    scores_from_confusion,
)


def hand_example() -> ConfusionMatrix:
    # truth 0 0 1 1 2 (void); prediction 0 1 1 1 0 2; class 3 absent from both
    cm = ConfusionMatrix(num_classes=4, ignore_index=255)
    cm.update(torch.tensor([0, 1, 1, 1, 0, 2]), torch.tensor([0, 0, 1, 1, 2, 255]))
    return cm


def test_confusion_matrix_counts_rows_truth_columns_prediction_and_drops_void():
    expected = np.array([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert (hand_example().matrix.numpy() == expected).all()


def test_scores_match_hand_computation():
    s = hand_example().scores()
    assert s.iou[:3] == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert math.isnan(s.iou[3])  # absent from truth and prediction: undefined, excluded
    assert s.miou == pytest.approx(1 / 3)
    assert s.recall[:3] == pytest.approx([0.5, 1.0, 0.0])
    assert s.mrecall == pytest.approx(0.5)
    assert s.accuracy == pytest.approx(3 / 5)
    assert s.dice[:3] == pytest.approx([0.5, 0.8, 0.0])
    assert s.mdice == pytest.approx(1.3 / 3)


def test_class_predicted_but_absent_from_truth_counts_as_zero():
    s = scores_from_confusion(np.array([[3, 1], [0, 0]]))
    assert s.iou.tolist()[1] == 0.0
    assert s.miou == pytest.approx((3 / 4 + 0) / 2)
    assert math.isnan(s.recall[1]) and s.mrecall == pytest.approx(3 / 4)


def test_update_accumulates_over_batches_of_images():
    cm = ConfusionMatrix(3)
    pred = torch.randint(0, 3, (2, 5, 7), generator=torch.Generator().manual_seed(0))
    cm.update(pred, pred)
    cm.update(pred, pred)
    assert cm.matrix.sum() == 2 * pred.numel()
    assert cm.scores().miou == pytest.approx(1.0)


def test_miou_from_counts_is_the_confusion_matrix_miou_for_each_row():
    """The bootstrap's path (per-class tp, fp, fn counts, many resamples at once) gives exactly the
    confusion matrix's mIoU, absent classes (class 3 here) left out the same way."""
    matrices = [hand_example().matrix.numpy(), np.array([[3, 1, 0, 0], [0, 0, 0, 0], [2, 0, 5, 0], [0, 0, 0, 0]]),
                np.zeros((4, 4), np.int64)]
    rows = []
    for matrix in matrices:
        tp = np.diag(matrix)
        rows.append(np.stack([tp, matrix.sum(0) - tp, matrix.sum(1) - tp], axis=-1))  # (tp, fp, fn) per class
    mious = miou_from_counts(np.stack(rows))
    assert mious.shape == (3,)
    assert mious[:2].tolist() == [scores_from_confusion(m).miou for m in matrices[:2]]
    assert math.isnan(mious[2]) and math.isnan(scores_from_confusion(matrices[2]).miou)  # nothing defined


def test_depth_scores_from_sums_match_the_accumulator():
    g = torch.Generator().manual_seed(2)
    truth = torch.rand(4, 6, 6, generator=g) * 5
    truth[1] = 0  # an image without valid depth
    errors = DepthErrors(per_image=True)
    errors.update(truth + torch.randn(4, 6, 6, generator=g), truth)
    sums = errors.per_image_sums()
    assert depth_scores_from_sums(sums.sum(0)) == errors.scores()
    assert depth_rmse_from_sums(sums)[0] == depth_scores_from_sums(sums[0]).rmse
    assert math.isnan(depth_rmse_from_sums(sums)[1]) and depth_scores_from_sums(sums[1]).pixels == 0
