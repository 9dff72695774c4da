"""cvkit plugin: an MLflow tracking callback, ``callback/mlflow`` (MLflow: Zaharia et al.,
"Accelerating the Machine Learning Lifecycle with MLflow", IEEE Data Eng. Bull. 2018)."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_mlflow.tracking import MLflowLogger

__all__ = ["MLflowLogger"]


@hookimpl
def register_callbacks(register: Register) -> None:
    register("mlflow", MLflowLogger, examples=[{}, {"log_every": 10, "log_checkpoint": False}])
