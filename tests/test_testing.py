"""The contract checks catch broken components (each check must be able to fail)."""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import Phase, settings
from torch import nn

from cvkit.builtins.simple_cnn import SimpleCNN
from cvkit.builtins.synthetic import SyntheticImages
from cvkit.data.augmentation import BatchAugmentation
from cvkit.engine.callback import Callback
from cvkit.testing import (
    check_attention,
    check_augmentation,
    check_callback,
    check_dataset,
    check_loss,
    check_model,
    check_optimizer,
    check_scheduler,
)
from cvkit_squeeze_excitation import SqueezeExcitation

settings.register_profile("cvkit-no-shrink", phases=[Phase.explicit, Phase.reuse, Phase.generate])


@pytest.fixture(autouse=True)
def _no_shrinking():
    """These tests only need each check to fail; shrinking the failing input is wasted time."""
    previous = settings.get_current_profile_name()
    settings.load_profile("cvkit-no-shrink")
    yield
    settings.load_profile(previous)


class ShrinkingBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x):
        return nn.functional.avg_pool2d(x * self.scale, 2, ceil_mode=True)  # halves H and W


class UnusedParameterBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels, 1, 1))
        self.unused = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x * self.scale


class BatchDependentBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x):
        return (x - x.mean(0, keepdim=True)) * self.scale


class HalvingBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x):
        return (x * self.scale).to(torch.float16)


class ZeroingBlock(nn.Module):
    """Gradients exist but are zero everywhere: the output does not depend on the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x):
        return x * 0 + self.scale


class DeadParametersBlock(nn.Module):
    """Every parameter gets a gradient of zero: they cannot learn."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x):
        return x + 0 * self.scale


class NaNGradientBlock(nn.Module):
    """A finite output whose gradient is NaN (sqrt at 0)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x):
        return x * self.scale + (x * 0).sqrt()


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (ShrinkingBlock, "output shape"),
        (UnusedParameterBlock, "no gradient reaches parameter 'unused'"),
        (ZeroingBlock, "the gradient reaching the input is zero everywhere"),
        (DeadParametersBlock, "gradients of all 1 trainable parameters are zero everywhere"),
        (NaNGradientBlock, "no finite gradient reaches the input"),
        (BatchDependentBlock, "depends on the batch"),
        (HalvingBlock, "dtype"),
    ],
)
def test_check_attention_rejects_broken_blocks(block, message) -> None:
    with pytest.raises(AssertionError, match=message):
        check_attention(block, max_examples=5)


def test_check_attention_accepts_a_correct_block() -> None:
    check_attention(functools.partial(SqueezeExcitation, reduction=2), max_examples=5)


def test_check_model_rejects_wrong_output_shape() -> None:
    def model(num_classes: int, in_channels: int) -> nn.Module:
        return SimpleCNN(num_classes + 1, in_channels, widths=[4])

    with pytest.raises(AssertionError, match="output shape"):
        check_model(model, max_examples=2)


def test_check_optimizer_rejects_an_optimizer_that_does_not_learn() -> None:
    with pytest.raises(AssertionError, match="did not decrease"):
        check_optimizer(lambda params: torch.optim.SGD(params, lr=0.0))


class ForgetfulSGD(torch.optim.SGD):
    def load_state_dict(self, state_dict):  # drops the momentum buffers
        super().load_state_dict({"state": {}, "param_groups": state_dict["param_groups"]})


def test_check_optimizer_rejects_state_that_does_not_round_trip() -> None:
    with pytest.raises(AssertionError, match="diverges"):
        check_optimizer(lambda params: ForgetfulSGD(params, lr=0.05, momentum=0.9))


def test_check_scheduler_rejects_lost_state() -> None:
    class Forgetful(torch.optim.lr_scheduler.StepLR):
        def load_state_dict(self, state_dict):
            pass

    def factory(optimizer, *, epochs, steps_per_epoch):
        return Forgetful(optimizer, step_size=3, gamma=0.5)

    with pytest.raises(AssertionError, match="after load_state_dict"):
        check_scheduler(factory)


def test_check_loss_rejects_a_loss_that_ignores_soft_targets() -> None:
    class HardOnly(nn.Module):
        def forward(self, logits, targets):
            if targets.is_floating_point():
                return logits.sum() * 0
            return nn.functional.cross_entropy(logits, targets)

    with pytest.raises(AssertionError, match="one-hot"):
        check_loss(HardOnly, max_examples=5)


class SilentMixer(BatchAugmentation):
    """Makes soft targets without declaring soft_targets."""

    def forward(self, images, targets):
        if not targets.is_floating_point():
            targets = nn.functional.one_hot(targets, 10).float()
        return images, targets


class MassLeak(BatchAugmentation):
    soft_targets = True

    def forward(self, images, targets):
        if not targets.is_floating_point():
            targets = nn.functional.one_hot(targets, 10).float()
        return images, targets * 0.5


class Unseeded(BatchAugmentation):
    def forward(self, images, targets):
        generator = torch.Generator()  # ignores the global seed
        generator.seed()
        return images + torch.rand(images.shape, generator=generator, dtype=images.dtype), targets


class Caster(BatchAugmentation):
    def forward(self, images, targets):
        return images.float().half(), targets


@pytest.mark.parametrize(
    ("augmentation", "message"),
    [
        (SilentMixer, "without declaring soft_targets"),
        (MassLeak, "sum to 1"),
        (Unseeded, "not reproducible"),
        (Caster, "dtype"),
    ],
)
def test_check_augmentation_rejects_broken_augmentations(augmentation, message) -> None:
    with pytest.raises(AssertionError, match=message):
        check_augmentation(augmentation, max_examples=10)


def test_check_dataset_rejects_nondeterministic_loading() -> None:
    class Drifting(SyntheticImages):
        calls = 0

        def load(self, split):
            Drifting.calls += 1
            data = super().load(split)
            data.images[0] = Drifting.calls
            return data

    with pytest.raises(AssertionError, match="different data"):
        check_dataset(lambda: Drifting(train_size=8, test_size=0, image_size=4))


def test_check_callback_rejects_state_that_does_not_round_trip() -> None:
    class Counter(Callback):
        def __init__(self) -> None:
            self.count = 3

        def state_dict(self):
            return {"count": self.count}

        def load_state_dict(self, state):
            self.count = state["count"] + 1  # off by one

    with pytest.raises(AssertionError, match="round-trip"):
        check_callback(Counter)


def test_callback_subclass_with_a_misspelt_event_is_rejected() -> None:
    with pytest.raises(TypeError, match="on_epoch_ends"):

        class Typo(Callback):
            def on_epoch_ends(self, trainer) -> None:
                pass


def test_contract_cases_can_be_limited_to_one_plugin(registry) -> None:
    from cvkit.testing import contract_cases

    cases = contract_cases(registry, plugin="cvkit-squeeze-excitation")
    assert {str(case) for case in cases} == {"attention/se[0]", "attention/se[1]"}
    assert {c.component.plugin for c in contract_cases(kinds=("scheduler",))} >= {"cvkit"}
