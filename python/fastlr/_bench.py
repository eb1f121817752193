"""Benchmark harness: fastlr's drop-in schedulers against torch's, and ``python -m fastlr bench``.

One source for the timing method and the workloads, shared by the command line (``run_bench``), the
pytest-benchmark suite in ``benchmarks/``, the CI performance guard (``tests/test_perf_guard.py``)
and ``python -m fastlr demo``.

Method (see ``benchmarks/README.md``):

* every variant of one measurement (torch, fastlr, the floor) runs in timed blocks that alternate
  (A B C, C B A, A B C, ...), so a slow drift of the machine hits all of them alike; the reported
  time is the median over the blocks of the mean time per call within a block, and a ratio is the
  median over the rounds of the ratio of the two blocks within a round;
* the cyclic garbage collector is off inside each timed block (and back on between blocks);
* torch uses one intra-op thread (``torch.set_num_threads(1)``);
* schedulers are built, stepped past their first step (which runs torch's Python code, for its
  order warnings), and configured so that 10^7 further steps keep every lr a normal float.

The workloads use an optimizer with one tiny parameter per param group. With thousands of groups,
torch's ``Optimizer.add_param_group`` is quadratic (it checks each new group against all earlier
ones: seconds at 4096 groups), so :func:`make_optimizer` builds the optimizer with one group and
appends the others as copies of that group's dict, which is the same list of dicts with the same keys
that the scheduler would see otherwise.

Needs torch for everything but :func:`median` and :func:`time_alternating`; it never needs
pytest-benchmark.
"""

from __future__ import annotations

import datetime
import collections
import contextlib
import functools
import gc
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ._progress import Progress

__all__ = [
    "GROUP_COUNTS",
    "LR_KINDS",
    "SCHEDULED",
    "SCHEDULERS",
    "Workload",
    "base_lrs",
    "growth_bytes",
    "held_state",
    "machine_info",
    "make_floor",
    "make_floor_callables",
    "make_optimizer",
    "make_scheduler",
    "make_train_step",
    "make_workload",
    "measure_cell",
    "measure_cells",
    "median",
    "python_events",
    "round_ratio",
    "run_bench",
    "summarize_cell",
    "time_alternating",
    "transient_bytes",
]

#: Param-group counts of the benchmark suite.
GROUP_COUNTS = (1, 8, 64, 512, 4096)
#: How the learning rates are held: distinct floats (layer-wise decay), tensors (0-d float32, one per
#: group, as fused/capturable optimizers hold them), or one float value shared by every group.
LR_KINDS = ("float", "tensor", "equal")

# ------------------------------------------------------------------------------------------------
# Timing


def median(xs: Iterable[float]) -> float:
    """The median (the mean of the two middle values for an even count)."""
    s = sorted(xs)
    if not s:
        raise ValueError("median of no values")
    k = len(s) // 2
    return s[k] if len(s) % 2 else 0.5 * (s[k - 1] + s[k])


def _block(fn: Callable[[], Any], reps: int) -> float:
    """Seconds per call of ``fn`` over ``reps`` calls, with the cyclic GC off."""
    it = itertools.repeat(None, reps)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in it:
            fn()
        t1 = time.perf_counter()
    finally:
        if was_enabled:
            gc.enable()
    return (t1 - t0) / reps


def calibrate(fn: Callable[[], Any], target_s: float, max_reps: int = 1_000_000) -> int:
    """The number of calls of ``fn`` that takes about ``target_s`` seconds (at least 1)."""
    reps = 1
    while True:
        per_call = _block(fn, reps)
        total = per_call * reps
        if total >= target_s / 4 or reps >= max_reps:
            return max(1, min(max_reps, math.ceil(target_s / max(per_call, 1e-9))))
        reps = min(max_reps, reps * 10)


def time_alternating(
    fns: Mapping[str, Callable[[], Any]],
    blocks: int = 7,
    target_s: float = 0.005,
) -> dict[str, list[float]]:
    """Seconds per call of each of ``fns``, one value per block.

    Each function is calibrated to run about ``target_s`` seconds per block; then ``blocks`` rounds
    run one timed block of each, in alternating order (A B C, then C B A, ...), with the GC off
    inside each block. Take :func:`median` of each list.
    """
    names = list(fns)
    reps = {n: calibrate(fns[n], target_s) for n in names}
    out: dict[str, list[float]] = {n: [] for n in names}
    for b in range(blocks):
        for n in names if b % 2 == 0 else reversed(names):
            out[n].append(_block(fns[n], reps[n]))
    return out


def round_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """The median over rounds of ``num[i] / den[i]`` (per-block times from :func:`time_alternating`)."""
    return median(a / b for a, b in zip(num, den))


# ------------------------------------------------------------------------------------------------
# Workloads


def base_lrs(n_groups: int, lr_kind: str = "float") -> list[float]:
    """Per-group base learning rates: layer-wise decay from 3e-4 (the last group) down by a factor of
    1024 (the first), every group distinct; or 3e-4 for every group (``lr_kind="equal"``)."""
    if lr_kind == "equal":
        return [3e-4] * n_groups
    span = max(n_groups - 1, 1)
    return [3e-4 * 0.5 ** (10.0 * (n_groups - 1 - i) / span) for i in range(n_groups)]


def make_optimizer(n_groups: int, lr_kind: str = "float", opt: str = "SGD", numel: int = 1) -> Any:
    """An optimizer with ``n_groups`` param groups of one ``numel``-element parameter each.

    ``opt`` is "SGD" (momentum 0.9, so CyclicLR and OneCycleLR cycle the momentum) or "AdamW" (they
    cycle beta1). ``lr_kind`` is one of :data:`LR_KINDS`.
    """
    import torch

    if lr_kind not in LR_KINDS:
        raise ValueError(f"lr_kind must be one of {LR_KINDS}, got {lr_kind!r}")
    lrs = base_lrs(n_groups, lr_kind)
    params = [torch.nn.Parameter(torch.zeros(numel)) for _ in range(n_groups)]

    def lr_value(x: float) -> Any:
        return torch.tensor(x) if lr_kind == "tensor" else x

    if opt == "SGD":
        o = torch.optim.SGD([{"params": [params[0]], "lr": lr_value(lrs[0])}], momentum=0.9)
    elif opt == "AdamW":
        o = torch.optim.AdamW([{"params": [params[0]], "lr": lr_value(lrs[0])}])
    else:
        raise ValueError(f"opt must be 'SGD' or 'AdamW', got {opt!r}")
    # Copies of the first group's dict (add_param_group is quadratic in the group count).
    g0 = o.param_groups[0]
    o.param_groups.extend(dict(g0, params=[p], lr=lr_value(x)) for p, x in zip(params[1:], lrs[1:]))
    return o


def _inverse_time(epoch: int) -> float:
    """LambdaLR's callable in the benchmarks: inverse-time decay."""
    return 1.0 / (1.0 + 1e-4 * epoch)


def _per_step_decay(epoch: int) -> float:
    """MultiplicativeLR's callable in the benchmarks: a constant factor per step."""
    return 0.99999


def _hf_cosine(current_step: int, *, num_warmup_steps: int, num_training_steps: int, num_cycles: float = 0.5) -> float:
    """transformers' cosine-with-warm-up multiplier (``get_cosine_schedule_with_warmup``'s lambda, as
    transformers writes it): ScheduledLR's torch twin in the benchmarks is LambdaLR with it."""
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))


#: ScheduledLR's configuration: transformers' cosine with warm-up, mid-schedule for 10^7 steps.
_HF_WARMUP, _HF_TOTAL = 100, 10**8


def _build(name: str, m: Any, o: Any, lrs: list[float]) -> Any:
    """Scheduler ``name`` from module-like ``m`` (torch's or fastlr's classes) on optimizer ``o``.

    Every configuration is mid-schedule for 10^7 steps (no horizon is reached, and no lr underflows).
    """
    if name == "LambdaLR":
        return m.LambdaLR(o, lr_lambda=_inverse_time)
    if name == "MultiplicativeLR":
        return m.MultiplicativeLR(o, lr_lambda=_per_step_decay)
    if name == "StepLR":
        return m.StepLR(o, step_size=1000, gamma=0.95)
    if name == "MultiStepLR":
        return m.MultiStepLR(o, milestones=[30_000, 60_000, 90_000], gamma=0.1)
    if name == "ConstantLR":
        return m.ConstantLR(o, factor=0.5, total_iters=10**9)
    if name == "LinearLR":
        return m.LinearLR(o, start_factor=0.01, total_iters=10**9)
    if name == "ExponentialLR":
        return m.ExponentialLR(o, gamma=0.99999)
    if name == "PolynomialLR":
        return m.PolynomialLR(o, total_iters=10**9, power=2.0)
    if name == "CosineAnnealingLR":
        return m.CosineAnnealingLR(o, T_max=100_000)
    if name == "CyclicLR":
        return m.CyclicLR(o, base_lr=[x / 10 for x in lrs], max_lr=lrs, step_size_up=2000)
    if name == "OneCycleLR":
        return m.OneCycleLR(o, max_lr=lrs, total_steps=10**8)
    if name == "CosineAnnealingWarmRestarts":
        return m.CosineAnnealingWarmRestarts(o, T_0=1000)
    if name == "ReduceLROnPlateau":
        return m.ReduceLROnPlateau(o, patience=10)
    if name == "SequentialLR":
        warm = m.LinearLR(o, start_factor=0.1, total_iters=5)
        decay = m.CosineAnnealingLR(o, T_max=100_000)
        return m.SequentialLR(o, [warm, decay], milestones=[5])
    if name == "ChainedScheduler":
        members = [m.LinearLR(o, start_factor=0.1, total_iters=10**9), m.ExponentialLR(o, gamma=0.99999)]
        return m.ChainedScheduler(members)
    if name == "SWALR":
        return m.SWALR(o, swa_lr=[x / 10 for x in lrs], anneal_epochs=10**6)
    if name == "ScheduledLR":
        # fastlr: get_scheduler("cosine")'s ScheduledLR; torch (no such class): LambdaLR with
        # transformers' lambda, as transformers' get_scheduler("cosine") builds it.
        if hasattr(m, "ScheduledLR"):
            from .schedules import from_name

            return m.ScheduledLR(o, from_name("cosine", _HF_WARMUP, _HF_TOTAL))
        lam = functools.partial(_hf_cosine, num_warmup_steps=_HF_WARMUP, num_training_steps=_HF_TOTAL)
        return m.LambdaLR(o, lr_lambda=lam)
    raise ValueError(f"unknown scheduler {name!r}")


#: The drop-in classes benchmarked, in the order of torch's documentation (SWALR last).
SCHEDULERS = (
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "PolynomialLR",
    "CosineAnnealingLR",
    "CyclicLR",
    "OneCycleLR",
    "CosineAnnealingWarmRestarts",
    "ReduceLROnPlateau",
    "SequentialLR",
    "ChainedScheduler",
    "SWALR",
)
#: Benchmarked beside the drop-ins: ScheduledLR (transformers' cosine with warm-up, as
#: ``fastlr.get_scheduler("cosine")`` builds it) against torch's LambdaLR with transformers' lambda. Its
#: floor is the bare assignment (no user callable to call).
SCHEDULED = ("ScheduledLR",)
#: Classes whose step calls the user's callables once per group.
CALLABLE_SCHEDULERS = ("LambdaLR", "MultiplicativeLR")
#: The metric passed to ReduceLROnPlateau.step (constant: the lrs are reduced every 11 steps until
#: the reduction falls below ``eps``, then only the bookkeeping runs).
PLATEAU_METRIC = 1.0
#: Steps taken after construction, before any measurement (the first runs torch's Python code).
WARMUP_STEPS = 8


class _Module:
    """torch's schedulers (torch.optim.lr_scheduler plus swa_utils.SWALR) as one namespace."""

    def __init__(self) -> None:
        from torch.optim import lr_scheduler, swa_utils

        self._m = lr_scheduler
        self.SWALR = swa_utils.SWALR

    def __getattr__(self, name: str) -> Any:
        return getattr(self._m, name)


def scheduler_module(impl: str) -> Any:
    """The namespace holding the classes of ``impl``: "torch" or "fastlr"."""
    if impl == "torch":
        return _Module()
    if impl == "fastlr":
        import fastlr.lr_scheduler

        return fastlr.lr_scheduler
    raise ValueError(f"impl must be 'torch' or 'fastlr', got {impl!r}")


def step_callable(name: str, sched: Any) -> Callable[[], Any]:
    """A no-argument callable that makes one ``step()`` of ``sched`` (bound method where possible)."""
    if name == "ReduceLROnPlateau":
        return functools.partial(sched.step, PLATEAU_METRIC)  # a C-level call, as cheap as a bound method
    return sched.step


def make_scheduler(
    name: str, impl: str, n_groups: int, lr_kind: str = "float", opt: str = "SGD", warmup: int = WARMUP_STEPS
) -> tuple[Any, Any, Callable[[], Any]]:
    """(scheduler, optimizer, step) for class ``name`` of ``impl`` ("torch" or "fastlr"), built on a
    fresh :func:`make_optimizer` and stepped ``warmup`` times (warnings silenced)."""
    o = make_optimizer(n_groups, lr_kind, opt)
    lrs = base_lrs(n_groups, lr_kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = _build(name, scheduler_module(impl), o, lrs)
        step = step_callable(name, s)
        for _ in range(warmup):
            step()
    return s, o, step


def make_floor(optimizer: Any, value: float = 1e-4) -> Callable[[], None]:
    """The floor: a bare Python loop assigning ``group["lr"] = value`` to every group (for tensor lrs,
    ``group["lr"].fill_(value)``, the least torch's own update does per group)."""
    groups = optimizer.param_groups
    if groups and not isinstance(groups[0]["lr"], float):

        def floor_fill() -> None:
            for g in groups:
                g["lr"].fill_(value)

        return floor_fill

    def floor() -> None:
        for g in groups:
            g["lr"] = value

    return floor


def make_floor_callables(
    optimizer: Any, lambdas: Sequence[Callable[[int], Any]], epoch: int = 1000
) -> Callable[[], None]:
    """The floor plus the user's callables: ``group["lr"] = lmbda(epoch)`` for every group, in one
    bare Python loop (what LambdaLR and MultiplicativeLR cannot do without); ``fill_`` for tensors."""
    groups = optimizer.param_groups
    pairs = list(zip(groups, lambdas))
    if groups and not isinstance(groups[0]["lr"], float):

        def floor_callables_fill() -> None:
            for g, f in pairs:
                g["lr"].fill_(f(epoch))

        return floor_callables_fill

    def floor_callables() -> None:
        for g, f in pairs:
            g["lr"] = f(epoch)

    return floor_callables


def make_train_step(
    opt_name: str, sched_name: str, impl: str, n_groups: int, numel: int = 16
) -> tuple[Callable[[], None], Callable[[], Any], list[Any]]:
    """A small training step: (``optimizer.step()`` then ``scheduler.step()``, the scheduler step alone,
    objects to keep alive) on an ``opt_name`` optimizer with ``n_groups`` groups of one ``numel``
    parameter whose gradients are set once. ``impl`` "torch" or "fastlr" picks the scheduler's
    classes; "optimizer" attaches torch's scheduler but the first callable steps the optimizer only."""
    import torch

    o = make_optimizer(n_groups, "float", opt_name, numel=numel)
    for g in o.param_groups:
        for p in g["params"]:
            p.grad = torch.full_like(p, 1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = _build(sched_name, scheduler_module("torch" if impl == "optimizer" else impl), o, base_lrs(n_groups))
        sched_step = step_callable(sched_name, sched)
        for _ in range(WARMUP_STEPS):
            o.step()
            sched_step()
    opt_step = o.step
    if impl == "optimizer":

        def train_step() -> None:
            opt_step()

    else:

        def train_step() -> None:
            opt_step()
            sched_step()

    return train_step, sched_step, [o, sched]


@dataclass
class Workload:
    """The callables timed together for one benchmark cell (one class, one group count, one lr kind)."""

    name: str
    n_groups: int
    lr_kind: str
    fns: dict[str, Callable[[], Any]] = field(default_factory=dict)
    keep: list[Any] = field(default_factory=list)  # schedulers and optimizers the callables need


def make_workload(name: str, n_groups: int, lr_kind: str = "float") -> Workload:
    """torch's and fastlr's ``step()`` for one cell, the floor, and for LambdaLR/MultiplicativeLR the
    floor plus the callables (keys "torch", "fastlr", "floor", "floor+callables")."""
    w = Workload(name, n_groups, lr_kind)
    for impl in ("torch", "fastlr"):
        s, o, step = make_scheduler(name, impl, n_groups, lr_kind)
        w.fns[impl] = step
        w.keep += [s, o]
    fo = make_optimizer(n_groups, lr_kind)
    w.keep.append(fo)
    w.fns["floor"] = make_floor(fo)
    if name in CALLABLE_SCHEDULERS:
        lambdas = w.keep[0].lr_lambdas  # torch's scheduler: one callable per group
        fc = make_optimizer(n_groups, lr_kind)
        w.keep.append(fc)
        w.fns["floor+callables"] = make_floor_callables(fc, lambdas)
    return w


# ------------------------------------------------------------------------------------------------
# Structural measurements (no timing): Python work and allocation per step


def python_events(fn: Callable[[], Any], user_codes: Iterable[Any] = ()) -> collections.Counter:
    """Python-level events while ``fn()`` runs, keyed (owner, event), where owner is "user" for frames
    running one of ``user_codes`` (the user's callables) and "lib" otherwise, and event is "call"
    (a Python function call), "c_call" (a C function called from Python code) or "opcode" (a bytecode
    instruction executed)."""
    user = frozenset(user_codes)
    counts: collections.Counter = collections.Counter()

    def owner(frame: Any) -> str:
        return "user" if frame.f_code in user else "lib"

    def profiler(frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            counts[owner(frame), event] += 1

    def local_tracer(frame: Any, event: str, arg: Any) -> Any:
        if event == "opcode":
            counts[owner(frame), "opcode"] += 1
        return local_tracer

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return local_tracer

    # The cyclic GC stays off while counting: a collection triggered by an allocation inside the step
    # could run finalizers of unrelated garbage (Python code that is not the step's).
    was_enabled = gc.isenabled()
    gc.disable()
    old_trace, old_profile = sys.gettrace(), sys.getprofile()
    sys.setprofile(profiler)
    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(old_trace)
        sys.setprofile(old_profile)
        if was_enabled:
            gc.enable()
    return counts


@contextlib.contextmanager
def _tracing() -> Iterator[None]:
    """tracemalloc on (left on if it already was) and the cyclic GC off."""
    started = not tracemalloc.is_tracing()
    was_enabled = gc.isenabled()
    gc.disable()
    if started:
        tracemalloc.start()
    try:
        yield
    finally:
        if started:
            tracemalloc.stop()
        if was_enabled:
            gc.enable()


def held_state(sched: Any) -> list[Any]:
    """Strong references to everything a step may replace: the scheduler's attributes (and those of
    its member schedulers) and every value in every param group."""
    held: list[Any] = [list(sched.__dict__.values())]
    for member in sched.__dict__.get("_schedulers", ()):
        held.append(held_state(member))
    opt = sched.__dict__.get("optimizer")
    if opt is not None:
        held.append([list(g.values()) for g in opt.param_groups])
    return held


def transient_bytes(sched: Any, step: Callable[[], Any]) -> int:
    """Traced bytes allocated during one ``step()`` and released by its end, beyond what it stores.

    The previous state is held alive, so nothing old is freed during the step: the traced memory after
    the step is the memory before plus everything the step stored, and any excess of the peak over it
    is temporary allocation."""
    held = held_state(sched)
    with _tracing():
        tracemalloc.reset_peak()
        step()
        after, peak = tracemalloc.get_traced_memory()
    del held
    return peak - after


def growth_bytes(step: Callable[[], Any], n_steps: int) -> int:
    """Traced memory after ``n_steps`` more steps minus before (steady state, GC off)."""
    gc.collect()
    with _tracing():
        step()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(n_steps):
            step()
        after = tracemalloc.get_traced_memory()[0]
    return after - before


# ------------------------------------------------------------------------------------------------
# Machine description


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5, check=False
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _git_commit() -> str | None:
    """The commit of the source tree fastlr was imported from (an editable install or a checkout),
    with "-dirty" when it has uncommitted changes; None elsewhere (an installed wheel)."""
    import fastlr

    src = Path(fastlr.__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0 or not head.stdout.strip():
            return None
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, versions, date and the fastlr commit."""
    import fastlr

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "fastlr": fastlr.__version__,
        "fastlr_commit": _git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ModuleNotFoundError:
        info["torch"] = None
    return info


# ------------------------------------------------------------------------------------------------
# python -m fastlr bench

#: (classes, group counts, rounds per pass, seconds per block, passes) of the two command-line sizes.
_FULL = (SCHEDULERS + SCHEDULED, (1, 64, 4096), 7, 0.004, 2)
_QUICK = (
    ("StepLR", "CosineAnnealingLR", "LambdaLR", "OneCycleLR", "ReduceLROnPlateau", "ChainedScheduler", "ScheduledLR"),
    (1, 64, 4096),
    5,
    0.002,
    1,
)


def measure_cell(
    name: str, n_groups: int, lr_kind: str = "float", blocks: int = 7, target_s: float = 0.004
) -> dict[str, Any]:
    """Median µs per ``step()`` of torch and fastlr (and the floors) for one cell, alternating."""
    w = make_workload(name, n_groups, lr_kind)
    raw = time_alternating(w.fns, blocks=blocks, target_s=target_s)
    fast_path = bool(getattr(w.keep[2], "uses_fast_path", False))
    return summarize_cell(name, n_groups, lr_kind, raw, fast_path)


def summarize_cell(
    name: str, n_groups: int, lr_kind: str, raw: Mapping[str, Sequence[float]], fast_path: bool
) -> dict[str, Any]:
    """One result row from per-block seconds (``raw``, as :func:`time_alternating` returns them; blocks
    of several passes may be concatenated, round by round)."""
    us = {k: median(v) * 1e6 for k, v in raw.items()}
    floor_key = "floor+callables" if "floor+callables" in us else "floor"
    # Ratios: the median over rounds of the ratio within a round (its blocks ran milliseconds apart),
    # which a drift of the machine between rounds does not bias.
    return {
        "scheduler": name,
        "groups": n_groups,
        "lrs": lr_kind,
        "torch_us": us["torch"],
        "fastlr_us": us["fastlr"],
        "floor_us": us["floor"],
        "floor_callables_us": us.get("floor+callables"),
        "speedup": round_ratio(raw["torch"], raw["fastlr"]),
        "fastlr_over_floor": round_ratio(raw["fastlr"], raw[floor_key]),
        "floor_kind": floor_key,
        "blocks_us": {k: [x * 1e6 for x in v] for k, v in raw.items()},
        "fast_path": fast_path,
    }


def measure_cells(
    cells: Sequence[tuple[str, int, str]],
    blocks: int = 7,
    target_s: float = 0.004,
    passes: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Result rows for ``cells`` ((class, G, lr kind) each), measured in ``passes`` passes over all
    cells of ``blocks`` alternating rounds each, on workloads built afresh in every pass. A cell's
    rounds are thus spread over the whole run: a burst of load on a shared machine hits a few rounds
    of many cells rather than all rounds of one."""
    raw: dict[tuple[str, int, str], dict[str, list[float]]] = {c: {} for c in cells}
    fast: dict[tuple[str, int, str], bool] = {}
    for p in range(passes):
        for name, g, kind in cells:
            if progress is not None:
                label = f"{name} G={g}" + ("" if kind == "float" else f" {kind}")
                progress(label + (f" (pass {p + 1}/{passes})" if passes > 1 else ""))
            w = make_workload(name, g, kind)
            for k, v in time_alternating(w.fns, blocks=blocks, target_s=target_s).items():
                raw[name, g, kind].setdefault(k, []).extend(v)
            fast[name, g, kind] = bool(getattr(w.keep[2], "uses_fast_path", False))
            del w
    return [summarize_cell(n, g, k, raw[n, g, k], fast[n, g, k]) for n, g, k in cells]


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The results as one fixed-width table (markdown-compatible)."""
    head = ("scheduler", "G", "torch µs", "fastlr µs", "torch/fastlr", "fastlr/floor")
    lines = [
        f"| {head[0]:<27} | {head[1]:>4} | {head[2]:>9} | {head[3]:>9} | {head[4]:>12} | {head[5]:>12} |",
        f"|{'-' * 29}|{'-' * 5}:|{'-' * 10}:|{'-' * 10}:|{'-' * 13}:|{'-' * 13}:|",
    ]
    for r in rows:
        mark = "*" if r["floor_kind"] == "floor+callables" else " "
        lines.append(
            f"| {r['scheduler']:<27} | {r['groups']:>4} | {r['torch_us']:>9.2f} | {r['fastlr_us']:>9.2f} | "
            f"{r['speedup']:>11.1f}x | {r['fastlr_over_floor']:>10.2f}x{mark} |"
        )
    return "\n".join(lines)


def _floor_table(rows: Sequence[Mapping[str, Any]]) -> str:
    by_g: dict[int, list[float]] = {}
    for r in rows:
        by_g.setdefault(r["groups"], []).append(r["floor_us"])
    return ", ".join(f"G={g}: {median(v):.2f} µs" for g, v in sorted(by_g.items()))


def run_bench(
    quick: bool = False,
    json_path: str | None = None,
    out: TextIO | None = None,
    plan: tuple[Sequence[str], Sequence[int], int, float, int] | None = None,
) -> int:
    """Time a representative subset of the drop-in schedulers against torch's, print one table, and
    optionally write the results and the machine description as JSON. Returns the exit status.

    ``plan`` = (classes, group counts, rounds per pass, seconds per block, passes) replaces the subset
    that ``quick`` selects (the tests use a tiny one)."""
    out = out if out is not None else sys.stdout
    try:
        import torch
    except ModuleNotFoundError:
        print("python -m fastlr bench needs PyTorch: pip install torch", file=sys.stderr)
        return 1
    import fastlr.lr_scheduler as fls

    names, counts, blocks, target_s, passes = plan if plan is not None else _QUICK if quick else _FULL
    info = machine_info()
    commit = info["fastlr_commit"] or "no git checkout"
    print(
        f"fastlr {info['fastlr']} ({commit}) vs torch {info['torch']}, Python {info['python']}, "
        f"{info['cpu']} ({info['cores_available']} cores), {info['date']}",
        file=out,
        flush=True,
    )
    cells = [(n, g, "float") for n in names for g in counts]
    estimate = len(cells) * passes * blocks * 3 * 2 * target_s * 1.5  # 3 timed fns, calibration
    print(
        f"timing {len(names)} classes x G = {', '.join(map(str, counts))} (about {estimate:.0f} s; "
        "progress on stderr) ...",
        file=out,
        flush=True,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        progress = Progress(len(cells) * passes, sys.stderr, what="bench")
        t0 = time.perf_counter()
        try:
            rows = measure_cells(cells, blocks, target_s, passes, progress.show)
        finally:
            progress.close()
        elapsed = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)

    print(
        f"scheduler.step() with float lrs (distinct per group), median of {blocks * passes} alternating blocks "
        f"in {passes} pass{'es' if passes > 1 else ''} (GC off, 1 torch thread); {elapsed:.0f} s",
        file=out,
    )
    print(format_table(rows), file=out)
    print(f"floor = a bare Python loop `for g in groups: g['lr'] = x` ({_floor_table(rows)})", file=out)
    if any(r["floor_kind"] == "floor+callables" for r in rows):
        print("* LambdaLR/MultiplicativeLR: over the floor plus the user's callables (g['lr'] = f(epoch))", file=out)
    if any(r["scheduler"] in SCHEDULED for r in rows):
        print(
            "ScheduledLR: fastlr.get_scheduler('cosine') against torch's LambdaLR with transformers' cosine lambda",
            file=out,
        )
    if not fls.FAST_PATH_AVAILABLE:
        why = ", ".join(sorted(fls.FAST_PATH_MISMATCHES)) or "its internals differ"
        print(f"note: with this torch, fastlr runs torch's code for some classes ({why})", file=out)
    if json_path:
        doc = {
            "fastlr_bench": 1,
            "mode": "quick" if quick else "full",
            "machine": info,
            "method": {
                "blocks": blocks * passes,
                "passes": passes,
                "target_block_s": target_s,
                "statistic": "median over alternating blocks of the mean time per call; ratios: median of "
                "per-round ratios",
                "gc": "disabled inside timed blocks",
                "torch_threads": 1,
                "lrs": "float, distinct per group (layer-wise decay)",
                "floor": "for g in groups: g['lr'] = x",
                "floor_callables": "for g, f in zip(groups, lambdas): g['lr'] = f(epoch)",
            },
            "elapsed_s": elapsed,
            "results": rows,
        }
        Path(json_path).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {json_path}", file=out)
    return 0
