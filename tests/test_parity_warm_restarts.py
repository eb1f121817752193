"""CosineAnnealingWarmRestarts parity with the installed torch, bit for bit.

CAWR overrides ``step()``: it takes fractional epochs, interleaves ``step()`` and ``step(epoch)``, never
touches ``_step_count`` and never warns. All of that is compared against torch at run time.
"""

from __future__ import annotations

import numpy as np
import pytest
torch = pytest.importorskip("torch")
from _helpers_more import (
    GROUPS,
    TENSOR_STEPS,
    TORCH,
    Twin,
    assert_engine_did_the_work,
    check_float32_contract,
    deep_bits,
    make_opt,
    reload,
    same_outcome,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastlr import lr_scheduler as F

N = 10_000

CONFIGS = [
    ("T0-10", dict(T_0=10)),
    ("T0-1", dict(T_0=1)),
    ("T0-7-mult-2-eta", dict(T_0=7, T_mult=2, eta_min=1e-5)),
    ("T0-3-mult-3", dict(T_0=3, T_mult=3)),
    ("T0-500-eta-int", dict(T_0=500, eta_min=0)),
    ("T0-13-eta-above-base", dict(T_0=13, eta_min=0.5)),
]


def cawr(**kw):
    return lambda mod, opt: mod.CosineAnnealingWarmRestarts(opt, **kw)


@pytest.mark.parametrize("G", GROUPS)
@pytest.mark.parametrize("cid, kw", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_matches_torch(cid, kw, G):
    t = Twin(cawr(**kw), lambda: make_opt(G))
    t.steps(N)
    assert_engine_did_the_work(t.sf, N)
    assert t.sf._step_count == t.st._step_count == 0


@pytest.mark.parametrize("G", GROUPS)
@pytest.mark.parametrize("T_mult", [1, 2])
def test_fractional_epochs(T_mult, G):
    """The documented per-batch use: step(epoch + i / iters)."""
    iters = 7

    t = Twin(cawr(T_0=3, T_mult=T_mult, eta_min=1e-4), lambda: make_opt(G))
    t.steps(N, action=lambda s, k: s.step(k // iters + (k % iters) / iters))
    assert_engine_did_the_work(t.sf, N)


def test_interleaving_step_and_step_epoch():
    t = Twin(cawr(T_0=4, T_mult=2), lambda: make_opt(3))
    script = [None] * 20 + [26, None, 1.5, None, None, 0, 0.25, None, 100, 3.999, None] + [None] * 50
    for e in script:
        a, _ = t.do(lambda s, o: s.step() if e is None else s.step(e))
        assert a.warnings == [] and a.exc is None
    assert t.sf._step_count == 0
    assert_engine_did_the_work(t.sf, len(script))
    # random interleaving over a long run
    rng = np.random.default_rng(7)
    plan = rng.random(N)
    t.steps(N, action=lambda s, k: s.step(float(plan[k] * 5000)) if plan[k] < 0.1 else s.step())
    assert_engine_did_the_work(t.sf, N)


@pytest.mark.parametrize(
    "T_0, T_mult, epochs",
    [
        (1, 3, [121]),  # math.log(243, 3) == 4.999999999999999: T_cur=81.0, T_i=81 (lr = eta_min)
        (1, 3, [4, 13, 40, 121, 364, 1093]),
        (1, 2, [2**k - 1 for k in range(1, 40)]),
        (2, 5, [2 * (5**k - 1) // 4 for k in range(1, 14)]),
        (3, 7, list(range(0, 3000, 7))),
    ],
    ids=["121", "powers-of-3", "powers-of-2", "powers-of-5", "range"],
)
def test_float_log_restart_points(T_0, T_mult, epochs):
    """Explicit epochs at (and next to) restart boundaries: int(math.log(x, T_mult)) truncation."""
    t = Twin(cawr(T_0=T_0, T_mult=T_mult, eta_min=0.001), lambda: make_opt(3))
    for e in epochs:
        for x in (e, e - 1, e + 1, e + 0.5):
            if x >= 0:
                t.do(lambda s, o: s.step(x))
    assert_engine_did_the_work(t.sf)


def test_log_edge_case_really_is_torchs():
    """At step(121) with T_0=1, T_mult=3 torch itself lands on T_cur=81.0, T_i=81 (not a restart)."""
    t = Twin(cawr(T_0=1, T_mult=3), lambda: make_opt(1))
    t.do(lambda s, o: s.step(121))
    assert (t.st.T_cur, t.st.T_i) == (t.sf.T_cur, t.sf.T_i)
    assert type(t.sf.T_cur) is type(t.st.T_cur) is float


def test_every_explicit_epoch_against_torch():
    for T_0, T_mult in [(1, 2), (1, 3), (2, 3), (5, 4), (1, 10)]:
        t = Twin(cawr(T_0=T_0, T_mult=T_mult), lambda: make_opt(1))
        t.steps(2000, action=lambda s, k: s.step(k))
        t.steps(2000, action=lambda s, k: s.step(k * 1.37))
        assert_engine_did_the_work(t.sf, 4000)


def test_T_cur_reset_single_wrap():
    """T_cur set to 9 with T_i=4: step() reduces T_cur fully (9+1 % 4) but multiplies T_i only once."""
    t = Twin(cawr(T_0=4, T_mult=2), lambda: make_opt(3))
    t.steps(2)
    t.do(lambda s, o: setattr(s, "T_cur", 9))
    a, _ = t.do(lambda s, o: s.step())
    assert (t.sf.T_cur, t.sf.T_i) == (t.st.T_cur, t.st.T_i)
    t.steps(100)
    assert_engine_did_the_work(t.sf)


@pytest.mark.parametrize("epoch", [-1, -0.5, -1e-300, float("-inf")])
def test_negative_epoch_raises_like_torch(epoch):
    t = Twin(cawr(T_0=4), lambda: make_opt(3))
    t.steps(3)
    a, b = t.do(lambda s, o: s.step(epoch))
    assert isinstance(a.exc, ValueError) and str(a.exc) == str(b.exc)
    t.steps(3)


@pytest.mark.parametrize(
    "epoch",
    [True, False, np.float64(3.5), np.int64(4), torch.tensor(3.5), torch.tensor(7), 2**60, 2**70, 1e300,
     float("inf"), float("nan"), 3.0, -0.0, 0],
    ids=lambda e: f"{type(e).__name__}-{e}",
)
def test_odd_epoch_types(epoch):
    """Whatever torch does with these (value, type of T_cur, or the exception), fastlr does too."""
    for T_mult in (1, 2):
        t = Twin(cawr(T_0=3, T_mult=T_mult), lambda: make_opt(3))
        t.steps(5)
        t.do(lambda s, o: s.step(epoch))
        assert type(t.sf.T_cur) is type(t.st.T_cur)
        t.do(lambda s, o: s.step())


@pytest.mark.parametrize("T_0, T_mult", [(True, 1), (True, 2), (3, True)])
def test_bool_hyperparameters(T_0, T_mult):
    t = Twin(cawr(T_0=T_0, T_mult=T_mult), lambda: make_opt(3))
    for e in [0.5, None, 0, None, 5, None]:
        t.do(lambda s, o: s.step(e))


def test_no_warnings_no_step_count():
    t = Twin(cawr(T_0=5), lambda: make_opt(3))
    for e in [None, 3, None, 2.5]:
        a, b = t.do(lambda s, o: s.step(e))
        assert a.warnings == b.warnings == []
    assert t.sf._step_count == 0


@pytest.mark.parametrize("k", [0, 1, 9, 10, 11, 1000])
@pytest.mark.parametrize("T_mult", [1, 2])
def test_resume_with_last_epoch(k, T_mult):
    """last_epoch=k: T_cur = k, then the initial step makes it k + 1 (a single wrap)."""

    def build(mod, opt):
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"] * 2
        return mod.CosineAnnealingWarmRestarts(opt, T_0=10, T_mult=T_mult, eta_min=1e-3, last_epoch=k)

    t = Twin(build, lambda: make_opt(3))
    t.steps(1000)
    assert_engine_did_the_work(t.sf)


def test_resume_from_checkpoint():
    t = Twin(cawr(T_0=6, T_mult=2, eta_min=1e-4), lambda: make_opt(3))
    t.steps(333)
    osd, ssd = t.ot.state_dict(), reload(t.st.state_dict())

    def make():
        o = make_opt(3)
        o.load_state_dict(osd)
        return o

    def resumed(mod, opt):
        s = mod.CosineAnnealingWarmRestarts(opt, T_0=6, T_mult=2, eta_min=1e-4, last_epoch=333)
        s.load_state_dict(dict(ssd))
        return s

    t2 = Twin(resumed, make)
    t2.steps(2000)
    t.steps(2000)
    assert deep_bits(t.st.get_last_lr()) == deep_bits(t2.sf.get_last_lr())


@pytest.mark.parametrize("G", GROUPS)
def test_tensor64_lrs(G):
    t = Twin(cawr(T_0=7, T_mult=2, eta_min=1e-6), lambda: make_opt(G, "tensor64"))
    ids = [id(g["lr"]) for g in t.of.param_groups]
    t.steps(TENSOR_STEPS[G] // 2)
    t.steps(TENSOR_STEPS[G] // 2, action=lambda s, k: s.step(k / 3))
    assert [id(g["lr"]) for g in t.of.param_groups] == ids


def test_tensor32_lrs_contract():
    """float32 tensor lrs: the float32 rounding of torch's float64 values (see the helper)."""
    check_float32_contract(cawr(T_0=7, T_mult=2), 3, 3000, action=lambda s, k: s.step(k / 4) if k % 3 else s.step())


def test_eta_min_tensor_rejected_like_torch():
    for eta in (torch.tensor(0.0), "0", None):
        a, b = same_outcome(lambda: TORCH.CosineAnnealingWarmRestarts(make_opt(3), 5, eta_min=eta),
                            lambda: F.CosineAnnealingWarmRestarts(make_opt(3), 5, eta_min=eta))
        assert isinstance(a.exc, ValueError)


def test_state_dict_cross_load():
    t = Twin(cawr(T_0=5, T_mult=3, eta_min=0.002), lambda: make_opt(3))
    t.steps(50)
    t.do(lambda s, o: s.step(77.7))
    sd_t, sd_f = reload(t.st.state_dict()), reload(t.sf.state_dict())
    assert deep_bits(sd_t) == deep_bits(sd_f)
    fresh = Twin(cawr(T_0=5, T_mult=3, eta_min=0.002), lambda: make_opt(3))
    fresh.st.load_state_dict(sd_f)
    fresh.sf.load_state_dict(sd_t)
    fresh.check()
    fresh.steps(500)
    assert_engine_did_the_work(fresh.sf)


def test_manual_edits():
    def between(k, opt, s):
        if k == 10:
            s.T_i = 3
        if k == 20:
            s.eta_min = 0.05
        if k == 30:
            s.base_lrs = [0.3, 0.2, 0.1]
        if k == 40:
            s.T_mult = 4
        if k == 50:
            opt.param_groups[1]["lr"] = 9.0  # overwritten: closed form from base_lrs

    t = Twin(cawr(T_0=5, T_mult=2), lambda: make_opt(3))
    t.steps(300, between=between)
    assert_engine_did_the_work(t.sf)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    G=st.sampled_from(GROUPS),
    T_0=st.integers(1, 50),
    T_mult=st.integers(1, 4),
    eta_min=st.one_of(st.just(0.0), st.floats(0.0, 0.2), st.integers(0, 1)),
    iters=st.integers(1, 9),
    explicit=st.booleans(),
)
def test_random_configs(G, T_0, T_mult, eta_min, iters, explicit):
    t = Twin(cawr(T_0=T_0, T_mult=T_mult, eta_min=eta_min), lambda: make_opt(G))
    if explicit:
        t.steps(N, action=lambda s, k: s.step(k // iters + (k % iters) / iters))
    else:
        t.steps(N)
    assert_engine_did_the_work(t.sf, N)
