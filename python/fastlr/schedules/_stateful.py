"""Metric-driven nodes: :func:`plateau` (ReduceLROnPlateau's state machine, on the host)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from ._base import (
    Number,
    Schedule,
    _Builder,
    _choice,
    _int,
    _real,
)

_PLATEAU_MODES = ("min", "max")


class Plateau(Schedule):
    """A metric-driven schedule node with torch ``ReduceLROnPlateau``'s state machine (stateful).

    Build it with :func:`plateau`. Its value starts at ``init_value``; each :meth:`observe` of a
    metric updates ``best``, ``num_bad_epochs`` and ``cooldown_counter`` exactly as
    ``ReduceLROnPlateau.step`` does, and when the patience runs out the value becomes
    ``max(value * factor, min_lr)`` (skipped when that changes it by ``eps`` or less).

    It is the one stateful node: the same plateau object may appear several times in a tree (for
    example in a plateau phase and as a factor of a following decay) and all its copies share its
    state. ``to_dict()`` records the state, so ``from_dict`` resumes it.
    """

    kind = "plateau"
    _fields = (
        "init_value",
        "mode",
        "factor",
        "patience",
        "threshold",
        "threshold_mode",
        "cooldown",
        "min_lr",
        "eps",
    )
    _defaults = {
        "init_value": 1.0,
        "mode": "min",
        "factor": 0.1,
        "patience": 10,
        "threshold": 1e-4,
        "threshold_mode": "rel",
        "cooldown": 0,
        "min_lr": 0.0,
        "eps": 1e-8,
    }

    value: float
    best: float
    num_bad_epochs: int
    cooldown_counter: int
    last_epoch: int

    def __init__(
        self,
        init_value: float = 1.0,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        f = _real("factor", factor)
        if f >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        e = _real("eps", eps)
        if e < 0:
            raise ValueError(f"eps must be >= 0, got {e!r}")
        th = _real("threshold", threshold)
        self._set(
            init_value=_real("init_value", init_value),
            mode=_choice("mode", mode, _PLATEAU_MODES),
            factor=f,
            patience=_int("patience", patience, 0),
            threshold=th,
            threshold_mode=_choice("threshold_mode", threshold_mode, ("rel", "abs")),
            cooldown=_int("cooldown", cooldown, 0),
            min_lr=_real("min_lr", min_lr),
            eps=e,
        )
        self.reset()
        if state is not None:
            self.load_state(state)
        self._compile()

    # -- state ---------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the initial state (value ``init_value``, no metric seen)."""
        self._set(
            value=self.init_value,
            best=math.inf if self.mode == "min" else -math.inf,
            num_bad_epochs=0,
            cooldown_counter=0,
            last_epoch=0,
        )

    def state(self) -> dict[str, Any]:
        """The mutable state, JSON-safe (``best`` is None while no metric has been seen)."""
        return {
            "value": self.value,
            "best": None if math.isinf(self.best) else self.best,
            "num_bad_epochs": self.num_bad_epochs,
            "cooldown_counter": self.cooldown_counter,
            "last_epoch": self.last_epoch,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state` dict."""
        if not isinstance(state, Mapping):
            raise TypeError(f"plateau state must be a dict, got {type(state).__name__}")
        unknown = set(state) - {"value", "best", "num_bad_epochs", "cooldown_counter", "last_epoch"}
        if unknown:
            raise ValueError(f"unknown plateau state keys {sorted(unknown)}")
        best = state.get("best")
        self._set(
            value=_real("state['value']", state.get("value", self.init_value)),
            best=(math.inf if self.mode == "min" else -math.inf) if best is None else float(best),
            num_bad_epochs=_int("state['num_bad_epochs']", state.get("num_bad_epochs", 0), 0),
            cooldown_counter=_int("state['cooldown_counter']", state.get("cooldown_counter", 0), 0),
            last_epoch=_int("state['last_epoch']", state.get("last_epoch", 0), 0),
        )

    def _is_better(self, a: float, best: float) -> bool:
        # ReduceLROnPlateau._is_better, strict comparisons, same expressions.
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def observe(self, metric: float, step: Number | None = None) -> None:  # noqa: ARG002 - same signature as Schedule
        """One ``ReduceLROnPlateau.step(metric)``: update the state, reduce the value if due."""
        if hasattr(metric, "item") and callable(metric.item):
            metric = metric.item()
        if isinstance(metric, bool) or not isinstance(metric, numbers.Real):
            raise TypeError(f"metric must be a real number, got {type(metric).__name__} {metric!r}")
        current = float(metric)
        best, bad, cool, value = self.best, self.num_bad_epochs, self.cooldown_counter, self.value
        if self._is_better(current, best):
            best, bad = current, 0
        else:
            bad += 1
        if cool > 0:
            cool -= 1
            bad = 0
        if bad > self.patience:
            new = max(value * self.factor, self.min_lr)
            if value - new > self.eps:
                value = new
            cool = self.cooldown
            bad = 0
        self._set(best=best, num_bad_epochs=bad, cooldown_counter=cool, value=value, last_epoch=self.last_epoch + 1)

    # -- schedule ------------------------------------------------------------------------------------

    def _emit(self, b: _Builder) -> int:
        i = b.add("plateau", [self.value])
        b.plateaus.setdefault(id(self), (self, []))[1].append(i)
        return i

    def _params(self) -> dict[str, Any]:
        return {**super()._params(), "state": self.state()}

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Plateau) and self.to_dict() == other.to_dict())

    __hash__ = None  # type: ignore[assignment]



def plateau(
    init_value: float = 1.0,
    *,
    mode: str = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_lr: float = 0.0,
    eps: float = 1e-8,
) -> Plateau:
    """A metric-driven node with ``ReduceLROnPlateau``'s semantics. **Stateful**: its value is
    ``init_value`` reduced by ``factor`` (not below ``min_lr``) whenever the metrics passed to
    :meth:`Schedule.observe` have not improved (by ``threshold``, ``"rel"`` or ``"abs"``, in
    ``mode`` ``"min"`` or ``"max"``) for more than ``patience`` observations, with ``cooldown``
    observations ignored after each reduction and reductions of ``eps`` or less skipped.

    Unlike torch's ``ReduceLROnPlateau``, it composes: a warm-up, then a plateau phase, then a
    decay is ``join([linear(0, 1, 500), p, p * cosine(1, 1000)], [500, 5000])``. Only plateaus
    active at the step passed to ``observe(metric, step)`` see the metric.

    >>> p = plateau(1.0, patience=1, factor=0.5)
    >>> for m in [3.0, 2.0, 2.0, 2.0]:
    ...     p.observe(m)
    >>> p(0)
    0.5
    """
    return Plateau(init_value, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps)
