"""The learning-rate range test: :func:`fastlr.find_lr` and its :class:`LRFindResult`.

The lr grid comes from fastlr's own schedules (a table computed in C++); the loss smoothing, the stop
rule and the suggestion rules follow torch-lr-finder and fastai, so that their suggestions can be
compared. Torch is imported inside the functions that need it, so :class:`LRFindResult` (and
``import fastlr``) work without torch.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import schedules as S

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["LRFindResult", "find_lr"]

#: torch-lr-finder's ``LRFinder.plot`` defaults, which its "steepest" suggestion uses.
STEEPEST_SKIP_START = 10
#: Points left out at the end by every rule (torch-lr-finder's ``skip_end``, fastai's ``[:-5]``).
SKIP_END = 5
_METHODS = ("steepest", "valley", "minimum")
_MODES = ("exp", "linear")


# --------------------------------------------------------------------------------------------------
# Suggestion rules: pure functions of the recorded curve, on numpy arrays.


def _finite_prefix(losses: np.ndarray) -> np.ndarray:
    """The losses before the first non-finite one (a NaN or inf point ends a range test)."""
    bad = np.flatnonzero(~np.isfinite(losses))
    return losses[: bad[0]] if bad.size else losses


def _steepest(smoothed: np.ndarray) -> int:
    """torch-lr-finder's ``plot(suggest_lr=True)``: ``argmin(np.gradient(losses))`` over the points
    ``[10:-5]``; returns the index of that point."""
    smoothed = _finite_prefix(smoothed)
    need = STEEPEST_SKIP_START + SKIP_END + 2
    if len(smoothed) < need:
        raise ValueError(
            f"'steepest' needs at least {need} points with a finite loss (it skips the first "
            f"{STEEPEST_SKIP_START} and the last {SKIP_END}), got {len(smoothed)}: run more steps"
        )
    window = smoothed[STEEPEST_SKIP_START:-SKIP_END]
    return STEEPEST_SKIP_START + int(np.gradient(window).argmin())


def _fastai_window(smoothed: np.ndarray, num_steps: int, method: str) -> tuple[int, np.ndarray]:
    """fastai's ``lr_find`` window: points ``[num_steps // 10 : -5]``, cut at the first non-finite loss.
    Returns the offset of the window and its losses."""
    lo = num_steps // 10
    window = smoothed[lo:-SKIP_END] if len(smoothed) > SKIP_END else smoothed[:0]
    window = _finite_prefix(window)
    if len(window) == 0:
        raise ValueError(
            f"{method!r} needs at least one point with a finite loss after skipping the first "
            f"num_steps // 10 = {lo} and the last {SKIP_END} points, got {len(smoothed)} points in all: "
            "run more steps"
        )
    return lo, window


def _valley_index(losses: np.ndarray) -> int:
    """fastai's ``valley``: the longest decreasing run of losses, and a point 1/2 of the way into its
    middle third. Index into ``losses``.

    fastai's double loop computes, for each point, the length ``lds[i]`` of the longest strictly
    decreasing subsequence ending there; the run ends at the first point of the longest
    (``max_end``) and is taken to start at ``max_end - lds[max_end]`` (0 when no point has a longer run
    than the first). The same here, with the inner loop in numpy. The start may be -1 (a run from the first point), and then fastai's index counts
    from the end of the list; that is kept, for equal answers.
    """
    n = len(losses)
    lds = np.ones(n, dtype=np.int64)
    for i in range(1, n):
        before = lds[:i][losses[:i] > losses[i]]
        if before.size:
            lds[i] = before.max() + 1
    max_end = int(np.argmax(lds))  # the first longest, as fastai's strict ``<`` update keeps it
    # fastai sets max_start only when a run beats the first point's (it starts at 0, 0).
    max_start = max_end - int(lds[max_end]) if max_end > 0 else 0
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return idx if idx >= 0 else n + idx


# --------------------------------------------------------------------------------------------------
# The result.


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass
class LRFindResult:
    """The curve recorded by :func:`find_lr`, and the learning rates it suggests.

    Attributes
    ----------
    lrs : list of float
        The lr of the first param group at each step taken (the other groups follow their own
        ratio, or their own ``start_lr``/``end_lr``).
    losses : list of float
        The training loss of each step (the loss of the step that stopped the test included; it may
        be NaN or inf).
    smoothed_losses : list of float
        The bias-corrected exponential moving average of ``losses`` (see :func:`find_lr`).
    stopped_early : bool
        True when the loss became NaN or inf, or diverged, before ``num_steps`` steps.
    mode : str
        ``"exp"`` or ``"linear"``: how the lr grid was spaced.
    num_steps : int, optional
        The number of steps asked for (``len(lrs)`` when not given); fastai's rules skip
        ``num_steps // 10`` points at the start.
    """

    lrs: list[float]
    losses: list[float]
    smoothed_losses: list[float]
    stopped_early: bool
    mode: str = "exp"
    num_steps: int | None = None

    def __post_init__(self) -> None:
        if not (len(self.lrs) == len(self.losses) == len(self.smoothed_losses)):
            raise ValueError(
                f"lrs, losses and smoothed_losses must have the same length, got {len(self.lrs)}, "
                f"{len(self.losses)} and {len(self.smoothed_losses)}"
            )
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        if self.num_steps is None:
            self.num_steps = len(self.lrs)

    @property
    def suggestion(self) -> float:
        """The lr suggested by the default rule, ``suggest("steepest")`` (a ValueError when the test
        recorded too few points)."""
        return self.suggest("steepest")

    def suggest(self, method: str = "steepest") -> float:
        """A learning rate read off the smoothed loss curve.

        Parameters
        ----------
        method : {"steepest", "valley", "minimum"}
            * ``"steepest"`` (torch-lr-finder's ``plot(suggest_lr=True)``): with ``L`` the smoothed
              losses of points ``[10:-5]``, the lr at ``argmin(np.gradient(L))``, the steepest
              descent of the loss per step, so against ``log lr`` in ``"exp"`` mode and against
              ``lr`` in ``"linear"`` mode. Needs 17 points.
            * ``"valley"`` (fastai's ``valley``): over points ``[num_steps // 10 : -5]``, the
              longest decreasing run of losses from ``start`` to ``end``; the lr at
              ``start + int(d / 3) + int(d / 6)`` with ``d = end - start``, a point in the run's
              middle third.
            * ``"minimum"`` (fastai's ``minimum``): over the same points, the lr of the smallest
              smoothed loss, divided by 10.

            All rules ignore the points from the first NaN or inf loss on.

        Returns
        -------
        float

        Raises
        ------
        ValueError
            For an unknown method, or when the test recorded too few points for the rule.
        """
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        lrs = np.asarray(self.lrs, dtype=np.float64)
        smoothed = np.asarray(self.smoothed_losses, dtype=np.float64)
        if method == "steepest":
            return float(lrs[_steepest(smoothed)])
        assert self.num_steps is not None
        lo, window = _fastai_window(smoothed, self.num_steps, method)
        if method == "valley":
            return float(lrs[lo + _valley_index(window)])
        return float(lrs[lo + int(np.argmin(window))]) / 10

    def _suggestions(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for m in _METHODS:
            try:
                out[m] = self.suggest(m)
            except ValueError:
                out[m] = None
        return out

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-safe values: lists of floats, with ``None`` for NaN and inf losses and
        for suggestions that need more points.

        Returns
        -------
        dict
            ``lrs``, ``losses``, ``smoothed_losses``, ``stopped_early``, ``mode``, ``num_steps``,
            ``suggestion`` (steepest) and ``suggestions`` (every rule).
        """
        sugg = self._suggestions()
        return {
            "lrs": [float(x) for x in self.lrs],
            "losses": [_json_float(float(x)) for x in self.losses],
            "smoothed_losses": [_json_float(float(x)) for x in self.smoothed_losses],
            "stopped_early": bool(self.stopped_early),
            "mode": self.mode,
            "num_steps": self.num_steps,
            "suggestion": sugg["steepest"],
            "suggestions": sugg,
        }

    def plot(self, ax: Any = None) -> Any:
        """Plot the smoothed loss against the lr, with the suggestion marked.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on; a new figure when None.

        Returns
        -------
        matplotlib.figure.Figure or str
            The figure (log lr axis in ``"exp"`` mode) when matplotlib is installed; otherwise
            fastlr's terminal plot as text (the loss against the step; print it).
        """
        try:
            import matplotlib.pyplot as plt
        except ModuleNotFoundError:
            return self._terminal_plot()
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 4))
        else:
            fig = ax.figure
        ax.plot(self.lrs, self.losses, color="0.75", linewidth=0.8, label="loss")
        ax.plot(self.lrs, self.smoothed_losses, linewidth=1.6, label="smoothed loss")
        try:
            k = _steepest(np.asarray(self.smoothed_losses, dtype=np.float64))
        except ValueError:
            pass
        else:
            ax.scatter([self.lrs[k]], [self.smoothed_losses[k]], s=60, color="red", zorder=3,
                       label=f"steepest: {self.lrs[k]:.2e}")
        if self.mode == "exp":
            ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.25)
        ax.legend(fontsize=8, loc="best")
        return fig

    def _terminal_plot(self) -> str:
        from ._plot import terminal_plot

        n = len(self.smoothed_losses)
        if n == 0:
            return "(no points)"
        smoothed = np.asarray(self.smoothed_losses, dtype=np.float64)
        finite = _finite_prefix(smoothed)
        if len(finite) == 0:
            finite = np.zeros(1)
        text = terminal_plot([("smoothed loss", _loss_curve(finite))], steps=max(len(finite), 2))
        lines = [text, f"  step i has lr {self.lrs[0]:.3g} .. {self.lrs[-1]:.3g} ({self.mode} spacing)"]
        try:
            k = _steepest(smoothed)
            lines.append(f"  suggestion (steepest): lr {self.lrs[k]:.3g} at step {k}")
        except ValueError as e:
            lines.append(f"  no suggestion: {e}")
        return "\n".join(lines)


def _loss_curve(values: np.ndarray) -> S.Schedule:
    """The recorded values as a schedule for the terminal plot: a piecewise-linear schedule through
    them, with no phase boundaries (one per point would draw a rule in every column)."""
    base = type(S.piecewise_linear([0], [0.0]))

    class _LossCurve(base):  # type: ignore[misc, valid-type]
        def _boundaries(self) -> list[float]:
            return []

    return _LossCurve(list(range(len(values))), [float(v) for v in values])


# --------------------------------------------------------------------------------------------------
# Argument checks.


def _real(name: str, x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__} {x!r}")
    v = float(x)
    if math.isnan(v):
        raise ValueError(f"{name} must not be NaN")
    return v


def _check_training(optimizer: Any, model: Any, loss_fn: Any, train_step: Any) -> None:
    """A TypeError naming the missing or extra argument unless exactly one way to train is given."""
    if not (hasattr(optimizer, "param_groups") and hasattr(optimizer, "state") and hasattr(optimizer, "step")):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if loss_fn is not None and train_step is not None:
        raise TypeError(
            "find_lr() takes either loss_fn= (with model=) or train_step=, not both: "
            "drop loss_fn= or train_step="
        )
    if loss_fn is None and train_step is None:
        raise TypeError(
            "find_lr() needs a way to train: loss_fn= with model= (batches are (inputs, targets)), "
            "or train_step= (a callable that runs one training step on a batch and returns the loss)"
        )
    if loss_fn is not None:
        if model is None:
            raise TypeError("loss_fn= needs model=: find_lr runs loss_fn(model(inputs), targets)")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        if not callable(model):
            raise TypeError(f"model must be callable (a torch.nn.Module), got {type(model).__name__}")
    elif not callable(train_step):
        raise TypeError(f"train_step must be callable, got {type(train_step).__name__}")


def _lr_pairs(start_lr: Any, end_lr: Any, n_groups: int, mode: str) -> tuple[list[tuple[float, float]], bool]:
    """Validated ``(start, end)`` per group, or one pair for group 0; and whether per group."""
    per_group = isinstance(start_lr, (list, tuple)) or isinstance(end_lr, (list, tuple))
    if per_group:
        starts = list(start_lr) if isinstance(start_lr, (list, tuple)) else [start_lr] * n_groups
        ends = list(end_lr) if isinstance(end_lr, (list, tuple)) else [end_lr] * n_groups
        for name, xs in (("start_lr", starts), ("end_lr", ends)):
            if len(xs) != n_groups:
                raise ValueError(f"{name} has {len(xs)} values for {n_groups} param groups")
        names = [(f"start_lr[{g}]", f"end_lr[{g}]") for g in range(n_groups)]
    else:
        starts, ends, names = [start_lr], [end_lr], [("start_lr", "end_lr")]
    pairs = []
    for s, e, (sn, en) in zip(starts, ends, names):
        s, e = _real(sn, s), _real(en, e)
        if not (math.isfinite(s) and math.isfinite(e)):
            raise ValueError(f"{sn} and {en} must be finite, got {s!r} and {e!r}")
        if mode == "exp" and not s > 0:
            raise ValueError(f"{sn} must be > 0 in 'exp' mode (a geometric grid), got {s!r}")
        if mode == "linear" and s < 0:
            raise ValueError(f"{sn} must be >= 0, got {s!r}")
        if not e > s:
            raise ValueError(f"{en} must be greater than {sn} (a range test raises the lr), got {e!r} <= {s!r}")
        pairs.append((s, e))
    return pairs, per_group


def _lr_value(group: dict[str, Any]) -> float:
    lr = group["lr"]
    return float(lr.item()) if hasattr(lr, "item") else float(lr)


def _lr_plan(
    optimizer: Any, start_lr: Any, end_lr: Any, num_steps: int, mode: str
) -> tuple[list[list[float]], list[float] | None]:
    """The lr grid from fastlr schedules (C++ tables): one column per group for per-group ranges and
    no ratios; else one column (group 0) and each group's ratio to group 0 (1.0 for group 0 itself)."""
    groups = optimizer.param_groups
    if not groups:
        raise ValueError("the optimizer has no param groups")
    pairs, per_group = _lr_pairs(start_lr, end_lr, len(groups), mode)

    def grid(s: float, e: float) -> list[float]:
        sched = S.exponential(s, e / s, num_steps - 1) if mode == "exp" else S.linear(s, e, num_steps - 1)
        return sched.table(num_steps).tolist()

    if per_group:
        return [grid(s, e) for s, e in pairs], None
    lr0 = _lr_value(groups[0])
    if not (math.isfinite(lr0) and lr0 != 0):
        raise ValueError(
            f"the first param group's lr is {lr0!r}, so the groups' lr ratios are undefined: "
            "pass per-group lists as start_lr= and end_lr="
        )
    return [grid(*pairs[0])], [1.0] + [_lr_value(g) / lr0 for g in groups[1:]]


# --------------------------------------------------------------------------------------------------
# The snapshot that restore=True puts back.

_TENSOR, _LIST, _TUPLE, _DICT, _OBJ = range(5)
_ATOMIC = frozenset({float, int, bool, str, type(None)})
_MISSING = object()


def _same_objects(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _holds_tensor(v: Any) -> bool:
    import torch

    if isinstance(v, torch.Tensor):
        return True
    if type(v) in (list, tuple):
        return any(_holds_tensor(x) for x in v)
    if type(v) is dict:
        return any(_holds_tensor(x) for x in v.values())
    return False


class _Snapshot:
    """One copy of the tensors a range test changes, and references to the objects that hold them.

    Restoring writes the saved values back into the same tensor objects (``copy_``), so tensor
    identity holds: lr tensors that a CUDA graph, compiled code or a fastlr scheduler reads, the
    parameters the optimizer holds, optimizer state. Objects replaced during the test (a buffer or a
    state tensor reassigned) are put back, and state that the test created is removed.
    The copy lives in memory (clones on each tensor's device) or, with ``cache_dir``, in one
    ``torch.save`` file written from the live tensors (no copy in memory) and deleted on restore.
    """

    def __init__(self, optimizer: Any, model: Any, cache_dir: str | None) -> None:
        import torch

        self._live: list[torch.Tensor] = []
        self._index: dict[int, int] = {}
        # Modules: each parameter and buffer slot with the object it held.
        self._slots: list[tuple[Any, str, str, Any]] = []
        if model is not None:
            for mod in model.modules():
                for kind in ("_parameters", "_buffers"):
                    for name, t in getattr(mod, kind).items():
                        if t is not None:
                            self._add(t)
                        self._slots.append((mod, kind, name, t))
        # Optimizer: the groups (their dicts, params and other values), the state of each param.
        self._opt = optimizer
        self._groups = [(g, list(g["params"]), {k: self._pack(v) for k, v in g.items() if k != "params"})
                        for g in optimizer.param_groups]
        self._group_list = list(optimizer.param_groups)
        for _, params, _ in self._groups:
            for p in params:
                self._add(p)
        self._state = {p: (st, {k: self._pack(v) for k, v in st.items()}) for p, st in optimizer.state.items()}
        self._opt_called = optimizer.__dict__.get("_opt_called", _MISSING)
        # Gradients: the test starts from none, and the original grad tensors are kept untouched.
        params = {id(p): p for _, ps, _ in self._groups for p in ps}
        if model is not None:
            params.update((id(p), p) for p in model.parameters())
        self._grads = [(p, p.grad) for p in params.values()]
        # Torch's RNG streams.
        self._rng_cpu = torch.get_rng_state()
        self._rng_cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        self._path: str | None = None
        self._saved: list[torch.Tensor] | None = None
        with torch.no_grad():
            if cache_dir is None:
                self._saved = [t.detach().clone() for t in self._live]
            else:
                fd, self._path = tempfile.mkstemp(prefix="fastlr-find-lr-", suffix=".pt", dir=cache_dir)
                os.close(fd)
                try:
                    torch.save([t.detach() for t in self._live], self._path)
                except BaseException:
                    os.remove(self._path)
                    raise
        for p, _ in self._grads:
            p.grad = None

    def _add(self, t: Any) -> int:
        k = self._index.get(id(t))
        if k is None:
            k = self._index[id(t)] = len(self._live)
            self._live.append(t)
        return k

    def _pack(self, v: Any) -> tuple[int, Any]:
        import torch

        if type(v) in _ATOMIC:  # immutable: keep the object itself
            return (_OBJ, v)
        if isinstance(v, torch.Tensor):
            return (_TENSOR, self._add(v))
        if not _holds_tensor(v):  # floats, tuples of floats: deepcopy returns the same object
            return (_OBJ, copy.deepcopy(v))
        if type(v) in (list, tuple):
            return (_LIST if type(v) is list else _TUPLE, [self._pack(x) for x in v])
        if type(v) is dict:
            return (_DICT, {k: self._pack(x) for k, x in v.items()})
        return (_OBJ, copy.deepcopy(v))

    def _unpack(self, packed: tuple[int, Any]) -> Any:
        kind, v = packed
        if kind == _TENSOR:
            return self._live[v]
        if kind == _LIST:
            return [self._unpack(x) for x in v]
        if kind == _TUPLE:
            return tuple(self._unpack(x) for x in v)
        if kind == _DICT:
            return {k: self._unpack(x) for k, x in v.items()}
        return v

    def restore(self) -> None:
        """Put everything back (once) and drop the copy."""
        import torch

        try:
            saved = self._saved
            if saved is None:
                assert self._path is not None
                saved = torch.load(self._path, map_location="cpu", weights_only=True, mmap=True)
            with torch.no_grad():
                for mod, kind, name, t in self._slots:
                    if getattr(mod, kind).get(name, _MISSING) is not t:
                        getattr(mod, kind)[name] = t
                for t, s in zip(self._live, saved):
                    t.copy_(s)
            del saved
            self._saved = None
            opt = self._opt
            if not _same_objects(opt.param_groups, self._group_list):
                opt.param_groups[:] = self._group_list
            for g, params, values in self._groups:
                if not _same_objects(g["params"], params):
                    g["params"][:] = params
                for k in [k for k in g if k != "params" and k not in values]:
                    del g[k]
                for k, packed in values.items():
                    v = self._unpack(packed)
                    if g.get(k, _MISSING) is not v:
                        g[k] = v
            for p in [p for p in opt.state if p not in self._state]:
                del opt.state[p]
            for p, (st, values) in self._state.items():
                st.clear()
                st.update({k: self._unpack(packed) for k, packed in values.items()})
                if opt.state.get(p) is not st:
                    opt.state[p] = st
            if self._opt_called is _MISSING:
                opt.__dict__.pop("_opt_called", None)
            else:
                opt._opt_called = self._opt_called
            for p, grad in self._grads:
                p.grad = grad
            torch.set_rng_state(self._rng_cpu)
            if self._rng_cuda is not None:
                torch.cuda.set_rng_state_all(self._rng_cuda)
        finally:
            self.discard()

    def discard(self) -> None:
        """Drop the copy (delete the file) without restoring."""
        self._saved = None
        if self._path is not None:
            try:
                os.remove(self._path)
            except FileNotFoundError:
                pass
            self._path = None


# --------------------------------------------------------------------------------------------------
# The range test.


def _batches(data: Iterable[Any]) -> Iterable[Any]:
    """``data`` over and over (re-iterated when it runs out)."""
    reiterable = not isinstance(data, Iterator)
    it = iter(data)
    count = 0
    while True:
        for batch in it:
            count += 1
            yield batch
        if count == 0:
            raise ValueError("data yielded no batches")
        if not reiterable:
            raise ValueError(
                f"data ran out after {count} batches and is an iterator that cannot be re-iterated: "
                "pass a re-iterable (a list, a DataLoader) or more batches"
            )
        it = iter(data)
        count = 0


def _loss_value(loss: Any) -> float:
    if type(loss) is float:  # the common cases first: this runs every step
        return loss
    if hasattr(loss, "detach"):
        if loss.numel() != 1:
            raise TypeError(f"the loss must be a scalar, got a tensor of shape {tuple(loss.shape)}")
        return float(loss.detach().item())
    if isinstance(loss, bool) or not isinstance(loss, numbers.Real):
        raise TypeError(f"train_step must return the loss as a number or a 1-element tensor, got {type(loss).__name__}")
    return float(loss)


def _model_step(model: Any, optimizer: Any, loss_fn: Callable[..., Any], batch: Any, device: Any) -> float:
    """Forward, backward, ``optimizer.step()``, ``optimizer.zero_grad()``; the loss as a float."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(
            "with loss_fn=, each batch must be (inputs, targets), got "
            f"{type(batch).__name__}{f' of length {len(batch)}' if isinstance(batch, (tuple, list)) else ''}: "
            "use train_step= for other batches"
        )
    inputs, targets = batch
    if device is not None:
        if hasattr(inputs, "to"):
            inputs = inputs.to(device, non_blocking=True)
        if hasattr(targets, "to"):
            targets = targets.to(device, non_blocking=True)
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return _loss_value(loss)


def find_lr(
    optimizer: torch.optim.Optimizer,
    data: Iterable[Any],
    *,
    model: Any = None,
    loss_fn: Callable[[Any, Any], Any] | None = None,
    train_step: Callable[[Any], Any] | None = None,
    start_lr: float | Sequence[float] = 1e-7,
    end_lr: float | Sequence[float] = 10.0,
    num_steps: int = 100,
    mode: str = "exp",
    smooth: float = 0.05,
    diverge: float = 5.0,
    restore: bool = True,
    progress: bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> LRFindResult:
    """The learning-rate range test: train for a few steps with a rising lr and record the loss.

    Pass exactly one way to train:

    * ``loss_fn=`` with ``model=``: each batch is ``(inputs, targets)``; a step runs
      ``loss = loss_fn(model(inputs), targets)``, ``loss.backward()``, ``optimizer.step()`` and
      ``optimizer.zero_grad()``, with ``model.train()`` set for the test (tensors are moved to the
      device of the model's first parameter);
    * ``train_step=``: ``train_step(batch)`` runs one whole training step (any framework, AMP,
      gradient accumulation) and returns the loss (a number or a 1-element tensor). ``model=`` is
      optional here, and lets ``restore`` put back its buffers too.

    The lr of step ``i`` (``0 <= i < num_steps``), from :func:`fastlr.schedules.exponential` or
    :func:`fastlr.schedules.linear` tables (computed in C++)::

        exp:     lr_i = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))
        linear:  lr_i = start_lr + (end_lr - start_lr) * (i / (num_steps - 1))   (end_lr at the last step)

    With scalar ``start_lr``/``end_lr`` this is the first group's lr, and group ``g`` gets
    ``lr_i * (lr_g / lr_0)`` from the groups' lrs before the test, so layer-wise lrs keep their ratios;
    lists give each group its own range. Float lrs are assigned, tensor lrs written in place (``fill_``).

    The loss is smoothed with a bias-corrected exponential moving average (fastai's
    ``AvgSmoothLoss``; ``smooth`` is the weight of the new value)::

        avg_i = (1 - smooth) * avg_{i-1} + smooth * loss_i        (avg_{-1} = 0)
        smoothed_i = avg_i / (1 - (1 - smooth) ** (i + 1))

    torch-lr-finder seeds its average with the first loss instead, without the correction: the first
    point is the same, later ones weigh the first loss less here. The test stops early after a step
    whose loss is NaN or inf, or whose smoothed loss is above ``diverge * best`` (``best``: the
    smallest smoothed loss so far, counting this step; the rule applies while ``best > 0``).

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimizer to test; a fastlr (or torch) scheduler may be attached.
    data : iterable
        Batches (a DataLoader, a list, ...); re-iterated when it runs out before ``num_steps``.
    model : torch.nn.Module, optional
        Needed with ``loss_fn``; optional with ``train_step`` (its buffers are then restored too).
    loss_fn : callable, optional
        ``loss_fn(outputs, targets) -> loss tensor``.
    train_step : callable, optional
        ``train_step(batch) -> loss``: one whole training step.
    start_lr, end_lr : float or list of float
        The lr range (per group when lists); ``end_lr > start_lr``, and ``start_lr > 0`` in ``"exp"``
        mode (``>= 0`` in ``"linear"``).
    num_steps : int
        Steps in the test (>= 2); fewer when it stops early.
    mode : {"exp", "linear"}
        Geometric or evenly spaced lrs.
    smooth : float
        In ``(0, 1]``: the weight of each new loss in the average (1: no smoothing).
    diverge : float
        ``> 1``: the stop threshold, a multiple of the best smoothed loss (``math.inf``: never stop).
    restore : bool
        When True (the default), afterwards, also after an exception or KeyboardInterrupt, the
        model's parameters and buffers, the optimizer's param groups and state, the params' ``.grad``
        and torch's RNG state (CPU, and CUDA if initialised) are as they were, bit for bit, in the
        same tensor objects; so an attached scheduler steps on as if there had been no test. Without
        ``model`` only what the optimizer holds (its params, groups and state) and the RNG are
        restored. When False, everything is left as the test left it (lrs at the last tested values).
    progress : bool, optional
        A status line on stderr: None shows it when stderr is a terminal, True always (a line per
        10% when stderr is not a terminal), False never.
    cache_dir : str or path, optional
        Keep the copy for ``restore`` in a temporary file in this directory instead of memory (the
        file is deleted afterwards).

    Returns
    -------
    LRFindResult
        The recorded curve; ``result.suggestion`` is the lr suggested by the "steepest" rule.

    Raises
    ------
    TypeError
        When the way to train is missing, ambiguous or incomplete, or an argument has a wrong type.
    ValueError
        For out-of-range values, empty data, or an iterator that runs out.

    Examples
    --------
    >>> import torch, fastlr
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> model = torch.nn.Linear(4, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> data = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(4)]
    >>> res = fastlr.find_lr(opt, data, model=model, loss_fn=torch.nn.functional.mse_loss,
    ...                      start_lr=1e-4, end_lr=1.0, num_steps=30)
    >>> len(res.lrs), opt.param_groups[0]["lr"]
    (30, 0.1)
    """
    _check_training(optimizer, model, loss_fn, train_step)
    if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral):
        raise TypeError(f"num_steps must be an int, got {type(num_steps).__name__} {num_steps!r}")
    num_steps = int(num_steps)
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    smooth = _real("smooth", smooth)
    if not 0 < smooth <= 1:
        raise ValueError(f"smooth must be in (0, 1], got {smooth!r}")
    diverge = _real("diverge", diverge)
    if not diverge > 1:
        raise ValueError(f"diverge must be > 1, got {diverge!r}")
    if not isinstance(restore, bool):
        raise TypeError(f"restore must be a bool, got {type(restore).__name__}")
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be None or a bool, got {type(progress).__name__}")
    if cache_dir is not None:
        cache_dir = os.fspath(cache_dir)
        if not os.path.isdir(cache_dir):
            raise ValueError(f"cache_dir {cache_dir!r} is not a directory")
    if not isinstance(data, Iterable):
        raise TypeError(f"data must be an iterable of batches, got {type(data).__name__}")
    columns, ratios = _lr_plan(optimizer, start_lr, end_lr, num_steps, mode)

    device = None
    if loss_fn is not None:
        first = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
        device = None if first is None else first.device
    modes = [(m, m.training) for m in model.modules()] if loss_fn is not None and hasattr(model, "modules") else []
    snapshot = _Snapshot(optimizer, model, cache_dir) if restore else None
    try:
        return _run(optimizer, data, model, loss_fn, train_step, columns, ratios, num_steps, mode, smooth, diverge,
                    progress, device)
    finally:
        for m, was_training in modes:
            m.training = was_training
        if snapshot is not None:
            snapshot.restore()


def _run(
    optimizer: Any,
    data: Iterable[Any],
    model: Any,
    loss_fn: Any,
    train_step: Any,
    columns: list[list[float]],
    ratios: list[float] | None,
    num_steps: int,
    mode: str,
    smooth: float,
    diverge: float,
    progress: bool | None,
    device: Any,
) -> LRFindResult:
    """The loop: set the lrs, train a step, smooth, record, stop on NaN/inf or divergence."""
    from ._progress import Progress

    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)
        progress = None if isatty is not None and isatty() else False
    bar = Progress(num_steps, mode=progress, what="find_lr", interval=0.0)
    groups = optimizer.param_groups
    is_tensor = [hasattr(g["lr"], "fill_") for g in groups]
    base = columns[0]
    if loss_fn is not None:
        model.train()
        optimizer.zero_grad()  # no gradient left over from before the test in the first step
    beta = 1.0 - smooth
    avg, best = 0.0, math.inf
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    stopped = False
    batches = iter(_batches(data))
    try:
        for i in range(num_steps):
            lr0 = base[i]
            if ratios is not None:  # group g: lr0 * (lr_g / lr_0), the product computed here
                for g, r, tensor in zip(groups, ratios, is_tensor):
                    if tensor:
                        g["lr"].fill_(lr0 * r)
                    else:
                        g["lr"] = lr0 * r
            else:
                for g, col, tensor in zip(groups, columns, is_tensor):
                    if tensor:
                        g["lr"].fill_(col[i])
                    else:
                        g["lr"] = col[i]
            batch = next(batches)
            if loss_fn is not None:
                loss = _model_step(model, optimizer, loss_fn, batch, device)
            else:
                loss = _loss_value(train_step(batch))
            avg = beta * avg + smooth * loss
            sm = avg / (1.0 - beta ** (i + 1))
            lrs.append(lr0)
            losses.append(loss)
            smoothed.append(sm)
            if bar.enabled:
                bar.show(f"lr {lr0:.2e}  loss {sm:.4g}")
            if not math.isfinite(loss) or not math.isfinite(sm):
                stopped = True
                break
            best = min(best, sm)
            if best > 0 and sm > diverge * best:
                stopped = True
                break
    finally:
        bar.close()
    return LRFindResult(lrs, losses, smoothed, stopped, mode=mode, num_steps=num_steps)
