"""Schedule-first API: learning-rate schedules as values, evaluated in C++, no torch needed.

A schedule is a pure function of the step (as in optax): ``s(t)`` is its value at step ``t``, and
``s.table(n)`` / ``s.at(steps)`` compute many values at once in C++ (the GIL released), returned as
numpy arrays. Composites (:func:`join`, :func:`warmup`, products, scaling, offsets) are trees of
nodes that compile to one flat program, which the same closed-form code evaluates on the host and,
later, in a CUDA kernel.

>>> from fastlr import schedules as S
>>> s = S.warmup(S.cosine(1.0, steps=900), steps=100)
>>> s(0), s(50), s(100), s(1000)
(0.0, 0.5, 1.0, 0.0)
>>> len(s)
1000
>>> S.from_dict(s.to_dict()) == s
True

Steps are floats or ints in ``[0, 2**53]``; fractional steps are allowed (fractional epochs).
Every schedule supports ``to_dict()`` / :func:`from_dict` (JSON-safe, exact), ``horizon`` /
``len()`` (the step from which the value no longer changes, where there is one) and a ``repr``
that reads as the call that builds it.

One node is stateful: :func:`plateau`, whose value is driven by metrics (ReduceLROnPlateau's
state machine, on the host). Everything else is a pure function of the step.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, ClassVar, Union

import numpy as np

from . import _core

__all__ = [
    "Schedule",
    "constant",
    "linear",
    "cosine",
    "polynomial",
    "exponential",
    "step",
    "multistep",
    "piecewise_constant",
    "piecewise_linear",
    "cyclic",
    "onecycle",
    "warm_restarts",
    "inverse_sqrt",
    "wsd",
    "noise",
    "plateau",
    "Plateau",
    "join",
    "warmup",
    "product",
    "scale",
    "offset",
    "transformers",
    "from_dict",
    "from_name",
    "names",
]

Number = Union[int, float]
StepsLike = Union[Number, Sequence[Number], np.ndarray]

# Node kinds of the C++ program format (cpp/include/fastlr/program.hpp, enum `op`).
_OP = {
    "constant": 1,
    "linear": 2,
    "cosine": 3,
    "polynomial": 4,
    "exponential": 5,
    "step": 6,
    "piecewise_constant": 7,
    "piecewise_linear": 8,
    "cyclic": 9,
    "onecycle": 10,
    "warm_restarts": 11,
    "inverse_sqrt": 12,
    "wsd": 13,
    "plateau": 14,
    "noise": 15,
    "join": 16,
    "product": 17,
    "scale": 18,
    "offset": 19,
    "transformers": 20,
}

MAX_NODES: int = _core.SCHEDULE_MAX_NODES
"""The most nodes one schedule tree may compile to."""


# ------------------------------------------------------------------------------------------------
# Argument checking: TypeError for a wrong type, ValueError for a bad value, never a silent clamp.


def _real(name: str, x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__} {x!r}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v!r}")
    return v


def _steps(name: str, x: Any, *, positive: bool = False, allow_negative: bool = False) -> Number:
    """A step count or position: an int stays an int, a float must be finite."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be an int or a float number of steps, got {type(x).__name__} {x!r}")
    v: Number = int(x) if isinstance(x, numbers.Integral) else float(x)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v!r}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {v!r}")
    if not allow_negative and v < 0:
        raise ValueError(f"{name} must be >= 0, got {v!r}")
    if abs(v) > 2**53:
        raise ValueError(f"{name} must be at most 2**53 in magnitude, got {v!r}")
    return v


def _int(name: str, x: Any, minimum: int) -> int:
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(x).__name__} {x!r}")
    v = int(x)
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def _flag(name: str, x: Any) -> bool:
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(x).__name__} {x!r}")
    return bool(x)


def _choice(name: str, x: Any, options: Sequence[str]) -> str:
    if not isinstance(x, str):
        raise TypeError(f"{name} must be a str, one of {list(options)}, got {type(x).__name__} {x!r}")
    if x not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {x!r}")
    return x


def _schedule(name: str, x: Any) -> Schedule:
    if not isinstance(x, Schedule):
        raise TypeError(f"{name} must be a fastlr schedule, got {type(x).__name__} {x!r}")
    return x


def _schedules(name: str, xs: Any, minimum: int = 1) -> tuple[Schedule, ...]:
    if isinstance(xs, (Schedule, str, bytes)) or not isinstance(xs, Iterable):
        raise TypeError(f"{name} must be a sequence of schedules, got {type(xs).__name__}")
    out = tuple(_schedule(f"{name}[{i}]", s) for i, s in enumerate(xs))
    if len(out) < minimum:
        raise ValueError(f"{name} needs at least {minimum} schedule(s), got {len(out)}")
    return out


def _reals(name: str, xs: Any) -> tuple[float, ...]:
    if isinstance(xs, (str, bytes)) or not isinstance(xs, Iterable):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(xs).__name__}")
    return tuple(_real(f"{name}[{i}]", x) for i, x in enumerate(xs))


def _step_list(name: str, xs: Any, *, strict: bool = False) -> tuple[Number, ...]:
    if isinstance(xs, (str, bytes)) or not isinstance(xs, Iterable):
        raise TypeError(f"{name} must be a sequence of steps, got {type(xs).__name__}")
    out = tuple(_steps(f"{name}[{i}]", x) for i, x in enumerate(xs))
    for a, b in zip(out, out[1:]):
        if b < a or (strict and b == a):
            raise ValueError(f"{name} must be {'increasing' if strict else 'non-decreasing'}, got {list(out)}")
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, Schedule):
        return repr(v)
    if isinstance(v, tuple):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return repr(v)


def _max_horizon(hs: Iterable[Number | None]) -> Number | None:
    out: Number = 0
    for h in hs:
        if h is None:
            return None
        out = max(out, h)
    return out


# ------------------------------------------------------------------------------------------------
# Compilation: a schedule tree becomes a post-order list of (kind, params, children).


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[tuple[int, list[float], list[int]]] = []
        self.plateaus: dict[int, tuple[Plateau, list[int]]] = {}

    def add(self, kind: str, params: Sequence[float], children: Sequence[int] = ()) -> int:
        self.nodes.append((_OP[kind], [float(p) for p in params], list(children)))
        if len(self.nodes) > MAX_NODES:
            raise ValueError(f"a schedule may compile to at most {MAX_NODES} nodes; this one is larger")
        return len(self.nodes) - 1


class Schedule:
    """Base class of every schedule: a pure function of the step, compiled to a C++ program.

    Build schedules with the functions of :mod:`fastlr.schedules` (:func:`cosine`, :func:`join`,
    ...). Schedules are immutable values (only :class:`Plateau` nodes carry state), compare equal
    when their :meth:`to_dict` is equal, and combine with ``*`` (a product with another schedule,
    or scaling by a number) and ``/`` (scaling by ``1 / x``).
    """

    kind: ClassVar[str] = ""
    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    _program: Any
    _slots: list[tuple[Plateau, list[int], float]]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"schedules are immutable: cannot set {name!r}")

    def _set(self, **kw: Any) -> None:
        for k, v in kw.items():
            object.__setattr__(self, k, v)

    def _compile(self) -> None:
        """Build (and so validate) this schedule's program. Called at the end of every constructor."""
        b = _Builder()
        self._emit(b)
        program = _core.Program(b.nodes)
        slots = [(pl, idx, math.nan) for pl, idx in b.plateaus.values()]
        object.__setattr__(self, "_program", program)
        object.__setattr__(self, "_slots", slots)

    # Subclasses implement these.
    def _emit(self, b: _Builder) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def horizon(self) -> Number | None:
        """The step from which the value no longer changes, or None where it never settles
        (periodic, exponential, noisy and metric-driven schedules)."""
        return None

    def _boundaries(self) -> list[float]:
        """Phase boundaries in this schedule's local steps (for plots)."""
        return []

    def _children(self) -> tuple[Schedule, ...]:
        return ()

    # -- evaluation --------------------------------------------------------------------------------

    def _sync(self) -> Any:
        """The program, with every plateau node's current value written into it."""
        slots = self._slots
        if slots:
            for i, (pl, idx, seen) in enumerate(slots):
                v = pl.value
                if v != seen:
                    for j in idx:
                        self._program.set_plateau(j, v)
                    slots[i] = (pl, idx, v)
        return self._program

    def __call__(self, t: Number) -> float:
        """The value at step ``t`` (an int or float in ``[0, 2**53]``)."""
        if isinstance(t, bool) or not isinstance(t, numbers.Real):
            raise TypeError(f"step must be a real number, got {type(t).__name__} {t!r}")
        return self._sync()(float(t))

    def at(self, steps: StepsLike) -> np.ndarray:
        """The values at an array of steps, as a float64 array of the same shape (computed in C++
        with the GIL released)."""
        arr = np.asarray(steps)
        if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise TypeError(f"steps must be an array of real numbers, got dtype {arr.dtype}")
        return self._sync().at(np.ascontiguousarray(arr, dtype=np.float64))

    def table(self, n: int | None = None, start: int = 0) -> np.ndarray:
        """The values at steps ``start, start + 1, ..., start + n - 1`` (computed in C++ with the GIL
        released). ``n`` defaults to ``horizon + 1`` where the schedule has a horizon."""
        if n is None:
            h = self.horizon
            if h is None:
                raise ValueError(f"{self.kind} has no horizon: pass the number of steps, table(n)")
            n = int(math.ceil(h)) + 1
        n = _int("n", n, 0)
        start = _int("start", start, 0)
        return self._sync().table(n, float(start))

    def __len__(self) -> int:
        h = self.horizon
        if h is None:
            raise TypeError(f"{self.kind} schedule has no finite length (horizon is None)")
        return int(math.ceil(h))

    def phase_boundaries(self) -> list[float]:
        """Steps at which one phase of the schedule hands over to the next (warm-up end, join
        boundaries, WSD phases, ...), sorted and without duplicates."""
        return sorted(set(self._boundaries()))

    # -- plateau (metric-driven) nodes ---------------------------------------------------------------

    @property
    def plateaus(self) -> tuple[Plateau, ...]:
        """The distinct :class:`Plateau` nodes in this schedule, in tree order."""
        return tuple(pl for pl, _, _ in self._slots)

    def observe(self, metric: float, step: Number | None = None) -> None:
        """Feed a metric to the plateau nodes of this schedule (see :func:`plateau`).

        With ``step``, only the plateaus that are active at that step (the phase of a
        :func:`join` that contains them runs then) see the metric; without it, all of them do.
        """
        if not self._slots:
            return
        if step is None:
            for pl, _, _ in self._slots:
                pl.observe(metric)
            return
        active = self._program.active(float(_steps("step", step)))
        for pl, idx, _ in self._slots:
            if any(active[j] for j in idx):
                pl.observe(metric)

    # -- serialisation -------------------------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self._fields:
            v = getattr(self, f)
            if isinstance(v, Schedule):
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = [x.to_dict() if isinstance(x, Schedule) else x for x in v]
            out[f] = v
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (str keys; str, bool, int, float, None, lists and dicts) that
        :func:`from_dict` turns back into an equal schedule with bitwise-equal values."""
        return {"kind": self.kind, **self._params()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Schedule:
        """The schedule a :meth:`to_dict` dict describes (see :func:`from_dict`)."""
        return from_dict(d)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # equal by value, and plateau state can change

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle and copy by value (the compiled program is rebuilt).
        return (from_dict, (self.to_dict(),))

    def __repr__(self) -> str:
        parts = []
        for i, f in enumerate(self._fields):
            v = getattr(self, f)
            if f in self._defaults and self._defaults[f] == v and type(self._defaults[f]) is type(v):
                continue
            parts.append(_fmt(v) if i == 0 and isinstance(v, (Schedule, tuple)) else f"{f}={_fmt(v)}")
        return f"{self.kind}({', '.join(parts)})"

    # -- arithmetic ----------------------------------------------------------------------------------

    def __mul__(self, other: Any) -> Schedule:
        if isinstance(other, Schedule):
            return product(self, other)
        if isinstance(other, numbers.Real) and not isinstance(other, bool):
            return scale(self, other)
        return NotImplemented

    def __rmul__(self, other: Any) -> Schedule:
        if isinstance(other, numbers.Real) and not isinstance(other, bool):
            return scale(self, other)
        return NotImplemented

    def __truediv__(self, other: Any) -> Schedule:
        if isinstance(other, numbers.Real) and not isinstance(other, bool):
            d = _real("divisor", other)
            if d == 0:
                raise ZeroDivisionError("schedule divided by zero")
            return scale(self, 1.0 / d)
        return NotImplemented




# ------------------------------------------------------------------------------------------------
# Shapes


class _Constant(Schedule):
    kind = "constant"
    _fields = ("value",)

    def __init__(self, value: float = 1.0) -> None:
        self._set(value=_real("value", value))
        self._compile()

    def _emit(self, b: _Builder) -> int:
        return b.add("constant", [self.value])

    @property
    def horizon(self) -> Number:
        return 0

    def __repr__(self) -> str:
        return f"constant({self.value!r})"


def constant(value: float = 1.0) -> Schedule:
    """A constant schedule: ``v(t) = value``.

    >>> constant(0.5)(10**9)
    0.5
    """
    return _Constant(value)


class _Linear(Schedule):
    kind = "linear"
    _fields = ("init_value", "end_value", "steps", "extrapolate")
    _defaults = {"extrapolate": False}

    def __init__(self, init_value: float, end_value: float, steps: Number, extrapolate: bool = False) -> None:
        self._set(
            init_value=_real("init_value", init_value),
            end_value=_real("end_value", end_value),
            steps=_steps("steps", steps),
            extrapolate=_flag("extrapolate", extrapolate),
        )
        self._compile()

    def _emit(self, b: _Builder) -> int:
        return b.add("linear", [self.init_value, self.end_value, self.steps, float(self.extrapolate)])

    @property
    def horizon(self) -> Number | None:
        return None if self.extrapolate and self.steps > 0 else self.steps


def linear(init_value: float, end_value: float, steps: Number, *, extrapolate: bool = False) -> Schedule:
    """Linear interpolation from ``init_value`` to ``end_value`` over ``steps`` steps, then constant.

    ``v(t) = init + (end - init) * (t / steps)`` for ``t < steps``, else ``end`` (exactly). With
    ``steps == 0`` the value is ``end`` from step 0 (optax's ``linear_schedule``; torch's
    ``LinearLR`` as factors). With ``extrapolate=True`` the line goes on past ``steps`` (fvcore's
    ``LinearParamScheduler`` past its end; torch's ``OneCycleLR`` linear anneal at its last step), and
    the schedule has no horizon.

    >>> s = linear(0.0, 1.0, steps=100)
    >>> s(0), s(25), s(100), s(1000)
    (0.0, 0.25, 1.0, 1.0)
    >>> linear(1.0, 0.5, steps=10, extrapolate=True)(20)
    0.0
    """
    return _Linear(init_value, end_value, steps, extrapolate)


class _Cosine(Schedule):
    kind = "cosine"
    _fields = ("init_value", "steps", "end_value", "k_decay", "cycles", "extrapolate", "restarts")
    _defaults = {"end_value": 0.0, "k_decay": 1.0, "cycles": 0.5, "extrapolate": False, "restarts": False}

    def __init__(
        self,
        init_value: float,
        steps: Number,
        end_value: float = 0.0,
        k_decay: float = 1.0,
        cycles: float = 0.5,
        extrapolate: bool = False,
        restarts: bool = False,
    ) -> None:
        k = _real("k_decay", k_decay)
        if not k > 0:
            raise ValueError(f"k_decay must be > 0, got {k!r}")
        c = _real("cycles", cycles)
        if c < 0:
            raise ValueError(f"cycles must be >= 0, got {c!r}")
        self._set(
            init_value=_real("init_value", init_value),
            steps=_steps("steps", steps),
            end_value=_real("end_value", end_value),
            k_decay=k,
            cycles=c,
            extrapolate=_flag("extrapolate", extrapolate),
            restarts=_flag("restarts", restarts),
        )
        if self.extrapolate and self.restarts:
            raise ValueError("cosine: restarts and extrapolate cannot both be set")
        self._compile()

    def _emit(self, b: _Builder) -> int:
        mode = 2.0 if self.restarts else float(self.extrapolate)
        return b.add("cosine", [self.init_value, self.end_value, self.steps, self.k_decay, self.cycles, mode])

    @property
    def horizon(self) -> Number | None:
        return None if self.extrapolate else self.steps


def cosine(
    init_value: float,
    steps: Number,
    end_value: float = 0.0,
    *,
    k_decay: float = 1.0,
    cycles: float = 0.5,
    extrapolate: bool = False,
    restarts: bool = False,
) -> Schedule:
    """Cosine decay from ``init_value`` to ``end_value`` over ``steps`` steps, then constant.

    ``v(t) = end + (init - end) * (1 + cos(2 pi * cycles * (t / steps) ** k_decay)) / 2``, with
    ``t / steps`` clamped to 1 (so ``v = end`` exactly from ``steps`` on) unless ``extrapolate``.
    ``cycles = 0.5`` is the usual half-period decay (optax ``cosine_decay_schedule``, torch
    ``CosineAnnealingLR``); ``k_decay`` is timm's (``k_decay > 1`` holds the value higher for
    longer); ``cycles`` and ``extrapolate=True`` reproduce Hugging Face's ``num_cycles`` and its
    cosine continuing past the end of training. With ``restarts=True`` the cosine restarts
    ``cycles`` times within ``steps`` (Hugging Face's ``cosine_with_restarts``):
    ``v(t) = end + (init - end) * (1 + cos(pi * ((cycles * (t / steps) ** k_decay) mod 1))) / 2``
    for ``t < steps``, then ``end``.

    >>> s = cosine(1.0, steps=100, end_value=0.1)
    >>> s(0), s(50), s(100), s(200)
    (1.0, 0.55, 0.1, 0.1)
    >>> r = cosine(1.0, steps=100, cycles=2, restarts=True)
    >>> r(0), r(25), r(50), r(100)
    (1.0, 0.5, 1.0, 0.0)
    """
    return _Cosine(init_value, steps, end_value, k_decay, cycles, extrapolate, restarts)


class _Polynomial(Schedule):
    kind = "polynomial"
    _fields = ("init_value", "end_value", "steps", "power")
    _defaults = {"power": 1.0}

    def __init__(self, init_value: float, end_value: float, steps: Number, power: float = 1.0) -> None:
        p = _real("power", power)
        if p < 0:
            raise ValueError(f"power must be >= 0, got {p!r}")
        self._set(
            init_value=_real("init_value", init_value),
            end_value=_real("end_value", end_value),
            steps=_steps("steps", steps),
            power=p,
        )
        self._compile()

    def _emit(self, b: _Builder) -> int:
        return b.add("polynomial", [self.init_value, self.end_value, self.steps, self.power])

    @property
    def horizon(self) -> Number:
        return self.steps


def polynomial(init_value: float, end_value: float, steps: Number, power: float = 1.0) -> Schedule:
    """Polynomial decay: ``v(t) = end + (init - end) * (1 - t / steps) ** power`` for
    ``t < steps``, else ``end`` (optax ``polynomial_schedule``; torch ``PolynomialLR`` with
    ``end = 0``).

    >>> s = polynomial(1.0, 0.0, steps=10, power=2.0)
    >>> s(0), s(5), s(10)
    (1.0, 0.25, 0.0)
    """
    return _Polynomial(init_value, end_value, steps, power)


class _Exponential(Schedule):
    kind = "exponential"
    _fields = ("init_value", "decay_rate", "transition_steps", "staircase", "end_value")
    _defaults = {"transition_steps": 1, "staircase": False, "end_value": None}

    def __init__(
        self,
        init_value: float,
        decay_rate: float,
        transition_steps: Number = 1,
        staircase: bool = False,
        end_value: float | None = None,
    ) -> None:
        r = _real("decay_rate", decay_rate)
        if not r > 0:
            raise ValueError(f"decay_rate must be > 0, got {r!r}")
        self._set(
            init_value=_real("init_value", init_value),
            decay_rate=r,
            transition_steps=_steps("transition_steps", transition_steps, positive=True),
            staircase=_flag("staircase", staircase),
            end_value=None if end_value is None else _real("end_value", end_value),
        )
        self._compile()

    def _emit(self, b: _Builder) -> int:
        has_end = self.end_value is not None
        return b.add(
            "exponential",
            [
                self.init_value,
                self.decay_rate,
                self.transition_steps,
                float(self.staircase),
                self.end_value if has_end else 0.0,
                float(has_end),
            ],
        )


def exponential(
    init_value: float,
    decay_rate: float,
    transition_steps: Number = 1,
    *,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """Exponential decay: ``v(t) = init * decay_rate ** (t / transition_steps)``, with the exponent
    floored if ``staircase``, and bounded by ``end_value`` (below when ``decay_rate < 1``, above when
    it is > 1) if given (optax ``exponential_decay``; torch ``ExponentialLR`` is
    ``exponential(base_lr, gamma)``).

    >>> s = exponential(1.0, 0.5, transition_steps=10, staircase=True)
    >>> s(0), s(9), s(10), s(25)
    (1.0, 1.0, 0.5, 0.25)
    """
    return _Exponential(init_value, decay_rate, transition_steps, staircase, end_value)


class _Step(Schedule):
    kind = "step"
    _fields = ("init_value", "step_size", "gamma")
    _defaults = {"gamma": 0.1}

    def __init__(self, init_value: float, step_size: Number, gamma: float = 0.1) -> None:
        self._set(
            init_value=_real("init_value", init_value),
            step_size=_steps("step_size", step_size, positive=True),
            gamma=_real("gamma", gamma),
        )
        self._compile()

    def _emit(self, b: _Builder) -> int:
        return b.add("step", [self.init_value, self.gamma, self.step_size])

    def _boundaries(self) -> list[float]:
        return []


def step(init_value: float, step_size: Number, gamma: float = 0.1) -> Schedule:
    """Step decay: ``v(t) = init * gamma ** floor(t / step_size)`` (torch ``StepLR``).

    >>> s = step(1.0, step_size=30, gamma=0.5)
    >>> s(29), s(30), s(60)
    (1.0, 0.5, 0.25)
    """
    return _Step(init_value, step_size, gamma)


class _PiecewiseConstant(Schedule):
    kind = "piecewise_constant"
    _fields = ("boundaries", "values")

    def __init__(self, boundaries: Sequence[Number], values: Sequence[float]) -> None:
        bs = _step_list("boundaries", boundaries)
        vs = _reals("values", values)
        if len(vs) != len(bs) + 1:
            raise ValueError(
                f"piecewise_constant needs len(values) == len(boundaries) + 1, got {len(vs)} values "
                f"for {len(bs)} boundaries"
            )
        self._set(boundaries=bs, values=vs)
        self._compile()

    def _emit(self, b: _Builder) -> int:
        return b.add("piecewise_constant", [len(self.boundaries), *self.boundaries, *self.values])

    @property
    def horizon(self) -> Number:
        return self.boundaries[-1] if self.boundaries else 0

    def _boundaries(self) -> list[float]:
        return [float(x) for x in self.boundaries]


def piecewise_constant(boundaries: Sequence[Number], values: Sequence[float]) -> Schedule:
    """Piecewise constant: ``v(t) = values[j]`` where ``j`` is the number of ``boundaries <= t``
    (``len(values) == len(boundaries) + 1``; boundaries non-decreasing).

    >>> s = piecewise_constant([10, 20], [1.0, 0.5, 0.1])
    >>> s(9), s(10), s(20)
    (1.0, 0.5, 0.1)
    """
    return _PiecewiseConstant(boundaries, values)


class _MultiStep(Schedule):
    kind = "multistep"
    _fields = ("init_value", "milestones", "gamma")
    _defaults = {"gamma": 0.1}

    def __init__(self, init_value: float, milestones: Sequence[Number], gamma: float = 0.1) -> None:
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Iterable):
            raise TypeError(f"milestones must be a sequence of steps, got {type(milestones).__name__}")
        ms = tuple(sorted(_steps(f"milestones[{i}]", m) for i, m in enumerate(milestones)))
        self._set(init_value=_real("init_value", init_value), milestones=ms, gamma=_real("gamma", gamma))
        self._compile()

    def _emit(self, b: _Builder) -> int:
        # torch MultiStepLR's closed form: base * gamma ** bisect_right(milestones, t).
        try:
            vals = [self.init_value * self.gamma**j for j in range(len(self.milestones) + 1)]
        except OverflowError:
            vals = [math.inf]
        for v in vals:
            if not math.isfinite(v):
                raise ValueError(f"multistep: init_value * gamma ** k overflows for {len(self.milestones)} milestones")
        return b.add("piecewise_constant", [len(self.milestones), *self.milestones, *vals])

    @property
    def horizon(self) -> Number:
        return self.milestones[-1] if self.milestones else 0

    def _boundaries(self) -> list[float]:
        return [float(x) for x in self.milestones]


def multistep(init_value: float, milestones: Sequence[Number], gamma: float = 0.1) -> Schedule:
    """Multi-step decay: ``v(t) = init * gamma ** (number of milestones <= t)`` (torch
    ``MultiStepLR``; repeated milestones multiply again).

    >>> s = multistep(1.0, [30, 80], gamma=0.5)
    >>> s(29), s(30), s(80)
    (1.0, 0.5, 0.25)
    """
    return _MultiStep(init_value, milestones, gamma)


class _PiecewiseLinear(Schedule):
    kind = "piecewise_linear"
    _fields = ("steps", "values")

    def __init__(self, steps: Sequence[Number], values: Sequence[float]) -> None:
        ts = _step_list("steps", steps)
        vs = _reals("values", values)
        if len(ts) == 0 or len(ts) != len(vs):
            raise ValueError(
                f"piecewise_linear needs as many values as steps, at least one: got {len(ts)} steps and "
                f"{len(vs)} values"
            )
        self._set(steps=ts, values=vs)
        self._compile()

    def _emit(self, b: _Builder) -> int:
        return b.add("piecewise_linear", [len(self.steps), *self.steps, *self.values])

    @property
    def horizon(self) -> Number:
        return self.steps[-1]

    def _boundaries(self) -> list[float]:
        return [float(x) for x in self.steps[1:-1]]


def piecewise_linear(steps: Sequence[Number], values: Sequence[float]) -> Schedule:
    """Linear interpolation through the points ``(steps[i], values[i])``: ``values[0]`` before the
    first step, ``values[-1]`` from the last on (steps non-decreasing; a repeated step is a jump,
    and the later value holds from it).

    >>> s = piecewise_linear([0, 10, 30], [0.0, 1.0, 0.0])
    >>> s(5), s(10), s(20), s(99)
    (0.5, 1.0, 0.5, 0.0)
    """
    return _PiecewiseLinear(steps, values)


_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


class _Cyclic(Schedule):
    kind = "cyclic"
    _fields = ("base_value", "max_value", "step_size_up", "step_size_down", "mode", "gamma")
    _defaults = {"step_size_up": 2000, "step_size_down": None, "mode": "triangular", "gamma": 1.0}

    def __init__(
        self,
        base_value: float,
        max_value: float,
        step_size_up: Number = 2000,
        step_size_down: Number | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
    ) -> None:
        g = _real("gamma", gamma)
        if not g > 0:
            raise ValueError(f"gamma must be > 0, got {g!r}")
        self._set(
            base_value=_real("base_value", base_value),
            max_value=_real("max_value", max_value),
            step_size_up=_steps("step_size_up", step_size_up, positive=True),
            step_size_down=None if step_size_down is None else _steps("step_size_down", step_size_down),
            mode=_choice("mode", mode, _CYCLIC_MODES),
            gamma=g,
        )
        self._compile()

    def _emit(self, b: _Builder) -> int:
        up = float(self.step_size_up)
        down = up if self.step_size_down is None else float(self.step_size_down)
        return b.add(
            "cyclic",
            [self.base_value, self.max_value, up, down, float(_CYCLIC_MODES.index(self.mode)), self.gamma],
        )


def cyclic(
    base_value: float,
    max_value: float,
    step_size_up: Number = 2000,
    step_size_down: Number | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
) -> Schedule:
    """Cyclical schedule (torch ``CyclicLR``, its formula and operation order):

    ``cycle = floor(1 + t / (up + down))``, ``x = 1 + t / (up + down) - cycle``,
    ``s = x / r`` if ``x <= r`` else ``(x - 1) / (r - 1)`` with ``r = up / (up + down)``,
    ``v = base + (max - base) * s * scale``, where ``scale`` is 1 (``"triangular"``),
    ``1 / 2 ** (cycle - 1)`` (``"triangular2"``) or ``gamma ** t`` (``"exp_range"``).

    >>> s = cyclic(0.0, 1.0, step_size_up=10)
    >>> s(0), s(5), s(10), s(15), s(20)
    (0.0, 0.5, 1.0, 0.5, 0.0)
    """
    return _Cyclic(base_value, max_value, step_size_up, step_size_down, mode, gamma)


class _OneCycle(Schedule):
    kind = "onecycle"
    _fields = (
        "max_value",
        "total_steps",
        "pct_start",
        "anneal_strategy",
        "div_factor",
        "final_div_factor",
        "three_phase",
    )
    _defaults = {
        "pct_start": 0.3,
        "anneal_strategy": "cos",
        "div_factor": 25.0,
        "final_div_factor": 1e4,
        "three_phase": False,
    }

    def __init__(
        self,
        max_value: float,
        total_steps: int,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ) -> None:
        p = _real("pct_start", pct_start)
        if not 0 <= p <= 1:
            raise ValueError(f"pct_start must be in [0, 1], got {p!r}")
        d = _real("div_factor", div_factor)
        fd = _real("final_div_factor", final_div_factor)
        if d == 0 or fd == 0:
            raise ValueError("div_factor and final_div_factor must be non-zero")
        self._set(
            max_value=_real("max_value", max_value),
            total_steps=_int("total_steps", total_steps, 1),
            pct_start=p,
            anneal_strategy=_choice("anneal_strategy", anneal_strategy, ("cos", "linear")),
            div_factor=d,
            final_div_factor=fd,
            three_phase=_flag("three_phase", three_phase),
        )
        self._compile()

    def _emit(self, b: _Builder) -> int:
        return b.add(
            "onecycle",
            [
                self.max_value,
                self.total_steps,
                self.pct_start,
                self.div_factor,
                self.final_div_factor,
                float(self.three_phase),
                float(self.anneal_strategy == "linear"),
            ],
        )

    @property
    def horizon(self) -> Number:
        return self.total_steps - 1

    def _boundaries(self) -> list[float]:
        e1 = float(self.pct_start * self.total_steps) - 1
        out = [e1]
        if self.three_phase:
            out.append(float(2 * self.pct_start * self.total_steps) - 2)
        return [x for x in out if 0 < x < self.total_steps - 1]


def onecycle(
    max_value: float,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Schedule:
    """The 1cycle policy (torch ``OneCycleLR``'s phases and formulas): from
    ``initial = max / div_factor`` up to ``max`` until step ``pct_start * total - 1``, then down to
    ``min = initial / final_div_factor`` at step ``total - 1`` (with ``three_phase``: down to
    ``initial`` at ``2 * pct_start * total - 2`` first, then to ``min``). Each phase anneals by
    ``cos`` (``end + (start - end) / 2 * (1 + cos(pi f))``) or ``linear``. Unlike torch, which
    steps once past the end and then raises, the schedule holds ``min`` from ``total - 1`` on.

    >>> s = onecycle(1.0, total_steps=101, pct_start=0.5, div_factor=10.0)
    >>> round(s(0), 15), s(49.5), s(100), s(10**6)
    (0.1, 1.0, 1e-05, 1e-05)
    """
    return _OneCycle(max_value, total_steps, pct_start, anneal_strategy, div_factor, final_div_factor, three_phase)


class _WarmRestarts(Schedule):
    kind = "warm_restarts"
    _fields = ("init_value", "period", "min_value", "t_mult", "cycle_decay", "cycle_limit", "k_decay")
    _defaults = {"min_value": 0.0, "t_mult": 1.0, "cycle_decay": 1.0, "cycle_limit": None, "k_decay": 1.0}

    def __init__(
        self,
        init_value: float,
        period: Number,
        min_value: float = 0.0,
        t_mult: float = 1.0,
        cycle_decay: float = 1.0,
        cycle_limit: int | None = None,
        k_decay: float = 1.0,
    ) -> None:
        m = _real("t_mult", t_mult)
        if not m >= 1:
            raise ValueError(f"t_mult must be >= 1, got {m!r}")
        cd = _real("cycle_decay", cycle_decay)
        if not cd > 0:
            raise ValueError(f"cycle_decay must be > 0, got {cd!r}")
        k = _real("k_decay", k_decay)
        if not k > 0:
            raise ValueError(f"k_decay must be > 0, got {k!r}")
        self._set(
            init_value=_real("init_value", init_value),
            period=_steps("period", period, positive=True),
            min_value=_real("min_value", min_value),
            t_mult=m,
            cycle_decay=cd,
            # 0 is unlimited, as in timm (`cycle_limit == 0 or i < cycle_limit`)
            cycle_limit=None if cycle_limit is None else (_int("cycle_limit", cycle_limit, 0) or None),
            k_decay=k,
        )
        self._compile()

    def _emit(self, b: _Builder) -> int:
        limit = math.inf if self.cycle_limit is None else float(self.cycle_limit)
        return b.add(
            "warm_restarts",
            [self.init_value, self.min_value, self.period, self.t_mult, self.cycle_decay, limit, self.k_decay],
        )

    def _cycle_start(self, i: int) -> float:
        if self.t_mult == 1.0:
            return float(self.period) * i
        # As the engine computes it (shapes.hpp, warm_restarts_start): the geometric sum first, then
        # snapped to a whole step within a few ulps.
        s = float(self.period) * ((self.t_mult**i - 1.0) / (self.t_mult - 1.0))
        r = math.floor(s + 0.5)
        return float(r) if abs(s - r) <= 8.0 * 2.220446049250313e-16 * abs(r) else s

    @property
    def horizon(self) -> Number | None:
        if self.cycle_limit is None:
            return None
        return self._cycle_start(self.cycle_limit)

    def _boundaries(self) -> list[float]:
        n = self.cycle_limit if self.cycle_limit is not None else 0
        return [self._cycle_start(i) for i in range(1, min(n, 64) + 1)]


def warm_restarts(
    init_value: float,
    period: Number,
    min_value: float = 0.0,
    *,
    t_mult: float = 1.0,
    cycle_decay: float = 1.0,
    cycle_limit: int | None = None,
    k_decay: float = 1.0,
) -> Schedule:
    """Cosine annealing with warm restarts (SGDR; torch ``CosineAnnealingWarmRestarts`` and timm
    ``CosineLRScheduler``).

    Cycle ``i`` starts at ``S_i = period * (t_mult**i - 1) / (t_mult - 1)`` (``period * i`` when
    ``t_mult == 1``; ``t_mult`` may be any float >= 1) and lasts ``T_i = period * t_mult**i``; in it
    ``v = min + (init * cycle_decay**i - min) * (1 + cos(pi * ((t - S_i) / T_i) ** k_decay)) / 2``.
    After ``cycle_limit`` cycles (None or 0, as timm's ``cycle_limit=0``: unlimited) the value is
    ``min_value``.

    >>> s = warm_restarts(1.0, period=10, t_mult=2.0, cycle_decay=0.5)
    >>> s(0), s(5), s(10), s(20), s(30)
    (1.0, 0.5, 0.5, 0.25, 0.25)
    """
    return _WarmRestarts(init_value, period, min_value, t_mult, cycle_decay, cycle_limit, k_decay)


class _InverseSqrt(Schedule):
    kind = "inverse_sqrt"
    _fields = ("init_value", "timescale")
    _defaults = {"timescale": 10000}

    def __init__(self, init_value: float, timescale: Number = 10000) -> None:
        self._set(init_value=_real("init_value", init_value), timescale=_steps("timescale", timescale, positive=True))
        self._compile()

    def _emit(self, b: _Builder) -> int:
        return b.add("inverse_sqrt", [self.init_value, self.timescale])


def inverse_sqrt(init_value: float, timescale: Number = 10000) -> Schedule:
    """Inverse square-root decay: ``v(t) = init / sqrt((t + timescale) / timescale)`` (Hugging
    Face's ``inverse_sqrt`` after its warm-up, with ``t`` counted from the end of the warm-up).

    >>> s = inverse_sqrt(1.0, timescale=100)
    >>> s(0), s(300)
    (1.0, 0.5)
    """
    return _InverseSqrt(init_value, timescale)


# Hugging Face transformers' get_scheduler formulas, bitwise (shapes.hpp, shape::transformers).
_HF_VARIANTS = {
    "constant_with_warmup": 0,
    "linear": 1,
    "cosine": 2,
    "cosine_with_restarts": 3,
    "polynomial": 4,
    "inverse_sqrt": 5,
    "cosine_with_min_lr": 6,
    "cosine_warmup_with_min_lr": 7,
    "warmup_stable_decay": 8,
}
_HF_KINDS = ("linear", "cosine", "1-sqrt")


class _Transformers(Schedule):
    kind = "transformers"
    _fields = ("name", "num_warmup_steps", "num_training_steps", "args")

    def __init__(self, name: str, num_warmup_steps: int, num_training_steps: int, args: Sequence[float]) -> None:
        name = _choice("name", name, tuple(_HF_VARIANTS))
        w = _int("num_warmup_steps", num_warmup_steps, 0)
        if isinstance(num_training_steps, bool) or not isinstance(num_training_steps, numbers.Integral):
            raise TypeError(f"num_training_steps must be an int, got {type(num_training_steps).__name__}")
        a = tuple(_real("args", x) for x in args)
        if len(a) != 5:
            raise ValueError(f"args must be 5 numbers, got {len(a)}")
        self._set(name=name, num_warmup_steps=w, num_training_steps=int(num_training_steps), args=a)
        self._compile()

    def _emit(self, b: _Builder) -> int:
        return b.add("transformers", [_HF_VARIANTS[self.name], self.num_warmup_steps, self.num_training_steps, *self.args])

    @property
    def horizon(self) -> Number | None:
        w, t = self.num_warmup_steps, self.num_training_steps
        if self.name == "constant_with_warmup":
            return w
        if self.name in ("linear", "cosine_with_restarts"):
            return max(t, w)
        if self.name == "polynomial":
            return max(t + 1, w)
        if self.name == "warmup_stable_decay":
            return max(w + t + int(self.args[0]), w)
        return None  # cosine (with min lr) goes on oscillating past T; inverse_sqrt never settles

    def _boundaries(self) -> list[float]:
        w, t = self.num_warmup_steps, self.num_training_steps
        if self.name == "warmup_stable_decay":  # (t: the stable phase's length)
            points: tuple[float, ...] = (w, w + t, w + t + self.args[0])
        elif self.name in ("constant_with_warmup", "inverse_sqrt"):
            points = (w,)
        else:
            points = (w, t)
        return [float(x) for x in points if x > 0]

    def __repr__(self) -> str:
        return f"transformers({self.name!r}, {self.num_warmup_steps!r}, {self.num_training_steps!r}, args={self.args!r})"


def transformers(name: str, num_warmup_steps: int, num_training_steps: int = 0, args: Sequence[float] = (0, 0, 0, 0, 0)) -> Schedule:
    """Hugging Face transformers' ``get_scheduler`` multiplier for ``name``, bitwise: ``v(t)`` is
    the float transformers' ``lr_lambda(t)`` returns (its Python arithmetic, operation for
    operation), so ``base_lr * v(t)`` is the lr torch's ``LambdaLR`` sets with it.

    Build it by name with :func:`from_name` (``from_name("cosine", 100, 1000, num_cycles=0.5)``),
    which checks the arguments as transformers does; ``args`` are the formula's constants (see
    ``shape::transformers`` in ``cpp/include/fastlr/shapes.hpp``; this form is what :meth:`to_dict`
    stores). Names: ``constant_with_warmup``, ``linear``, ``cosine``, ``cosine_with_restarts``,
    ``polynomial``, ``inverse_sqrt``, ``cosine_with_min_lr``, ``cosine_warmup_with_min_lr``,
    ``warmup_stable_decay``.

    >>> s = from_name("linear", num_warmup_steps=2, num_training_steps=10)
    >>> [s(t) for t in (0, 1, 2, 6, 10, 12)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    """
    return _Transformers(name, num_warmup_steps, num_training_steps, args)


_WSD_WARMUP = ("linear", "cosine", "1-sqrt")
_WSD_DECAY = ("linear", "cosine", "1-sqrt", "exponential")
_WSD_ALIASES = {"minus_sqrt": "1-sqrt"}


class _WSD(Schedule):
    kind = "wsd"
    _fields = ("peak_value", "warmup", "stable", "decay", "init_value", "end_value", "warmup_shape", "decay_shape")
    _defaults = {
        "peak_value": 1.0,
        "warmup": 0,
        "decay": 0,
        "init_value": 0.0,
        "end_value": 0.0,
        "warmup_shape": "linear",
        "decay_shape": "linear",
    }

    def __init__(
        self,
        peak_value: float = 1.0,
        warmup: Number = 0,
        stable: Number | None = None,
        decay: Number = 0,
        total: Number | None = None,
        init_value: float = 0.0,
        end_value: float = 0.0,
        warmup_shape: str = "linear",
        decay_shape: str = "linear",
    ) -> None:
        w = _steps("warmup", warmup)
        d = _steps("decay", decay)
        if (stable is None) == (total is None):
            raise ValueError("wsd needs exactly one of stable= (steps at the peak) or total= (all steps)")
        if stable is not None:
            s = _steps("stable", stable)
        else:
            tot = _steps("total", total)
            s = tot - w - d
            if s < 0:
                raise ValueError(f"wsd: warmup + decay ({w} + {d}) exceed total ({tot})")
        ws = _WSD_ALIASES.get(warmup_shape, warmup_shape) if isinstance(warmup_shape, str) else warmup_shape
        ds = _WSD_ALIASES.get(decay_shape, decay_shape) if isinstance(decay_shape, str) else decay_shape
        self._set(
            peak_value=_real("peak_value", peak_value),
            warmup=w,
            stable=s,
            decay=d,
            init_value=_real("init_value", init_value),
            end_value=_real("end_value", end_value),
            warmup_shape=_choice("warmup_shape", ws, _WSD_WARMUP),
            decay_shape=_choice("decay_shape", ds, _WSD_DECAY),
        )
        self._compile()

    def _emit(self, b: _Builder) -> int:
        return b.add(
            "wsd",
            [
                self.init_value,
                self.peak_value,
                self.end_value,
                self.warmup,
                self.stable,
                self.decay,
                float(_WSD_WARMUP.index(self.warmup_shape)),
                float(_WSD_DECAY.index(self.decay_shape)),
            ],
        )

    @property
    def horizon(self) -> Number:
        return self.warmup + self.stable + self.decay

    def _boundaries(self) -> list[float]:
        return [float(self.warmup), float(self.warmup + self.stable)]


def wsd(
    peak_value: float = 1.0,
    *,
    warmup: Number = 0,
    stable: Number | None = None,
    decay: Number = 0,
    total: Number | None = None,
    init_value: float = 0.0,
    end_value: float = 0.0,
    warmup_shape: str = "linear",
    decay_shape: str = "linear",
) -> Schedule:
    """Warmup-stable-decay ("trapezoidal"; Hugging Face ``warmup_stable_decay``, Megatron ``WSD``).

    With ``W = warmup``, ``S = stable`` (or ``total - warmup - decay``) and ``D = decay``:

    * ``t < W``: ``init + (peak - init) * w(t / W)``, ``w(f)`` = ``f`` (``"linear"``),
      ``(1 - cos(pi f)) / 2`` (``"cosine"``) or ``1 - sqrt(1 - f)`` (``"1-sqrt"``);
    * ``t < W + S``: ``peak``;
    * ``t < W + S + D``: ``end + (peak - end) * c(f)``, ``f = (t - W - S) / D``, ``c(f)`` =
      ``1 - f`` (``"linear"``), ``(1 + cos(pi f)) / 2`` (``"cosine"``), ``1 - sqrt(f)``
      (``"1-sqrt"``, Megatron's ``minus_sqrt``) or ``2 * 0.5**f - 1`` (``"exponential"``, Megatron's);
    * then ``end``.

    >>> s = wsd(1.0, warmup=100, decay=200, total=1000)
    >>> s(50), s(100), s(800), s(900), s(1000)
    (0.5, 1.0, 1.0, 0.5, 0.0)
    """
    return _WSD(peak_value, warmup, stable, decay, total, init_value, end_value, warmup_shape, decay_shape)


# ------------------------------------------------------------------------------------------------
# Noise and plateau


class _Noise(Schedule):
    kind = "noise"
    _fields = ("schedule", "pct", "std", "seed", "noise_type", "start", "end")
    _defaults = {"pct": 0.67, "std": 1.0, "seed": 42, "noise_type": "normal", "start": 0, "end": None}

    def __init__(
        self,
        schedule: Schedule,
        pct: float = 0.67,
        std: float = 1.0,
        seed: int = 42,
        noise_type: str = "normal",
        start: Number = 0,
        end: Number | None = None,
    ) -> None:
        p = _real("pct", pct)
        sd = _real("std", std)
        if not p > 0:
            raise ValueError(f"pct must be > 0, got {p!r}")
        if not sd > 0:
            raise ValueError(f"std must be > 0, got {sd!r}")
        sd_seed = _int("seed", seed, 0)
        if sd_seed > 2**53:
            raise ValueError(f"seed must be at most 2**53, got {sd_seed}")
        st = _steps("start", start)
        en = None if end is None else _steps("end", end)
        if en is not None and en < st:
            raise ValueError(f"noise end ({en}) must be >= start ({st})")
        self._set(
            schedule=_schedule("schedule", schedule),
            pct=p,
            std=sd,
            seed=sd_seed,
            noise_type=_choice("noise_type", noise_type, ("normal", "uniform")),
            start=st,
            end=en,
        )
        self._compile()

    def _emit(self, b: _Builder) -> int:
        c = self.schedule._emit(b)
        end = math.inf if self.end is None else float(self.end)
        return b.add(
            "noise",
            [self.pct, self.std, self.seed, float(self.noise_type == "normal"), self.start, end],
            [c],
        )

    def _children(self) -> tuple[Schedule, ...]:
        return (self.schedule,)

    @property
    def horizon(self) -> Number | None:
        if self.end is None:
            return None
        return _max_horizon([self.schedule.horizon, self.end])

    def _boundaries(self) -> list[float]:
        return self.schedule._boundaries()


def noise(
    schedule: Schedule,
    *,
    pct: float = 0.67,
    std: float = 1.0,
    seed: int = 42,
    noise_type: str = "normal",
    start: Number = 0,
    end: Number | None = None,
) -> Schedule:
    """Multiplicative noise on a schedule, with timm's semantics: for ``start <= t < end``,
    ``v(t) = s(t) * (1 + n)``, where ``n = std * z`` for a standard normal ``z`` redrawn until
    ``|n| < pct`` (``noise_type="normal"``), or ``n = (2u - 1) * pct`` for a uniform ``u``.

    The draws are a pure function of ``(seed, floor(t))`` (a counter-based generator), so a resumed
    run, another rank or a table sees exactly the same noise at the same step. (timm draws from
    torch's generator, so its draws differ from these; ``std`` scales ``z`` as timm's ``noise_std``
    does in timm 1.0 and later, and its default of 1 matches timm's.)

    >>> s = noise(constant(1.0), pct=0.1, seed=0)
    >>> s(7) == s(7), abs(s(7) - 1.0) < 0.1
    (True, True)
    """
    return _Noise(schedule, pct, std, seed, noise_type, start, end)


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


# ------------------------------------------------------------------------------------------------
# Combinators


class _Join(Schedule):
    kind = "join"
    _fields = ("schedules", "boundaries")

    def __init__(self, schedules: Sequence[Schedule], boundaries: Sequence[Number]) -> None:
        ss = _schedules("schedules", schedules)
        bs = _step_list("boundaries", boundaries)
        if len(bs) != len(ss) - 1:
            raise ValueError(
                f"join needs len(boundaries) == len(schedules) - 1, got {len(bs)} boundaries for {len(ss)} schedules"
            )
        self._set(schedules=ss, boundaries=bs)
        self._compile()

    def _emit(self, b: _Builder) -> int:
        ch = [s._emit(b) for s in self.schedules]
        return b.add("join", list(self.boundaries), ch)

    def _children(self) -> tuple[Schedule, ...]:
        return self.schedules

    @property
    def horizon(self) -> Number | None:
        h = self.schedules[-1].horizon
        if h is None:
            return None
        start = self.boundaries[-1] if self.boundaries else 0
        return start + h

    def _boundaries(self) -> list[float]:
        out: list[float] = []
        starts = [0, *self.boundaries]
        ends = [*self.boundaries, math.inf]
        for s, a, e in zip(self.schedules, starts, ends):
            out += [a + x for x in s._boundaries() if a + x < e]
        return out + [float(x) for x in self.boundaries]

    def __repr__(self) -> str:
        return f"join({_fmt(self.schedules)}, boundaries={_fmt(self.boundaries)})"


def join(
    schedules: Sequence[Schedule],
    boundaries: Sequence[Number] | None = None,
    *,
    fractions: Sequence[float] | None = None,
    horizon: Number | None = None,
) -> Schedule:
    """Run schedules one after another (optax ``join_schedules``, fvcore
    ``CompositeParamScheduler``).

    With boundaries ``b_1 <= ... <= b_n`` for ``n + 1`` schedules, ``v(t) = s_k(t - b_k)`` for
    ``b_k <= t < b_{k+1}`` (``b_0 = 0``): each schedule starts at its own step 0. A zero-length
    phase (``b_k == b_{k+1}``) is skipped. Boundaries may instead be given as ``fractions`` of a
    ``horizon`` (each ``round(f * horizon)``).

    >>> s = join([linear(0.0, 1.0, 10), constant(1.0), linear(1.0, 0.0, 10)], [10, 20])
    >>> s(5), s(15), s(25), s(30)
    (0.5, 1.0, 0.5, 0.0)
    >>> join([constant(1.0), constant(0.1)], fractions=[0.75], horizon=100).boundaries
    (75,)
    """
    if fractions is not None:
        if boundaries is not None:
            raise ValueError("join takes boundaries or fractions (with horizon), not both")
        if horizon is None:
            raise ValueError("join with fractions needs the horizon they are fractions of")
        hz = _steps("horizon", horizon)
        fs = _reals("fractions", fractions)
        for f in fs:
            if not 0 <= f <= 1:
                raise ValueError(f"fractions must be in [0, 1], got {f!r}")
        boundaries = [int(round(f * hz)) for f in fs]
    elif boundaries is None:
        raise TypeError("join needs boundaries (or fractions and horizon)")
    elif horizon is not None:
        raise ValueError("horizon is only used with fractions")
    return _Join(schedules, boundaries)


_WARMUP_KINDS = ("linear", "constant", "exponential", "cosine")


class _Warmup(Schedule):
    kind = "warmup"
    _fields = ("schedule", "steps", "warmup_kind", "start_value", "peak_value")
    _defaults = {"warmup_kind": "linear", "start_value": 0.0}

    def __init__(
        self,
        schedule: Schedule,
        steps: Number,
        warmup_kind: str = "linear",
        start_value: float = 0.0,
        peak_value: float | None = None,
    ) -> None:
        s = _schedule("schedule", schedule)
        k = _choice("kind", warmup_kind, _WARMUP_KINDS)
        st = _real("start_value", start_value)
        pk = s(0) if peak_value is None else _real("peak_value", peak_value)
        if k == "exponential" and not (st > 0 and pk / st > 0):
            raise ValueError(
                f"an exponential warm-up needs start_value > 0 and a peak of the same sign, got {st!r} -> {pk!r}"
            )
        self._set(schedule=s, steps=_steps("steps", steps), warmup_kind=k, start_value=st, peak_value=pk)
        self._compile()

    def _ramp(self) -> tuple[str, list[float]]:
        w, st, pk = self.steps, self.start_value, self.peak_value
        if self.warmup_kind == "linear":
            return "linear", [st, pk, w, 0.0]
        if self.warmup_kind == "constant":
            return "constant", [st]
        if self.warmup_kind == "cosine":
            return "cosine", [st, pk, w, 1.0, 0.5, 0.0]
        # start * (peak / start) ** (t / steps)
        return "exponential", [st, pk / st, w if w > 0 else 1, 0.0, 0.0, 0.0]

    def _emit(self, b: _Builder) -> int:
        kind, params = self._ramp()
        r = b.add(kind, params)
        c = self.schedule._emit(b)
        return b.add("join", [self.steps], [r, c])

    def _children(self) -> tuple[Schedule, ...]:
        return (self.schedule,)

    @property
    def horizon(self) -> Number | None:
        h = self.schedule.horizon
        return None if h is None else self.steps + h

    def _boundaries(self) -> list[float]:
        return [float(self.steps)] + [self.steps + x for x in self.schedule._boundaries()]

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["kind"] = "warmup"
        return d

    def __repr__(self) -> str:
        parts = [repr(self.schedule), f"steps={self.steps!r}"]
        if self.warmup_kind != "linear":
            parts.append(f"kind={self.warmup_kind!r}")
        if self.start_value != 0.0:
            parts.append(f"start_value={self.start_value!r}")
        parts.append(f"peak_value={self.peak_value!r}")
        return f"warmup({', '.join(parts)})"


def _warmup_from_dict(**d: Any) -> Schedule:
    if "warmup_kind" in d:
        d["kind"] = d.pop("warmup_kind")
    return warmup(**d)


def warmup(
    schedule: Schedule,
    steps: Number,
    kind: str = "linear",
    start_value: float = 0.0,
    peak_value: float | None = None,
) -> Schedule:
    """Prefix a warm-up of ``steps`` steps to ``schedule``, which then starts at its own step 0.

    The warm-up goes from ``start_value`` to ``peak_value`` (default: ``schedule(0)``, taken when
    the warm-up is built): ``"linear"`` ``start + (peak - start) * t / steps``, ``"cosine"``
    (half-cosine ramp), ``"exponential"`` ``start * (peak / start) ** (t / steps)`` or
    ``"constant"`` (``start`` throughout, as torch ``ConstantLR``). Equal to
    ``join([ramp, schedule], [steps])``.

    The warm-up comes *before* the schedule, which keeps its own length: ``warmup(cosine(1.0,
    10_000), 500)`` lasts 10,500 steps. To fit both in a budget of ``T`` steps, give the body
    ``T - steps`` (``warmup(cosine(1.0, T - 500), 500)``), or use :func:`wsd` with ``total=T``.

    >>> s = warmup(constant(2.0), steps=4)
    >>> [s(t) for t in range(6)]
    [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    """
    return _Warmup(schedule, steps, kind, start_value, peak_value)


class _Product(Schedule):
    kind = "product"
    _fields = ("schedules",)

    def __init__(self, schedules: Sequence[Schedule]) -> None:
        self._set(schedules=_schedules("schedules", schedules))
        self._compile()

    def _emit(self, b: _Builder) -> int:
        ch = [s._emit(b) for s in self.schedules]
        return b.add("product", [], ch)

    def _children(self) -> tuple[Schedule, ...]:
        return self.schedules

    @property
    def horizon(self) -> Number | None:
        return _max_horizon(s.horizon for s in self.schedules)

    def _boundaries(self) -> list[float]:
        return [x for s in self.schedules for x in s._boundaries()]

    def __repr__(self) -> str:
        return "product(" + ", ".join(repr(s) for s in self.schedules) + ")"


def product(*schedules: Schedule) -> Schedule:
    """The pointwise product ``v(t) = s_1(t) * s_2(t) * ...`` (also ``s1 * s2``).

    >>> s = product(linear(0.0, 1.0, 10), constant(0.5))
    >>> s(5)
    0.25
    """
    flat: list[Schedule] = []
    for s in schedules:
        flat.extend(s.schedules if isinstance(s, _Product) else [s])  # type: ignore[attr-defined]
    return _Product(flat)


class _Scale(Schedule):
    kind = "scale"
    _fields = ("schedule", "factor")

    def __init__(self, schedule: Schedule, factor: float) -> None:
        self._set(schedule=_schedule("schedule", schedule), factor=_real("factor", factor))
        self._compile()

    def _emit(self, b: _Builder) -> int:
        return b.add("scale", [self.factor], [self.schedule._emit(b)])

    def _children(self) -> tuple[Schedule, ...]:
        return (self.schedule,)

    @property
    def horizon(self) -> Number | None:
        return self.schedule.horizon

    def _boundaries(self) -> list[float]:
        return self.schedule._boundaries()


def scale(schedule: Schedule, factor: float) -> Schedule:
    """Scale a schedule: ``v(t) = factor * s(t)`` (also ``factor * s``).

    >>> (3e-4 * linear(0.0, 1.0, 10))(5)
    0.00015
    """
    return _Scale(schedule, factor)


class _Offset(Schedule):
    kind = "offset"
    _fields = ("schedule", "steps")

    def __init__(self, schedule: Schedule, steps: Number) -> None:
        self._set(schedule=_schedule("schedule", schedule), steps=_steps("steps", steps, allow_negative=True))
        self._compile()

    def _emit(self, b: _Builder) -> int:
        return b.add("offset", [self.steps], [self.schedule._emit(b)])

    def _children(self) -> tuple[Schedule, ...]:
        return (self.schedule,)

    @property
    def horizon(self) -> Number | None:
        h = self.schedule.horizon
        return None if h is None else max(h + self.steps, 0)

    def _boundaries(self) -> list[float]:
        return [x + self.steps for x in self.schedule._boundaries() if x + self.steps > 0]


def offset(schedule: Schedule, steps: Number) -> Schedule:
    """Shift a schedule in time: ``v(t) = s(max(t - steps, 0))``. A positive ``steps`` delays it
    (holding ``s(0)`` until then); a negative one starts it ``-steps`` steps in.

    >>> s = offset(linear(0.0, 1.0, 10), 5)
    >>> s(0), s(10), offset(linear(0.0, 1.0, 10), -5)(0)
    (0.0, 0.5, 0.5)
    """
    return _Offset(schedule, steps)


# ------------------------------------------------------------------------------------------------
# Serialisation and names

_FROM_DICT: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "linear": linear,
    "cosine": cosine,
    "polynomial": polynomial,
    "exponential": exponential,
    "step": step,
    "multistep": multistep,
    "piecewise_constant": piecewise_constant,
    "piecewise_linear": piecewise_linear,
    "cyclic": cyclic,
    "onecycle": onecycle,
    "warm_restarts": warm_restarts,
    "inverse_sqrt": inverse_sqrt,
    "wsd": wsd,
    "noise": noise,
    "join": lambda schedules, boundaries: _Join(schedules, boundaries),
    "warmup": _warmup_from_dict,
    "product": lambda schedules: _Product(schedules),
    "scale": scale,
    "offset": offset,
    "transformers": transformers,
}


def from_dict(d: Mapping[str, Any]) -> Schedule:
    """Rebuild a schedule from :meth:`Schedule.to_dict` output (after a JSON round trip too).

    Plateau nodes come back with their state; a plateau object that appeared several times in the
    tree comes back as several independent copies with equal state.

    >>> from_dict({"kind": "linear", "init_value": 0.0, "end_value": 1.0, "steps": 10})(5)
    0.5
    """
    if not isinstance(d, Mapping):
        raise TypeError(f"a schedule dict must be a mapping, got {type(d).__name__}")
    if "kind" not in d:
        raise ValueError(f"a schedule dict needs a 'kind' key, got keys {sorted(d)}")
    kind = d["kind"]
    params = {k: v for k, v in d.items() if k != "kind"}
    for k in ("schedule",):
        if k in params and isinstance(params[k], Mapping):
            params[k] = from_dict(params[k])
    if "schedules" in params and isinstance(params["schedules"], (list, tuple)):
        params["schedules"] = [from_dict(x) if isinstance(x, Mapping) else x for x in params["schedules"]]
    if kind == "plateau":
        state = params.pop("state", None)
        try:
            p = Plateau(**params)
        except TypeError as e:
            raise ValueError(f"bad schedule dict for kind 'plateau': {e}") from None
        if state is not None:
            p.load_state(state)
        return p
    factory = _FROM_DICT.get(kind) if isinstance(kind, str) else None
    if factory is None:
        raise ValueError(f"unknown schedule kind {kind!r}; known kinds: {sorted([*_FROM_DICT, 'plateau'])}")
    try:
        return factory(**params)
    except TypeError as e:
        if "unexpected keyword" in str(e) or "missing" in str(e) or "positional" in str(e):
            raise ValueError(f"bad schedule dict for kind {kind!r}: {e}") from None
        raise


def from_name(
    name: str,
    num_warmup_steps: int | None = None,
    num_training_steps: int | None = None,
    **kwargs: Any,
) -> Schedule:
    """A schedule by name, as a multiplier of the base learning rate (torch-free).

    Hugging Face's names (``transformers.get_scheduler``), bitwise: the value at every step is the
    float transformers' lambda returns (:func:`transformers` nodes): ``linear``, ``cosine``,
    ``cosine_with_restarts``, ``polynomial``, ``constant``, ``constant_with_warmup``,
    ``inverse_sqrt``, ``reduce_lr_on_plateau`` (a :func:`plateau`), ``cosine_with_min_lr``,
    ``cosine_warmup_with_min_lr``, ``warmup_stable_decay``; and fastlr's own: see :func:`names`.
    Keyword arguments are the Hugging Face ``scheduler_specific_kwargs`` (or, for fastlr's names,
    the shape's own arguments). ``polynomial`` and the ``min_lr`` of the cosine names need
    ``lr_init``, the optimizer's default lr (:func:`fastlr.get_scheduler` passes it).

    >>> s = from_name("linear", num_warmup_steps=10, num_training_steps=110)
    >>> s(5), s(10), s(60), s(110)
    (0.5, 1.0, 0.5, 0.0)
    """
    from ._names import from_name as _from_name

    return _from_name(name, num_warmup_steps, num_training_steps, **kwargs)


def names() -> list[str]:
    """The names :func:`from_name` (and :func:`fastlr.get_scheduler`) accept."""
    from ._names import NAMES

    return sorted(NAMES)

