"""Bitwise parity of fastlr's drop-in schedulers with the installed torch.

Every test builds the same optimizer twice, attaches torch's scheduler to one and fastlr's to the
other, and compares ``get_last_lr()`` and every ``group["lr"]`` after every step. Where torch raises,
fastlr must raise the same exception at the same step and be left in the same state. Tests of float
learning rates also check that fastlr's C++ engine did the work (``deferred == 0``), so that they
cannot pass on torch's own Python code.
"""

from __future__ import annotations

import copy
import math
import os
from typing import Any, Callable

import numpy as np
import pytest

pytest.importorskip("torch")
from _torch_helpers import (
    GROUP_COUNTS,
    ORDINARY_KWARGS,
    SCHEDULER_NAMES,
    assert_same_lrs,
    assert_same_state,
    base_lrs_for,
    bits,
    build_pair,
    engine,
    fast_class,
    kwargs_id,
    lockstep,
    lr_values,
    make_optimizer,
    quiet,
    to_f32,
    torch,
    torch_class,
)
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from hypothesis import strategies as st

#: The issue asks for at least this many steps per configuration. Both knobs can be changed for a
#: deeper local search, e.g. FASTLR_PARITY_EXAMPLES=300 FASTLR_PARITY_STEPS=500.
N_STEPS = int(os.environ.get("FASTLR_PARITY_STEPS", "10000"))
N_EXAMPLES = int(os.environ.get("FASTLR_PARITY_EXAMPLES", "6"))

# ------------------------------------------------------------------------------------------------
# Arguments. Every strategy mixes ordinary values with the awkward ones torch accepts: int where a
# float is documented (and the reverse), gamma > 1 (overflow to inf), 0, NaN, negative values, ...

NAN, INF = math.nan, math.inf

GAMMA = st.one_of(
    st.floats(0.0, 1.0),
    st.floats(-2.0, 2.0),
    st.sampled_from([0, 1, 2, -1, True, 0.0, 1.0, 1.5, 10.0, 1e300, -0.5, 0.999, 0.9999, 0.1, NAN, INF]),
)
ITERS = st.one_of(
    st.integers(0, 12_000),
    st.integers(-3, 40),
    st.sampled_from([0, 1, 5.0, 2.5, 7.0, 0.5, 10**6, 1e9, -3, NAN, INF]),
)


def _lambda_specs() -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(
        st.tuples(st.just("pow"), st.floats(0.5, 1.0)),
        st.tuples(st.just("inv"), st.integers(1, 50)),
        st.tuples(st.just("int_mod"), st.integers(1, 9)),
        st.tuples(st.just("const"), st.sampled_from([1, 0, 2, 0.5, 0.95, 1.0, 0.999, 1.01])),
        st.tuples(st.just("warmup"), st.integers(1, 2_000)),
        st.tuples(st.just("every"), st.integers(1, 50)),
        st.tuples(st.just("object"), st.floats(0.9, 1.0)),
        st.tuples(st.just("numpy"), st.floats(0.9, 1.0)),
        st.tuples(st.just("numpy32"), st.floats(0.9, 1.0)),
    )


class ScaledCounter:
    """A callable object with state (torch saves its ``__dict__`` in ``state_dict()``)."""

    def __init__(self, c: float) -> None:
        self.c = c
        self.calls = 0

    def __call__(self, epoch: int) -> float:
        self.calls += 1
        return self.c ** (epoch % 11)


def make_lambda(spec: tuple[str, Any]) -> Callable[[int], Any]:
    """A fresh callable for one side (callables with state must not be shared by torch and fastlr)."""
    kind, c = spec
    if kind == "pow":
        return lambda e: c**e
    if kind == "inv":
        return lambda e: 1.0 / (e + c)
    if kind == "int_mod":
        return lambda e: e % c  # an int
    if kind == "const":
        return lambda e: c
    if kind == "warmup":
        return lambda e: min(1.0, (e + 1) / c)
    if kind == "every":
        return lambda e: 0.5 if e % c == 0 else 1  # float or int
    if kind == "object":
        return ScaledCounter(c)
    if kind == "numpy":
        return lambda e: np.float64(c) ** (e % 13)
    if kind == "numpy32":
        return lambda e: np.float32(c)
    raise ValueError(kind)


def _plain_spec(spec: tuple[str, Any]) -> bool:
    """Lambdas returning Python ints/floats: the engine must do those steps itself."""
    return not spec[0].startswith("numpy")


def kwargs_strategy(name: str, n_groups: int) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments for ``name``. Lambda classes get ``lr_lambda`` as a spec (or a list of specs), turned
    into fresh callables per side by :func:`materialize`."""
    if name in ("LambdaLR", "MultiplicativeLR"):
        spec = _lambda_specs()
        return st.fixed_dictionaries(
            {"lr_lambda": st.one_of(spec, st.lists(spec, min_size=n_groups, max_size=n_groups))}
        )
    if name == "StepLR":
        return st.fixed_dictionaries(
            {
                "step_size": st.one_of(
                    st.integers(1, 60), st.sampled_from([1, 2.5, 7.0, -3, 12_000, 0.75, INF, NAN])
                ),
                "gamma": GAMMA,
            }
        )
    if name == "MultiStepLR":
        milestone = st.one_of(st.integers(-5, 12_000), st.integers(0, 40), st.sampled_from([5.0, 3, 3, 0, -1]))
        return st.fixed_dictionaries({"milestones": st.lists(milestone, max_size=8), "gamma": GAMMA})
    if name == "ConstantLR":
        factor = st.one_of(
            st.floats(0.0, 1.0), st.sampled_from([0, 1, 0.0, 1.0, 1.0 / 3, 0.1, 0.7, 0.5, 5e-324, NAN, True])
        )
        return st.fixed_dictionaries({"factor": factor, "total_iters": ITERS})
    if name == "LinearLR":
        start = st.one_of(st.floats(1e-9, 1.0), st.sampled_from([1, 1.0, 1.0 / 3, 5e-324, 0.1, NAN]))
        end = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0, 1, 0.0, 1.0, NAN]))
        return st.fixed_dictionaries({"start_factor": start, "end_factor": end, "total_iters": ITERS})
    if name == "ExponentialLR":
        return st.fixed_dictionaries({"gamma": GAMMA})
    if name == "PolynomialLR":
        power = st.one_of(
            st.floats(-3.0, 5.0), st.sampled_from([0, 1, 2, 3, -1, 0.0, 1.0, 0.5, -0.5, NAN, INF])
        )
        return st.fixed_dictionaries({"total_iters": ITERS, "power": power})
    if name == "CosineAnnealingLR":
        t_max = st.one_of(
            st.integers(1, 20_000),
            st.integers(1, 40),
            st.sampled_from([7.0, 2.5, 0.5, 10**9, 2**40, 1, 0, -7, 3.0, INF, NAN]),
        )
        eta_min = st.one_of(st.floats(0.0, 1e-2), st.sampled_from([0, 1, 0.0, 1e-6, 0.2, -1e-3]))
        return st.fixed_dictionaries({"T_max": t_max, "eta_min": eta_min})
    raise ValueError(name)


def materialize(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Fresh arguments for one side: lambda specs become new callables."""
    out = dict(kwargs)
    lam = out.get("lr_lambda")
    if isinstance(lam, tuple):
        out["lr_lambda"] = make_lambda(lam)
    elif isinstance(lam, list):
        out["lr_lambda"] = [make_lambda(s) for s in lam]
    return out


def is_plain(kwargs: dict[str, Any]) -> bool:
    """Whether fastlr's engine must do every step itself (no numpy values)."""
    lam = kwargs.get("lr_lambda")
    if isinstance(lam, tuple):
        return _plain_spec(lam)
    if isinstance(lam, list):
        return all(_plain_spec(s) for s in lam)
    return True


def assert_engine_did_the_work(f_sched: Any, completed: int, raised: BaseException | None) -> None:
    """Every completed update (construction + ``completed`` steps) was computed by the engine; only a
    step at which Python raises is left to torch's code (which raises torch's exception)."""
    eng = engine(f_sched)
    assert f_sched.uses_fast_path
    assert eng.handled == completed + 1, (eng.handled, eng.deferred, completed)
    assert eng.deferred == (0 if raised is None else 1), (eng.handled, eng.deferred, raised)


def _optimizer_factory(n_groups: int, lr_kind: str = "float") -> Callable[[], Any]:
    return lambda: make_optimizer(n_groups, lr_kind)


# ------------------------------------------------------------------------------------------------
# 1. Hypothesis-generated arguments, 10,000 steps, 1/3/17 param groups, float lrs.


@pytest.mark.parametrize("n_groups", GROUP_COUNTS, ids=lambda n: f"G{n}")
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
@settings(max_examples=N_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_matches_torch(name, n_groups, data):
    kwargs = data.draw(kwargs_strategy(name, n_groups), label="kwargs")
    s1, s2, o1, o2 = build_pair(name, _optimizer_factory(n_groups), lambda: materialize(kwargs))
    if s1 is None:
        return  # both raised the same exception at construction (checked by build_pair)
    completed, raised = lockstep(s1, s2, o1, o2, N_STEPS)
    assert_same_state(s1, s2, "at the end")
    if is_plain(kwargs):
        assert_engine_did_the_work(s2, completed, raised)


#: Hand-picked awkward configurations, each run for 10,000 steps on 3 groups (hypothesis may not
#: draw these every run).
AWKWARD: list[tuple[str, dict[str, Any]]] = [
    ("StepLR", {"step_size": 1, "gamma": 1.5}),  # overflows to inf
    ("StepLR", {"step_size": 2, "gamma": 0}),  # int 0
    ("StepLR", {"step_size": 7.0, "gamma": 1}),  # float step, int gamma
    ("StepLR", {"step_size": -3, "gamma": 0.5}),  # Python modulo, sign of the divisor
    ("MultiStepLR", {"milestones": [9, 3, 3, -1, 0, 3, 9_999], "gamma": 0.3}),
    ("MultiStepLR", {"milestones": [5.0, 5, 20], "gamma": 2}),
    ("ConstantLR", {"factor": 0, "total_iters": 0}),  # factor 0 never divided by
    ("ConstantLR", {"factor": 1, "total_iters": 5.0}),  # ints and floats swapped
    ("ConstantLR", {"factor": 0.1, "total_iters": 100}),
    ("LinearLR", {"start_factor": 1, "end_factor": 0, "total_iters": 10_000}),
    ("LinearLR", {"start_factor": 0.5, "end_factor": 0.1, "total_iters": 2_500.0}),
    ("LinearLR", {"start_factor": 1.0 / 3, "end_factor": 1, "total_iters": 0}),
    ("ExponentialLR", {"gamma": 1.5}),
    ("ExponentialLR", {"gamma": 0.0}),
    ("ExponentialLR", {"gamma": 1}),
    ("ExponentialLR", {"gamma": -0.999}),
    ("PolynomialLR", {"total_iters": 10_000, "power": 1.0}),
    ("PolynomialLR", {"total_iters": 100, "power": 0}),
    ("PolynomialLR", {"total_iters": 9_000, "power": -1.5}),  # 0 ** negative at le == T: raises
    ("PolynomialLR", {"total_iters": 5.0, "power": 2}),
    ("PolynomialLR", {"total_iters": 0, "power": 1.0}),  # chainable never changes the lr
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 1e-3}),
    ("CosineAnnealingLR", {"T_max": 7.0, "eta_min": 0}),
    ("CosineAnnealingLR", {"T_max": 100, "eta_min": 1}),  # eta_min int, above the base lrs
    ("CosineAnnealingLR", {"T_max": 10**12, "eta_min": 1e-6}),  # large T_max
    ("CosineAnnealingLR", {"T_max": 2.5, "eta_min": 0.0}),
    ("LambdaLR", {"lr_lambda": ("int_mod", 4)}),
    ("LambdaLR", {"lr_lambda": ("numpy", 0.99)}),
    ("MultiplicativeLR", {"lr_lambda": ("const", 1)}),
    ("MultiplicativeLR", {"lr_lambda": ("numpy32", 0.999)}),
]


@pytest.mark.parametrize("case", AWKWARD, ids=[kwargs_id(n, kw) for n, kw in AWKWARD])
def test_matches_torch_awkward(case):
    name, kwargs = case
    s1, s2, o1, o2 = build_pair(name, _optimizer_factory(3), lambda: materialize(kwargs))
    completed, raised = lockstep(s1, s2, o1, o2, N_STEPS)
    assert_same_state(s1, s2, "at the end")
    if is_plain(kwargs):
        assert_engine_did_the_work(s2, completed, raised)


def test_awkward_cases_raise_where_torch_does():
    """The suite really reaches torch's exceptions (so the raise-parity checks are exercised)."""
    name, kwargs = "PolynomialLR", {"total_iters": 20, "power": -1.5}
    s1, s2, o1, o2 = build_pair(name, _optimizer_factory(3), kwargs)
    completed, raised = lockstep(s1, s2, o1, o2, 100)
    assert isinstance(raised, ZeroDivisionError) and completed == 19
    assert_engine_did_the_work(s2, completed, raised)


# ------------------------------------------------------------------------------------------------
# 2. Tensor learning rates.


@pytest.mark.parametrize("n_groups", GROUP_COUNTS, ids=lambda n: f"G{n}")
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_tensor64_matches_torch(name, n_groups):
    """float64 tensor lrs: bitwise equal to torch, and the tensors stay the same objects."""
    n_steps = 2_000 if n_groups == 17 else N_STEPS  # 17 tensor groups in torch are slow
    s1, s2, o1, o2 = build_pair(name, _optimizer_factory(n_groups, "tensor64"), ORDINARY_KWARGS[name])
    ids = [id(g["lr"]) for g in o2.param_groups]
    completed, raised = lockstep(s1, s2, o1, o2, n_steps)
    assert raised is None
    assert [id(g["lr"]) for g in o2.param_groups] == ids, "a tensor lr was replaced, not filled"
    for t in s2.get_last_lr():
        assert t.dtype == torch.float64
        assert all(t.data_ptr() != g["lr"].data_ptr() for g in o2.param_groups), "get_last_lr aliases"
    assert_same_state(s1, s2, "at the end")


@pytest.mark.parametrize("n_groups", GROUP_COUNTS, ids=lambda n: f"G{n}")
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_tensor32_within_float32_rounding(name, n_groups):
    """float32 tensor lrs: each value is torch's, or the float64 schedule rounded once (within 1 f32
    ulp), and always close to torch's. (fastlr may compute in double and round once.)"""
    n_steps = N_STEPS if n_groups == 3 else 2_000  # the long run on 3 groups; the rest is time
    kwargs = ORDINARY_KWARGS[name]
    f32_bases = [to_f32(x) for x in base_lrs_for(n_groups)]
    o1 = make_optimizer(n_groups, "tensor32")
    o2 = make_optimizer(n_groups, "tensor32")
    o3 = make_optimizer(n_groups, "float", base_lrs=f32_bases)  # the exact float64 schedule
    with quiet():
        s1 = torch_class(name)(o1, **kwargs)
        s2 = fast_class(name)(o2, **kwargs)
        s3 = torch_class(name)(o3, **kwargs)
        ids = [id(g["lr"]) for g in o2.param_groups]
        for k in range(n_steps + 1):
            if k:
                s1.step()
                s2.step()
                s3.step()
            t_lrs, f_lrs = s1.get_last_lr(), s2.get_last_lr()
            assert all(f.dtype == torch.float32 and f.shape == t.shape for t, f in zip(t_lrs, f_lrs))
            tv = torch.stack(t_lrs).numpy()
            fv = torch.stack(f_lrs).numpy()
            exact = np.array(s3.get_last_lr(), dtype=np.float64).astype(np.float32)
            ulps = np.abs(fv.view(np.int32).astype(np.int64) - exact.view(np.int32).astype(np.int64))
            within = (fv == tv) | (ulps <= 1)  # lrs here are positive: int32 views are monotonic
            assert within.all(), f"step {k}: fastlr {fv!r}, torch {tv!r}, f32(float64 schedule) {exact!r}"
            # torch's own float32 recurrence drifts by up to ~1.3e-4 relative over 10k steps.
            diff = np.abs(fv.astype(np.float64) - tv.astype(np.float64))
            assert (diff <= 1e-3 * np.abs(tv.astype(np.float64)) + 1e-30).all(), f"step {k}: {fv!r} vs torch {tv!r}"
    assert [id(g["lr"]) for g in o2.param_groups] == ids, "a tensor lr was replaced, not filled"


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_tensor_lrs_are_computed_by_the_engine(name):
    """Tensor lrs are packed and written by the engine (tests/test_tensor_lrs.py has the details):
    every update, the initial one included, is the engine's."""
    s1, s2, o1, o2 = build_pair(name, _optimizer_factory(3, "tensor64"), ORDINARY_KWARGS[name])
    lockstep(s1, s2, o1, o2, 25)
    eng = engine(s2)
    assert (eng.handled, eng.deferred) == (26, 0)


def test_mixed_float_and_tensor_groups():
    """One tensor group among float groups: every group matches torch (the engine never leaves a
    half-written step behind when it hands a step to torch)."""

    def make():
        o = make_optimizer(4)
        o.param_groups[2]["lr"] = torch.tensor(o.param_groups[2]["lr"], dtype=torch.float64)
        return o

    for name in SCHEDULER_NAMES:
        s1, s2, o1, o2 = build_pair(name, make, ORDINARY_KWARGS[name])
        completed, raised = lockstep(s1, s2, o1, o2, 60)
        assert raised is None, name
        assert_same_state(s1, s2, name)


# ------------------------------------------------------------------------------------------------
# 3. Manual edits, resume, step(epoch), several schedulers, add_param_group.


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_manual_lr_edits(name):
    """Editing group["lr"] mid-run: chainable classes continue from the edited value, LambdaLR
    ignores it, exactly as torch. Edits include ints, negative values and zero."""
    edits = {3: 1.0, 4: 0.5, 11: 2, 12: 0.7, 17: 0.0, 23: 1e-3, 40: -0.25, 41: 0.3}

    def between(k, opt):
        if k in edits:
            for i, g in enumerate(opt.param_groups):
                g["lr"] = edits[k] if i != 1 else edits[k] * 3

    s1, s2, o1, o2 = build_pair(name, _optimizer_factory(3), ORDINARY_KWARGS[name])
    completed, raised = lockstep(s1, s2, o1, o2, 80, between=between)
    assert raised is None
    # Only the step right after the int edit starts from non-float lrs (torch's code runs it);
    # every other update is the engine's.
    assert (engine(s2).handled, engine(s2).deferred) == (80, 1)


@pytest.mark.parametrize("last_epoch", [0, 1, 2, 3, 4, 7, 8, 100], ids=lambda k: f"k{k}")
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_resume_with_last_epoch(name, last_epoch):
    """Resuming (``last_epoch=k``) with ``initial_lr`` in the groups and a different current lr."""

    def make():
        o = make_optimizer(3)
        for i, g in enumerate(o.param_groups):
            g["initial_lr"] = g["lr"]
            g["lr"] = g["lr"] * 0.8 + i * 1e-3
        return o

    kwargs = dict(ORDINARY_KWARGS[name], last_epoch=last_epoch)
    s1, s2, o1, o2 = build_pair(name, make, kwargs)
    completed, raised = lockstep(s1, s2, o1, o2, 200)
    assert raised is None
    assert_same_state(s1, s2)
    assert_engine_did_the_work(s2, completed, raised)


EPOCHS = [3, 3, 0, 10, 4, 1, 250, 5, 5, -1, 6, 2, 1_000, 7]


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_step_with_epoch(name):
    """``step(epoch)``: the closed form where the class has one (get_lr otherwise), interleaved with
    plain steps; repeated, decreasing, zero and negative epochs."""

    def action(s, k):
        if k % 3 == 2:
            s.step()
        else:
            s.step(EPOCHS[k % len(EPOCHS)])

    s1, s2, o1, o2 = build_pair(name, _optimizer_factory(3), ORDINARY_KWARGS[name])
    completed, raised = lockstep(s1, s2, o1, o2, 3 * len(EPOCHS), action=action)
    assert raised is None
    assert_same_state(s1, s2)
    assert_engine_did_the_work(s2, completed, raised)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_step_with_float_and_odd_epochs(name):
    """Float, bool and numpy epochs: torch's values (and exceptions) whatever path fastlr takes."""
    epochs = [2.5, 7.0, True, np.int64(4), 3, 0.5, -2.5, np.float64(9.0)]
    s1, s2, o1, o2 = build_pair(name, _optimizer_factory(3), ORDINARY_KWARGS[name])
    lockstep(s1, s2, o1, o2, len(epochs), action=lambda s, k: s.step(epochs[k]))
    assert_same_state(s1, s2)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_step_epoch_keyword(name):
    """``step(epoch=None)`` is a plain step; ``step(epoch=5)`` the deprecated form."""
    s1, s2, o1, o2 = build_pair(name, _optimizer_factory(3), ORDINARY_KWARGS[name])
    seq = [lambda s: s.step(epoch=None), lambda s: s.step(None), lambda s: s.step(epoch=5), lambda s: s.step()]
    completed, raised = lockstep(s1, s2, o1, o2, 12, action=lambda s, k: seq[k % 4](s))
    assert raised is None
    assert_engine_did_the_work(s2, completed, raised)


PAIRS = [
    ("LinearLR", {"start_factor": 0.01, "total_iters": 50}, "CosineAnnealingLR", {"T_max": 300, "eta_min": 1e-6}),
    ("ConstantLR", {"factor": 0.1, "total_iters": 30}, "ExponentialLR", {"gamma": 0.99}),
    ("StepLR", {"step_size": 4, "gamma": 0.5}, "MultiplicativeLR", {"lr_lambda": lambda e: 0.99}),
    ("MultiStepLR", {"milestones": [10, 20], "gamma": 0.1}, "PolynomialLR", {"total_iters": 40, "power": 2.0}),
    ("ExponentialLR", {"gamma": 0.9}, "LambdaLR", {"lr_lambda": lambda e: 1.0 / (e + 1)}),
    ("LambdaLR", {"lr_lambda": lambda e: 0.5}, "ExponentialLR", {"gamma": 0.9}),
    ("CosineAnnealingLR", {"T_max": 10}, "CosineAnnealingLR", {"T_max": 3, "eta_min": 0.01}),
]


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{a}+{c}" for a, _, c, _ in PAIRS])
def test_two_schedulers_on_one_optimizer(pair):
    """Two schedulers stepping the same optimizer (the second sees the first's initial_lr)."""
    n1, kw1, n2, kw2 = pair
    o1, o2 = make_optimizer(3), make_optimizer(3)
    with quiet():
        a1, b1 = torch_class(n1)(o1, **kw1), torch_class(n2)(o1, **kw2)
        a2, b2 = fast_class(n1)(o2, **kw1), fast_class(n2)(o2, **kw2)
    assert bits(lr_values(o1)) == bits(lr_values(o2))

    class Duo:
        """Two schedulers of one library, stepped in order, seen as one by lockstep()."""

        def __init__(self, a, b):
            self.pair = (a, b)

        def step(self):
            self.pair[0].step()
            self.pair[1].step()

        def get_last_lr(self):
            return self.pair[1].get_last_lr()

        def state_dict(self):
            return {f"{i}.{k}": v for i, s in enumerate(self.pair) for k, v in s.state_dict().items()}

    completed, raised = lockstep(Duo(a1, b1), Duo(a2, b2), o1, o2, 400)
    assert raised is None
    for s in (a2, b2):
        assert engine(s).deferred == 0


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_add_param_group_after_construction(name):
    """A group added mid-run: chainable classes extend to it, classes that zip with base_lrs or
    lr_lambdas raise torch's ValueError (zip strict), at the same step."""

    def between(k, opt):
        if k == 5:
            opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.0321})

    s1, s2, o1, o2 = build_pair(name, _optimizer_factory(3), ORDINARY_KWARGS[name])
    completed, raised = lockstep(s1, s2, o1, o2, 60, between=between)
    if name in ("LambdaLR", "MultiplicativeLR"):
        assert isinstance(raised, ValueError) and completed == 5
    elif name == "CosineAnnealingLR":
        assert isinstance(raised, ValueError) and completed == 7  # le == T_max + 1 reads base_lrs
    else:
        assert raised is None
    if name not in ("LambdaLR", "MultiplicativeLR"):
        assert engine(s2).handled >= 6


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_add_param_group_then_step_epoch(name):
    """After add_param_group, closed forms (which zip base_lrs strictly) raise like torch."""
    s1, s2, o1, o2 = build_pair(name, _optimizer_factory(2), ORDINARY_KWARGS[name])
    for o in (o1, o2):
        o.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.5})
    lockstep(s1, s2, o1, o2, 3, action=lambda s, k: s.step(4 + k))


def test_lambda_calls_match_torch():
    """Lambdas are called exactly as torch calls them: same arguments, same order, same count,
    with ``_get_lr_called_within_step`` set while they run."""
    for name in ("LambdaLR", "MultiplicativeLR"):
        logs: list[list[Any]] = [[], []]
        scheds: list[Any] = [None, None]

        def make_fn(side, group):
            def fn(epoch):
                s = scheds[side]
                logs[side].append((group, epoch, None if s is None else s._get_lr_called_within_step))
                return 0.9 + 0.01 * group

            return fn

        o1, o2 = make_optimizer(3), make_optimizer(3)
        with quiet():
            scheds[0] = torch_class(name)(o1, [make_fn(0, g) for g in range(3)])
            scheds[1] = fast_class(name)(o2, [make_fn(1, g) for g in range(3)])
            for k in range(6):
                scheds[0].step(k * 2 if k == 4 else None)
                scheds[1].step(k * 2 if k == 4 else None)
        assert logs[0] == logs[1], name
        assert bits(lr_values(o1)) == bits(lr_values(o2))
        assert engine(scheds[1]).deferred == 0


def test_lambda_raising_leaves_torchs_state():
    """A lambda that raises mid-list: same exception, same counters, same (partly unchanged) lrs."""
    for name in ("LambdaLR", "MultiplicativeLR"):

        def make(side):
            calls = {"n": 0}

            def fn(epoch):
                calls["n"] += 1
                if epoch == 4 and calls["n"] % 3 == 2:
                    raise RuntimeError("lambda failed")
                return 0.9

            return fn

        s1, s2, o1, o2 = build_pair(name, _optimizer_factory(3), lambda: {"lr_lambda": make(0)})
        completed, raised = lockstep(s1, s2, o1, o2, 10)
        assert isinstance(raised, RuntimeError) and completed == 3, (name, raised)
        # Stepping continues after the failure, as in torch.
        completed, raised = lockstep(s1, s2, o1, o2, 10)
        assert raised is None


def test_lambda_returning_tensor_and_numpy():
    """Lambdas returning tensors / numpy scalars: group lrs take torch's types (torch's arithmetic)."""
    for name in ("LambdaLR", "MultiplicativeLR"):
        for ret in (lambda e: torch.tensor(0.9, dtype=torch.float64), lambda e: np.float32(0.9), lambda e: 0.9 + 0j):
            s1, s2, o1, o2 = build_pair(name, _optimizer_factory(3), {"lr_lambda": ret})
            if s1 is None:
                continue
            completed, raised = lockstep(s1, s2, o1, o2, 6)
            assert [type(x) for x in lr_values(o1)] == [type(x) for x in lr_values(o2)]
            assert_same_state(s1, s2)


def test_parity_helpers_detect_a_difference():
    """The comparison machinery fails on a one-ulp difference (so the suite can fail)."""
    s1, s2, o1, o2 = build_pair("ExponentialLR", _optimizer_factory(3), {"gamma": 0.9})
    o2.param_groups[1]["lr"] = math.nextafter(o2.param_groups[1]["lr"], 1.0)
    with pytest.raises(AssertionError):
        lockstep(s1, s2, o1, o2, 3)
    with pytest.raises(AssertionError):
        assert_same_lrs(s1, s2, o1, o2)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_int_learning_rates(name):
    """Optimizers built with int lrs (``lr=1``): torch keeps ints until its arithmetic makes floats,
    and base_lrs stay ints. fastlr gives torch's values and types at every step."""
    make = lambda: make_optimizer(3, base_lrs=[1, 2, 0])  # noqa: E731
    s1, s2, o1, o2 = build_pair(name, make, ORDINARY_KWARGS[name])
    lockstep(s1, s2, o1, o2, 60)
    lockstep(s1, s2, o1, o2, 5, action=lambda s, k: s.step(k * 7))
    assert [type(x) for x in lr_values(o1)] == [type(x) for x in lr_values(o2)]
    assert_same_state(s1, s2)


def test_cosine_legacy_resume_branch():
    """CosineAnnealingLR's ``_step_count == 1 and last_epoch > 0`` branch (unreachable through public
    APIs except by loading a state dict with ``_step_count`` 0): torch's closed-form-like update."""
    s1, s2, o1, o2 = build_pair("CosineAnnealingLR", _optimizer_factory(3), {"T_max": 9, "eta_min": 0.01})
    lockstep(s1, s2, o1, o2, 4)
    for s in (s1, s2):
        s.load_state_dict({"_step_count": 0, "last_epoch": 6})
    completed, raised = lockstep(s1, s2, o1, o2, 20)
    assert raised is None
    assert engine(s2).deferred == 0


# ------------------------------------------------------------------------------------------------
# 4. Random interleavings of everything a training script may do to a scheduler.


class SchedulerMachine(RuleBasedStateMachine):
    """torch and fastlr side by side under a random sequence of operations; after each one the
    outcome (values or exception) and the full state must be the same."""

    def __init__(self) -> None:
        super().__init__()
        self.t = self.f = None
        self.snapshots: list[dict[str, Any]] = []

    @initialize(name=st.sampled_from(SCHEDULER_NAMES), n_groups=st.sampled_from([1, 3]))
    def build(self, name, n_groups):
        self.name = name
        s1, s2, o1, o2 = build_pair(name, _optimizer_factory(n_groups), ORDINARY_KWARGS[name])
        self.t, self.f, self.to, self.fo = s1, s2, o1, o2

    def both(self, action) -> None:
        lockstep(self.t, self.f, self.to, self.fo, 1, action=lambda s, k: action(s))
        assert_same_state(self.t, self.f)

    @rule(n=st.integers(1, 30))
    def step(self, n):
        lockstep(self.t, self.f, self.to, self.fo, n)

    @rule(epoch=st.one_of(st.integers(-3, 60), st.sampled_from([2.5, 0])))
    def step_epoch(self, epoch):
        self.both(lambda s: s.step(epoch))

    @rule()
    def optimizer_step(self):
        for o in (self.to, self.fo):
            o.step()

    @rule(i=st.integers(0, 16), value=st.one_of(st.floats(0, 1), st.sampled_from([1, 0, 0.5, -0.0, 1e-300])))
    def edit_lr(self, i, value):
        for o in (self.to, self.fo):
            o.param_groups[i % len(o.param_groups)]["lr"] = value

    @rule(
        attr=st.sampled_from(
            ["gamma", "step_size", "factor", "total_iters", "T_max", "eta_min", "power", "last_epoch"]
        ),
        value=st.one_of(st.integers(-2, 40), st.floats(-2, 40), st.sampled_from([0.5, 0.9, 1, 7.0])),
    )
    def set_attribute(self, attr, value):
        if attr in vars(self.t):
            for s in (self.t, self.f):
                setattr(s, attr, value)

    @rule()
    def snapshot(self):
        self.snapshots.append(copy.deepcopy(self.t.state_dict()))

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def restore(self, data):
        sd = data.draw(st.sampled_from(self.snapshots))
        self.t.load_state_dict(copy.deepcopy(sd))
        self.f.load_state_dict(copy.deepcopy(sd))

    @precondition(lambda self: self.t is not None and len(self.to.param_groups) < 5)
    @rule(lr=st.sampled_from([0.25, 1, 0.003]))
    def add_group(self, lr):
        for o in (self.to, self.fo):
            o.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr})

    @rule()
    def deepcopy_both(self):
        (self.to, self.t), (self.fo, self.f) = copy.deepcopy((self.to, self.t)), copy.deepcopy((self.fo, self.f))
        assert self.f.uses_fast_path

    @invariant()
    def same(self):
        if self.t is not None:
            assert_same_lrs(self.t, self.f, self.to, self.fo)
            assert_same_state(self.t, self.f)


TestSchedulerMachine = SchedulerMachine.TestCase
TestSchedulerMachine.settings = settings(
    max_examples=int(os.environ.get("FASTLR_MACHINE_EXAMPLES", "60")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_one_element_and_float16_tensor_lrs(name):
    """Tensor lrs of shape (1,) (torch squeezes them for fill_) and of dtype float16/bfloat16."""

    def make():
        o = make_optimizer(3)
        o.param_groups[0]["lr"] = torch.tensor([0.1], dtype=torch.float64)
        o.param_groups[1]["lr"] = torch.tensor(0.07, dtype=torch.float16)
        o.param_groups[2]["lr"] = torch.tensor(0.05, dtype=torch.bfloat16)
        return o

    s1, s2, o1, o2 = build_pair(name, make, ORDINARY_KWARGS[name])
    lockstep(s1, s2, o1, o2, 40)
    lockstep(s1, s2, o1, o2, 3, action=lambda s, k: s.step(k + 5))
    assert [(g["lr"].dtype, g["lr"].shape) for g in o1.param_groups] == [
        (g["lr"].dtype, g["lr"].shape) for g in o2.param_groups
    ]
    assert_same_state(s1, s2)
