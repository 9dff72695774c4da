"""``callback/mlflow``: a cvkit run as an MLflow run."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

from cvkit import Callback, Priority, TrainerView, dump_recipe, flat_settings

log = logging.getLogger("cvkit")

MAX_PARAM_LENGTH = 6000
"""MLflow's limit on a parameter value (characters); longer values are cut with '...'."""


class MLflowLogger(Callback):
    """Logs the run to MLflow: the resolved recipe's settings as parameters (dotted keys,
    e.g. ``optimizer.lr``), every epoch's metrics (``train/loss``, ``val/acc``, ``lr``, ...)
    at the optimizer step they end on, the training loss and learning rate every
    ``log_every`` steps (``step/loss``, ``step/lr``), the final evaluation's accuracies,
    losses and macro-F1 (``final/val/top1``, ...), and as artifacts eval.json, the best
    checkpoint and a report folder when the run has one. The MLflow run is tagged with the
    run directory (``cvkit.run_dir``); a resumed cvkit run continues its MLflow run.

    Args:
        tracking_uri: where MLflow stores runs, e.g. 'sqlite:///mlflow.db', a server
            'http://host:5000' (none: MLflow's own default, or MLFLOW_TRACKING_URI).
        experiment: the MLflow experiment (none: the recipe's experiment.name).
        artifact_location: where a new experiment keeps its artifacts (none: next to a
            local SQLite store, in its folder's mlartifacts/; else MLflow's default).
        log_every: optimizer steps between step/loss and step/lr (0: per epoch only);
            each one waits for the device once.
        log_checkpoint: upload checkpoints/best.pt (else last.pt) at the end.
    """

    priority = Priority.HIGH
    main_process_only = True  # rank 0 alone writes in a run of several processes

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        artifact_location: str | None = None,
        log_every: int = 50,
        log_checkpoint: bool = True,
    ) -> None:
        if log_every < 0:
            raise ValueError(f"log_every={log_every} must be >= 0")
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.artifact_location = artifact_location
        self.log_every, self.log_checkpoint = log_every, log_checkpoint
        self.run_id: str | None = None
        self._client: Any = None

    def on_fit_start(self, trainer: TrainerView) -> None:
        import mlflow

        if self.tracking_uri:
            mlflow.set_tracking_uri(self.tracking_uri)
        recipe = trainer.recipe
        name = self.experiment or (recipe.experiment.name if recipe is not None else "cvkit")
        if mlflow.get_experiment_by_name(name) is None:
            mlflow.create_experiment(name, artifact_location=self._artifact_location())
        mlflow.set_experiment(name)
        run_dir = Path(trainer.run_dir) if trainer.run_dir else None
        resumed = self.run_id is not None
        active = mlflow.start_run(
            run_id=self.run_id, run_name=None if resumed else (run_dir.name if run_dir else None)
        )
        self.run_id = active.info.run_id
        if not resumed:
            mlflow.set_tag("cvkit.run_dir", str(run_dir) if run_dir else "")
            if recipe is not None:
                settings = flat_settings(tomllib.loads(dump_recipe(recipe)))
                params = {key: _param(value) for key, value in settings.items()}
                mlflow.log_params(params)
        log.info(
            "mlflow: run %s in experiment %s at %s", self.run_id, name, mlflow.get_tracking_uri()
        )

    def _artifact_location(self) -> str | None:
        """``artifact_location``, else mlartifacts/ beside a local SQLite store (MLflow
        would put them in ./mlruns of whatever the working directory is)."""
        if self.artifact_location or not (self.tracking_uri or "").startswith("sqlite:///"):
            return self.artifact_location
        database = Path(str(self.tracking_uri).removeprefix("sqlite:///"))
        return (database.absolute().parent / "mlartifacts").as_uri()

    def on_batch_end(self, trainer: TrainerView) -> None:
        if not self.log_every or trainer.step % self.log_every or trainer.batch_loss is None:
            return
        import mlflow

        lr = float(trainer.optimizer.param_groups[0]["lr"])
        mlflow.log_metrics(
            {"step/loss": float(trainer.batch_loss), "step/lr": lr}, step=trainer.step
        )

    def on_epoch_end(self, trainer: TrainerView) -> None:
        import mlflow

        metrics = {k: float(v) for k, v in trainer.metrics.items() if isinstance(v, int | float)}
        mlflow.log_metrics(metrics | {"epoch": float(trainer.epoch)}, step=trainer.step)

    def on_evaluation_end(self, trainer: TrainerView) -> None:
        import mlflow

        evaluation = trainer.evaluation or {}
        final = {
            f"final/{split}/{key}": float(evaluation[split][key])
            for split in ("val", "test")
            if evaluation.get(split)
            for key in ("top1", "top5", "loss", "macro_f1")
        }
        if final:
            mlflow.log_metrics(final, step=trainer.step)
        mlflow.log_dict(evaluation, "eval.json")
        run_dir = Path(trainer.run_dir) if trainer.run_dir else None
        if run_dir is not None:
            if self.log_checkpoint:
                for name in ("best.pt", "last.pt"):
                    checkpoint = run_dir / "checkpoints" / name
                    if checkpoint.is_file():
                        mlflow.log_artifact(str(checkpoint), "checkpoints")
                        break
            if (run_dir / "report").is_dir():
                mlflow.log_artifacts(str(run_dir / "report"), "report")
        mlflow.end_run()

    def on_exception(self, trainer: TrainerView, error: BaseException) -> None:
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.end_run(status="KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")


def _param(value: Any) -> str:
    """A parameter value as MLflow stores it: text, at most :data:`MAX_PARAM_LENGTH` long."""
    text = str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."
