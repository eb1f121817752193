"""fastlr's shapes stepped beside the peers that define them, installed ones, at run time: timm's
TanhLRScheduler, PolyLRScheduler (k_decay), WSDLRScheduler (stable and decay functions) and
CosineLRScheduler (cycle_limit); optax's cosine_decay_schedule (exponent) and one-cycle schedules;
fvcore's LinearParamScheduler past its end. Each test skips when its peer is absent (fails under
FASTLR_REQUIRE_PEERS=1, as in CI)."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest

from fastlr import schedules as S

import _peers


def _timm_lrs(make: Callable[[Any], Any], n: int, lr: float = 0.1) -> np.ndarray:
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(opt)
    out = []
    for t in range(n):
        sched.step(t)  # timm's epoch-based step(epoch): the lr of step t
        out.append(opt.param_groups[0]["lr"])
    return np.array(out)


def _ulps(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    return float(np.max(np.abs(a - b)) / (np.finfo(float).eps * scale)) if len(a) else 0.0


# ------------------------------------------------------------------------------------------------
# timm


@pytest.mark.parametrize(
    "t_mult,cycle_limit,cycle_decay,lb,ub",
    [(1.0, 1, 1.0, -7.0, 3.0), (1.0, 3, 0.5, -6.0, 4.0), (2.0, 3, 1.0, -7.0, 3.0), (1.0, None, 0.8, -3.0, 3.0)],
)
def test_tanh_is_timm_bitwise(t_mult: float, cycle_limit: int | None, cycle_decay: float, lb: float, ub: float) -> None:
    timm = _peers.timm_scheduler()
    limit = 10**9 if cycle_limit is None else cycle_limit
    want = _timm_lrs(
        lambda o: timm.TanhLRScheduler(
            o, t_initial=50, lb=lb, ub=ub, lr_min=1e-3, cycle_mul=t_mult, cycle_limit=limit, cycle_decay=cycle_decay
        ),
        400,
    )
    got = S.tanh(0.1, 50, 1e-3, lb=lb, ub=ub, t_mult=t_mult, cycle_limit=cycle_limit, cycle_decay=cycle_decay).table(400)
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("k_decay,power", [(1.0, 0.5), (2.0, 0.5), (1.5, 2.0), (0.7, 1.0), (3.0, 0.0)])
def test_polynomial_k_decay_is_timm_bitwise(k_decay: float, power: float) -> None:
    timm = _peers.timm_scheduler()
    want = _timm_lrs(lambda o: timm.PolyLRScheduler(o, t_initial=80, power=power, lr_min=1e-3, k_decay=k_decay), 120)
    got = S.polynomial(0.1, 1e-3, 80, power, k_decay=k_decay).table(120)
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("stable", ["constant", "rsqrt", "power"])
@pytest.mark.parametrize("decay", ["linear", "1-sqrt", "cosine", "power", "exp"])
def test_wsd_stable_and_decay_functions_are_timm(stable: str, decay: str) -> None:
    """Bitwise after the warm-up for every pair but the cosine decay (fastlr's cos(pi x) is its own,
    exactly rounded at the phase ends; within a few ulps); the warm-up itself is timm's line with a
    different operation order (init + t * slope): within an ulp or two."""
    timm = _peers.timm_scheduler(needs="WSDLRScheduler")
    W, T, D = 20, 200, 60
    want = _timm_lrs(
        lambda o: timm.WSDLRScheduler(
            o, t_initial=T, decay_t=D, lr_min=1e-3, stable_fn=stable, stable_power=0.7, decay_fn=decay, decay_power=1.5,
            decay_ratio=0.1, warmup_t=W, warmup_lr_init=1e-4,
        ),
        W + T + 40,
    )
    got = S.wsd(
        0.1, warmup=W, stable=T - D, decay=D, init_value=1e-4, end_value=1e-3, stable_shape=stable, stable_power=0.7,
        decay_shape=decay, decay_power=1.5, decay_ratio=0.1,
    ).table(W + T + 40)
    assert _ulps(got[:W], want[:W], 0.1) <= 2
    if decay == "cosine":
        assert _ulps(got[W:], want[W:], 0.1) <= 8
    else:
        assert got[W:].tolist() == want[W:].tolist()


@pytest.mark.parametrize("cycle_limit", [0, 1, 3])
def test_warm_restarts_cycle_limit_is_timm(cycle_limit: int) -> None:
    timm = _peers.timm_scheduler()
    want = _timm_lrs(lambda o: timm.CosineLRScheduler(o, t_initial=30, lr_min=1e-3, cycle_limit=cycle_limit, cycle_decay=0.7), 200)
    got = S.warm_restarts(0.1, 30, 1e-3, cycle_decay=0.7, cycle_limit=cycle_limit).table(200)
    assert _ulps(got, want, 0.1) <= 4  # timm's math.cos against fastlr's cos(pi x)
    assert (got == 1e-3).tolist() == (want == 1e-3).tolist()  # the same steps are at lr_min


# ------------------------------------------------------------------------------------------------
# optax (float64)


def _optax_values(sched: Any, n: int) -> np.ndarray:
    import jax
    import jax.numpy as jnp

    return np.asarray(jax.vmap(sched)(jnp.arange(n, dtype=jnp.float64)), dtype=np.float64)


@pytest.mark.parametrize("exponent", [1.0, 2.0, 0.5, 3.7])
@pytest.mark.parametrize("alpha", [0.0, 0.1])
def test_cosine_exponent_is_optax(exponent: float, alpha: float) -> None:
    optax = _peers.optax()
    want = _optax_values(optax.cosine_decay_schedule(0.7, 100, alpha, exponent), 130)
    got = S.cosine(0.7, 100, end_value=alpha * 0.7, exponent=exponent).table(130)
    # (1 - alpha) * c**e + alpha, times init: another operation order; an exponent < 1 magnifies optax's
    # own error where 1 + cos(pi x) cancels, near the end
    assert _ulps(got, want, 0.7) <= (8 if exponent >= 1 else 1e7)


@pytest.mark.parametrize(
    "T,pct_start,pct_final", [(100, 0.3, 0.85), (100, 0.0, 0.85), (97, 0.25, 0.6), (50, 0.0, 0.5), (1000, 0.1, 0.9)]
)
def test_linear_onecycle_is_optax(T: int, pct_start: float, pct_final: float) -> None:
    optax = _peers.optax()
    want = _optax_values(optax.linear_onecycle_schedule(T, 0.7, pct_start, pct_final, 25.0, 1e4), T + 30)
    got = S.linear_onecycle(T, 0.7, pct_start, pct_final).table(T + 30)
    assert _ulps(got, want, 0.7) <= 2
    assert got[0] == want[0] and got[-1] == want[-1]


@pytest.mark.parametrize("T,pct_start", [(100, 0.3), (100, 0.0), (10, 0.55), (1000, 0.25)])
def test_cosine_onecycle_is_optax(T: int, pct_start: float) -> None:
    optax = _peers.optax()
    want = _optax_values(optax.cosine_onecycle_schedule(T, 0.7, pct_start, 25.0, 1e4), T + 30)
    got = S.cosine_onecycle(T, 0.7, pct_start).table(T + 30)
    assert _ulps(got, want, 0.7) <= 8


# ------------------------------------------------------------------------------------------------
# fvcore


@pytest.mark.parametrize("start,end", [(0.0, 1.0), (0.5, 0.01), (1e-4, 3e-2)])
def test_linear_extrapolate_is_fvcore_past_its_end(start: float, end: float) -> None:
    ps = _peers.fvcore_param_scheduler()
    fv = ps.LinearParamScheduler(start, end)
    n = 64
    s = S.linear(start, end, n, extrapolate=True)
    ts = np.arange(0, 3 * n)
    want = np.array([fv(t / n) for t in ts])  # fvcore takes `where` = t / n, and goes on past 1
    got = s.at(ts)
    assert _ulps(got, want, max(abs(start), abs(end)) * 3) <= 4
    assert not math.isclose(got[-1], end)  # past its end, the line goes on
