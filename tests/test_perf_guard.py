"""CI performance guard: the structural facts behind fastlr's speed, checked without timing anything.

Timings on shared CI machines are noise, so nothing here measures time. Instead, for every drop-in
class on the float-lr path:

* **No Python work per param group.** The Python-level events of one ``step()`` (Python function calls
  and bytecode instructions, seen through ``sys.settrace``; C function calls made from Python, seen
  through ``sys.setprofile``) are counted at G = 1 and at G = 512 param groups, and must be equal.
  LambdaLR and MultiplicativeLR call the user's callable once per group, as torch does: their events
  inside the callable grow by exactly one call per group, and everything else stays equal.
* **No Python code at all** in a float-lr step but the user's callables (stricter; known exceptions
  are strict xfails with the reason).
* **Tensor lrs** (the engine's packed tensor path): no Python per group either, with the classes the
  tensor path does not cover yet as strict xfails.
* **The engine did the step.** The scheduler's engine counts the step as handled, none deferred to
  torch's Python code.
* **No allocation beyond what the step stores.** With the previous state held alive, the traced
  memory (``tracemalloc``) at the peak of one ``step()`` exceeds the memory after it (which includes
  every object the step stored: the new lr floats, ``_last_lr``, counters) by a small constant that
  does not grow with G; and over many steps the traced memory does not grow.

The detectors are proven here too: the self-tests put a per-group Python loop (and a per-step
temporary list) back into a class's ``step()`` and assert that the guard catches it.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest

pytest.importorskip("torch")

import fastlr.lr_scheduler as fls  # noqa: E402
from fastlr import _bench  # noqa: E402

G_SMALL, G_LARGE = 1, 512

#: Allowed transient allocation of one step, in bytes, beyond what the step stores (a few small
#: objects: a bound-method or argument tuple, an int). It must not depend on G.
TRANSIENT_SLACK = 512
#: Allowed growth of traced memory over GROWTH_STEPS steps. It must absorb CPython's freelists (an
#: object taken from a freelist is not traced, one allocated afresh is: up to 100 floats and 80 lists
#: of 3.11+ freelists, about 7 KiB, can change sides without any leak), and no leak can hide in it:
#: 5000 steps x even one leaked 16-byte object is 80000 bytes.
GROWTH_STEPS = 5000
GROWTH_SLACK = 16384
#: Consecutive steps whose largest transient is checked: enough to include every kind of step of the
#: benchmark configurations (ReduceLROnPlateau reduces every 11th step).
TRANSIENT_STEPS = 12


# ------------------------------------------------------------------------------------------------
# Detectors (the measurements themselves are in fastlr._bench: python_events, transient_bytes,
# growth_bytes)


def _user_codes(sched: Any) -> set[Any]:
    return {f.__code__ for f in getattr(sched, "lr_lambdas", ()) if hasattr(f, "__code__")}


def step_events(name: str, n_groups: int, lr_kind: str = "float") -> tuple[collections.Counter, dict[str, int]]:
    """Events of one steady-state ``step()`` of fastlr's ``name`` at ``n_groups`` groups, and the
    change of its engine's handled/deferred counters over that step."""
    sched, _, step = _bench.make_scheduler(name, "fastlr", n_groups, lr_kind)
    eng = getattr(sched, "_fastlr_engine", None)  # created by the first C step (absent if step is patched)
    # One traced step first, not counted: CPython 3.12 reports no opcode events for a function's first
    # call after tracing starts (the lambdas'), so the first count would be short at G=1.
    _bench.python_events(step, _user_codes(sched))
    eng = getattr(sched, "_fastlr_engine", None)
    h0, d0 = (eng.handled, eng.deferred) if eng is not None else (0, 0)
    ev = _bench.python_events(step, _user_codes(sched))
    if eng is None:
        return ev, {}
    return ev, {"handled": eng.handled - h0, "deferred": eng.deferred - d0}


def assert_no_per_group_python(name: str, lr_kind: str = "float") -> None:
    """The guard: equal Python-level events at G_SMALL and G_LARGE (callables: one call per group)."""
    small, _ = step_events(name, G_SMALL, lr_kind)
    large, _ = step_events(name, G_LARGE, lr_kind)
    lib_small = {k: v for k, v in small.items() if k[0] == "lib"}
    lib_large = {k: v for k, v in large.items() if k[0] == "lib"}
    assert lib_large == lib_small, (
        f"{name}.step() runs Python code per param group: events at G={G_SMALL}: {lib_small}, "
        f"at G={G_LARGE}: {lib_large}"
    )
    if name in _bench.CALLABLE_SCHEDULERS:
        assert small["user", "call"] == G_SMALL and large["user", "call"] == G_LARGE, (
            f"{name}: the callables must run once per group (got {small['user', 'call']} calls at "
            f"G={G_SMALL}, {large['user', 'call']} at G={G_LARGE})"
        )
        per_call = small["user", "opcode"] // G_SMALL
        assert large["user", "opcode"] == per_call * G_LARGE
    else:
        assert not any(k[0] == "user" for k in large), large


def assert_no_transient_allocation(name: str) -> None:
    """The guard: a step's temporary allocation is small and the same at G_SMALL and G_LARGE."""
    got = {}
    for g in (G_SMALL, G_LARGE):
        sched, _, step = _bench.make_scheduler(name, "fastlr", g, "float")
        got[g] = max(_bench.transient_bytes(sched, step) for _ in range(TRANSIENT_STEPS))
    assert got[G_LARGE] <= TRANSIENT_SLACK and got[G_SMALL] <= TRANSIENT_SLACK, (
        f"{name}.step() allocates temporaries beyond the objects it stores: {got[G_SMALL]} bytes at "
        f"G={G_SMALL}, {got[G_LARGE]} bytes at G={G_LARGE}"
    )


# ------------------------------------------------------------------------------------------------
# The guard


@pytest.mark.parametrize("name", _bench.SCHEDULERS)
def test_no_python_work_per_group(name: str) -> None:
    assert_no_per_group_python(name)


# Known: Python code that runs in every float-lr step (not per group), found by this guard.
_PYTHON_IN_STEP: dict[str, str] = {}  # known violations (strict xfails); none at present


def _every_class(known: dict[str, str]) -> list[Any]:
    """The benchmarked classes as test parameters, those in `known` (name: reason) as strict xfails:
    fixing one turns its XPASS into a failure that asks for the entry to go."""
    return [
        pytest.param(n, marks=pytest.mark.xfail(reason=known[n], strict=True, raises=AssertionError)) if n in known else n
        for n in _bench.SCHEDULERS
    ]


def test_every_drop_in_class_is_benchmarked_and_guarded() -> None:
    """The guard (and the benchmarks) run over `_bench.SCHEDULERS`, a list kept apart from
    `fastlr.lr_scheduler.__all__` so that `_bench` imports without torch: the two must agree."""
    drop_ins = [n for n in fls.__all__ if n not in ("EPOCH_DEPRECATION_WARNING", "LRScheduler", "ScheduledLR")]
    assert list(_bench.SCHEDULERS) == drop_ins


@pytest.mark.parametrize("name", _every_class(_PYTHON_IN_STEP))
def test_no_python_code_in_step(name: str) -> None:
    """Stricter than per group: a float-lr step runs no Python code at all but the user's callables."""
    ev, _ = step_events(name, G_SMALL)
    python = {k: v for k, v in ev.items() if k[0] == "lib" and k[1] in ("call", "opcode")}
    assert not python, f"{name}.step() runs Python code: {python}"


# Tensor lrs (the engine's packed tensor path): no Python per group either. Known exceptions, whose
# tensor-lr steps still run torch's Python code (or torch's helpers) per group:
_TENSOR_PER_GROUP: dict[str, str] = {}  # no known violations (composites built `_last_lr` per group before)


@pytest.mark.parametrize("name", _every_class(_TENSOR_PER_GROUP))
def test_no_python_work_per_group_tensor_lrs(name: str) -> None:
    assert_no_per_group_python(name, "tensor")


@pytest.mark.parametrize("name", _bench.SCHEDULERS)
def test_step_is_done_by_the_engine(name: str) -> None:
    for g in (G_SMALL, G_LARGE):
        _, counters = step_events(name, g)
        assert counters == {"handled": 1, "deferred": 0}, (name, g, counters)


# No known violations: ReduceLROnPlateau's reducing step used to build a temporary list of G objects
# (found by this guard); it now keeps them in the engine's scratch array.
@pytest.mark.parametrize("name", _bench.SCHEDULERS)
def test_no_allocation_beyond_stored_objects(name: str) -> None:
    assert_no_transient_allocation(name)


@pytest.mark.parametrize("name", _bench.SCHEDULERS)
def test_no_memory_growth(name: str) -> None:
    _, _, step = _bench.make_scheduler(name, "fastlr", 64, "float")
    grew = _bench.growth_bytes(step, GROWTH_STEPS)
    assert grew <= GROWTH_SLACK, f"{name}: traced memory grew by {grew} bytes over {GROWTH_STEPS} steps"


# ------------------------------------------------------------------------------------------------
# The guard catches a per-group Python loop put back into step()


def _python_loop_step(self: Any) -> None:
    """ExponentialLR's step as a plain per-group Python loop: no function call per group at all, only
    bytecode, the hardest case for a detector that would count calls alone."""
    self.last_epoch += 1
    gamma = self.gamma
    groups = self.optimizer.param_groups
    for g in groups:
        g["lr"] = g["lr"] * gamma
    self._last_lr = [g["lr"] for g in groups]


def _calls_per_group_step(self: Any) -> None:
    """LambdaLR's step with the callables, plus one extra Python-level call per group."""
    self.last_epoch += 1
    groups = self.optimizer.param_groups
    for g, base, f in zip(groups, self.base_lrs, self.lr_lambdas):
        g["lr"] = float(base * f(self.last_epoch))
    self._last_lr = [g["lr"] for g in groups]


def _temporary_list_step(self: Any) -> None:
    """ExponentialLR's step through C (the real engine step), plus a temporary per-group list."""
    tmp = [0.0] * len(self.optimizer.param_groups)  # noqa: F841 - the temporary is the point
    _ORIGINAL_STEP["ExponentialLR"](self)


_ORIGINAL_STEP: dict[str, Any] = {}


def test_guard_catches_a_python_loop_over_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    assert_no_per_group_python("ExponentialLR")  # passes as shipped
    monkeypatch.setattr(fls.ExponentialLR, "step", _python_loop_step)
    with pytest.raises(AssertionError, match="runs Python code per param group"):
        assert_no_per_group_python("ExponentialLR")
    small, _ = step_events("ExponentialLR", G_SMALL)
    large, _ = step_events("ExponentialLR", G_LARGE)
    # No Python call per group in that loop: the bytecode count is what catches it.
    assert large["lib", "call"] == small["lib", "call"]
    assert large["lib", "opcode"] > small["lib", "opcode"] + G_LARGE


def test_guard_catches_extra_calls_per_group_beside_the_callables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert_no_per_group_python("LambdaLR")
    monkeypatch.setattr(fls.LambdaLR, "step", _calls_per_group_step)
    with pytest.raises(AssertionError, match="runs Python code per param group"):
        assert_no_per_group_python("LambdaLR")


def test_guard_catches_a_temporary_per_group_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    assert_no_transient_allocation("ExponentialLR")
    _ORIGINAL_STEP["ExponentialLR"] = fls.ExponentialLR.step
    monkeypatch.setattr(fls.ExponentialLR, "step", _temporary_list_step)
    with pytest.raises(AssertionError, match="allocates temporaries"):
        assert_no_transient_allocation("ExponentialLR")


def test_guard_catches_torch_itself() -> None:
    """torch's own schedulers fail the event guard: the detector is not blind to real Python steps."""
    for name in ("StepLR", "CosineAnnealingLR", "OneCycleLR", "ReduceLROnPlateau"):
        counts = {}
        for g in (G_SMALL, G_LARGE):
            _, _, step = _bench.make_scheduler(name, "torch", g, "float")
            ev = _bench.python_events(step)
            counts[g] = ev["lib", "opcode"] + ev["lib", "call"] + ev["lib", "c_call"]
        assert counts[G_LARGE] > counts[G_SMALL] + G_LARGE, (name, counts)
