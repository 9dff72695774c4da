"""cvkit plugin: CutMix and the MixUp/CutMix switch, registered as ``augmentation/cutmix``
and ``augmentation/mixup_cutmix``."""

from __future__ import annotations

from cvkit import Register, hookimpl
from cvkit_cutmix.cutmix import CutMix, MixUpOrCutMix

__all__ = ["CutMix", "MixUpOrCutMix"]


@hookimpl
def register_augmentations(register: Register) -> None:
    register("cutmix", CutMix, examples=[{}, {"alpha": 0.5, "p": 0.5}])
    register(
        "mixup_cutmix",
        MixUpOrCutMix,
        examples=[{}, {"mixup_alpha": 0.2, "cutmix_alpha": 1.0, "switch_prob": 0.3, "p": 0.8}],
    )
