"""Whole-curve work: every learning rate of a long run, and moving a scheduler far ahead.

``WholeCurve-CosineAnnealingLR`` (one param group, ``T_max = 10^7``), reported for 10^7 steps:

* ``torch`` / ``fastlr``: step the scheduler and read the lr at every step. Measured over 10^5 steps
  (a fresh scheduler each round) and scaled by 100 (``extra_info["scale"]``): a step costs the same
  anywhere on this curve.
* ``seek``: ``seek(10**7)`` on a fresh fastlr scheduler: the exact state after 10^7 steps (torch's
  recurrence replayed in C++), without the per-step lrs.
* ``table``: ``fastlr.schedules.cosine(lr, 10**7).table(10**7)``: the closed form at all 10^7 steps in
  one C++ call (equal to torch's recursive values to rounding, not bit for bit; DESIGN.md §2).

``Advance-<Scheduler>-G<n>``: move a scheduler 1000 steps ahead (CosineAnnealingLR, whose ``seek``
replays the recurrence, and OneCycleLR, whose ``seek`` is O(1)):

* ``torch`` / ``fastlr``: 1000 calls of ``step()``, torch's only exact way;
* ``seek``: ``seek(last_epoch + 1000)`` on fastlr's class;
* ``ScheduledLR-seek``: ``fastlr.lr_scheduler.ScheduledLR`` with the closed-form schedule, O(1).

``WholeCurve-warmup-cosine-vs-optax``: the whole curve of a warm-up + cosine of 10^7 steps (1000
linear warm-up steps), as ``fastlr.schedules.warmup(cosine(1.0, 10**7 - 1000), 1000)`` and as optax's
``join_schedules([linear_schedule(0, 1, 1000), cosine_decay_schedule(1.0, 10**7 - 1000)], [1000])``
under ``jax.jit(jax.vmap(...))`` on the CPU (XLA's own threads), in float64 (``jax_enable_x64``, set
for its rows only and restored) and float32:

* ``fastlr-table-f64`` / ``-f32``: ``table(10**7)`` / ``table(10**7, dtype=np.float32)`` on the
  default threads (one per 2**15 steps, up to the CPU count); ``fastlr-table-f64-1thread`` /
  ``-f32-1thread``: ``threads=1``;
* ``fastlr-at-f64``: ``at(np.arange(10**7))``, the same int64 steps that optax gets;
* ``optax-f64`` / ``-f32``: the compiled function on ``jnp.arange(10**7)``, ``.block_until_ready()``,
  compiled and run once before timing; ``optax-f64-compile`` / ``-f32-compile``: a fresh ``jax.jit``
  traced, compiled and called once (what a first preview costs).

A summary after these rows gives steps/s and fastlr/optax speed ratios of the medians (also in each
optax row's ``extra_info``). As a sanity check (not a claim of equality), optax's values are compared
with fastlr's: float64 within a few ulps of the peak, float32 within a few float32 ulps.

Each row skips cleanly where its API (``fastlr.schedules``, ``table``, ``seek``, ``ScheduledLR``) is
absent from the installed fastlr, and the optax rows where jax or optax is not installed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastlr import _bench  # noqa: E402

pytestmark = pytest.mark.benchmark(disable_gc=True)

CURVE = 10**7  # the steps reported
MEASURED = 10**5  # the steps stepped per round
LR = 3e-4
AHEAD = 1000


def _fresh(impl: str, name: str = "CosineAnnealingLR", n_groups: int = 1) -> tuple[Any, Any]:
    o = _bench.make_optimizer(n_groups, "float")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = _bench.scheduler_module(impl)
        if name == "CosineAnnealingLR":
            s = m.CosineAnnealingLR(o, T_max=CURVE)
        else:
            s = m.OneCycleLR(o, max_lr=_bench.base_lrs(n_groups), total_steps=10**8)
        o.step()  # the optimizer has stepped: no order warning on the first scheduler step
    return s, o


@pytest.mark.parametrize("impl", ["torch", "fastlr"])
def test_whole_curve_stepping(benchmark: Any, impl: str) -> None:
    benchmark.group = "WholeCurve-CosineAnnealingLR"
    benchmark.extra_info.update(kind="curve", scheduler="CosineAnnealingLR", impl=impl, steps=MEASURED)
    benchmark.extra_info["scale"] = CURVE // MEASURED

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        s, o = _fresh(impl)
        return (s.step, o.param_groups[0]), {}

    def run(step: Any, group: dict[str, Any]) -> list[float]:
        out = []
        append = out.append
        for _ in range(MEASURED):
            step()
            append(group["lr"])
        return out

    out = benchmark.pedantic(run, setup=setup, rounds=5, iterations=1)
    assert len(out) == MEASURED


def test_whole_curve_seek(benchmark: Any) -> None:
    s, _ = _fresh("fastlr")
    if not hasattr(s, "seek"):
        pytest.skip("fastlr's CosineAnnealingLR has no seek() in this build")
    benchmark.group = "WholeCurve-CosineAnnealingLR"
    benchmark.extra_info.update(kind="curve", scheduler="CosineAnnealingLR", impl="seek", steps=CURVE, scale=1)

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (_fresh("fastlr")[0].seek, CURVE), {}

    benchmark.pedantic(lambda seek, n: seek(n), setup=setup, rounds=3, iterations=1)


def test_whole_curve_table(benchmark: Any) -> None:
    schedules = pytest.importorskip("fastlr.schedules")
    if not callable(getattr(schedules, "cosine", None)):
        pytest.skip("fastlr.schedules.cosine is not in this build")
    s = schedules.cosine(LR, CURVE)
    if not hasattr(s, "table"):
        pytest.skip("Schedule.table is not in this build")
    benchmark.group = "WholeCurve-CosineAnnealingLR"
    benchmark.extra_info.update(kind="curve", scheduler="CosineAnnealingLR", impl="table", steps=CURVE, scale=1)
    out = benchmark.pedantic(s.table, args=(CURVE,), rounds=5, iterations=1, warmup_rounds=1)
    assert len(out) == CURVE


def advance_callable(impl: str, name: str, n_groups: int) -> tuple[Any, Any]:
    """A callable that moves a fresh scheduler ``AHEAD`` steps further at each call, and the
    scheduler. ``impl``: "torch" / "fastlr" (step() in a loop), "seek", "ScheduledLR-seek"."""
    if impl in ("torch", "fastlr"):
        s, _ = _fresh(impl, name, n_groups)
        step = s.step

        def advance() -> None:
            for _ in range(AHEAD):
                step()

        return advance, s
    if impl == "seek":
        s, _ = _fresh("fastlr", name, n_groups)
        if not hasattr(s, "seek"):
            pytest.skip(f"fastlr's {name} has no seek() in this build")
    else:
        if name != "CosineAnnealingLR":
            raise ValueError("ScheduledLR-seek runs the cosine schedule: CosineAnnealingLR only")
        import fastlr.lr_scheduler as fls

        schedules = pytest.importorskip("fastlr.schedules")
        scheduled = getattr(fls, "ScheduledLR", None)
        if scheduled is None or not hasattr(scheduled, "seek"):
            pytest.skip("fastlr.lr_scheduler.ScheduledLR.seek is not in this build")
        s = scheduled(_bench.make_optimizer(n_groups, "float"), schedules.cosine(1.0, CURVE))
    seek = s.seek

    def advance_seek() -> None:
        seek(s.last_epoch + AHEAD)

    return advance_seek, s


ADVANCE_CASES = [
    pytest.param(name, impl, g, id=f"{name}-{impl}-G{g}")
    for name in ("CosineAnnealingLR", "OneCycleLR")
    for impl in ("torch", "fastlr", "seek", "ScheduledLR-seek")
    for g in (1, 64, 512)
    if not (impl == "ScheduledLR-seek" and name != "CosineAnnealingLR")  # the cosine schedule only
]


@pytest.mark.parametrize(("name", "impl", "n_groups"), ADVANCE_CASES)
def test_advance(benchmark: Any, name: str, impl: str, n_groups: int) -> None:
    benchmark.group = f"Advance-{name}-G{n_groups}"
    benchmark.extra_info.update(kind="advance", scheduler=name, groups=n_groups, impl=impl, steps=AHEAD)
    advance, s = advance_callable(impl, name, n_groups)
    # Fixed rounds: each call moves the schedule 1000 steps on; stay far inside OneCycleLR's horizon.
    rounds, iterations = (5, 1) if impl in ("torch", "fastlr") and n_groups > 1 else (20, 5)
    benchmark.pedantic(advance, rounds=rounds, iterations=iterations, warmup_rounds=1)
    assert s.last_epoch >= AHEAD


# ------------------------------------------------------------------------------------------------
# Whole curve of a warm-up + cosine: fastlr's table()/at() against optax under jax.jit(jax.vmap(...)).

WARMUP = 1000
PEER_GROUP = "WholeCurve-warmup-cosine-vs-optax"
_peer_medians: dict[str, float] = {}  # impl -> median seconds, for the ratios of this run
_peer_checks: dict[str, str] = {}  # dtype -> how close optax's values are to fastlr's


def _fastlr_warmup_cosine() -> Any:
    schedules = pytest.importorskip("fastlr.schedules")
    if not callable(getattr(schedules, "warmup", None)):
        pytest.skip("fastlr.schedules.warmup is not in this build")
    s = schedules.warmup(schedules.cosine(1.0, CURVE - WARMUP), WARMUP)
    try:
        s.table(1, dtype=np.float32, threads=1)
    except TypeError:
        pytest.skip("Schedule.table has no dtype/threads keywords in this build")
    return s


def _default_threads() -> int:
    """The threads fastlr's table() uses for 10^7 steps by default (as the C++ side picks them)."""
    env = os.environ.get("FASTLR_NUM_THREADS")
    return int(env) if env else min(os.cpu_count() or 1, 16)


def _record(benchmark: Any, impl: str) -> float | None:
    """Keep this row's median (seconds) for the ratios; None where timing is off (--benchmark-disable)."""
    stats = getattr(benchmark, "stats", None)
    med = getattr(getattr(stats, "stats", stats), "median", None)
    if med is None:
        return None
    _peer_medians[impl] = float(med)
    benchmark.extra_info["steps_per_s"] = CURVE / float(med)
    return float(med)


FASTLR_CASES = {
    "fastlr-table-f64": lambda s: (s.table, (CURVE,), {}),
    "fastlr-table-f32": lambda s: (s.table, (CURVE,), {"dtype": np.float32}),
    "fastlr-table-f64-1thread": lambda s: (s.table, (CURVE,), {"threads": 1}),
    "fastlr-table-f32-1thread": lambda s: (s.table, (CURVE,), {"dtype": np.float32, "threads": 1}),
    "fastlr-at-f64": lambda s: (s.at, (np.arange(CURVE),), {}),
}


@pytest.mark.parametrize("impl", list(FASTLR_CASES))
def test_whole_curve_fastlr(benchmark: Any, impl: str) -> None:
    s = _fastlr_warmup_cosine()
    fn, args, kwargs = FASTLR_CASES[impl](s)
    threads = kwargs.get("threads", _default_threads())
    benchmark.group = PEER_GROUP
    benchmark.extra_info.update(kind="peer", schedule="warmup+cosine", impl=impl, steps=CURVE, threads=threads)
    out = benchmark.pedantic(fn, args=args, kwargs=kwargs, rounds=7, iterations=1, warmup_rounds=1)
    assert out.shape == (CURVE,) and out.dtype == kwargs.get("dtype", np.float64)
    _record(benchmark, impl)


@pytest.fixture(params=[64, 32], ids=["f64", "f32"])
def jax_bits(request: Any) -> Iterator[int]:
    """jax with ``jax_enable_x64`` on (64) or off (32) for one test; the global flag is restored after."""
    jax = pytest.importorskip("jax")
    pytest.importorskip("optax")
    before = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", request.param == 64)
    try:
        yield request.param
    finally:
        jax.config.update("jax_enable_x64", before)


def _optax_warmup_cosine() -> Any:
    """A fresh jax.jit(jax.vmap(schedule)) of optax's warm-up + cosine (a new function: a new compile)."""
    import jax
    import optax

    sched = optax.join_schedules(
        [optax.linear_schedule(0.0, 1.0, WARMUP), optax.cosine_decay_schedule(1.0, CURVE - WARMUP)], [WARMUP]
    )
    return jax.jit(jax.vmap(sched))


def _check_against_fastlr(got: Any, bits: int) -> dict[str, Any]:
    """How close optax's values are to fastlr's (a sanity check of the benchmark, not an exactness claim)."""
    s = _fastlr_warmup_cosine()
    dtype = np.float64 if bits == 64 else np.float32
    ref = s.table(CURVE, dtype=dtype)
    got = np.asarray(got)
    assert got.dtype == dtype and got.shape == ref.shape
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    ulp_of_peak = float(np.spacing(dtype(1.0)))  # peak value 1.0
    info = {
        "max_abs_diff": float(diff.max()),
        "max_diff_in_ulps_of_peak": float(diff.max() / ulp_of_peak),
        "frac_equal": float(np.mean(diff == 0)),
    }
    # Float64: the two cosines differ by rounding only. Float32: optax computes in float32, fastlr
    # in float64 rounded once.
    assert info["max_diff_in_ulps_of_peak"] <= 4, info
    _peer_checks[f"f{bits}"] = (
        f"max |optax - fastlr| = {info['max_abs_diff']:.3g} ({info['max_diff_in_ulps_of_peak']:.2f} ulp of the peak), "
        f"{100 * info['frac_equal']:.1f}% equal"
    )
    return info


def test_whole_curve_optax(benchmark: Any, jax_bits: int) -> None:
    import jax.numpy as jnp

    impl = f"optax-f{jax_bits}"
    f = _optax_warmup_cosine()
    steps = jnp.arange(CURVE)  # int64 under x64, else int32
    first = f(steps).block_until_ready()  # compile outside the timing
    benchmark.group = PEER_GROUP
    benchmark.extra_info.update(kind="peer", schedule="warmup+cosine", impl=impl, steps=CURVE, dtype=str(first.dtype))
    benchmark.extra_info.update(_check_against_fastlr(first, jax_bits))
    out = benchmark.pedantic(lambda: f(steps).block_until_ready(), rounds=7, iterations=1, warmup_rounds=1)
    assert out.shape == (CURVE,)
    med = _record(benchmark, impl)
    fastlr_impl = f"fastlr-table-f{jax_bits}"
    if med is not None and fastlr_impl in _peer_medians:  # fastlr's speed over optax's, in this run
        benchmark.extra_info["fastlr/optax"] = med / _peer_medians[fastlr_impl]


def test_whole_curve_optax_compile(benchmark: Any, jax_bits: int) -> None:
    import jax.numpy as jnp

    impl = f"optax-f{jax_bits}-compile"
    steps = jnp.arange(CURVE)
    benchmark.group = PEER_GROUP
    benchmark.extra_info.update(kind="peer", schedule="warmup+cosine", impl=impl, steps=CURVE)

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (_optax_warmup_cosine(),), {}

    benchmark.pedantic(lambda f: f(steps).block_until_ready(), setup=setup, rounds=3, iterations=1)
    _record(benchmark, impl)


def test_whole_curve_vs_optax_summary(capsys: Any) -> None:
    """Steps/s of every row above and fastlr/optax speed ratios (medians of this run), printed."""
    if not _peer_medians:
        pytest.skip("no whole-curve rows ran")
    lines = [f"whole curve, warm-up + cosine, 10^7 steps (fastlr default threads: {_default_threads()})"]
    for impl, med in _peer_medians.items():
        rate = "" if impl.endswith("-compile") else f"{CURVE / med / 1e6:10.1f} M steps/s"
        lines.append(f"  {impl:<26}{med * 1e3:10.1f} ms {rate}")
    for bits in (64, 32):
        o, t = _peer_medians.get(f"optax-f{bits}"), _peer_medians.get(f"fastlr-table-f{bits}")
        if o and t:
            lines.append(f"  float{bits}: fastlr table() is {o / t:.2f}x optax's speed")
        if f"f{bits}" in _peer_checks:
            lines.append(f"  float{bits} values: {_peer_checks[f'f{bits}']}")
    with capsys.disabled():  # printed as the row runs (the conftest's summary knows only torch's peers)
        print("\n" + "\n".join(lines))
