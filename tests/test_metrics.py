"""Evaluation metrics agree with scikit-learn's."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import (
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from cvkit.engine.metrics import Accumulator


@pytest.mark.parametrize(("classes", "seed"), [(7, 0), (3, 1), (10, 2)])
def test_accumulated_metrics_match_scikit_learn(classes: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(200, classes, generator=generator)
    labels = torch.randint(0, classes, (200,), generator=generator)
    labels[:classes] = torch.arange(classes)  # every class present
    logits[labels == 0] += 2.0  # make class 0 easier than the others
    accumulator = Accumulator(classes, torch.device("cpu"))
    for start in range(0, 200, 64):  # uneven batches
        accumulator.update(logits[start : start + 64], labels[start : start + 64])
    names = [f"c{i}" for i in range(classes)]
    result = accumulator.result(names)
    predicted = logits.argmax(1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, average="macro", zero_division=0
    )
    assert result["samples"] == 200
    assert result["top1"] == pytest.approx(float((predicted == labels).float().mean()))
    top5 = top_k_accuracy_score(labels, logits, k=5, labels=range(classes)) if classes > 5 else 1.0
    assert result["top5"] == pytest.approx(top5)
    probabilities = logits.double().softmax(1)
    assert result["loss"] == pytest.approx(
        log_loss(labels, probabilities, labels=range(classes)), rel=1e-5
    )
    assert (result["macro_precision"], result["macro_recall"], result["macro_f1"]) == pytest.approx(
        (precision, recall, f1)
    )
    assert (
        result["confusion_matrix"]
        == confusion_matrix(labels, predicted, labels=range(classes)).tolist()
    )
    report = precision_recall_fscore_support(
        labels, predicted, labels=range(classes), average=None, zero_division=0
    )
    assert list(result["per_class"]) == names
    for key, expected in zip(("precision", "recall", "f1", "support"), report, strict=True):
        assert [result["per_class"][name][key] for name in names] == pytest.approx(
            expected.tolist()
        ), key


def test_a_class_never_predicted_has_zero_precision() -> None:
    accumulator = Accumulator(3, torch.device("cpu"))
    accumulator.update(
        torch.tensor([[5.0, 0, 0], [5.0, 0, 0], [0, 5.0, 0]]), torch.tensor([0, 2, 1])
    )
    result = accumulator.result(["a", "b", "c"])
    assert {name: row["recall"] for name, row in result["per_class"].items()} == {
        "a": 1.0,
        "b": 1.0,
        "c": 0.0,
    }
    assert result["per_class"]["a"] == {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
    assert result["macro_precision"] == pytest.approx((0.5 + 1 + 0) / 3)
