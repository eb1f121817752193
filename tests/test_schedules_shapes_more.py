"""The shapes issue 13 added (tanh, polynomial k_decay, cosine exponent, WSD's decaying stable phases
and power / ratio-exponential decays, optax's one-cycle recipes) against independent references
written out from their docstring formulas in plain Python, at random parameters; their errors; and
their round trips. tests/test_peer_shapes.py steps the peers themselves."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlr import schedules as S


def close(got: np.ndarray, ref: list[float], scale: float, ulps: float = 16) -> None:
    ref_a = np.array(ref, dtype=float)
    err = np.max(np.abs(got - ref_a)) if len(ref_a) else 0.0
    assert err <= ulps * np.finfo(float).eps * max(scale, 1e-300), (err, got, ref_a)


def steps_around(*marks: float, n: int = 40) -> list[float]:
    out = {0.0}
    for m in marks:
        for d in (-1.0, -0.5, 0.0, 0.5, 1.0):
            if m + d >= 0:
                out.add(m + d)
    rng = np.random.default_rng(7)
    hi = max([1.0, *marks]) * 1.5
    out.update(float(x) for x in rng.uniform(0, hi, n))
    return sorted(out)


@settings(max_examples=50, deadline=None)
@given(
    init=st.floats(0.01, 2.0),
    end=st.floats(0.0, 0.01),
    T=st.integers(1, 500),
    exponent=st.sampled_from([0.5, 1.0, 2.0, 3.7]),
    k=st.sampled_from([1.0, 1.5]),
)
def test_cosine_exponent(init: float, end: float, T: int, exponent: float, k: float) -> None:
    s = S.cosine(init, T, end_value=end, k_decay=k, exponent=exponent)
    ts = steps_around(T)
    ref = [end + (init - end) * ((1 + math.cos(math.pi * min(t / T, 1.0) ** k)) / 2) ** exponent for t in ts]
    # (an exponent < 1 magnifies the reference's own error where 1 + cos(pi x) cancels, near the end)
    close(s.at(ts), ref, init, 16 if exponent >= 1 else 1e7)
    assert s(T) == end == s(10 * T)


@settings(max_examples=50, deadline=None)
@given(
    init=st.floats(0.01, 2.0),
    end=st.floats(0.0, 0.01),
    T=st.integers(1, 500),
    power=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    k=st.sampled_from([0.5, 1.0, 2.0, 3.0]),
)
def test_polynomial_k_decay(init: float, end: float, T: int, power: float, k: float) -> None:
    s = S.polynomial(init, end, T, power, k_decay=k)
    ts = steps_around(T)
    ref = [end + (init - end) * (1 - (t / T) ** k) ** power if t < T else end for t in ts]
    close(s.at(ts), ref, init)


def ref_tanh(t: float, init: float, T: float, low: float, lb: float, ub: float, m: float, decay: float, limit: int | None) -> float:
    i, start = 0, 0.0
    while start + T * m**i <= t and i < 10_000:  # walk the cycles
        start += T * m**i
        i += 1
    if limit is not None and i >= limit:
        return low
    f = (t - start) / (T * m**i)
    return low + (init * decay**i - low) / 2 * (1 - math.tanh(lb * (1 - f) + ub * f))


@settings(max_examples=50, deadline=None)
@given(
    init=st.floats(0.01, 2.0),
    low=st.floats(0.0, 0.01),
    T=st.integers(1, 300),
    lb=st.floats(-8, -1),
    ub=st.floats(0.5, 5),
    m=st.sampled_from([1.0, 2.0]),
    decay=st.sampled_from([1.0, 0.5]),
    limit=st.sampled_from([None, 0, 1, 3]),
)
def test_tanh(init: float, low: float, T: int, lb: float, ub: float, m: float, decay: float, limit: int | None) -> None:
    s = S.tanh(init, T, low, lb=lb, ub=ub, t_mult=m, cycle_decay=decay, cycle_limit=limit)
    marks = [T * (m ** (i + 1) - 1) / (m - 1) if m != 1 else T * (i + 1) for i in range(4)]
    ts = [t for t in steps_around(*marks) if t == int(t)]  # whole steps: cycle starts are whole here
    close(s.at(ts), [ref_tanh(t, init, T, low, lb, ub, m, decay, limit) for t in ts], init)
    if limit is not None:
        assert s.horizon == (T * limit if m == 1 else T * (m**limit - 1) / (m - 1))


def ref_wsd(t, peak, W, St, D, init, end, stable, ts_, sp, decay, dp, dr):
    if t < W:
        return init + (peak - init) * (t / W)
    if t >= W + St + D:
        return end
    a = {"constant": None, "rsqrt": 0.5, "power": sp}[stable]
    sv = peak if a is None else max(peak * (1 + (t - W) / ts_) ** -a, end)
    if t < W + St:
        return sv
    f = (t - W - St) / D
    c = {
        "linear": 1 - f,
        "cosine": (1 + math.cos(math.pi * f)) / 2,
        "1-sqrt": 1 - math.sqrt(f),
        "exponential": (dr**f - dr) / (1 - dr),
        "power": 1 - f**dp,
    }[decay]
    return end + (sv - end) * c


@settings(max_examples=80, deadline=None)
@given(
    peak=st.floats(0.1, 2.0),
    W=st.integers(0, 200),
    St=st.integers(0, 400),
    D=st.integers(1, 200),
    end=st.floats(0.0, 0.2),
    stable=st.sampled_from(["constant", "rsqrt", "power"]),
    ts_=st.integers(1, 100),
    sp=st.floats(0.1, 2.0),
    decay=st.sampled_from(["linear", "cosine", "1-sqrt", "exponential", "power"]),
    dp=st.floats(0.2, 3.0),
    dr=st.floats(0.01, 0.9),
)
def test_wsd_stable_and_decay_shapes(peak, W, St, D, end, stable, ts_, sp, decay, dp, dr) -> None:
    s = S.wsd(
        peak, warmup=W, stable=St, decay=D, init_value=0.0, end_value=end, stable_shape=stable,
        stable_timescale=ts_, stable_power=sp, decay_shape=decay, decay_power=dp, decay_ratio=dr,
    )
    ts = steps_around(W, W + St, W + St + D)
    close(s.at(ts), [ref_wsd(t, peak, W, St, D, 0.0, end, stable, ts_, sp, decay, dp, dr) for t in ts], peak)
    assert s(W + St + D) == end


def test_wsd_decaying_stable_phase_is_held_at_end_value() -> None:
    # (1 + t / 10) ** -2 falls below end / peak = 0.1 at t ~ 21.6: from there the value is end.
    s = S.wsd(1.0, warmup=10, stable=100, decay=20, end_value=0.1, stable_shape="power", stable_power=2.0)
    assert s(20) == pytest.approx(0.25) and s(40) == 0.1 and s(115) == 0.1 and s(200) == 0.1
    # the decay multiplies the still-decaying stable value (timm's semantics), not the peak
    r = S.wsd(1.0, warmup=100, stable=300, decay=100, stable_shape="rsqrt")
    assert r(450) == pytest.approx((1 + 350 / 100) ** -0.5 * 0.5)
    # the timescale defaults to the warm-up
    assert S.wsd(1.0, warmup=100, stable=300, decay=100, stable_shape="rsqrt").stable_timescale == 100


def test_wsd_exponential_default_ratio_is_megatron() -> None:
    s = S.wsd(1.0, warmup=0, stable=0, decay=100, decay_shape="exponential")
    assert [s(t) for t in (0, 30, 50, 99)] == [2 * 0.5 ** (t / 100) - 1 for t in (0, 30, 50, 99)]
    assert S.wsd(1.0, stable=0, decay=10, decay_shape="exp") == S.wsd(1.0, stable=0, decay=10, decay_shape="exponential")


@settings(max_examples=40, deadline=None)
@given(
    T=st.integers(1, 2000),
    peak=st.floats(0.01, 2.0),
    ps=st.floats(0.0, 1.0),
    extra=st.floats(0.0, 1.0),
    div=st.floats(2.0, 100.0),
    fdiv=st.floats(2.0, 1e4),
)
def test_onecycle_recipes(T: int, peak: float, ps: float, extra: float, div: float, fdiv: float) -> None:
    pf = ps + (1 - ps) * extra
    b1, b2 = int(ps * T), int(pf * T)
    v0 = peak / div
    v1, v3 = v0 * div, v0 / fdiv
    lin = S.linear_onecycle(T, peak, ps, pf, div, fdiv)
    cos = S.cosine_onecycle(T, peak, ps, div, fdiv)

    def ref_lin(t: float) -> float:
        for a, b, va, vb in ((0, b1, v0, v1), (b1, b2, v1, v0), (b2, T, v0, v3)):
            if a <= t < b:
                return va + (vb - va) * (t - a) / (b - a)
        return v3

    def ref_cos(t: float) -> float:
        for a, b, va, vb in ((0, b1, v0, v1), (b1, T, v1, v1 / (div * fdiv))):
            if a <= t < b:
                return vb + (va - vb) * (1 + math.cos(math.pi * (t - a) / (b - a))) / 2
        return v1 / (div * fdiv)

    ts = steps_around(b1, b2, T)
    close(lin.at(ts), [ref_lin(t) for t in ts], peak)
    close(cos.at(ts), [ref_cos(t) for t in ts], peak)
    assert len(lin) == T and len(cos) == T


BAD = [
    (lambda: S.cosine(1, 10, exponent=0), ValueError, "exponent"),
    (lambda: S.cosine(1, 10, exponent="2"), TypeError, "exponent"),
    (lambda: S.polynomial(1, 0, 10, k_decay=0), ValueError, "k_decay"),
    (lambda: S.tanh(1, 10, lb=3, ub=3), ValueError, "lb must be < ub"),
    (lambda: S.tanh(1, 0), ValueError, "steps"),
    (lambda: S.tanh(1, 10, cycle_limit=-1), ValueError, "cycle_limit"),
    (lambda: S.wsd(1.0, stable=1, decay=1, stable_shape="sqrt"), ValueError, "stable_shape"),
    (lambda: S.wsd(1.0, stable=1, decay=1, stable_shape="rsqrt"), ValueError, "stable_timescale > 0"),
    (lambda: S.wsd(1.0, stable=1, decay=1, decay_power=0), ValueError, "decay_power"),
    (lambda: S.wsd(1.0, stable=1, decay=1, decay_ratio=1.0), ValueError, "decay_ratio"),
    (lambda: S.wsd(1.0, stable=1, decay=1, stable_power=-1), ValueError, "stable_power"),
    (lambda: S.linear_onecycle(0, 1.0), ValueError, "transition_steps"),
    (lambda: S.linear_onecycle(10.0, 1.0), TypeError, "transition_steps"),
    (lambda: S.linear_onecycle(10, 1.0, pct_start=0.5, pct_final=0.4), ValueError, "pct_final"),
    (lambda: S.cosine_onecycle(10, 1.0, pct_start=1.5), ValueError, "pct_start"),
    (lambda: S.cosine_onecycle(10, 1.0, div_factor=0), ValueError, "div_factor"),
]


@pytest.mark.parametrize("make,exc,match", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_invalid_parameters_raise_clearly(make, exc, match) -> None:
    with pytest.raises(exc, match=match):
        make()


NEW = [
    S.tanh(1.0, 50, 0.01, lb=-6.0, ub=4.0, t_mult=2.0, cycle_decay=0.5, cycle_limit=3),
    S.tanh(1.0, 50),
    S.polynomial(1.0, 0.01, 50, 2.0, k_decay=1.5),
    S.cosine(1.0, 50, 0.01, exponent=2.0),
    S.wsd(1.0, warmup=10, stable=50, decay=20, stable_shape="power", stable_power=0.7, decay_shape="power",
          decay_power=1.5),
    S.wsd(1.0, warmup=10, stable=50, decay=20, decay_shape="exp", decay_ratio=0.1, stable_shape="rsqrt",
          stable_timescale=7),
    S.linear_onecycle(100, 1.0),
    S.cosine_onecycle(100, 1.0, pct_start=0.0),
]


@pytest.mark.parametrize("s", NEW, ids=[repr(s)[:40] for s in NEW])
def test_round_trips_and_horizon(s: S.Schedule) -> None:
    import json
    import pickle

    back = S.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s and back.table(200).tolist() == s.table(200).tolist()
    assert eval(repr(s), vars(S)) == s
    assert pickle.loads(pickle.dumps(s)) == s
    h = s.horizon
    assert h is not None and len(set(s.at([h, h + 1, h + 1000]).tolist())) == 1
