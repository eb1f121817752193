"""Schedules that other libraries define as one function and fastlr builds from its nodes.

optax's one-cycle schedules are ``piecewise_interpolate_schedule`` calls: values accumulated from
scale factors, interpolated between integer boundaries. They come back here as a
:func:`~fastlr.schedules.piecewise_linear` or a :func:`~fastlr.schedules.join` of cosines, so they
compose, serialise and run on the engine like any other schedule.
"""

from __future__ import annotations

import numbers
from typing import Any

from ._base import Schedule, _real
from ._combinators import join
from ._shapes import cosine, piecewise_linear


def _transition_steps(x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError(f"transition_steps must be an int, got {type(x).__name__} {x!r}")
    if x <= 0:
        raise ValueError(f"transition_steps must be > 0, got {x!r}")
    return int(x)


def _pct(name: str, x: Any) -> float:
    v = _real(name, x)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v!r}")
    return v


def _factor(name: str, x: Any) -> float:
    v = _real(name, x)
    if not v > 0:
        raise ValueError(f"{name} must be > 0, got {v!r}")
    return v


def linear_onecycle(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """optax's ``linear_onecycle_schedule``, in float64: three linear phases.

    With ``T = transition_steps``, boundaries ``b1 = int(pct_start * T)``, ``b2 = int(pct_final * T)``
    and values ``v0 = peak / div_factor``, ``v1 = v0 * div_factor``, ``v2 = v1 / div_factor`` (times
    ``1 / div_factor``, as optax accumulates them), ``v3 = v2 / final_div_factor``: linear from
    ``v0`` at 0 to ``v1`` at ``b1``, to ``v2`` at ``b2``, to ``v3`` at ``T``, then ``v3``. A phase of
    zero length (``pct_start = 0``, or ``b1 == b2``) is skipped, as in optax. Built as a
    :func:`~fastlr.schedules.piecewise_linear`.

    >>> s = linear_onecycle(100, 1.0, pct_start=0.2, pct_final=0.6, div_factor=10.0, final_div_factor=100.0)
    >>> s(0), s(10), s(20), s(60), s(100)
    (0.1, 0.55, 1.0, 0.1, 0.001)
    >>> linear_onecycle(100, 1.0, pct_start=0.0)(0)
    1.0
    """
    T = _transition_steps(transition_steps)
    peak = _real("peak_value", peak_value)
    ps, pf = _pct("pct_start", pct_start), _pct("pct_final", pct_final)
    if pf < ps:
        raise ValueError(f"pct_final must be >= pct_start, got pct_final={pf!r} < pct_start={ps!r}")
    div, fdiv = _factor("div_factor", div_factor), _factor("final_div_factor", final_div_factor)
    v0 = peak / div
    v1 = v0 * div
    v2 = v1 * (1.0 / div)
    v3 = v2 * (1.0 / fdiv)
    return piecewise_linear([0, int(ps * T), int(pf * T), T], [v0, v1, v2, v3])


def cosine_onecycle(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """optax's ``cosine_onecycle_schedule``, in float64: two cosine phases.

    With ``T = transition_steps`` and ``b = int(pct_start * T)``: a cosine from
    ``v0 = peak / div_factor`` at 0 up to ``v1 = v0 * div_factor`` at ``b``, then a cosine down to
    ``v2 = v1 / (div_factor * final_div_factor)`` at ``T``, then ``v2``. Each phase is
    ``end + (start - end) * (1 + cos(pi f)) / 2``; ``pct_start = 0`` starts at the peak. Built as a
    :func:`~fastlr.schedules.join` of two :func:`~fastlr.schedules.cosine` nodes (values within an
    ulp or two of optax's float64 ones: the same formula, a different operation order).

    >>> s = cosine_onecycle(100, 1.0, pct_start=0.5, div_factor=10.0, final_div_factor=10.0)
    >>> round(s(0), 12), s(25), s(50), s(100)
    (0.1, 0.55, 1.0, 0.01)
    """
    T = _transition_steps(transition_steps)
    peak = _real("peak_value", peak_value)
    ps = _pct("pct_start", pct_start)
    div, fdiv = _factor("div_factor", div_factor), _factor("final_div_factor", final_div_factor)
    v0 = peak / div
    v1 = v0 * div
    v2 = v1 * (1.0 / (div * fdiv))
    b = int(ps * T)
    return join([cosine(v0, b, end_value=v1), cosine(v1, T - b, end_value=v2)], [b])


__all__ = ["linear_onecycle", "cosine_onecycle"]
