"""Loss-curve diagnosis: :func:`diagnose` (a whole curve) and :class:`LossMonitor` (online).

numpy only. A curve is first reduced to at most ``MAX_BINS`` bins of ``2**k`` consecutive points
(the mean loss and mean step of each), the same bins that :class:`LossMonitor` keeps as it goes, so
the monitor needs O(1) memory and agrees with :func:`diagnose` on the same losses. The verdict comes
from scale-free numbers of the binned curve (the ``evidence``): NaN, inf or an explosion is
``diverged`` by rule; otherwise a random forest of 100 small trees votes, fitted on the tuning part
of fastlr's corpus of real training runs (tests/data/loss_curves.md) and shipped as flat arrays
(``_diagnose_forest.npz``), evaluated here with numpy.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

VERDICTS = ("healthy", "lr_too_high", "lr_too_high_late", "lr_too_low", "diverged")

#: Bins kept at most: a curve of n points is cut into bins of w = 2**k points, the smallest w with
#: ceil(n / w) <= MAX_BINS.
MAX_BINS = 512


# --------------------------------------------------------------------------------------------------
# Binning (shared by diagnose and LossMonitor).


def bin_width(n: int) -> int:
    """The power-of-two bin width for n points (``ceil(n / w) <= MAX_BINS``)."""
    w = 1
    while -(-n // w) > MAX_BINS:
        w *= 2
    return w


def _bin(steps: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean step and mean loss of consecutive groups of ``bin_width(n)`` points (the last may be short)."""
    n = len(losses)
    w = bin_width(n)
    if w == 1:
        return steps.astype(np.float64), losses.astype(np.float64)
    full = n // w
    ms = steps[: full * w].reshape(full, w).mean(axis=1)
    ml = losses[: full * w].reshape(full, w).mean(axis=1)
    if n > full * w:
        ms = np.append(ms, steps[full * w:].mean())
        ml = np.append(ml, losses[full * w:].mean())
    return ms, ml


# --------------------------------------------------------------------------------------------------
# The evidence: scale-free numbers of a (binned) curve.


def _smooth(x: np.ndarray, w: int) -> np.ndarray:
    """Running median of odd width ``w`` (the ends repeated at the edges), robust to spikes."""
    if w <= 1 or len(x) < 3:
        return x.copy()
    h = w // 2
    pad = np.concatenate([np.full(h, x[0]), x, np.full(h, x[-1])])
    return np.median(np.lib.stride_tricks.sliding_window_view(pad, 2 * h + 1), axis=1)


def _seg(y: np.ndarray, a: float, b: float) -> float:
    """Median of the points between fractions a and b of the curve (at least one point)."""
    n = len(y)
    i = min(int(math.floor(a * (n - 1) + 0.5)), n - 1)
    j = max(int(math.floor(b * (n - 1) + 0.5)) + 1, i + 1)
    return float(np.median(y[i:j]))


def _read(x: np.ndarray) -> tuple[bool, np.ndarray, np.ndarray, float, float]:
    """The curve as :func:`evidence` reads it: (log scale?, values, smoothed values, start, end level)."""
    pos = bool(x.min() > 0)
    y = np.log(x) if pos else x / max(abs(float(x[0])), 1e-12)
    s = _smooth(y, max(1, (len(x) // 15) | 1))
    return pos, y, s, _seg(y, 0.0, 0.05), _seg(y, 0.9, 1.0)


def evidence(losses: np.ndarray) -> dict[str, float]:
    """The numbers behind a verdict, from the binned finite losses (at least 2).

    The curve is read on a log scale when every loss is positive (a loss that falls from 2.3 to 0.02
    and one that falls from 230 to 2 are the same shape), else relative to its first value. Levels
    are medians of stretches of the curve, so a noisy per-step curve and a clean per-epoch one give
    the same numbers.
    """
    x = np.asarray(losses, dtype=np.float64)
    n = len(x)
    pos, y, s, start, end = _read(x)
    fall = start - end
    norm = max(abs(fall), 1e-9)
    head = y[: max(int(0.2 * n), 1)]
    q1 = s[: max(int(0.25 * n), 1)]
    tail = s[int(0.25 * n):]
    tv = float(np.abs(np.diff(tail)).sum()) if len(tail) > 1 else 0.0
    net = abs(float(tail[0] - tail[-1])) if len(tail) > 1 else 0.0
    resid = np.abs(y - s)
    mid = _seg(y, 0.45, 0.55)
    return {
        "points": float(n),
        "log_scale": float(pos),
        "first_loss": float(x[0]),
        "end_loss": float(np.exp(end)) if pos else end * abs(float(x[0])),
        # at the start: the first stretch's mean and its peak, over the first value
        "head_rise": float(head.mean() - y[0]),
        "head_peak": float(q1.max() - start),
        "first_drop": float(y[0] - y[1]),
        # how far it fell (start to end), and which share of that fall was done at 10%, 25%, 50%
        "fall": float(fall),
        "fall_from_first": float(y[0] - end),
        "fall_share_10pct": (start - _seg(y, 0.05, 0.15)) / norm,
        "fall_share_25pct": (start - _seg(y, 0.2, 0.3)) / norm,
        "fall_share_50pct": (start - mid) / norm,
        # still sliding in the second half and the last quarter, or flat
        "slide_second_half": float(mid - end),
        "slide_last_quarter": float(_seg(y, 0.7, 0.8) - end),
        # the band of the points around the smoothed curve, mid-run and at the end
        "band_mid": float(np.median(resid[int(0.4 * n):max(int(0.6 * n), int(0.4 * n) + 1)])),
        "band_end": float(np.median(resid[int(0.75 * n):])),
        # swings after the first quarter: total variation of the smoothed curve over its net change
        "swing": min(tv / max(net, 1e-9), 1e3),
        "min_at": float(np.argmin(s)) / max(n - 1, 1),
        "rebound": float(end - s.min()),
        # the largest loss over the start's level, on a log scale whatever the loss's sign
        "explosion": float(y.max() - start) if pos else
        math.log(max(float(np.abs(x).max()), 1e-300) / max(abs(_seg(x, 0.0, 0.05)), 1e-300)),
        # the share of the fall from the first value that the first step made, and what came after
        "first_drop_share": float((y[0] - y[1]) / max(abs(float(y[0] - end)), 1e-9)),
        "fall_after_first": float(y[1] - end) if n > 1 else 0.0,
        "late_fall_share": (mid - end) / norm,
        **{f"profile_{k}": _seg(y, k / 10, (k + 1) / 10) - end for k in range(10)},
        # after the first point: how steadily the smoothed curve goes down (share of falling steps),
        # and the second half's fall over the band of the points around the curve
        "falling_steps": float(np.mean(np.diff(tail) < 0)) if len(tail) > 1 else 0.5,
        "trend_over_band": float((mid - end) / max(float(np.median(resid)), 1e-6)),
        "rest_fall_share_25pct": _share(y[1:], 0.25) if n > 3 else 0.0,
        "rest_fall_share_50pct": _share(y[1:], 0.5) if n > 3 else 0.0,
        **_more(y, s, resid, start, end, mid),
    }


def _more(y: np.ndarray, s: np.ndarray, resid: np.ndarray, start: float, end: float, mid: float) -> dict[str, float]:
    """Evidence on the range of the curve and its point-to-point noise (a stuck, a swinging and a
    steadily falling curve differ there)."""
    n = len(y)
    lo = float(s.min())
    rng = max(float(s.max()) - lo, 1e-9)
    d = np.abs(np.diff(y))
    dh = np.diff(y[n // 2:])  # the second half's moves
    noise = float(np.median(d)) if len(d) else 0.0
    noise_end = float(np.median(d[int(0.8 * n):])) if n > 5 else 0.0
    return {
        # the share of the second half where the loss does not move at all (a dead network)
        "stuck": float(np.mean(np.abs(dh) < 1e-4)) if len(dh) else 0.0,
        "noise_over_range": noise / rng,
        "noise_end_over_range": noise_end / rng,
        "noise_end_over_mid": math.log((noise_end + 1e-9) / (float(np.median(d[int(0.3 * n):int(0.6 * n) + 1])) + 1e-9))
        if n > 5 else 0.0,
        "falling_share": float(np.mean(np.diff(s) <= 0)) if n > 1 else 0.5,
        "end_over_range": (end - float(y[0])) / rng,
        "fall_over_range": (float(y[0]) - end) / rng,
        "end_above_min": (end - lo) / rng,
        "mid_above_end": (mid - end) / rng,
        "late_peak": float(s[int(0.25 * n):].max() - end) / rng if n > 1 else 0.0,
        "head_over_range": float(s[: max(int(0.25 * n), 1)].max() - lo) / rng,
        "fall_over_noise": min((float(y[0]) - end) / max(noise, 1e-6), 1e6),
        "band_mid_over_fall": float(np.median(resid[int(0.3 * n):int(0.6 * n) + 1])) / max(abs(start - end), 1e-9),
        # the second half's step-to-step moves on the log scale: their size, and how one-sided they are
        # (a steady slide is -1, a flat line that only jitters is 0)
        "half2_moves": float(np.median(np.abs(dh))) if len(dh) else 0.0,
        "half2_direction": float(np.mean(np.sign(dh))) if len(dh) else 0.0,
    }


def _share(y: np.ndarray, frac: float) -> float:
    """The share of the fall from the start to the end level done by ``frac`` of the curve."""
    start, end = _seg(y, 0.0, 0.05), _seg(y, 0.9, 1.0)
    return (start - _seg(y, frac - 0.05, frac + 0.05)) / max(abs(start - end), 1e-9)


# --------------------------------------------------------------------------------------------------
# The rules: NaN/inf and explosions by rule, the rest by a forest fitted on the tuning part of the corpus
# only (tests/data/loss_curves.md).

#: A finite curve whose largest point is this many times its start has exploded (diverged).
EXPLOSION = 1e4


#: The evidence the forest reads: log-scale falls, shares of the fall, ranges and noise (no raw loss
#: level, no point count).
FOREST_FEATURES = (
    "head_rise", "head_peak", "first_drop", "fall", "fall_from_first", "fall_share_10pct", "fall_share_25pct",
    "fall_share_50pct", "slide_second_half", "slide_last_quarter", "band_mid", "band_end", "swing", "min_at",
    "rebound", "explosion", "first_drop_share", "fall_after_first", "late_fall_share",
    *(f"profile_{k}" for k in range(10)),
    "falling_steps", "trend_over_band", "rest_fall_share_25pct", "rest_fall_share_50pct",
    "stuck", "noise_over_range", "noise_end_over_range", "noise_end_over_mid", "falling_share", "end_over_range",
    "fall_over_range", "end_above_min", "mid_above_end", "late_peak", "head_over_range", "fall_over_noise",
    "band_mid_over_fall", "half2_moves", "half2_direction",
)

_FOREST: dict[str, Any] | None = None


def _load_forest(path: Any) -> dict[str, Any]:
    """A forest written by ``fastlr._corpus.fit_forest``: flat node arrays of all its trees."""
    import json

    with np.load(path) as z:
        f: dict[str, Any] = {k: z[k] for k in ("feature", "threshold", "left", "right", "value", "roots")}
        meta = json.loads(bytes(z["meta"]).decode())
    if tuple(meta["features"]) != FOREST_FEATURES:
        raise RuntimeError(f"the forest in {path} was fitted on other evidence: fit it again "
                           "(python -m fastlr._corpus --fit tests/data/loss_curves.npz)")
    f["classes"] = tuple(meta["classes"])
    f["depth"] = int(meta["forest"]["max_depth"]) + 1
    f["meta"] = meta
    return f


def _forest() -> dict[str, Any]:
    """The random forest fitted on the tuning part of fastlr's corpus (``python -m fastlr._corpus --fit``),
    read once from the package's ``_diagnose_forest.npz``."""
    global _FOREST
    if _FOREST is None:
        import pathlib

        _FOREST = _load_forest(pathlib.Path(__file__).with_name("_diagnose_forest.npz"))
    return _FOREST


def verdict_shares(ev: dict[str, float], forest: dict[str, Any] | None = None) -> dict[str, float]:
    """The forest's vote: the mean over its trees of the class shares of the leaf each tree reaches
    (scikit-learn's ``predict_proba``). The features are compared in float32, as scikit-learn's
    trees compare them."""
    f = _forest() if forest is None else forest
    x = np.array([ev[k] for k in FOREST_FEATURES], dtype=np.float32).astype(np.float64)
    node = f["roots"].copy()
    feature, threshold, left, right = f["feature"], f["threshold"], f["left"], f["right"]
    for _ in range(f["depth"]):
        feat = feature[node]
        inner = feat >= 0
        if not inner.any():
            break
        go_left = x[np.where(inner, feat, 0)] <= threshold[node]
        node = np.where(inner, np.where(go_left, left[node], right[node]), node)
    shares = f["value"][node].mean(axis=0)
    return {c: float(v) for c, v in zip(f["classes"], shares)}


def classify(ev: dict[str, float]) -> str:
    """The verdict from the evidence of a finite curve: an explosion, else the forest's vote."""
    if ev["explosion"] >= math.log(EXPLOSION):
        return "diverged"
    shares = verdict_shares(ev)
    return max(shares, key=shares.__getitem__)  # the first of equal shares, as scikit-learn's argmax


# --------------------------------------------------------------------------------------------------
# Diagnosis.


def _fmt_lr(v: float) -> str:
    return f"{v:.3g}"


def _advice(verdict: str, span: tuple[float, float], peak: float | None, late: float | None) -> str:
    if verdict == "diverged":
        if peak is not None:
            return (f"the loss diverged (NaN, inf or an explosion from step {span[0]:g}): lower the peak lr from "
                    f"{_fmt_lr(peak)} to about {_fmt_lr(peak / 10)}, check the data and the loss for NaN, "
                    "and train again from scratch")
        return (f"the loss diverged (NaN, inf or an explosion from step {span[0]:g}): lower the lr (10x or more), "
                "check the data and the loss for NaN, and train again from scratch")
    if verdict == "lr_too_high":
        if peak is not None:
            return f"lower the peak lr from {_fmt_lr(peak)} to about {_fmt_lr(peak / 10)} and train again from scratch"
        return "the loss rises or swings from the start: lower the initial lr (about 10x) and train again from scratch"
    if verdict == "lr_too_high_late":
        if late is not None:
            return (f"decay the later lr: from {_fmt_lr(late)} (at step {span[0]:g}) down to about "
                    f"{_fmt_lr(late / 10)} or less (cosine or step decay), and train the last epochs again")
        return ("the loss fell fast, then went flat in a wide band from step "
                f"{span[0]:g}: lower the later lr (decay it) and train the last epochs again")
    if verdict == "lr_too_low":
        if peak is not None:
            return f"raise the peak lr from {_fmt_lr(peak)} to about {_fmt_lr(peak * 10)} and train again from scratch"
        return "the loss falls slowly throughout: raise the lr (about 10x) and train again from scratch"
    if peak is not None:
        return f"the loss slides down steadily: the lr (peak {_fmt_lr(peak)}) is fine"
    return "the loss slides down steadily: the lr is fine"


@dataclass(frozen=True)
class Diagnosis:
    """What :func:`diagnose` found.

    Attributes
    ----------
    verdict : str
        ``"healthy"``, ``"lr_too_high"``, ``"lr_too_high_late"``, ``"lr_too_low"`` or ``"diverged"``.
    advice : str
        One sentence with the remedy (naming an lr when the lrs were given).
    evidence : dict
        The numbers behind the verdict.
    span : tuple
        The first and last step the verdict is about.
    """

    verdict: str
    advice: str
    evidence: dict[str, float]
    span: tuple[float, float]
    steps: np.ndarray = field(repr=False, compare=False)
    losses: np.ndarray = field(repr=False, compare=False)

    def __str__(self) -> str:
        return f"{self.verdict} (steps {self.span[0]:g} to {self.span[1]:g}): {self.advice}"

    def plot(self, ax: Any = None, terminal: bool | None = None) -> Any:
        """Plot the loss with the span of the verdict marked.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on; a new figure when None.
        terminal : bool, optional
            True: fastlr's terminal plot even when matplotlib is installed.

        Returns
        -------
        matplotlib.figure.Figure or str
            The figure when matplotlib is installed (and ``terminal`` is not True); otherwise the
            terminal plot as text (print it).
        """
        if not terminal:
            try:
                import matplotlib.pyplot as plt
            except ModuleNotFoundError:
                terminal = True
        if terminal:
            return self._terminal_plot()
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 4))
        else:
            fig = ax.figure
        ok = np.isfinite(self.losses)
        ax.plot(self.steps[ok], self.losses[ok], linewidth=1.0, label="loss")
        ax.axvspan(self.span[0], self.span[1], color="tab:red" if self.verdict != "healthy" else "tab:green",
                   alpha=0.15, label=f"{self.verdict}")
        if ok.any() and self.losses[ok].min() > 0 and self.losses[ok].max() / self.losses[ok].min() > 100:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(self.advice, fontsize=8, wrap=True)
        ax.grid(alpha=0.25)
        ax.legend(fontsize=8, loc="best")
        return fig

    def _terminal_plot(self, width: int | None = None, height: int = 14, ascii_only: bool = False) -> str:
        from . import schedules as S
        from ._plot import terminal_plot

        ok = np.isfinite(self.losses)
        steps, losses = self.steps[ok], self.losses[ok]
        if len(steps) == 0:
            return f"(no finite loss to draw)\n  {self.verdict}: {self.advice}"
        if len(steps) == 1:
            steps, losses = np.array([steps[0], steps[0] + 1.0]), np.repeat(losses, 2)
        span = self.span
        base = type(S.piecewise_linear([0], [0.0]))

        class _Curve(base):  # type: ignore[misc, valid-type]
            def _boundaries(self) -> list[float]:  # the span's ends as the plot's vertical rules
                return [float(b) for b in span if steps[0] < b < steps[-1]]

        curve = _Curve([float(s) for s in steps], [float(v) for v in losses])
        text = terminal_plot([("loss", curve)], steps=int(steps[-1]) + 1, width=width, height=height,
                             ascii_only=ascii_only)
        lines = [ln for ln in text.split("\n") if "phase boundaries" not in ln and "horizon" not in ln]
        lines.append(f"  {'|' if ascii_only else '│'} {self.verdict}: steps {span[0]:g} to {span[1]:g}")
        return "\n".join(lines)


def _as_1d(name: str, x: Any) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a sequence of real numbers: {e}") from None
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    return a


def _span_and_lrs(verdict: str, ev: dict[str, float], steps: np.ndarray, x: np.ndarray,
                  lrs: np.ndarray | None, first_bad: int | None) -> tuple[tuple[float, float], float | None,
                                                                           float | None]:
    n = len(x)
    lo, hi = float(steps[0]), float(steps[-1])
    if verdict == "diverged" and first_bad is not None:
        span = (float(steps[first_bad]), hi)
    elif verdict == "diverged":  # an explosion: from where it is half-way there (on a log scale)
        _, y, _, start, _ = _read(x)
        span = (float(steps[int(np.argmax(y - start >= 0.5 * math.log(EXPLOSION)))]), hi)
    elif verdict == "lr_too_high":
        span = (lo, float(steps[max(int(0.2 * (n - 1)), 0)]))
    elif verdict == "lr_too_high_late":  # from where the fast drop has done 90% of the fall
        _, _, sm, start, end = _read(x)
        below = sm <= end + 0.1 * (start - end)
        span = (float(steps[int(np.argmax(below)) if below.any() else n // 4]), hi)
    else:
        span = (lo, hi)
    peak = late = None
    if lrs is not None:
        fin = lrs[np.isfinite(lrs)]
        peak = float(fin.max()) if fin.size else None
        inside = lrs[(steps >= span[0]) & (steps <= span[1]) & np.isfinite(lrs)]
        late = float(np.median(inside)) if inside.size else peak
    return span, peak, late


def diagnose(losses: Sequence[float] | np.ndarray, *, steps: Sequence[float] | np.ndarray | None = None,
             lrs: Sequence[float] | np.ndarray | None = None) -> Diagnosis:
    """Diagnose a training-loss curve: is the learning rate too high, too low, or fine?

    Parameters
    ----------
    losses : sequence of float
        The training loss, per step or per epoch, raw or smoothed (at least 2 points).
    steps : sequence of float, optional
        The step of each loss (increasing); ``0, 1, 2, ...`` by default.
    lrs : sequence of float, optional
        The lr at each of those steps; with them the advice names an lr.

    Returns
    -------
    Diagnosis
        ``verdict`` (``"healthy"``, ``"lr_too_high"``: the loss rises or swings from the start,
        ``"lr_too_high_late"``: a fast drop, then flat or swinging in a wide band, ``"lr_too_low"``:
        a slow fall throughout, ``"diverged"``: NaN, inf or an explosion), ``advice``, ``evidence``
        and ``span``; ``plot()`` draws it.

    Examples
    --------
    >>> import numpy as np, fastlr
    >>> t = np.arange(200)
    >>> fastlr.diagnose(2.3 - 0.002 * t).verdict
    'lr_too_low'
    >>> fastlr.diagnose([2.3, 1.9, float("nan")]).verdict
    'diverged'
    """
    x = _as_1d("losses", losses)
    if len(x) < 2:
        raise ValueError(f"diagnose needs at least 2 losses, got {len(x)}")
    if steps is None:
        st = np.arange(len(x), dtype=np.float64)
    else:
        st = _as_1d("steps", steps)
        if len(st) != len(x):
            raise ValueError(f"steps has {len(st)} entries, losses {len(x)}")
        if not np.all(np.isfinite(st)) or np.any(np.diff(st) <= 0):
            raise ValueError("steps must be finite and strictly increasing")
    lr = None
    if lrs is not None:
        lr = _as_1d("lrs", lrs)
        if len(lr) != len(x):
            raise ValueError(f"lrs has {len(lr)} entries, losses {len(x)}")
    bad = ~np.isfinite(x)
    if bad.any():
        i = int(np.argmax(bad))
        fin = x[:i]
        ev = {"points": float(len(x)), "first_nonfinite_step": float(st[i]), "first_nonfinite_value": float(x[i]),
              "last_finite_loss": float(fin[-1]) if len(fin) else math.nan,
              "nonfinite_points": float(bad.sum())}
        span, peak, late = _span_and_lrs("diverged", ev, st, x, lr, i)
        return Diagnosis("diverged", _advice("diverged", span, peak, late), ev, span, st, x)
    bs, bx = _bin(st, x)
    blr = _bin(st, lr)[1] if lr is not None else None
    ev = evidence(bx)
    ev["bin_width"] = float(bin_width(len(x)))
    verdict = classify(ev)
    span, peak, late = _span_and_lrs(verdict, ev, bs, bx, blr, None)
    return Diagnosis(verdict, _advice(verdict, span, peak, late), ev, span, st, x)


# --------------------------------------------------------------------------------------------------
# Online.


class LossMonitorWarning(UserWarning):
    """A new verdict of :class:`LossMonitor`."""


class LossMonitor:
    """:func:`diagnose`, online: feed it the loss each step; it warns once per new verdict.

    ``update()`` only appends to a buffer (and checks for NaN/inf): every ``FLUSH`` updates the
    buffer is folded, vectorised, into the same bins that :func:`diagnose` makes (O(1) memory), and
    the bins are diagnosed again only at geometrically spaced counts (every ``growth`` times more
    points), so an update costs well under 2 µs amortised. A NaN or inf loss gives ``"diverged"`` at
    once. ``verdict`` and ``diagnosis`` diagnose the points so far when they are out of date, so at
    the end of a run they agree with :func:`diagnose` of the whole curve.

    Which verdicts warn, and when (at most one warning per verdict):

    * ``"diverged"`` (a NaN, an inf, an explosion) at once;
    * ``"lr_too_high"`` (the loss rises or swings from the start) mid-run, once two scheduled checks
      in a row give it: it is about the start, and the remedy (lower the lr, restart) is best taken
      early;
    * ``"lr_too_high_late"`` and ``"lr_too_low"`` only at :meth:`finish` (the framework callbacks call
      it when training ends): they are about the whole run, and a run part way through its schedule
      looks like one of them (before its decay, a cosine run is a constant-lr run; measured on the
      corpus, 60% of healthy runs would have been warned about mid-run). ``verdict`` says them at
      any time.

    Parameters
    ----------
    warn : bool
        Warn (:class:`LossMonitorWarning`) as above.
    min_points : int
        No verdict before this many losses (the first steps of any run look like anything).
    growth : float
        Scheduled checks at counts growing by this factor (> 1).

    Examples
    --------
    >>> import fastlr
    >>> m = fastlr.LossMonitor(warn=False)
    >>> for step in range(300):
    ...     m.update(2.3 - 0.001 * step)
    >>> m.verdict
    'lr_too_low'
    """

    FLUSH = 1024
    #: The verdicts that warn mid-run (the rest warn at :meth:`finish`).
    EARLY = ("diverged", "lr_too_high")

    def __init__(self, *, warn: bool = True, min_points: int = 50, growth: float = 1.5):
        if not (isinstance(min_points, numbers.Integral) and min_points >= 2):
            raise ValueError(f"min_points must be an integer >= 2, got {min_points!r}")
        if not growth > 1:
            raise ValueError(f"growth must be > 1, got {growth!r}")
        self.warn = bool(warn)
        self.min_points = int(min_points)
        self.growth = float(growth)
        self.warned: list[str] = []
        self._buf: list[float] = []  # losses, steps and lrs not yet folded into the bins
        self._sbuf: list[float] = []
        self._lbuf: list[Any] = []
        self._sums = np.zeros((0, 3))  # per full-or-partial bin: sums of losses, steps, lrs
        self._cnt = 0  # points in the last bin
        self._w = 1
        self._n = 0
        self._lr_missing = False
        self._next = min(self.min_points, self.FLUSH)  # the next count at which update() does more
        self._next_check = self.min_points
        self._bad: tuple[float, float] | None = None  # (step, value) of the first non-finite loss
        self._diag: Diagnosis | None = None
        self._diag_n = -1
        self._last_checked: str | None = None  # the verdict of the previous scheduled check

    def __len__(self) -> int:
        return self._n

    def update(self, loss: float, step: float | None = None, lr: float | None = None) -> None:
        """Record the loss at ``step`` (default: the count of updates so far), with its ``lr`` if known."""
        v = float(loss)
        n = self._n
        self._buf.append(v)
        self._sbuf.append(n if step is None else step)
        self._lbuf.append(lr)
        self._n = n = n + 1
        if v - v:  # NaN or inf (v - v is 0.0 for every finite v)
            if self._bad is None:
                self._bad = (float(self._sbuf[-1]), v)
                self._refresh(warn=True)
        elif n >= self._next:
            self._fold()
            if n >= self._next_check:
                self._refresh(warn=True)
            self._next = min(self._next_check, n + self.FLUSH)

    def _fold(self) -> None:
        """Fold the buffer into the bins: fill the last bin up to the width, then whole bins; halve
        the bins (pairs of full bins become one of twice the width) when there would be too many."""
        if not self._buf:
            return
        x = np.asarray(self._buf, dtype=np.float64)
        st = np.asarray(self._sbuf, dtype=np.float64)
        lrs = self._lbuf
        if any(v is None for v in lrs):
            self._lr_missing = True
            lr = np.zeros(len(lrs))
        else:
            lr = np.asarray(lrs, dtype=np.float64)
        self._buf, self._sbuf, self._lbuf = [], [], []
        vals = np.stack([x, st, lr], axis=1)
        if self._bad is not None:  # after a NaN/inf the verdict stays; keep the finite points only
            vals = vals[np.isfinite(x)]
        i = 0
        while i < len(vals):
            if self._cnt and self._cnt < self._w:  # the last bin has room
                k = min(self._w - self._cnt, len(vals) - i)
                self._sums[-1] += vals[i:i + k].sum(axis=0)
                self._cnt += k
                i += k
                continue
            if len(self._sums) == MAX_BINS:
                self._sums = self._sums.reshape(-1, 2, 3).sum(axis=1)
                self._w *= 2
                self._cnt = self._w
                continue
            room = MAX_BINS - len(self._sums)
            whole = min((len(vals) - i) // self._w, room)
            if whole:
                block = vals[i:i + whole * self._w].reshape(whole, self._w, 3).sum(axis=1)
                self._sums = np.concatenate([self._sums, block])
                self._cnt = self._w
                i += whole * self._w
            else:  # fewer than w points left: they start a new, partial bin
                self._sums = np.concatenate([self._sums, vals[i:].sum(axis=0, keepdims=True)])
                self._cnt = len(vals) - i
                i = len(vals)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean step, loss and lr of each bin."""
        self._fold()
        counts = np.full(len(self._sums), float(self._w))
        if counts.size:
            counts[-1] = self._cnt
        m = self._sums / counts[:, None] if counts.size else self._sums
        return m[:, 1], m[:, 0], m[:, 2]

    def _refresh(self, warn: bool) -> None:
        self._next_check = max(int(self._n * self.growth), self._n + 1)
        if self._bad is None and self._n < self.min_points:
            return
        if self._bad is not None and self._diag is not None and self._diag.verdict == "diverged":
            self._diag_n = self._n
            return
        steps, losses, lrs = self._arrays()
        lr = None if self._lr_missing else lrs
        if self._bad is not None:  # diagnose's verdict on a curve with a NaN/inf: add the point
            if len(losses) == 0:
                steps, losses = np.array([self._bad[0] - 1.0]), np.array([math.nan])
                lr = None
            steps, losses = np.append(steps, self._bad[0]), np.append(losses, self._bad[1])
            if lr is not None:
                lr = np.append(lr, lr[-1])
        if len(losses) < 2:
            return
        d = _diagnose_binned(steps, losses, lr)
        self._diag, self._diag_n = d, self._n
        if warn:  # a scheduled check (or a NaN/inf): warn on the verdicts that are about the start
            v, before = d.verdict, self._last_checked
            self._last_checked = v
            if v == "diverged" or (v in self.EARLY and v == before):
                self._warn(d, steps[-1], stacklevel=4)

    def _warn(self, d: Diagnosis, step: float, stacklevel: int) -> None:
        if self.warn and d.verdict != "healthy" and d.verdict not in self.warned:
            self.warned.append(d.verdict)
            warnings.warn(f"fastlr.LossMonitor: {d.verdict} at step {step:g}: {d.advice}", LossMonitorWarning,
                          stacklevel=stacklevel)

    def finish(self) -> Diagnosis | None:
        """The diagnosis of the whole run, at its end: warns (once) on any verdict other than
        ``"healthy"`` not warned about yet. None before ``min_points`` losses (unless one was NaN/inf)."""
        d = self.diagnosis
        if d is not None:
            self._warn(d, float(d.span[1]) if d.verdict != "diverged" else float(d.span[0]), stacklevel=3)
        return d

    @property
    def diagnosis(self) -> Diagnosis | None:
        """The diagnosis of the losses so far (None before ``min_points`` losses, unless one was NaN/inf)."""
        if self._diag_n != self._n:
            self._refresh(warn=False)
        return self._diag

    @property
    def verdict(self) -> str | None:
        """The verdict of the losses so far (None before ``min_points`` losses, unless one was NaN/inf)."""
        d = self.diagnosis
        return None if d is None else d.verdict


def _diagnose_binned(steps: np.ndarray, losses: np.ndarray, lrs: np.ndarray | None) -> Diagnosis:
    """:func:`diagnose` of bins that are already bins (their count is at most MAX_BINS, so ``_bin``
    leaves them as they are); the steps may repeat only where the caller passed repeated steps."""
    if np.any(np.diff(steps) <= 0):  # steps the caller gave out of order: diagnose by position
        steps = np.arange(len(losses), dtype=np.float64)
    return diagnose(losses, steps=steps, lrs=lrs)


# --------------------------------------------------------------------------------------------------
# Files: ``python -m fastlr diagnose FILE``.

_LOSS_NAMES = ("loss", "train/loss", "train_loss", "training_loss", "train/loss_step", "train_loss_step", "value")
_STEP_NAMES = ("step", "global_step", "trainer/global_step", "_step", "epoch")
_LR_NAMES = ("lr", "learning_rate", "train/learning_rate", "train/lr", "lr-sgd", "lr-adam", "lr-adamw")


def _column(header: list[str], names: Sequence[str], what: str, required: bool) -> int | None:
    low = [h.strip().lower() for h in header]
    for name in names:
        if name in low:
            return low.index(name)
    for name in names:  # W&B exports name columns "<run> - train/loss" (and add __MIN/__MAX ones)
        for i, h in enumerate(low):
            if h.endswith(" - " + name):
                return i
    if required:
        raise ValueError(f"no {what} column: expected one of {', '.join(names)} (the columns are {', '.join(header)})")
    return None


def read_curve(path: str) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """A loss curve from a file: ``(steps or None, losses, lrs or None)``.

    A ``.json`` file holds a list of losses, a list of ``{"step": ..., "loss": ...}`` objects, or an
    object with ``"losses"`` (and optionally ``"steps"`` and ``"lrs"``); null is NaN. Any other file is
    CSV with a header: a ``step`` column (TensorBoard's ``Step``, W&B's ``Step`` or ``trainer/global_step``),
    a ``loss``, ``train/loss`` or ``Value`` column (W&B's ``<run> - train/loss`` too), and optionally an
    ``lr`` or ``learning_rate`` column. Rows with an empty loss are skipped.
    """
    import csv
    import json

    def num(v: Any) -> float:
        return math.nan if v is None else float(v)

    if path.lower().endswith(".json"):
        with open(path) as f:
            data = json.load(f)
        if isinstance(data, dict):
            if "losses" not in data:
                raise ValueError("a JSON object needs a 'losses' list")
            losses = np.array([num(v) for v in data["losses"]])
            steps = np.array([num(v) for v in data["steps"]]) if data.get("steps") is not None else None
            lrs = np.array([num(v) for v in data["lrs"]]) if data.get("lrs") is not None else None
            return steps, losses, lrs
        if not isinstance(data, list):
            raise ValueError("a JSON file must hold a list of losses, a list of objects, or an object")
        if data and all(isinstance(r, dict) for r in data):
            key = next((k for k in ("loss", "train/loss", "train_loss") if k in data[0]), None)
            if key is None:
                raise ValueError(f"the JSON objects have no loss key (keys: {', '.join(data[0])})")
            rows = [r for r in data if r.get(key, "") != ""]
            losses = np.array([num(r[key]) for r in rows])
            steps = np.array([num(r["step"]) for r in rows]) if all("step" in r for r in rows) else None
            lkey = next((k for k in ("lr", "learning_rate") if k in data[0]), None)
            lrs = np.array([num(r.get(lkey)) for r in rows]) if lkey else None
            return steps, losses, lrs
        return None, np.array([num(v) for v in data]), None
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path} is empty")
    header, body = rows[0], rows[1:]
    li = _column(header, _LOSS_NAMES, "loss", True)
    si = _column(header, _STEP_NAMES, "step", False)
    ri = _column(header, _LR_NAMES, "lr", False)
    body = [r for r in body if len(r) > li and r[li].strip() != ""]
    losses = np.array([float(r[li]) for r in body])
    steps = np.array([float(r[si]) for r in body]) if si is not None else None
    lrs = None
    if ri is not None and all(len(r) > ri and r[ri].strip() for r in body):
        lrs = np.array([float(r[ri]) for r in body])
    return steps, losses, lrs


def run_diagnose(path: str, ascii_only: bool = False, width: int | None = None, height: int = 14) -> int:
    """``python -m fastlr diagnose FILE``: print the verdict, the advice and a terminal plot."""
    steps, losses, lrs = read_curve(path)
    d = diagnose(losses, steps=steps, lrs=lrs)
    print(f"verdict: {d.verdict}")
    print(f"advice:  {d.advice}")
    print(f"span:    steps {d.span[0]:g} to {d.span[1]:g} of {len(losses)} points")
    print(d._terminal_plot(width=width, height=height, ascii_only=ascii_only))
    return 0
