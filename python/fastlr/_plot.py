"""``python -m fastlr plot``: draw schedules to a PNG (matplotlib) or to the terminal.

Schedules are given as ``name:key=value,...`` specs (a :mod:`fastlr.schedules` constructor such as
``cosine:init_value=1,steps=1000``, or a :func:`fastlr.schedules.from_name` name such as
``cosine_with_min_lr:num_warmup_steps=100,num_training_steps=1000,min_lr_rate=0.1``), or as a JSON
file holding one ``to_dict()`` dict or a list of them.
"""

from __future__ import annotations

import ast
import json
import math
import os
import shutil
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import schedules as S

# Constructors usable by name in a spec (the public shape and combinator-free functions).
_CONSTRUCTORS = {
    name: getattr(S, name)
    for name in (
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
        "plateau",
    )
}

#: Spec names that are both a constructor and a Hugging Face / fastlr name: with ``num_training_steps``
#: or ``num_warmup_steps`` in the spec they mean the name (``onecycle:num_training_steps=100``).
_NAMED_FIRST = set(_CONSTRUCTORS) & set(S.names())


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur))
    return [p for p in (x.strip() for x in parts) if p]


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_spec(spec: str) -> tuple[str, S.Schedule]:
    """A ``name:key=value,...`` spec (or a JSON file path) as ``(label, schedule)``."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    kwargs: dict[str, Any] = {}
    for item in _split_top(rest):
        key, eq, val = item.partition("=")
        if not eq:
            raise ValueError(f"bad argument {item!r} in {spec!r}: expected key=value")
        kwargs[key.strip()] = _value(val.strip())
    hf_style = "num_training_steps" in kwargs or "num_warmup_steps" in kwargs
    if name in _CONSTRUCTORS and not (hf_style and name in _NAMED_FIRST):
        return spec, _CONSTRUCTORS[name](**kwargs)
    if name in S.names():
        w = kwargs.pop("num_warmup_steps", None)
        t = kwargs.pop("num_training_steps", None)
        return spec, S.from_name(name, w, t, **kwargs)
    known = sorted(set(_CONSTRUCTORS) | set(S.names()))
    raise ValueError(f"unknown schedule {name!r}; known: {', '.join(known)}")


def load(spec: str) -> list[tuple[str, S.Schedule]]:
    """One spec, or every schedule in a JSON file."""
    if spec.endswith(".json") or (os.path.isfile(spec) and ":" not in spec):
        with open(spec) as f:
            data = json.load(f)
        items = data if isinstance(data, list) else [data]
        base = os.path.basename(spec)
        out = []
        for i, d in enumerate(items):
            label = d.get("label", f"{base}[{i}]" if len(items) > 1 else base) if isinstance(d, dict) else base
            d = {k: v for k, v in d.items() if k != "label"} if isinstance(d, dict) else d
            out.append((label, S.from_dict(d)))
        return out
    return [parse_spec(spec)]


def _horizon(s: S.Schedule) -> float | None:
    """The step the plot marks as the schedule's end.

    That is ``s.horizon`` (the step from which the value no longer changes), except for the Hugging
    Face names whose multiplier keeps moving past ``num_training_steps`` (``cosine``,
    ``cosine_with_min_lr``, ``cosine_warmup_with_min_lr``: the cosine goes on past T, so their
    ``horizon`` is None): there it is ``num_training_steps``, the length of the run they were built for.
    """
    h = s.horizon
    if h is None and s.kind == "transformers" and s.num_training_steps > 0:
        return s.num_training_steps
    return h


def _extent(scheds: Sequence[S.Schedule], steps: int | None) -> int:
    if steps is not None:
        return steps
    hs = [h for h in map(_horizon, scheds) if h is not None]
    return max(int(math.ceil(max(hs) * 1.05)) + 1, 2) if hs else 1000


#: An end of the value range with |v| at most this fraction of the other end's is rounding noise
#: around 0 (a -1.11e-16 from a sum that should be 0) and is taken as 0 when choosing ticks.
_ZERO_SNAP = 1e-9


def nice_ticks(lo: float, hi: float, max_bins: int) -> list[float]:
    """Tick values ``k * step`` covering ``[lo, hi]`` in at most ``max_bins`` (>= 2) intervals, with ``step``
    the smallest of 1, 2, 5 times a power of 10 that allows it (matplotlib's MaxNLocator, for a
    few text rows). Ends within ``_ZERO_SNAP`` (relative) of 0 count as 0. Needs ``lo < hi``."""
    scale = max(abs(lo), abs(hi))
    lo = 0.0 if abs(lo) <= _ZERO_SNAP * scale else lo
    hi = 0.0 if abs(hi) <= _ZERO_SNAP * scale else hi
    max_bins = max(int(max_bins), 2)  # one bin cannot cover a range that straddles 0 with multiples of a step
    mag = 10.0 ** math.floor(math.log10((hi - lo) / max_bins))
    m = 0
    while True:
        step = (1, 2, 5)[m % 3] * 10 ** (m // 3) * mag
        # The 1e-9 keeps a bound that is a multiple of step up to rounding (0.6 / 0.2) from adding a bin.
        k0, k1 = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
        if k1 - k0 <= max_bins:
            return [k * step for k in range(k0, k1 + 1)]
        m += 1


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """The ticks from :func:`nice_ticks` as text, all with the same number of digits after the point
    (fixed notation) or in the mantissa (scientific notation, for ranges under 0.01 or from 1e5)."""
    if len(ticks) < 2:
        return [f"{t:g}" for t in ticks]
    step = (ticks[-1] - ticks[0]) / (len(ticks) - 1)
    e_step = math.floor(math.log10(step) + 1e-9)
    big = max(abs(t) for t in ticks)
    if 1e-2 <= big < 1e5:
        d = max(0, -e_step)
        return [f"{t:.{d}f}" for t in ticks]
    d = max(0, math.floor(math.log10(big) + 1e-9) - e_step)
    return ["0" if t == 0 else f"{t:.{d}e}" for t in ticks]


def terminal_plot(
    series: Sequence[tuple[str, S.Schedule]],
    steps: int | None = None,
    width: int | None = None,
    height: int = 16,
    ascii_only: bool = False,
) -> str:
    """Render the schedules as text: one marker per column per schedule (a cell that two or more
    schedules share gets the overlap marker, and the legend says which), phase boundaries as
    vertical rules, the horizon marked on the axis, 1-2-5 ticks on the value axis."""
    if height < 2:
        raise ValueError(f"the plot height must be >= 2 rows, got {height}")
    n = _extent([s for _, s in series], steps)
    if width is None:
        width = max(40, min(shutil.get_terminal_size((100, 24)).columns - 12, 110))
    marks = "*o+x#@%&" if ascii_only else "●○◆◇■□▲△"
    shared = "=" if ascii_only else "≡"
    vrule = "|" if ascii_only else "│"
    cols = np.minimum((np.arange(width) * (n - 1) / max(width - 1, 1)).round(), n - 1)
    tables = [s.at(cols) for _, s in series]
    finite = [t[np.isfinite(t)] for t in tables]
    lo = min((float(np.min(t)) for t in finite if t.size), default=0.0)
    hi = max((float(np.max(t)) for t in finite if t.size), default=0.0)
    if hi == lo:
        hi, lo = hi + 0.5 * (abs(hi) or 1.0), lo - 0.5 * (abs(lo) or 1.0)
    ticks = nice_ticks(lo, hi, (height - 1) // 3)
    bottom, top = ticks[0], ticks[-1]

    def row(v: float) -> int:
        return min(max(int(round((top - v) / (top - bottom) * (height - 1))), 0), height - 1)

    grid = [[" "] * width for _ in range(height)]
    bounds = sorted({b for _, s in series for b in s.phase_boundaries() if 0 < b < n})
    for b in bounds:
        c = int(round(b * (width - 1) / max(n - 1, 1)))
        for r in range(height):
            grid[r][c] = vrule
    owners: dict[tuple[int, int], list[int]] = {}
    for k, tab in enumerate(tables):
        for c, v in enumerate(tab):
            if math.isfinite(v):
                r = row(float(v))
                cell = owners.setdefault((r, c), [])
                cell.append(k)
                grid[r][c] = marks[k % len(marks)] if len(cell) == 1 else shared
    labels = dict(zip(map(row, ticks), tick_labels(ticks)))
    label_w = max(map(len, labels.values()))
    lines = []
    for r, cells in enumerate(grid):
        lines.append(f"{labels.get(r, ''):>{label_w}} {'|' if ascii_only else '┤'}{''.join(cells)}")
    axis = [("-" if ascii_only else "─")] * width
    for h in (_horizon(s) for _, s in series):
        if h is not None:
            c = int(round(min(h, n - 1) * (width - 1) / max(n - 1, 1)))
            axis[c] = "^" if ascii_only else "┴"
    lines.append(" " * (label_w + 1) + ("+" if ascii_only else "└") + "".join(axis))
    left, right = "0", f"step {n - 1}"
    ticks_line = left + " " * max(width - len(left) - len(right), 1) + right
    lines.append(" " * (label_w + 2) + ticks_line)
    for k, (label, s) in enumerate(series):
        h = _horizon(s)
        lines.append(f"  {marks[k % len(marks)]} {label}   (horizon: {'none' if h is None else h})")
    groups: dict[tuple[int, ...], int] = {}
    for ks in owners.values():
        if len(ks) > 1:
            groups[tuple(ks)] = groups.get(tuple(ks), 0) + 1
    if groups:
        what = ", ".join(f"{' '.join(marks[k % len(marks)] for k in ks)} ({c} cell{'s' * (c > 1)})"
                         for ks, c in sorted(groups.items()))
        lines.append(f"  {shared} curves on top of each other: {what}")
    if bounds:
        lines.append(f"  {vrule} phase boundaries at steps {', '.join(f'{b:g}' for b in bounds)}")
    return "\n".join(lines)


def png_plot(series: Sequence[tuple[str, S.Schedule]], path: str, steps: int | None = None, title: str | None = None) -> None:
    """Draw the schedules with matplotlib to ``path`` (the ``plot`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
        raise SystemExit("writing an image needs matplotlib: pip install 'fastlr[plot]'") from e
    n = _extent([s for _, s in series], steps)
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=120)
    t = np.arange(n)
    for label, s in series:
        ax.plot(t, s.table(n), label=label, linewidth=1.6)
    bounds = sorted({b for _, s in series for b in s.phase_boundaries() if 0 < b < n})
    for b in bounds:
        ax.axvline(b, color="0.6", linestyle=":", linewidth=1)
    for h in (_horizon(s) for _, s in series):
        if h is not None and h < n:
            ax.axvline(h, color="0.3", linestyle="--", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("value")
    ax.set_xlim(0, n - 1)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title or "fastlr schedules (dotted: phase boundaries, dashed: horizon)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_plot(specs: Sequence[str], output: str | None, steps: int | None, ascii_only: bool, width: int | None,
             height: int, title: str | None) -> int:
    series: list[tuple[str, S.Schedule]] = []
    for spec in specs:
        series.extend(load(spec))
    if steps is not None and steps < 2:
        raise ValueError(f"--steps must be >= 2, got {steps}")
    if output:
        png_plot(series, output, steps, title)
        print(f"wrote {output}")
    else:
        print(terminal_plot(series, steps, width, height, ascii_only))
    return 0
