"""cvkit.engine.profiling: parameter counts, FLOPs against a hand count and a reference
library, weight sizes, and timings that are positive and shaped as documented."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from cvkit.engine.profiling import (
    forward_flops,
    latency_ms,
    parameter_counts,
    peak_memory_megabytes,
    state_dict_megabytes,
    throughput,
    training_step_flops,
)


def test_forward_flops_of_one_conv_layer_equal_the_hand_count() -> None:
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    # each of the 8 x 32 x 32 outputs takes 3 x 3 x 3 multiply-adds, 2 FLOPs each
    by_hand = 2 * (8 * 32 * 32) * (3 * 3 * 3)
    assert forward_flops(conv, torch.zeros(1, 3, 32, 32)) == by_hand
    assert forward_flops(conv, torch.zeros(4, 3, 32, 32)) == 4 * by_hand


def test_forward_flops_of_a_linear_layer_and_the_training_step() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert forward_flops(model, torch.zeros(2, 3, 2, 2)) == 2 * 2 * 12 * 5
    # backward: the weight's gradient, as costly as the forward (the input needs none)
    assert training_step_flops(model, torch.zeros(2, 3, 2, 2), 5) == 2 * (2 * 2 * 12 * 5)
    deeper = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.Linear(5, 3))
    forward = 2 * 2 * (12 * 5 + 5 * 3)
    # the second layer's backward also computes its input's gradient: 2 x its forward
    backward = 2 * 2 * 12 * 5 + 2 * (2 * 2 * 5 * 3)
    assert training_step_flops(deeper, torch.zeros(2, 3, 2, 2), 3) == forward + backward


def test_training_step_flops_leave_the_model_untouched() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(2, 3, 8, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    training_step_flops(model, torch.rand(2, 3, 8, 8), 2)
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_resnet18_flops_agree_with_ptflops_within_one_percent() -> None:
    ptflops = pytest.importorskip("ptflops", reason="ptflops (the reference counter) is absent")
    model = torchvision.models.resnet18()
    macs, _ = ptflops.get_model_complexity_info(
        model, (3, 224, 224), as_strings=False, print_per_layer_stat=False, backend="pytorch"
    )
    ours = forward_flops(model, torch.zeros(1, 3, 224, 224)) / 2  # FLOPs -> multiply-adds
    assert ours == pytest.approx(macs, rel=0.01)


def test_parameter_counts_separate_frozen_and_count_shared_once() -> None:
    shared = nn.Linear(4, 4)
    frozen = nn.Linear(4, 2)
    frozen.requires_grad_(False)
    model = nn.Sequential(shared, shared, frozen)
    assert parameter_counts(model) == {"trainable": 20, "total": 30}


def test_state_dict_megabytes() -> None:
    model = nn.Sequential(nn.Linear(10, 10), nn.BatchNorm1d(10))
    sizes = state_dict_megabytes(model)
    # 110 + 20 parameters and 20 float running statistics at 4 bytes, one int64 counter
    assert sizes["fp32"] == pytest.approx((150 * 4 + 8) / 1e6)
    assert sizes["saved"] > sizes["fp32"]  # torch.save adds its archive's structure
    sizes_half = state_dict_megabytes(model.half())
    assert sizes_half["fp32"] == pytest.approx(sizes["fp32"])
    assert sizes_half["saved"] < sizes["saved"]


def test_timings_are_positive_and_ordered() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(3))
    model(torch.zeros(1, 3, 8, 8))
    latency = latency_ms(model, torch.rand(1, 3, 8, 8), repeats=20, warmup=2, threads=1)
    assert 0 < latency["p10"] <= latency["median"] <= latency["p90"]
    assert latency["repeats"] == 20
    speed = throughput(model, torch.rand(8, 3, 8, 8), 3, repeats=3, warmup=1, threads=1)
    assert speed["inference"] > 0 and speed["training"] > 0
    memory = peak_memory_megabytes(model, torch.rand(8, 3, 8, 8), 3)
    assert memory["inference"] >= 0 and memory["training"] >= 0
    assert "resident" in memory["what"]
