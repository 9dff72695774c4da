"""``cvkit predict``: classes of images from a folder, an array file or a pickle, as CSV."""

from __future__ import annotations

import csv
import io
import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torchvision.datasets.folder import IMG_EXTENSIONS

from cvkit.data.batches import evaluation_loader
from cvkit.data.images import as_image_batch, decode_image_file, resize
from cvkit.data.tensors import ImageTensors
from cvkit.engine.build import build_augmentations
from cvkit.engine.device import AUTOCAST_DTYPES, resolve_device
from cvkit.engine.metrics import collect_logits
from cvkit.engine.trained_model import restore
from cvkit.errors import CvkitError, DatasetError, short_reason
from cvkit.files import check_writable, write_text_atomic
from cvkit.registry.loading import default_registry
from cvkit.registry.registry import Registry

LabelFormat = Literal["name", "index"]
LABEL_FORMATS: tuple[LabelFormat, ...] = ("name", "index")
"""How ``cvkit predict`` writes a label: the class name, or the class index."""

PICKLE_GLOBALS = frozenset(
    {
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles (Python 2's, as CIFAR's)
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        *(
            (module, name)
            for module in ("numpy.core.multiarray", "numpy._core.multiarray")
            for name in ("_reconstruct", "scalar")
        ),
        *((module, "_frombuffer") for module in ("numpy.core.numeric", "numpy._core.numeric")),
    }
)
"""The only globals a pickle given to ``cvkit predict`` may name: containers, numbers,
strings and bytes need none; numpy arrays, dtypes and scalars need these."""


class RestrictedUnpickler(pickle.Unpickler):
    """Loads dicts, lists, tuples, str/bytes/numbers, numpy arrays, dtypes and scalars, and
    refuses every other class or function (a pickle can name any callable, and loading it
    calls it: ``os.system`` included), as torch's weights-only loader does for checkpoints."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in PICKLE_GLOBALS:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: a pickle input may hold only arrays, "
                "lists, dicts, strings and numbers"
            )
        return super().find_class(module, name)


def _read_array_file(path: Path) -> Any:
    """What an .npy, .pt or .pkl file holds, read without running code from it."""
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".pt", ".pkl", ".pickle"):
        raise DatasetError(f"{path}: expected an image folder, .npy, .pt or .pkl file")
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".pt":
            return torch.load(path, map_location="cpu", weights_only=True)
        with path.open("rb") as stream:
            return RestrictedUnpickler(stream, encoding="bytes").load()
    except pickle.UnpicklingError as error:
        if str(error).startswith("refused to load"):
            raise DatasetError(f"{path}: {error}") from None
        raise DatasetError(f"{path}: not a readable pickle ({short_reason(error)})") from None
    except Exception as error:  # any unreadable file is reported the same way
        raise DatasetError(
            f"{path}: not a readable {suffix} file ({short_reason(error)})"
        ) from None


def read_inputs(path: Path, channels: int) -> tuple[torch.Tensor | list[torch.Tensor], list[str]]:
    """Images to predict and their ids, from an image folder, a .npy/.pt array or a pickle.

    A folder gives one image per file (ids: paths relative to it); an array gives ids
    0..N-1; a pickle holds an array or a dict with ``data`` and optional ``ids`` (keys as
    str or bytes, as in ``cifar_test_nolabel.pkl``). A pickle is read by
    :class:`RestrictedUnpickler`: nothing in it runs.
    """
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS
        )
        if not files:
            raise DatasetError(f"{path}: no image files ({', '.join(IMG_EXTENSIONS)})")
        return [decode_image_file(f, channels) for f in files], [
            str(f.relative_to(path)) for f in files
        ]
    if not path.is_file():
        raise DatasetError(f"input not found: {path}")
    array = _read_array_file(path)
    ids: list[str] | None = None
    if isinstance(array, dict):
        table = {k.decode() if isinstance(k, bytes) else str(k): v for k, v in array.items()}
        if "data" not in table:
            raise DatasetError(f"{path}: a dict input needs a 'data' key (has {', '.join(table)})")
        if "ids" in table:
            ids = [
                i.decode() if isinstance(i, bytes) else str(i)
                for i in np.asarray(table["ids"]).reshape(-1).tolist()
            ]
        array = table["data"]
    images = as_image_batch(array, channels, str(path))
    if images.shape[0] == 0:
        raise DatasetError(f"{path}: holds no images")
    ids = ids if ids is not None else [str(i) for i in range(images.shape[0])]
    if len(ids) != images.shape[0]:
        raise DatasetError(f"{path}: {len(ids)} ids for {images.shape[0]} images")
    return images, ids


@torch.no_grad()
def predict(
    source: Path,
    inputs: Path,
    out: Path,
    *,
    probabilities: bool = False,
    labels: LabelFormat = "name",
    overwrite: bool = False,
    registry: Registry | None = None,
) -> int:
    """Write ``id,label`` (and one probability column per class) for every input image to
    ``out``; returns the number of rows. ``labels``: 'name' writes class names, 'index' the
    class indices 0..K-1 in the order of the checkpoint's classes (as CIFAR's pickles
    number them). Images are resized to the training images' size if needed, then batched
    as evaluation batches are (``data.image_size``, ``augment.eval``)."""
    if labels not in LABEL_FORMATS:
        raise CvkitError(f"labels={labels!r}: expected one of {', '.join(LABEL_FORMATS)}")
    check_writable(out, "--out", overwrite=overwrite)
    registry = registry or default_registry()
    trained = restore(source, registry)
    recipe, classes = trained.recipe, trained.classes
    device = resolve_device(recipe.experiment.device)
    images, ids = read_inputs(inputs, trained.checkpoint["in_channels"])
    size = trained.checkpoint["image_size"]
    batch = (
        torch.stack([resize(image, size) for image in images])
        if isinstance(images, list)
        else resize(images, size)
    )
    unlabelled = ImageTensors(batch, torch.zeros(len(batch), dtype=torch.int64), tuple(classes))
    augment = build_augmentations(recipe.augment.eval, registry, len(classes))
    loader = evaluation_loader(unlabelled, recipe.data, device=device, augmentations=augment)
    model = trained.model.to(device)
    logits, _ = collect_logits(model, loader, device, AUTOCAST_DTYPES[recipe.experiment.precision])
    _write_csv(out, ids, logits.softmax(1), classes, probabilities, labels)
    return len(ids)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""Cell starts that spreadsheets read as a formula (OWASP's CSV injection list)."""


def safe_cell(text: str) -> str:
    """``text`` made inert for spreadsheets: a leading ' when it starts like a formula."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _write_csv(
    out: Path,
    ids: list[str],
    probs: torch.Tensor,
    classes: list[str],
    probabilities: bool,
    labels: LabelFormat,
) -> None:
    """Rows ``id,label`` (+ ``p_<class>`` columns) for ``probs`` (N, K), written atomically;
    the label is the class name or its index (``labels``); ids and class names are made
    inert for spreadsheets (see :func:`safe_cell`)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    names = [safe_cell(c) for c in classes]
    writer.writerow(
        ["id", "label", *(f"p_{c}" for c in names)] if probabilities else ["id", "label"]
    )
    for image_id, p in zip(ids, probs, strict=True):
        index = int(p.argmax())
        row = [safe_cell(image_id), names[index] if labels == "name" else str(index)]
        writer.writerow(row + [f"{float(v):.6f}" for v in p] if probabilities else row)
    write_text_atomic(out, buffer.getvalue())
