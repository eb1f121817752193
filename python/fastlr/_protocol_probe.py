"""Does the installed torch still schedule the way fastlr's engine reproduces it? Checked by behaviour.

The engine re-implements torch's scheduler protocol (``LRScheduler.step`` -> ``_update_lr`` ->
``get_lr``, the counters, ``_last_lr``, the per-class recurrences) in C++. It was written against
torch 2.13 and is tested against every torch CI installs, but a future torch may change any of it
without renaming anything. So, once at import of :mod:`fastlr.lr_scheduler`, every engine-driven
class is stepped beside torch's own class of the same name on a small optimizer, through the
branches its recurrence has (milestones, the end of a cycle, a restart, a plateau), and everything
observable is compared after every step: each group's lr and momentum (bit for bit), ``get_last_lr()``,
and the whole ``state_dict()``. A class whose behaviour differs is taken off the engine: it runs
torch's own code, exact and merely not faster, and ``FAST_PATH_MISMATCHES`` says why.

:class:`fastlr.lr_scheduler.ScheduledLR` has no torch twin of its own: it is stepped beside torch's
``LambdaLR`` with the equivalent lambdas (``lambda t: schedule(t)``, one per group), which runs the
same protocol (counters, ``_last_lr``, ``base_lr * multiplier``); its ``state_dict()`` is compared on
the keys the two classes share.

This costs a few milliseconds at import (``import torch`` itself costs about a second).
"""

from __future__ import annotations

import math
import struct
import warnings
from collections.abc import Iterable
from typing import Any, Callable

import torch
from torch.optim import lr_scheduler as _tls
from torch.optim import swa_utils as _swa

#: Steps per probe: past every milestone and horizon below (T_max, total_steps, a restart, a plateau).
STEPS = 12

# Plateau metrics: improving, then flat (reductions after `patience`), then improving again.
_METRICS = [1.0, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.4, 0.4]


def _lam(e: int) -> float:
    return 0.9**e


def _mul(e: int) -> float:
    return 0.95


def _schedules() -> list[Any]:
    """ScheduledLR's probe: a warm-up joined to a cosine past its end, and a staircase, over 3 groups
    (two share one schedule)."""
    from . import schedules as S

    a = S.warmup(S.cosine(1.0, 6, end_value=0.1), 3)
    return [a, S.step(1.0, 4, 0.5), a]


def _lambda_twin(o: torch.optim.Optimizer, schedules: list[Any]) -> Any:
    """torch's LambdaLR with the lambdas equivalent to a ScheduledLR of `schedules` (multiplier mode)."""
    return _tls.LambdaLR(o, lr_lambda=[lambda t, s=s: s(t) for s in schedules])


# Keys of each side's state_dict that the other class does not have (ScheduledLR against LambdaLR):
# the rest, the protocol's counters and lists, must be equal.
_OWN_KEYS = {
    "ScheduledLR": (
        ("lr_lambdas", "_get_lr_called_within_step"),
        ("mode", "schedules", "momentum_schedules", "weight_decay_schedules", "momentum_key", "lr_scale"),
    ),
}


# name -> (constructor kwargs as a function of the module the classes come from, optimizer kwargs)
def _cases(m: Any) -> dict[str, Callable[[Any], Any]]:
    return {
        "LambdaLR": lambda o: m.LambdaLR(o, lr_lambda=_lam),
        "MultiplicativeLR": lambda o: m.MultiplicativeLR(o, lr_lambda=_mul),
        "StepLR": lambda o: m.StepLR(o, step_size=2, gamma=0.5),
        "MultiStepLR": lambda o: m.MultiStepLR(o, milestones=[2, 5, 5], gamma=0.3),
        "ConstantLR": lambda o: m.ConstantLR(o, factor=0.5, total_iters=3),
        "LinearLR": lambda o: m.LinearLR(o, start_factor=0.3, end_factor=0.9, total_iters=4),
        "ExponentialLR": lambda o: m.ExponentialLR(o, gamma=0.9),
        "PolynomialLR": lambda o: m.PolynomialLR(o, total_iters=5, power=1.5),
        "CosineAnnealingLR": lambda o: m.CosineAnnealingLR(o, T_max=4, eta_min=0.01),
        "CyclicLR": lambda o: m.CyclicLR(o, base_lr=0.01, max_lr=[0.1, 0.2, 0.3], step_size_up=2, step_size_down=3, mode="triangular2"),
        "OneCycleLR": lambda o: m.OneCycleLR(o, max_lr=0.3, total_steps=STEPS + 1, pct_start=0.25, three_phase=True),
        "CosineAnnealingWarmRestarts": lambda o: m.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2, eta_min=0.001),
        "ReduceLROnPlateau": lambda o: m.ReduceLROnPlateau(o, patience=1, factor=0.5, cooldown=1, min_lr=0.004),
        "SequentialLR": lambda o: m.SequentialLR(
            o, [m.ConstantLR(o, factor=0.5, total_iters=2), m.CosineAnnealingLR(o, T_max=5)], milestones=[3]
        ),
        "ChainedScheduler": lambda o: m.ChainedScheduler([m.ConstantLR(o, factor=0.5, total_iters=3), m.ExponentialLR(o, gamma=0.9)]),
        "SWALR": lambda o: m.SWALR(o, swa_lr=[0.05, 0.01, 0.02], anneal_epochs=3, anneal_strategy="cos"),
        "ScheduledLR": lambda o: m.ScheduledLR(o, _schedules()),
    }


def _optimizer() -> torch.optim.Optimizer:
    ps = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    groups = [{"params": [p], "lr": 0.1 * 0.7**i + 1e-3 * i} for i, p in enumerate(ps)]
    return torch.optim.SGD(groups, momentum=0.9)


def _same(a: Any, b: Any) -> bool:
    """Equal, floats bit for bit (a NaN equals a NaN), containers element by element, in order."""
    if type(a) is float and type(b) is float:
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if callable(a) and callable(b):  # lambdas held in a state dict: the same function on both sides
        return a is b
    try:
        return type(a) is type(b) and (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))
    except Exception:
        return False


def _observe(sched: Any, opt: torch.optim.Optimizer, own: Iterable[str] = ()) -> tuple[Any, ...]:
    groups = [(g["lr"], g.get("momentum")) for g in opt.param_groups]
    sd = {k: v for k, v in sched.state_dict().items() if k not in own}
    return groups, list(sched.get_last_lr()), sd


def probe(fast: Any, names: Iterable[str] | None = None) -> dict[str, str]:
    """Step each of ``fast``'s engine-driven classes (those in ``names``, if given) beside torch's;
    return {class name: what differed}."""
    mismatches: dict[str, str] = {}
    torch_mod = type("torch_classes", (), {n: getattr(_tls, n, None) for n in dir(_tls)})
    torch_mod.SWALR = _swa.SWALR  # type: ignore[attr-defined]
    torch_mod.ScheduledLR = staticmethod(_lambda_twin)  # type: ignore[attr-defined]
    fast_cases, torch_cases = _cases(fast), _cases(torch_mod)
    wanted = set(fast_cases) if names is None else set(names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, make_fast in fast_cases.items():
            if name not in wanted:
                continue
            own_torch, own_fast = _OWN_KEYS.get(name, ((), ()))
            try:
                o1, o2 = _optimizer(), _optimizer()
                s1, s2 = torch_cases[name](o1), make_fast(o2)
                engine_steps = 0
                for k in range(STEPS):  # (no optimizer step: it changes nothing a scheduler reads)
                    if name == "ReduceLROnPlateau":
                        s1.step(_METRICS[k])
                        s2.step(_METRICS[k])
                    else:
                        s1.step()
                        s2.step()
                    if not _same(_observe(s1, o1, own_torch), _observe(s2, o2, own_fast)):
                        mismatches[name] = f"differs from torch's {name} at step {k + 1}"
                        break
                    eng = getattr(s2, "_fastlr_engine", None)
                    engine_steps = eng.handled if eng is not None else 0
                else:
                    if engine_steps == 0:
                        mismatches[name] = "the engine did not step it"
            except Exception as e:  # torch raising where fastlr does not, or the reverse
                mismatches[name] = f"{type(e).__name__} while stepping beside torch's {name}: {e}"
    return mismatches
