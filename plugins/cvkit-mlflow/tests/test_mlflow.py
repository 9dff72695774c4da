"""callback/mlflow against a real MLflow tracking store (SQLite), read back with its client."""

from __future__ import annotations

import json
from pathlib import Path

from cvkit.testing import TINY_RECIPE


def test_a_run_logs_params_metrics_and_artifacts_to_mlflow(tmp_path: Path, run_cli) -> None:
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(runs=(tmp_path / "runs").as_posix()))
    callbacks = (
        f'callbacks=[{{ name = "mlflow", tracking_uri = "{store}", log_every = 2 }}, '
        '{ name = "metrics_jsonl" }, { name = "checkpoint" }]'
    )
    run_dir = tmp_path / "run"
    result = run_cli("run", str(recipe), "--set", callbacks, "--output", str(run_dir))
    assert result.exit_code == 0, result.output

    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("tiny")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["cvkit.run_dir"] == str(run_dir)
    assert (
        run.data.params["optimizer.lr"] == "0.05" and run.data.params["model.name"] == "simple_cnn"
    )
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(e["step"], e["train/loss"]) for e in epochs]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "step/loss")] == list(
        range(2, 16, 2)
    )
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert run.data.metrics["final/test/top1"] == evaluation["test"]["top1"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"eval.json", "checkpoints"} <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == [
        "checkpoints/best.pt"
    ]
