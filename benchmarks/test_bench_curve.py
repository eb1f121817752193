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

Each row skips cleanly where its API (``fastlr.schedules``, ``table``, ``seek``, ``ScheduledLR``) is
absent from the installed fastlr.
"""

from __future__ import annotations

import warnings
from typing import Any

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
