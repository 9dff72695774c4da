"""Calibration (temperature scaling, ECE, class thresholds), test-time augmentation and
soft-voting ensembles in cvkit eval."""

from __future__ import annotations

import json

import pytest
import torch

from cvkit.commands.run import train
from cvkit.engine.calibration import (
    calibration_report,
    expected_calibration_error,
    fit_class_thresholds,
    fit_temperature,
    macro_f1,
    threshold_predictions,
)
from cvkit.engine.tta import check_tta, tta_views
from cvkit.errors import CvkitError
from cvkit.testing import TINY_RECIPE


def test_ece_of_hand_computed_bins() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    labels = torch.tensor([0, 1, 0, 1])
    # bin (0.8, 0.867]: confidence 0.9, accuracy 0.5 -> gap 0.4 x 2/4; bins of 0.6 and 0.7:
    # accuracy 1 -> gaps 0.4 and 0.3, x 1/4 each
    assert expected_calibration_error(probs, labels) == pytest.approx(0.2 + 0.1 + 0.075)
    assert expected_calibration_error(torch.eye(2), torch.tensor([0, 1])) == pytest.approx(0)


def test_temperature_scaling_recovers_the_temperature_that_made_the_labels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(20_000, 5) * 3
    labels = torch.multinomial((logits / 2.0).softmax(1), 1).squeeze(1)  # true T = 2
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.05)
    report = calibration_report((logits, labels))
    assert report["val"]["ece_after"] < report["val"]["ece_before"]
    assert report["val"]["nll_after"] < report["val"]["nll_before"]
    assert report["val"]["top1"] == pytest.approx((logits.argmax(1) == labels).float().mean())


def test_class_thresholds_never_lower_the_fitted_macro_f1() -> None:
    torch.manual_seed(1)
    probs = torch.rand(300, 4).softmax(1)
    labels = torch.randint(0, 4, (300,))
    thresholds = fit_class_thresholds(probs, labels)
    fitted = macro_f1(threshold_predictions(probs, thresholds), labels, 4)
    assert fitted >= macro_f1(probs.argmax(1), labels, 4)
    assert torch.equal(threshold_predictions(probs, torch.ones(4)), probs.argmax(1))


def test_tta_views_are_the_batch_its_shifts_and_mirrors() -> None:
    images = torch.rand(2, 3, 32, 32)
    flips = tta_views(images, ["flip"])
    assert len(flips) == 2 and torch.equal(flips[1][0], images.flip(-1))
    both = tta_views(images, ["flip", "crop"])
    assert len(both) == 10 and all(v.shape == images.shape and w == 1 for v, w in both)
    assert torch.equal(both[1][0][..., 2:, 2:], images[..., :-2, :-2])  # shifted by 2 pixels
    with pytest.raises(CvkitError, match="unknown view 'flop'"):
        check_tta(["flop"])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, registry):
    folder = tmp_path_factory.mktemp("calibrated")
    recipe = folder / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(runs=folder.as_posix()))
    return train(recipe, output=folder / "run", registry=registry)


def test_a_run_records_its_calibration(finished_run) -> None:
    calibration = finished_run.evaluation["calibration"]
    assert calibration["temperature"] > 0 and len(calibration["thresholds"]) == 4
    for split in ("val", "test"):
        assert 0 <= calibration[split]["ece_after"] <= 1
    stored = json.loads((finished_run.run_dir / "eval.json").read_text())
    assert stored["calibration"] == calibration


def test_eval_with_tta_and_an_ensemble_of_one_run_twice(finished_run, run_cli, tmp_path) -> None:
    run = str(finished_run.run_dir)
    plain = json.loads(run_cli("eval", run, "--json").stdout)
    timing = {"seconds", "images_per_second"}  # wall times differ between evaluations
    assert {k: v for k, v in plain["val"].items() if k not in timing} == {
        k: v for k, v in finished_run.evaluation["val"].items() if k not in timing
    }
    assert plain["val"]["seconds"] > 0
    twice = run_cli("eval", "--ensemble", run, run, "--json", "--out", str(tmp_path / "e.json"))
    assert twice.exit_code == 0, twice.output
    voted = json.loads((tmp_path / "e.json").read_text())
    # two identical members: the same predictions as one
    assert voted["val"]["confusion_matrix"] == plain["val"]["confusion_matrix"]
    assert len(voted["members"]) == 2
    tta = run_cli("eval", run, "--tta", "flip,crop")
    assert tta.exit_code == 0, tta.output
    assert "test-time augmentation: flip, crop" in tta.output and "calibration" in tta.output


def _probabilities(run, registry, view=lambda x: x) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax (N, K) of a run's model over its validation images (through ``view``), labels."""
    from cvkit import evaluation_batches, restore

    trained = restore(run, registry)
    batches = list(evaluation_batches(trained))
    with torch.no_grad():
        probs = torch.cat([trained.model.eval()(view(x)).softmax(1) for x, _ in batches])
    return probs, torch.cat([y for _, y in batches])


def test_an_ensemble_and_tta_average_the_softmax_of_their_members_and_views(
    finished_run, registry, run_cli, tmp_path
) -> None:
    """The soft vote of two different runs, and the flip TTA of one: eval's loss and
    confusion matrix are those of the mean of the softmaxes, computed here from each member
    (and each view) alone."""
    recipe = tmp_path / "other.toml"
    recipe.write_text(TINY_RECIPE.format(runs=tmp_path.as_posix()).replace("seed = 0", "seed = 1"))
    other = train(recipe, output=tmp_path / "other", registry=registry).run_dir
    first = finished_run.run_dir
    (a, labels), (b, _) = _probabilities(first, registry), _probabilities(other, registry)

    def expected(mean: torch.Tensor) -> tuple[float, list[list[int]]]:
        loss = float(-mean.gather(1, labels[:, None]).log().mean())
        confusion = torch.zeros(4, 4, dtype=torch.int64)
        confusion.index_put_((labels, mean.argmax(1)), torch.tensor(1), accumulate=True)
        return loss, confusion.tolist()

    voted = json.loads(run_cli("eval", "--ensemble", str(first), str(other), "--json").stdout)[
        "val"
    ]
    loss, confusion = expected((a + b) / 2)
    assert voted["loss"] == pytest.approx(loss, rel=1e-5) and voted["confusion_matrix"] == confusion
    assert voted["loss"] != pytest.approx(expected(a)[0], rel=1e-3)  # not the first alone
    flipped, _ = _probabilities(first, registry, lambda x: x.flip(-1))
    tta = json.loads(run_cli("eval", str(first), "--tta", "flip", "--json").stdout)["val"]
    loss, confusion = expected((a + flipped) / 2)
    assert tta["loss"] == pytest.approx(loss, rel=1e-5) and tta["confusion_matrix"] == confusion
    refused = run_cli("eval", str(first), str(other))
    assert refused.exit_code == 2 and "add --ensemble" in refused.output
