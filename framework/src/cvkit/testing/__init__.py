"""Testing support for cvkit and its plugins.

- Contract checks (:mod:`cvkit.testing.contracts`, re-exported here): ``check_<kind>`` for
  each kind of component and :func:`contract_cases` over a registry; they need hypothesis
  (``pip install 'cvkit[testing]'``).
- Fixtures (:mod:`cvkit.testing.fixtures`), a pytest plugin registered through the
  ``pytest11`` entry point, so they are available in any test once cvkit is installed:
  ``registry``, ``run_cli``, ``tiny_recipe`` and ``clean_plugin_env``.
- Faults (:mod:`cvkit.testing.faults`): callbacks that interrupt, terminate, kill or
  poison a run at a chosen batch (a plugin with ``CVKIT_PLUGINS=cvkit.testing.faults``),
  for tests of commands that stop and continue: ``fault_callbacks``,
  ``cvkit_with_faults``, ``stopped_and_continued``.

Names are imported on first use, so pytest can load the fixtures without hypothesis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cvkit.testing.contracts import (
        CHECKS as CHECKS,
        ContractCase as ContractCase,
        check_attention as check_attention,
        check_augmentation as check_augmentation,
        check_callback as check_callback,
        check_dataset as check_dataset,
        check_loss as check_loss,
        check_model as check_model,
        check_optimizer as check_optimizer,
        check_per_sample_reproducible as check_per_sample_reproducible,
        check_procedure as check_procedure,
        check_scheduler as check_scheduler,
        contract_cases as contract_cases,
        feature_maps as feature_maps,
        image_batches as image_batches,
        per_sample_outputs as per_sample_outputs,
        targets as targets,
        train_least_squares as train_least_squares,
    )
    from cvkit.testing.faults import (
        cvkit_with_faults as cvkit_with_faults,
        fault_callbacks as fault_callbacks,
        stopped_and_continued as stopped_and_continued,
    )
    from cvkit.testing.fixtures import TINY_RECIPE as TINY_RECIPE

_EXPORTS = {
    **dict.fromkeys(
        (
            "CHECKS",
            "ContractCase",
            "check_attention",
            "check_augmentation",
            "check_callback",
            "check_dataset",
            "check_loss",
            "check_model",
            "check_optimizer",
            "check_per_sample_reproducible",
            "check_procedure",
            "check_scheduler",
            "contract_cases",
            "feature_maps",
            "image_batches",
            "per_sample_outputs",
            "targets",
            "train_least_squares",
        ),
        "cvkit.testing.contracts",
    ),
    "TINY_RECIPE": "cvkit.testing.fixtures",
    **dict.fromkeys(
        ("cvkit_with_faults", "fault_callbacks", "stopped_and_continued"), "cvkit.testing.faults"
    ),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cvkit.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
