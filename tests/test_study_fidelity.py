"""The study recipes build the studies' networks: layer by layer where a structure is
involved, and the parameter counts the studies and their authors' code report."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

from cvkit.engine.build import build_model, trainable_parameters
from cvkit.recipe.loading import load_recipe

from helpers import RECIPES


def forward_order(model: nn.Module, x: torch.Tensor) -> list[tuple[str, ...]]:
    """The convolutions, linear and dropout layers in the order a forward pass calls them:
    ("conv", in, out, kernel, stride), ("linear", in, out) or ("dropout", p)."""
    calls: list[tuple[str, ...]] = []

    def record(module: nn.Module, *_: object) -> None:
        if isinstance(module, nn.Conv2d):
            calls.append(
                (
                    "conv",
                    module.in_channels,
                    module.out_channels,
                    *module.kernel_size[:1],
                    *module.stride[:1],
                )
            )
        elif isinstance(module, nn.Linear):
            calls.append(("linear", module.in_features, module.out_features))
        elif isinstance(module, nn.Dropout):
            calls.append(("dropout", module.p))

    handles = [m.register_forward_hook(record) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return calls


def authors_efficient_resnet(blocks: list[int], channels: int, drop: float) -> list[tuple]:
    """project1_model.py's forward order, written out: conv1 (3x3), the SE block's two 1x1
    convolutions, then per BasicBlock conv1 (stride 2 opening stages 2+), conv2, the 1x1
    shortcut when the shape changes, Dropout(drop) after the block's ReLU; then average
    pooling, Dropout(drop) and the linear layer."""
    order: list[tuple] = [("conv", 3, channels, 3, 1)]
    order += [("conv", channels, channels // 16, 1, 1), ("conv", channels // 16, channels, 1, 1)]
    in_planes = channels
    for stage, count in enumerate(blocks):
        planes = channels * 2**stage
        for block in range(count):
            stride = 2 if stage > 0 and block == 0 else 1
            order += [("conv", in_planes, planes, 3, stride), ("conv", planes, planes, 3, 1)]
            if stride != 1 or in_planes != planes:
                order.append(("conv", in_planes, planes, 1, stride))
            order.append(("dropout", drop))
            in_planes = planes
    return [*order, ("dropout", drop), ("linear", in_planes, 10)]


def test_efficient_resnet_has_the_authors_12_dropout_layers_in_their_order(registry) -> None:
    recipe = load_recipe(RECIPES / "efficient_resnet.toml", registry=registry)
    model = build_model(recipe, registry, num_classes=10, in_channels=3)
    assert trainable_parameters(model) == 4_697_742
    order = forward_order(model, torch.rand(2, 3, 32, 32))
    assert order == authors_efficient_resnet([4, 4, 3], 64, 0.2)
    assert sum(1 for m in model.modules() if isinstance(m, nn.Dropout)) == 12


def test_block_dropout_acts_on_the_blocks_output_after_its_relu(registry) -> None:
    recipe = load_recipe(RECIPES / "efficient_resnet.toml", registry=registry)
    model = build_model(recipe, registry, num_classes=10, in_channels=3)
    inputs: list[torch.Tensor] = []
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    model.eval()
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert len(inputs) == 12 and all(bool((x >= 0).all()) for x in inputs)


def test_the_published_configuration_has_no_dropout_and_clips_at_0_1(registry) -> None:
    recipe = load_recipe(RECIPES / "efficient_resnet_paper.toml", registry=registry)
    model = build_model(recipe, registry, num_classes=10, in_channels=3)
    assert trainable_parameters(model) == 4_697_742
    assert forward_order(model, torch.rand(1, 3, 32, 32)) == [
        call for call in authors_efficient_resnet([4, 4, 3], 64, 0.0) if call[0] != "dropout"
    ]
    assert recipe.trainer.clip_grad_value == 0.1 and recipe.experiment.epochs == 200
    assert recipe.optimizer.params["sync"] == "after_first_step"


def test_the_all_50k_variant_reports_the_last_epoch_on_test(registry) -> None:
    recipe = load_recipe(RECIPES / "efficient_resnet_paper_all50k.toml", registry=registry)
    assert recipe.data.val_split == 0 and recipe.trainer.eval_weights == "last"
    checkpoint = next(c for c in recipe.callbacks if c.name == "checkpoint")
    assert checkpoint.params["save_best"] is False


def test_the_authors_resnet18_is_resnet18(registry) -> None:
    recipe = load_recipe(RECIPES / "efficient_resnet_resnet18.toml", registry=registry)
    model = build_model(recipe, registry, num_classes=10, in_channels=3)
    reference = registry.build(
        load_recipe(
            RECIPES / "efficient_resnet_resnet18.toml",
            ['model={ name = "resnet18" }'],
            registry=registry,
        ).model,
        num_classes=10,
        in_channels=3,
    )
    assert trainable_parameters(model) == trainable_parameters(reference) == 11_173_962
    assert (
        recipe.augment.train == [] and recipe.augment.eval == []
    )  # no augmentation, no normalisation
    assert recipe.optimizer.name == "sgd" and recipe.experiment.epochs == 200


def test_the_all_50k_variant_runs_without_a_validation_split(run_cli, tmp_path) -> None:
    sets = [
        'data.dataset={ name = "synthetic", num_classes = 10, image_size = 32, train_size = 12, test_size = 4 }',
        "data.batch_size=4",
        "data.workers=0",
        "experiment.epochs=1",
        "model.channels=4",
    ]
    args = [x for s in sets for x in ("--set", s)]
    recipe = RECIPES / "efficient_resnet_paper_all50k.toml"
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"), *args)
    assert result.exit_code == 0, result.output
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert evaluation["val"] is None and evaluation["test"]["samples"] == 4
    assert evaluation["weights"] == "last"
    assert not (tmp_path / "run" / "checkpoints" / "best.pt").exists()
    assert "best.pt is not written" not in result.output


@pytest.mark.parametrize(
    ("recipe", "trainable", "total"),
    [
        ("cbam_sample_resnet", 230_000, 230_000),
        ("cbam_resnet50_finetune", 20_490, 23_528_522),
        ("cbam_resnet50_attention", 5_108_844, 28_616_876),
        ("cbam_resnet50_scratch", 23_528_522, 23_528_522),
        ("cbam_resnet50_attention_scratch", 28_616_876, 28_616_876),
    ],
)
def test_cvkit_check_reports_the_cbam_studys_parameter_counts(
    run_cli, recipe, trainable, total
) -> None:
    result = run_cli("check", str(RECIPES / f"{recipe}.toml"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["params"], report["total_params"]) == (trainable, total)


@pytest.mark.parametrize(
    ("recipe", "epochs", "scheduler"),
    [
        ("cbam_sample_resnet", 200, "constant"),
        ("cbam_resnet50_finetune", 200, "constant"),
        ("cbam_resnet50_attention", 130, "constant"),
        ("cbam_resnet50_scratch", 10, "step"),
        ("cbam_resnet50_attention_scratch", 20, "step"),
    ],
)
def test_the_cbam_recipes_train_as_the_studys_code(registry, recipe, epochs, scheduler) -> None:
    resolved = load_recipe(RECIPES / f"{recipe}.toml", registry=registry)
    assert resolved.optimizer.name == "sgd"
    assert resolved.optimizer.params == {
        "lr": 1e-3,
        "momentum": 0.9,
        "dampening": 0.0,
        "weight_decay": 0.0,
        "nesterov": False,
        "groups": [],
    }
    assert resolved.data.batch_size == 128 and resolved.data.image_size == 224
    assert resolved.experiment.epochs == epochs and resolved.scheduler.name == scheduler
    if scheduler == "step":
        assert (resolved.scheduler.params["step_epochs"], resolved.scheduler.params["gamma"]) == (
            5,
            0.1,
        )
    pretrained = resolved.model.params.get("pretrained")
    assert pretrained == (None if recipe == "cbam_sample_resnet" else "IMAGENET1K_V1")


def test_se_resnet18_follows_the_study_and_its_card_counts_are_true(registry) -> None:
    cifar10 = load_recipe(RECIPES / "se_resnet18_cifar10.toml", registry=registry)
    cifar100 = load_recipe(RECIPES / "se_resnet18_cifar100.toml", registry=registry)
    assert cifar10.model.params["dropout"] == 0.5  # the ablation's "Dropout(0.5)"
    assert cifar100.model.params["dropout"] == 0.6
    # the study *raises* the weight decay to 5e-4 for CIFAR-100
    assert (
        cifar10.optimizer.params["weight_decay"] < cifar100.optimizer.params["weight_decay"] == 5e-4
    )
    assert (cifar10.experiment.epochs, cifar100.experiment.epochs) == (100, 150)
    assert cifar10.data.batch_size == 128 and cifar10.optimizer.name == "adamw"
    card = (RECIPES / "se_resnet18_cifar10.toml").read_text()
    plain = 11_173_962
    for reduction, added in [
        (16, "+0.80%"),
        (8, "+1.58%"),
        (4, "+3.14%"),
        (3, "+4.16%"),
        (2, "+6.26%"),
    ]:
        recipe = load_recipe(
            RECIPES / "se_resnet18_cifar10.toml",
            [f"model.attention.reduction={reduction}"],
            registry=registry,
        )
        count = trainable_parameters(build_model(recipe, registry, num_classes=10, in_channels=3))
        assert f"{100 * (count - plain) / plain:+.2f}%" == added, reduction
        assert f"r = {reduction}" in card and added.lstrip("+") in card
    assert "89,080" in card and "11,638,598" in card


DOCS = RECIPES.parent / "docs"


def _table_rows(page: str, heading: str) -> list[list[str]]:
    """The body rows of the first table under ``heading`` in ``page``, as stripped cells."""
    rows: list[str] = []
    for line in page.split(heading, 1)[1].splitlines():
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    return cells[2:]  # after the header and the separator


def _number(cell: str) -> int:
    return int(cell.replace(",", ""))


PARAMETER_ROWS = _table_rows((DOCS / "studies.md").read_text(), "## Parameter counts")


@pytest.mark.parametrize("row", PARAMETER_ROWS, ids=lambda row: row[0].strip("`"))
def test_the_parameter_counts_in_studies_md_are_what_cvkit_check_reports(run_cli, row) -> None:
    recipe, _, trainable, total = row
    result = run_cli("check", str(RECIPES / f"{recipe.strip('`')}.toml"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["params"], report["total_params"]) == (_number(trainable), _number(total))


def test_studies_md_covers_every_study_recipe_and_every_lightweight_technique() -> None:
    page = (DOCS / "studies.md").read_text()
    study_recipes = {
        p.stem for p in RECIPES.glob("*.toml") if p.read_text().startswith("# STUDY CARD")
    }
    assert study_recipes == {p.stem for p in RECIPES.glob("*.toml")} - {
        "quickstart",
        "cifar10_small_cnn",
        "speedrun_cifar10",  # airbench94_muon.py's settings, not one of the four studies
        "speedrun_cifar10_val",
    }
    for recipe in study_recipes:
        assert f"{recipe}.toml" in page or f"`{recipe}`" in page, recipe
    techniques = _table_rows(page, "Every technique the study lists")
    assert [row[0] for row in techniques] == [f"{g}{i}" for g in "ABCDEF" for i in range(1, 6)]
    named = {name for row in techniques for name in re.findall(r"(\w+)\.toml", row[2])}
    assert {p.stem for p in RECIPES.glob("lightweight_cnn_residual*.toml")} <= named
    assert all((RECIPES / f"{name}.toml").is_file() for name in named), named
    assert (RECIPES / "spaces" / "lightweight_cnn_residual.toml").is_file()


def test_results_md_has_a_measured_row_for_every_lightweight_technique_recipe() -> None:
    results = (DOCS / "results.md").read_text()
    for recipe in sorted(RECIPES.glob("lightweight_cnn_residual*.toml")):
        rows = [line for line in results.splitlines() if line.startswith(f"| `{recipe.stem}` |")]
        assert rows and re.search(r"\d+\.\d\d% \(epoch \d\)", rows[0]), recipe.stem
    assert "cvkit tune recipes/lightweight_cnn_residual.toml --space" in results
    assert "| 1 (best) |" in results
