"""Callbacks and options that change the model while it trains: freezing by module-name patterns
(model.freeze / model.trainable), progressive unfreezing, dropout schedules."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from cvkit.builtins.simple_cnn import SimpleCNN
from cvkit.builtins.unfreeze import Unfreeze
from cvkit.engine.checkpoint import load_checkpoint
from cvkit.errors import CvkitError
from cvkit.models.freezing import apply_freezing


def trainable_names(model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_patterns_select_modules_by_prefix_or_wildcard() -> None:
    model = SimpleCNN(10, 3, widths=[4, 8])
    every = {name for name, _ in model.named_parameters()}
    apply_freezing(model, ["*"], ["classifier"])
    assert trainable_names(model) == {"classifier.weight", "classifier.bias"}
    apply_freezing(model, [], ["features.0"])  # a module and everything in it
    assert {n for n in trainable_names(model) if n.startswith("features.")} == {
        n for n in every if n.startswith("features.0.")
    }
    apply_freezing(model, ["*.bias"], [])
    assert not any(n.endswith(".bias") for n in trainable_names(model))


def test_a_pattern_that_selects_nothing_names_the_key_and_the_modules() -> None:
    model = SimpleCNN(10, 3, widths=[4])
    with pytest.raises(
        CvkitError, match=r"model\.trainable: 'fc' selects no parameter .*classifier"
    ):
        apply_freezing(model, ["*"], ["fc"])


def test_unfreeze_follows_the_schedule_and_reapplies_on_resume() -> None:
    model = SimpleCNN(10, 3, widths=[4, 8])
    apply_freezing(model, ["*"], ["classifier"])
    callback = Unfreeze(schedule={"2": ["features.4"], "3": ["features"]})
    trainer = SimpleNamespace(model=model, epoch=0)
    callback.on_fit_start(trainer)
    callback.on_epoch_start(trainer)
    assert trainable_names(model) == {"classifier.weight", "classifier.bias"}
    trainer.epoch = 1  # the second epoch starts
    callback.on_epoch_start(trainer)
    assert {n for n in trainable_names(model) if n.startswith("features")} == {"features.4.weight"}
    resumed = SimpleCNN(10, 3, widths=[4, 8])
    apply_freezing(resumed, ["*"], ["classifier"])
    callback.on_fit_start(SimpleNamespace(model=resumed, epoch=2))  # resumed inside epoch 3
    assert trainable_names(resumed) == {name for name, _ in resumed.named_parameters()}
    with pytest.raises(ValueError, match="epoch number"):
        Unfreeze(schedule={"first": ["*"]})
    with pytest.raises(CvkitError, match=r"schedule\.4: 'head'"):
        Unfreeze(schedule={"4": ["head"]}).on_fit_start(trainer)


RECIPE = """
[experiment]
name = "freeze"
epochs = {epochs}

[data]
dataset = {{ name = "synthetic", image_size = 8, train_size = 32, test_size = 0 }}
batch_size = 8
val_split = 8
workers = 0

[model]
name = "simple_cnn"
widths = [4, 8]
freeze = ["*"]
trainable = ["classifier"]

[optimizer]
name = "sgd"
lr = 0.1
momentum = 0.9
weight_decay = 1e-3

[loss]
name = "cross_entropy"

[[callbacks]]
name = "checkpoint"

[[callbacks]]
name = "unfreeze"
schedule = {{ {unfreeze_at} = ["features"] }}
"""


def test_a_run_trains_only_what_is_unfrozen_and_check_reports_both_counts(
    tmp_path, run_cli
) -> None:
    weights = {}
    for epochs, unfreeze_at in ((1, 2), (2, 2), (2, 3)):  # (2, 3): never unfrozen
        recipe = tmp_path / f"freeze{epochs}{unfreeze_at}.toml"
        recipe.write_text(RECIPE.format(epochs=epochs, unfreeze_at=unfreeze_at))
        out = tmp_path / f"run{epochs}{unfreeze_at}"
        result = run_cli("run", str(recipe), "--output", str(out))
        assert result.exit_code == 0, result.output
        weights[epochs, unfreeze_at] = load_checkpoint(out / "checkpoints" / "last.pt")["model"]
    conv, head = "features.0.weight", "classifier.weight"
    # frozen features do not move (no gradient, no weight decay) however long the run ...
    assert torch.equal(weights[1, 2][conv], weights[2, 3][conv])
    assert not torch.equal(weights[1, 2][head], weights[2, 3][head])  # ... while the head trains
    assert not torch.equal(weights[1, 2][conv], weights[2, 2][conv])  # unfrozen in epoch 2
    check = run_cli("check", str(tmp_path / "freeze12.toml"), "--json")
    counts = json.loads(check.stdout)
    assert counts["params"] < counts["total_params"]
    text = run_cli("check", str(tmp_path / "freeze12.toml")).stdout
    assert f"{counts['params']:,} of {counts['total_params']:,} trainable parameters" in text


def test_dropout_schedule_moves_every_dropout_layer_linearly_and_resumes() -> None:
    from cvkit.builtins.dropout_schedule import DropoutSchedule

    model = SimpleCNN(10, 3, widths=[4], dropout=0.1)
    schedule = DropoutSchedule(start=0.5, end=0.2, epochs=4)
    trainer = SimpleNamespace(model=model, epoch=0, epochs=10)
    schedule.on_fit_start(trainer)
    rates = []
    for epoch in range(6):
        trainer.epoch = epoch
        schedule.on_epoch_start(trainer)
        rates.append(model.dropout.p)
    assert rates == pytest.approx([0.5, 0.4, 0.3, 0.2, 0.2, 0.2])
    resumed = SimpleCNN(10, 3, widths=[4], dropout=0.1)
    schedule.on_fit_start(SimpleNamespace(model=resumed, epoch=2, epochs=10))
    assert resumed.dropout.p == pytest.approx(0.3)
    with pytest.raises(CvkitError, match="no dropout layer"):
        schedule.on_fit_start(SimpleNamespace(model=torch.nn.Linear(2, 2), epoch=0, epochs=3))
