"""The kinds of component, each tied to its registration hook and runtime arguments."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import attrs

from cvkit.errors import UnknownComponentError


@attrs.frozen
class Kind:
    """One kind of component.

    ``runtime`` arguments are supplied by the engine when it builds the component and every
    factory of the kind must accept them; ``context`` keywords (the kind's own, and
    :data:`SHARED_CONTEXT`) are passed only to factories that declare them. Neither is a
    recipe parameter.
    """

    name: str
    hook: str
    summary: str
    runtime: tuple[str, ...] = ()
    context: tuple[str, ...] = ()

    @property
    def reserved(self) -> tuple[str, ...]:
        """Factory parameter names that are not recipe parameters."""
        return self.runtime + self.context + SHARED_CONTEXT


SHARED_CONTEXT = ("registry",)
"""Context keywords of every kind: a factory declaring ``registry`` receives the registry
that builds it (to build nested components or trained models)."""


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "model",
            "register_models",
            "image classifiers",
            ("num_classes", "in_channels"),
            ("load_weights",),
        ),
        Kind("attention", "register_attention", "attention blocks", ("channels",)),
        Kind("augmentation", "register_augmentations", "batch augmentations", (), ("num_classes",)),
        Kind("optimizer", "register_optimizers", "optimizers", ("params",)),
        Kind(
            "scheduler",
            "register_schedulers",
            "learning-rate schedulers",
            ("optimizer",),
            ("epochs", "steps_per_epoch"),
        ),
        Kind("loss", "register_losses", "training losses"),
        Kind("dataset", "register_datasets", "datasets"),
        Kind("callback", "register_callbacks", "training callbacks"),
        Kind("procedure", "register_procedures", "training procedures (how a stage trains)"),
    )
}


def get_kind(name: str) -> Kind:
    """The kind called ``name`` (a trailing plural ``s`` is accepted: ``models``)."""
    for candidate in (name, name.removesuffix("s")):
        if candidate in KINDS:
            return KINDS[candidate]
    raise UnknownComponentError(
        f"unknown component kind {name!r}{did_you_mean(name, KINDS)}; kinds: {', '.join(KINDS)}"
    )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
