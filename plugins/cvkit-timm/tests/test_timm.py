"""model/timm: timm's models by name, pretrained from a local file, offline errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cvkit.testing import TINY_RECIPE
from cvkit_timm.models import timm_model


def test_a_timm_model_gets_the_classes_and_channels_of_the_data() -> None:
    model = timm_model(num_classes=4, in_channels=1, arch="test_convnext")
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 4)


def test_local_pretrained_weights_load_and_the_head_is_replaced(tmp_path: Path) -> None:
    import timm

    torch.manual_seed(0)
    saved = timm.create_model("test_convnext")  # the pretrained layout: 1000 classes, RGB
    torch.save(saved.state_dict(), tmp_path / "weights.pth")
    model = timm_model(4, 3, arch="test_convnext", weights_path=tmp_path / "weights.pth")
    loaded = model.state_dict()
    body = {k: v for k, v in saved.state_dict().items() if not k.startswith("head.fc")}
    assert all(torch.equal(loaded[k], v) for k, v in body.items())
    assert loaded["head.fc.weight"].shape[0] == 4


def test_an_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(
        ValueError, match=r"timm has no model 'test_convnxt' \(did you mean 'test_convnext'"
    ):
        timm_model(num_classes=4, in_channels=3, arch="test_convnxt")


def _recipe(tmp_path: Path) -> Path:
    text = TINY_RECIPE.format(runs=(tmp_path / "runs").as_posix())
    text = text.replace("image_size = 8", "image_size = 32")
    text = text.replace(
        'name = "simple_cnn"\nwidths = [8, 16]', 'name = "timm"\narch = "test_convnext"'
    )
    assert 'arch = "test_convnext"' in text
    path = tmp_path / "timm.toml"
    path.write_text(text)
    return path


def test_a_recipe_trains_a_timm_model(tmp_path: Path, run_cli) -> None:
    result = run_cli(
        "run",
        str(_recipe(tmp_path)),
        "--set",
        "experiment.epochs=1",
        "--output",
        str(tmp_path / "run"),
    )
    assert result.exit_code == 0, result.output
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())
    # the run trained timm's own network for the data's 4 classes and 3 channels
    expected = sum(p.numel() for p in timm_model(4, 3, arch="test_convnext").parameters())
    assert evaluation["model"]["trainable_parameters"] == expected
    assert evaluation["model"]["input_shape"] == [3, 32, 32]
    assert evaluation["val"]["samples"] == 16 and len(evaluation["val"]["classes"]) == 4


def test_pretrained_weights_offline_say_where_to_put_them(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cvkit",
            "run",
            str(_recipe(tmp_path)),
            "--set",
            "model.pretrained=true",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},  # as on a machine without internet
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "cannot download timm's pretrained weights for test_convnext" in result.stderr
    assert "Hugging Face cache" in result.stderr and "weights_path" in result.stderr
    assert "Traceback" not in result.stderr
