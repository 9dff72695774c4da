"""cvkit export: TorchScript, ExportedProgram and ONNX files that give the checkpoint's logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cvkit.commands.run import train
from cvkit.engine.build import build_augmentations
from cvkit.engine.trained_model import restore
from cvkit.errors import CvkitError


@pytest.fixture(scope="module")
def run(tmp_path_factory, registry_module) -> Path:
    from cvkit.testing import TINY_RECIPE

    folder = tmp_path_factory.mktemp("export")
    (folder / "tiny.toml").write_text(TINY_RECIPE.format(runs=(folder / "runs").as_posix()))
    return train(folder / "tiny.toml", output=folder / "run", registry=registry_module).run_dir


@pytest.fixture(scope="module")
def registry_module():
    from cvkit.registry.loading import load_registry

    return load_registry()


def _load(path: Path, export_format: str):
    """The exported file as a callable on float (N, C, H, W) tensors, loaded without cvkit."""
    if export_format == "torchscript":
        with pytest.warns(FutureWarning, match="deprecated"):  # torch deprecates TorchScript
            return torch.jit.load(str(path))
    if export_format == "exported-program":
        return torch.export.load(str(path)).module()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


@pytest.mark.parametrize("export_format", ["torchscript", "exported-program", "onnx"])
def test_an_exported_model_gives_the_checkpoints_outputs(
    run, registry_module, tmp_path, run_cli, export_format
) -> None:
    out = tmp_path / f"model.{export_format}"
    result = run_cli("export", str(run), "--format", export_format, "--out", str(out))
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / f"model.{export_format}.json").read_text())
    assert sidecar["classes"] == [f"class_{k}" for k in range(4)]
    assert sidecar["input"]["resized_to"] == [8, 8] and sidecar["max_abs_difference"] <= 1e-5
    exported = _load(out, export_format)
    # the reference: the checkpoint's model behind the recipe's augment.eval (normalize)
    trained = restore(run, registry_module)
    normalize = build_augmentations(trained.recipe.augment.eval, registry_module, 4)
    images = torch.from_numpy(
        np.random.default_rng(0).integers(0, 256, (5, 3, 8, 8), dtype=np.uint8)
    )
    x = images.float() / 255
    reference = x
    for augmentation in normalize:
        reference, _ = augmentation(reference, torch.zeros(5, dtype=torch.long))
    with torch.no_grad():
        expected = trained.model.eval()(reference)
        torch.testing.assert_close(exported(x), expected, atol=1e-5, rtol=0)
        # any size: resized as cvkit predict resizes (bilinear, antialiased)
        from torchvision.transforms.v2 import functional as TF

        larger = torch.rand(3, 3, 20, 14)
        resized = TF.resize(larger, [8, 8], antialias=True)
        for augmentation in normalize:
            resized, _ = augmentation(resized, torch.zeros(3, dtype=torch.long))
        torch.testing.assert_close(exported(larger), trained.model(resized), atol=1e-5, rtol=0)


def test_an_export_that_does_not_match_is_not_kept(run, tmp_path, monkeypatch) -> None:
    import cvkit.commands.export as exporting

    monkeypatch.setattr(exporting, "TOLERANCE", -1.0)  # no file can pass
    out = tmp_path / "model.pt2"
    with pytest.raises(CvkitError, match="differ from the checkpoint's"):
        exporting.export_model(run, out, export_format="exported-program")
    assert not out.exists()
