"""Invalid and hostile arguments: fastlr raises what torch raises, where torch raises it.

Two families:

* arguments torch rejects: the same exception type and message, at construction, with the optimizer
  left as torch leaves it;
* arguments torch accepts but that a C++ engine could mishandle (NaN, inf, zero periods, huge step
  counts, overflowing powers, odd types): never a crash, and exactly torch's behaviour, including
  the step at which an exception is raised and the state left behind (compared with state_dict()).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
from _torch_helpers import (
    ORDINARY_KWARGS,
    SCHEDULER_NAMES,
    assert_same_exception,
    assert_same_state,
    bits,
    build_pair,
    engine,
    fast_class,
    kwargs_id,
    lockstep,
    lr_values,
    make_optimizer,
    outcome,
    quiet,
    torch,
    torch_class,
)

NAN, INF = math.nan, math.inf


def both_construct(name: str, make, *args: Any, **kwargs: Any) -> tuple[BaseException | None, Any, Any]:
    """Construct torch's and fastlr's ``name`` on fresh optimizers; assert the same outcome and the
    same optimizer state afterwards. Returns (exception, torch optimizer, fastlr optimizer)."""
    o1, o2 = make(), make()
    with quiet():
        te = outcome(lambda: torch_class(name)(o1, *args, **kwargs))
        fe = outcome(lambda: fast_class(name)(o2, *args, **kwargs))
    assert_same_exception(te, fe, f"{name}{args}{kwargs}")
    if isinstance(o1, torch.optim.Optimizer):
        g1 = [{k: v for k, v in g.items() if k != "params"} for g in o1.param_groups]
        g2 = [{k: v for k, v in g.items() if k != "params"} for g in o2.param_groups]
        assert [list(g) for g in g1] == [list(g) for g in g2]
        assert [bits(list(g.values())) for g in g1] == [bits(list(g.values())) for g in g2]
        assert hasattr(o1.step, "_wrapped_by_lr_sched") == hasattr(o2.step, "_wrapped_by_lr_sched")
    return te, o1, o2


def opt3():
    return make_optimizer(3)


# ------------------------------------------------------------------------------------------------
# Arguments torch rejects at construction.

REJECTED = [
    ("ConstantLR", {"factor": 1.5}, ValueError),
    ("ConstantLR", {"factor": -0.1}, ValueError),
    ("ConstantLR", {"factor": 1.0000000000000002}, ValueError),
    ("ConstantLR", {"factor": INF}, ValueError),
    ("ConstantLR", {"factor": "0.5"}, TypeError),
    ("ConstantLR", {"factor": None}, TypeError),
    ("LinearLR", {"start_factor": 0}, ValueError),
    ("LinearLR", {"start_factor": 0.0}, ValueError),
    ("LinearLR", {"start_factor": -0.5}, ValueError),
    ("LinearLR", {"start_factor": 1.5}, ValueError),
    ("LinearLR", {"end_factor": -1e-300}, ValueError),
    ("LinearLR", {"end_factor": 2}, ValueError),
    ("LinearLR", {"start_factor": 0.5, "end_factor": INF}, ValueError),
    ("MultiplicativeLR", {"lr_lambda": 0.5}, TypeError),
    ("MultiplicativeLR", {"lr_lambda": [lambda e: 1.0, None, lambda e: 1.0]}, TypeError),
    ("MultiplicativeLR", {"lr_lambda": [lambda e: 1.0, lambda e: 1.0]}, ValueError),
    ("MultiplicativeLR", {"lr_lambda": (lambda e: 1.0,) * 4}, ValueError),
    ("LambdaLR", {"lr_lambda": [lambda e: 1.0] * 2}, ValueError),
    ("LambdaLR", {"lr_lambda": ()}, ValueError),
    ("LambdaLR", {"lr_lambda": 0.5}, TypeError),  # no check: fails calling it in the initial step
    ("LambdaLR", {"lr_lambda": [lambda e: 1.0, "x", lambda e: 1.0]}, TypeError),
    ("LambdaLR", {"lr_lambda": lambda: 1.0}, TypeError),  # wrong arity, at the initial step
    ("MultiStepLR", {"milestones": 5}, TypeError),  # Counter(5)
    ("MultiStepLR", {"milestones": None, "gamma": 0.5}, None),  # Counter(None) is empty: accepted
    ("StepLR", {}, TypeError),  # missing step_size
    ("ExponentialLR", {}, TypeError),  # missing gamma
    ("CosineAnnealingLR", {}, TypeError),  # missing T_max
    ("MultiStepLR", {}, TypeError),  # missing milestones
    ("LambdaLR", {}, TypeError),
    ("StepLR", {"step_size": 3, "gama": 0.1}, TypeError),  # unknown keyword
    ("PolynomialLR", {"total_iters": 5, "power": 1.0, "verbose": True}, TypeError),  # removed in torch 2.x
]


@pytest.mark.parametrize(
    "case", REJECTED, ids=[kwargs_id(n, kw) for n, kw, _ in REJECTED]
)
def test_constructor_rejects_like_torch(case):
    name, kwargs, expected = case
    te, _, _ = both_construct(name, opt3, **kwargs)
    assert type(te) is (type(None) if expected is None else expected)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
@pytest.mark.parametrize(
    "not_an_optimizer",
    [None, [], {"lr": 0.1}, "SGD", torch.nn.Linear(2, 2)],
    ids=["None", "list", "dict", "str", "Module"],
)
def test_non_optimizer(name, not_an_optimizer):
    """TypeError from the base class; LambdaLR/MultiplicativeLR touch param_groups first and raise
    AttributeError (torch's behaviour, reproduced)."""
    te, _, _ = both_construct(name, lambda: not_an_optimizer, **ORDINARY_KWARGS[name])
    expected = AttributeError if name in ("LambdaLR", "MultiplicativeLR") else TypeError
    assert type(te) is expected


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_duck_optimizer_with_param_groups(name):
    """An object with ``param_groups`` but not an Optimizer: torch's TypeError for every class."""

    class Duck:
        def __init__(self):
            self.param_groups = [{"params": [], "lr": 0.1}]

    te, _, _ = both_construct(name, Duck, **ORDINARY_KWARGS[name])
    assert type(te) is TypeError and str(te) == "Duck is not an Optimizer"


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
@pytest.mark.parametrize("missing", [0, 2], ids=["group0", "group2"])
def test_resume_without_initial_lr(name, missing):
    """``last_epoch >= 0`` needs ``initial_lr`` in every group: KeyError naming the first offender."""

    def make():
        o = make_optimizer(3)
        for i, g in enumerate(o.param_groups):
            if i != missing:
                g["initial_lr"] = g["lr"]
        return o

    te, _, _ = both_construct(name, make, **ORDINARY_KWARGS[name], last_epoch=4)
    assert type(te) is KeyError and f"param_groups[{missing}]" in str(te)


# ------------------------------------------------------------------------------------------------
# Accepted arguments where Python raises later: the same exception at the same step, same state.

RAISING_LATER = [
    # (name, kwargs, steps, step action, exception type, step at which it is raised)
    ("CosineAnnealingLR", {"T_max": 0}, 5, None, ZeroDivisionError, 1),
    ("CosineAnnealingLR", {"T_max": 0.0}, 5, None, ZeroDivisionError, 1),
    ("CosineAnnealingLR", {"T_max": 5e-324}, 5, None, ValueError, 1),  # math.cos(inf)
    ("StepLR", {"step_size": 0}, 5, None, ZeroDivisionError, 1),
    ("StepLR", {"step_size": 0.0}, 5, None, ZeroDivisionError, 1),
    ("StepLR", {"step_size": -0.0, "gamma": 0.5}, 5, None, ZeroDivisionError, 1),
    ("ConstantLR", {"factor": 0, "total_iters": 4}, 10, None, ZeroDivisionError, 4),
    ("ConstantLR", {"factor": 0.0, "total_iters": 1}, 10, None, ZeroDivisionError, 1),
    ("ConstantLR", {"factor": 0.0, "total_iters": 4.0}, 10, None, ZeroDivisionError, 4),
    ("PolynomialLR", {"total_iters": 6, "power": -1}, 10, None, ZeroDivisionError, 6),
    ("PolynomialLR", {"total_iters": 3.0, "power": -0.5}, 10, None, ZeroDivisionError, 3),
    ("PolynomialLR", {"total_iters": 0}, 3, "epoch", ZeroDivisionError, 1),  # closed form: x / 0
    ("LinearLR", {"total_iters": 0}, 3, "epoch", ZeroDivisionError, 1),
    ("ExponentialLR", {"gamma": 1e300}, 3, "epoch", OverflowError, 2),  # (1e300) ** 2 in the closed form
    ("ExponentialLR", {"gamma": -10.0}, 3, "big_epoch", OverflowError, 1),
    ("ExponentialLR", {"gamma": 10}, 3, "big_epoch", OverflowError, 1),  # int ** int: too large for a float
    ("StepLR", {"step_size": 1, "gamma": 10.0}, 3, "big_epoch", OverflowError, 1),
    ("StepLR", {"step_size": 2, "gamma": 3}, 3, "big_epoch", OverflowError, 1),
    ("MultiStepLR", {"milestones": [1] * 400, "gamma": 10}, 3, None, OverflowError, 1),  # 10 ** 400: int
    ("MultiStepLR", {"milestones": [1] * 400, "gamma": 10.0}, 3, None, OverflowError, 1),  # float pow
    ("MultiStepLR", {"milestones": [2] * 400, "gamma": 0.5}, 3, None, None, None),  # underflow: no error
    ("MultiStepLR", {"milestones": [1] * 400, "gamma": 10.0}, 3, "epoch", OverflowError, 1),
]


def _epoch_action(kind: str | None):
    if kind is None:
        return lambda s, k: s.step()
    if kind == "epoch":
        return lambda s, k: s.step(k + 1)
    if kind == "big_epoch":
        return lambda s, k: s.step(3_100 + k)
    raise ValueError(kind)


@pytest.mark.parametrize(
    "case",
    RAISING_LATER,
    ids=[f"{kwargs_id(c[0], c[1])}-{c[3] or 'step'}" for c in RAISING_LATER],
)
def test_raises_at_the_same_step(case):
    name, kwargs, n_steps, action, expected, at = case
    s1, s2, o1, o2 = build_pair(name, opt3, kwargs)
    completed, raised = lockstep(s1, s2, o1, o2, n_steps, action=_epoch_action(action))
    if expected is None:
        assert raised is None
        return
    assert type(raised) is expected, raised
    assert completed + 1 == at
    # and the scheduler keeps working (or keeps raising) exactly like torch's afterwards
    lockstep(s1, s2, o1, o2, 3)
    assert_same_state(s1, s2)


def test_constant_factor_zero_total_iters_zero():
    """factor 0 with total_iters 0: lr is multiplied by 0 once and never divided (torch: no error)."""
    s1, s2, o1, o2 = build_pair("ConstantLR", opt3, {"factor": 0, "total_iters": 0})
    completed, raised = lockstep(s1, s2, o1, o2, 50)
    assert raised is None and lr_values(o2) == [0.0, 0.0, 0.0]
    assert engine(s2).deferred == 0


# ------------------------------------------------------------------------------------------------
# NaN, inf and extreme values: no crash, torch's numbers.

NONFINITE = [
    ("StepLR", {"step_size": NAN, "gamma": 0.5}),
    ("StepLR", {"step_size": INF, "gamma": 0.5}),
    ("StepLR", {"step_size": 2, "gamma": NAN}),
    ("StepLR", {"step_size": 2, "gamma": -INF}),
    ("MultiStepLR", {"milestones": [NAN, INF, 3], "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [3, 3], "gamma": INF}),
    ("ConstantLR", {"factor": NAN, "total_iters": 3}),
    ("ConstantLR", {"factor": 0.5, "total_iters": NAN}),
    ("ConstantLR", {"factor": 0.5, "total_iters": INF}),
    ("LinearLR", {"start_factor": NAN}),
    ("LinearLR", {"end_factor": NAN}),
    ("LinearLR", {"total_iters": INF}),
    ("LinearLR", {"total_iters": NAN}),
    ("LinearLR", {"start_factor": 5e-324, "end_factor": 1.0, "total_iters": 10**15}),
    ("ExponentialLR", {"gamma": NAN}),
    ("ExponentialLR", {"gamma": INF}),
    ("ExponentialLR", {"gamma": 1e300}),
    ("ExponentialLR", {"gamma": -1e300}),
    ("ExponentialLR", {"gamma": 5e-324}),
    ("PolynomialLR", {"total_iters": NAN, "power": 1.0}),
    ("PolynomialLR", {"total_iters": INF, "power": 1.0}),
    ("PolynomialLR", {"total_iters": 10, "power": NAN}),
    ("PolynomialLR", {"total_iters": 10, "power": INF}),
    ("PolynomialLR", {"total_iters": 10, "power": -INF}),
    ("PolynomialLR", {"total_iters": 10, "power": 1e308}),
    ("CosineAnnealingLR", {"T_max": NAN}),
    ("CosineAnnealingLR", {"T_max": INF}),
    ("CosineAnnealingLR", {"T_max": -INF}),
    ("CosineAnnealingLR", {"T_max": 1e-300}),
    ("CosineAnnealingLR", {"T_max": 10, "eta_min": NAN}),
    ("CosineAnnealingLR", {"T_max": 10, "eta_min": INF}),
    ("CosineAnnealingLR", {"T_max": 10, "eta_min": -1e308}),
    ("CosineAnnealingLR", {"T_max": -3}),
    ("LambdaLR", {"lr_lambda": lambda e: NAN}),
    ("LambdaLR", {"lr_lambda": lambda e: INF if e % 2 else -INF}),
    ("MultiplicativeLR", {"lr_lambda": lambda e: 1e300}),
]


@pytest.mark.parametrize(
    "case", NONFINITE, ids=[kwargs_id(n, kw) for n, kw in NONFINITE]
)
def test_nonfinite_arguments(case):
    name, kwargs = case
    s1, s2, o1, o2 = build_pair(name, opt3, kwargs)
    completed, raised = lockstep(s1, s2, o1, o2, 40)
    lockstep(s1, s2, o1, o2, 12, action=lambda s, k: s.step(k * 3))
    assert_same_state(s1, s2)
    if raised is None:
        assert engine(s2).handled >= 41


@pytest.mark.parametrize("lr", [NAN, INF, 0.0, 5e-324, 1e308], ids=repr)
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_nonfinite_and_extreme_learning_rates(name, lr):
    """Optimizers accept lr=nan/inf (``lr < 0`` is False): schedules on them match torch."""
    s1, s2, o1, o2 = build_pair(name, lambda: make_optimizer(3, base_lrs=[lr, 0.1, -0.0]), ORDINARY_KWARGS[name])
    completed, raised = lockstep(s1, s2, o1, o2, 30)
    assert raised is None
    lockstep(s1, s2, o1, o2, 6, action=lambda s, k: s.step(k))
    assert_same_state(s1, s2)


# ------------------------------------------------------------------------------------------------
# Huge step counts: last_epoch near and beyond 2**53 (where doubles stop being exact integers),
# 2**62, the int64 limits, and beyond.

HUGE = [2**53 - 4, 2**53, 2**62, 2**63 - 3, 2**64, -(2**62), -(2**63) - 5]


def _resume_optimizer():
    o = make_optimizer(3)
    for g in o.param_groups:
        g["initial_lr"] = g["lr"]
        g["lr"] = g["lr"] * 0.9
    return o


@pytest.mark.parametrize("last_epoch", HUGE, ids=lambda v: f"le={v}")
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_huge_last_epoch(name, last_epoch):
    kwargs = dict(ORDINARY_KWARGS[name], last_epoch=last_epoch)
    s1, s2, o1, o2 = build_pair(name, _resume_optimizer, kwargs)
    if s1 is None:
        return
    lockstep(s1, s2, o1, o2, 8)
    assert_same_state(s1, s2)


@pytest.mark.parametrize("epoch", HUGE + [2**53 + 1, 2**53 - 1], ids=lambda v: f"epoch={v}")
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_huge_step_epoch(name, epoch):
    """step(epoch) with huge epochs: closed forms with huge exponents/divisions, as torch.
    (Float gammas only: an int gamma ** 2**62 is a legitimately endless computation in torch.)"""
    s1, s2, o1, o2 = build_pair(name, opt3, ORDINARY_KWARGS[name])
    lockstep(s1, s2, o1, o2, 4, action=lambda s, k: s.step(epoch + k) if k % 2 == 0 else s.step())
    assert_same_state(s1, s2)


def test_crossing_two_to_the_53():
    """Stepping across 2**53: the engine works below, defers above, values equal torch's throughout."""
    for name in ("CosineAnnealingLR", "StepLR", "PolynomialLR", "LambdaLR"):
        kwargs = dict(ORDINARY_KWARGS[name], last_epoch=2**53 - 6)
        if name == "CosineAnnealingLR":
            kwargs["T_max"] = 2**52 + 3
        if name == "PolynomialLR":
            kwargs["total_iters"] = 2**53 - 2
        s1, s2, o1, o2 = build_pair(name, _resume_optimizer, kwargs)
        completed, raised = lockstep(s1, s2, o1, o2, 12)
        assert raised is None, name
        assert_same_state(s1, s2, name)
        assert engine(s2).handled >= 3, name


HUGE_HYPER = [
    ("StepLR", {"step_size": 2**70, "gamma": 0.5}),
    ("StepLR", {"step_size": 3, "gamma": 2**70}),
    ("StepLR", {"step_size": 2**62, "gamma": 2**62}),
    ("MultiStepLR", {"milestones": [2, 2**70], "gamma": 2**65}),
    ("ConstantLR", {"factor": 0.5, "total_iters": 2**64}),
    ("ConstantLR", {"factor": 0.5, "total_iters": -(2**64)}),
    ("LinearLR", {"start_factor": 0.5, "total_iters": 2**63}),
    ("LinearLR", {"start_factor": 1, "end_factor": 0, "total_iters": 2**53 + 1}),
    ("ExponentialLR", {"gamma": 2**80}),
    ("ExponentialLR", {"gamma": -(2**63)}),
    ("PolynomialLR", {"total_iters": 2**70, "power": 2}),
    ("PolynomialLR", {"total_iters": 2**53 + 1, "power": 2**70}),
    ("CosineAnnealingLR", {"T_max": 2**100, "eta_min": 2**60}),
    ("CosineAnnealingLR", {"T_max": 2**62 - 1}),
    ("CosineAnnealingLR", {"T_max": 2**63 - 1}),  # 2 * T_max overflows int64
    ("LambdaLR", {"lr_lambda": lambda e: 2**80 + e}),
    ("MultiplicativeLR", {"lr_lambda": lambda e: 2**64}),
]


@pytest.mark.parametrize(
    "case", HUGE_HYPER, ids=[kwargs_id(n, kw) for n, kw in HUGE_HYPER]
)
def test_huge_int_hyperparameters(case):
    """Ints beyond int64 and beyond 2**53: Python's exact int arithmetic, so torch's values."""
    name, kwargs = case
    s1, s2, o1, o2 = build_pair(name, opt3, kwargs)
    lockstep(s1, s2, o1, o2, 20)
    lockstep(s1, s2, o1, o2, 4, action=lambda s, k: s.step(k + 1))
    assert_same_state(s1, s2)


# ------------------------------------------------------------------------------------------------
# Odd but accepted types (numpy and tensor hyperparameters, bools, float subclasses).


class MyFloat(float):
    pass


class MyInt(int):
    pass


ODD_TYPES = [
    ("StepLR", {"step_size": np.int64(3), "gamma": np.float64(0.5)}),
    ("StepLR", {"step_size": True, "gamma": np.float32(0.5)}),
    ("StepLR", {"step_size": MyInt(2), "gamma": MyFloat(0.5)}),
    ("MultiStepLR", {"milestones": np.array([2, 4, 4]), "gamma": 0.5}),
    ("MultiStepLR", {"milestones": (MyInt(2), 3.0), "gamma": torch.tensor(0.5)}),
    ("ConstantLR", {"factor": np.float64(0.25), "total_iters": np.int32(3)}),
    ("ConstantLR", {"factor": torch.tensor(0.25), "total_iters": 3}),
    ("LinearLR", {"start_factor": torch.tensor(0.25, dtype=torch.float64), "total_iters": 4}),
    ("LinearLR", {"start_factor": MyFloat(0.25), "end_factor": np.float16(0.5), "total_iters": MyInt(4)}),
    ("ExponentialLR", {"gamma": torch.tensor(0.9)}),
    ("ExponentialLR", {"gamma": np.float64(0.9)}),
    ("ExponentialLR", {"gamma": False}),
    ("ExponentialLR", {"gamma": 1 + 0j}),
    ("PolynomialLR", {"total_iters": np.int64(6), "power": np.float32(1.5)}),
    ("PolynomialLR", {"total_iters": 6, "power": torch.tensor(2.0)}),
    ("CosineAnnealingLR", {"T_max": np.int64(10), "eta_min": np.float64(1e-3)}),
    ("CosineAnnealingLR", {"T_max": 10, "eta_min": torch.tensor(1e-3)}),
    ("CosineAnnealingLR", {"T_max": MyInt(10), "eta_min": MyFloat(1e-3)}),
    ("LambdaLR", {"lr_lambda": lambda e: MyFloat(0.5)}),
    ("MultiplicativeLR", {"lr_lambda": lambda e: True}),
]


@pytest.mark.parametrize(
    "case", ODD_TYPES, ids=[f"{n}-{','.join(f'{k}={type(v).__name__}' for k, v in kw.items())}" for n, kw in ODD_TYPES]
)
def test_odd_argument_types(case):
    name, kwargs = case
    s1, s2, o1, o2 = build_pair(name, opt3, kwargs)
    if s1 is None:
        return
    lockstep(s1, s2, o1, o2, 25)
    lockstep(s1, s2, o1, o2, 4, action=lambda s, k: s.step(k + 2))
    assert [type(x) for x in lr_values(o1)] == [type(x) for x in lr_values(o2)]
    assert_same_state(s1, s2)


# ------------------------------------------------------------------------------------------------
# Corrupted state (load_state_dict does no validation in torch): the same exceptions.

CORRUPT = [
    ("StepLR", {"gamma": "0.5"}),
    ("StepLR", {"step_size": None}),
    ("StepLR", {"last_epoch": "3"}),
    ("StepLR", {"last_epoch": 2.5}),
    ("StepLR", {"_step_count": None}),
    ("StepLR", {"_is_initial": 1}),
    ("MultiStepLR", {"milestones": [2, 5]}),  # a list: `le in list`, then list[le]
    ("MultiStepLR", {"milestones": {3: 2, 4: "x"}}),
    ("MultiStepLR", {"milestones": {3: -2, 5: 0}}),
    ("ConstantLR", {"factor": [0.5]}),
    ("LinearLR", {"total_iters": None}),
    ("ExponentialLR", {"gamma": None}),
    ("PolynomialLR", {"power": "2"}),
    ("CosineAnnealingLR", {"base_lrs": [0.1, 0.2]}),  # wrong length: zip strict at the T_max+1 step
    ("CosineAnnealingLR", {"base_lrs": ["a", 0.2, 0.3]}),
    ("CosineAnnealingLR", {"eta_min": "0"}),
    ("LambdaLR", {"base_lrs": [0.1]}),
    ("LambdaLR", {"lr_lambdas": [None, None, None]}),
    ("MultiplicativeLR", {"lr_lambdas": [lambda e: 0.5]}),
]


@pytest.mark.parametrize(
    "case", CORRUPT, ids=[kwargs_id(n, kw) for n, kw in CORRUPT]
)
def test_corrupted_state(case):
    """Attributes overwritten with wrong types or lengths (torch validates nothing): the engine never
    trusts them, and the outcome of every step is torch's."""
    name, bad = case
    s1, s2, o1, o2 = build_pair(name, opt3, ORDINARY_KWARGS[name])
    for s in (s1, s2):
        s.__dict__.update(bad)
    completed, raised = lockstep(s1, s2, o1, o2, 12)
    lockstep(s1, s2, o1, o2, 3, action=lambda s, k: s.step(k))
    assert_same_state(s1, s2)


def test_param_groups_replaced_by_odd_objects():
    """A group whose lr is an int, a bool, a numpy float, or missing: torch's outcome."""
    for name in SCHEDULER_NAMES:
        for value in (1, True, np.float64(0.2), MyFloat(0.2), None, "lr"):
            s1, s2, o1, o2 = build_pair(name, opt3, ORDINARY_KWARGS[name])

            def between(k, opt, value=value):
                if k == 2:
                    opt.param_groups[1]["lr"] = value

            lockstep(s1, s2, o1, o2, 10, between=between)
            assert [type(x) for x in lr_values(o1)] == [type(x) for x in lr_values(o2)], (name, value)


def test_missing_lr_key():
    """A group without "lr": torch's KeyError at the same step."""
    for name in SCHEDULER_NAMES:
        s1, s2, o1, o2 = build_pair(name, opt3, ORDINARY_KWARGS[name])

        def between(k, opt):
            if k == 3:
                del opt.param_groups[2]["lr"]

        completed, raised = lockstep(s1, s2, o1, o2, 10, between=between)
        assert isinstance(raised, KeyError), (name, raised)


def test_no_param_groups():
    """An optimizer whose param_groups list was emptied after construction."""
    for name in SCHEDULER_NAMES:
        s1, s2, o1, o2 = build_pair(name, opt3, ORDINARY_KWARGS[name])
        for o in (o1, o2):
            o.param_groups.clear()
        lockstep(s1, s2, o1, o2, 8)
        with quiet():
            te, fe = outcome(lambda: s1.step(3)), outcome(lambda: s2.step(3))
        assert_same_exception(te, fe, f"{name}: step(3) without groups")
        assert_same_state(s1, s2)


@pytest.mark.parametrize("last_epoch", [-1.0, True, False, 2.5, np.int64(3), -2, -1.5], ids=repr)
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_odd_last_epoch_values(name, last_epoch):
    """Float, bool and numpy ``last_epoch`` (``-1.0 == -1`` starts fresh; others resume)."""

    def make():
        o = make_optimizer(3)
        for g in o.param_groups:
            g["initial_lr"] = g["lr"] * 1.25
        return o

    s1, s2, o1, o2 = build_pair(name, make, dict(ORDINARY_KWARGS[name], last_epoch=last_epoch))
    if s1 is None:
        return
    lockstep(s1, s2, o1, o2, 15)
    assert_same_state(s1, s2)


@pytest.mark.parametrize("name", ["LambdaLR", "MultiplicativeLR"])
def test_lambda_adding_a_param_group_mid_step(name):
    """torch's zip(strict=True) raises after writing the first groups; fastlr writes and raises alike."""
    def lam_for(opt):
        def lam(e):
            if e == 3 and len(opt.param_groups) == 3:
                opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.5})
            return 0.9**e

        return lam

    o1, o2 = make_optimizer(3), make_optimizer(3)
    with quiet():
        s1, s2 = torch_class(name)(o1, lam_for(o1)), fast_class(name)(o2, lam_for(o2))
    completed, raised = lockstep(s1, s2, o1, o2, 5)
    assert isinstance(raised, ValueError) and completed == 2
