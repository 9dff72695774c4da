"""cvkit-distillation: Hinton et al.'s loss, and a student trained against a teacher run."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from cvkit import evaluation_batches, restore, train
from cvkit.testing import TINY_RECIPE
from cvkit_distillation import KnowledgeDistillation, distillation_loss


def test_the_loss_is_the_papers_weighted_sum() -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(6, 5), torch.randn(6, 5)
    labels = torch.randint(0, 5, (6,))
    t, w = 3.0, 0.7
    p_teacher = (teacher / t).softmax(1)
    kl = (p_teacher * (p_teacher.log() - (student / t).log_softmax(1))).sum(1).mean()
    expected = w * t * t * kl + (1 - w) * F.cross_entropy(student, labels)
    torch.testing.assert_close(distillation_loss(student, teacher, labels, t, w), expected)
    # weight 0: cross-entropy alone; a student equal to its teacher: no distillation term
    torch.testing.assert_close(
        distillation_loss(student, teacher, labels, t, 0.0), F.cross_entropy(student, labels)
    )
    assert distillation_loss(teacher, teacher, labels, t, 1.0).abs() < 1e-6


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, registry):
    folder = tmp_path_factory.mktemp("teacher")
    recipe = folder / "teacher.toml"
    recipe.write_text(TINY_RECIPE.format(runs=folder.as_posix()))
    return train(recipe, output=folder / "run", registry=registry).run_dir


def test_the_teacher_is_frozen_in_eval_mode(teacher_run) -> None:
    loss = KnowledgeDistillation(teacher_run, temperature=2.0)
    loss.train()
    assert not loss.teacher.training
    assert not any(p.requires_grad for p in loss.teacher.parameters())
    images = torch.rand(3, 3, 8, 8)
    logits = torch.zeros(3, 4, requires_grad=True)
    value = loss(logits, torch.tensor([0, 1, 2]), images)
    value.backward()
    assert torch.isfinite(value) and logits.grad is not None
    with pytest.raises(ValueError, match="not found"):
        KnowledgeDistillation(teacher_run / "missing")


def _student(tmp_path, teacher_run, registry, name: str, weight: float | None):
    """A student of another seed than the teacher's: cross-entropy (``weight`` None) or
    distillation from the teacher run with ``weight``."""
    recipe = tmp_path / f"{name}.toml"
    text = TINY_RECIPE.format(runs=tmp_path.as_posix()).replace("seed = 0", "seed = 1")
    if weight is not None:
        text = text.replace(
            '[loss]\nname = "cross_entropy"',
            f'[loss]\nname = "distillation"\nteacher = "{teacher_run.as_posix()}"\n'
            f"weight = {weight}\ntemperature = 2.0",
        )
    recipe.write_text(text)
    return train(recipe, output=tmp_path / name, registry=registry).run_dir


def _val_logits(run, registry) -> torch.Tensor:
    trained = restore(run, registry)
    with torch.no_grad():
        return torch.cat([trained.model.eval()(x) for x, _ in evaluation_batches(trained)])


def test_a_student_trains_against_the_teacher_run(tmp_path, teacher_run, registry) -> None:
    """Weight 0 trains exactly as cross-entropy; weight 1 (the teacher's softened outputs
    alone) brings the student's predictions closer to the teacher's than cross-entropy does."""
    plain = _student(tmp_path, teacher_run, registry, "plain", None)
    zero = _student(tmp_path, teacher_run, registry, "zero", 0.0)
    distilled = _student(tmp_path, teacher_run, registry, "distilled", 1.0)
    evaluations = {
        run.name: json.loads((run / "eval.json").read_text()) for run in (plain, zero, distilled)
    }
    assert (
        evaluations["zero"]["val"]["confusion_matrix"]
        == evaluations["plain"]["val"]["confusion_matrix"]
    )
    assert evaluations["zero"]["val"]["loss"] == pytest.approx(evaluations["plain"]["val"]["loss"])
    teacher = _val_logits(teacher_run, registry).log_softmax(1)

    def divergence(run) -> float:  # KL(teacher || student) over the validation images
        student = _val_logits(run, registry).log_softmax(1)
        return float(F.kl_div(student, teacher, log_target=True, reduction="batchmean"))

    assert divergence(distilled) < 0.7 * divergence(plain)  # measured: 0.077 against 0.176
