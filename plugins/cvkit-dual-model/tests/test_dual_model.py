"""cvkit-dual-model: the joint head sees each branch's penultimate features."""

from __future__ import annotations

import copy

import pytest
import torch

from cvkit_dual_model import FeatureFusion, classification_layer
from cvkit_lightweight_cnn import BaseSubModel, LightweightCNN


def base(num_classes: int, in_channels: int) -> BaseSubModel:
    return BaseSubModel(num_classes, in_channels)


def test_the_joint_head_classifies_the_concatenated_features() -> None:
    torch.manual_seed(0)
    model = FeatureFusion(10, 3, [base, base], dropout=0.3).eval()
    x = torch.rand(4, 3, 32, 32)
    features = [b.classifier[:-1](b.features(x)) for b in model.branches]
    torch.testing.assert_close(model(x), model.head(torch.cat(features, 1)))
    assert model.head[1].in_features == 2 * 128
    twin = copy.deepcopy(model)  # EMA copies: hooks are per call, so copies stay independent
    torch.testing.assert_close(twin(x), model(x))


def test_a_branch_state_dict_is_its_sub_models() -> None:
    """A stage's init loads a trained sub-model into a branch: that branch then computes the
    sub-model's function exactly, and the other branch is untouched."""
    torch.manual_seed(0)
    sub = BaseSubModel(10, 3).eval()
    model = FeatureFusion(10, 3, [base, base]).eval()
    other = copy.deepcopy(model.branches[0].state_dict())
    model.branches[1].load_state_dict(sub.state_dict())  # what a stage's init does
    x = torch.rand(3, 3, 32, 32)
    torch.testing.assert_close(model.branches[1](x), sub(x))
    for key, value in model.branches[0].state_dict().items():
        assert torch.equal(value, other[key]), key


def test_a_1x1_conv_head_and_a_model_without_a_head() -> None:
    name, layer, features = classification_layer(LightweightCNN(10, 3), 10)
    assert name == "head" and isinstance(layer, torch.nn.Conv2d) and features == 96
    with pytest.raises(ValueError, match="no Linear or 1x1 Conv2d layer with 7 outputs"):
        classification_layer(BaseSubModel(10, 3), 7)
    with pytest.raises(ValueError, match="two or more"):
        FeatureFusion(10, 3, [base])
