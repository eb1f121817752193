"""The scheduler's share of a small training step: ``optimizer.step()`` plus ``scheduler.step()``.

Tiny parameters (16 elements, one per param group, gradients set once) make the optimizer step as
cheap as it gets, so this is the upper end of the scheduler's share. Groups are
``TrainStep-<Optimizer>-<Scheduler>-G<n>``, each with ``optimizer`` (the optimizer step alone, on an
optimizer with torch's scheduler attached), ``torch`` and ``fastlr`` (optimizer step plus that
scheduler's step). The summary prints the scheduler's share, ``(t - t_optimizer) / t``; on a noisy
machine the difference of two medians is rough, and ``benchmarks/report.py`` computes the share from
the scheduler step timed alone instead.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("torch")

from fastlr import _bench  # noqa: E402

pytestmark = pytest.mark.benchmark(disable_gc=True)


@pytest.mark.parametrize("impl", ["optimizer", "torch", "fastlr"])
@pytest.mark.parametrize("n_groups", [1, 64, 512], ids=lambda g: f"G{g}")
@pytest.mark.parametrize("sched_name", ["CosineAnnealingLR", "OneCycleLR"])
@pytest.mark.parametrize("opt_name", ["SGD", "AdamW"])
def test_train_step(benchmark: Any, opt_name: str, sched_name: str, n_groups: int, impl: str) -> None:
    benchmark.group = f"TrainStep-{opt_name}-{sched_name}-G{n_groups}"
    benchmark.extra_info.update(kind="train", scheduler=sched_name, optimizer=opt_name, groups=n_groups, impl=impl)
    train_step, _, keep = _bench.make_train_step(opt_name, sched_name, impl, n_groups)
    benchmark(train_step)
    assert keep
