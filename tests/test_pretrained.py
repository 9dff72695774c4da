"""torchvision models by name: pretrained weights from torch.hub's cache or a local file,
the offline error, new heads and adapted input convolutions; all without network."""

from __future__ import annotations

import copy
import urllib.error

import pytest
import torch
from torchvision.models import get_model, get_model_weights

from cvkit.builtins.torchvision_models import torchvision_classifier
from cvkit.models.pretrained import adapt_input_channels, weights_file

ARCH = "mobilenet_v3_small"  # the smallest torchvision classifier with ImageNet weights


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """torch.hub's cache in tmp_path, holding a distinctive state dict as the ImageNet weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(123)
    state = get_model(ARCH).state_dict()
    path = weights_file(get_model_weights(ARCH).DEFAULT)
    assert str(path).startswith(str(tmp_path))
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


def test_imagenet_weights_load_through_torchvisions_weights_api(hub) -> None:
    model = torchvision_classifier(num_classes=10, in_channels=3, arch=ARCH, pretrained="imagenet")
    loaded = model.state_dict()
    torch.testing.assert_close(loaded["features.0.0.weight"], hub["features.0.0.weight"])
    assert loaded["classifier.3.weight"].shape == (10, 1024)  # a new head for 10 classes
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 10)


def test_without_the_file_offline_the_error_names_it_and_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    expected = weights_file(get_model_weights(ARCH).DEFAULT)
    with pytest.raises(ValueError, match="cannot download") as error:
        torchvision_classifier(num_classes=10, in_channels=3, arch=ARCH, pretrained="imagenet")
    assert str(expected) in str(error.value) and "weights_path" in str(error.value)
    # the architecture alone (cvkit check) needs no file
    model = torchvision_classifier(
        num_classes=10, in_channels=3, arch=ARCH, pretrained="imagenet", load_weights=False
    )
    assert model.classifier[3].out_features == 10


def test_weights_path_loads_a_local_state_dict_with_any_head(tmp_path) -> None:
    torch.manual_seed(5)
    imagenet = get_model(ARCH).state_dict()
    torch.save(imagenet, tmp_path / "imagenet.pth")
    model = torchvision_classifier(10, 3, arch=ARCH, weights_path=tmp_path / "imagenet.pth")
    torch.testing.assert_close(
        model.state_dict()["features.1.block.0.0.weight"], imagenet["features.1.block.0.0.weight"]
    )
    # a file saved from a 10-class model keeps its head too
    torch.save(model.state_dict(), tmp_path / "ten.pth")
    again = torchvision_classifier(10, 3, arch=ARCH, weights_path=tmp_path / "ten.pth")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value)
    with pytest.raises(ValueError, match="weights_path file for mobilenet_v3_small not found"):
        torchvision_classifier(10, 3, arch=ARCH, weights_path=tmp_path / "missing.pth")
    torch.save(get_model("resnet18").state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(ValueError, match="does not fit"):
        torchvision_classifier(10, 3, arch=ARCH, weights_path=tmp_path / "resnet18.pth")


def test_bad_names_are_reported_with_the_alternatives() -> None:
    with pytest.raises(ValueError, match="did you mean 'resnet50'"):
        torchvision_classifier(10, 3, arch="resnet5O")
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        torchvision_classifier(10, 3, arch="resnet18", pretrained="imagenet21k")
    with pytest.raises(ValueError, match="not both"):
        torchvision_classifier(10, 3, arch="resnet18", pretrained="imagenet", weights_path="x.pth")


def test_grey_input_sums_the_rgb_kernels_so_grey_images_give_the_same_logits() -> None:
    torch.manual_seed(0)
    rgb = torchvision_classifier(10, 3, arch="resnet18").eval()
    grey = copy.deepcopy(rgb)
    adapt_input_channels(grey, 1)
    image = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(grey(image), rgb(image.expand(-1, 3, -1, -1)), atol=1e-5, rtol=1e-4)
    six = copy.deepcopy(rgb)
    adapt_input_channels(six, 6)  # tiled and scaled: RGB twice over gives the RGB logits
    torch.testing.assert_close(
        six(torch.cat([image.expand(-1, 3, -1, -1)] * 2, 1)),
        rgb(image.expand(-1, 3, -1, -1)),
        atol=1e-5,
        rtol=1e-4,
    )
    assert torchvision_classifier(10, 5, arch="resnet18").conv1.in_channels == 5


@pytest.mark.filterwarnings("ignore:The default weight initialization of GoogleNet")
def test_auxiliary_classifiers_are_removed() -> None:
    model = torchvision_classifier(10, 3, arch="googlenet").train()
    logits = model(torch.rand(2, 3, 64, 64))
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 10)
