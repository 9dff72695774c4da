"""cvkit-snapshot-ensembles: restarts at cycle ends, a snapshot per cycle, soft voting."""

from __future__ import annotations

import json

import pytest
import torch

from cvkit import train
from cvkit.testing import TINY_RECIPE
from cvkit_snapshot_ensembles import cosine_restarts


def test_the_rate_restarts_at_every_cycle_end() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = cosine_restarts(optimizer, epochs=6, steps_per_epoch=4, cycles=3)
    rates = []
    for _ in range(24):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert [i for i, r in enumerate(rates) if r == pytest.approx(0.1)] == [0, 8, 16]
    assert all(rates[i + 1] < rates[i] for i in range(7))  # a cosine fall within a cycle
    with pytest.raises(ValueError, match="divide the 6 epochs"):
        cosine_restarts(optimizer, epochs=6, steps_per_epoch=4, cycles=4)


def test_a_run_saves_one_snapshot_per_cycle_and_eval_soft_votes_them(
    tmp_path, registry, run_cli
) -> None:
    recipe = tmp_path / "snap.toml"
    text = TINY_RECIPE.format(runs=tmp_path.as_posix())
    text = text.replace("epochs = 3", "epochs = 4").replace(
        '[scheduler]\nname = "cosine"', '[scheduler]\nname = "cosine_restarts"\ncycles = 2'
    )
    recipe.write_text(text + '\n[[callbacks]]\nname = "snapshot"\ncycles = 2\n')
    run = train(recipe, output=tmp_path / "run", registry=registry).run_dir
    snapshots = sorted((run / "snapshots").glob("*.pt"))
    assert [p.name for p in snapshots] == ["epoch-2.pt", "epoch-4.pt"]
    result = run_cli("eval", "--ensemble", str(run / "snapshots"), "--json")
    assert result.exit_code == 0, result.output
    evaluation = json.loads(result.stdout)
    assert evaluation["members"] == [str(p) for p in snapshots]
    assert evaluation["val"]["samples"] == 16 and evaluation["calibration"]["temperature"] > 0
    alone = run_cli("eval", str(run / "snapshots"))
    assert alone.exit_code == 2 and "add --ensemble" in alone.output
