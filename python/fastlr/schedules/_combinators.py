"""Combinators and modifiers: join, warmup, product, scale, offset and noise."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

from ._base import (
    Number,
    Schedule,
    _Builder,
    _choice,
    _fmt,
    _int,
    _max_horizon,
    _real,
    _reals,
    _schedule,
    _schedules,
    _step_list,
    _steps,
)

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

    def _local(self, t: float) -> list[tuple[Schedule, float]]:
        k = bisect.bisect_right(self.boundaries, t)  # program.hpp's join_select
        return [(self.schedules[k], t if k == 0 else max(t - self.boundaries[k - 1], 0.0))]

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
            return "cosine", [st, pk, w, 1.0, 0.5, 0.0, 1.0]  # (k_decay, cycles, mode, exponent)
        # start * (peak / start) ** (t / steps)
        return "exponential", [st, pk / st, w if w > 0 else 1, 0.0, 0.0, 0.0]

    def _emit(self, b: _Builder) -> int:
        kind, params = self._ramp()
        r = b.add(kind, params)
        c = self.schedule._emit(b)
        return b.add("join", [self.steps], [r, c])

    def _children(self) -> tuple[Schedule, ...]:
        return (self.schedule,)

    def _local(self, t: float) -> list[tuple[Schedule, float]]:
        return [(self.schedule, t - self.steps)] if t >= self.steps else []

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

    def _local(self, t: float) -> list[tuple[Schedule, float]]:
        return [(self.schedule, max(t - self.steps, 0.0))]

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
