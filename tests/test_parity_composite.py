"""SequentialLR and ChainedScheduler parity with the installed torch, bit for bit.

Composites are compared as whole trees: the same tree of members is built from torch's classes and
from fastlr's (optionally mixing in torch members on the fastlr side), then stepped in lockstep.
The composite's own engine counts its steps; each fastlr member has an engine of its own.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
torch = pytest.importorskip("torch")
from _helpers_more import (
    GROUPS,
    TENSOR_STEPS,
    TORCH,
    Twin,
    deep_bits,
    engine_counts,
    make_opt,
    opt_step,
    reload,
    same_outcome,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastlr import lr_scheduler as F

pytestmark = pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)` before:UserWarning")

N = 10_000


def lam_decay(e):
    return 1 / (1 + 0.01 * e)


def lam_mult(e):
    return 0.9995


#: Leaf members usable anywhere in a tree for N steps (OneCycleLR's horizon is beyond any run).
LEAVES: dict[str, tuple[str, dict[str, Any]]] = {
    "linear": ("LinearLR", dict(start_factor=0.25, total_iters=7)),
    "constant": ("ConstantLR", dict(factor=0.5, total_iters=5)),
    "exp": ("ExponentialLR", dict(gamma=0.9995)),
    "cosine": ("CosineAnnealingLR", dict(T_max=50, eta_min=1e-4)),
    "step": ("StepLR", dict(step_size=13, gamma=0.93)),
    "multistep": ("MultiStepLR", dict(milestones=[5, 40, 300], gamma=0.5)),
    "poly": ("PolynomialLR", dict(total_iters=200, power=1.5)),
    "lambda": ("LambdaLR", dict(lr_lambda=lam_decay)),
    "mult": ("MultiplicativeLR", dict(lr_lambda=lam_mult)),
    "cyclic": ("CyclicLR", dict(base_lr=0.001, max_lr=0.05, step_size_up=17)),
    "onecycle": ("OneCycleLR", dict(max_lr=0.05, total_steps=3 * N)),
    "cawr": ("CosineAnnealingWarmRestarts", dict(T_0=11, T_mult=2)),
    "swalr": ("SWALR", dict(swa_lr=0.003, anneal_epochs=25)),
}


def build_tree(mod: Any, opt: torch.optim.Optimizer, spec: Any, torch_nodes: frozenset = frozenset(),
               path: tuple = ()) -> Any:
    """Build ``spec`` (a leaf name, ("seq", [children], milestones) or ("chain", [children])) from module
    ``mod``; nodes whose path is in ``torch_nodes`` are torch's classes whatever ``mod`` is."""
    m = TORCH if path in torch_nodes else mod
    if isinstance(spec, str):
        cls, kw = LEAVES[spec]
        return getattr(m, cls)(opt, **kw)
    if spec[0] == "seq":
        kids = [build_tree(mod, opt, c, torch_nodes, path + (i,)) for i, c in enumerate(spec[1])]
        return m.SequentialLR(opt, kids, list(spec[2]))
    kids = [build_tree(mod, opt, c, torch_nodes, path + (i,)) for i, c in enumerate(spec[1])]
    return m.ChainedScheduler(kids)


def fastlr_nodes(s: Any) -> list[Any]:
    """Every fastlr scheduler in a tree (composites and leaves)."""
    out = [s] if isinstance(s, F.LRScheduler) else []
    for c in getattr(s, "_schedulers", []):
        out.extend(fastlr_nodes(c))
    return out


def assert_tree_engines_did_the_work(s: Any) -> None:
    """Every fastlr leaf computed all its calls. A fastlr composite leaves to torch's code only the
    steps on which a member takes its first step() (which may warn, and torch attributes that warning
    to the composite's frame in torch.optim.lr_scheduler): at most one per member."""
    for node in fastlr_nodes(s):
        if not hasattr(node, "_fastlr_engine"):
            continue
        handled, deferred = engine_counts(node)
        if hasattr(node, "_schedulers"):
            assert deferred <= len(node._schedulers), f"{type(node).__name__} deferred {deferred}"
        else:
            assert deferred == 0, f"{type(node).__name__} deferred {deferred} (handled {handled})"
    assert engine_counts(s)[0] > 0


def tree_twin(spec: Any, G: int = 3, torch_nodes: frozenset = frozenset(), lr_kind: str = "float") -> Twin:
    return Twin(lambda mod, opt: build_tree(mod, opt, spec, torch_nodes), lambda: make_opt(G, lr_kind))


# ------------------------------------------------------------------------------------------------
# SequentialLR


SEQUENTIAL = [
    ("warmup-cosine", ("seq", ["linear", "cosine"], [7])),
    ("constant-exp", ("seq", ["constant", "exp"], [3])),
    ("four-phases", ("seq", ["linear", "step", "multistep", "poly"], [10, 500, 2000])),
    ("closed-forms", ("seq", ["cyclic", "onecycle", "cawr", "lambda"], [100, 1000, 5000])),
    ("mult-swalr", ("seq", ["mult", "swalr", "exp"], [50, 400])),
    ("milestone-0", ("seq", ["exp", "cosine", "step"], [0, 30])),
    ("equal-milestones", ("seq", ["exp", "cosine", "step"], [30, 30])),
]


@pytest.mark.parametrize("G", GROUPS)
@pytest.mark.parametrize("sid, spec", SEQUENTIAL, ids=[s[0] for s in SEQUENTIAL])
def test_sequential_matches_torch(sid, spec, G):
    t = tree_twin(spec, G)
    t.steps(N)
    assert_tree_engines_did_the_work(t.sf)


def test_sequential_bookkeeping():
    """Construction resets lrs to initial_lr, undoes the members' initial steps, and restarts the next
    member with _update_lr(0) at its milestone (no warning, _step_count unchanged)."""
    t = tree_twin(("seq", ["constant", "exp", "linear"], [3, 6]))
    for name in ("last_epoch", "_milestones"):
        assert deep_bits(getattr(t.st, name)) == deep_bits(getattr(t.sf, name))
    assert [deep_bits(s.state_dict()) for s in t.st._schedulers] == [
        deep_bits(s.state_dict()) for s in t.sf._schedulers]
    for _ in range(10):
        opt_step(t.ot)
        opt_step(t.of)
        a, b = t.do(lambda s, o: s.step())
        assert a.warnings == []
        assert [m._step_count for m in t.sf._schedulers] == [m._step_count for m in t.st._schedulers]
        assert [m.last_epoch for m in t.sf._schedulers] == [m.last_epoch for m in t.st._schedulers]
    assert t.sf._last_lr is t.sf._schedulers[2]._last_lr  # aliases the member's list, as torch


def test_sequential_first_step_warning():
    """The order warning comes from the active member's first step, once."""
    t = tree_twin(("seq", ["constant", "exp"], [3]))
    counts = []
    for _ in range(6):
        a, b = t.do(lambda s, o: s.step())
        counts.append(len(a.warnings))
    assert sum(counts) >= 1


def test_sequential_order_warning_attributed_like_torch():
    """torch's member warning is raised from SequentialLR.step inside torch.optim.lr_scheduler, so a
    filter on that module silences it; the same filter must work with fastlr."""
    t = tree_twin(("seq", ["constant", "exp"], [3]))
    seen = []
    for s in (t.st, t.sf):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", module=r"torch\.optim\.lr_scheduler")
            for _ in range(5):
                s.step()
        seen.append([str(x.message) for x in w])
    assert seen[0] == seen[1]


def test_chained_order_warning_attributed_like_torch():
    t = tree_twin(("chain", ["constant", "exp"]))
    seen = []
    for s in (t.st, t.sf):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", module=r"torch\.optim\.lr_scheduler")
            for _ in range(3):
                s.step()
        seen.append([str(x.message) for x in w])
    assert seen[0] == seen[1]


@pytest.mark.parametrize("G", (1, 3))
def test_nested_sequential_off_by_one(G):
    """A SequentialLR inside a SequentialLR: the inner one's _initial_step() already steps it."""
    spec = ("seq", [("seq", ["linear", "exp"], [5]), "cosine"], [100])
    t = tree_twin(spec, G)
    t.steps(N)
    assert_tree_engines_did_the_work(t.sf)
    inner = ("seq", ["constant", ("seq", ["linear", "step"], [4])], [2])  # nested as the non-first member
    t2 = tree_twin(inner, G)
    t2.steps(300)


@pytest.mark.parametrize("spec", [
    ("seq", ["exp", ("chain", ["constant", "exp"])], [5]),
    ("seq", ["exp", ("seq", ["constant", "exp"], [2])], [5]),
], ids=["chained", "sequential"])
def test_composite_as_non_first_member_raises_at_milestone(spec):
    """torch: at the milestone, _update_lr(0) reaches LRScheduler.get_lr -> NotImplementedError."""
    t = tree_twin(spec)
    for k in range(8):
        a, b = t.do(lambda s, o: s.step())
        if k == 4:
            assert isinstance(a.exc, NotImplementedError)
    assert t.sf.last_epoch == t.st.last_epoch


def test_chained_as_first_member_works():
    t = tree_twin(("seq", [("chain", ["constant", "exp"]), "cosine"], [40]))
    t.steps(2000)
    assert_tree_engines_did_the_work(t.sf)


@pytest.mark.parametrize("G", (1, 17))
def test_sequential_tensor64_lrs(G):
    t = tree_twin(("seq", ["linear", "cosine", "cyclic"], [7, 300]), G, lr_kind="tensor64")
    ids = [id(g["lr"]) for g in t.of.param_groups]
    t.steps(TENSOR_STEPS[G])
    assert [id(g["lr"]) for g in t.of.param_groups] == ids


def test_sequential_last_epoch_argument():
    def build(mod, opt):
        a = mod.LinearLR(opt, 0.1, total_iters=5)
        b = mod.ExponentialLR(opt, 0.9)
        return mod.SequentialLR(opt, [a, b], [10], last_epoch=7)

    t = Twin(build, lambda: make_opt(3))
    t.steps(30)


def test_sequential_float_and_unsorted_milestones():
    for ms in ([3.0, 9.5], [9, 3], [-1, 5], [2, 2]):
        def build(mod, opt, ms=ms):
            return mod.SequentialLR(opt, [mod.ConstantLR(opt, 0.5, 4), mod.ExponentialLR(opt, 0.9),
                                          mod.StepLR(opt, 3)], ms)

        t = Twin(build, lambda: make_opt(3))
        t.steps(30)


def test_sequential_step_takes_no_epoch():
    t = tree_twin(("seq", ["linear", "exp"], [3]))
    a, b = t.do(lambda s, o: s.step(3))
    assert isinstance(a.exc, TypeError)
    a, b = t.do(lambda s, o: s.step(epoch=3))
    assert isinstance(a.exc, TypeError)


def test_sequential_milestones_edited_after_construction():
    t = tree_twin(("seq", ["constant", "exp", "step"], [5, 10]))

    def between(k, opt, s):
        if k == 3:
            s._milestones = [4, 8]
        if k == 6:
            s._milestones = (4, 20)
        if k == 12:
            s._milestones = [4]  # the third member is out of reach: bisect stays at index 1

    t.steps(40, between=between)


def test_sequential_index_error_like_torch():
    t = tree_twin(("seq", ["constant", "exp"], [5]))
    t.do(lambda s, o: setattr(s, "_milestones", [1, 2]))
    t.steps(4)  # bisect returns 2 past the second milestone: IndexError in both


# ------------------------------------------------------------------------------------------------
# ChainedScheduler


CHAINED = [
    ("constant-exp", ("chain", ["constant", "exp"])),
    ("chainables", ("chain", ["linear", "step", "multistep", "poly", "mult"])),
    ("closed-form-overwrites", ("chain", ["exp", "lambda"])),
    ("closed-form-first", ("chain", ["lambda", "exp"])),
    ("cyclic-and-cosine", ("chain", ["cyclic", "cosine"])),
    ("swalr-composes", ("chain", ["exp", "swalr"])),
    ("cawr-onecycle", ("chain", ["cawr", "onecycle", "constant"])),
]


@pytest.mark.parametrize("G", GROUPS)
@pytest.mark.parametrize("cid, spec", CHAINED, ids=[c[0] for c in CHAINED])
def test_chained_matches_torch(cid, spec, G):
    t = tree_twin(spec, G)
    t.steps(N)
    assert_tree_engines_did_the_work(t.sf)


def test_chained_with_explicit_optimizer_and_tuple():
    def build(mod, opt):
        return mod.ChainedScheduler((mod.ConstantLR(opt, 0.5, 3), mod.ExponentialLR(opt, 0.9)), optimizer=opt)

    t = Twin(build, lambda: make_opt(3))
    t.steps(100)
    assert_tree_engines_did_the_work(t.sf)


def test_chained_get_last_lr_is_fresh_list():
    t = tree_twin(("chain", ["constant", "exp"]))
    t.steps(3)
    assert t.sf.get_last_lr() is not t.sf._schedulers[-1].get_last_lr()


@pytest.mark.parametrize("G", (1, 17))
def test_chained_tensor64_lrs(G):
    t = tree_twin(("chain", ["exp", "cosine", "constant"]), G, lr_kind="tensor64")
    ids = [id(g["lr"]) for g in t.of.param_groups]
    t.steps(TENSOR_STEPS[G])
    assert [id(g["lr"]) for g in t.of.param_groups] == ids


def test_chained_members_mutated_during_step():
    """A member that changes the composite's member list while it is being iterated."""

    class Appender(torch.optim.lr_scheduler.ExponentialLR):
        owner: Any = None

        def step(self, epoch=None):
            super().step(epoch)
            if self.owner is not None and len(self.owner._schedulers) < 4:
                self.owner._schedulers.append(torch.optim.lr_scheduler.ConstantLR(self.optimizer, 0.5, 2))

    def build(mod, opt):
        app = Appender(opt, 0.9)
        ch = mod.ChainedScheduler([app, mod.StepLR(opt, 2)])
        app.owner = ch
        return ch

    o1, o2 = make_opt(3), make_opt(3)
    s1, s2 = build(TORCH, o1), build(F, o2)
    for _ in range(6):
        a, b = same_outcome(s1.step, s2.step)
        assert deep_bits(s1.get_last_lr()) == deep_bits(s2.get_last_lr())
        assert len(s1._schedulers) == len(s2._schedulers)


# ------------------------------------------------------------------------------------------------
# Mixing torch and fastlr members


MIXED = [
    ("seq-torch-leaf", ("seq", ["linear", "cosine", "cyclic"], [7, 500]), frozenset({(0,), (2,)})),
    ("chain-torch-leaf", ("chain", ["constant", "exp", "swalr"]), frozenset({(1,)})),
    ("torch-seq-fastlr-leaves", ("seq", ["linear", "cosine"], [9]), frozenset({()})),
    ("torch-chain-fastlr-leaves", ("chain", ["constant", "exp"]), frozenset({()})),
    ("nested-torch-inner", ("seq", [("chain", ["constant", "exp"]), "cosine"], [60]), frozenset({(0,)})),
]


@pytest.mark.parametrize("mid, spec, torch_nodes", MIXED, ids=[m[0] for m in MIXED])
def test_mixing_torch_and_fastlr_members(mid, spec, torch_nodes):
    t = tree_twin(spec, 3, torch_nodes)
    t.steps(N)
    if isinstance(t.sf, F.LRScheduler):
        assert_tree_engines_did_the_work(t.sf)
    else:  # a torch composite over fastlr members
        for node in t.sf._schedulers:
            if isinstance(node, F.LRScheduler):
                assert_tree_engines_did_the_work(node)


# ------------------------------------------------------------------------------------------------
# Random trees


LEAF_NAMES = sorted(LEAVES)


def trees(depth: int = 2) -> st.SearchStrategy:
    leaf = st.sampled_from(LEAF_NAMES)
    if depth == 0:
        return leaf
    sub = trees(depth - 1)
    chain = st.lists(st.one_of(leaf, sub), min_size=1, max_size=3).map(lambda ks: ("chain", ks))
    # a composite is a legal SequentialLR member only in first position (else NotImplementedError)
    seq = st.tuples(
        st.one_of(leaf, sub),
        st.lists(leaf, min_size=1, max_size=3),
        st.lists(st.integers(1, N // 4), min_size=3, max_size=3, unique=True),
    ).map(lambda x: ("seq", [x[0], *x[1]], sorted(x[2])[: len(x[1])]))
    return st.one_of(chain, seq)


def all_paths(spec: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if not isinstance(spec, str):
        for i, c in enumerate(spec[1]):
            out.extend(all_paths(c, path + (i,)))
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=trees(), G=st.sampled_from(GROUPS), data=st.data())
def test_random_trees(spec, G, data):
    paths = all_paths(spec)
    torch_nodes = frozenset(p for p in paths if data.draw(st.booleans().map(lambda b: b and len(paths) > 1)))
    t = tree_twin(spec, G, torch_nodes)
    t.steps(N if G != 17 else N // 2)


# ------------------------------------------------------------------------------------------------
# State dicts


@pytest.mark.parametrize("spec", [
    ("seq", ["linear", "cosine", "cyclic"], [7, 500]),
    ("chain", ["constant", "exp", "swalr"]),
    ("seq", [("chain", ["constant", "exp"]), "onecycle"], [60]),
], ids=["sequential", "chained", "nested"])
def test_state_dict_round_trip_and_cross_load(spec):
    t = tree_twin(spec)
    t.steps(333)
    sd_t, sd_f = reload(t.st.state_dict()), reload(t.sf.state_dict())
    assert deep_bits(sd_t) == deep_bits(sd_f)
    assert list(sd_f) == list(t.st.state_dict())
    fresh = tree_twin(spec)
    for g_t, g_f, s_t, s_f in zip(fresh.ot.param_groups, fresh.of.param_groups, t.ot.param_groups,
                                  t.of.param_groups):
        g_t.update({k: v for k, v in s_t.items() if k != "params"})
        g_f.update({k: v for k, v in s_f.items() if k != "params"})
    keep = dict(sd_t)
    fresh.st.load_state_dict(sd_f)  # fastlr's state into torch
    fresh.sf.load_state_dict(sd_t)  # torch's state into fastlr
    assert list(sd_t) == list(keep)  # _schedulers restored in the caller's dict
    fresh.check()
    fresh.steps(1000)
    t.steps(1000)
    assert deep_bits(fresh.sf.state_dict()) == deep_bits(t.st.state_dict())
    assert_tree_engines_did_the_work(fresh.sf)


def test_sequential_state_dict_contents():
    t = tree_twin(("seq", ["linear", "exp"], [5]))
    t.steps(9)
    sd = t.sf.state_dict()
    assert set(sd) == {"_schedulers", "_milestones", "last_epoch", "_last_lr"}
    assert deep_bits(sd["_schedulers"]) == deep_bits([s.state_dict() for s in t.st._schedulers])


# ------------------------------------------------------------------------------------------------
# Validation


class _NoOptimizer:
    pass


class _Fake:
    def __init__(self, opt):
        self.optimizer = opt


VALIDATION = [
    ("seq-empty", lambda m, o, x: m.SequentialLR(o, [], [])),
    ("chain-empty", lambda m, o, x: m.ChainedScheduler([])),
    ("seq-no-optimizer", lambda m, o, x: m.SequentialLR(o, [m.ExponentialLR(o, 0.9), _NoOptimizer()], [2])),
    ("chain-no-optimizer", lambda m, o, x: m.ChainedScheduler([m.ExponentialLR(o, 0.9), _NoOptimizer()])),
    ("seq-plateau", lambda m, o, x: m.SequentialLR(o, [m.ExponentialLR(o, 0.9), m.ReduceLROnPlateau(o)], [2])),
    ("chain-plateau", lambda m, o, x: m.ChainedScheduler([m.ReduceLROnPlateau(o)])),
    ("seq-other-optimizer",
     lambda m, o, x: m.SequentialLR(o, [m.ExponentialLR(o, 0.9), m.ExponentialLR(x, 0.9)], [2])),
    ("chain-other-optimizer",
     lambda m, o, x: m.ChainedScheduler([m.ExponentialLR(o, 0.9), m.ExponentialLR(x, 0.9)])),
    ("chain-explicit-other-optimizer", lambda m, o, x: m.ChainedScheduler([m.ExponentialLR(o, 0.9)], optimizer=x)),
    ("seq-milestone-count", lambda m, o, x: m.SequentialLR(o, [m.ExponentialLR(o, 0.9)], [2])),
    ("seq-milestone-count-2", lambda m, o, x: m.SequentialLR(o, [m.ExponentialLR(o, 0.9)] * 3, [2])),
    ("seq-no-initial_lr", lambda m, o, x: m.SequentialLR(o, [_Fake(o)], [])),
    ("seq-not-a-list", lambda m, o, x: m.SequentialLR(o, m.ExponentialLR(o, 0.9), [])),
    ("chain-members-not-schedulers", lambda m, o, x: m.ChainedScheduler([1, 2])),
]


@pytest.mark.parametrize("name, fn", VALIDATION, ids=[v[0] for v in VALIDATION])
def test_validation_errors_like_torch(name, fn):
    """Same exception type and message (the optimizer's repr included) on both sides."""
    o_t, o_f = make_opt(3), make_opt(3)
    x_t, x_f = make_opt(2), make_opt(2)
    a, b = same_outcome(lambda: fn(TORCH, o_t, x_t), lambda: fn(F, o_f, x_f))
    assert a.exc is not None


COMPOSITE_TENSOR = [
    ("seq", ("seq", ["linear", "cosine", "cyclic"], [7, 60]), frozenset()),
    ("seq-nested-chain", ("seq", [("chain", ["constant", "exp"]), "cosine"], [40]), frozenset()),
    ("seq-torch-member", ("seq", ["exp", "cosine"], [20]), frozenset({(1,)})),
    ("chain", ("chain", ["exp", "cosine", "constant"]), frozenset()),
    ("chain-lambda-swalr", ("chain", ["exp", "lambda", "swalr"]), frozenset()),
    ("chain-torch-tail", ("chain", ["exp", "cosine"]), frozenset({(1,)})),
]


@pytest.mark.parametrize("cid, spec, torch_nodes", COMPOSITE_TENSOR, ids=[c[0] for c in COMPOSITE_TENSOR])
def test_composites_with_tensor_lrs_keep_each_steps_last_lr(cid, spec, torch_nodes):
    """With tensor lrs a composite's `_last_lr` (a fresh tensor per group in torch) is the engine's
    snapshot of the groups' lrs after the step, built when read: every step's list bitwise torch's
    (the twin checks), and a list read earlier keeps its values while later steps change the lrs."""
    t = tree_twin(spec, 5, torch_nodes=torch_nodes, lr_kind="tensor64")
    held = []
    for k in range(150):
        t.do(lambda s, o: s.step())
        if k % 13 == 0:
            held.append((t.st.get_last_lr(), t.sf.get_last_lr()))
    for ref_list, fast_list in held:
        assert deep_bits(fast_list) == deep_bits(ref_list)
    assert deep_bits(held[0][1]) != deep_bits(held[-1][1])
    assert_tree_engines_did_the_work(t.sf)
