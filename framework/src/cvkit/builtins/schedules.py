"""Built-in plugin: learning-rate schedules from torch's schedulers, stepped once per
optimizer step: ``scheduler/constant``, ``cosine``, ``linear``, ``step``, ``multistep``,
``onecycle`` and ``cyclic``.

Every schedule but ``cyclic`` takes an optional linear warm-up (``warmup_epochs``, may be
fractional) that ramps the learning rate from ``warmup_start_factor`` times its value to its
value, after which the main schedule runs over the remaining steps (torch's SequentialLR).
:func:`with_warmup` adds those two parameters to a schedule written for the steps after the
warm-up. Parameters in epochs are converted to steps with the run's steps per epoch.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    CyclicLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    SequentialLR,
    StepLR,
)

from cvkit.hookspecs import Register, hookimpl

MainSchedule = Callable[..., LRScheduler]
"""``main(optimizer, *, steps, warmup_steps, steps_per_epoch, **params)``: the schedule over
the ``steps`` after a warm-up of ``warmup_steps`` steps."""

_WARMUP_DOCS = """        warmup_epochs: length of the linear warm-up in epochs (0 for none).
        warmup_start_factor: learning-rate factor at the first warm-up step."""

log = logging.getLogger("cvkit")


def with_warmup(main: MainSchedule) -> Callable[..., LRScheduler]:
    """A scheduler factory ``(optimizer, *, epochs, steps_per_epoch, **params,
    warmup_epochs=0.0, warmup_start_factor=0.01)`` running a linear warm-up, then ``main``.

    ``main``'s own keyword parameters (all but ``steps``, ``warmup_steps`` and
    ``steps_per_epoch``, which it receives computed) stay the factory's recipe parameters,
    with their types, defaults and docs; the two warm-up parameters are appended."""
    computed = {"steps", "warmup_steps", "steps_per_epoch"}
    own = [p for p in inspect.signature(main).parameters.values() if p.name not in computed]

    @functools.wraps(main)
    def factory(
        optimizer: Optimizer,
        *,
        epochs: int,
        steps_per_epoch: int,
        warmup_epochs: float = 0.0,
        warmup_start_factor: float = 0.01,
        **params: Any,
    ) -> LRScheduler:
        total = epochs * steps_per_epoch
        warmup = round(warmup_epochs * steps_per_epoch)
        if warmup < 0:
            raise ValueError(f"warmup_epochs={warmup_epochs} must be >= 0")
        if warmup >= total:  # a short run (--set experiment.epochs=1): keep half to schedule
            warmup = total // 2
            log.warning(
                "scheduler: warmup_epochs=%g is not shorter than this %d-epoch run; warming up "
                "over its first half (%d of %d steps) instead",
                warmup_epochs,
                epochs,
                warmup,
                total,
            )
        if not 0 < warmup_start_factor <= 1:
            raise ValueError(f"warmup_start_factor={warmup_start_factor} must be in (0, 1]")
        schedule = main(
            optimizer,
            steps=total - warmup,
            warmup_steps=warmup,
            steps_per_epoch=steps_per_epoch,
            **params,
        )
        if warmup == 0:
            return schedule
        ramp = LinearLR(
            optimizer, start_factor=warmup_start_factor, end_factor=1.0, total_iters=warmup
        )
        return SequentialLR(optimizer, [ramp, schedule], milestones=[warmup])

    keyword = inspect.Parameter.KEYWORD_ONLY
    factory.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("optimizer", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("epochs", keyword, annotation=int),
            inspect.Parameter("steps_per_epoch", keyword, annotation=int),
            *own[1:],
            inspect.Parameter("warmup_epochs", keyword, default=0.0, annotation=float),
            inspect.Parameter("warmup_start_factor", keyword, default=0.01, annotation=float),
        ],
        return_annotation=LRScheduler,
    )
    factory.__annotations__ = {
        **main.__annotations__,
        "epochs": int,
        "warmup_epochs": float,
        "warmup_start_factor": float,
    }
    factory.__doc__ = (main.__doc__ or "").rstrip() + "\n" + _WARMUP_DOCS + "\n    "
    return factory


@with_warmup
def constant(
    optimizer: Optimizer, *, steps: int, warmup_steps: int, steps_per_epoch: int
) -> LRScheduler:
    """Constant learning rate, after an optional linear warm-up.

    Args:
    """
    return ConstantLR(optimizer, factor=1.0, total_iters=0)


@with_warmup
def cosine(
    optimizer: Optimizer,
    *,
    steps: int,
    warmup_steps: int,
    steps_per_epoch: int,
    min_lr: float = 0.0,
) -> LRScheduler:
    """Cosine annealing to min_lr over the run (Loshchilov & Hutter, 2017), stepped per batch.

    Args:
        min_lr: learning rate at the end of the run.
    """
    return CosineAnnealingLR(optimizer, T_max=steps, eta_min=min_lr)


@with_warmup
def linear(
    optimizer: Optimizer,
    *,
    steps: int,
    warmup_steps: int,
    steps_per_epoch: int,
    end_factor: float = 0.0,
    group_epochs: dict[str, float] | None = None,
) -> LRScheduler:
    """Linear decay of every group's rate to end_factor times it over the run, stepped per batch.

    Step s of the decay trains at 1 - (1 - end_factor) * s / steps times the base rate
    (airbench's schedule with end_factor 0). Named parameter groups (``optimizer.groups``)
    may decay over fewer epochs, then keep end_factor.

    Args:
        end_factor: factor of the base rate reached at the end of the decay.
        group_epochs: group name -> epochs its decay lasts, counted after the warm-up,
            e.g. { whiten_bias = 3 }.
    """
    if not 0.0 <= end_factor <= 1.0:
        raise ValueError(f"end_factor={end_factor} must be in [0, 1]")
    names = [group.get("name", "") for group in optimizer.param_groups]
    lengths = dict.fromkeys(names, steps)
    for name, epochs in (group_epochs or {}).items():
        if name not in names:
            raise ValueError(
                f"group_epochs: the optimizer has no group {name!r}; its groups: "
                f"{', '.join(repr(n) for n in names)}"
            )
        if epochs <= 0:
            raise ValueError(f"group_epochs.{name} = {epochs} must be > 0")
        lengths[name] = min(steps, max(1, round(epochs * steps_per_epoch)))

    def decay(length: int) -> Callable[[int], float]:
        return lambda s: 1.0 - (1.0 - end_factor) * min(s, length) / length

    return LambdaLR(optimizer, [decay(lengths[name]) for name in names])


@with_warmup
def step(
    optimizer: Optimizer,
    *,
    steps: int,
    warmup_steps: int,
    steps_per_epoch: int,
    step_epochs: float,
    gamma: float = 0.1,
) -> LRScheduler:
    """Multiply the learning rate by gamma every step_epochs epochs (torch StepLR).

    Args:
        step_epochs: epochs between decays (counted after the warm-up).
        gamma: multiplicative decay factor.
    """
    step_size = round(step_epochs * steps_per_epoch)
    if step_size < 1:
        raise ValueError(f"step_epochs={step_epochs} is shorter than one step")
    return StepLR(optimizer, step_size=step_size, gamma=gamma)


@with_warmup
def multistep(
    optimizer: Optimizer,
    *,
    steps: int,
    warmup_steps: int,
    steps_per_epoch: int,
    milestones: list[float],
    gamma: float = 0.1,
) -> LRScheduler:
    """Multiply the learning rate by gamma at each milestone epoch (torch MultiStepLR).

    Args:
        milestones: epochs (from the start of the run) at which to decay, increasing.
        gamma: multiplicative decay factor.
    """
    at = [round(m * steps_per_epoch) - warmup_steps for m in milestones]
    if any(s <= 0 for s in at) or at != sorted(at):
        raise ValueError(f"milestones {milestones} must increase and lie after the warm-up")
    return MultiStepLR(optimizer, milestones=at, gamma=gamma)


@with_warmup
def onecycle(
    optimizer: Optimizer,
    *,
    steps: int,
    warmup_steps: int,
    steps_per_epoch: int,
    max_lr: float | None = None,
    pct_start: float = 0.3,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
    cycle_momentum: bool = True,
) -> LRScheduler:
    """One-cycle policy (Smith & Topin, 2019): torch OneCycleLR over the run.

    A warm-up before the cycle ramps up to the cycle's initial rate max_lr / div_factor.

    Args:
        max_lr: peak learning rate (default: the optimizer's learning rate).
        pct_start: fraction of the cycle spent increasing the learning rate.
        anneal_strategy: 'cos' or 'linear' annealing.
        div_factor: initial learning rate is max_lr / div_factor.
        final_div_factor: final learning rate is initial / final_div_factor.
        three_phase: use the three-phase variant.
        cycle_momentum: cycle momentum (or Adam's beta1) inversely to the learning rate.
    """
    peak = [group["lr"] for group in optimizer.param_groups] if max_lr is None else max_lr
    return OneCycleLR(
        optimizer,
        max_lr=peak,
        total_steps=steps,
        pct_start=pct_start,
        anneal_strategy=anneal_strategy,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        three_phase=three_phase,
        cycle_momentum=cycle_momentum,
    )


def cyclic(
    optimizer: Optimizer,
    *,
    steps_per_epoch: int,
    base_lr: float | None = None,
    max_lr: float | None = None,
    step_size_up_epochs: float = 2.0,
    step_size_down_epochs: float | None = None,
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
    gamma: float = 1.0,
    cycle_momentum: bool = False,
) -> LRScheduler:
    """Cyclical learning rates (Smith, WACV 2017): torch CyclicLR, cycling between two rates.

    Args:
        base_lr: lower learning rate (default: the optimizer's learning rate / 10).
        max_lr: upper learning rate (default: the optimizer's learning rate).
        step_size_up_epochs: epochs of the rising half-cycle (the paper: 2 to 10).
        step_size_down_epochs: epochs of the falling half-cycle (default: as the rise).
        mode: 'triangular', 'triangular2' (amplitude halves each cycle) or 'exp_range'.
        gamma: decay per step of the amplitude in 'exp_range' mode.
        cycle_momentum: cycle momentum inversely (needs an optimizer with momentum or betas).
    """
    down_epochs = step_size_up_epochs if step_size_down_epochs is None else step_size_down_epochs
    if step_size_up_epochs <= 0 or down_epochs <= 0:
        raise ValueError("step_size_up_epochs and step_size_down_epochs must be > 0")
    rates = [group["lr"] for group in optimizer.param_groups]
    up = max(1, round(step_size_up_epochs * steps_per_epoch))
    down = max(1, round(down_epochs * steps_per_epoch))
    return CyclicLR(
        optimizer,
        base_lr=[r / 10 for r in rates] if base_lr is None else base_lr,
        max_lr=rates if max_lr is None else max_lr,
        step_size_up=up,
        step_size_down=down,
        mode=mode,
        gamma=gamma,
        cycle_momentum=cycle_momentum,
    )


@hookimpl
def register_schedulers(register: Register) -> None:
    warmup = {"warmup_epochs": 1.5}
    register("constant", constant, examples=[{}, warmup])
    register("cosine", cosine, examples=[{}, {"min_lr": 1e-4, **warmup}])
    register("linear", linear, examples=[{}, {"end_factor": 0.1, **warmup}])
    register("step", step, examples=[{"step_epochs": 1}, {"step_epochs": 1, **warmup}])
    register(
        "multistep", multistep, examples=[{"milestones": [1, 2]}, {"milestones": [2], **warmup}]
    )
    register("onecycle", onecycle, examples=[{}, {"anneal_strategy": "linear", **warmup}])
    register(
        "cyclic",
        cyclic,
        examples=[{}, {"mode": "triangular2", "step_size_up_epochs": 0.5, "cycle_momentum": True}],
    )
