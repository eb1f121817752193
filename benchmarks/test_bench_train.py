"""The scheduler's share of a small training step: ``optimizer.step()`` plus ``scheduler.step()``.

Tiny parameters (16 elements, one per param group, gradients set once) make the optimizer step as
cheap as it gets, so this is the upper end of the scheduler's share. Groups are
``TrainStep-<Optimizer>-<Scheduler>-G<n>``, each with ``optimizer`` (the optimizer step alone, on an
optimizer with torch's scheduler attached), ``torch`` and ``fastlr`` (optimizer step plus that
scheduler's step). The summary prints the scheduler's share, ``(t - t_optimizer) / t``.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from fastlr import _bench  # noqa: E402

pytestmark = pytest.mark.benchmark(disable_gc=True)

NUMEL = 16


def train_step(opt_name: str, sched_name: str, impl: str, n_groups: int) -> Any:
    o = _bench.make_optimizer(n_groups, "float", opt_name, numel=NUMEL)
    for g in o.param_groups:
        for p in g["params"]:
            p.grad = torch.full_like(p, 1e-3)
    sched, _, sched_step = (None, None, None)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = _bench.scheduler_module("torch" if impl == "optimizer" else impl)
        sched = _bench._build(sched_name, m, o, _bench.base_lrs(n_groups))
        sched_step = _bench.step_callable(sched_name, sched)
        for _ in range(_bench.WARMUP_STEPS):
            o.step()
            sched_step()
    opt_step = o.step
    if impl == "optimizer":

        def fn() -> None:
            opt_step()

    else:

        def fn() -> None:
            opt_step()
            sched_step()

    fn.keep = (o, sched)  # type: ignore[attr-defined]
    return fn


@pytest.mark.parametrize("impl", ["optimizer", "torch", "fastlr"])
@pytest.mark.parametrize("n_groups", [1, 64, 512], ids=lambda g: f"G{g}")
@pytest.mark.parametrize("sched_name", ["CosineAnnealingLR", "OneCycleLR"])
@pytest.mark.parametrize("opt_name", ["SGD", "AdamW"])
def test_train_step(benchmark: Any, opt_name: str, sched_name: str, n_groups: int, impl: str) -> None:
    benchmark.group = f"TrainStep-{opt_name}-{sched_name}-G{n_groups}"
    benchmark.extra_info.update(kind="train", scheduler=sched_name, optimizer=opt_name, groups=n_groups, impl=impl)
    benchmark(train_step(opt_name, sched_name, impl, n_groups))
