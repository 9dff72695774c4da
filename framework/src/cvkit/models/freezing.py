"""Freeze and unfreeze a model's parameters by module-name patterns.

A pattern is a shell-style wildcard (``fnmatch``) matched against each parameter's dotted
name and against every module prefix of that name: ``"fc"``, ``"fc.*"`` and
``"fc.weight"`` all select ``fc.weight``; ``"layer4"`` selects everything in ``layer4``;
``"*"`` selects every parameter. A pattern that selects nothing is an error, so a typo
cannot silently leave a model unfrozen.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from torch import nn

from cvkit.errors import CvkitError


def selects(pattern: str, name: str) -> bool:
    """Whether ``pattern`` selects the parameter ``name`` (see the module's docstring)."""
    parts = name.split(".")
    return any(fnmatch.fnmatchcase(".".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))


def selected_parameters(model: nn.Module, pattern: str, where: str) -> list[nn.Parameter]:
    """The parameters of ``model`` that ``pattern`` selects; raises when there are none.

    ``where`` names the recipe key for the error message (e.g. ``model.freeze``).
    """
    chosen = [p for name, p in model.named_parameters() if selects(pattern, name)]
    if not chosen:
        modules = ", ".join(name for name, _ in model.named_children())
        raise CvkitError(
            f"{where}: {pattern!r} selects no parameter of the model (its top-level modules: {modules})"
        )
    return chosen


def set_trainable(model: nn.Module, patterns: Sequence[str], trainable: bool, where: str) -> int:
    """Set ``requires_grad`` of the parameters the patterns select; returns how many tensors changed."""
    changed = 0
    for pattern in patterns:
        for parameter in selected_parameters(model, pattern, where):
            changed += parameter.requires_grad != trainable
            parameter.requires_grad_(trainable)
    return changed


def apply_freezing(
    model: nn.Module, freeze: Sequence[str], trainable: Sequence[str], where: str = "model"
) -> None:
    """Freeze the parameters ``freeze`` selects, then make those ``trainable`` selects trainable.

    ``freeze = ["*"], trainable = ["fc"]`` trains only the classifier. Frozen parameters keep
    ``requires_grad = False``; BatchNorm layers still use batch statistics in training mode.
    """
    set_trainable(model, freeze, False, f"{where}.freeze")
    set_trainable(model, trainable, True, f"{where}.trainable")
