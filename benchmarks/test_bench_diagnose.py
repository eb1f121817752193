"""The cost of :class:`fastlr.LossMonitor` per ``update()`` and of :func:`fastlr.diagnose` per curve.

``LossMonitor-update``: one round feeds a fresh monitor ``UPDATES`` losses (a noisy falling curve),
so the amortised cost of its scheduled re-diagnoses is inside the time; the reported per-update
figure is the round's time over ``UPDATES`` (the issue's budget: 2 µs an update). ``floor`` is the
same loop appending to a list. No torch needed.

``diagnose-<n>``: one call on a curve of n points (binned to at most 512 when longer).
"""

from __future__ import annotations

from typing import Any

import fastlr
import numpy as np
import pytest

pytestmark = pytest.mark.benchmark(disable_gc=True)

UPDATES = 100_000
_T = np.arange(UPDATES) / UPDATES
LOSSES = [float(v) for v in (0.1 + 2.2 * np.exp(-5 * _T)) * np.exp(np.random.default_rng(0).normal(0, 0.2, UPDATES))]


def _feed_monitor() -> Any:
    m = fastlr.LossMonitor(warn=False)
    update = m.update
    for v in LOSSES:
        update(v)
    return m


def _feed_list() -> Any:
    out: list[float] = []
    append = out.append
    for v in LOSSES:
        append(v)
    return out


@pytest.mark.parametrize("impl", ["fastlr", "floor"])
def test_monitor_update(benchmark: Any, impl: str) -> None:
    benchmark.group = "LossMonitor-update"
    benchmark.extra_info.update(kind="monitor", impl=impl, updates=UPDATES)
    result = benchmark.pedantic(_feed_monitor if impl == "fastlr" else _feed_list, rounds=7, iterations=1,
                                warmup_rounds=1)
    per_update_us = benchmark.stats.stats.median / UPDATES * 1e6
    benchmark.extra_info["median_us_per_update"] = per_update_us
    print(f"\n{impl}: median {per_update_us:.3f} µs per update over {UPDATES} updates")
    if impl == "fastlr":
        assert len(result) == UPDATES and result.verdict is not None
        assert per_update_us < 2.0, f"LossMonitor.update costs {per_update_us:.2f} µs amortised (budget: 2 µs)"


@pytest.mark.parametrize("n", [100, 10_000, 1_000_000])
def test_diagnose(benchmark: Any, n: int) -> None:
    t = np.arange(n) / n
    x = (0.1 + 2.2 * np.exp(-5 * t)) * np.exp(np.random.default_rng(1).normal(0, 0.2, n))
    benchmark.group = f"diagnose-{n}"
    benchmark.extra_info.update(kind="diagnose", impl="fastlr", points=n)
    d = benchmark(fastlr.diagnose, x)
    assert d.verdict in ("healthy", "lr_too_high", "lr_too_high_late", "lr_too_low", "diverged")
