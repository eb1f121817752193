"""Whole-curve evaluation: ``Schedule.table`` / ``Schedule.at`` over worker threads and into float32.

Threads and float32 change how the values are produced, never what they are: a table computed on any
number of threads equals the values of ``s(t)``, one step at a time, bit for bit, and a float32 table
is those values rounded once (``np.float32(value)``). Work is split into chunks of 64 blocks of 256 steps
(16384 steps), so the lengths below cross chunk and block boundaries at odd places. The schedules
change at every step over the tested range, so that a value computed at a wrong step shows.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np
import pytest

from fastlr import schedules as S

CHUNK = 64 * 256
T = 80_000  # the schedules' own length: they still change at the far end of the tables below
LONG = 5 * CHUNK + 37  # six chunks, the last one short; not a multiple of 256, 3, 4 or 7


def _plateau() -> S.Schedule:
    p = S.plateau(0.5, patience=1, mode="max", factor=0.5)
    for m in (1.0, 0.5, 0.4, 0.3, 0.2):  # two reductions: the value is 0.125 now
        p.observe(m)
    return p * S.cosine(1.0, T)


# One schedule per public constructor of fastlr.schedules (checked below), each varying over [0, T].
SCHEDULES = {
    "constant": S.constant(0.5),
    "linear": S.linear(0.0, 1.0, T),
    "cosine": S.cosine(1.0, T, 0.1, k_decay=2.0),
    "cosine-restarts": S.cosine(1.0, T, cycles=3, restarts=True),
    "polynomial": S.polynomial(1.0, 0.0, T, 2.0),
    "exponential": S.exponential(1.0, 0.9, 1000),
    "step": S.step(1.0, 7, 0.999),
    "multistep": S.multistep(1.0, list(range(100, T, 997)), 0.99),
    "piecewise_constant": S.piecewise_constant([10, 20_000, 50_000], [1.0, 0.5, 0.25, 0.125]) * S.linear(1.0, 0.5, T),
    "piecewise_linear": S.piecewise_linear([0, 10_000, T], [0.0, 1.0, 0.2]),
    "cyclic": S.cyclic(0.1, 1.0, 2000, 1000, "exp_range", 0.9999),
    "onecycle": S.onecycle(1.0, T, three_phase=True),
    "warm_restarts": S.warm_restarts(1.0, 1000, 0.01, t_mult=1.5, cycle_decay=0.8, cycle_limit=8),
    "inverse_sqrt": S.inverse_sqrt(1.0, 100),
    "wsd": S.wsd(1.0, warmup=1000, decay=30_000, total=T, decay_shape="1-sqrt"),
    "noise": S.noise(S.cosine(1.0, T), pct=0.2, seed=5, start=10, end=T),
    "plateau": _plateau(),
    "join": S.join([S.linear(0.0, 1.0, 1000), S.cosine(1.0, T), S.constant(0.01)], [1000, 60_000]),
    "warmup": S.warmup(S.cosine(1.0, T), 1000, kind="exponential", start_value=0.01),
    "product": S.linear(0.0, 1.0, T) * S.cosine(1.0, T),
    "scale": 3e-4 * S.cosine(1.0, T),
    "offset": S.offset(S.cosine(1.0, T), -10),
    "transformers": S.from_name("cosine_with_min_lr", 1000, T, min_lr_rate=0.1),
}


def _switch(f) -> S.Schedule:
    s = f(S.linear(0.0, 1.0, T), S.cosine(1.0, T), threshold=0.5, shift=True)
    s.observe(0.4, step=30_000)  # switched: cosine from step 30001 on, started there
    return s


# Newer shapes, recipes (optax's names) and metric-driven nodes, where this fastlr has them.
for _name, _make in (
    ("tanh", lambda f: f(1.0, T)),
    ("linear_onecycle", lambda f: f(T, 1.0)),
    ("cosine_onecycle", lambda f: f(T, 1.0)),
    ("switch", _switch),
):
    if hasattr(S, _name):
        SCHEDULES[_name] = _make(getattr(S, _name))
NOT_CONSTRUCTORS = {"Schedule", "Plateau", "Switch", "from_dict", "from_name", "names"}


def test_every_public_schedule_is_covered():
    # A new public shape or combinator must be added to SCHEDULES (by its function name, or as a node kind).
    built = {name.split("-")[0] for name in SCHEDULES}
    kinds: set[str] = set()

    def walk(s: S.Schedule) -> None:
        kinds.add(s.kind)
        for c in s._children():
            walk(c)

    for s in SCHEDULES.values():
        walk(s)
    missing = set(S.__all__) - NOT_CONSTRUCTORS - built - kinds
    assert not missing, f"add these to SCHEDULES: {sorted(missing)}"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    """Each schedule's values over [0, LONG), one ``__call__`` at a time (no table code involved)."""
    return {name: np.fromiter(map(s, range(LONG)), np.float64, LONG) for name, s in SCHEDULES.items()}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_one_thread_tables_are_the_pointwise_values(reference, name):
    assert np.array_equal(SCHEDULES[name].table(LONG, threads=1), reference[name])


@pytest.mark.parametrize("threads", [2, 3, 4, 7, None])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_threaded_tables_equal_the_pointwise_values(reference, name, threads):
    s = SCHEDULES[name]
    ref = reference[name]
    got = s.table(LONG, threads=threads)
    assert got.dtype == np.float64 and got.shape == (LONG,)
    assert np.array_equal(got, ref)
    got32 = s.table(LONG, threads=threads, dtype=np.float32)
    assert got32.dtype == np.float32 and got32.shape == (LONG,)
    assert np.array_equal(got32, ref.astype(np.float32))  # numpy's cast rounds to nearest, once


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_at_equals_the_table(reference, name):
    s = SCHEDULES[name]
    ref = reference[name]
    steps = np.arange(LONG)
    for threads in (1, 3, None):
        for arr in (steps, steps.astype(np.float64)):  # int64 is converted in C++, per block
            assert np.array_equal(s.at(arr, threads=threads), ref)
            assert np.array_equal(s.at(arr, threads=threads, dtype="float32"), ref.astype(np.float32))
    # Shuffled steps (no two neighbours in one block), and a view in reverse order.
    perm = np.random.default_rng(0).permutation(LONG)
    assert np.array_equal(s.at(perm, threads=4), ref[perm])
    assert np.array_equal(s.at(steps[::-1], threads=2, dtype=np.float32), ref[::-1].astype(np.float32))


@pytest.mark.parametrize("n", [0, 1, 2, 255, 256, 257, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 255])
@pytest.mark.parametrize("start", [0, 1, 12_345])
def test_lengths_and_starts(reference, n, start):
    for name in ("join", "noise", "warm_restarts", "onecycle"):
        s = SCHEDULES[name]
        ref = s.table(n, start, threads=1)
        if start + n <= LONG:
            assert np.array_equal(ref, reference[name][start : start + n])
        for threads in (2, 3):
            assert np.array_equal(s.table(n, start, threads=threads), ref)
            assert np.array_equal(s.table(n, start, threads=threads, dtype=np.float32), ref.astype(np.float32))
            assert np.array_equal(s.at(np.arange(start, start + n), threads=threads), ref)
    assert s.table(n, start, threads=2).shape == (n,)


def test_float32_is_one_rounding_of_the_float64_value():
    # Values just around float32 midpoints: the cast must round to nearest (ties to even), once.
    x = np.float64(np.float32(0.3))
    ulp = float(np.spacing(np.float32(0.3)))
    s = S.linear(x, x + 4 * ulp, 8)  # 8 steps of half a float32 ulp: every other value is a tie
    ref = s.table(9, threads=1)
    got = s.table(9, dtype=np.float32)
    assert np.array_equal(got, ref.astype(np.float32))
    assert len(set(got.tolist())) < len(set(ref.tolist()))  # some values did round
    tiny = S.constant(1e-45) * S.linear(1.0, 0.0, 10)  # float32 subnormals and underflow to 0
    assert np.array_equal(tiny.table(11, dtype=np.float32), tiny.table(11).astype(np.float32))
    big = S.constant(1e300)  # beyond float32: inf, as numpy's cast gives
    with np.errstate(over="ignore"):
        assert np.array_equal(big.table(3, dtype=np.float32), big.table(3).astype(np.float32))


def test_at_keeps_the_shape_and_reads_any_real_dtype():
    s = SCHEDULES["warmup"]
    grid = np.arange(12, dtype=np.int64).reshape(3, 4) * 5000
    ref = s.at(grid.ravel().astype(np.float64), threads=1).reshape(3, 4)
    for arr in (grid, grid.astype(np.float32), grid.astype(np.int32), grid.astype(np.uint64), grid.T.copy().T, grid.tolist()):
        for dtype in (np.float64, np.float32):
            got = s.at(arr, dtype=dtype)
            assert got.shape == (3, 4) and got.dtype == dtype
            assert np.array_equal(got, ref.astype(dtype))
    zero_d = s.at(np.int64(7000), dtype=np.float32)
    assert zero_d.shape == () and zero_d == np.float32(s(7000))
    assert s.at([], threads=3).shape == (0,)
    assert s.at(np.array([2.5]))[0] == s(2.5)  # fractional steps are steps too


def test_plateau_value_is_the_current_one_on_every_thread():
    p = S.plateau(1.0, patience=0, factor=0.5)
    s = p * S.cosine(1.0, T)
    before = s.table(LONG, threads=4)
    p.observe(1.0)
    p.observe(2.0)  # worse: the value halves
    after = s.table(LONG, threads=4)
    assert np.array_equal(after, s.table(LONG, threads=1))
    assert np.array_equal(after, before * 0.5)


def test_a_metric_observed_during_a_table_does_not_change_it_halfway():
    # Another Python thread observes metrics (and writes the program's state) while the table is being
    # computed with the GIL released: every value comes from one plateau value, the one at the call.
    p = S.plateau(1.0, patience=0, factor=0.999, threshold=0.0)
    s = p * S.cosine(1.0, 4 * 10**6)
    metric = [0.0]
    done = threading.Event()

    def observer() -> None:
        while not done.is_set():
            metric[0] += 1.0  # worse every time: the value drops at every observation
            s.observe(metric[0])
            s._sync()  # what any evaluation on this thread would do first

    w = threading.Thread(target=observer)
    w.start()
    try:
        got = s.table(4 * 10**6, threads=4)
    finally:
        done.set()
        w.join()
    assert p.value < 0.999  # the observer did run
    v = got[0]  # cosine(0) == 1.0
    assert np.array_equal(got, (S.constant(v) * S.cosine(1.0, 4 * 10**6)).table(4 * 10**6))


# ------------------------------------------------------------------------------------------------
# Errors: the same as without the new keywords, and clear ones for the keywords themselves.


def test_bad_steps_report_the_first_bad_index_on_any_thread_count():
    s = SCHEDULES["join"]
    steps = np.arange(LONG, dtype=np.float64)
    steps[4 * CHUNK + 5] = -1.0  # a later chunk, which a thread may well reach first
    steps[CHUNK + 3] = math.nan
    for threads in (1, 2, 4, None):
        for dtype in (np.float64, np.float32):
            with pytest.raises(ValueError, match=rf"steps\[{CHUNK + 3}\] is nan"):
                s.at(steps, threads=threads, dtype=dtype)
    ints = np.arange(LONG)
    ints[3 * CHUNK + 1] = -7
    with pytest.raises(ValueError, match=rf"\[0, 2\*\*53\]; steps\[{3 * CHUNK + 1}\] is -7.0"):
        s.at(ints, threads=3)
    with pytest.raises(ValueError, match=r"steps\[0\] is inf"):
        s.at([math.inf])
    with pytest.raises(ValueError, match=r"steps\[1\] is 9007199254740994.0"):
        s.at([0, 2**53 + 2])


def test_table_and_at_argument_errors():
    s = SCHEDULES["cosine"]
    with pytest.raises(ValueError, match="n must be >= 0"):
        s.table(-1)
    with pytest.raises(TypeError, match="n must be an int"):
        s.table(1.5)
    with pytest.raises(ValueError, match="start must be >= 0"):
        s.table(3, -1)
    with pytest.raises(ValueError, match="within 2\\*\\*53"):
        s.table(10, 2**53 - 5, dtype=np.float32, threads=2)
    with pytest.raises(TypeError, match="real numbers, got dtype bool"):
        s.at(np.array([True, False]), dtype=np.float32)
    with pytest.raises(TypeError, match="real numbers"):
        s.at(["a"])


@pytest.mark.parametrize("dtype", ["float16", np.int64, int, float, np.complex128, ">f4", "<U3"])
def test_dtypes_other_than_float64_and_float32_are_refused(dtype):
    s = SCHEDULES["cosine"]
    if np.dtype(dtype) == np.float64:  # float: numpy's float64 spelling, accepted
        assert s.table(3, dtype=dtype).dtype == np.float64
        return
    with pytest.raises(ValueError, match="dtype must be float64 or float32, got "):
        s.table(3, dtype=dtype)
    with pytest.raises(ValueError, match="dtype must be float64 or float32"):
        s.at([1, 2], dtype=dtype)


@pytest.mark.parametrize("dtype", ["no-such-type", object(), 3.5])
def test_non_dtypes_are_a_type_error(dtype):
    with pytest.raises(TypeError, match="dtype must be numpy.float64 or numpy.float32, got "):
        SCHEDULES["cosine"].table(3, dtype=dtype)


@pytest.mark.parametrize(
    ("threads", "exc", "match"),
    [(0, ValueError, "threads must be >= 1"), (-2, ValueError, ">= 1"), (1025, ValueError, "at most 1024"),
     (2.0, TypeError, "threads must be an int"), (True, TypeError, "must be an int"), ("4", TypeError, "must be an int")],
)
def test_bad_thread_counts(threads, exc, match):
    s = SCHEDULES["cosine"]
    with pytest.raises(exc, match=match):
        s.table(3, threads=threads)
    with pytest.raises(exc, match=match):
        s.at([3], threads=threads)


def test_fastlr_num_threads(monkeypatch, reference):
    s = SCHEDULES["noise"]
    monkeypatch.setenv("FASTLR_NUM_THREADS", "3")
    assert np.array_equal(s.table(LONG), reference["noise"])
    assert np.array_equal(s.table(LONG, threads=1), reference["noise"])  # the keyword wins
    for bad in ("0", "x", "", "2000", "3 "):
        monkeypatch.setenv("FASTLR_NUM_THREADS", bad)
        with pytest.raises(ValueError, match="FASTLR_NUM_THREADS must be an integer in"):
            s.table(LONG)
        assert np.array_equal(s.table(10, threads=2), reference["noise"][:10])  # not read with threads=


def _max_os_threads_during(fn) -> tuple[int, int]:
    """(threads of this process before fn, the most seen while it runs), from /proc: a watcher thread
    (counted in both) samples the count from before the call until after it."""
    seen: list[int] = []
    started, done = threading.Event(), threading.Event()

    def watch() -> None:
        seen.append(len(os.listdir("/proc/self/task")))
        started.set()
        while not done.is_set():
            seen.append(len(os.listdir("/proc/self/task")))

    w = threading.Thread(target=watch)
    w.start()
    started.wait()
    try:
        fn()
    finally:
        done.set()
        w.join()
    return seen[0], max(seen)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc (Linux)")
def test_threads_are_really_used():
    s = SCHEDULES["warmup"]
    base, most = _max_os_threads_during(lambda: s.table(4 * 10**6, threads=4))
    assert most == base + 3  # three workers beside the calling thread
    base, most = _max_os_threads_during(lambda: s.table(4 * 10**6, threads=1))
    assert most == base
    base, most = _max_os_threads_during(lambda: s.table(2**16 - 1))  # short: one thread by default
    assert most == base
