import math

import numpy as np
import pytest
import torch

from segbench.metrics import ConfusionMatrix, scores_from_confusion


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
