"""``cvkit predict``: classes of images from a folder, an array file or a pickle, as CSV or
JSON, from one model or a soft-voting ensemble, with test-time augmentation."""

from __future__ import annotations

import csv
import io
import json
import logging
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torchvision.datasets.folder import IMG_EXTENSIONS

from cvkit.commands.evaluate import (
    Member,
    check_classes,
    load_member,
    member_paths,
    soft_vote,
)
from cvkit.data.images import as_image_batch, decode_image_file, resize
from cvkit.data.tensors import ImageTensors
from cvkit.engine.device import resolve_device
from cvkit.engine.tta import check_tta
from cvkit.errors import CvkitError, DatasetError, short_reason
from cvkit.files import check_writable, json_text, write_text_atomic
from cvkit.progress import Meter
from cvkit.registry.loading import default_registry
from cvkit.registry.registry import Registry

log = logging.getLogger("cvkit")

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
        raise DatasetError(f"{path}: expected an image file or folder, .npy, .pt or .pkl file")
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


OutputFormat = Literal["csv", "json", "jsonl"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("csv", "json", "jsonl")

CHUNK_IMAGES = 2048
"""Images decoded, predicted and written at a time: a large folder never sits in memory."""


def input_chunks(
    path: Path, channels: int, chunk: int | None = None
) -> tuple[int, Iterator[tuple[torch.Tensor | list[torch.Tensor], list[str]]]]:
    """How many images ``path`` holds, and its images with their ids in chunks of ``chunk``:
    one image file (id: its name), an image folder (one image per file, decoded chunk by
    chunk; ids: paths relative to it),
    a .npy/.pt array (ids 0..N-1) or a pickle holding an array or a dict with ``data`` and
    optional ``ids`` (keys as str or bytes, as in ``cifar_test_nolabel.pkl``). A pickle is
    read by :class:`RestrictedUnpickler`: nothing in it runs. ``chunk``: default
    :data:`CHUNK_IMAGES`."""
    chunk = chunk or CHUNK_IMAGES
    single = path.is_file() and path.suffix.lower() in IMG_EXTENSIONS
    if path.is_dir() or single:
        files = (
            [path]
            if single
            else sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS
            )
        )
        if not files:
            raise DatasetError(f"{path}: no image files ({', '.join(IMG_EXTENSIONS)})")
        folder = path.parent if single else path

        def decoded() -> Iterator[tuple[torch.Tensor | list[torch.Tensor], list[str]]]:
            for start in range(0, len(files), chunk):
                part = files[start : start + chunk]
                yield (
                    [decode_image_file(f, channels) for f in part],
                    [str(f.relative_to(folder)) for f in part],
                )

        return len(files), decoded()
    images, ids = _read_array_input(path, channels)
    return len(ids), (
        (images[start : start + chunk], ids[start : start + chunk])
        for start in range(0, len(ids), chunk)
    )


def _read_array_input(path: Path, channels: int) -> tuple[torch.Tensor, list[str]]:
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


def _warn_about_flips(members: Sequence[Member], tta: Sequence[str]) -> None:
    """Mirrored views help a model trained on mirrored images and can hurt one that was
    not (text, digits: 6 points on the digits quickstart)."""
    if "flip" not in tta:
        return
    for member in members:
        names = [spec.name for spec in member.trained.recipe.augment.train]
        if not any("flip" in name for name in names):
            log.warning(
                "--tta flip: %s was trained without a flip augmentation (augment.train: %s); "
                "mirrored views may lower its accuracy",
                member.trained.path,
                ", ".join(names) or "none",
            )


@torch.no_grad()
def predict(
    source: Path | Sequence[Path],
    inputs: Path,
    out: Path,
    *,
    probabilities: bool = False,
    labels: LabelFormat = "name",
    overwrite: bool = False,
    registry: Registry | None = None,
    ensemble: bool = False,
    tta: Sequence[str] = (),
    topk: int = 1,
    batch_size: int | None = None,
    device: str | None = None,
    output_format: OutputFormat | None = None,
) -> int:
    """Predict every input image and write one row per image to ``out``; returns the number
    of rows.

    ``source``: a checkpoint or run directory, or with ``ensemble`` several (and snapshot
    folders, as ``cvkit eval --ensemble``), whose softmax outputs are averaged over the
    members and the weighted ``tta`` views. Rows: the id, the label (``labels``: the class
    name, or its index 0..K-1 in the order of the checkpoint's classes, as CIFAR's pickles
    number them), with ``topk`` > 1 the next labels and every one's probability, with
    ``probabilities`` one probability per class. ``output_format``: csv (default, also from
    the suffix), json (a list) or jsonl (one object per line). ``batch_size`` and ``device``
    override the recipes' ``data.eval_batch_size`` and ``experiment.device``. Images are
    resized to the first model's training size if needed, then batched as evaluation
    batches are (``data.image_size``, ``augment.eval``), :data:`CHUNK_IMAGES` at a time."""
    if labels not in LABEL_FORMATS:
        raise CvkitError(f"labels={labels!r}: expected one of {', '.join(LABEL_FORMATS)}")
    chosen = output_format or (
        "jsonl" if out.suffix == ".jsonl" else "json" if out.suffix == ".json" else "csv"
    )
    if chosen not in OUTPUT_FORMATS:
        raise CvkitError(f"--format {chosen}: expected one of {', '.join(OUTPUT_FORMATS)}")
    check_writable(out, "--out", overwrite=overwrite)
    registry = registry or default_registry()
    tta = check_tta(tta)
    paths = member_paths(source, ensemble)
    overrides = [
        *([f"data.eval_batch_size={batch_size}"] if batch_size else []),
        *([f'experiment.device="{device}"'] if device else []),
    ]
    members = [load_member(path, overrides, registry) for path in paths]
    check_classes(members)
    _warn_about_flips(members, tta)
    first = members[0].trained
    classes = first.classes
    if not 1 <= topk <= len(classes):
        raise CvkitError(f"--topk {topk}: expected 1 to {len(classes)} (the model's classes)")
    run_on = resolve_device(first.recipe.experiment.device)
    size = first.checkpoint["image_size"]
    count, chunks = input_chunks(inputs, first.checkpoint["in_channels"])
    rows: list[dict[str, Any]] = []
    with Meter("predicting", count) as meter:
        for images, ids in chunks:
            batch = (
                torch.stack([resize(image, size) for image in images])
                if isinstance(images, list)
                else resize(images, size)
            )
            unlabelled = ImageTensors(
                batch, torch.zeros(len(batch), dtype=torch.int64), tuple(classes)
            )
            logits, _ = soft_vote(members, unlabelled, run_on, tta)
            rows += _rows(ids, logits.softmax(1), classes, labels, topk, probabilities)
            meter.update(len(ids))
    write_text_atomic(out, _formatted(rows, chosen, classes, topk, probabilities))
    return len(rows)


def _rows(
    ids: list[str],
    probs: torch.Tensor,
    classes: list[str],
    labels: LabelFormat,
    topk: int,
    probabilities: bool,
) -> list[dict[str, Any]]:
    """One record per image: ``id``, ``label``, ``prob`` and the next ``topk - 1`` labels
    with their probabilities (``top``), every class's probability with ``probabilities``."""
    values, indices = probs.topk(topk, dim=1)
    rows = []
    for image_id, p, top, index in zip(
        ids, probs.tolist(), values.tolist(), indices.tolist(), strict=True
    ):
        named = [classes[i] if labels == "name" else i for i in index]
        row: dict[str, Any] = {"id": image_id, "label": named[0], "prob": round(top[0], 6)}
        if topk > 1:
            row["top"] = [
                {"label": n, "prob": round(v, 6)} for n, v in zip(named, top, strict=True)
            ]
        if probabilities:
            row["probs"] = {c: round(v, 6) for c, v in zip(classes, p, strict=True)}
        rows.append(row)
    return rows


def _formatted(
    rows: list[dict[str, Any]],
    output_format: OutputFormat,
    classes: list[str],
    topk: int,
    probabilities: bool,
) -> str:
    """``rows`` as JSON, JSON lines or CSV (``id,label`` (+ ``label_k,prob_k`` for the other
    top-k, + ``p_<class>`` columns); ids and class names made inert for spreadsheets, see
    :func:`safe_cell`)."""
    if output_format == "json":
        return json_text(rows)
    if output_format == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    names = [safe_cell(c) for c in classes]
    ranks = range(2, topk + 1)
    writer.writerow(
        [
            "id",
            "label",
            *(
                ["prob", *(f"{kind}_{k}" for k in ranks for kind in ("label", "prob"))]
                if topk > 1
                else []
            ),
            *((f"p_{c}" for c in names) if probabilities else ()),
        ]
    )
    for row in rows:
        cells = [safe_cell(row["id"]), safe_cell(str(row["label"]))]
        if topk > 1:
            cells.append(f"{row['prob']:.6f}")
            for entry in row["top"][1:]:
                cells += [safe_cell(str(entry["label"])), f"{entry['prob']:.6f}"]
        if probabilities:
            cells += [f"{v:.6f}" for v in row["probs"].values()]
        writer.writerow(cells)
    return buffer.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""Cell starts that spreadsheets read as a formula (OWASP's CSV injection list)."""


def safe_cell(text: str) -> str:
    """``text`` made inert for spreadsheets: a leading ' when it starts like a formula."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
