"""state_dict(), load_state_dict(), torch.save/torch.load, pickle and copy: torch's behaviour.

fastlr keeps all scheduler state where torch keeps it (the instance ``__dict__``); the C++ engine
lives in a slot and never appears in a state dict. State dicts move between torch and fastlr in both
directions, and stepping continues bit for bit.
"""

from __future__ import annotations

import copy
import functools
import io
import math
import pickle

import pytest

pytest.importorskip("torch")
from _torch_helpers import (
    ORDINARY_KWARGS,
    SCHEDULER_NAMES,
    assert_same_exception,
    assert_same_lrs,
    assert_same_state,
    bits,
    build_pair,
    engine,
    fast_class,
    lockstep,
    lr_values,
    make_optimizer,
    outcome,
    quiet,
    same_state,
    torch,
    torch_class,
)


def history(s1, s2, o1, o2, n: int = 23) -> None:
    """A mixed history: plain steps, a manual lr edit, a step(epoch), more steps."""

    def between(k, opt):
        if k == 9:
            opt.param_groups[0]["lr"] = 0.05

    lockstep(s1, s2, o1, o2, n, between=between)
    lockstep(s1, s2, o1, o2, 1, action=lambda s, k: s.step(n + 4))
    lockstep(s1, s2, o1, o2, 5)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_state_dict_matches_torch(name):
    """Same keys in the same order and equal values (floats bitwise, types equal), after
    construction and after a history of steps."""
    s1, s2, o1, o2 = build_pair(name, lambda: make_optimizer(3), ORDINARY_KWARGS[name])
    assert_same_state(s1, s2, "after construction")
    history(s1, s2, o1, o2)
    assert_same_state(s1, s2, "after stepping")
    sd = s2.state_dict()
    assert "_fastlr_engine" not in sd and "_fastlr_engine" not in vars(s2)
    assert "optimizer" not in sd
    # param groups gain exactly torch's keys (initial_lr)
    assert [sorted(g) for g in o1.param_groups] == [sorted(g) for g in o2.param_groups]


@pytest.mark.parametrize("direction", ["torch_to_fastlr", "fastlr_to_torch"])
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_load_state_dict_across_libraries(name, direction):
    """A state dict saved by one library loads into the other; both then step identically."""
    src_cls, dst_cls = (torch_class(name), fast_class(name))
    if direction == "fastlr_to_torch":
        src_cls, dst_cls = dst_cls, src_cls
    kwargs = ORDINARY_KWARGS[name]
    o_src = make_optimizer(3)
    with quiet():
        s_src = src_cls(o_src, **kwargs)
        for k in range(17):
            o_src.step()
            s_src.step()
        o_dst = make_optimizer(3)
        s_dst = dst_cls(o_dst, **kwargs)
    o_dst.load_state_dict(o_src.state_dict())
    s_dst.load_state_dict(s_src.state_dict())
    assert_same_state(s_src, s_dst, "after load_state_dict")
    t, f = (s_src, s_dst) if direction == "torch_to_fastlr" else (s_dst, s_src)
    to, fo = (o_src, o_dst) if direction == "torch_to_fastlr" else (o_dst, o_src)
    before = engine(f).handled
    completed, raised = lockstep(t, f, to, fo, 300)
    assert raised is None
    assert_same_state(t, f, "after stepping on")
    assert engine(f).deferred == 0 and engine(f).handled == before + 300


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_torch_save_load_weights_only(name):
    """Both state dicts survive torch.save + torch.load(weights_only=True) and load into the other
    library; stepping continues identically."""
    s1, s2, o1, o2 = build_pair(name, lambda: make_optimizer(3), ORDINARY_KWARGS[name])
    history(s1, s2, o1, o2)
    loaded = []
    for s in (s1, s2):
        buf = io.BytesIO()
        torch.save(s.state_dict(), buf)
        buf.seek(0)
        loaded.append(torch.load(buf, weights_only=True))
    assert list(loaded[0]) == list(loaded[1])
    assert same_state(loaded[0], loaded[1])
    assert same_state(loaded[0], s1.state_dict())
    # cross-load into fresh schedulers and step on
    with quiet():
        t2 = torch_class(name)(make_optimizer(3), **ORDINARY_KWARGS[name])
        f2 = fast_class(name)(make_optimizer(3), **ORDINARY_KWARGS[name])
    t2.optimizer.load_state_dict(o2.state_dict())
    f2.optimizer.load_state_dict(o1.state_dict())
    t2.load_state_dict(loaded[1])  # fastlr's, into torch
    f2.load_state_dict(loaded[0])  # torch's, into fastlr
    assert_same_state(t2, f2)
    before = engine(f2).handled
    lockstep(t2, f2, t2.optimizer, f2.optimizer, 50)
    assert engine(f2).deferred == 0 and engine(f2).handled == before + 50


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_load_state_dict_leaves_lrs_alone(name):
    """load_state_dict() does not touch the optimizer's lrs; the next step uses the loaded state."""
    s1, s2, o1, o2 = build_pair(name, lambda: make_optimizer(3), ORDINARY_KWARGS[name])
    lockstep(s1, s2, o1, o2, 4)
    sd = s1.state_dict()
    sd["last_epoch"] = 40
    for o in (o1, o2):
        o.param_groups[1]["lr"] = 0.0123
    before = lr_values(o2)
    s1.load_state_dict(dict(sd))
    s2.load_state_dict(dict(sd))
    assert bits(lr_values(o2)) == bits(before)
    assert_same_lrs(s1, s2, o1, o2)
    lockstep(s1, s2, o1, o2, 30)
    assert engine(s2).deferred == 0


HYPER_EDITS = {
    "LambdaLR": {"base_lrs": [0.5, 0.25, 0.125]},
    "MultiplicativeLR": {"last_epoch": 2},
    "StepLR": {"step_size": 2, "gamma": 0.5},
    "MultiStepLR": {"gamma": 2.0},
    "ConstantLR": {"factor": 0.25, "total_iters": 9},
    "LinearLR": {"start_factor": 0.5, "end_factor": 1.0, "total_iters": 30},
    "ExponentialLR": {"gamma": 1.01},
    "PolynomialLR": {"total_iters": 40, "power": 2.0},
    "CosineAnnealingLR": {"T_max": 11.0, "eta_min": 0},
}


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_loaded_hyperparameters_are_used(name):
    """Hyperparameters changed through load_state_dict() (or by assignment) drive the next steps, in
    the engine."""
    s1, s2, o1, o2 = build_pair(name, lambda: make_optimizer(3), ORDINARY_KWARGS[name])
    lockstep(s1, s2, o1, o2, 5)
    sd = s1.state_dict()
    sd.update(HYPER_EDITS[name])
    s1.load_state_dict(dict(sd))
    s2.load_state_dict(dict(sd))
    lockstep(s1, s2, o1, o2, 60)
    for s in (s1, s2):
        for k, v in HYPER_EDITS[name].items():
            setattr(s, k, v if not isinstance(v, float) else v * 0.5)
    lockstep(s1, s2, o1, o2, 60)
    assert_same_state(s1, s2)
    assert engine(s2).deferred == 0


def test_state_dict_of_another_class():
    """torch loads any dict (no validation); so does fastlr, with torch's results."""
    src = torch_class("StepLR")(make_optimizer(3), step_size=2, gamma=0.5)
    sd = src.state_dict()
    for name in ("ExponentialLR", "CosineAnnealingLR", "MultiStepLR"):
        s1, s2, o1, o2 = build_pair(name, lambda: make_optimizer(3), ORDINARY_KWARGS[name])
        s1.load_state_dict(dict(sd))
        s2.load_state_dict(dict(sd))
        assert_same_state(s1, s2, name)
        lockstep(s1, s2, o1, o2, 20)


# ------------------------------------------------------------------------------------------------
# LambdaLR / MultiplicativeLR: lr_lambdas entries.


class Scale:
    """A callable object with state; torch saves its __dict__."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.calls = 0

    def __call__(self, epoch: int) -> float:
        self.calls += 1
        return self.factor ** (epoch % 5)

    def method(self, epoch: int) -> float:
        return self.factor


def _plain(epoch: int) -> float:
    return 0.99


def _partial_target(epoch: int, c: float) -> float:
    return c


@pytest.mark.parametrize("name", ["LambdaLR", "MultiplicativeLR"])
def test_lr_lambdas_in_state_dict(name):
    """Callable objects, partials and bound methods are saved as their __dict__, functions as None;
    load_state_dict updates the objects in place and leaves the caller's dict intact."""

    def lambdas():
        obj = Scale(0.9)
        return [obj, _plain, functools.partial(_partial_target, c=0.95), Scale(0.8).method]

    s1, s2, o1, o2 = build_pair(name, lambda: make_optimizer(4), lambda: {"lr_lambda": lambdas()})
    lockstep(s1, s2, o1, o2, 12)
    sd1, sd2 = s1.state_dict(), s2.state_dict()
    assert list(sd1) == list(sd2)
    assert sd1["lr_lambdas"] == sd2["lr_lambdas"]
    assert sd2["lr_lambdas"][0] == {"factor": 0.9, "calls": s2.lr_lambdas[0].calls} and sd2["lr_lambdas"][1] is None
    # load: the object's __dict__ is updated, functions are kept, the caller's dict is unchanged
    sd = s1.state_dict()
    sd["lr_lambdas"][0] = {"factor": 0.5, "calls": 100}
    keep = copy.deepcopy(sd)
    for s in (s1, s2):
        s.load_state_dict(sd)
        assert s.lr_lambdas[0].factor == 0.5 and s.lr_lambdas[0].calls == 100
        assert s.lr_lambdas[1] is _plain
    assert sd.keys() == keep.keys() and sd["lr_lambdas"] == keep["lr_lambdas"]
    lockstep(s1, s2, o1, o2, 12)
    assert_same_state(s1, s2)
    assert engine(s2).deferred == 0


@pytest.mark.parametrize("name", ["LambdaLR", "MultiplicativeLR"])
def test_builtin_lambda_state_dict_raises_like_torch(name):
    """A builtin lr_lambda (no __dict__) makes state_dict() raise AttributeError, as in torch."""
    s1, s2, o1, o2 = build_pair(name, lambda: make_optimizer(2), {"lr_lambda": math.exp})
    if s1 is None:
        return
    assert_same_exception(outcome(s1.state_dict), outcome(s2.state_dict), "state_dict()")
    assert isinstance(outcome(s2.state_dict), AttributeError)


# ------------------------------------------------------------------------------------------------
# pickle and copy: state carried, engine rebuilt, fast path kept.


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "copy"])
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_pickle_and_copy_keep_the_fast_path(name, how):
    s1, s2, o1, o2 = build_pair(name, lambda: make_optimizer(3), ORDINARY_KWARGS[name])
    lockstep(s1, s2, o1, o2, 7)

    def clone(s):
        if how == "pickle":
            return pickle.loads(pickle.dumps(s))
        if how == "deepcopy":
            return copy.deepcopy(s)
        return copy.copy(s)

    c1, c2 = clone(s1), clone(s2)
    assert type(c2) is type(s2)
    assert c2.uses_fast_path
    assert "_fastlr_engine" not in vars(c2)
    assert_same_state(c1, c2, "right after the copy")
    if how == "copy":  # a shallow copy shares the optimizer with the original
        assert c2.optimizer is o2
    else:
        assert c2.optimizer is not o2
    completed, raised = lockstep(c1, c2, c1.optimizer, c2.optimizer, 40)
    assert raised is None
    assert engine(c2).deferred == 0 and engine(c2).handled == 40
    # the original is unaffected by the copy's own engine (its counters are its own)
    assert engine(s2).handled == 8


def test_deepcopy_of_optimizer_and_scheduler_together():
    """deepcopy((optimizer, scheduler)): the copy steps the copied optimizer, like torch's."""
    s1, s2, o1, o2 = build_pair("CosineAnnealingLR", lambda: make_optimizer(3), {"T_max": 9})
    (co1, cs1), (co2, cs2) = copy.deepcopy((o1, s1)), copy.deepcopy((o2, s2))
    assert cs2.optimizer is co2
    lockstep(cs1, cs2, co1, co2, 30)
    assert bits(lr_values(o2)) == bits(lr_values(o1))  # the originals did not move
    assert engine(cs2).deferred == 0


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_protocols(protocol):
    """Every pickle protocol (0 and 1 need __getstate__ with the engine's __slots__)."""
    for name in ("StepLR", "CosineAnnealingLR", "LambdaLR"):
        s1, s2, o1, o2 = build_pair(name, lambda: make_optimizer(2), ORDINARY_KWARGS[name])
        lockstep(s1, s2, o1, o2, 3)
        c1 = pickle.loads(pickle.dumps(s1, protocol=protocol))
        c2 = pickle.loads(pickle.dumps(s2, protocol=protocol))
        assert c2.uses_fast_path
        lockstep(c1, c2, c1.optimizer, c2.optimizer, 10)
        assert engine(c2).deferred == 0
