"""Schedules by name: Hugging Face's ``get_scheduler`` names with their formulas, and fastlr's own.

Each name builds a schedule of *multipliers* of the base learning rate (as Hugging Face's
``LambdaLR`` lambdas are). The Hugging Face names build :func:`fastlr.schedules.transformers` nodes,
which evaluate transformers' lambdas operation for operation (bitwise; tests/test_transformers_parity.py
steps the installed transformers beside them). The formulas, from ``transformers.optimization``, with
``W = num_warmup_steps``, ``T = num_training_steps``, ``u = t - W``:

* warm-up (every name but constant and reduce_lr_on_plateau): ``t / max(1, W)`` for ``t < W``;
* ``linear``: ``max(0, (T - t) / max(1, T - W))``;
* ``cosine``: ``0.5 * (1 + cos(pi * num_cycles * 2 * u / max(1, T - W)))`` (continues past ``T``);
* ``cosine_with_restarts``: ``p = u / max(1, T - W)``; 0 if ``p >= 1``, else
  ``0.5 * (1 + cos(pi * ((num_cycles * p) % 1)))``;
* ``polynomial``: ``((lr_init - lr_end) * (1 - u / (T - W)) ** power + lr_end) / lr_init``,
  ``lr_end / lr_init`` past ``T``;
* ``constant``: 1; ``constant_with_warmup``: 1 after the warm-up;
* ``inverse_sqrt``: ``1 / sqrt((u + timescale) / timescale)``, ``timescale = W or 10000``;
* ``cosine_with_min_lr``: ``r + (1 - r) * 0.5 * (1 + cos(pi * num_cycles * 2 * p))``, ``r`` =
  ``min_lr_rate`` or ``min_lr / lr_init``;
* ``warmup_stable_decay``: see :func:`fastlr.schedules.wsd` (warm-up from ``min_lr_ratio``);
* ``reduce_lr_on_plateau``: a :func:`fastlr.schedules.plateau` node (``fastlr.get_scheduler`` returns
  :class:`fastlr.lr_scheduler.ReduceLROnPlateau` instead, as transformers returns torch's class).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

from ._base import Schedule
from ._combinators import warmup
from ._shapes import constant, cosine, cyclic, exponential, multistep, onecycle, step, tanh, transformers, warm_restarts, wsd
from ._stateful import plateau


def _need(name: str, what: str, value: Any) -> Any:
    if value is None:
        raise ValueError(f"{name} requires `{what}`, please provide that argument.")
    return value


def _count(what: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{what} must be an int, got {type(v).__name__} {v!r}")
    if v < 0:
        raise ValueError(f"{what} must be >= 0, got {v}")
    return v


def _no_extra(name: str, kw: dict[str, Any]) -> None:
    if kw:
        raise TypeError(f"{name} got unexpected keyword arguments {sorted(kw)}")


def _hf(name: str, w: int, t: int, a: float = 0.0, b: float = 0.0, c: float = 0.0, d: float = 0.0, e: float = 0.0) -> Schedule:
    return transformers(name, w, t, (a, b, c, d, e))


def _training(name: str, t: int | None) -> int:
    return _count("num_training_steps", _need(name, "num_training_steps", t))


def _linear(name: str, w: int, t: int | None, kw: dict[str, Any]) -> Schedule:
    _no_extra(name, kw)
    return _hf("linear", w, _training(name, t))


def _cosine(name: str, w: int, t: int | None, kw: dict[str, Any]) -> Schedule:
    cycles = kw.pop("num_cycles", 0.5)
    _no_extra(name, kw)
    return _hf("cosine", w, _training(name, t), cycles)


def _cosine_restarts(name: str, w: int, t: int | None, kw: dict[str, Any]) -> Schedule:
    cycles = kw.pop("num_cycles", 1)
    _no_extra(name, kw)
    return _hf("cosine_with_restarts", w, _training(name, t), cycles)


def _polynomial(name: str, w: int, t: int | None, kw: dict[str, Any]) -> Schedule:
    lr_end = kw.pop("lr_end", 1e-7)
    power = kw.pop("power", 1.0)
    lr_init = kw.pop("lr_init", None)
    _no_extra(name, kw)
    t = _training(name, t)
    if lr_init is None:
        raise ValueError("polynomial needs lr_init, the optimizer's default lr (get_scheduler passes it)")
    if not lr_init > lr_end:
        raise ValueError(f"lr_end ({lr_end}) must be smaller than initial lr ({lr_init})")
    if t == w:
        # transformers' lambda divides by num_training_steps - num_warmup_steps at that step.
        raise ZeroDivisionError("polynomial with num_training_steps == num_warmup_steps divides by zero at step "
                                f"{t} (transformers raises ZeroDivisionError there)")
    return _hf("polynomial", w, t, lr_end, power, lr_init)


def _constant(name: str, w: int | None, t: int | None, kw: dict[str, Any]) -> Schedule:
    _no_extra(name, kw)
    return constant(1.0)


def _constant_warmup(name: str, w: int, t: int | None, kw: dict[str, Any]) -> Schedule:
    _no_extra(name, kw)
    return _hf("constant_with_warmup", w, 0)


def _inverse_sqrt(name: str, w: int, t: int | None, kw: dict[str, Any]) -> Schedule:
    timescale = kw.pop("timescale", None)
    _no_extra(name, kw)
    if timescale is None:
        timescale = w or 10_000
    return _hf("inverse_sqrt", w, 0, timescale)


def _plateau(name: str, w: int | None, t: int | None, kw: dict[str, Any]) -> Schedule:
    return plateau(1.0, **kw)


def _min_lr_rate(kw: dict[str, Any]) -> float:
    min_lr = kw.pop("min_lr", None)
    rate = kw.pop("min_lr_rate", None)
    lr_init = kw.pop("lr_init", None)
    if min_lr is not None and rate is not None:
        raise ValueError("Only one of min_lr or min_lr_rate should be set")
    if min_lr is not None:
        if lr_init is None:
            raise ValueError("a min_lr needs lr_init, the optimizer's default lr (get_scheduler passes it)")
        return min_lr / lr_init
    if rate is None:
        raise ValueError("One of min_lr or min_lr_rate should be set through the `lr_scheduler_kwargs`")
    return rate


def _cosine_min_lr(name: str, w: int, t: int | None, kw: dict[str, Any]) -> Schedule:
    cycles = kw.pop("num_cycles", 0.5)
    rate = _min_lr_rate(kw)
    _no_extra(name, kw)
    return _hf("cosine_with_min_lr", w, _training(name, t), cycles, rate)


def _cosine_warmup_min_lr(name: str, w: int, t: int | None, kw: dict[str, Any]) -> Schedule:
    cycles = kw.pop("num_cycles", 0.5)
    warmup_rate = kw.pop("warmup_lr_rate", None)
    rate = _min_lr_rate(kw)
    _no_extra(name, kw)
    has = warmup_rate is not None
    return _hf("cosine_warmup_with_min_lr", w, _training(name, t), cycles, rate, float(warmup_rate) if has else 0.0, 1.0 if has else 0.0)


def _wsd_hf(name: str, w: int, t: int | None, kw: dict[str, Any]) -> Schedule:
    decay = kw.pop("num_decay_steps", None)
    stable = kw.pop("num_stable_steps", None)
    warmup_type = kw.pop("warmup_type", "linear")
    decay_type = kw.pop("decay_type", "cosine")
    ratio = kw.pop("min_lr_ratio", 0)
    cycles = kw.pop("num_cycles", 0.5)
    _no_extra(name, kw)
    decay = _count("num_decay_steps", _need(name, "num_decay_steps", decay))
    if t is None and stable is None:
        raise ValueError("Either num_training_steps or num_stable_steps must be specified.")
    if t is not None and stable is not None:
        warnings.warn(
            "Both num_training_steps and num_stable_steps are specified. num_stable_steps will be used.",
            UserWarning,
            stacklevel=3,
        )
    if warmup_type not in ("linear", "cosine", "1-sqrt"):
        raise ValueError(f"Unknown warmup type: {warmup_type}, expected 'linear', 'cosine' or '1-sqrt'")
    if decay_type not in ("linear", "cosine", "1-sqrt"):
        raise ValueError(f"Unknown decay type: {decay_type}, expected 'linear', 'cosine' or '1-sqrt'")
    if stable is None:
        stable = t - w - decay  # may be negative, as in transformers (the decay then starts early)
    if isinstance(stable, bool) or not isinstance(stable, int):
        raise TypeError(f"num_stable_steps must be an int, got {type(stable).__name__} {stable!r}")
    kinds = ("linear", "cosine", "1-sqrt")
    return _hf("warmup_stable_decay", w, stable, decay, kinds.index(warmup_type), kinds.index(decay_type), ratio, cycles)


# fastlr's own names: the shape's arguments as keywords, with the base value 1 (a multiplier),
# num_training_steps as the shape's length and num_warmup_steps as a linear warm-up prefix.


def _prefixed(body: Schedule, w: int | None) -> Schedule:
    return body if not w else warmup(body, w)


def _own(build: Callable[[int | None, dict[str, Any]], Schedule], needs_total: bool) -> Callable[..., Schedule]:
    def make(name: str, w: int | None, t: int | None, kw: dict[str, Any]) -> Schedule:
        if needs_total:
            _need(name, "num_training_steps", t)
        return _prefixed(build(None if t is None else t - (w or 0), kw), w)

    return make


def _wsd_make(name: str, w: int | None, t: int | None, kw: dict[str, Any]) -> Schedule:
    kw = dict(kw)
    kw.setdefault("warmup", w or 0)
    if "stable" not in kw and "total" not in kw:
        kw["total"] = _need(name, "num_training_steps", t)
    return wsd(kw.pop("peak_value", 1.0), **kw)


def _positive_total(t: int | None) -> int:
    if t is None or t <= 0:
        raise ValueError(f"num_training_steps must exceed num_warmup_steps, got {t} steps after the warm-up")
    return t


NAMES: dict[str, Callable[..., Schedule]] = {
    # Hugging Face transformers.SchedulerType
    "linear": _linear,
    "cosine": _cosine,
    "cosine_with_restarts": _cosine_restarts,
    "polynomial": _polynomial,
    "constant": _constant,
    "constant_with_warmup": _constant_warmup,
    "inverse_sqrt": _inverse_sqrt,
    "reduce_lr_on_plateau": _plateau,
    "cosine_with_min_lr": _cosine_min_lr,
    "cosine_warmup_with_min_lr": _cosine_warmup_min_lr,
    "warmup_stable_decay": _wsd_hf,
    # fastlr
    "wsd": _wsd_make,
    "warmup_cosine": _own(lambda t, kw: cosine(1.0, _positive_total(t), **kw), True),
    "onecycle": _own(lambda t, kw: onecycle(1.0, _positive_total(t), **kw), True),
    "warm_restarts": _own(lambda t, kw: warm_restarts(1.0, **kw), False),
    "tanh": _own(lambda t, kw: tanh(1.0, _positive_total(t), **kw), True),
    "cyclic": _own(lambda t, kw: cyclic(kw.pop("base_value", 0.0), kw.pop("max_value", 1.0), **kw), False),
    "exponential": _own(lambda t, kw: exponential(1.0, **kw), False),
    "step": _own(lambda t, kw: step(1.0, **kw), False),
    "multistep": _own(lambda t, kw: multistep(1.0, **kw), False),
}

#: Names whose warm-up argument is optional (Hugging Face raises without it for the others).
_WARMUP_OPTIONAL = {"constant", "reduce_lr_on_plateau", "wsd", "warmup_cosine", "onecycle", "warm_restarts",
                    "tanh", "cyclic", "exponential", "step", "multistep"}


def from_name(name: str, num_warmup_steps: int | None = None, num_training_steps: int | None = None, **kwargs: Any) -> Schedule:
    """See :func:`fastlr.schedules.from_name`."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.lower()
    make = NAMES.get(key)
    if key == "greedy":
        raise ValueError("'greedy' is transformers' GreedyLR, a metric-driven class of its own that fastlr does not "
                         "provide: use transformers.get_scheduler('greedy', ...)")
    if make is None:
        raise ValueError(f"{name!r} is not a valid schedule name; choose one of {sorted(NAMES)}")
    if key not in _WARMUP_OPTIONAL:
        _need(name, "num_warmup_steps", num_warmup_steps)
    w = None if num_warmup_steps is None else _count("num_warmup_steps", num_warmup_steps)
    if num_training_steps is not None:
        _count("num_training_steps", num_training_steps)
    return make(key, w, num_training_steps, dict(kwargs))

