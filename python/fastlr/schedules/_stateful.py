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

    def _observe_node(self, metric: float, step: Number | None) -> None:  # noqa: ARG002 - Schedule.observe's walk
        self.observe(metric)

    # -- schedule ------------------------------------------------------------------------------------

    def _emit(self, b: _Builder) -> int:
        i = b.add("plateau", [self.value])
        b.stateful.setdefault(id(self), (self, []))[1].append((i, 1.0))
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


# ------------------------------------------------------------------------------------------------
# switch: a phase change triggered by a metric (or a step budget)

_SWITCH_MODES = ("below", "above")
_NEVER = 2.0**54  # a join boundary past every valid step (steps are <= 2**53)


class Switch(Schedule):
    """A metric-triggered phase change (stateful): ``first`` until a metric crosses a threshold,
    then ``then``. Build it with :func:`switch`.

    Its state is the step ``switched_at`` from which ``then`` runs (None until a crossing was
    observed). Like :class:`Plateau`, the same object may appear several times in a tree and its
    copies share the state; ``to_dict()`` records it, so a resumed run switches at the same step.
    """

    kind = "switch"
    _fields = ("first", "then", "threshold", "mode", "max_steps", "shift")
    _defaults = {"mode": "below", "max_steps": None, "shift": False}

    switched_at: int | None

    def __init__(
        self,
        first: Schedule,
        then: Schedule,
        threshold: float,
        mode: str = "below",
        max_steps: int | None = None,
        shift: bool = False,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        from ._base import _flag, _schedule

        self._set(
            first=_schedule("first", first),
            then=_schedule("then", then),
            threshold=_real("threshold", threshold),
            mode=_choice("mode", mode, _SWITCH_MODES),
            max_steps=None if max_steps is None else _int("max_steps", max_steps, 0),
            shift=_flag("shift", shift),
            switched_at=None,
        )
        if state is not None:
            self.load_state(state)
        self._compile()

    # -- state ---------------------------------------------------------------------------------------

    @property
    def boundary(self) -> int | None:
        """The step ``k`` from which ``then`` runs: the crossing's step + 1 or ``max_steps``,
        whichever is earlier; None while neither is known."""
        ks = [k for k in (self.switched_at, self.max_steps) if k is not None]
        return min(ks) if ks else None

    @property
    def value(self) -> float:
        # The program's join boundary (what _sync writes): k, or a step past every valid one.
        k = self.boundary
        return _NEVER if k is None else float(k)

    def state(self) -> dict[str, Any]:
        """The mutable state, JSON-safe."""
        return {"switched_at": self.switched_at}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state` dict."""
        if not isinstance(state, Mapping):
            raise TypeError(f"switch state must be a dict, got {type(state).__name__}")
        unknown = set(state) - {"switched_at"}
        if unknown:
            raise ValueError(f"unknown switch state keys {sorted(unknown)}")
        k = state.get("switched_at")
        self._set(switched_at=None if k is None else _int("state['switched_at']", k, 1))

    def reset(self) -> None:
        """Back to the initial state (not switched)."""
        self._set(switched_at=None)

    def _crosses(self, metric: float) -> bool:
        return metric < self.threshold if self.mode == "below" else metric > self.threshold

    def _observe_node(self, metric: float, step: Number | None) -> None:
        # A metric measured at this node's local `step` (Schedule.observe walks the tree: the
        # switch itself, and whichever side of it runs at that step): a crossing switches to
        # `then` from step + 1 on; after the switch, or from max_steps on, nothing changes.
        if hasattr(metric, "item") and callable(metric.item):
            metric = metric.item()
        if isinstance(metric, bool) or not isinstance(metric, numbers.Real):
            raise TypeError(f"metric must be a real number, got {type(metric).__name__} {metric!r}")
        if step is None:
            raise TypeError("switch.observe needs the step the metric was measured at: observe(metric, step)")
        if isinstance(step, bool) or not isinstance(step, numbers.Real) or not (0 <= step <= 2**53):
            raise ValueError(f"step must be a number in [0, 2**53], got {step!r}")
        if self.switched_at is not None:
            return
        k = math.floor(step) + 1
        if self.max_steps is not None and k > self.max_steps:
            return
        if self._crosses(float(metric)):
            self._set(switched_at=int(k))

    # -- schedule ------------------------------------------------------------------------------------

    def _emit(self, b: _Builder) -> int:
        c1 = self.first._emit(b)
        c2 = self.then._emit(b)
        if not self.shift:  # `then` reads the switch's own step: offset back by the boundary
            c2 = b.add("offset", [-self.value], [c2])
            b.stateful.setdefault(id(self), (self, []))[1].append((c2, -1.0))
        j = b.add("join", [self.value], [c1, c2])
        b.stateful.setdefault(id(self), (self, []))[1].append((j, 1.0))
        return j

    def _children(self) -> tuple[Schedule, ...]:
        return (self.first, self.then)

    def _local(self, t: float) -> list[tuple[Schedule, float]]:
        k = self.boundary
        if k is None or t < k:
            return [(self.first, t)]
        return [(self.then, t - k if self.shift else t)]

    @property
    def horizon(self) -> Number | None:
        k = self.boundary
        h = self.then.horizon
        if k is None or h is None:
            return None
        return k + h if self.shift else max(k, h)

    def _boundaries(self) -> list[float]:
        k = self.boundary
        return [] if k is None else [float(k)]

    def _params(self) -> dict[str, Any]:
        return {**super()._params(), "state": self.state()}

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Switch) and self.to_dict() == other.to_dict())

    __hash__ = None  # type: ignore[assignment]


def switch(
    first: Schedule,
    then: Schedule,
    *,
    threshold: float,
    mode: str = "below",
    max_steps: int | None = None,
    shift: bool = False,
) -> Switch:
    """A phase change triggered by a metric. **Stateful**, like :func:`plateau`.

    The value is ``first(t)`` until a metric passed to :meth:`Schedule.observe` ``(metric, step)``
    crosses ``threshold`` (``mode="below"``: ``metric < threshold``; ``"above"``:
    ``metric > threshold``), or until step ``max_steps``, whichever comes first. A crossing observed
    at step ``s`` switches from step ``k = s + 1`` on (steps up to ``s`` still read ``first``);
    ``max_steps`` switches at ``k = max_steps``. From ``k`` on the value is ``then(t)``, or
    ``then(t - k)`` with ``shift=True``. Inside a :func:`join` or :func:`warmup` it sees its own
    local steps, and only an active switch sees a metric.

    The ResNet-110 recipe (He et al. 2016, CIFAR-10): 0.01 until the training error is below 80%,
    then 0.1 with the usual step decays:

    >>> s = switch(constant(0.01), multistep(0.1, [32000, 48000]), threshold=0.8)
    >>> s.observe(0.85, step=399); s(400)
    0.01
    >>> s.observe(0.79, step=400); s(400), s(401), s(32000)
    (0.01, 0.1, 0.010000000000000002)
    """
    return Switch(first, then, threshold, mode, max_steps, shift)
