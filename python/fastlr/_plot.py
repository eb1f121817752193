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

#: Spec names that mean a Hugging Face / fastlr named schedule rather than a constructor.
_NAMED_FIRST = {"linear", "cosine", "polynomial", "constant", "inverse_sqrt"}


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


def _extent(scheds: Sequence[S.Schedule], steps: int | None) -> int:
    if steps is not None:
        return steps
    hs = [s.horizon for s in scheds if s.horizon is not None]
    return max(int(math.ceil(max(hs) * 1.05)) + 1, 2) if hs else 1000


def terminal_plot(
    series: Sequence[tuple[str, S.Schedule]],
    steps: int | None = None,
    width: int | None = None,
    height: int = 16,
    ascii_only: bool = False,
) -> str:
    """Render the schedules as text: one marker per column per schedule, phase boundaries as
    vertical rules, the horizon marked on the axis."""
    n = _extent([s for _, s in series], steps)
    if width is None:
        width = max(40, min(shutil.get_terminal_size((100, 24)).columns - 12, 110))
    marks = "*o+x#@%&" if ascii_only else "●○◆◇■□▲△"
    vrule = "|" if ascii_only else "│"
    cols = np.minimum((np.arange(width) * (n - 1) / max(width - 1, 1)).round(), n - 1)
    tables = [s.at(cols) for _, s in series]
    lo = min(float(np.min(t)) for t in tables)
    hi = max(float(np.max(t)) for t in tables)
    if hi == lo:
        hi, lo = hi + 0.5 * (abs(hi) or 1.0), lo - 0.5 * (abs(lo) or 1.0)
    grid = [[" "] * width for _ in range(height)]
    bounds = sorted({b for _, s in series for b in s.phase_boundaries() if 0 < b < n})
    for b in bounds:
        c = int(round(b * (width - 1) / max(n - 1, 1)))
        for r in range(height):
            grid[r][c] = vrule
    for k, tab in enumerate(tables):
        m = marks[k % len(marks)]
        for c, v in enumerate(tab):
            r = int(round((hi - float(v)) / (hi - lo) * (height - 1)))
            grid[min(max(r, 0), height - 1)][c] = m
    label_w = 11
    lines = []
    for r, row in enumerate(grid):
        y = hi - (hi - lo) * r / (height - 1)
        lab = f"{y:.3g}" if r in (0, height // 2, height - 1) else ""
        lines.append(f"{lab:>{label_w - 1}} {'|' if ascii_only else '┤'}{''.join(row)}")
    axis = [("-" if ascii_only else "─")] * width
    hz = [s.horizon for _, s in series if s.horizon is not None]
    for h in hz:
        c = int(round(min(h, n - 1) * (width - 1) / max(n - 1, 1)))
        axis[c] = "^" if ascii_only else "┴"
    lines.append(" " * label_w + ("+" if ascii_only else "└") + "".join(axis))
    left, right = "0", f"step {n - 1}"
    ticks_line = left + " " * max(width - len(left) - len(right), 1) + right
    lines.append(" " * (label_w + 1) + ticks_line)
    for k, (label, s) in enumerate(series):
        h = s.horizon
        lines.append(f"  {marks[k % len(marks)]} {label}   (horizon: {'none' if h is None else h})")
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
    for _, s in series:
        if s.horizon is not None and s.horizon < n:
            ax.axvline(s.horizon, color="0.3", linestyle="--", linewidth=1)
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
