"""The lr range test: :func:`fastlr.find_lr` against torch-lr-finder, and find_lr's own overhead.

``FindLR-<Optimizer>-MLP``: a whole range test on a small MLP (10 -> 64 -> 64 -> 1, batches of 64
from a ``DataLoader``, 100 steps, lr 1e-5 .. 0.1 so that neither stops early), with its copy and
restore of the model and optimizer:

* ``torch`` (extra_info ``reference="torch-lr-finder"``): ``LRFinder(...)`` (it caches the model's
  and optimizer's state dicts), ``range_test(...)`` and ``reset()``;
* ``fastlr``: ``fastlr.find_lr(...)`` with ``restore=True``.

The training steps dominate both; the ratio ``torch/fastlr`` (in the ``--benchmark-json`` ratios)
shows what each adds around them.

``FindLR-overhead-G<n>-<restore>``: 1000 steps of a no-op ``train_step`` (``lambda batch: 0.0``) on
an optimizer with ``n`` param groups of one small tensor each, so the time is find_lr's own per step:
setting every group's lr, cycling the data, smoothing, the stop checks, and (``restore``) the copy
and restore. ``floor`` is the bare loop: set the lrs from a precomputed table, call the step.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import fastlr  # noqa: E402

pytestmark = pytest.mark.benchmark(disable_gc=True)

STEPS = 100
START, END = 1e-5, 0.1
OVERHEAD_STEPS = 1000


def _mlp_setup(opt_name: str) -> tuple[Any, Any, Any]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 1))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1024, 10, generator=gen)
    y = x.sum(1, keepdim=True).tanh()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)
    if opt_name == "SGD":
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return model, opt, loader


def _torch_lr_finder(tlf: Any, model: Any, opt: Any, crit: Any, loader: Any) -> int:
    """torch-lr-finder's range test and reset, as the rows time it; returns the steps it took."""
    finder = tlf.LRFinder(model, opt, crit, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        finder.range_test(loader, start_lr=START, end_lr=END, num_iter=STEPS, step_mode="exp", smooth_f=0.05,
                          diverge_th=5)
    finder.reset()
    return len(finder.history["lr"])


def _fastlr_find_lr(model: Any, opt: Any, crit: Any, loader: Any) -> int:
    """fastlr.find_lr with the same lrs, smoothing and stop rule; returns the steps it took."""
    res = fastlr.find_lr(opt, loader, model=model, loss_fn=crit, start_lr=START, end_lr=END, num_steps=STEPS,
                         smooth=0.05, diverge=5.0, progress=False)
    return len(res.lrs)


@pytest.mark.parametrize("impl", ["torch", "fastlr"])
@pytest.mark.parametrize("opt_name", ["SGD", "AdamW"])
def test_range_test(benchmark: Any, opt_name: str, impl: str) -> None:
    model, opt, loader = _mlp_setup(opt_name)
    crit = torch.nn.MSELoss()
    benchmark.group = f"FindLR-{opt_name}-MLP"
    benchmark.extra_info.update(kind="find_lr", impl=impl, steps=STEPS, optimizer=opt_name,
                                reference="torch-lr-finder" if impl == "torch" else "fastlr.find_lr")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    if impl == "torch":
        tlf = pytest.importorskip("torch_lr_finder")

        def run() -> int:
            return _torch_lr_finder(tlf, model, opt, crit, loader)
    else:

        def run() -> int:
            return _fastlr_find_lr(model, opt, crit, loader)

    steps = benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=1)
    assert steps == STEPS  # a full test each time (no early stop), so both do the same work
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def _groups_optimizer(n_groups: int) -> Any:
    params = [torch.nn.Parameter(torch.zeros(16)) for _ in range(n_groups)]
    return torch.optim.SGD([{"params": [p], "lr": 1e-3 * (1 + g % 3)} for g, p in enumerate(params)], lr=1e-3)


@pytest.mark.parametrize("impl", ["floor", "fastlr"])
@pytest.mark.parametrize("restore", [False, True], ids=["no-restore", "restore"])
@pytest.mark.parametrize("n_groups", [1, 64], ids=lambda g: f"G{g}")
def test_overhead_per_step(benchmark: Any, n_groups: int, restore: bool, impl: str) -> None:
    opt = _groups_optimizer(n_groups)
    benchmark.group = f"FindLR-overhead-G{n_groups}-{'restore' if restore else 'no-restore'}"
    benchmark.extra_info.update(kind="find_lr_overhead", impl=impl, groups=n_groups, steps=OVERHEAD_STEPS,
                                restore=restore)
    data = [0]
    step = lambda batch: 0.0  # noqa: E731

    if impl == "floor":
        table = [[1e-7 * 1.01**i] * n_groups for i in range(OVERHEAD_STEPS)]
        groups = opt.param_groups

        def run() -> None:
            for row in table:
                for g, lr in zip(groups, row):
                    g["lr"] = lr
                step(data[0])
    else:

        def run() -> None:
            fastlr.find_lr(opt, data, train_step=step, num_steps=OVERHEAD_STEPS, restore=restore, progress=False,
                           diverge=2.0)

    benchmark.pedantic(run, rounds=30, iterations=1, warmup_rounds=2)
    benchmark.extra_info["per_step_us"] = benchmark.stats.stats.median * 1e6 / OVERHEAD_STEPS


@pytest.mark.parametrize("opt_name", ["SGD", "AdamW"])
def test_range_test_paired(benchmark: Any, opt_name: str) -> None:
    """torch-lr-finder and find_lr in alternation, one pair a round: the ratio fastlr/torch-lr-finder of
    each pair, so that a load that changes during the run (this machine is shared) hits both alike.
    The separate ``FindLR-<Optimizer>-MLP`` rows time all of one side's rounds, then the other's."""
    import statistics
    import time

    tlf = pytest.importorskip("torch_lr_finder")
    model, opt, loader = _mlp_setup(opt_name)
    crit = torch.nn.MSELoss()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ratios: list[float] = []

    def pair() -> None:
        t0 = time.perf_counter()
        _torch_lr_finder(tlf, model, opt, crit, loader)
        t1 = time.perf_counter()
        _fastlr_find_lr(model, opt, crit, loader)
        ratios.append((time.perf_counter() - t1) / (t1 - t0))

    benchmark.group = f"FindLR-{opt_name}-MLP-paired"
    benchmark.extra_info.update(kind="find_lr_paired", impl="torch-lr-finder+fastlr", steps=STEPS, optimizer=opt_name)
    benchmark.pedantic(pair, rounds=15, iterations=1, warmup_rounds=1)
    ratios = ratios[1:]  # the warm-up round's pair
    ratio = statistics.median(ratios)
    benchmark.extra_info.update(fastlr_over_torch_lr_finder=ratio, ratio_min=min(ratios), ratio_max=max(ratios))
    print(f"\n{opt_name}: fastlr/torch-lr-finder, median of {len(ratios)} pairs: {ratio:.2f} "
          f"({min(ratios):.2f}-{max(ratios):.2f})")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
