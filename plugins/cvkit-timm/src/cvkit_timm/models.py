"""``model/timm``: any timm model by name, with timm's own head and input adaptation."""

from __future__ import annotations

import difflib
from pathlib import Path

from torch import nn


def timm_model(
    num_classes: int,
    in_channels: int,
    arch: str,
    pretrained: bool = False,
    weights_path: Path | None = None,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
    load_weights: bool = True,
) -> nn.Module:
    """A timm model by name (``timm.create_model``), for ``num_classes`` classes and
    ``in_channels`` input channels. Input (N, in_channels, H, W) float at a size the
    architecture accepts (most: any; ViTs: their image size); output logits (N,
    num_classes). timm replaces the classifier for ``num_classes`` and adapts the first
    convolution for ``in_channels`` (pretrained RGB kernels summed or repeated).

    Args:
        arch: a name from ``timm.list_models()``, e.g. 'resnet50.a1_in1k', 'convnext_tiny',
            'efficientnet_b0'; a pretrained tag after the dot picks those weights.
        pretrained: load timm's pretrained weights for ``arch``, downloaded from the
            Hugging Face Hub into its cache (HF_HOME, default ~/.cache/huggingface).
        weights_path: load timm's pretrained weights for ``arch`` from this local file (a
            state dict or .safetensors, as the Hub has them) instead of downloading; as with
            ``pretrained``, its classifier is replaced when ``num_classes`` differs from the
            weights' (1,000 for ImageNet).
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth rate, for the architectures that have it.
        load_weights: False: the architecture only (cvkit check, or weights restored from a
            checkpoint), nothing downloaded or read.
    """
    import timm

    architecture = arch.split(".", 1)[0]
    known = timm.list_models()
    if architecture not in known:
        close = difflib.get_close_matches(architecture, known, n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise ValueError(
            f'timm has no model {arch!r}{hint}; `python -c "import timm; '
            f"print(timm.list_models('*{architecture[:6]}*'))\"` lists the names"
        )
    if pretrained and weights_path is not None:
        raise ValueError("give pretrained or weights_path, not both")
    overlay = {"file": str(weights_path)} if weights_path is not None else None
    use_weights = load_weights and (pretrained or weights_path is not None)
    try:
        return timm.create_model(
            arch,
            pretrained=use_weights,
            pretrained_cfg_overlay=overlay,
            num_classes=num_classes,
            in_chans=in_channels,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
        )
    except (OSError, RuntimeError) as error:
        if not use_weights:
            raise
        if weights_path is not None:
            raise ValueError(
                f"weights_path {weights_path}: cannot load it into {arch} ({error})"
            ) from None
        from timm.models import get_pretrained_cfg

        source = getattr(get_pretrained_cfg(arch), "hf_hub_id", None) or "the Hugging Face Hub"
        raise ValueError(
            f"cannot download timm's pretrained weights for {arch} from {source} "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); offline, put them "
            "in the Hugging Face cache (HF_HOME, default ~/.cache/huggingface, e.g. with "
            "`huggingface-cli download` on a connected machine) or set weights_path to a local "
            "copy of the weights file"
        ) from None
