"""cvkit plugin: scikit-learn's handwritten digits, registered as ``dataset/digits``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_digits.digits import Digits

__all__ = ["Digits"]


@hookimpl
def register_datasets(register: Register) -> None:
    register("digits", Digits, examples=[{}, {"test_fraction": 0.5, "seed": 3}])
