"""cvkit plugin: datasets larger than memory. ``cvkit data convert`` writes an image folder
or a registered dataset as shards of encoded images (Hugging Face ``datasets``, Arrow files,
memory-mapped); ``dataset/shards`` reads them, the images decoded in the loader's worker
processes at the size the recipe trains at; ``cvkit data info`` describes a shard folder."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import click

from cvkit import DatasetError, EncodedImages, ImageTensors, Register, cli_registry, hookimpl
from cvkit_shards.layout import ShardReader, read_manifest

__all__ = ["Shards", "data_group", "register_commands", "register_datasets"]


class Shards:
    """A shard folder written by ``cvkit data convert``, read without decoding it into memory:
    each image is decoded when a batch needs it, in the loader's worker processes
    (``data.workers``), at ``image_size``.

    Args:
        root: the shard folder (cvkit data convert SOURCE ROOT).
        image_size: [height, width] every image is decoded at (antialiased resize, as
            dataset/imagefolder does; a large JPEG is decoded at a reduced scale first).
            Default: the images' own size, when they all have the same.
        channels: 3 (RGB) or 1 (greyscale).
        test_split: the stored split used as the test split (default: test, else val, else
            none).
    """

    cacheable = False  # the point is not to hold the split in memory

    def __init__(
        self,
        root: str,
        image_size: list[int] | None = None,
        channels: int = 3,
        test_split: str | None = None,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels = {channels}: expected 1 or 3")
        self.root = Path(root).expanduser()
        self.manifest = read_manifest(self.root)
        stored = self.manifest["splits"]
        if "train" not in stored:
            raise DatasetError(f"{self.root}: the shard folder has no train split")
        if test_split is not None and test_split not in stored:
            raise DatasetError(
                f"{self.root}: no stored split {test_split!r}; it has {', '.join(stored)}"
            )
        self.test_split = test_split or next((s for s in ("test", "val") if s in stored), None)
        self.classes = tuple(self.manifest["classes"])
        self.num_classes = len(self.classes)
        self.in_channels = channels
        self.splits = ("train", "test") if self.test_split else ("train",)
        sizes = {size for split in stored.values() for size in split["sizes"]}
        if image_size is None:
            if len(sizes) != 1:
                raise DatasetError(
                    f"{self.root}: its images have {len(sizes)} sizes; set the dataset's "
                    "image_size = [height, width] to decode them at"
                )
            image_size = [int(v) for v in next(iter(sizes)).split("x")]
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"image_size = {image_size}: expected [height, width], positive")
        self.image_size = list(image_size)

    def fingerprint(self) -> str:
        return str(self.manifest["splits"])

    def load(self, split: str) -> ImageTensors:
        if split not in self.splits:
            raise ValueError(f"shards has no split {split!r}; splits: {', '.join(self.splits)}")
        stored = "train" if split == "train" else str(self.test_split)
        reader = ShardReader(self.root, stored, self.manifest)
        size = (self.image_size[0], self.image_size[1])
        return ImageTensors(
            EncodedImages(reader, self.in_channels, size), reader.labels(), self.classes
        )


@hookimpl
def register_datasets(register: Register) -> None:
    register("shards", Shards, examples=[])


def _source(source: str, shard_size: int) -> Any:
    from cvkit_shards.convert import dataset_source, folder_source

    path = Path(source).expanduser()
    if path.exists():
        return folder_source(path, shard_size)
    try:
        table: Any = tomllib.loads(f"value = {source}")["value"]
    except tomllib.TOMLDecodeError:
        table = source  # a bare name
    registry = cli_registry()
    spec = registry.spec("dataset", table, key="SOURCE")
    return dataset_source(spec.name, registry.build(spec), shard_size)


@click.group("data")
def data_group() -> None:
    """Datasets larger than memory: shard folders of encoded images."""


@data_group.command("convert")
@click.argument("source")
@click.argument("out", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Processes writing shards (0: this one).",
)
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="Images per shard.",
)
def convert_command(source: str, out: Path, workers: int, shard_size: int) -> None:
    """Write SOURCE as the shard folder OUT: SOURCE is an image folder (SOURCE/<class>/<image>,
    or with train/ val/ test/ split folders) or a registered dataset, by name or as a table,
    e.g. cifar10 or '{ name = "synthetic", train_size = 100 }'. JPEG, PNG and WebP files
    are stored as they are; tensors and other formats as PNG. Running it again on a
    finished OUT does nothing; an interrupted one continues from its complete shards."""
    from tqdm import tqdm

    from cvkit_shards.convert import convert

    plan = _source(source, shard_size)
    total = sum(len(w.files) if w.labels is None else len(w.labels) for w in plan.work)
    with tqdm(total=total, unit="img", desc=f"converting {plan.description}", disable=None) as bar:
        manifest, written = convert(plan, out, workers, bar.update)
    counts = ", ".join(
        f"{split} {entry['images']:,}" for split, entry in manifest["splits"].items()
    )
    if not written:
        click.echo(f"{out}: already converted ({counts} images); nothing to do")
        return
    skipped = [f for entry in manifest["splits"].values() for f in entry["skipped"]]
    click.echo(
        f"{out}: {counts} images in {sum(len(e['shards']) for e in manifest['splits'].values())} shards"
    )
    if skipped:
        click.echo(f"skipped {len(skipped)} unreadable files, e.g. {skipped[0]}")


@data_group.command("info")
@click.argument("root", type=click.Path(path_type=Path))
def info_command(root: Path) -> None:
    """Describe the shard folder ROOT: images and bytes per split, per class, image sizes."""
    manifest = read_manifest(root)
    classes = manifest["classes"]
    click.echo(f"{root}: {len(classes)} classes, from {manifest['source']}")
    for split, entry in manifest["splits"].items():
        sizes = entry["sizes"]
        shown = ", ".join(f"{size} ({count:,})" for size, count in list(sizes.items())[:3])
        more = f" and {len(sizes) - 3} more" if len(sizes) > 3 else ""
        click.echo(
            f"{split}: {entry['images']:,} images, {entry['bytes'] / 2**20:.1f} MiB in "
            f"{len(entry['shards'])} shards; sizes (height x width): {shown}{more}"
        )
        per_class = ", ".join(
            f"{name} {count:,}" for name, count in zip(classes, entry["per_class"], strict=True)
        )
        click.echo(f"  per class: {per_class}")
        if entry["skipped"]:
            click.echo(f"  skipped at conversion: {len(entry['skipped'])} unreadable files")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(data_group)
