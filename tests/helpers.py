"""Helpers of the core's tests, imported as `helpers` (a module, not a conftest.py, so that
any way of invoking pytest finds them: `pytest`, `pytest .`, `pytest plugins tests`).

The fixtures (registry, run_cli, tiny_recipe) come from cvkit's pytest plugin,
cvkit.testing.fixtures; the repository's conftest.py cleans the plugin environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"


def run_cvkit(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m cvkit ARGS...`` in a subprocess: real exit codes and tracebacks."""
    return subprocess.run(
        [sys.executable, "-m", "cvkit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=300,
    )


def make_distribution(
    site: Path,
    dist: str,
    version: str,
    entry_points: Mapping[str, str],
    modules: Mapping[str, str],
    *,
    requires: Sequence[str] = (),
    group: str = "cvkit",
) -> Path:
    """Write an installed distribution into ``site`` (dist-info with entry points in ``group``
    and ``Requires-Dist`` lines for ``requires``).

    importlib.metadata finds it once ``site`` is on sys.path (or PYTHONPATH), exactly as it
    finds a pip-installed plugin. ``modules`` maps file names to Python source.
    """
    site.mkdir(parents=True, exist_ok=True)
    for filename, source in modules.items():
        (site / filename).write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    required = "".join(f"Requires-Dist: {r}\n" for r in requires)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n{required}"
    )
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{lines}")
    return site


def synthetic_overrides(
    recipe: Any, *, train_size: int, test_size: int, val_split: int, epochs: int, batch_size: int
) -> tuple[list[str], bool]:
    """``--set`` overrides that run the resolved ``recipe`` on a synthetic 32 x 32 dataset
    (its channels those of its eval normalize), torchvision backbones as resnet18, with cycles
    of schedules and callbacks fitted to ``epochs``; and whether the run needs resnet18's
    "ImageNet" weights (see :func:`fake_imagenet_weights`)."""
    normalize = [a for a in recipe.augment.eval if a.name == "normalize"]
    channels = len(normalize[0].params["mean"] or [0, 0, 0]) if normalize else 3
    overrides = [
        f'data.dataset={{ name = "synthetic", num_classes = 10, image_size = 32, '
        f"channels = {channels}, train_size = {train_size}, test_size = {test_size} }}",
        f"data.batch_size={batch_size}",
        f"data.eval_batch_size={batch_size}",
        f"data.val_split={val_split}",
        "data.workers=0",
        f"experiment.epochs={epochs}",
    ]
    if recipe.scheduler is not None and "cycles" in recipe.scheduler.params:
        overrides.append(f"scheduler.cycles={epochs}")  # cycles must divide the epochs
        overrides += [
            f"callbacks[{i}].cycles={epochs}"
            for i, c in enumerate(recipe.callbacks)
            if "cycles" in c.params
        ]
    if recipe.data.image_size is not None:
        overrides.append("data.image_size=32")  # eval batches; training crops keep their size
    backbone = "arch" in recipe.model.params  # torchvision backbones: resnet18 is enough here
    if backbone:
        overrides.append("model.arch=resnet18")
    return overrides, backbone


def fake_imagenet_weights(home: Path) -> str:
    """A torch.hub cache under ``home`` holding (random) "ImageNet" weights for resnet18, so
    that nothing is downloaded; returns it for ``TORCH_HOME``."""
    import pytest
    import torch
    from torchvision.models import get_model, get_model_weights

    from cvkit.models.pretrained import weights_file

    with pytest.MonkeyPatch.context() as patch:  # weights_file reads TORCH_HOME
        patch.setenv("TORCH_HOME", str(home))
        path = weights_file(get_model_weights("resnet18").DEFAULT)
    path.parent.mkdir(parents=True)
    torch.save(get_model("resnet18").state_dict(), path)
    return str(home)
