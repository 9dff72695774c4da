"""In-memory batches: the validation split, shuffling, resuming an epoch, per-sample workers."""

from __future__ import annotations

import pytest
import torch

from cvkit.builtins.flip import HorizontalFlip
from cvkit.builtins.normalize import Normalize
from cvkit.builtins.synthetic import SyntheticImages
from cvkit.builtins.torchvision_transforms import TorchvisionTransform
from cvkit.data.batches import BatchLoader, batches_per_epoch, check_order
from cvkit.data.splits import split_train_val
from cvkit.data.tensors import ImageTensors
from cvkit.errors import CvkitError

CPU = torch.device("cpu")


def numbered(n: int = 50) -> ImageTensors:
    """Image i is filled with the value i, so batches reveal which images they hold."""
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 3, 4, 4).clone()
    return ImageTensors(images, torch.arange(n) % 5, tuple("abcde"))


def ids(images: torch.Tensor) -> list[int]:
    return (images[:, 0, 0, 0] * 255).round().long().tolist()


def test_validation_split_is_seeded_disjoint_and_complete() -> None:
    data = numbered(50)
    train, val = split_train_val(data, 0.2, seed=3)
    assert len(train) == 40 and len(val) == 10
    train_ids, val_ids = (
        set(train.images[:, 0, 0, 0].tolist()),
        set(val.images[:, 0, 0, 0].tolist()),
    )
    assert not train_ids & val_ids and train_ids | val_ids == set(range(50))
    again = split_train_val(data, 0.2, seed=3)[1]
    assert torch.equal(again.images, val.images)
    assert not torch.equal(split_train_val(data, 0.2, seed=4)[1].images, val.images)
    assert len(split_train_val(data, 7, seed=0)[1]) == 7
    assert split_train_val(data, 0, seed=0)[1] is None
    with pytest.raises(CvkitError, match="leaves no training images"):
        split_train_val(data, 50, seed=0)


def test_an_epoch_visits_every_image_once_in_a_seeded_order() -> None:
    loader = BatchLoader(numbered(50), batch_size=8, device=CPU, shuffle=True, seed=1)
    assert len(loader) == 7 == batches_per_epoch(50, 8, drop_last=False)
    first = [i for images, _ in loader for i in ids(images)]
    second = [i for images, _ in loader for i in ids(images)]
    assert sorted(first) == sorted(second) == list(range(50)) and first != second
    twin = BatchLoader(numbered(50), batch_size=8, device=CPU, shuffle=True, seed=1)
    assert [i for images, _ in twin for i in ids(images)] == first
    dropped = BatchLoader(numbered(50), batch_size=8, device=CPU, shuffle=True, drop_last=True)
    assert len(dropped) == 6 and sum(images.shape[0] for images, _ in dropped) == 48


def test_labels_follow_their_images_and_pixels_are_scaled_to_unit_range() -> None:
    for images, labels in BatchLoader(numbered(50), batch_size=16, device=CPU, shuffle=True):
        assert images.dtype == torch.float32 and images.min() >= 0 and images.max() <= 1
        assert labels.tolist() == [i % 5 for i in ids(images)]


def test_state_dict_replays_the_current_epoch_from_any_batch() -> None:
    loader = BatchLoader(numbered(50), batch_size=8, device=CPU, shuffle=True, seed=2)
    list(loader)  # advance one epoch
    state = loader.state_dict()
    full = [ids(images) for images, _ in loader]
    resumed = BatchLoader(numbered(50), batch_size=8, device=CPU, shuffle=True, seed=99)
    resumed.load_state_dict(state)
    assert [ids(images) for images, _ in resumed.epoch(start=3)] == full[3:]
    assert [ids(images) for images, _ in resumed] == [ids(images) for images, _ in loader]


def test_batch_augmentations_run_in_order_on_the_batch() -> None:
    loader = BatchLoader(
        numbered(10),
        batch_size=10,
        device=CPU,
        augmentations=[HorizontalFlip(p=1.0), Normalize(mean=[0.5] * 3, std=[0.5] * 3)],
    )
    images, _ = next(iter(loader))
    expected = torch.arange(10).float()[:, None, None, None].expand(10, 3, 4, 4) / 255 * 2 - 1
    assert torch.allclose(images, expected)


def test_per_sample_augmentations_give_the_same_batches_with_any_number_of_workers() -> None:
    data = SyntheticImages(num_classes=3, image_size=12, train_size=24, test_size=0).load("train")
    per_sample = TorchvisionTransform("RandAugment", {"num_ops": 2, "magnitude": 9})

    def run(workers: int) -> list[torch.Tensor]:
        loader = BatchLoader(
            data,
            batch_size=8,
            device=CPU,
            shuffle=True,
            seed=5,
            workers=workers,
            augmentations=[per_sample, HorizontalFlip()],
        )
        torch.manual_seed(0)
        return [images for images, _ in loader]

    in_process, with_workers = run(0), run(2)
    assert all(torch.equal(a, b) for a, b in zip(in_process, with_workers, strict=True))
    plain = BatchLoader(data, batch_size=8, device=CPU, shuffle=True, seed=5)
    assert not all(torch.equal(a, b) for a, (b, _) in zip(in_process, plain, strict=True))


def test_per_sample_work_leaves_the_main_process_generators_alone() -> None:
    data = SyntheticImages(num_classes=3, image_size=12, train_size=8, test_size=0).load("train")
    loader = BatchLoader(
        data, batch_size=8, device=CPU, augmentations=[TorchvisionTransform("RandomHorizontalFlip")]
    )
    torch.manual_seed(7)
    list(loader)
    after = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(after, torch.rand(3))


def test_per_sample_augmentations_must_come_first() -> None:
    with pytest.raises(
        CvkitError, match=r"augment\.train\[1\] \(TorchvisionTransform\) works per sample"
    ):
        check_order(
            [HorizontalFlip(), TorchvisionTransform("RandomHorizontalFlip")], "augment.train"
        )


def test_a_split_smaller_than_one_batch_is_an_error_when_dropping_the_last() -> None:
    with pytest.raises(CvkitError, match="fewer than one batch of 64"):
        BatchLoader(numbered(10), batch_size=64, device=CPU, drop_last=True)


def test_a_training_subset_is_seeded_and_disjoint_from_validation() -> None:
    from cvkit.data.splits import choose_subset

    data = numbered(50)
    train, val = split_train_val(data, 10, seed=1)
    small = choose_subset(train, 15, seed=1)
    assert len(small) == 15 and torch.equal(small.images, choose_subset(train, 15, seed=1).images)
    assert not set(small.images[:, 0, 0, 0].tolist()) & set(val.images[:, 0, 0, 0].tolist())
    assert len(choose_subset(train, 0.5, seed=1)) == 20
    with pytest.raises(CvkitError, match="more than the 40 training images"):
        choose_subset(train, 41, seed=1)


def test_a_large_jpeg_is_cropped_as_it_is_decoded_at_a_reduced_scale() -> None:
    """random_resized_crop_per_image on a split kept encoded: the crop of a 640 x 480 JPEG
    is drawn for the stored image; decoded at 1/4 scale (its crop still has the output's
    pixels), it is close to the crop of the fully decoded image, in the same place."""
    import io

    from PIL import Image

    from cvkit.builtins.per_image_crop import RandomResizedCropPerImage
    from cvkit.data.encoded import EncodedImages

    y, x = torch.meshgrid(torch.arange(480), torch.arange(640), indexing="ij")
    pixels = torch.stack([x * 255 // 639, y * 255 // 479, (x + y) * 255 // 1118]).to(torch.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=95)

    class OneJpeg:
        def __len__(self) -> int:
            return 1

        def encoded(self, index: int) -> bytes:
            return buffer.getvalue()

        def describe(self, index: int) -> str:
            return "the JPEG"

    crop = RandomResizedCropPerImage(size=40, scale=[0.25, 0.25], ratio=[4 / 3, 4 / 3])
    torch.manual_seed(3)
    at_decode = EncodedImages(OneJpeg(), 3, (480, 640)).cropped(0, crop)
    torch.manual_seed(3)
    after = crop(pixels)  # the same draw on the full image: a 320 x 240 crop
    assert at_decode.shape == after.shape == (3, 40, 40)
    assert (at_decode.float() - after.float()).abs().mean() < 4  # JPEG and 1/4 scale only
    with Image.open(buffer) as image:
        image.draft("RGB", (640 * 40 // 320, 480 * 40 // 240))
        assert image.size == (160, 120)  # the scale the crop was decoded at
