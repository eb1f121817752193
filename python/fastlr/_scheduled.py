"""``ScheduledLR``: drive a torch optimizer with :mod:`fastlr.schedules`, and ``get_scheduler``.

Imports torch (through :mod:`fastlr._lr_base`, the base it shares with the drop-in classes of
:mod:`fastlr.lr_scheduler`, which re-exports ``ScheduledLR``); :mod:`fastlr.schedules` itself never does.

A plain ``step()`` is one C call (cpp/bindings/sched_scheduled.cpp): it evaluates each distinct
schedule once with the same C++ evaluator as ``schedule(t)``, multiplies by the base lrs and writes
every group (floats, or the packed tensors of the tensor path) and the counters, as the Python step
below would. Everything else (the first step, which may warn; ``step(metrics)``; ``step(epoch=...)``;
plateau nodes; momentum and weight-decay schedules; capturable mode; unusual values) runs the Python
step, :meth:`ScheduledLR._fastlr_step_py`.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Union

from torch import Tensor
from torch.optim import Optimizer
from torch.optim import lr_scheduler as _tls

from . import _capturable, _core, _lr_base
from . import schedules as S
from ._lr_base import (
    _KIND_SCHEDULED,
    _STEP_SCHEDULED,
    FAST_PATH_MISMATCHES,
    LRScheduler,
    _engine_of,
    _TorchLRScheduler,
    torch_step_warning_at_caller,
)

__all__ = ["ScheduledLR", "get_scheduler"]

ScheduleArg = Union[S.Schedule, Sequence[S.Schedule]]

_MODES = ("multiplier", "absolute")


def _scaled_by_lr_scale(per_group: list[S.Schedule], groups: list[dict[str, Any]]) -> list[S.Schedule]:
    """Each group's schedule times the group's ``lr_scale`` (timm's layer-wise decay key; 1 when
    absent). Groups that shared a schedule and a scale share the scaled one."""
    out: list[S.Schedule] = []
    cache: dict[tuple[int, float], S.Schedule] = {}
    for i, (s, g) in enumerate(zip(per_group, groups)):
        sc = g.get("lr_scale", 1.0)
        if isinstance(sc, Tensor) and sc.numel() == 1:
            sc = sc.item()
        if isinstance(sc, bool) or not isinstance(sc, numbers.Real):
            raise TypeError(f"param_groups[{i}]['lr_scale'] must be a real number, got {type(sc).__name__} {sc!r}")
        sc = float(sc)
        if not math.isfinite(sc):
            raise ValueError(f"param_groups[{i}]['lr_scale'] must be finite, got {sc!r}")
        if sc == 1.0:
            out.append(s)
        else:
            out.append(cache.setdefault((id(s), sc), s * sc))
    return out


def _per_group(what: str, arg: Any, n: int) -> list[S.Schedule]:
    if isinstance(arg, S.Schedule):
        return [arg] * n
    if isinstance(arg, (str, bytes)) or not isinstance(arg, Sequence):
        raise TypeError(f"{what} must be a fastlr schedule or a list of them (one per param group), got {type(arg).__name__}")
    if len(arg) != n:
        raise ValueError(f"expected {n} {what}s (one per param group), got {len(arg)}")
    for i, s in enumerate(arg):
        if not isinstance(s, S.Schedule):
            raise TypeError(f"{what}[{i}] must be a fastlr schedule, got {type(s).__name__}")
    return list(arg)


class _Track:
    """The schedules of one param-group key: distinct schedules, and which one each group uses.

    Immutable (tuples, no attribute assignment): the engine keeps its copy of the programs for as
    long as the scheduler holds the same _Track object (``load_state_dict`` makes a new one)."""

    __slots__ = ("unique", "index", "programs", "stateful", "single")
    unique: tuple[S.Schedule, ...]
    index: tuple[int, ...]
    programs: tuple[Any, ...]
    stateful: bool
    single: bool

    def __init__(self, per_group: list[S.Schedule]) -> None:
        unique: list[S.Schedule] = []
        index: list[int] = []
        seen: dict[int, int] = {}
        for s in per_group:
            k = seen.setdefault(id(s), len(unique))
            if k == len(unique):
                unique.append(s)
            index.append(k)
        fields = {
            "unique": tuple(unique),
            "index": tuple(index),
            "programs": tuple(s._program for s in unique),
            # metric-driven nodes (plateau, switch) write their value into the programs (Schedule._sync)
            "stateful": any(s._slots for s in unique),
            "single": len(unique) == 1,
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"_Track is immutable (cannot set {name!r}): make a new one")

    def values(self, t: int) -> list[float]:
        if self.stateful:
            for s in self.unique:
                s._sync()  # write the plateaus' current values into the programs
        vals = _core.schedule_eval_many(self.programs, float(t))
        if self.single:
            return vals * len(self.index)
        return [vals[k] for k in self.index]

    def to_state(self) -> dict[str, Any]:
        return {"schedules": [s.to_dict() for s in self.unique], "index": list(self.index)}

    @classmethod
    def from_state(cls, st: Mapping[str, Any]) -> _Track:
        unique = [S.from_dict(d) for d in st["schedules"]]
        return cls([unique[k] for k in st["index"]])


class ScheduledLR(LRScheduler):
    """Set each param group's learning rate from a :mod:`fastlr.schedules` schedule.

    ``lr_i(t) = base_lr_i * s_i(t)`` (``mode="multiplier"``, the default, as ``LambdaLR``; the base
    is the group's ``initial_lr``) or ``lr_i(t) = s_i(t)`` (``mode="absolute"``), where ``t`` is
    ``last_epoch`` and ``s_i`` is ``schedule``, or ``schedule[i]`` when a list (one per group) is
    given. Every value is the schedule's closed form at ``t``, so :meth:`seek` jumps to any step in
    O(1), and ``step(epoch)`` is exact.

    Optional schedules for other hyperparameters, evaluated at the same step:

    * ``momentum``: absolute values written to ``group["momentum"]``, or to ``betas[0]`` for
      optimizers with betas (Adam and friends), as ``CyclicLR`` / ``OneCycleLR`` do;
    * ``weight_decay``: following ``mode``, as a multiple of the group's initial weight decay
      (kept in ``group["initial_weight_decay"]``) or absolute.

    Schedules with :func:`~fastlr.schedules.plateau` nodes take metrics: ``step(metrics)`` feeds the
    metric (measured at the current step) to the plateaus active at the current step, then advances.

    With ``lr_scale=True`` each group's schedule is multiplied by the group's ``"lr_scale"`` (1 where
    a group has none), read when the scheduler is built: timm's layer-wise lr decay, which sets
    ``lr_scale`` per group and which only timm's schedulers apply (torch's, and fastlr's without the
    flag, ignore the key). ``lr_i(t) = base_lr_i * (s_i(t) * lr_scale_i)``; timm computes
    ``(base * s(t)) * lr_scale``, the same value to within an ulp.

    ``state_dict()`` holds the schedules' ``to_dict()`` (JSON-safe; it also loads with
    ``torch.load(weights_only=True)``), so a run's config and its plateau state reproduce.

    A plain ``step()`` runs on fastlr's engine (one C call for every group, float or tensor lrs) when
    the scheduler schedules the lr only, with no plateau node (see :attr:`uses_fast_path`); the
    learning rates, counters and ``state_dict()`` are the same either way.
    """

    # The engine's kind, and the methods whose work its step does (a subclass that overrides one of
    # them, or a torch whose protocol differs, steps in Python: fastlr._lr_base).
    _fastlr_kind = _KIND_SCHEDULED
    _fastlr_hooks = ("get_lr", "_get_closed_form_lr", "_update_lr", "_apply", "_values_at", "_lr_values", "_write")
    _fastlr_reads_lr = False

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: ScheduleArg,
        *,
        mode: str = "multiplier",
        momentum: ScheduleArg | None = None,
        weight_decay: ScheduleArg | None = None,
        last_epoch: int = -1,
        capturable: bool = False,
        lr_scale: bool = False,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if not isinstance(lr_scale, bool):
            raise TypeError(f"lr_scale must be True or False, got {type(lr_scale).__name__} {lr_scale!r}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {list(_MODES)}, got {mode!r}")
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, int) or last_epoch < -1:
            raise ValueError(f"last_epoch must be an int >= -1, got {last_epoch!r}")
        n = len(optimizer.param_groups)
        self.mode = mode
        per_group = _per_group("schedule", schedule, n)
        if lr_scale:
            per_group = _scaled_by_lr_scale(per_group, optimizer.param_groups)
        self.lr_scale = lr_scale
        self._fastlr_lr = _Track(per_group)
        self._fastlr_momentum: _Track | None = None
        self._fastlr_wd: _Track | None = None
        self.momentum_key: str | None = None
        if momentum is not None:
            if "momentum" in optimizer.defaults:
                self.momentum_key = "momentum"
            elif "betas" in optimizer.defaults:
                self.momentum_key = "betas"
            else:
                raise ValueError("optimizer must support momentum or beta1 to schedule momentum")
            self._fastlr_momentum = _Track(_per_group("momentum schedule", momentum, n))
        if weight_decay is not None:
            if "weight_decay" not in optimizer.defaults:
                raise ValueError("optimizer has no weight_decay to schedule")
            self._fastlr_wd = _Track(_per_group("weight_decay schedule", weight_decay, n))
            for g in optimizer.param_groups:
                if last_epoch == -1:
                    g.setdefault("initial_weight_decay", g["weight_decay"])
                elif "initial_weight_decay" not in g:
                    raise KeyError("param 'initial_weight_decay' is not specified in param_groups when resuming")
        super().__init__(optimizer, last_epoch)
        if capturable:
            if self.has_plateau or self._fastlr_wd is not None:
                raise _capturable.CapturableError(
                    "ScheduledLR with plateau nodes or a weight_decay schedule cannot run capturable"
                )
            self._fastlr_enable_capture()

    # -- schedules -----------------------------------------------------------------------------------

    @property
    def schedules(self) -> list[S.Schedule]:
        """The lr schedule of each param group."""
        return [self._fastlr_lr.unique[k] for k in self._fastlr_lr.index]

    def _tracks(self) -> list[_Track]:
        return [t for t in (self._fastlr_lr, self._fastlr_momentum, self._fastlr_wd) if t is not None]

    @property
    def has_plateau(self) -> bool:
        """Whether any schedule has a metric-driven plateau node (then ``step`` takes metrics)."""
        return any(s.plateaus for t in self._tracks() for s in t.unique)

    # -- values --------------------------------------------------------------------------------------

    @property
    def uses_fast_path(self) -> bool:
        """Whether a plain ``step()`` runs on fastlr's engine: the class is on it (not taken off by a
        torch that schedules differently, no engine method overridden) and the scheduler schedules
        the lr only, with no plateau node. Other steps run the same arithmetic in Python."""
        return (
            super().uses_fast_path
            and self._fastlr_momentum is None
            and self._fastlr_wd is None
            and not self._fastlr_lr.stateful
        )

    def _lr_values(self, t: int) -> list[float]:
        vals = self._fastlr_lr.values(t)
        if self.mode == "multiplier":
            return [base * v for base, v in zip(self.base_lrs, vals)]
        return vals

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The schedules' values at ``last_epoch`` (their closed form)."""
        return self._lr_values(self.last_epoch)

    def _get_closed_form_lr(self) -> list[float]:
        return self._lr_values(self.last_epoch)

    def _write(self, key: str, values: list[float]) -> None:
        """Write one value per param group under ``key``. The hook for tensor-lr and capturable
        paths: this float path assigns floats (tensor values are filled in place, as torch does)."""
        for g, v in zip(self.optimizer.param_groups, values):
            if isinstance(g[key], Tensor):
                g[key].fill_(v)
            else:
                g[key] = v

    def _values_at(self, t: Any) -> list[tuple[str, list[Any]]]:
        """Every value a step to ``t`` writes, per group key, computed before anything is written."""
        groups = self.optimizer.param_groups
        out: list[tuple[str, list[Any]]] = [("lr", self._lr_values(t))]
        if self._fastlr_momentum is not None:
            ms = self._fastlr_momentum.values(t)
            if self.momentum_key == "betas":
                out.append(("betas", [(m, *g["betas"][1:]) for g, m in zip(groups, ms)]))
            else:
                out.append(("momentum", ms))
        if self._fastlr_wd is not None:
            ws = self._fastlr_wd.values(t)
            if self.mode == "multiplier":
                ws = [g["initial_weight_decay"] * w for g, w in zip(groups, ws)]
            out.append(("weight_decay", ws))
        for key, values in out:  # a group without the key raises here, before any write
            for g, _ in zip(groups, values):
                g[key]  # noqa: B018
        return out

    def _apply(self, t: Any) -> None:
        """Set ``last_epoch`` to ``t`` and write every group's values at ``t``; if computing them raises,
        nothing has changed."""
        values = self._values_at(t)
        self.last_epoch = t
        for key, vals in values:
            self._write(key, vals)
        self._last_lr = _tls._param_groups_val_list(self.optimizer, "lr")

    def _update_lr(self, epoch: int | None = None) -> None:
        if self.capturable:  # the device step (fastlr/_capturable.py)
            super()._update_lr(epoch)
            return
        if epoch is None:
            t = self.last_epoch + 1
        else:
            if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real) or not epoch >= 0:
                raise ValueError(f"epoch must be a number >= 0, got {epoch!r}")
            t = epoch
        self._apply(t)

    def _fastlr_step_py(self, metrics: Any = None, epoch: int | None = None) -> None:
        """``step()`` in Python: what the C ``step`` (installed below) runs whenever its engine does not
        take the call. A step that raises leaves the counters as they were."""
        if metrics is not None:
            if not self.has_plateau:
                raise TypeError(
                    "step(metrics): this ScheduledLR has no plateau node to take a metric "
                    "(to jump to a step use seek(step), or pass epoch= by keyword)"
                )
            m = float(metrics.item() if hasattr(metrics, "item") else metrics)
            t = max(self.last_epoch, 0)
            for track in self._tracks():
                for s in track.unique:
                    s.observe(m, t)
        d = self.__dict__
        saved = [(k, d[k]) for k in ("_step_count", "last_epoch") if k in d]
        try:
            if epoch is None and d.get("_step_count", 1) != 1 and not self.capturable and _direct_step_ok():
                # torch's step() past its first call is `_step_count += 1; _update_lr(None)`: done
                # here directly (where the probe found torch's protocol), without its Python frame.
                d["_step_count"] += 1
                self._update_lr(None)
            else:
                torch_step_warning_at_caller(self, lambda: _TorchLRScheduler.step(self, epoch))
        except BaseException:
            d.update(saved)
            raise

    def seek(self, step: int) -> None:
        """Jump to ``step``: set ``last_epoch`` and every group's values, in O(1) (no replay)."""
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        self._apply(int(step))

    # -- state ---------------------------------------------------------------------------------------

    _TRACK_KEYS = {"_fastlr_lr": "schedules", "_fastlr_momentum": "momentum_schedules", "_fastlr_wd": "weight_decay_schedules"}

    def state_dict(self) -> dict[str, Any]:
        """torch's state (every attribute but the optimizer), with each schedule as its ``to_dict()``.
        In capturable mode the device counter is read first (a synchronisation)."""
        self._fastlr_sync_capture()
        self._last_lr  # noqa: B018 - materialise a pending `_last_lr`
        sd = {}
        for k, v in self.__dict__.items():
            if k == "optimizer":
                continue
            if k in self._TRACK_KEYS:
                sd[self._TRACK_KEYS[k]] = None if v is None else v.to_state()
            else:
                sd[k] = v
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a :meth:`state_dict`: the schedules are rebuilt from their dicts."""
        sd = dict(state_dict)
        for attr, key in self._TRACK_KEYS.items():
            if key in sd:
                st = sd.pop(key)
                tr = None if st is None else _Track.from_state(st)
                if tr is not None and len(tr.index) != len(self.optimizer.param_groups):
                    raise ValueError(
                        f"state dict has {len(tr.index)} {key} for {len(self.optimizer.param_groups)} param groups"
                    )
                setattr(self, attr, tr)
        self.__dict__.update(sd)
        eng = _engine_of(self)
        if eng is not None and eng.last_lr_stale:  # `_last_lr` was loaded: a pending one is stale
            eng.clear_last_lr()
        cap = getattr(self, "_fastlr_capture", None)
        if cap is not None:
            cap.counter.fill_(int(self.last_epoch))
            cap.dirty = True

    def __repr__(self) -> str:
        ss = self._fastlr_lr.unique
        inner = repr(ss[0]) if len(ss) == 1 else f"[{len(self._fastlr_lr.index)} schedules]"
        return f"ScheduledLR({inner}, mode={self.mode!r}, last_epoch={self.last_epoch})"


def _direct_step_ok() -> bool:
    """Whether the installed torch's step() is the protocol ScheduledLR's Python step reproduces."""
    return _lr_base._torch_protocol_ok and "ScheduledLR" not in FAST_PATH_MISMATCHES


# step(): a C method that takes a plain step on the engine and runs `_fastlr_step_py` otherwise.
_core._install_step(ScheduledLR, _STEP_SCHEDULED)


def get_scheduler(
    name: str,
    optimizer: Optimizer,
    num_warmup_steps: int | None = None,
    num_training_steps: int | None = None,
    scheduler_specific_kwargs: Mapping[str, Any] | None = None,
    *,
    lr_scale: bool = False,
    **kwargs: Any,
) -> Any:
    """Hugging Face's ``transformers.get_scheduler``, as a :class:`ScheduledLR`.

    Same names, arguments and formulas (``linear``, ``cosine``, ``cosine_with_restarts``,
    ``polynomial``, ``constant``, ``constant_with_warmup``, ``inverse_sqrt``,
    ``reduce_lr_on_plateau``, ``cosine_with_min_lr``, ``warmup_stable_decay``), plus fastlr's names
    (:func:`fastlr.schedules.names`). Schedule arguments go in ``scheduler_specific_kwargs`` (as in
    transformers) or as keywords. Multipliers of each group's initial lr, as Hugging Face's
    ``LambdaLR``; ``polynomial`` and ``cosine_with_min_lr(min_lr=...)`` read
    ``optimizer.defaults["lr"]`` as transformers does. ``reduce_lr_on_plateau`` returns
    :class:`fastlr.lr_scheduler.ReduceLROnPlateau` built with the schedule arguments, as
    transformers returns torch's: an instance of torch's class (frameworks that test for it pass the
    metric), stepped with ``scheduler.step(metric)``.

    ``lr_scale=True`` (fastlr's) applies each param group's ``"lr_scale"`` as timm's schedulers do
    (layer-wise lr decay): see :class:`ScheduledLR`.
    """
    from .schedules._names import NAMES

    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
    kw = dict(scheduler_specific_kwargs or {})
    kw.update(kwargs)
    key = name.lower() if isinstance(name, str) else name
    if key == "greedy":
        S.from_name(key)  # its error: transformers' GreedyLR is not provided
    if key not in NAMES:
        raise ValueError(f"{name!r} is not a valid scheduler name; choose one of {sorted(NAMES)}")
    if key == "reduce_lr_on_plateau":
        # transformers: ReduceLROnPlateau(optimizer, **scheduler_specific_kwargs), the warm-up and
        # training steps ignored. fastlr's drop-in is torch's class for isinstance, so Trainer and
        # Lightning pass it the metric.
        from .lr_scheduler import ReduceLROnPlateau

        if lr_scale:
            raise ValueError("lr_scale=True needs a ScheduledLR: reduce_lr_on_plateau returns torch's ReduceLROnPlateau class")
        return ReduceLROnPlateau(optimizer, **kw)
    if key in ("polynomial", "cosine_with_min_lr", "cosine_warmup_with_min_lr") and "lr_init" not in kw:
        kw["lr_init"] = optimizer.defaults["lr"]
    sched = S.from_name(key, num_warmup_steps, num_training_steps, **kw)
    return ScheduledLR(optimizer, sched, mode="multiplier", lr_scale=lr_scale)


# Step ScheduledLR beside torch's LambdaLR once (fastlr._protocol_probe): a torch that schedules
# differently takes it off the engine, with a warning.
_lr_base.check_torch_behaviour(sys.modules[__name__], ["ScheduledLR"])
