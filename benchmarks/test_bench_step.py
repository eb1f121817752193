"""``scheduler.step()``: every drop-in class, torch against fastlr, at G = 1 ... 4096 param groups;
and ``ScheduledLR`` (``fastlr.get_scheduler("cosine")``) against torch's ``LambdaLR`` with
transformers' cosine lambda (its group holds ``torch`` for that LambdaLR).

Groups (pytest-benchmark ``group``):

* ``<Scheduler>-G<n>``: float lrs, distinct per group (layer-wise decay);
* ``<Scheduler>-G<n>-tensor``: 0-d float32 tensor lrs (fastlr's packed tensor path; classes it does
  not cover yet run torch's code, a ratio near 1);
* ``<Scheduler>-G<n>-equal``: every group the same float lr (fastlr stores one float object for
  consecutive equal values), at G = 512 and 4096.

Each group holds ``torch``, ``fastlr`` and ``floor`` (a bare Python loop ``g["lr"] = x`` over the
groups; for tensor lrs ``g["lr"].fill_(x)``), and for LambdaLR/MultiplicativeLR ``floor+callables``
(``g["lr"] = f(epoch)``: the floor plus the user's callables). The workloads are
``fastlr._bench``'s, shared with ``python -m fastlr bench``.

Run: ``python -m pytest benchmarks/test_bench_step.py`` (``-k "G4096 and not tensor"`` for a slice).
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("torch")

from fastlr import _bench  # noqa: E402

pytestmark = pytest.mark.benchmark(disable_gc=True)

EQUAL_GROUP_COUNTS = (512, 4096)


def _cases() -> list[Any]:
    cases = []
    for name in _bench.SCHEDULERS + _bench.SCHEDULED:
        for g in _bench.GROUP_COUNTS:
            kinds = ["float", "tensor"] + (["equal"] if g in EQUAL_GROUP_COUNTS else [])
            for kind in kinds:
                impls = ["torch", "fastlr", "floor"]
                if name in _bench.CALLABLE_SCHEDULERS and kind != "tensor":
                    impls.append("floor+callables")
                for impl in impls:
                    cases.append(pytest.param(name, g, kind, impl, id=f"{name}-G{g}-{kind}-{impl}"))
    return cases


def group_name(name: str, n_groups: int, lr_kind: str) -> str:
    return f"{name}-G{n_groups}" + ("" if lr_kind == "float" else f"-{lr_kind}")


@pytest.mark.parametrize(("name", "n_groups", "lr_kind", "impl"), _cases())
def test_step(benchmark: Any, name: str, n_groups: int, lr_kind: str, impl: str) -> None:
    benchmark.group = group_name(name, n_groups, lr_kind)
    benchmark.extra_info.update(kind="step", scheduler=name, groups=n_groups, lrs=lr_kind, impl=impl)
    if impl in ("torch", "fastlr"):
        sched, _, step = _bench.make_scheduler(name, impl, n_groups, lr_kind)
        if impl == "fastlr":
            benchmark.extra_info["fast_path"] = sched.uses_fast_path
        benchmark(step)
    elif impl == "floor":
        benchmark(_bench.make_floor(_bench.make_optimizer(n_groups, lr_kind)))
    else:
        sched, _, _ = _bench.make_scheduler(name, "torch", n_groups, lr_kind)
        benchmark(_bench.make_floor_callables(_bench.make_optimizer(n_groups, lr_kind), sched.lr_lambdas))
