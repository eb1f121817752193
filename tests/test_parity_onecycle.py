"""OneCycleLR parity with the installed torch: lrs and momentum/beta1, bit for bit.

Every test steps torch's and fastlr's scheduler on identical optimizers (``_helpers_more.Twin``) and
compares everything observable; ordinary float configs must be computed by fastlr's engine.
"""

from __future__ import annotations

import inspect

import pytest
torch = pytest.importorskip("torch")
from _helpers_more import (
    GROUPS,
    TENSOR_STEPS,
    TORCH,
    Twin,
    assert_engine_did_the_work,
    deep_bits,
    engine_counts,
    lrs_for,
    make_opt,
    reload,
    same_outcome,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastlr import lr_scheduler as F

pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")

N = 10_000

CONFIGS = [
    ("cos", dict(anneal_strategy="cos")),
    ("linear", dict(anneal_strategy="linear")),
    ("cos-three-phase", dict(anneal_strategy="cos", three_phase=True, pct_start=0.25)),
    ("linear-three-phase", dict(anneal_strategy="linear", three_phase=True, pct_start=0.4)),
    ("cos-div-factors", dict(div_factor=7.3, final_div_factor=333.0, pct_start=0.123)),
    ("linear-int-div-factors", dict(anneal_strategy="linear", div_factor=3, final_div_factor=10)),
]


@pytest.mark.parametrize("G", GROUPS)
@pytest.mark.parametrize("cid, kw", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_matches_torch_sgd(cid, kw, G):
    max_lrs = [0.1 * (1 + 0.3 * i) for i in range(G)]
    bm = [0.8 + 0.001 * i for i in range(G)]

    def build(mod, opt):
        return mod.OneCycleLR(opt, max_lr=max_lrs, total_steps=N, base_momentum=bm, max_momentum=0.95, **kw)

    t = Twin(build, lambda: make_opt(G))
    t.steps(N)  # last_epoch reaches total_steps: allowed, extrapolated
    assert_engine_did_the_work(t.sf, N)


@pytest.mark.parametrize("G", GROUPS)
@pytest.mark.parametrize("cid, kw", CONFIGS[:4], ids=[c[0] for c in CONFIGS[:4]])
def test_matches_torch_adam_beta1(cid, kw, G):
    def build(mod, opt):
        return mod.OneCycleLR(opt, max_lr=0.01, epochs=10, steps_per_epoch=N // 10, **kw)

    t = Twin(build, lambda: make_opt(G, opt="Adam", betas=(0.9, 0.98)))
    t.steps(N)
    assert_engine_did_the_work(t.sf, N)
    assert all(g["betas"][1] == 0.98 for g in t.of.param_groups)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_no_cycle_momentum(strategy):
    def build(mod, opt):
        return mod.OneCycleLR(opt, 0.3, total_steps=777, anneal_strategy=strategy, cycle_momentum=False)

    t = Twin(build, lambda: make_opt(3, momentum=0.0))
    t.steps(777)
    assert_engine_did_the_work(t.sf)


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_at_and_past_total_steps(strategy, three_phase):
    """step == total_steps extrapolates; total_steps + 1 raises ValueError with last_epoch incremented
    and the lrs untouched, on every later call too."""

    def build(mod, opt):
        return mod.OneCycleLR(opt, [0.1, 0.2, 0.3], total_steps=50, anneal_strategy=strategy,
                              three_phase=three_phase)

    t = Twin(build, lambda: make_opt(3))
    t.steps(50)
    assert t.sf.last_epoch == 50
    for k in range(3):
        a, b = t.do(lambda s, o: s.step())  # also compares state_dict(): last_epoch left incremented
        assert isinstance(a.exc, ValueError) and isinstance(b.exc, ValueError)
        assert t.sf.last_epoch == 51 + k
    # the 51 ordinary steps (construction included) were the engine's; the raising ones may be torch's
    assert engine_counts(t.sf)[0] >= 51


def test_step_epoch_and_past_the_end():
    def build(mod, opt):
        return mod.OneCycleLR(opt, 0.1, total_steps=100, three_phase=True)

    t = Twin(build, lambda: make_opt(3))
    for e in [0, 10, 99, 100, 5, 101, 30, 150]:
        a, b = t.do(lambda s, o: s.step(e))
        assert [w[1] for w in a.warnings][-1:] == [F.EPOCH_DEPRECATION_WARNING] or a.exc is not None
        t.steps(2, action=lambda s, k: s.step(40 + k))
    assert t.sf._fastlr_engine.handled > 0


def test_static_anneal_functions():
    for name in ("_annealing_cos", "_annealing_linear"):
        assert isinstance(inspect.getattr_static(F.OneCycleLR, name), staticmethod)
        ft, ff = getattr(TORCH.OneCycleLR, name), getattr(F.OneCycleLR, name)
        for start, end, pct in [(0.1, 0.001, 0.0), (0.004, 0.1, 0.3), (0.1, 4e-7, 1.0), (0.1, 4e-7, 1.0001),
                                (3, 1, 0.5), (0.95, 0.85, 0.77777)]:
            assert deep_bits(ft(start, end, pct)) == deep_bits(ff(start, end, pct))


@pytest.mark.parametrize("legacy_fn", ["_annealing_cos", "_annealing_linear"])
def test_legacy_anneal_func_attribute(legacy_fn):
    """An instance from before `_anneal_func_type` (old pickles) uses its `anneal_func` attribute."""

    def build(mod, opt):
        return mod.OneCycleLR(opt, [0.1, 0.2, 0.3], total_steps=300, anneal_strategy="cos")

    t = Twin(build, lambda: make_opt(3))
    t.steps(10)

    def make_legacy(s, o):
        del s._anneal_func_type
        s.anneal_func = getattr(type(s), legacy_fn)

    t.do(make_legacy)
    t.steps(290)
    # a legacy state dict (no _anneal_func_type, an anneal_func entry) loads as torch's does
    sd_t, sd_f = t.st.state_dict(), t.sf.state_dict()
    assert "_anneal_func_type" not in sd_f and "anneal_func" in sd_f
    assert deep_bits(sd_t) == deep_bits(sd_f)


def test_legacy_state_dict_into_new_instance():
    """A legacy state dict lacks `_anneal_func_type`: loading it keeps the new instance's own type."""
    src = TORCH.OneCycleLR(make_opt(3), 0.1, total_steps=200, anneal_strategy="linear")
    for _ in range(20):
        src.step()
    sd = src.state_dict()
    del sd["_anneal_func_type"]
    sd["anneal_func"] = TORCH.OneCycleLR._annealing_linear

    def build(mod, opt):
        return mod.OneCycleLR(opt, 0.1, total_steps=200, anneal_strategy="cos")

    t = Twin(build, lambda: make_opt(3))
    t.do(lambda s, o: s.load_state_dict(dict(sd)))
    t.steps(180)


def test_unknown_anneal_func_type_raises_like_torch():
    def build(mod, opt):
        return mod.OneCycleLR(opt, 0.1, total_steps=200)

    t = Twin(build, lambda: make_opt(3))
    t.steps(5)
    t.do(lambda s, o: setattr(s, "_anneal_func_type", "Cos"))
    a, b = t.do(lambda s, o: s.step())
    assert isinstance(a.exc, ValueError)


@pytest.mark.parametrize("G", (1, 3))
def test_editing_group_keys_mid_run(G):
    """OneCycleLR reads initial_lr / max_lr / min_lr and the momentum bounds from the groups each step."""

    def build(mod, opt):
        return mod.OneCycleLR(opt, 0.1, total_steps=3000, three_phase=True)

    def between(k, opt, s):
        g = opt.param_groups[0]
        if k == 100:
            g["max_lr"] = 0.5
        if k == 900:
            g["initial_lr"] = 0.02
        if k == 1500:
            g["min_lr"] = 1e-3
        if k == 1700:
            g["max_momentum"] = 0.99
        if k == 2000:
            g["lr"] = 42.0  # overwritten at the next step
        if k == 2500:
            g["max_lr"] = 1  # an int: torch's arithmetic gives the same float

    t = Twin(build, lambda: make_opt(G))
    t.steps(3000, between=between)
    assert_engine_did_the_work(t.sf)


def test_pct_start_times_total_steps_one_divides_by_zero():
    for kw in (dict(total_steps=10, pct_start=0.1), dict(epochs=2, steps_per_epoch=5, pct_start=0.1),
               dict(total_steps=20, pct_start=0.05, three_phase=True)):
        a, b = same_outcome(lambda: TORCH.OneCycleLR(make_opt(3), 0.1, **kw),
                            lambda: F.OneCycleLR(make_opt(3), 0.1, **kw))
        assert isinstance(a.exc, ZeroDivisionError), kw


@pytest.mark.parametrize("k", [0, 1, 299, 2999, 5999])
def test_resume_with_last_epoch(k):
    def first(mod, opt):
        return mod.OneCycleLR(opt, [0.1, 0.05, 0.01], total_steps=6000, anneal_strategy="linear")

    t = Twin(first, lambda: make_opt(3))
    t.steps(k)
    osd = t.ot.state_dict()
    ssd = t.st.state_dict()

    def make():
        o = make_opt(3)
        o.load_state_dict(osd)
        return o

    def resumed(mod, opt):
        return mod.OneCycleLR(opt, [0.1, 0.05, 0.01], total_steps=6000, anneal_strategy="linear", last_epoch=k)

    t2 = Twin(resumed, make)
    t2.do(lambda s, o: s.load_state_dict(dict(ssd)))
    t2.steps(6000 - k)
    assert_engine_did_the_work(t2.sf)


def test_resume_without_group_keys_raises_like_torch():
    def build(mod, opt):
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
        return mod.OneCycleLR(opt, 0.1, total_steps=100, last_epoch=3)

    a, b = same_outcome(lambda: build(TORCH, make_opt(3)), lambda: build(F, make_opt(3)))
    assert isinstance(a.exc, KeyError)


@pytest.mark.parametrize("G", GROUPS)
def test_tensor64_lrs(G):
    def build(mod, opt):
        return mod.OneCycleLR(opt, 0.1, total_steps=TENSOR_STEPS[G], three_phase=True)

    t = Twin(build, lambda: make_opt(G, "tensor64", opt="Adam"))
    ids = [id(g["lr"]) for g in t.of.param_groups]
    t.steps(TENSOR_STEPS[G])
    assert [id(g["lr"]) for g in t.of.param_groups] == ids
    assert all(g["lr"].dtype == torch.float64 for g in t.of.param_groups)


def test_tensor_max_lr():
    """A tensor max_lr makes initial_lr/max_lr/min_lr tensors (cloned by _format_param)."""
    ml = torch.tensor(0.1, dtype=torch.float64)

    def build(mod, opt):
        return mod.OneCycleLR(opt, ml, total_steps=100)

    t = Twin(build, lambda: make_opt(3))
    t.steps(100)
    assert all(g["max_lr"] is not ml for g in t.of.param_groups)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_state_dict_round_trip(strategy):
    def build(mod, opt):
        return mod.OneCycleLR(opt, 0.1, total_steps=500, anneal_strategy=strategy, three_phase=True)

    t = Twin(build, lambda: make_opt(3, opt="AdamW"))
    t.steps(123)
    sd_t, sd_f = reload(t.st.state_dict()), reload(t.sf.state_dict())
    assert deep_bits(sd_t) == deep_bits(sd_f)
    assert list(sd_f) == list(t.st.state_dict())
    fresh = Twin(build, lambda: make_opt(3, opt="AdamW"))
    fresh.st.load_state_dict(sd_f)  # fastlr's state into torch
    fresh.sf.load_state_dict(sd_t)  # torch's state into fastlr
    fresh.check()
    fresh.steps(377)
    assert_engine_did_the_work(fresh.sf)


# ------------------------------------------------------------------------------------------------


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    G=st.sampled_from(GROUPS),
    total=st.integers(2, N),
    pct=st.floats(0.0, 1.0),
    strategy=st.sampled_from(["cos", "linear"]),
    three=st.booleans(),
    div=st.floats(1.0, 1e3),
    final=st.floats(1.0, 1e5),
    adam=st.booleans(),
    seed=st.integers(0, 10),
)
def test_random_configs(G, total, pct, strategy, three, div, final, adam, seed):
    max_lrs = lrs_for(G, seed)

    def build(mod, opt):
        return mod.OneCycleLR(opt, max_lrs, total_steps=total, pct_start=pct, anneal_strategy=strategy,
                              three_phase=three, div_factor=div, final_div_factor=final)

    a, b = same_outcome(lambda: build(TORCH, make_opt(G)), lambda: build(F, make_opt(G)))
    if a.exc is not None:
        return  # e.g. ZeroDivisionError for a degenerate phase: same exception, checked above
    t = Twin(build, lambda: make_opt(G, opt="Adam" if adam else "SGD"))
    t.steps(total + 2)  # the last two raise ValueError on both sides


EDGE = [
    ("total_steps-1", dict(total_steps=1)),
    ("total_steps-True", dict(total_steps=True)),
    ("pct_start-nan", dict(total_steps=100, pct_start=float("nan"))),
    ("pct_start-0", dict(total_steps=100, pct_start=0.0)),
    ("pct_start-1", dict(total_steps=100, pct_start=1.0)),
    ("pct_start-0.5-three-phase", dict(total_steps=100, pct_start=0.5, three_phase=True)),
    ("pct_start-0.9-three-phase", dict(total_steps=100, pct_start=0.9, three_phase=True)),
    ("div_factor-inf", dict(total_steps=100, div_factor=float("inf"))),
    ("final_div_factor-0", dict(total_steps=100, final_div_factor=0.0)),
    ("final_div_factor-negative", dict(total_steps=100, final_div_factor=-3.0)),
    ("max_lr-int", dict(total_steps=100, max_lr=1)),
    ("max_lr-zero", dict(total_steps=100, max_lr=0.0)),
    ("max_lr-negative", dict(total_steps=100, max_lr=-0.5)),
    ("max_lr-huge", dict(total_steps=100, max_lr=1e308, div_factor=1e-10)),
    ("momentum-int", dict(total_steps=100, base_momentum=0, max_momentum=1)),
]


@pytest.mark.parametrize("eid, kw", EDGE, ids=[e[0] for e in EDGE])
def test_edge_configs(eid, kw):
    kw = dict(kw)
    max_lr = kw.pop("max_lr", 0.1)

    def build(mod, opt):
        return mod.OneCycleLR(opt, max_lr, **kw)

    a, b = same_outcome(lambda: build(TORCH, make_opt(3)), lambda: build(F, make_opt(3)))
    if a.exc is None:
        t = Twin(build, lambda: make_opt(3))
        t.steps(t.st.total_steps + 2)
