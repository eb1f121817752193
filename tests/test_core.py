"""fastlr._core directly: the CPython-semantics arithmetic the engine uses, against Python itself.

This is the only test module that imports ``_core``; everything else goes through the public API.
"""

from __future__ import annotations

import math
import operator

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fastlr import _core

INT64 = st.integers(min_value=-(2**62), max_value=2**62)
SMALL_INT = st.integers(min_value=-(2**53), max_value=2**53)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
NUM = st.one_of(SMALL_INT, FLOATS, st.integers(-5, 5), st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, 0.5]))

OPS = {
    "pow": operator.pow,
    "truediv": operator.truediv,
    "mod": operator.mod,
    "floordiv": operator.floordiv,
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
}


def python_result(op, a, b):
    try:
        return ("value", OPS[op](a, b))
    except (ZeroDivisionError, OverflowError, ValueError) as e:
        return ("raise", type(e))


def engine_result(op, a, b):
    try:
        return ("value", _core._pymath(op, a, b))
    except (ZeroDivisionError, OverflowError, ValueError) as e:
        return ("raise", type(e))


def same_number(x, y) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return math.copysign(1, x) == math.copysign(1, y) and (x == y or (math.isnan(x) and math.isnan(y)))
    return type(x) is type(y) and x == y


@pytest.mark.parametrize("op", sorted(OPS))
@settings(max_examples=3000, deadline=None)
@given(a=NUM, b=NUM)
def test_pymath_matches_cpython(op, a, b):
    kind, value = engine_result(op, a, b)
    if kind == "value" and value == "out_of_range":
        # The engine declines (the caller runs Python instead); only ints beyond 2**53 may do that.
        assert any(isinstance(v, int) and abs(v) > 2**53 for v in (a, b)) or op in {"pow", "mul", "add", "sub"}
        return
    expected = python_result(op, a, b)
    if kind == "value" and value == "complex":
        # The engine defers; Python returns a complex (or raises computing it).
        assert expected[0] == "raise" or isinstance(expected[1], complex)
        return
    if op == "pow" and expected[0] == "value" and isinstance(expected[1], int):
        # int ** int is exact in Python; the engine yields it already rounded to the float that every
        # use in a scheduler (float * int) converts it to.
        expected = ("value", float(expected[1]))
    if expected[0] == "value" and isinstance(expected[1], int) and not isinstance(expected[1], bool):
        # Python's exact int result: the engine must agree where it did not decline.
        assert (kind, value) == expected
        return
    if expected[0] == "value" and op in {"pow", "truediv"}:
        expected = ("value", float(expected[1]))
    assert kind == expected[0], (a, b, kind, value, expected)
    if kind == "value" and all(isinstance(v, float) and math.isnan(v) for v in (a, b)):
        # Two NaN operands: IEEE 754 leaves open which one's sign and payload the result carries, and
        # CPython's binary decides by the operand order its compiler chose for the instruction (on
        # x86-64 builds, nan + -nan is -nan but -nan + nan is nan). Only NaN-ness is specified.
        assert isinstance(value, float) and math.isnan(value), (a, b, value, expected)
        return
    if kind == "raise":
        assert value is expected[1]
    else:
        assert same_number(value, expected[1]), (a, b, value, expected[1])


@settings(max_examples=2000, deadline=None)
@given(a=INT64, b=INT64)
def test_int_compare_exact(a, b):
    assert _core._pymath("cmp", a, b) == (a > b) - (a < b)


@settings(max_examples=2000, deadline=None)
@given(a=st.one_of(SMALL_INT, FLOATS), b=st.one_of(SMALL_INT, FLOATS))
def test_mixed_compare(a, b):
    r = _core._pymath("cmp", a, b)
    if isinstance(a, float) and math.isnan(a) or isinstance(b, float) and math.isnan(b):
        assert r == 2
    else:
        assert r == (a > b) - (a < b)


@settings(max_examples=2000, deadline=None)
@given(x=FLOATS)
def test_cos_matches_math(x):
    try:
        expected = math.cos(x)
    except ValueError:
        with pytest.raises(ValueError):
            _core._pymath("cos", x)
        return
    got = _core._pymath("cos", x)
    assert same_number(got, expected)


def test_pow_edges():
    # The special cases CPython's float_pow handles before calling libm.
    for a, b in [(0.0, -1.0), (0.0, -1), (-8.0, 1 / 3), (1e308, 2.0), (2.0, 1024), (-1.0, 1e300), (0.0, 0.0),
                 (float("nan"), 0.0), (1.0, float("nan")), (float("inf"), -3.0), (-0.0, 3.0), (3, 40), (3, 41),
                 (2, -3), (-2, 63), (2, 64)]:
        kind, value = engine_result("pow", a, b)
        if value in ("out_of_range",):
            continue
        expected = python_result("pow", a, b)
        if value == "complex":
            assert isinstance(expected[1], complex)
            continue
        if expected[0] == "value":
            assert same_number(value, float(expected[1])), (a, b, value, expected)
        else:
            assert kind == "raise" and value is expected[1], (a, b)


def test_engine_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown scheduler kind"):
        _core.Engine(12345)
    assert _core.Engine(0).kind == 0


# ------------------------------------------------------------------------------------------------
# Schedule programs (cpp/include/fastlr/program.hpp): validation of raw programs, layout, evaluation.

import struct  # noqa: E402
import threading  # noqa: E402

import numpy as np  # noqa: E402

CONST, LINEAR, COSINE, JOIN, PRODUCT, SCALE, PLATEAU, NOISE = 1, 2, 3, 16, 17, 18, 14, 15


def test_program_evaluates_a_join():
    p = _core.Program([(LINEAR, [0.0, 1.0, 10.0, 0.0], []), (COSINE, [1.0, 0.0, 90.0, 1.0, 0.5, 0.0, 1.0], []), (JOIN, [10.0], [0, 1])])
    assert len(p) == 3 and p(0) == 0.0 and p(5) == 0.5 and p(10) == 1.0 and p(100) == 0.0
    t = p.table(200)
    assert np.array_equal(t, p.at(np.arange(200.0))) and np.array_equal(t[:3], [p(0), p(1), p(2)])
    assert p.active(5) == [True, False, True] and p.active(50) == [False, True, True]
    assert _core.schedule_eval_many([p, p], 5.0) == [0.5, 0.5]


@pytest.mark.parametrize(
    "nodes,match",
    [
        ([], "at least one node"),
        ([(99, [], [])], "unknown"),
        ([(CONST, [1.0, 2.0], [])], "expects 1 parameters"),
        ([(CONST, [math.nan], [])], "finite"),
        ([(CONST, [math.inf], [])], "finite"),
        ([(LINEAR, [0.0, 1.0, -1.0, 0.0], [])], "steps must be >= 0"),
        ([(LINEAR, [0.0, 1.0, 1.0, 0.5], [])], "extrapolate must be 0 or 1"),
        ([(CONST, [1.0], []), (SCALE, [2.0], [1])], "precede"),
        ([(CONST, [1.0], []), (PRODUCT, [], [0, 0])], "more than one parent"),
        ([(CONST, [1.0], []), (CONST, [1.0], [])], "not reachable"),
        ([(CONST, [1.0], []), (CONST, [1.0], []), (JOIN, [1.0], [0])], "children"),
        ([(CONST, [1.0], []), (CONST, [1.0], []), (JOIN, [2.0, 1.0, 0.0], [0, 1])], "children"),
        ([(CONST, [1.0], []), (CONST, [1.0], []), (JOIN, [2.0], [0, 1]), (SCALE, [1.0], [2]), (JOIN, [-1.0], [3, 0])], "parent"),
        ([(COSINE, [1.0, 0.0, 10.0, 1.0, 0.5, 3.0, 1.0], [])], "mode"),
        ([(COSINE, [1.0, 0.0, 10.0, 1.0, 0.5, 0.0, 0.0], [])], "exponent"),
        ([(11, [1.0, 0.0, 10.0, 2.0, 1.0, 3.0, 1.0, 1.0, 2.0, 2.0], [])], "lb"),
        ([(11, [1.0, 0.0, 10.0, 2.0, 1.0, 3.0, 1.0, 2.0, 0.0, 0.0], [])], "shape"),
        ([(7, [2.0, 1.0], [])], "parameters"),
        ([(7, [1e300, 1.0], [])], "boundaries"),
        ([(PRODUCT, [], [])], "children"),
        ([(CONST, [1.0], [])] * 65, "at most 64"),
    ],
)
def test_program_validation(nodes, match):
    with pytest.raises(ValueError, match=match):
        _core.Program(nodes)


def test_program_rejects_wrong_types():
    with pytest.raises(TypeError):
        _core.Program([(CONST, [1.0], [-1])])
    with pytest.raises(TypeError):
        _core.Program([("constant", [1.0], [])])


def test_program_unbounded_slots_accept_inf_only_there():
    _core.Program([(11, [1.0, 0.0, 10.0, 2.0, 1.0, math.inf, 1.0, 0.0, 0.0, 0.0], [])])  # warm_restarts cycle_limit
    _core.Program([(CONST, [1.0], []), (NOISE, [0.1, 1.0, 3.0, 1.0, 0.0, math.inf], [0])])  # noise end
    with pytest.raises(ValueError, match="finite"):
        _core.Program([(11, [1.0, 0.0, math.inf, 2.0, 1.0, 3.0, 1.0, 0.0, 0.0, 0.0], [])])


def test_program_steps_and_plateau_writes():
    p = _core.Program([(PLATEAU, [0.5], []), (SCALE, [2.0], [0])])
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="steps"):
            p(bad)
    with pytest.raises(ValueError, match="steps"):
        p.at(np.array([0.0, -1.0]))
    with pytest.raises(ValueError):
        p.table(-1)
    p.set_state(0, 0.25)
    assert p(3) == 0.5
    with pytest.raises(IndexError):
        p.set_state(1, 0.1)
    with pytest.raises(ValueError):
        p.set_state(0, math.nan)
    j = _core.Program([(CONST, [1.0], []), (CONST, [2.0], []), (JOIN, [5.0], [0, 1])])
    j.set_state(2, 3.0)
    assert j(2) == 1.0 and j(3) == 2.0
    with pytest.raises(ValueError, match=">= 0"):
        j.set_state(2, -1.0)
    with pytest.raises(IndexError):
        _core.Program([(CONST, [1.0], []), (CONST, [2.0], []), (CONST, [3.0], []), (JOIN, [5.0, 6.0], [0, 1, 2])]).set_state(3, 1.0)


def test_program_buffers_layout():
    p = _core.Program([(LINEAR, [0.0, 1.0, 10.0, 0.0], []), (CONST, [2.0], []), (PRODUCT, [], [0, 1])])
    nodes, children, params = p.buffers()
    assert len(nodes) == 3 * 24
    recs = [struct.unpack("<6I", nodes[i : i + 24]) for i in range(0, len(nodes), 24)]
    # {op, first_param, n_params, first_child, n_children, reserved}
    assert recs == [(LINEAR, 0, 4, 0, 0, 0), (CONST, 4, 1, 0, 0, 0), (PRODUCT, 5, 0, 0, 2, 0)]
    assert struct.unpack("<2I", children) == (0, 1)
    assert struct.unpack("<5d", params) == (0.0, 1.0, 10.0, 0.0, 2.0)
    assert p.nodes == [(LINEAR, [0.0, 1.0, 10.0, 0.0], []), (CONST, [2.0], []), (PRODUCT, [], [0, 1])]


def test_program_table_releases_the_gil():
    p = _core.Program([(COSINE, [1.0, 0.0, 1e7, 1.0, 0.5, 0.0, 1.0], [])])
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(1)

    th = threading.Thread(target=ticker)
    th.start()
    try:
        p.table(3 * 10**6)
        n_during = len(ticks)
    finally:
        done.set()
        th.join()
    assert n_during > 100  # the other thread ran while C++ filled the table


# -- the block evaluator's two builds (baseline x86-64 and AVX2) -----------------------------------
# table()/at() run the cosine leaf in vector loops, built for baseline x86-64 and for AVX2 and chosen
# by a run-time CPU check. Both must give the bits of the scalar closed form (Program.__call__, which
# runs program.hpp's eval), at every step, including where cos_pi takes its special branches.

COSINE_CASES = [
    # [init, end, T, k_decay, cycles, mode, exponent]: the vector loop takes k_decay == exponent == 1,
    # mode 0 or 1 and T > 0; the others check that the dispatch leaves them on the scalar loop.
    [1.0, 0.0, 9999000.0, 1.0, 0.5, 0.0, 1.0],
    [0.3, 0.02, 777.0, 1.0, 2.25, 1.0, 1.0],
    [-1.0, 2.0, 3.5, 1.0, 0.5, 0.0, 1.0],
    [1.0, 0.1, 1e-300, 1.0, 0.5, 1.0, 1.0],  # t / T overflows to inf: cos_pi's `huge` lanes
    [1.0, 0.1, 1e300, 1.0, 7.5, 1.0, 1.0],
    [1.0, 0.1, 1000.0, 1.0, 0.0, 1.0, 1.0],  # cycles 0
    [1.0, 0.1, 1000.0, 1.0, 3e15, 1.0, 1.0],  # arguments beyond 2**53
    [1.0, 0.1, 0.0, 1.0, 0.5, 0.0, 1.0],  # T == 0
    [1.0, 0.1, 1000.0, 1.5, 0.5, 0.0, 2.0],
    [1.0, 0.1, 1000.0, 1.0, 2.5, 2.0, 1.0],
]


def _steps_for_isa_check(T):
    rng = np.random.default_rng(7)
    special = [0.0, 0.5, 1.0, T / 2, T, T * 2, T + 0.5, 2.0**52, 2.0**52 + 1, 2.0**53, 1e15 + 0.25, 5e-324]
    special = [x for x in special if 0.0 <= x <= 2.0**53]
    parts = [
        np.array(special),
        rng.integers(0, 2 * 10**7, 3001).astype(np.float64),
        rng.uniform(0.0, min(max(T, 1.0) * 3, 2.0**53), 3001),
        np.ldexp(rng.uniform(0.5, 1.0, 999), rng.integers(-60, 54, 999)),
    ]
    return np.concatenate(parts)  # an odd length: every vector loop ends in a scalar tail


@pytest.fixture
def each_isa():
    """Run a test body under each build this CPU can run: yields the list of builds to try."""
    if not hasattr(_core, "_table_isa"):
        pytest.skip("this build has no _table_isa hook")
    isas = ["baseline"] + (["avx2"] if _core._table_isa("auto") == "avx2" else [])
    try:
        yield isas
    finally:
        _core._table_isa("auto")


@pytest.mark.parametrize("params", COSINE_CASES, ids=lambda p: "cosine-" + "-".join(f"{x:g}" for x in p))
def test_vector_cosine_is_the_scalar_closed_form_on_each_isa(each_isa, params):
    p = _core.Program([(COSINE, params, [])])
    steps = _steps_for_isa_check(params[2])
    want = np.array([p(float(t)) for t in steps])
    want_table = np.array([p(float(t)) for t in range(5000, 5000 + 1013)])
    results = {}
    for isa in each_isa:
        assert _core._table_isa(isa) == isa
        got = p.at(steps, False, 1)
        assert got.tobytes() == want.tobytes(), (isa, np.flatnonzero(got.view(np.uint64) != want.view(np.uint64))[:5])
        assert p.at(steps, True, 1).tobytes() == want.astype(np.float32).tobytes(), isa
        assert p.table(1013, 5000.0, False, 1).tobytes() == want_table.tobytes(), isa
        assert p.table(1013, 5000.0, True, 2).tobytes() == want_table.astype(np.float32).tobytes(), isa
        results[isa] = got
    if len(results) == 2:
        assert results["baseline"].tobytes() == results["avx2"].tobytes()


def test_table_isa_hook(each_isa):
    assert _core._table_isa("baseline") == "baseline"
    assert _core._table_isa() == "baseline"
    with pytest.raises(ValueError, match="expected 'auto'"):
        _core._table_isa("sse9")
    auto = _core._table_isa("auto")
    assert auto == ("avx2" if "avx2" in each_isa else "baseline")
