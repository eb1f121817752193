"""Whole-curve work: every learning rate of a long run, and jumping to a step.

``WholeCurve-CosineAnnealingLR`` (one param group, ``T_max = 10^7``), reported for 10^7 steps:

* ``torch`` / ``fastlr``: step the drop-in scheduler and read the lr at every step. Measured over
  10^5 steps (a fresh scheduler each round) and scaled by 100 (``extra_info["scale"]``): a step
  costs the same anywhere on this curve.
* ``table``: ``fastlr.schedules.cosine(lr, 10^7).table(10^7)``, the closed form for all 10^7 steps in
  one C++ call. Skipped while ``fastlr.schedules`` (or ``table``) is absent.

``Seek-CosineAnnealingLR-G<n>``: put a scheduler at an arbitrary step, in O(1):

* ``torch`` / ``fastlr``: ``step(epoch)`` (torch's deprecated closed-form jump; it warns each call);
* ``seek``: ``seek(step)`` on fastlr's drop-in class, skipped while it has none;
* ``ScheduledLR-seek``: ``fastlr.ScheduledLR(...).seek(step)``, skipped while it is absent.

The closed form is not the recursive form bit for bit (see DESIGN.md §2), so these rows measure cost,
not parity.
"""

from __future__ import annotations

import itertools
import random
import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from fastlr import _bench  # noqa: E402

pytestmark = pytest.mark.benchmark(disable_gc=True)

CURVE = 10**7  # the steps reported
MEASURED = 10**5  # the steps stepped per round
LR = 3e-4


def _stepper(impl: str) -> Any:
    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        o = _bench.make_optimizer(1, "float")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = _bench.scheduler_module(impl).CosineAnnealingLR(o, T_max=CURVE)
            o.step()  # the optimizer has stepped: no order warning on the first scheduler step
        return (s, o.param_groups[0]), {}

    def run(s: Any, group: dict[str, Any]) -> list[float]:
        step = s.step
        out = []
        append = out.append
        for _ in range(MEASURED):
            step()
            append(group["lr"])
        return out

    return setup, run


@pytest.mark.parametrize("impl", ["torch", "fastlr"])
def test_whole_curve_stepping(benchmark: Any, impl: str) -> None:
    benchmark.group = "WholeCurve-CosineAnnealingLR"
    benchmark.extra_info.update(kind="curve", scheduler="CosineAnnealingLR", impl=impl, steps=MEASURED, scale=CURVE // MEASURED)
    setup, run = _stepper(impl)
    out = benchmark.pedantic(run, setup=setup, rounds=5, iterations=1)
    assert len(out) == MEASURED


def test_whole_curve_table(benchmark: Any) -> None:
    schedules = pytest.importorskip("fastlr.schedules")
    if not hasattr(getattr(schedules, "cosine", None), "__call__"):
        pytest.skip("fastlr.schedules.cosine is not available yet")
    s = schedules.cosine(LR, CURVE)
    if not hasattr(s, "table"):
        pytest.skip("Schedule.table is not available yet")
    benchmark.group = "WholeCurve-CosineAnnealingLR"
    benchmark.extra_info.update(kind="curve", scheduler="CosineAnnealingLR", impl="table", steps=CURVE, scale=1)
    out = benchmark.pedantic(s.table, args=(CURVE,), rounds=5, iterations=1, warmup_rounds=1)
    assert len(out) == CURVE


SEEK_GROUPS = (1, 64, 4096)


def _targets() -> Any:
    rng = random.Random(0)
    steps = [rng.randrange(1, CURVE) for _ in range(4096)]
    return itertools.cycle(steps).__next__


def _cosine(impl: str, n_groups: int) -> Any:
    o = _bench.make_optimizer(n_groups, "float")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = _bench.scheduler_module(impl).CosineAnnealingLR(o, T_max=CURVE)
        o.step()
        s.step()
    return s


@pytest.mark.parametrize("n_groups", SEEK_GROUPS, ids=lambda g: f"G{g}")
@pytest.mark.parametrize("impl", ["torch", "fastlr", "seek", "ScheduledLR-seek"])
def test_jump_to_step(benchmark: Any, impl: str, n_groups: int) -> None:
    benchmark.group = f"Seek-CosineAnnealingLR-G{n_groups}"
    benchmark.extra_info.update(kind="seek", scheduler="CosineAnnealingLR", groups=n_groups, impl=impl)
    nxt = _targets()
    if impl in ("torch", "fastlr"):
        s = _cosine(impl, n_groups)
        step = s.step

        def jump() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                step(nxt())

    elif impl == "seek":
        s = _cosine("fastlr", n_groups)
        if not hasattr(s, "seek"):
            pytest.skip("fastlr's CosineAnnealingLR has no seek() yet")
        seek = s.seek

        def jump() -> None:
            seek(nxt())

    else:
        import fastlr

        scheduled = getattr(fastlr, "ScheduledLR", None)
        schedules = pytest.importorskip("fastlr.schedules")
        if scheduled is None or not hasattr(scheduled, "seek"):
            pytest.skip("fastlr.ScheduledLR with seek() is not available yet")
        o = _bench.make_optimizer(n_groups, "float")
        s = scheduled(o, schedules.cosine(1.0, CURVE))
        seek = s.seek

        def jump() -> None:
            seek(nxt())

    benchmark(jump)
