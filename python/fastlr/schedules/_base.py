"""The :class:`Schedule` base class, the compiler to C++ programs, and argument checking.

Every node kind lives in one of the sibling modules: leaf shapes (:mod:`._shapes`), combinators and
modifiers (:mod:`._combinators`), metric-driven state (:mod:`._stateful`); :mod:`._serialisation`
turns dicts back into schedules. This module imports none of them at import time.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Union

import numpy as np

from .. import _core

if TYPE_CHECKING:
    from ._stateful import Plateau

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
        # metric-driven nodes (plateau, switch): id -> (node, [(program node index, factor)]); the
        # program's param 0 of each listed node holds node.value * factor (Schedule._sync)
        self.stateful: dict[int, tuple[Any, list[tuple[int, float]]]] = {}

    def add(self, kind: str, params: Sequence[float], children: Sequence[int] = ()) -> int:
        self.nodes.append((_OP[kind], [float(p) for p in params], list(children)))
        if len(self.nodes) > MAX_NODES:
            raise ValueError(f"a schedule may compile to at most {MAX_NODES} nodes; this one is larger")
        return len(self.nodes) - 1


def _output_float32(dtype: Any) -> bool:
    """True for a float32 output, False for float64 (``dtype`` of :meth:`Schedule.table`/:meth:`Schedule.at`)."""
    if dtype is np.float64:  # the default, without building a dtype (a short table is a few µs)
        return False
    if dtype is np.float32:
        return True
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be numpy.float64 or numpy.float32, got {dtype!r}") from None
    if dt == np.float64:
        return False
    if dt == np.float32:
        return True
    raise ValueError(f"dtype must be float64 or float32, got {dt}")


_MAX_THREADS = 1024


def _thread_arg(threads: Any) -> int:
    """``threads`` of :meth:`Schedule.table`/:meth:`Schedule.at` for the C++ call (0: automatic)."""
    if threads is None:
        return 0
    v = _int("threads", threads, 1)
    if v > _MAX_THREADS:
        raise ValueError(f"threads must be at most {_MAX_THREADS}, got {v}")
    return v


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
    _slots: list[tuple[Any, list[tuple[int, float]], float]]

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
        slots = [(node, idx, math.nan) for node, idx in b.stateful.values()]
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
                    for j, f in idx:
                        self._program.set_state(j, v * f)
                    slots[i] = (pl, idx, v)
        return self._program

    def __call__(self, t: Number) -> float:
        """The value at step ``t`` (an int or float in ``[0, 2**53]``)."""
        if isinstance(t, bool) or not isinstance(t, numbers.Real):
            raise TypeError(f"step must be a real number, got {type(t).__name__} {t!r}")
        return self._sync()(float(t))

    def at(self, steps: StepsLike, *, dtype: Any = np.float64, threads: int | None = None) -> np.ndarray:
        """The values at an array of steps, in an array of the same shape.

        Computed in C++ with the GIL released, on several threads for long arrays. Each value is the
        one :meth:`__call__` gives, whatever ``dtype`` and ``threads`` are.

        Parameters
        ----------
        steps : array_like of int or float
            Steps in ``[0, 2**53]``. int64 and float64 arrays are read as they are; other integer
            and float types are converted to float64 first.
        dtype : numpy.float64 or numpy.float32, optional
            The output type. ``float32`` values are the float64 values rounded once to nearest
            (exactly ``np.float32(float64_value)``), at half the memory.
        threads : int, optional
            Threads to compute with (``>= 1``). By default, one per 2**15 steps, up to
            ``FASTLR_NUM_THREADS`` when that environment variable is set, else up to the CPU count
            (at most 16): arrays shorter than 2**16 steps use one thread.
        """
        arr = np.asarray(steps)
        if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise TypeError(f"steps must be an array of real numbers, got dtype {arr.dtype}")
        float32 = _output_float32(dtype)
        nthreads = _thread_arg(threads)
        if arr.dtype != np.int64:  # int64 goes to C++ as it is, converted there per block
            arr = np.ascontiguousarray(arr, dtype=np.float64)
        return self._sync().at(arr, float32, nthreads)  # positional: pybind11's keywords cost µs

    def table(
        self, n: int | None = None, start: int = 0, *, dtype: Any = np.float64, threads: int | None = None
    ) -> np.ndarray:
        """The values at steps ``start, start + 1, ..., start + n - 1``.

        Computed in C++ with the GIL released, on several threads for long tables. Each value is the
        one :meth:`__call__` gives, whatever ``dtype`` and ``threads`` are.

        Parameters
        ----------
        n : int, optional
            The number of steps; defaults to ``horizon + 1`` where the schedule has a horizon.
        start : int, optional
            The first step (``>= 0``).
        dtype : numpy.float64 or numpy.float32, optional
            The output type. ``float32`` values are the float64 values rounded once to nearest
            (exactly ``np.float32(float64_value)``), at half the memory.
        threads : int, optional
            Threads to compute with (``>= 1``). By default, one per 2**15 steps, up to
            ``FASTLR_NUM_THREADS`` when that environment variable is set, else up to the CPU count
            (at most 16): tables shorter than 2**16 steps use one thread.
        """
        if n is None:
            h = self.horizon
            if h is None:
                raise ValueError(f"{self.kind} has no horizon: pass the number of steps, table(n)")
            n = int(math.ceil(h)) + 1
        n = _int("n", n, 0)
        start = _int("start", start, 0)
        float32 = _output_float32(dtype)
        nthreads = _thread_arg(threads)
        return self._sync().table(n, float(start), float32, nthreads)

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
    def plateaus(self) -> tuple[Any, ...]:
        """The distinct metric-driven nodes in this schedule (:class:`Plateau` and
        :class:`Switch`), in tree order."""
        return tuple(node for node, _, _ in self._slots)

    def _local(self, t: float) -> list[tuple[Schedule, float]]:
        """The children evaluated at (this node's local) step ``t``, each with its own local step."""
        return [(c, t) for c in self._children()]

    def _active(self, t: float) -> list[tuple[Schedule, float]]:
        """Every node evaluated at step ``t`` (this one included), with its local step, root first."""
        out: list[tuple[Schedule, float]] = []
        todo = [(self, t)]
        while todo:
            node, lt = todo.pop()
            out.append((node, lt))
            todo.extend(reversed(node._local(lt)))
        return out

    def observe(self, metric: float, step: Number | None = None) -> None:
        """Feed a metric to the metric-driven nodes of this schedule (:func:`plateau`,
        :func:`switch`).

        With ``step``, only the nodes that are evaluated at that step (a phase of a :func:`join`
        runs then, a :func:`warmup` is past its ramp, a :func:`switch` is on that side) see the
        metric, each at its own local step; without it, all plateaus do (a switch needs the step).
        """
        if not self._slots:
            return
        if step is None:
            for node, _, _ in self._slots:
                if node.kind == "switch":
                    raise TypeError("this schedule has a switch node: observe(metric, step) needs the step")
            for node, _, _ in self._slots:
                node._observe_node(metric, None)
            return
        t = float(_steps("step", step))
        ids = {id(node) for node, _, _ in self._slots}
        seen: set[int] = set()
        hits = []
        for node, lt in self._active(t):  # all activity first, then the observations
            if id(node) in ids and id(node) not in seen:
                seen.add(id(node))
                hits.append((node, lt))
        for node, lt in hits:
            node._observe_node(metric, lt)

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
        from ._serialisation import from_dict

        return from_dict(d)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # equal by value, and plateau state can change

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle and copy by value (the compiled program is rebuilt).
        from . import from_dict  # the public name, so that pickles name fastlr.schedules.from_dict

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
        from ._combinators import product, scale

        if isinstance(other, Schedule):
            return product(self, other)
        if isinstance(other, numbers.Real) and not isinstance(other, bool):
            return scale(self, other)
        return NotImplemented

    def __rmul__(self, other: Any) -> Schedule:
        from ._combinators import scale

        if isinstance(other, numbers.Real) and not isinstance(other, bool):
            return scale(self, other)
        return NotImplemented

    def __truediv__(self, other: Any) -> Schedule:
        if isinstance(other, numbers.Real) and not isinstance(other, bool):
            d = _real("divisor", other)
            if d == 0:
                raise ZeroDivisionError("schedule divided by zero")
            from ._combinators import scale

            return scale(self, 1.0 / d)
        return NotImplemented
