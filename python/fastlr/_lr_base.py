"""The base of fastlr's torch schedulers: :class:`LRScheduler`, the engine's wiring, and the probe.

Everything that the drop-in classes (:mod:`fastlr.lr_scheduler`) and :class:`ScheduledLR`
(:mod:`fastlr._scheduled`) share lives here, below both: the base class with its C ``step()``, the
engine kinds and step protocols, the order-warning helper, and the import-time check that the
installed torch still schedules the way the engine reproduces it. Public names are re-exported by
:mod:`fastlr.lr_scheduler` (``LRScheduler.__module__`` says so).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from torch.optim import lr_scheduler as _tls
from torch.optim import swa_utils as _swa

from . import _capturable, _core, _tensor_lrs

EPOCH_DEPRECATION_WARNING: str = _tls.EPOCH_DEPRECATION_WARNING

# torch's own classes, as imported. Code that runs at call time refers to these, never to
# `_tls.<name>`: fastlr.patch_torch() rebinds torch's module names to fastlr's classes.
TORCH_CLASSES: dict[str, type] = {n: getattr(_tls, n) for n in _tls.__all__ if isinstance(getattr(_tls, n, None), type)}
TORCH_CLASSES["SWALR"] = _swa.SWALR
_TorchLRScheduler: Any = TORCH_CLASSES["LRScheduler"]
_TorchPlateau: Any = TORCH_CLASSES["ReduceLROnPlateau"]
_TorchWarmRestarts: Any = TORCH_CLASSES["CosineAnnealingWarmRestarts"]

# Engine kinds (cpp/bindings/register_scheduler.cpp, enum `kind`).
_KIND_NONE = 0
_KIND_LAMBDA = 1
_KIND_MULTIPLICATIVE = 2
_KIND_STEP = 3
_KIND_MULTISTEP = 4
_KIND_CONSTANT = 5
_KIND_LINEAR = 6
_KIND_EXPONENTIAL = 7
_KIND_POLYNOMIAL = 8
_KIND_COSINE_ANNEALING = 9
_KIND_CYCLIC = 10
_KIND_ONE_CYCLE = 11
_KIND_WARM_RESTARTS = 12
_KIND_PLATEAU = 13
_KIND_SEQUENTIAL = 14
_KIND_CHAINED = 15
_KIND_SWALR = 16
_KIND_SCHEDULED = 17  # fastlr._scheduled.ScheduledLR (cpp/bindings/sched_scheduled.cpp)

# step() protocols of the C step (cpp/bindings/register_scheduler.cpp): they select the signature
# (and, for ScheduledLR, the C function: its own step, whose fallback is its Python step).
_STEP_STANDARD, _STEP_WARM_RESTARTS, _STEP_PLATEAU, _STEP_COMPOSITE, _STEP_SCHEDULED = 0, 1, 2, 3, 4

# The methods whose work the engine does for the standard protocol. Each class lists its own in
# `_fastlr_hooks`; a subclass that overrides one of them gets torch's Python path.
_STANDARD_HOOKS = ("get_lr", "_get_closed_form_lr", "_update_lr")


def _torch_protocol_supported() -> bool:
    """Whether the installed torch schedules with the protocol the engine reproduces (torch 2.13's)."""
    needed = ("_initial_mode", "_enable_get_lr_call", "_update_param_group_val", "_param_groups_val_list")
    return all(hasattr(_tls, n) for n in needed) and all(
        hasattr(_tls.LRScheduler, n) for n in ("_update_lr", "_initial_step", "_is_initial")
    )


_torch_protocol_ok: bool = _torch_protocol_supported()

FAST_PATH_MISMATCHES: dict[str, str] = {}
"""Classes taken off the engine because, stepped beside torch's class at import
(:mod:`fastlr._protocol_probe`), their behaviour differed: class name -> what differed. Empty on
every torch that CI tests."""


class LRScheduler(_tls.LRScheduler):
    """Base class of fastlr's schedulers; a subclass of :class:`torch.optim.lr_scheduler.LRScheduler`.

    Subclass it exactly as torch's docs teach (override :meth:`get_lr`): such a scheduler runs
    torch's Python logic unchanged. fastlr's own classes declare an engine kind and are stepped in C++.

    ``step()`` is implemented in C: a plain ``scheduler.step()`` is one C call that updates every
    param group, and any other call (``step(epoch)``, the first step after construction, which may
    warn) goes through torch's ``step()``.
    """

    __slots__ = ("_fastlr_engine", "_fastlr_capture")

    def __init__(self, optimizer: Any, last_epoch: int = -1) -> None:
        """torch's ``LRScheduler.__init__``, for subclasses written as torch's docs teach."""
        _init_slots(self)
        _TorchLRScheduler.__init__(self, optimizer, last_epoch)

    _fastlr_kind: int = _KIND_NONE
    _fastlr_active_kind: int = _KIND_NONE
    _fastlr_hooks: tuple[str, ...] = _STANDARD_HOOKS

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_fastlr_kind" in cls.__dict__:  # a class that declares an engine kind: remember its hooks
            cls._fastlr_hook_impls = {n: getattr(cls, n, None) for n in cls._fastlr_hooks}
        cls._fastlr_active_kind = cls._fastlr_class_kind()

    @classmethod
    def _fastlr_class_kind(cls) -> int:
        """The engine kind for this class as it is now: the declaring class's kind, or none if any
        method the engine replaces differs from the one the kind was declared with (a subclass that
        overrides get_lr, or a class patched later, e.g. by mock.patch.object)."""
        declaring = next(k for k in cls.__mro__ if "_fastlr_kind" in k.__dict__)
        impls = declaring.__dict__.get("_fastlr_hook_impls", {})
        if (
            not _torch_protocol_ok
            or declaring.__name__ in FAST_PATH_MISMATCHES
            or any(getattr(cls, n, None) is not impls.get(n) for n in declaring._fastlr_hooks)
        ):
            return _KIND_NONE
        return declaring.__dict__["_fastlr_kind"]

    def _fastlr_kind_now(self) -> int:
        """The engine kind for this scheduler now (asked by the engine when the class or the
        instance's attributes changed): none if a replaced method was patched on the instance."""
        kind = type(self)._fastlr_class_kind()
        if kind and any(n in self.__dict__ for n in (*type(self)._fastlr_hooks, "step")):
            return _KIND_NONE
        return kind

    def _update_lr(self, epoch: int | None = None) -> None:
        cap = _capture_of(self)
        if cap is not None:  # capturable: enqueue the device step; host counters follow the calls
            self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
            cap.update(epoch)
            return
        if not _core.update(self, epoch):
            super()._update_lr(epoch)

    # -- capturable mode (python/fastlr/_capturable.py) --------------------------------------------------

    def _fastlr_enable_capture(self) -> None:
        """Switch this scheduler to capturable mode (the ``capturable=True`` constructor argument)."""
        cap: Any
        if isinstance(self, _TorchPlateau):
            cap = _capturable.PlateauCapture(self)
        else:
            cap = _capturable.Capture(self)
        self._fastlr_capture = cap
        eng = _engine_of(self)
        if eng is None:
            eng = self._fastlr_engine = _core.Engine(type(self)._fastlr_active_kind)
        if eng.last_lr_stale:
            eng.clear_last_lr()
        eng.set_capturable(True)

    @property
    def capturable(self) -> bool:
        """Whether this scheduler steps on the device (``capturable=True``)."""
        return _capture_of(self) is not None

    def _fastlr_capturable_step(self, *args: Any, **kwargs: Any) -> None:
        """step() in capturable mode: one device launch (or fixed torch ops) and host bookkeeping."""
        cap = _capture_of(self)
        if isinstance(self, _TorchPlateau):
            bound = inspect.signature(_TorchPlateau.step).bind(self, *args, **kwargs)
            metrics, epoch = bound.arguments["metrics"], bound.arguments.get("epoch")
            if epoch is not None:
                raise ValueError("capturable ReduceLROnPlateau steps one epoch at a time (no epoch argument)")
            self.last_epoch += 1
            cap.step(self, metrics)
        elif isinstance(self, _TorchWarmRestarts):
            epoch = inspect.signature(_TorchWarmRestarts.step).bind(self, *args, **kwargs).arguments.get("epoch")
            self.last_epoch = max(self.last_epoch + 1, 0) if epoch is None else epoch
            cap.update(epoch)
        else:  # torch's step: warnings and counters; _update_lr enqueues
            torch_step_warning_at_caller(self, lambda: _TorchLRScheduler.step(self, *args, **kwargs))

    def _fastlr_sync_capture(self) -> None:
        """Host attributes from the device state (a synchronisation): graph replays advance only it."""
        cap = _capture_of(self)
        if cap is None:
            return
        d = self.__dict__
        if isinstance(cap, _capturable.PlateauCapture):
            cap.sync(self)
        else:
            le = cap.value()
            if le != d.get("last_epoch") and "_step_count" in d:
                d["_step_count"] += le - d["last_epoch"]
            d["last_epoch"] = le
            if isinstance(self, _TorchWarmRestarts):
                d["T_cur"], d["T_i"] = _capturable.warm_restarts_counters(self.T_0, self.T_mult, le)
        if cap.dirty:
            d["_last_lr"] = [g["lr"].detach().clone() for g in self.optimizer.param_groups]
            cap.dirty = False

    # `_last_lr` after a step with tensor lrs is built when it is read: torch's list holds one fresh
    # tensor per group, which is exactly the per-group work the packed path avoids on every step.
    @property
    def _last_lr(self) -> list[Any]:
        d = self.__dict__
        eng = _engine_of(self)
        if eng is not None and eng.last_lr_stale:
            d["_last_lr"] = eng.take_last_lr()
        cap = _capture_of(self)
        if cap is not None and cap.dirty:  # fresh clones of the device values (no synchronisation)
            d["_last_lr"] = [g["lr"].detach().clone() for g in self.optimizer.param_groups]
            cap.dirty = False
        try:
            return d["_last_lr"]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute '_last_lr'") from None

    @_last_lr.setter
    def _last_lr(self, value: list[Any]) -> None:
        self.__dict__["_last_lr"] = value
        eng = _engine_of(self)
        if eng is not None and eng.last_lr_stale:
            eng.clear_last_lr()

    def state_dict(self) -> dict[str, Any]:
        """Return the scheduler's state as a dict: torch's keys and values (``_last_lr`` included).

        In capturable mode this reads the device state first (a synchronisation)."""
        self._fastlr_sync_capture()
        self._last_lr  # noqa: B018 - materialise a pending `_last_lr` into __dict__
        sd = super().state_dict()
        # float32 tensor lrs: the float64 values the engine continues from (see _tensor_lrs.exact_values),
        # so that a resumed run is the uninterrupted one bit for bit. torch's load_state_dict accepts the
        # extra key (it becomes an attribute there).
        reads = type(self)._fastlr_reads_lr and _capture_of(self) is None
        lr64 = _tensor_lrs.exact_values(self.optimizer) if reads else None
        if lr64 is not None:
            sd[_tensor_lrs.STATE_KEY] = lr64
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the scheduler's state (torch's state dicts and fastlr's are the same). In capturable
        mode the device counters are set from it."""
        eng = _engine_of(self)
        super().load_state_dict(state_dict)
        lr64 = self.__dict__.pop(_tensor_lrs.STATE_KEY, None)
        if lr64 is not None:
            _tensor_lrs.restore_exact_values(self.optimizer, lr64)
        if eng is not None and eng.last_lr_stale:
            eng.clear_last_lr()
        cap = _capture_of(self)
        if cap is not None:
            if isinstance(cap, _capturable.PlateauCapture):
                cap.load(self)
            else:
                cap.counter.fill_(int(self.last_epoch))
            cap.dirty = True

    # Whether the class's step continues from the groups' current lrs (a chainable recurrence), so that
    # with float32 tensor lrs its state_dict carries the float64 values behind them (`_fastlr_lr64`).
    # Classes that compute from base lrs or read torch's float(lr) of the element (ReduceLROnPlateau)
    # do not need them, and their state dicts stay exactly torch's.
    _fastlr_reads_lr: bool = True

    # How seek() moves this class (see `seek`): "replay" (chainable recurrences replayed in C++),
    # "closed" (get_lr is a closed form of the counters: O(1)), "warm_restarts", "steps" (step() run
    # in C), "forward" (steps, and no way back: composites), or None (no seek).
    _fastlr_seek: str | None = "steps"

    def seek(self, step: int) -> None:
        """Move the scheduler to ``last_epoch == step``, exactly as calling :meth:`step` until then would.

        The result is bit for bit the state and learning rates that stepping gives:

        * chainable classes (StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR,
          CosineAnnealingLR, SWALR) replay torch's exact recurrence in C++ from the current state
          (about 10 ns a step per group: 10**7 steps in well under a second at a few groups);
        * LambdaLR, CyclicLR and OneCycleLR compute the target step directly, in O(1);
        * CosineAnnealingWarmRestarts replays its restart counters in C++, then writes once;
        * MultiplicativeLR (its lambda is called at every step), SequentialLR and ChainedScheduler
          run their steps in a C loop.

        Seeking backwards restarts from the initial learning rates (``initial_lr``), so manual lr
        edits made since construction are not replayed. A step at which torch would raise raises
        here, with the scheduler left at the step before. Needs float learning rates for the C++
        replay; tensor learning rates are stepped.
        """
        if isinstance(step, bool) or not isinstance(step, int):
            raise TypeError(f"step must be an int, got {type(step).__name__}")
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        how = type(self)._fastlr_seek
        if how is None:
            raise TypeError(
                f"{type(self).__name__} has no seek(): "
                + ("it is driven by metrics" if "last_epoch" in self.__dict__ else "it has no step counter of its own")
            )
        current = self.last_epoch
        if step < current:
            if how == "forward":
                raise ValueError(f"{type(self).__name__} can only seek forward (at {current}, asked {step})")
            self._fastlr_restart()
            current = self.last_epoch
        if how == "closed" and step > current:
            # get_lr depends on the counters only: set them to the step before, then one update.
            saved = (self.last_epoch, self._step_count)
            self._step_count = step + 1
            self.last_epoch = step - 1
            try:
                self._update_lr()
                return
            except Exception:
                # Some step on the way raises in torch (OneCycleLR past total_steps, CyclicLR's
                # triangular2 overflow): find it by stepping, to stop at the step before, as promised.
                self.last_epoch, self._step_count = saved
        remaining = step - current
        if how in ("replay", "warm_restarts") and type(self)._fastlr_active_kind and remaining:
            remaining -= _core.replay(self, remaining)
        if remaining:
            self._fastlr_step_n(remaining)

    def _fastlr_step_n(self, k: int) -> None:
        """k step() calls in C; if one raises, the scheduler is left at the step before it."""
        counters = "_step_count" in self.__dict__ and "last_epoch" in self.__dict__
        try:
            _core.step_n(self, k)
        except Exception:
            # torch's failing step() advanced the counters before raising in get_lr: take them back
            # (nothing else was written).
            if counters and type(self)._fastlr_seek != "forward":
                self._step_count -= 1
                self.last_epoch -= 1
            raise

    def _fastlr_restart(self) -> None:
        """Back to the state right after construction: lrs from initial_lr, then torch's initial step."""
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            _tls._update_param_group_val(group, "lr", base)
        self.last_epoch = -1
        if hasattr(self, "T_cur"):  # CosineAnnealingWarmRestarts' counters start with last_epoch
            self.T_cur = -1
            self.T_i = self.T_0
        self._initial_step()

    @property
    def uses_fast_path(self) -> bool:
        """Whether this scheduler is stepped by fastlr's engine (per step the engine may still defer
        to torch's code for values it does not reproduce)."""
        return self._fastlr_kind_now() != _KIND_NONE

    # Pickling and copying carry torch's state (the instance dict) only; the engine is rebuilt on
    # the next step.
    def __getstate__(self) -> dict[str, Any]:
        self._last_lr  # noqa: B018 - materialise a pending `_last_lr`
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        _init_slots(self)
        self.__dict__.update(state)


LRScheduler.__init__.__signature__ = inspect.signature(_tls.LRScheduler.__init__)  # type: ignore[attr-defined]


def torch_step_warning_at_caller(sched: Any, step: Any) -> None:
    """``step()``, torch's step of ``sched``, called from a fastlr step method: torch warns on the
    first step only (step() before optimizer.step()), one frame below its caller, which is the fastlr
    method; its warnings are issued again at the line that called that method."""
    if sched.__dict__.get("_step_count") != 1:
        step()
        return
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:  # type: ignore[assignment]
            warnings.simplefilter("always")
            step()
    finally:
        for w in caught:
            warnings.warn(w.message, w.category, stacklevel=3)


def _init_slots(sched: Any) -> None:
    # Both slots start as None (the engine itself is made on the first step, in C): reading an unset
    # slot raises, and builds an AttributeError message, which get_last_lr() would pay every time.
    sched._fastlr_engine = None
    sched._fastlr_capture = None


def _engine_of(sched: LRScheduler) -> Any:
    return getattr(sched, "_fastlr_engine", None)  # None until the first step


def _capture_of(sched: LRScheduler) -> Any:
    return getattr(sched, "_fastlr_capture", None)


_core._install(
    LRScheduler,
    LRScheduler.__dict__["_fastlr_engine"],
    {
        "Counter": collections.Counter,
        "get_last_lr": _TorchLRScheduler.get_last_lr,
        "capture_slot": LRScheduler.__dict__["_fastlr_capture"],
        "partial": functools.partial,
        "update_group": _tls._update_param_group_val,
        "val_list": _tls._param_groups_val_list,
        "triangular": _tls.CyclicLR._triangular_scale_fn,
        "triangular2": _tls.CyclicLR._triangular2_scale_fn,
        "exp_range": _tls.CyclicLR._exp_range_scale_fn,
        "swa_cos": _swa.SWALR._cosine_anneal,
        "swa_linear": _swa.SWALR._linear_anneal,
        "pack_groups": _tensor_lrs.pack_groups,
        "describe": _tensor_lrs.describe,
        "device_apply": _tensor_lrs.device_apply,
    },
)
_core._install_step(LRScheduler, _STEP_STANDARD)
LRScheduler.__module__ = "fastlr.lr_scheduler"  # its public home (docs, pickles, reprs)


# ------------------------------------------------------------------------------------------------
# The import-time check (fastlr._protocol_probe): each module that defines engine-driven classes
# asks for its own; `collect_probe_warnings` makes one warning of several modules' findings.

_probed: set[str] = set()
_collecting: list[dict[str, str]] = []  # while collect_probe_warnings() runs: what was found


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for c in cls.__subclasses__():
        out.append(c)
        out.extend(_all_subclasses(c))
    return out


def check_torch_behaviour(fast: Any, names: Iterable[str]) -> dict[str, str]:
    """Step the engine-driven classes ``names`` of module ``fast`` beside torch's (see
    :mod:`fastlr._protocol_probe`), each once per process; take those that differ off the engine,
    and say so in one warning (or in the warning of an enclosing :func:`collect_probe_warnings`).
    Returns what was found."""
    if not _torch_protocol_ok:
        return {}
    todo = [n for n in names if n not in _probed]
    if not todo:
        return {}
    from . import _protocol_probe

    found = _protocol_probe.probe(fast, todo)
    _probed.update(todo)
    if not found:
        return found
    FAST_PATH_MISMATCHES.update(found)
    for c in _all_subclasses(LRScheduler):
        c._fastlr_active_kind = c._fastlr_class_kind()
    if _collecting:
        _collecting[-1].update(found)
    else:
        _warn_mismatches(found, stacklevel=3)  # at the line of the module that asked
    return found


@contextlib.contextmanager
def collect_probe_warnings() -> Iterator[None]:
    """Probes run inside (several modules' classes) end in one warning, on exit."""
    _collecting.append({})
    try:
        yield
    finally:
        found = _collecting.pop()
        if found:
            _warn_mismatches(found, stacklevel=4)  # (through contextlib)


def _warn_mismatches(found: dict[str, str], stacklevel: int) -> None:
    import torch

    warnings.warn(
        f"fastlr: with torch {torch.__version__}, {len(found)} scheduler class(es) behave differently from "
        f"what fastlr's engine reproduces ({', '.join(sorted(found))}); they run torch's own code (exact, "
        "not faster). fastlr.lr_scheduler.FAST_PATH_MISMATCHES says what differed.",
        RuntimeWarning,
        stacklevel=stacklevel,
    )
