"""cvkit-digits: the split, and the dataset contract."""

from __future__ import annotations

import pytest
import torch

from cvkit.testing import check_dataset
from cvkit_digits import Digits


def test_digits_split_is_stratified_seeded_and_complete() -> None:
    train, test = Digits().load("train"), Digits().load("test")
    assert len(train) + len(test) == 1797 and train.images.shape[1:] == (1, 8, 8)
    assert int(train.images.max()) == 255 and train.classes == tuple("0123456789")
    shares = torch.bincount(test.labels, minlength=10) / (
        torch.bincount(test.labels, minlength=10) + torch.bincount(train.labels, minlength=10)
    )
    assert torch.allclose(shares, torch.full((10,), 0.2), atol=0.01)
    assert not torch.equal(Digits(seed=1).load("test").labels, test.labels)
    with pytest.raises(ValueError, match="test_fraction"):
        Digits(test_fraction=1.0)


def test_digits_keeps_the_dataset_contract_and_states_its_image_size() -> None:
    check_dataset(Digits)
    assert Digits.image_size == (8, 8)
