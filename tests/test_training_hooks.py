"""What a model, an augmentation or a callback may hook into besides the step: data-dependent
initialisation, per-image sample keys, freezing by epoch, TTA in the final evaluation."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import ClassVar

import pytest
import torch
from torch import Tensor, nn

from cvkit.builtins.simple_cnn import SimpleCNN
from cvkit.builtins.unfreeze import Freeze
from cvkit.data.augmentation import BatchAugmentation
from cvkit.data.batches import BatchLoader
from cvkit.data.tensors import ImageTensors
from cvkit.engine.callback import Callback
from cvkit.engine.trainer import TrainingLoop
from cvkit.engine.tta import tta_views

CPU = torch.device("cpu")


def numbered_images(count: int) -> ImageTensors:
    """Image i is filled with the value i, so a batch tells which images it holds."""
    images = torch.arange(count, dtype=torch.uint8).view(-1, 1, 1, 1).expand(count, 3, 4, 4)
    return ImageTensors(images.contiguous(), torch.arange(count) % 2, ["a", "b"])


class InitRecorder(SimpleCNN):
    data_init_images = 5

    def __init__(self) -> None:
        super().__init__(2, 3, widths=[4])
        self.seen: list[Tensor] = []

    def init_from_data(self, images: Tensor) -> None:
        self.seen.append(images)


def loop_over(model: nn.Module, images: ImageTensors, **kwargs) -> TrainingLoop:
    loader = BatchLoader(images, batch_size=4, device=CPU, shuffle=True, drop_last=True)
    return TrainingLoop(
        model,
        torch.optim.SGD(model.parameters(), lr=0.01),
        nn.CrossEntropyLoss(),
        loader,
        epochs=1,
        device=CPU,
        **kwargs,
    )


def test_a_model_is_initialised_from_training_images_before_a_fresh_run_only() -> None:
    data = numbered_images(16)
    asked: list[int] = []

    def training_images(count: int) -> Tensor:
        asked.append(count)
        return data.images[:count].float()

    model = InitRecorder()
    loop = loop_over(model, data, training_images=training_images)
    loop.fit()
    assert asked == [5] and [tuple(t.shape) for t in model.seen] == [(5, 3, 4, 4)]
    resumed_model = InitRecorder()
    resumed = loop_over(resumed_model, data, training_images=training_images)
    resumed.load_state_dict(loop.state_dict())
    resumed.fit()  # the checkpoint has the initialised weights: no second initialisation
    assert asked == [5] and resumed_model.seen == []


class KeyRecorder(BatchAugmentation):
    uses_sample_keys: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[list[int], list[int], int]] = []

    def forward(self, images, targets, keys, epoch):  # type: ignore[override]
        numbers = (images[:, 0, 0, 0] * 255).round().long()  # image i holds i / 255
        self.calls.append((numbers.tolist(), keys.tolist(), epoch))
        return images, targets


def recorded_loader() -> tuple[BatchLoader, KeyRecorder]:
    recorder = KeyRecorder()
    images = numbered_images(12)
    loader = BatchLoader(
        images, batch_size=4, device=CPU, augmentations=[recorder], shuffle=True, seed=3
    )
    return loader, recorder


def test_sample_keys_follow_each_image_across_epochs_and_resume_with_the_epoch() -> None:
    loader, recorder = recorded_loader()
    list(loader.epoch())
    saved = loader.state_dict()
    list(loader.epoch())
    keys: dict[int, int] = {}
    for images, batch_keys, _ in recorder.calls:
        for image, key in zip(images, batch_keys, strict=True):
            assert keys.setdefault(image, key) == key  # the same key in both epochs
    assert len(keys) == 12 and len(set(keys.values())) == 12
    assert [epoch for *_, epoch in recorder.calls] == [0, 0, 0, 1, 1, 1]
    resumed, resumed_recorder = recorded_loader()
    resumed.load_state_dict(saved)
    list(resumed.epoch())
    assert resumed_recorder.calls == recorder.calls[3:]


def test_freeze_stops_training_a_module_from_its_epoch_on() -> None:
    torch.manual_seed(0)
    model = SimpleCNN(2, 3, widths=[4])
    loop = loop_over(model, numbered_images(16), callbacks=[Freeze(schedule={"2": ["classifier"]})])
    loop.epochs = 2
    weights: list[Tensor] = []

    class Snapshot(Callback):
        def on_epoch_end(self, trainer) -> None:
            weights.append(trainer.model.classifier.weight.detach().clone())

    loop.callbacks.append(Snapshot())
    loop.fit()
    assert not model.classifier.weight.requires_grad
    assert torch.equal(weights[0], weights[1])  # frozen for the whole second epoch
    callback = Freeze(schedule={"3": ["classifier"]})
    fresh = SimpleCNN(2, 3, widths=[4])
    callback.on_fit_start(SimpleNamespace(model=fresh, epoch=3))  # resumed after epoch 3
    assert not fresh.classifier.weight.requires_grad


def test_the_shift_view_is_airbenchs_weighted_one_pixel_translations() -> None:
    images = torch.rand(2, 3, 8, 8)
    views = tta_views(images, ["flip", "shift"])
    assert [w for _, w in views] == [1.0, 0.5, 0.5, 1.0, 0.5, 0.5]
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), mode="reflect")
    assert torch.equal(views[1][0], padded[..., :8, :8])
    assert torch.equal(views[2][0], padded[..., 2:, 2:])
    assert torch.equal(views[4][0], padded[..., :8, :8].flip(-1))


def test_trainer_tta_evaluates_the_run_as_cvkit_eval_does(run_cli, tiny_recipe, tmp_path) -> None:
    result = run_cli("run", str(tiny_recipe), "--set", 'trainer.tta=["flip", "shift"]')
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "runs" / "tiny").iterdir())
    recorded = json.loads((run / "eval.json").read_text())
    assert recorded["tta"] == ["flip", "shift"]
    again = run_cli("eval", str(run), "--tta", "flip,shift", "--json")
    assert again.exit_code == 0, again.output
    evaluated = json.loads(again.stdout)
    for split in ("val", "test"):
        assert recorded[split]["top1"] == evaluated[split]["top1"]
        assert recorded[split]["loss"] == pytest.approx(evaluated[split]["loss"], rel=1e-5)
