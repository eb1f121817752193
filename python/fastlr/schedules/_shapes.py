"""Leaf shapes: pure functions of the step (cosine, linear, polynomial, WSD, Hugging Face's, ...)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

from ._base import (
    Number,
    Schedule,
    _Builder,
    _choice,
    _flag,
    _int,
    _real,
    _reals,
    _step_list,
    _steps,
)

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
    _fields = ("init_value", "steps", "end_value", "k_decay", "cycles", "extrapolate", "restarts", "exponent")
    _defaults = {
        "end_value": 0.0,
        "k_decay": 1.0,
        "cycles": 0.5,
        "extrapolate": False,
        "restarts": False,
        "exponent": 1.0,
    }

    def __init__(
        self,
        init_value: float,
        steps: Number,
        end_value: float = 0.0,
        k_decay: float = 1.0,
        cycles: float = 0.5,
        extrapolate: bool = False,
        restarts: bool = False,
        exponent: float = 1.0,
    ) -> None:
        k = _real("k_decay", k_decay)
        if not k > 0:
            raise ValueError(f"k_decay must be > 0, got {k!r}")
        e = _real("exponent", exponent)
        if not e > 0:
            raise ValueError(f"exponent must be > 0, got {e!r}")
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
            exponent=e,
        )
        if self.extrapolate and self.restarts:
            raise ValueError("cosine: restarts and extrapolate cannot both be set")
        self._compile()

    def _emit(self, b: _Builder) -> int:
        mode = 2.0 if self.restarts else float(self.extrapolate)
        return b.add(
            "cosine", [self.init_value, self.end_value, self.steps, self.k_decay, self.cycles, mode, self.exponent]
        )

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
    exponent: float = 1.0,
) -> Schedule:
    """Cosine decay from ``init_value`` to ``end_value`` over ``steps`` steps, then constant.

    ``v(t) = end + (init - end) * c(t) ** exponent``,
    ``c(t) = (1 + cos(2 pi * cycles * (t / steps) ** k_decay)) / 2``, with ``t / steps`` clamped to
    1 (so ``v = end`` exactly from ``steps`` on) unless ``extrapolate``. ``exponent`` is optax's
    (``cosine_decay_schedule(init, steps, alpha=end / init, exponent=...)``; ``exponent > 1`` decays
    sooner).
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
    >>> cosine(1.0, steps=100, exponent=2.0)(50)
    0.25
    """
    return _Cosine(init_value, steps, end_value, k_decay, cycles, extrapolate, restarts, exponent)


class _Polynomial(Schedule):
    kind = "polynomial"
    _fields = ("init_value", "end_value", "steps", "power", "k_decay")
    _defaults = {"power": 1.0, "k_decay": 1.0}

    def __init__(
        self, init_value: float, end_value: float, steps: Number, power: float = 1.0, k_decay: float = 1.0
    ) -> None:
        p = _real("power", power)
        if p < 0:
            raise ValueError(f"power must be >= 0, got {p!r}")
        k = _real("k_decay", k_decay)
        if not k > 0:
            raise ValueError(f"k_decay must be > 0, got {k!r}")
        self._set(
            init_value=_real("init_value", init_value),
            end_value=_real("end_value", end_value),
            steps=_steps("steps", steps),
            power=p,
            k_decay=k,
        )
        self._compile()

    def _emit(self, b: _Builder) -> int:
        return b.add("polynomial", [self.init_value, self.end_value, self.steps, self.power, self.k_decay])

    @property
    def horizon(self) -> Number:
        return self.steps


def polynomial(
    init_value: float, end_value: float, steps: Number, power: float = 1.0, *, k_decay: float = 1.0
) -> Schedule:
    """Polynomial decay: ``v(t) = end + (init - end) * (1 - t / steps) ** power`` for
    ``t < steps``, else ``end`` (optax ``polynomial_schedule``; torch ``PolynomialLR`` with
    ``end = 0``). With ``k_decay`` (timm ``PolyLRScheduler``'s):
    ``v(t) = end + (init - end) * (1 - t**k_decay / steps**k_decay) ** power``; ``k_decay > 1``
    holds the value higher for longer.

    >>> s = polynomial(1.0, 0.0, steps=10, power=2.0)
    >>> s(0), s(5), s(10)
    (1.0, 0.25, 0.0)
    >>> polynomial(1.0, 0.0, steps=10, k_decay=2.0)(5)
    0.75
    """
    return _Polynomial(init_value, end_value, steps, power, k_decay)


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
    _period_name = "period"
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
            period=_steps(self._period_name, period, positive=True),
            min_value=_real("min_value", min_value),
            t_mult=m,
            cycle_decay=cd,
            # None is unlimited; 0 is no cycle at all (min_value throughout), as timm 1.0's `i < cycle_limit`
            cycle_limit=None if cycle_limit is None else _int("cycle_limit", cycle_limit, 0),
            k_decay=k,
        )
        self._compile()

    def _shape_params(self) -> list[float]:
        return [self.k_decay, 0.0, 0.0, 0.0]  # k_decay, shape 0 (cosine), lb, ub (unused)

    def _emit(self, b: _Builder) -> int:
        limit = math.inf if self.cycle_limit is None else float(self.cycle_limit)
        return b.add(
            "warm_restarts",
            [self.init_value, self.min_value, self.period, self.t_mult, self.cycle_decay, limit, *self._shape_params()],
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
    After ``cycle_limit`` cycles (``None``: unlimited) the value is ``min_value``; ``cycle_limit=0``
    is ``min_value`` throughout, as in timm 1.0 (whose ``CosineLRScheduler`` checks
    ``i < cycle_limit``; timm releases before 0.5 read 0 as unlimited, which is ``None`` here).

    >>> s = warm_restarts(1.0, period=10, t_mult=2.0, cycle_decay=0.5)
    >>> s(0), s(5), s(10), s(20), s(30)
    (1.0, 0.5, 0.5, 0.25, 0.25)
    """
    return _WarmRestarts(init_value, period, min_value, t_mult, cycle_decay, cycle_limit, k_decay)


class _Tanh(_WarmRestarts):
    kind = "tanh"
    _period_name = "steps"
    _fields = ("init_value", "steps", "min_value", "lb", "ub", "t_mult", "cycle_decay", "cycle_limit")
    _defaults = {"min_value": 0.0, "lb": -7.0, "ub": 3.0, "t_mult": 1.0, "cycle_decay": 1.0, "cycle_limit": 1}

    def __init__(
        self,
        init_value: float,
        steps: Number,
        min_value: float = 0.0,
        lb: float = -7.0,
        ub: float = 3.0,
        t_mult: float = 1.0,
        cycle_decay: float = 1.0,
        cycle_limit: int | None = 1,
    ) -> None:
        lo, hi = _real("lb", lb), _real("ub", ub)
        if not lo < hi:
            raise ValueError(f"tanh: lb must be < ub, got lb={lo!r}, ub={hi!r}")
        object.__setattr__(self, "lb", lo)
        object.__setattr__(self, "ub", hi)
        super().__init__(init_value, steps, min_value, t_mult, cycle_decay, cycle_limit, 1.0)

    @property
    def steps(self) -> Number:
        return self.period

    def _shape_params(self) -> list[float]:
        return [1.0, 1.0, self.lb, self.ub]  # k_decay 1, shape 1 (tanh), lb, ub


def tanh(
    init_value: float,
    steps: Number,
    min_value: float = 0.0,
    *,
    lb: float = -7.0,
    ub: float = 3.0,
    t_mult: float = 1.0,
    cycle_decay: float = 1.0,
    cycle_limit: int | None = 1,
) -> Schedule:
    """Hyperbolic-tangent decay (Hsueh et al. 2019; timm ``TanhLRScheduler``, in its operation order).

    With ``f = t / steps``:
    ``v(t) = min + (init - min) / 2 * (1 - tanh(lb * (1 - f) + ub * f))`` for ``t < steps``, then
    ``min_value``. Note that ``v(0)`` is ``(1 - tanh(lb)) / 2`` of the way, not exactly ``init``, and
    the value steps down to ``min_value`` at ``steps`` (both as in timm). ``t_mult``,
    ``cycle_decay`` and ``cycle_limit`` restart it as :func:`warm_restarts` does (cycle ``i`` is
    ``steps * t_mult**i`` long and peaks at ``init * cycle_decay**i``); the default
    ``cycle_limit=1`` is timm's, one cycle (``None``: unlimited; ``0``: ``min_value`` throughout).

    >>> s = tanh(1.0, steps=100)
    >>> round(s(0), 6), round(s(70), 6), s(100)
    (0.999999, 0.5, 0.0)
    """
    return _Tanh(init_value, steps, min_value, lb, ub, t_mult, cycle_decay, cycle_limit)


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
_WSD_DECAY = ("linear", "cosine", "1-sqrt", "exponential", "power")
_WSD_STABLE = ("constant", "rsqrt", "power")
_WSD_ALIASES = {"minus_sqrt": "1-sqrt", "exp": "exponential"}


class _WSD(Schedule):
    kind = "wsd"
    _fields = (
        "peak_value",
        "warmup",
        "stable",
        "decay",
        "init_value",
        "end_value",
        "warmup_shape",
        "decay_shape",
        "stable_shape",
        "stable_timescale",
        "stable_power",
        "decay_power",
        "decay_ratio",
    )
    _defaults = {
        "peak_value": 1.0,
        "warmup": 0,
        "decay": 0,
        "init_value": 0.0,
        "end_value": 0.0,
        "warmup_shape": "linear",
        "decay_shape": "linear",
        "stable_shape": "constant",
        "stable_timescale": None,
        "stable_power": 0.5,
        "decay_power": 0.5,
        "decay_ratio": 0.5,
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
        stable_shape: str = "constant",
        stable_timescale: Number | None = None,
        stable_power: float = 0.5,
        decay_power: float = 0.5,
        decay_ratio: float = 0.5,
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
            stable_shape=_choice("stable_shape", stable_shape, _WSD_STABLE),
        )
        sp, dp, dr = _real("stable_power", stable_power), _real("decay_power", decay_power), _real("decay_ratio", decay_ratio)
        if not sp > 0:
            raise ValueError(f"stable_power must be > 0, got {sp!r}")
        if not dp > 0:
            raise ValueError(f"decay_power must be > 0, got {dp!r}")
        if not 0 < dr < 1:
            raise ValueError(f"decay_ratio must be in (0, 1), got {dr!r}")
        ts = None
        if self.stable_shape != "constant":
            # timm: the timescale defaults to the warm-up length
            ts = _steps("stable_timescale", w if stable_timescale is None else stable_timescale)
            if not ts > 0:
                raise ValueError(
                    f"wsd: stable_shape={self.stable_shape!r} needs stable_timescale > 0 (it defaults to warmup, "
                    f"which is {w}); set it when there is no warm-up"
                )
        elif stable_timescale is not None:
            _steps("stable_timescale", stable_timescale)
            ts = stable_timescale
        self._set(stable_timescale=ts, stable_power=sp, decay_power=dp, decay_ratio=dr)
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
                float(_WSD_STABLE.index(self.stable_shape)),
                0.0 if self.stable_timescale is None else float(self.stable_timescale),
                self.stable_power,
                self.decay_power,
                self.decay_ratio,
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
    stable_shape: str = "constant",
    stable_timescale: Number | None = None,
    stable_power: float = 0.5,
    decay_power: float = 0.5,
    decay_ratio: float = 0.5,
) -> Schedule:
    """Warmup-stable-decay ("trapezoidal"; Hugging Face ``warmup_stable_decay``, Megatron ``WSD``,
    timm ``WSDLRScheduler``).

    With ``W = warmup``, ``S = stable`` (or ``total - warmup - decay``) and ``D = decay``:

    * ``t < W``: ``init + (peak - init) * w(t / W)``, ``w(f)`` = ``f`` (``"linear"``),
      ``(1 - cos(pi f)) / 2`` (``"cosine"``) or ``1 - sqrt(1 - f)`` (``"1-sqrt"``);
    * ``t < W + S``: ``s(t)``;
    * ``t < W + S + D``: ``end + (s(t) - end) * c(f)``, ``f = (t - W - S) / D``, ``c(f)`` =
      ``1 - f`` (``"linear"``), ``(1 + cos(pi f)) / 2`` (``"cosine"``), ``1 - sqrt(f)``
      (``"1-sqrt"``, Megatron's ``minus_sqrt``), ``(r**f - r) / (1 - r)`` with
      ``r = decay_ratio`` (``"exponential"`` or ``"exp"``; the default ``r = 0.5`` is Megatron's
      ``2 * 0.5**f - 1``, timm's default is 0.1) or ``1 - f**decay_power`` (``"power"``, timm's);
    * then ``end``.

    The stable phase ``s(t)`` is ``peak`` (``stable_shape="constant"``) or decays (timm's
    ``stable_fn``): ``max(peak * (1 + (t - W) / stable_timescale) ** -a, end)`` with ``a = 0.5``
    (``"rsqrt"``, Big Vision's reciprocal square root) or ``a = stable_power`` (``"power"``).
    ``stable_timescale`` defaults to ``warmup``. A decaying stable phase keeps decaying through
    the decay phase, which multiplies it (timm's semantics). A timm ``WSDLRScheduler(t_initial,
    decay_t, lr_min, warmup_t, warmup_lr_init, ...)`` is ``wsd(base_lr, warmup=warmup_t,
    stable=t_initial - decay_t, decay=decay_t, init_value=warmup_lr_init, end_value=lr_min, ...)``.

    >>> s = wsd(1.0, warmup=100, decay=200, total=1000)
    >>> s(50), s(100), s(800), s(900), s(1000)
    (0.5, 1.0, 1.0, 0.5, 0.0)
    >>> r = wsd(1.0, warmup=100, stable=900, decay=100, stable_shape="rsqrt")
    >>> r(100), r(400), r(1050), r(1100)
    (1.0, 0.5, 0.1543033499620919, 0.0)
    """
    return _WSD(
        peak_value, warmup, stable, decay, total, init_value, end_value, warmup_shape, decay_shape,
        stable_shape, stable_timescale, stable_power, decay_power, decay_ratio,
    )
