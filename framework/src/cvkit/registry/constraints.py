"""What inputs an attention block accepts, declared when it is registered.

The attention contract asks a block to take any (N, C, H, W); many published blocks do not
(channels a multiple of their heads or groups, sizes a multiple of a block size, a fixed
feature size). A plugin declares that as data::

    register("timm_halo", HaloAttn, runtime={"channels": "dim"},
             constraints={"channels_multiple_of": "num_heads", "size_multiple_of": "block_size"})

Each value is an int, or the name of one of the block's parameters whose value (the
recipe's, else its default) it is; a callable of the parameters returning such a mapping
covers the rest. The contract tests draw inputs within the constraints; ``cvkit check`` and
the start of ``cvkit run`` hold each block's input in the model against them and name the
block, its input and the constraint it breaks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

ConstraintValue = int | str | tuple[int, int] | list[int] | None
Declared = Mapping[str, ConstraintValue] | Callable[[Mapping[str, Any]], Mapping[str, Any]]

KEYS = ("channels_multiple_of", "min_channels", "size_multiple_of", "min_size", "fixed_size")


@attrs.frozen
class AttentionConstraints:
    """The inputs (N, C, H, W) a block takes: C a multiple of ``channels_multiple_of`` and at
    least ``min_channels``; H and W multiples of ``size_multiple_of`` and at least
    ``min_size``; (H, W) equal to ``fixed_size`` when it is set. ``sources``: constraint ->
    the parameter it came from."""

    channels_multiple_of: int = 1
    min_channels: int = 1
    size_multiple_of: int = 1
    min_size: int = 1
    fixed_size: tuple[int, int] | None = None
    sources: Mapping[str, str] = attrs.field(factory=dict, eq=False)

    def violations(self, shape: tuple[int, ...]) -> list[str]:
        """What an input of ``shape`` (N, C, H, W) breaks, one phrase each."""
        _, channels, height, width = shape
        found = [v for v in (self.channel_violation(channels),) if v]
        if self.fixed_size is not None and (height, width) != tuple(self.fixed_size):
            found.append(f"its size {height}x{width} is not {self._named('fixed_size')}")
        if height % self.size_multiple_of or width % self.size_multiple_of:
            found.append(
                f"its size {height}x{width} is not a multiple of {self._named('size_multiple_of')}"
            )
        if min(height, width) < self.min_size:
            found.append(f"its size {height}x{width} is below {self._named('min_size')}")
        return found

    def _named(self, key: str) -> str:
        value = getattr(self, key)
        shown = "x".join(map(str, value)) if key == "fixed_size" else str(value)
        source = self.sources.get(key)
        return f"{shown} ({source})" if source else shown

    def __str__(self) -> str:
        parts = [f"{key}={self._named(key)}" for key in KEYS if self._set(key)]
        return ", ".join(parts) or "none"

    def _set(self, key: str) -> bool:
        return getattr(self, key) is not None if key == "fixed_size" else getattr(self, key) != 1

    def channel_violation(self, channels: int) -> str | None:
        """Why a block cannot be built for ``channels``, or None."""
        if channels % self.channels_multiple_of:
            return (
                f"{channels} channels are not a multiple of {self._named('channels_multiple_of')}"
            )
        if channels < self.min_channels:
            return f"{channels} channels are fewer than {self._named('min_channels')}"
        return None

    @property
    def declared(self) -> bool:
        """Whether the block accepts less than every input."""
        return self != AttentionConstraints()

    def probe(self, shape: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """``shape`` (N, C, H, W) moved to the nearest input the block takes: C and the sizes
        raised to their minima and rounded up to their multiples, the fixed size where there
        is one."""
        batch, channels, height, width = shape
        channels = _round_up(max(channels, self.min_channels), self.channels_multiple_of)
        if self.fixed_size is not None:
            height, width = self.fixed_size
        else:
            height, width = (
                _round_up(max(size, self.min_size), self.size_multiple_of)
                for size in (height, width)
            )
        return batch, channels, height, width


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def check_declared(declared: Declared | None, parameter_names: set[str], where: str) -> None:
    """At registration: a mapping's keys are :data:`KEYS` and its parameter names exist
    (TypeError naming ``where`` otherwise)."""
    if declared is None or callable(declared):
        return
    unknown = sorted(set(declared) - set(KEYS))
    if unknown:
        raise TypeError(
            f"{where}: unknown constraints {', '.join(unknown)}; valid: {', '.join(KEYS)}"
        )
    for key, value in declared.items():
        if isinstance(value, str) and value not in parameter_names:
            raise TypeError(f"{where}: constraint {key} names {value!r}, which is not a parameter")


def resolve(declared: Declared | None, params: Mapping[str, Any]) -> AttentionConstraints:
    """The constraints of a block built with ``params`` (its recipe parameters, defaults
    filled in)."""
    if declared is None:
        return AttentionConstraints()
    mapping = declared(params) if callable(declared) else declared
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, value in mapping.items():
        if isinstance(value, str):
            sources[key] = f"{value} = {params.get(value)!r}"
            value = params.get(value)
        if value is None:
            continue
        if key == "fixed_size":
            value = (value, value) if isinstance(value, int) else tuple(value)
        values[key] = value
    return AttentionConstraints(**values, sources=sources)
