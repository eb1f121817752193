"""Benchmarks for fastlr.schedules (pytest-benchmark; run with `python -m pytest benchmarks/`).

The headline: a warm-up + cosine schedule tabulated for 10**7 steps by `table()` (one core, C++,
GIL released), against stepping torch's equivalent (LinearLR + CosineAnnealingLR in SequentialLR)
on a shorter run, scaled per step. `test_summary` prints both rates and their ratio.
"""

from __future__ import annotations

import time
import warnings

import pytest

from fastlr import schedules as S

N = 10**7
W = 10**5
TORCH_STEPS = 10**5


def warmup_cosine(n: int = N, w: int = W) -> S.Schedule:
    return S.warmup(S.cosine(1.0, n - w, 0.0), w, start_value=0.01)


def torch_stepper(n: int):
    torch = pytest.importorskip("torch")
    tls = torch.optim.lr_scheduler
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    warm = tls.LinearLR(opt, start_factor=0.01, total_iters=W)
    cos = tls.CosineAnnealingLR(opt, T_max=N - W)
    seq = tls.SequentialLR(opt, [warm, cos], milestones=[W])

    def run() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(n):
                seq.step()

    return run


@pytest.mark.benchmark(group="warmup+cosine-table")
def test_fastlr_table_1e7(benchmark):
    s = warmup_cosine()
    out = benchmark.pedantic(s.table, args=(N,), rounds=5, iterations=1, warmup_rounds=1)
    assert out.shape == (N,)
    benchmark.extra_info["steps_per_s"] = N / benchmark.stats.stats.min


@pytest.mark.benchmark(group="warmup+cosine-table")
def test_torch_sequential_1e5_steps(benchmark):
    run = torch_stepper(TORCH_STEPS)
    benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info["steps_per_s"] = TORCH_STEPS / benchmark.stats.stats.min


@pytest.mark.benchmark(group="warmup+cosine-at")
def test_fastlr_at_1e6_random_steps(benchmark):
    import numpy as np

    s = warmup_cosine()
    steps = np.random.default_rng(0).integers(0, N, 10**6).astype(float)
    benchmark(s.at, steps)


@pytest.mark.parametrize("groups", [1, 64])
@pytest.mark.benchmark(group="ScheduledLR-step")
def test_scheduled_lr_step(benchmark, groups):
    torch = pytest.importorskip("torch")
    import fastlr

    ps = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    opt = torch.optim.SGD([{"params": [p], "lr": 0.1} for p in ps])
    sched = fastlr.ScheduledLR(opt, warmup_cosine())
    benchmark(sched.step)


def best_rate(fn, steps: int, repeat: int, clock=time.perf_counter) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return steps / best


def test_summary(capsys):
    """Rates of fastlr's table and torch's stepping, in the same run, and their ratio."""
    s = warmup_cosine()
    s.table(N)  # warm the allocator
    fast = best_rate(lambda: s.table(N), N, 5)
    fast_cpu = best_rate(lambda: s.table(N), N, 5, time.process_time)  # less sensitive to a busy machine
    slow = best_rate(torch_stepper(TORCH_STEPS), TORCH_STEPS, 3)
    with capsys.disabled():
        print(
            f"\nwarm-up + cosine: fastlr table({N:.0e}) {fast:.3e} steps/s wall, {fast_cpu:.3e} steps/s CPU; "
            f"torch SequentialLR {slow:.3e} steps/s ({TORCH_STEPS:.0e} steps); ratio {fast / slow:,.0f}x"
        )
    assert fast / slow >= 100
