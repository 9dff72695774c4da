"""Optimizer parameter groups chosen by rule: the ``groups`` key of every optimizer table.

Each group is a table of *selectors*, which say which parameters it takes, and *options*,
which override the optimizer's settings for them (``lr``, ``weight_decay``, ``momentum``,
... any parameter of the optimizer)::

    [optimizer]
    name = "sgd"
    lr = 0.1
    weight_decay = 5e-4
    groups = [
        { name = "no_decay", norm = true, weight_decay = 0.0 },
        { name = "no_decay_bias", params = ["*.bias"], weight_decay = 0.0 },
        { name = "filters", ndim = 4, optimizer = { name = "muon", lr = 0.02 } },
    ]

Selectors (a parameter joins a group when it matches every selector the group gives):

- ``params``: name patterns as in ``model.freeze`` (fnmatch on the dotted name and on every
  module prefix of it);
- ``ndim``: the number of dimensions, or a list of them (4: convolution filters, 2: linear
  weights, 1: biases and norm weights);
- ``norm``: true for the parameters of normalization layers (batch, group, layer, instance
  norm), false for all others.

Each parameter joins the first group it matches; the rest form the group ``default`` with the
table's own settings. A group may name its own ``optimizer`` (a component table): its
parameters are then updated by that optimizer (with the group's options over that table's),
e.g. Muon for filters and SGD for the rest; the optimizers step one after the other as one
:class:`GroupedOptimizer`, whose ``param_groups`` list all groups, so one learning-rate
schedule drives them all, each group keeping its own base rate. Every param group carries its
``name`` (schedules may treat named groups differently). A group that selects no parameter
is an error, as is an option the optimizer does not have.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import nn

from cvkit.errors import CvkitError
from cvkit.models.freezing import selects

SELECTORS = ("params", "ndim", "norm")
"""The keys of a group table that choose its parameters."""

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
"""Module types whose parameters ``norm = true`` selects (instance norm derives from _NormBase)."""


@attrs.frozen
class GroupRule:
    """One group table, validated: its name, selectors, options and own optimizer table."""

    name: str
    params: tuple[str, ...] = ()
    ndim: tuple[int, ...] = ()
    norm: bool | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    optimizer: Mapping[str, Any] | str | None = None

    def matches(self, name: str, parameter: nn.Parameter, in_norm: bool) -> bool:
        """Whether the parameter ``name`` (of a normalization layer when ``in_norm``) joins this group."""
        if self.params and not any(selects(pattern, name) for pattern in self.params):
            return False
        if self.ndim and parameter.ndim not in self.ndim:
            return False
        return self.norm is None or self.norm == in_norm


def parse_groups(tables: Sequence[Mapping[str, Any]], where: str) -> list[GroupRule]:
    """The rules of ``optimizer.groups`` (``where`` names the key in errors)."""
    rules = []
    for i, table in enumerate(tables):
        key = f"{where}[{i}]"
        if not isinstance(table, Mapping):
            raise CvkitError(f"{key}: expected a table, got {table!r}")
        table = dict(table)
        name = table.pop("name", f"group{i}")
        if not isinstance(name, str) or not name or name == "default":
            raise CvkitError(f"{key}.name: expected a name other than 'default', got {name!r}")
        if not any(s in table for s in SELECTORS):
            raise CvkitError(
                f"{key}: select parameters with at least one of {', '.join(SELECTORS)}"
            )
        params = table.pop("params", ())
        params = [params] if isinstance(params, str) else params
        if not isinstance(params, list | tuple) or not all(isinstance(p, str) for p in params):
            raise CvkitError(f"{key}.params: expected name patterns, got {params!r}")
        ndim = table.pop("ndim", ())
        ndim = [ndim] if isinstance(ndim, int) else ndim
        if not isinstance(ndim, list | tuple) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in ndim
        ):
            raise CvkitError(f"{key}.ndim: expected a number of dimensions or a list, got {ndim!r}")
        norm = table.pop("norm", None)
        if norm is not None and not isinstance(norm, bool):
            raise CvkitError(f"{key}.norm: expected true or false, got {norm!r}")
        optimizer = table.pop("optimizer", None)
        rules.append(GroupRule(name, tuple(params), tuple(ndim), norm, table, optimizer))
    names = [rule.name for rule in rules]
    for name in names:
        if names.count(name) > 1:
            raise CvkitError(f"{where}: group names must be unique: {name!r} repeated")
    return rules


def assign_parameters(
    model: nn.Module, rules: Sequence[GroupRule], where: str
) -> tuple[list[list[nn.Parameter]], list[nn.Parameter]]:
    """The parameters of each rule's group (first match wins) and the rest (the default group)."""
    in_norm = {id(p) for m in model.modules() if isinstance(m, NORM_LAYERS) for p in m.parameters()}
    chosen: list[list[nn.Parameter]] = [[] for _ in rules]
    rest = []
    for name, parameter in model.named_parameters():
        for i, rule in enumerate(rules):
            if rule.matches(name, parameter, id(parameter) in in_norm):
                chosen[i].append(parameter)
                break
        else:
            rest.append(parameter)
    for i, (rule, params) in enumerate(zip(rules, chosen, strict=True)):
        if not params:
            raise CvkitError(
                f"{where}[{i}] ({rule.name}) selects no parameter of the model "
                "(an earlier group may have taken them: each parameter joins the first it matches)"
            )
    return chosen, rest


class GroupedOptimizer(torch.optim.Optimizer):
    """Several optimizers over disjoint parameters, stepped one after the other as one.

    ``param_groups`` is every optimizer's groups in order (learning-rate schedulers, gradient
    clipping and scalers act on all of them); ``state_dict`` holds each optimizer's.
    ``requires_closure`` is refused: such optimizers (SAM) cannot share a step.
    """

    def __init__(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        # Optimizer.__init__ would rebuild the groups; the inner optimizers own them.
        self.optimizers = list(optimizers)
        self.defaults = {}

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    @property
    def state(self) -> Any:  # type: ignore[override]
        """Every inner optimizer's per-parameter state (parameters are disjoint)."""
        return {p: s for optimizer in self.optimizers for p, s in optimizer.state.items()}

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for optimizer in self.optimizers:
            optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = state_dict["optimizers"]
        if len(states) != len(self.optimizers):
            raise CvkitError(
                f"the saved optimizer state has {len(states)} optimizers, this one {len(self.optimizers)}"
            )
        for optimizer, state in zip(self.optimizers, states, strict=True):
            optimizer.load_state_dict(state)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.optimizers[0].add_param_group(param_group)

    def __repr__(self) -> str:
        return f"GroupedOptimizer({', '.join(type(o).__name__ for o in self.optimizers)})"
