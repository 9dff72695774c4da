"""A hostile or unlucky user, table-driven: every case is one command run in-process that must
end with its exit code, one short ``error:`` line naming the culprit (click's ``Error:`` for
usage errors), no traceback, and no file that existed before changed (a run it starts may
create its own directory).

The sandbox holds a finished run, input files of every kind and a recipe per case family;
cases name what they need from it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cvkit.cli import cli
from cvkit.commands.run import train
from cvkit.registry.loading import load_registry
from cvkit.testing import TINY_RECIPE

import engine_plugin
from helpers import RECIPES

QUICKSTART = str(RECIPES / "quickstart.toml")


class Shell:
    """A pickle that runs a shell command when loaded, as an attacker would send."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def write_images(folder: Path, sizes: dict[str, list[tuple[int, int]]]) -> Path:
    """Class folders of PNGs: class name -> (height, width) of each image."""
    for label, shapes in sizes.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i, (h, w) in enumerate(shapes):
            Image.fromarray(np.full((h, w, 3), 40 * i, dtype=np.uint8)).save(
                folder / label / f"{i}.png"
            )
    return folder


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    box = tmp_path_factory.mktemp("sandbox")
    (box / "tiny.toml").write_text(TINY_RECIPE.format(runs=(box / "runs").as_posix()))
    run = train(
        box / "tiny.toml", output=box / "run", registry=load_registry(modules=[engine_plugin])
    )
    (box / "run" / "old.csv").write_text("id,label\nprecious,1\n")
    (box / "existing.json").write_text('{"precious": true}\n')
    (box / "a_file").write_text("not a folder")
    # predict inputs
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    with (box / "shell.pkl").open("wb") as stream:
        pickle.dump({b"data": Shell(f"touch {box / 'pwned'}")}, stream)
    (box / "eval.pkl").write_bytes(pickle.dumps(eval))
    good = pickle.dumps({b"data": images.flatten(1).numpy(), b"ids": [b"a", b"b", b"c", b"d"]})
    (box / "truncated.pkl").write_bytes(good[: len(good) // 2])
    (box / "string.pkl").write_bytes(pickle.dumps("just a string"))
    (box / "nodata.pkl").write_bytes(pickle.dumps({"images": images.numpy()}))
    (box / "badids.pkl").write_bytes(pickle.dumps({"data": images.numpy(), "ids": ["a"]}))
    np.save(box / "object.npy", np.array([object(), object()], dtype=object), allow_pickle=True)
    (box / "corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    (box / "corrupt.pt").write_bytes(b"PK\x03\x04 not really a zip")
    np.save(box / "empty.npy", np.zeros((0, 3, 8, 8), dtype=np.uint8))
    np.save(box / "floats.npy", np.zeros((2, 3, 8, 8), dtype=np.float32))
    np.save(box / "shape.npy", np.zeros((2, 5, 8, 8), dtype=np.uint8))
    (box / "inputs.txt").write_text("1 2 3")
    # checkpoints
    torch.save({"weights": torch.zeros(2)}, box / "foreign.pt")
    (box / "garbage.pt").write_bytes(os.urandom(256))
    state = torch.load(run.run_dir / "checkpoints" / "last.pt", weights_only=True)
    first = next(iter(state["model"]))
    state["model"][first] = state["model"][first] + 1
    torch.save(state, box / "damaged.pt")
    # data folders
    write_images(box / "folder_ok", {"a": [(8, 8)] * 6, "b": [(8, 8)] * 6})
    write_images(box / "folder_mixed", {"a": [(8, 8)] * 5 + [(9, 8)], "b": [(8, 8)] * 6})
    write_images(box / "folder_test", {"a": [(8, 8)], "c": [(8, 8)]})
    corrupt = write_images(box / "folder_corrupt", {"a": [(8, 8)] * 6, "b": [(8, 8)] * 6})
    (corrupt / "b" / "bad.png").write_bytes(b"\x89PNG broken")
    write_images(box / "folder_bomb", {"a": [(8, 8)] * 6, "b": [(8, 8)] * 5 + [(64, 64)]})
    (box / "folder_empty").mkdir()
    # recipes and spaces
    (box / "deep.toml").write_text("x = " + "[" * 20000 + "]" * 20000 + "\n")
    (box / "broken.toml").write_text("[experiment\nname = 1\n")
    (box / "cycle_a.toml").write_text('extends = "cycle_b.toml"\n')
    (box / "cycle_b.toml").write_text('extends = "cycle_a.toml"\n')
    (box / "orphan_unset.toml").write_text('unset = ["model.attention"]\n')
    (box / "missing_parent.toml").write_text('extends = "nowhere.toml"\n')
    (box / "stages.toml").write_text(
        f'extends = "{QUICKSTART}"\n\n[[stages]]\nname = "a"\nbogus = 1\ninit = "b"\n\n'
        '[[stages]]\nname = "a"\n\n[[stages]]\nname = "b"\n'
    )
    (box / "init_module.toml").write_text(
        f'extends = "{QUICKSTART}"\n\n[[stages]]\nname = "a"\n\n'
        '[[stages]]\nname = "b"\ninit = { "no_such_module" = "a" }\n'
    )
    for name, body in {
        "space_inf.toml": '["optimizer.lr"]\ntype = "float"\nlow = 0.1\nhigh = inf\n',
        "space_key.toml": '["optimizer.lr"]\ntype = "float"\nlow = 0.1\nhigh = 0.2\nlog_scale = true\n',
        "space_choices.toml": '["data.batch_size"]\ntype = "categorical"\nchoices = []\n',
        "space_ok.toml": '["optimizer.lr"]\ntype = "float"\nlow = 0.01\nhigh = 0.1\n',
        "space_unsettable.toml": '["optimizer.lrr"]\ntype = "float"\nlow = 0.01\nhigh = 0.1\n',
    }.items():
        (box / name).write_text(body)
    return box


@attrs.frozen
class Case:
    """``args(box)`` -> command line; the run must exit ``code`` with ``message`` in an
    ``error:`` line (``{box}`` in it stands for the sandbox)."""

    name: str
    args: Callable[[Path], list[str]]
    message: str
    code: int = 2
    env: dict[str, str] = attrs.field(factory=dict)
    patch: Callable[[pytest.MonkeyPatch], None] | None = None


def keyboard_interrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    from cvkit.commands import evaluate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "evaluate", interrupted)


def sigterm_in_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from cvkit.commands import check
    from cvkit.errors import Terminated

    def terminated(*args, **kwargs):
        raise Terminated()

    monkeypatch.setattr(check, "check_recipe", terminated)


def small_bomb_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 x 64 = 4096 > 2 x 1000


def check(*sets: str) -> Callable[[Path], list[str]]:
    return lambda box: ["check", QUICKSTART, *(a for s in sets for a in ("--set", s))]


def run(recipe: str, *sets: str, output: str = "out") -> Callable[[Path], list[str]]:
    return lambda box: [
        "run",
        recipe.format(box=box),
        "--output",
        str(box / "new" / output),
        *(a for s in sets for a in ("--set", s.format(box=box))),
    ]


def folder(name: str, more: str = "") -> Callable[[Path], list[str]]:
    dataset = 'data.dataset={{ name = "imagefolder", root = "{box}/' + name + '"' + more + " }}"
    return run("{box}/tiny.toml", dataset, "data.cache=false", output=name)


def predict(source: str, extra: tuple[str, ...] = ()) -> Callable[[Path], list[str]]:
    return lambda box: [
        "predict",
        str(box / "run"),
        str(box / source),
        "--out",
        str(box / "new" / "p.csv"),
        *extra,
    ]


def eval_(*args: str) -> Callable[[Path], list[str]]:
    return lambda box: ["eval", *(a.format(box=box) for a in args)]


def tune(space: str, *extra: str) -> Callable[[Path], list[str]]:
    return lambda box: [
        "tune",
        str(box / "tiny.toml"),
        "--space",
        str(box / space),
        "--output",
        str(box / "new" / "t"),
        *extra,
    ]


CASES = [
    # recipes
    Case(
        "recipe file missing",
        lambda box: ["check", str(box / "nowhere.toml")],
        "recipe file not found",
    ),
    Case("recipe not TOML", lambda box: ["check", str(box / "broken.toml")], "invalid TOML"),
    Case(
        "recipe nested 20,000 deep",
        lambda box: ["check", str(box / "deep.toml")],
        "nest deeper than 32",
    ),
    Case("extends cycle", lambda box: ["check", str(box / "cycle_a.toml")], "extends cycle"),
    Case(
        "extends a missing file",
        lambda box: ["check", str(box / "missing_parent.toml")],
        "recipe file not found",
    ),
    Case(
        "unset without extends",
        lambda box: ["check", str(box / "orphan_unset.toml")],
        "only a recipe that extends",
    ),
    Case(
        "stage problems at once",
        lambda box: ["check", str(box / "stages.toml")],
        "stage names must be unique",
    ),
    Case(
        "stage init of a missing module",
        lambda box: ["check", str(box / "init_module.toml")],
        "no module 'no_such_module'",
    ),
    Case("unknown top-level key", check("experimentt.name=x"), "unknown key for the recipe"),
    Case("unknown model", check("model.name=resnet7"), "unknown model 'resnet7'"),
    Case("wrong type", check("experiment.epochs=many"), "expected int, got str"),
    Case("NaN dropout", check("model.dropout=nan"), "expected a finite float, got float nan"),
    Case(
        "infinite learning rate",
        check("optimizer.lr=inf"),
        "expected a finite float, got float inf",
    ),
    Case(
        "name leaving output_dir",
        check('experiment.name="../../x"'),
        "must be a single folder name",
    ),
    Case("absolute name", check('experiment.name="/tmp/x"'), "must be a single folder name"),
    Case(
        "metrics file outside the run",
        check('callbacks=[{ name = "metrics_jsonl", filename = "/tmp/owned" }]'),
        "must be a path inside the run directory",
    ),
    Case(
        "metrics file above the run",
        check('callbacks=[{ name = "metrics_jsonl", filename = "../../x.jsonl" }]'),
        "must be a path inside the run directory",
    ),
    Case(
        "mixing in evaluation",
        check('augment.eval=[{ name = "mixup" }]'),
        "only training batches may do",
    ),
    Case(
        "torchvision Lambda",
        check(
            'augment.train=[{ name = "torchvision", transform = "Lambda", kwargs = { lambd = "os.system" } }]'
        ),
        "Lambda takes code",
    ),
    Case(
        "albumentations Lambda",
        check(
            'augment.train=[{ name = "albumentations", transform = "Lambda", kwargs = { image = "os.system" } }]'
        ),
        "Lambda takes code",
    ),
    Case(
        "per-sample after batch augmentation",
        check('augment.train=[{ name = "hflip" }, { name = "randaugment" }]'),
        "must come before the batch augmentations",
    ),
    Case("huge image size", check("data.image_size=100000"), "needs about"),
    Case("set without a value", check("optimizer.lr"), "expected KEY=VALUE"),
    Case("set past a list", check("augment.train[9].padding=1"), "does not exist"),
    Case(
        "set nested too deep", check("model.widths=" + "[" * 200 + "]" * 200), "nest deeper than 32"
    ),
    Case(
        "set an unknown attention",
        check("model.attention=nonesuch"),
        "--set model.attention=nonesuch",
    ),
    Case("parameter budget", check("model.max_params=10"), "more than model.max_params = 10"),
    Case(
        "unknown parameter of a component",
        check("model.attention.reductionn=2"),
        "did you mean 'reduction'",
    ),
    # runs
    Case(
        "CUDA that is not there",
        run(QUICKSTART, 'experiment.device="cuda"'),
        "CUDA is not available",
    ),
    Case(
        "output_dir that is a file",
        lambda box: [
            "run",
            str(box / "tiny.toml"),
            "--set",
            f'experiment.output_dir="{box / "a_file"}"',
        ],
        "cannot create the run directory",
    ),
    Case(
        "output that is not empty",
        lambda box: ["run", str(box / "tiny.toml"), "--output", str(box / "run")],
        "already exists and is not empty",
    ),
    Case(
        "a billion synthetic images",
        run("{box}/tiny.toml", "data.dataset.train_size=1000000000"),
        "needs about",
    ),
    Case(
        "resume of a folder without a run",
        lambda box: ["run", "--resume", str(box / "folder_ok")],
        "not a run directory",
    ),
    Case(
        "resume of a finished run",
        lambda box: ["run", "--resume", str(box / "run")],
        "the run is finished",
    ),
    Case(
        "resume changing the recipe",
        lambda box: ["run", "--resume", str(box / "run"), "--set", "data.workers=1"],
        "the run is finished",
    ),
    Case(
        "run and resume at once",
        lambda box: ["run", str(box / "tiny.toml"), "--resume", str(box / "run")],
        "give a RECIPE",
        code=2,
    ),
    # data folders
    Case(
        "a corrupt image",
        folder("folder_corrupt"),
        "cannot decode image {box}/folder_corrupt/b/bad.png",
    ),
    Case("an empty folder", folder("folder_empty"), "Couldn't find any class folder"),
    Case("a missing folder", folder("folder_nowhere"), "folder_nowhere does not exist"),
    Case("images of two sizes", folder("folder_mixed"), "set image_size to resize them all"),
    Case(
        "test classes that differ",
        folder("folder_ok", ', test_root = "{box}/folder_test"'),
        "class folders of",
    ),
    Case(
        "a decompression bomb", folder("folder_bomb"), "decompression bomb", patch=small_bomb_limit
    ),
    # predict
    Case("a pickle that runs a shell", predict("shell.pkl"), "refused to load posix.system"),
    Case("a pickle naming eval", predict("eval.pkl"), "refused to load builtins.eval"),
    Case("a truncated pickle", predict("truncated.pkl"), "not a readable pickle"),
    Case("a pickled string", predict("string.pkl"), "expected an array of uint8 images, got str"),
    Case("a pickle without data", predict("nodata.pkl"), "needs a 'data' key"),
    Case("ids that do not fit", predict("badids.pkl"), "1 ids for 4 images"),
    Case("an object array", predict("object.npy"), "not a readable .npy file"),
    Case("a corrupt .npy", predict("corrupt.npy"), "not a readable .npy file"),
    Case("a corrupt .pt", predict("corrupt.pt"), "not a readable .pt file"),
    Case("no images", predict("empty.npy"), "holds no images"),
    Case("float images", predict("floats.npy"), "expected uint8 images"),
    Case("five channels", predict("shape.npy"), "cannot read shape (2, 5, 8, 8)"),
    Case(
        "an unknown input type",
        predict("inputs.txt"),
        "expected an image file or folder, .npy, .pt or .pkl",
    ),
    Case("a missing input", predict("nothing.npy"), "input not found"),
    Case(
        "an existing CSV",
        lambda box: [
            "predict",
            str(box / "run"),
            str(box / "folder_ok"),
            "--out",
            str(box / "run" / "old.csv"),
        ],
        "exists; pass --overwrite",
    ),
    Case(
        "a CSV that is a folder",
        lambda box: [
            "predict",
            str(box / "run"),
            str(box / "folder_ok"),
            "--out",
            str(box / "folder_ok"),
        ],
        "is a directory",
    ),
    Case(
        "a CSV under a file",
        lambda box: [
            "predict",
            str(box / "run"),
            str(box / "folder_ok"),
            "--out",
            str(box / "a_file" / "p.csv"),
        ],
        "cannot write in",
    ),
    # checkpoints and eval
    Case("eval of nothing", eval_("{box}/nothing.pt"), "checkpoint not found"),
    Case("eval of a foreign .pt", eval_("{box}/foreign.pt"), "not a cvkit checkpoint"),
    Case("eval of random bytes", eval_("{box}/garbage.pt"), "not a readable checkpoint"),
    Case("eval of a damaged checkpoint", eval_("{box}/damaged.pt"), "damaged checkpoint"),
    Case(
        "two checkpoints without --ensemble",
        eval_("{box}/run", "{box}/run/checkpoints/last.pt"),
        "add --ensemble",
    ),
    Case("an unknown TTA view", eval_("{box}/run", "--tta", "rotate"), "unknown view 'rotate'"),
    Case(
        "eval --out that exists",
        eval_("{box}/run", "--out", "{box}/existing.json"),
        "exists; pass --overwrite",
    ),
    Case(
        "eval --out under a file",
        eval_("{box}/run", "--out", "{box}/a_file/e.json"),
        "cannot write in",
    ),
    Case(
        "eval with another architecture",
        eval_("{box}/run", "--set", "model.widths=[8, 12]"),
        "weights do not fit SimpleCNN",
    ),
    # tune
    Case(
        "a space with an infinite bound", tune("space_inf.toml"), "needs finite numbers low < high"
    ),
    Case("a space with an unknown key", tune("space_key.toml"), "unknown keys log_scale"),
    Case("a space with no choices", tune("space_choices.toml"), "non-empty choices list"),
    Case("a missing space", tune("space_none.toml"), "file not found"),
    Case(
        "a space key the recipe lacks",
        tune("space_unsettable.toml"),
        "unknown key for optimizer/sgd",
    ),
    Case("zero trials", tune("space_ok.toml", "--trials", "0"), "expected at least 1"),
    # components
    Case(
        "info of an unknown component", lambda box: ["info", "attention/sse"], "did you mean 'se'"
    ),
    Case("list of an unknown kind", lambda box: ["list", "attentions_"], "unknown component kind"),
    # signals
    Case("Ctrl-C in eval", eval_("{box}/run"), "interrupted", code=130, patch=keyboard_interrupt),
    Case("SIGTERM in check", check(), "terminated (SIGTERM)", code=143, patch=sigterm_in_check),
]


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "new" not in p.relative_to(folder).parts
    }


def test_the_corpus_is_large_and_its_names_unique() -> None:
    assert len(CASES) >= 60
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_hostile_input(case: Case, sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CVKIT_HOME", str(sandbox / "new" / "home"))
    if case.patch is not None:
        case.patch(monkeypatch)
    before = digests(sandbox)
    result = CliRunner().invoke(cli, case.args(sandbox), env=case.env, prog_name="cvkit")
    errors = [line for line in result.stderr.splitlines() if line.startswith(("error:", "Error:"))]
    assert result.exit_code == case.code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    message = case.message.format(box=sandbox)
    assert any(message in line for line in errors), (message, errors)
    assert all(len(line) < 400 for line in errors), errors
    assert digests(sandbox) == before
    assert not (sandbox / "pwned").exists()
