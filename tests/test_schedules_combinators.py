"""Combinators (join, warmup, product, scale, offset) against their piecewise definitions, and the
metric-driven plateau node against ReduceLROnPlateau's state machine."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlr import schedules as S


def leaf_schedules():
    return st.one_of(
        st.builds(S.constant, st.floats(-2, 2)),
        st.builds(S.linear, st.floats(-2, 2), st.floats(-2, 2), st.integers(0, 50)),
        st.builds(lambda a, b, n: S.cosine(a, n, b), st.floats(-2, 2), st.floats(-2, 2), st.integers(0, 50)),
        st.builds(S.polynomial, st.floats(0, 2), st.floats(0, 2), st.integers(0, 50), st.sampled_from([1.0, 2.0])),
        st.builds(lambda a, n: S.step(a, n, 0.5), st.floats(0, 2), st.integers(1, 20)),
        st.builds(lambda a, p: S.cyclic(0.0, a, p), st.floats(0.1, 2), st.integers(1, 20)),
        st.builds(lambda a, p: S.warm_restarts(a, p, t_mult=2.0), st.floats(0.1, 2), st.integers(1, 20)),
    )


def piecewise(parts, bounds):
    """Reference join: s_k(t - b_k) for b_k <= t < b_{k+1}, evaluated with each part's own s(t)."""
    starts = [0, *bounds]

    def f(t):
        k = sum(1 for b in bounds if b <= t)
        return parts[k](t - starts[k])

    return f


STEPS_PROBE = np.array(sorted({*range(0, 160), 0.5, 10.25, 99.75, 150.5, 1000.0, 1e6}))


@settings(max_examples=80, deadline=None)
@given(parts=st.lists(leaf_schedules(), min_size=1, max_size=5), data=st.data())
def test_join_is_the_piecewise_definition(parts, data):
    bounds = sorted(data.draw(st.lists(st.integers(0, 120), min_size=len(parts) - 1, max_size=len(parts) - 1)))
    s = S.join(parts, bounds)
    ref = piecewise(parts, bounds)
    got = s.at(STEPS_PROBE)
    want = np.array([ref(float(t)) for t in STEPS_PROBE])
    assert np.array_equal(got, want)  # the same node code: bitwise
    # zero-length phases are skipped: at a repeated boundary the last phase starting there runs
    for b in bounds:
        last = max(i for i, x in enumerate(bounds) if x == b) + 1
        assert s(b) == parts[last](0.0)


@settings(max_examples=40, deadline=None)
@given(inner=st.lists(leaf_schedules(), min_size=2, max_size=3), outer=leaf_schedules(), b=st.integers(0, 60), c=st.integers(0, 60))
def test_nested_joins(inner, outer, b, c):
    bi = sorted([c] * (len(inner) - 1))
    j = S.join(inner, bi)
    s = S.join([outer, j], [b])
    ref = piecewise([outer, piecewise(inner, bi)], [b])
    assert np.array_equal(s.at(STEPS_PROBE), np.array([ref(float(t)) for t in STEPS_PROBE]))


@settings(max_examples=60, deadline=None)
@given(
    body=leaf_schedules(),
    w=st.integers(0, 80),
    kind=st.sampled_from(["linear", "constant", "exponential", "cosine"]),
    start=st.floats(0.01, 0.5),
)
def test_warmup_is_join_of_a_ramp(body, w, kind, start):
    peak = body(0)
    if kind == "exponential" and not peak / start > 0:
        with pytest.raises(ValueError):
            S.warmup(body, w, kind=kind, start_value=start)
        return
    s = S.warmup(body, w, kind=kind, start_value=start)
    ts = STEPS_PROBE
    for t in ts:
        v = s(float(t))
        if t >= w:
            assert v == body(float(t) - w)
        elif kind == "linear":
            assert v == pytest.approx(start + (peak - start) * t / w, rel=1e-14, abs=1e-15)
        elif kind == "constant":
            assert v == start
        elif kind == "cosine":
            assert v == pytest.approx(peak + (start - peak) * (1 + math.cos(math.pi * t / w)) / 2, rel=1e-14, abs=1e-15)
        else:
            assert v == pytest.approx(start * (peak / start) ** (t / w), rel=1e-13)
    assert s.horizon == (None if body.horizon is None else w + body.horizon)
    # The ramp hands over to the body at w (also for w == 0), and the body's own boundaries follow, shifted.
    assert s.phase_boundaries() == sorted({float(w)} | {w + b for b in body.phase_boundaries()})


def test_warmup_peak_and_horizon():
    s = S.warmup(S.cosine(3e-4, 900, 3e-5), 100)
    assert s.peak_value == 3e-4 and s(100) == 3e-4 and s(50) == pytest.approx(1.5e-4)
    assert len(s) == 1000 and s.phase_boundaries() == [100.0]


@settings(max_examples=40, deadline=None)
@given(a=leaf_schedules(), b=leaf_schedules(), c=leaf_schedules(), k=st.floats(-3, 3), d=st.integers(-30, 30))
def test_product_scale_offset(a, b, c, k, d):
    p = a * b * c
    assert p.kind == "product" and len(p.schedules) == 3  # flattened
    sc = k * a
    off = S.offset(a, d)
    for t in STEPS_PROBE:
        t = float(t)
        assert p(t) == (a(t) * b(t)) * c(t)
        assert sc(t) == k * a(t)
        assert off(t) == a(max(t - d, 0.0))
    assert (a / 4.0)(3) == a(3) * 0.25


def test_join_fractions():
    s = S.join([S.constant(1.0), S.constant(0.5), S.constant(0.1)], fractions=[0.25, 0.7], horizon=1000)
    assert s.boundaries == (250, 700)
    assert (s(249), s(250), s(699), s(700)) == (1.0, 0.5, 0.5, 0.1)


def test_join_horizon_and_boundaries():
    s = S.join([S.linear(0, 1, 10), S.constant(1.0), S.cosine(1.0, 50)], [10, 40])
    assert s.horizon == 90 and len(s) == 90
    assert s.phase_boundaries() == [10.0, 40.0]
    assert S.join([S.linear(0, 1, 10), S.cyclic(0, 1, 5)], [10]).horizon is None


def test_shared_subschedule_is_copied_not_aliased():
    c = S.cosine(1.0, 10)
    s = S.join([c, c, c], [10, 20])
    assert np.array_equal(s.table(30)[10:20], c.table(10))


# ------------------------------------------------------------------------------------------------
# plateau


def reference_plateau(metrics, init, mode="min", factor=0.1, patience=10, threshold=1e-4,
                      threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
    """ReduceLROnPlateau.step, written from torch's documented algorithm; the value after each."""
    best = math.inf if mode == "min" else -math.inf
    bad = cool = 0
    lr = init
    out = []
    for m in metrics:
        if mode == "min":
            better = m < (best * (1 - threshold) if threshold_mode == "rel" else best - threshold)
        else:
            better = m > (best * (threshold + 1) if threshold_mode == "rel" else best + threshold)
        if better:
            best, bad = m, 0
        else:
            bad += 1
        if cool > 0:
            cool -= 1
            bad = 0
        if bad > patience:
            new = max(lr * factor, min_lr)
            if lr - new > eps:
                lr = new
            cool = cooldown
            bad = 0
        out.append(lr)
    return out


@settings(max_examples=60, deadline=None)
@given(
    metrics=st.lists(st.one_of(st.floats(-5, 5), st.sampled_from([1.0, 1.0, 2.0, math.nan])), min_size=1, max_size=60),
    mode=st.sampled_from(["min", "max"]),
    factor=st.floats(0.05, 0.9),
    patience=st.integers(0, 4),
    threshold=st.sampled_from([0.0, 1e-4, 0.1]),
    threshold_mode=st.sampled_from(["rel", "abs"]),
    cooldown=st.integers(0, 3),
    min_lr=st.sampled_from([0.0, 0.01]),
    eps=st.sampled_from([1e-8, 0.05]),
)
def test_plateau_state_machine(metrics, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps):
    kw = dict(mode=mode, factor=factor, patience=patience, threshold=threshold, threshold_mode=threshold_mode,
              cooldown=cooldown, min_lr=min_lr, eps=eps)
    p = S.plateau(0.5, **kw)
    got = []
    for m in metrics:
        p.observe(m)
        got.append(p(0))
    assert got == reference_plateau(metrics, 0.5, **kw)
    # resume from the dict: same state, same future
    q = S.from_dict(json.loads(json.dumps(p.to_dict())))
    assert q.state() == p.state()
    for m in metrics:
        p.observe(m)
        q.observe(m)
        assert p(0) == q(0)


def test_plateau_matches_torch_reduce_lr_on_plateau():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    metrics = np.round(rng.normal(size=200).cumsum() * 0.1, 2).tolist()
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=2, cooldown=1, factor=0.5, min_lr=1e-3)
    p = S.plateau(0.3, patience=2, cooldown=1, factor=0.5, min_lr=1e-3)
    for m in metrics:
        ref.step(m)
        p.observe(m)
        assert opt.param_groups[0]["lr"] == p(0)


def test_plateau_defaults_are_torch_reduce_lr_on_plateaus():
    """plateau() with no arguments behaves as ReduceLROnPlateau with its defaults (read from the
    installed torch's signature), from an lr of 1.0; the class's defaults are the function's."""
    torch = pytest.importorskip("torch")
    import inspect

    theirs = inspect.signature(torch.optim.lr_scheduler.ReduceLROnPlateau).parameters
    ours, cls = inspect.signature(S.plateau).parameters, inspect.signature(S.Plateau).parameters
    for name in ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps"):
        assert ours[name].default == theirs[name].default, name
        assert cls[name].default == ours[name].default, name
    assert cls["init_value"].default == ours["init_value"].default == 1.0
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    p = S.plateau()
    assert p(0) == 1.0
    for m in [1.0] * 40 + [0.99995] * 15 + [0.5] + [0.5] * 30:
        ref.step(m)
        p.observe(m)
        assert opt.param_groups[0]["lr"] == p(0)
    assert p(0) < 1e-3  # it did reduce, more than once
    assert S.plateau(eps=0.0).eps == 0.0  # the edge torch accepts too
    torch.optim.lr_scheduler.ReduceLROnPlateau(opt, eps=0.0)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_plateau_fresh_state_round_trips_in_either_mode(mode):
    """A state saved before any metric (best: None) loads as "no metric seen" in the plateau's own mode:
    the loaded copy then follows the same metrics exactly as an untouched one."""
    def fresh():
        return S.plateau(1.0, mode=mode, patience=0, factor=0.5)

    ref, loaded, via_dict = fresh(), fresh(), S.from_dict(fresh().to_dict())
    assert ref.state()["best"] is None
    loaded.load_state(ref.state())
    metrics = [1.0, 2.0, 3.0] if mode == "max" else [3.0, 2.0, 1.0]
    for m in metrics + metrics[::-1]:
        for p in (ref, loaded, via_dict):
            p.observe(m)
        assert ref(0) == loaded(0) == via_dict(0)
    assert ref(0) == 0.5 ** 3  # no reduction while improving, three on the way back


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("threshold_mode", ["rel", "abs"])
@pytest.mark.parametrize("threshold", [0.0, 0.1])
def test_plateau_matches_torch_in_every_mode(mode, threshold_mode, threshold):
    """Each of the four comparisons, with a threshold of 0 (equal metrics are no improvement) and 0.1,
    on metrics rounded so that equal values and exact threshold steps occur: the installed torch's
    lrs, step by step."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    walk = np.round(rng.normal(size=300).cumsum() * 0.2, 1)  # drifts down, from 0 to about -9
    metrics = (20.0 + walk if mode == "min" else 20.0 - walk).tolist()  # improving on the whole
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    kw = dict(mode=mode, threshold_mode=threshold_mode, threshold=threshold, patience=2, factor=0.9)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
    p = S.plateau(1.0, **kw)
    changes = 0
    for m in metrics:
        before = p(0)
        ref.step(m)
        p.observe(m)
        assert opt.param_groups[0]["lr"] == p(0)
        changes += p(0) != before
    assert changes >= 3


def test_plateau_partial_state_takes_the_fresh_values_for_missing_keys():
    p = S.plateau(0.8, patience=1)
    for m in (3.0, 3.0, 3.0, 3.0):
        p.observe(m)
    assert p.state() != S.plateau(0.8).state()
    p.load_state({"value": 0.5})
    assert p.state() == {"value": 0.5, "best": None, "num_bad_epochs": 0, "cooldown_counter": 0, "last_epoch": 0}
    p.load_state({})
    assert p.state() == S.plateau(0.8).state()


def test_plateau_composes_inside_join():
    # warm-up, then a plateau phase, then a decay that continues from the plateau's level
    p = S.plateau(1.0, patience=0, factor=0.5)
    s = S.join([S.linear(0.0, 1.0, 10), p, p * S.cosine(1.0, 10)], [10, 20])
    assert s.plateaus == (p,)
    s.observe(1.0, step=5)  # during the warm-up: the plateau is not active, does not see it
    assert p.last_epoch == 0
    s.observe(1.0, step=12)
    s.observe(1.0, step=13)  # no improvement, patience 0: halve
    assert p.value == 0.5 and s(15) == 0.5
    assert s(20) == 0.5 and s(25) == pytest.approx(0.25)
    table = s.table(30)
    assert table[15] == 0.5 and table[10] == 0.5
    back = S.from_dict(json.loads(json.dumps(s.to_dict())))
    assert np.array_equal(back.table(30), table)
    s.observe(1.0)  # no step: every plateau sees it
    assert p.value == 0.25 and s(15) == 0.25


def test_plateau_takes_metrics_with_item():
    """A 0-d array or a one-element tensor (what a loss is) is read with .item(), like a float."""
    p, q = S.plateau(1.0, patience=0, factor=0.5), S.plateau(1.0, patience=0, factor=0.5)
    for m in (3.0, 2.0, 2.5, 2.5):
        p.observe(np.array(m))
        q.observe(m)
        assert p.state() == q.state()
    assert p(0) == 0.25
    torch = pytest.importorskip("torch")
    p.observe(torch.tensor([1.0]))
    q.observe(1.0)
    assert p.state() == q.state()
    with pytest.raises(TypeError, match="metric must be a real number"):
        p.observe(np.array(True))


def test_plateau_rejects_bad_metrics_and_state():
    p = S.plateau()
    with pytest.raises(TypeError):
        p.observe("1.0")
    with pytest.raises(ValueError, match="unknown plateau state"):
        p.load_state({"values": 1})
    with pytest.raises(TypeError):
        p.load_state([1])
