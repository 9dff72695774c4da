"""The training loop: events, precision, clipping, closures, schedulers, EMA, compile."""

from __future__ import annotations

import math

import attrs
import pytest
import torch
from torch import nn

from cvkit.builtins.normalize import Normalize
from cvkit.builtins.simple_cnn import SimpleCNN
from cvkit.builtins.synthetic import SyntheticImages
from cvkit.data.batches import BatchLoader
from cvkit.data.splits import split_train_val
from cvkit.engine.callback import EVENTS, Callback
from cvkit.engine.trainer import TrainingLoop, frozen_running_stats, to_channels_last
from cvkit.errors import CvkitError, NonFiniteLossError
from cvkit.recipe.schema import TrainerSettings

CPU = torch.device("cpu")


def make_trainer(
    *, epochs: int = 2, optimizer=None, check_every: int = 100, **kwargs
) -> TrainingLoop:
    """A loop over 48 synthetic 8x8 images; ``kwargs`` naming [trainer] settings (clipping,
    EMA, channels-last, compile) become its TrainerSettings, the rest go to the loop."""
    torch.manual_seed(0)
    data = SyntheticImages(num_classes=3, image_size=8, train_size=72, test_size=0, noise=0.2).load(
        "train"
    )
    train, val = split_train_val(data, 24, seed=0)
    normalize = [Normalize(mean=[0.5] * 3, std=[0.25] * 3)]
    model = SimpleCNN(3, 3, widths=[8, 16])
    optimizer = (optimizer or (lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)))(
        model.parameters()
    )
    fields = {f.name for f in attrs.fields(TrainerSettings)}
    settings = TrainerSettings(**{k: v for k, v in kwargs.items() if k in fields})
    loop = TrainingLoop(
        model,
        optimizer,
        nn.CrossEntropyLoss(),
        BatchLoader(
            train, batch_size=16, device=CPU, augmentations=normalize, shuffle=True, drop_last=True
        ),
        val_loader=BatchLoader(val, batch_size=32, device=CPU, augmentations=normalize),
        epochs=epochs,
        device=CPU,
        settings=settings,
        **{k: v for k, v in kwargs.items() if k not in fields},
    )
    loop.check_every = check_every
    return loop


class Recorder(Callback):
    def __init__(self, name: str = "r", log: list | None = None, priority: int = 0) -> None:
        self.name, self.log = name, log if log is not None else []
        self.priority = priority

    def on_fit_start(self, trainer):
        self.log.append((self.name, "on_fit_start"))

    def on_epoch_start(self, trainer):
        self.log.append((self.name, "on_epoch_start", trainer.epoch))

    def on_batch_end(self, trainer):
        self.log.append((self.name, "on_batch_end", trainer.batch))

    def on_validation_end(self, trainer):
        self.log.append((self.name, "on_validation_end", sorted(trainer.metrics)))

    def on_epoch_end(self, trainer):
        self.log.append((self.name, "on_epoch_end", trainer.epoch))

    def on_fit_end(self, trainer):
        self.log.append((self.name, "on_fit_end"))

    def on_evaluation_end(self, trainer):
        self.log.append((self.name, "on_evaluation_end", trainer.evaluation))

    def on_exception(self, trainer, error):
        self.log.append((self.name, "on_exception", type(error).__name__))


def test_training_learns_and_events_arrive_in_order() -> None:
    recorder = Recorder()
    trainer = make_trainer(callbacks=[recorder], epochs=3)
    trainer.fit()
    trainer.evaluated({"val": None})
    events = [entry[1] for entry in recorder.log]
    per_epoch = [
        "on_epoch_start",
        "on_batch_end",
        "on_batch_end",
        "on_batch_end",
        "on_validation_end",
        "on_epoch_end",
    ]
    assert events == ["on_fit_start", *per_epoch * 3, "on_fit_end", "on_evaluation_end"]
    assert set(events) | {"on_exception"} == set(EVENTS)
    assert recorder.log[-1] == ("r", "on_evaluation_end", {"val": None})
    assert recorder.log[-3] == ("r", "on_epoch_end", 3) and trainer.step == 9
    assert [h["epoch"] for h in trainer.history] == [1, 2, 3]
    assert (
        trainer.history[-1]["val/acc"] > 0.8
        and trainer.history[-1]["train/loss"] < trainer.history[0]["train/loss"]
    )


def test_callbacks_run_by_priority_keeping_the_recipe_order_for_ties() -> None:
    log: list = []
    callbacks = [
        Recorder("late", log, 100),
        Recorder("a", log, 0),
        Recorder("early", log, -5),
        Recorder("b", log, 0),
    ]
    make_trainer(callbacks=callbacks, epochs=1).fit()
    assert [name for name, *_ in log[:4]] == ["early", "a", "b", "late"]


def test_an_error_names_the_callback_and_every_callback_hears_of_it() -> None:
    class Broken(Callback):
        def on_epoch_end(self, trainer):
            raise RuntimeError("disk full")

    recorder = Recorder()
    trainer = make_trainer(callbacks=[Broken(), recorder], epochs=1)
    with pytest.raises(RuntimeError, match="disk full") as error:
        trainer.fit()
    assert "in callback Broken.on_epoch_end" in error.value.__notes__
    assert recorder.log[-1] == ("r", "on_exception", "RuntimeError")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains(precision: str) -> None:
    trainer = make_trainer(precision=precision, epochs=2)
    trainer.fit()
    assert math.isfinite(trainer.metrics["train/loss"]) and trainer.history[-1]["val/acc"] > 0.5
    assert (trainer.scaler is not None) == (precision == "fp16")


class GradientNorms(torch.optim.SGD):
    """SGD that records the global gradient norm it is asked to apply."""

    def __init__(self, params, **kwargs) -> None:
        super().__init__(params, **kwargs)
        self.norms: list[float] = []

    def step(self, closure=None):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        self.norms.append(
            float(
                torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            )
        )
        self.largest = max(float(g.abs().max()) for g in grads)
        return super().step(closure)


def test_gradient_clipping_by_norm_and_by_value() -> None:
    trainer = make_trainer(
        optimizer=lambda p: GradientNorms(p, lr=0.05), clip_grad_norm=0.01, epochs=1
    )
    trainer.fit()
    assert max(trainer.optimizer.norms) <= 0.01 + 1e-6
    trainer = make_trainer(
        optimizer=lambda p: GradientNorms(p, lr=0.05), clip_grad_value=1e-4, epochs=1
    )
    trainer.fit()
    assert trainer.optimizer.largest <= 1e-4 + 1e-9


class TwoPass(torch.optim.SGD):
    """A SAM-like optimizer: step(closure) recomputes loss and gradients before stepping."""

    requires_closure = True

    def __init__(self, params, **kwargs) -> None:
        super().__init__(params, **kwargs)
        self.closure_calls = 0

    def step(self, closure=None):
        assert closure is not None
        with torch.enable_grad():
            loss = closure()
            closure()
        self.closure_calls += 1
        super().step()
        return loss


def test_an_optimizer_that_needs_a_closure_gets_one_every_step() -> None:
    trainer = make_trainer(optimizer=lambda p: TwoPass(p, lr=0.05, momentum=0.9), epochs=2)
    trainer.fit()
    assert trainer.optimizer.closure_calls == trainer.step == 6
    # the closure ran twice per step; batch norms counted (and averaged) the first pass only
    norms = [m for m in trainer.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(int(m.num_batches_tracked) == trainer.step for m in norms)
    assert trainer.history[-1]["val/acc"] > 0.5
    with pytest.raises(CvkitError, match="closure"):
        make_trainer(optimizer=lambda p: TwoPass(p, lr=0.05), precision="fp16")


def test_schedulers_step_per_batch_or_per_epoch_as_they_declare() -> None:
    per_step = make_trainer(epochs=2, scheduler=None)
    per_step.scheduler = torch.optim.lr_scheduler.StepLR(per_step.optimizer, step_size=1, gamma=0.5)
    per_step.interval = "step"
    per_step.fit()
    assert per_step.lr == pytest.approx(0.05 * 0.5**6)
    per_epoch = make_trainer(epochs=2)
    per_epoch.scheduler = torch.optim.lr_scheduler.StepLR(
        per_epoch.optimizer, step_size=1, gamma=0.5
    )
    per_epoch.scheduler.interval = "epoch"
    per_epoch.interval = "epoch"
    per_epoch.fit()
    assert per_epoch.lr == pytest.approx(0.05 * 0.5**2)


def test_ema_follows_the_decay_formula_on_parameters_and_buffers() -> None:
    """e_1 = w_1, e_t = decay * e_(t-1) + (1 - decay) * w_t, for every parameter and buffer,
    as torch's AveragedModel(get_ema_multi_avg_fn(decay), use_buffers=True) computes it."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from cvkit.engine.ema import ExponentialMovingAverage

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    decay = 0.8
    ours = ExponentialMovingAverage(model, decay)
    torchs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    expected = None
    for _ in range(5):
        with torch.no_grad():
            for tensor in [*model.parameters(), model[1].running_mean, model[1].running_var]:
                tensor.copy_(torch.randn_like(tensor))
        weights = [
            t.clone() for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()
        ]
        expected = (
            weights
            if expected is None
            else [decay * e + (1 - decay) * w for e, w in zip(expected, weights, strict=True)]
        )
        ours.update_parameters(model)
        torchs.update_parameters(model)
    averaged = [
        t for t in [*ours.module.parameters(), *ours.module.buffers()] if t.is_floating_point()
    ]
    for mine, formula in zip(averaged, expected, strict=True):
        torch.testing.assert_close(mine, formula)
    assert int(ours.n_averaged) == 5
    for (name, mine), (_, theirs) in zip(
        ours.state_dict().items(), torchs.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(mine, theirs, msg=name)


def test_ema_weights_are_kept_and_used_for_evaluation() -> None:
    trainer = make_trainer(ema_decay=0.9, epochs=2)
    trainer.fit()
    assert trainer.evaluation_model() is trainer.ema.module
    ema_weight = trainer.ema.module.classifier.weight
    assert not torch.equal(ema_weight, trainer.model.classifier.weight)
    assert trainer.state_dict()["ema"]["n_averaged"] == 6


def _weights(loop: TrainingLoop) -> dict[str, torch.Tensor]:
    """The floating-point tensors of the model's state dict, as its checkpoint saves them."""
    return {k: v for k, v in loop.state_dict()["model"].items() if v.is_floating_point()}


def test_channels_last_trains_as_contiguous_memory_does() -> None:
    """The same batches through channels-last convolutions: the same weights and losses up to
    the kernels' floating-point reordering."""
    contiguous = make_trainer(epochs=2)
    contiguous.fit()
    trainer = make_trainer(channels_last=True, epochs=2)
    trainer.fit()
    assert trainer.model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert trainer.metrics["train/loss"] == pytest.approx(
        contiguous.metrics["train/loss"], rel=1e-4
    )
    assert trainer.metrics["val/loss"] == pytest.approx(contiguous.metrics["val/loss"], rel=1e-4)
    expected = _weights(contiguous)
    for name, weight in _weights(trainer).items():
        torch.testing.assert_close(weight.contiguous(), expected[name], rtol=1e-4, atol=1e-5)


def test_channels_last_leaves_tensors_that_are_not_4_d_as_they_are() -> None:
    """A 5-D Conv3d weight in a block (timm's lambda layer) made `model.to(memory_format=
    channels_last)` raise "required rank 4 tensor", a traceback at the start of the run."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Unflatten(1, (1, 4)), nn.Conv3d(1, 2, 3))
    assert model[2].weight.dim() == 5
    with pytest.raises(RuntimeError, match="required rank 4 tensor"):
        nn.Sequential(nn.Conv3d(1, 2, 3)).to(memory_format=torch.channels_last)
    to_channels_last(model)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model[2].weight.is_contiguous()
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 2, 2, 4, 4)


def test_a_non_finite_loss_stops_training() -> None:
    trainer = make_trainer(
        optimizer=lambda p: torch.optim.SGD(p, lr=float("inf")), epochs=2, check_every=1
    )
    with pytest.raises(NonFiniteLossError, match="training loss became nan in epoch 1"):
        trainer.fit()
    assert trainer.epoch == 0


@pytest.mark.slow
def test_compiled_model_trains_to_the_eager_models_loss() -> None:
    """torch.compile on the CPU (inductor's C++ kernels): the same batches, the same loss
    as eager up to floating-point reordering, weights saved under their own names."""
    eager = make_trainer(epochs=2)
    eager.fit()
    trainer = make_trainer(compile=True, epochs=2)
    trainer.fit()
    for key in ("train/loss", "val/loss"):
        assert trainer.metrics[key] == pytest.approx(eager.metrics[key], rel=1e-3), key
    assert trainer.metrics["train/acc"] == pytest.approx(eager.metrics["train/acc"], abs=0.05)
    assert not any(k.startswith("_orig_mod") for k in trainer.state_dict()["model"])
    expected = _weights(eager)
    for name, weight in _weights(trainer).items():
        torch.testing.assert_close(weight, expected[name], rtol=1e-3, atol=1e-4)


def test_the_second_pass_leaves_batch_norm_statistics_alone() -> None:
    norm = nn.BatchNorm1d(3).train()
    norm(torch.randn(16, 3) + 2)
    mean, var, count = (
        norm.running_mean.clone(),
        norm.running_var.clone(),
        norm.num_batches_tracked.clone(),
    )
    with frozen_running_stats(norm):
        out = norm(torch.randn(16, 3) * 5)
    assert torch.equal(norm.running_mean, mean) and torch.equal(norm.running_var, var)
    assert torch.equal(norm.num_batches_tracked, count) and norm.momentum == 0.1
    torch.testing.assert_close(out.mean(0), torch.zeros(3), atol=1e-5, rtol=0)  # batch statistics
