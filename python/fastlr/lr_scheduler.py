"""Drop-in replacements for :mod:`torch.optim.lr_scheduler`, stepped by fastlr's C++ engine.

Every class here has torch's name, constructor, attributes, warnings, errors and ``state_dict()``, and
produces **bit-identical** learning rates: the engine re-runs torch's own recurrences in IEEE double,
in Python's operation order, for all param groups in one C call per ``step()``.

Each class subclasses both :class:`fastlr.lr_scheduler.LRScheduler` (itself a subclass of torch's
``LRScheduler``) and torch's class of the same name, so ``isinstance`` checks in Lightning,
Accelerate or transformers accept them, and torch's validation runs unchanged.

How a step runs:

* Float learning rates and the usual argument types (Python ints and floats) take the C++ path: one
  call reads the scheduler's attributes from its ``__dict__`` (where torch keeps them, so user edits
  and ``load_state_dict()`` are always honoured), computes every group's lr, and writes the floats
  back into ``param_groups``.
* Anything else (tensor learning rates, tensor or numpy hyperparameters, arguments for which torch's
  Python arithmetic raises) runs torch's own code for that step, so results and exceptions are
  torch's. The engine decides per step and never leaves a half-done step behind.
* A subclass that overrides ``get_lr()``, ``_get_closed_form_lr()`` or ``_update_lr()`` always runs
  the Python path, exactly as it would on torch's base class.

The fast path implements torch 2.13's scheduler protocol. On a torch whose internals differ (checked
at import), every step runs torch's code: results stay exact, only the speed-up is lost.
"""

from __future__ import annotations

import collections
import functools
import inspect
import warnings
from typing import Any

from torch.optim import lr_scheduler as _tls
from torch.optim import swa_utils as _swa

from . import _capturable, _core, _tensor_lrs

__all__ = [
    "EPOCH_DEPRECATION_WARNING",
    "LRScheduler",
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "PolynomialLR",
    "CosineAnnealingLR",
    "CyclicLR",
    "OneCycleLR",
    "CosineAnnealingWarmRestarts",
    "ReduceLROnPlateau",
    "SequentialLR",
    "ChainedScheduler",
    "SWALR",
    "ScheduledLR",  # noqa: F822 - provided lazily by __getattr__ (it imports this module)
]

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

# step() protocols of the C step (cpp/bindings/register_scheduler.cpp): they select the signature.
_STEP_STANDARD, _STEP_WARM_RESTARTS, _STEP_PLATEAU, _STEP_COMPOSITE = 0, 1, 2, 3

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
FAST_PATH_AVAILABLE: bool = _torch_protocol_ok
"""False when the installed torch's scheduler internals differ from what the engine reproduces: the
names it relies on are missing, or a class stepped beside torch's at import behaved differently
(see ``FAST_PATH_MISMATCHES``). Every step then runs torch's code for such classes: exact, not faster."""

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


def _wrap_init(cls: type, capturable: bool) -> type:
    """Give `cls` torch's constructor (the slots set first), plus a keyword-only ``capturable=False``
    where the class can step on the device."""
    torch_init = next(c.__dict__["__init__"] for c in cls.__mro__ if c.__module__.startswith("torch.") and "__init__" in c.__dict__)
    sig = inspect.signature(torch_init)

    if capturable:

        @functools.wraps(torch_init)
        def __init__(self: Any, *args: Any, capturable: bool = False, **kwargs: Any) -> None:
            _init_slots(self)
            torch_init(self, *args, **kwargs)
            if capturable:
                self._fastlr_enable_capture()

        params = [
            *sig.parameters.values(),
            inspect.Parameter("capturable", inspect.Parameter.KEYWORD_ONLY, default=False, annotation="bool"),
        ]
        __init__.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        __init__.__doc__ = (torch_init.__doc__ or "") + (
            "\n\ncapturable (bool, keyword-only): step on the device (counter, closed form and lrs in device "
            "memory), so that step() can be captured in a CUDA graph; needs tensor lrs. Default: False."
        )
    else:

        @functools.wraps(torch_init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            _init_slots(self)
            torch_init(self, *args, **kwargs)

        __init__.__signature__ = sig  # type: ignore[attr-defined]
    cls.__init__ = __init__
    return cls


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


class LambdaLR(LRScheduler, _tls.LambdaLR):
    """Sets each group's lr to its initial lr times ``lr_lambda(epoch)``; see
    :class:`torch.optim.lr_scheduler.LambdaLR`.

    The callables are called exactly as torch calls them (once per group per step, with
    ``last_epoch``); the multiplication and the writes into ``param_groups`` are done in C++.
    """

    _fastlr_reads_lr = False
    _fastlr_kind = _KIND_LAMBDA
    _fastlr_seek = "closed"


class MultiplicativeLR(LRScheduler, _tls.MultiplicativeLR):
    """Multiplies each group's lr by ``lr_lambda(epoch)`` every step; see
    :class:`torch.optim.lr_scheduler.MultiplicativeLR`."""

    _fastlr_kind = _KIND_MULTIPLICATIVE
    _fastlr_seek = "steps"


class StepLR(LRScheduler, _tls.StepLR):
    """Decays each group's lr by ``gamma`` every ``step_size`` epochs; see
    :class:`torch.optim.lr_scheduler.StepLR`."""

    _fastlr_kind = _KIND_STEP
    _fastlr_seek = "replay"


class MultiStepLR(LRScheduler, _tls.MultiStepLR):
    """Decays each group's lr by ``gamma`` at each milestone; see
    :class:`torch.optim.lr_scheduler.MultiStepLR`."""

    _fastlr_kind = _KIND_MULTISTEP
    _fastlr_seek = "replay"


class ConstantLR(LRScheduler, _tls.ConstantLR):
    """Multiplies each group's lr by ``factor`` until ``total_iters``; see
    :class:`torch.optim.lr_scheduler.ConstantLR`."""

    _fastlr_kind = _KIND_CONSTANT
    _fastlr_seek = "replay"


class LinearLR(LRScheduler, _tls.LinearLR):
    """Scales each group's lr linearly from ``start_factor`` to ``end_factor`` over ``total_iters``;
    see :class:`torch.optim.lr_scheduler.LinearLR`."""

    _fastlr_kind = _KIND_LINEAR
    _fastlr_seek = "replay"


class ExponentialLR(LRScheduler, _tls.ExponentialLR):
    """Decays each group's lr by ``gamma`` every step; see
    :class:`torch.optim.lr_scheduler.ExponentialLR`."""

    _fastlr_kind = _KIND_EXPONENTIAL
    _fastlr_seek = "replay"


class PolynomialLR(LRScheduler, _tls.PolynomialLR):
    """Decays each group's lr polynomially to zero over ``total_iters``; see
    :class:`torch.optim.lr_scheduler.PolynomialLR`."""

    _fastlr_kind = _KIND_POLYNOMIAL
    _fastlr_seek = "replay"


class CosineAnnealingLR(LRScheduler, _tls.CosineAnnealingLR):
    """Cosine annealing from each group's initial lr to ``eta_min`` over ``T_max`` steps (torch's
    recursive form, continuing as a cosine of period ``2 * T_max``); see
    :class:`torch.optim.lr_scheduler.CosineAnnealingLR`."""

    _fastlr_kind = _KIND_COSINE_ANNEALING
    _fastlr_seek = "replay"


class CyclicLR(LRScheduler, _tls.CyclicLR):
    """Cyclical learning rates between ``base_lr`` and ``max_lr`` (triangular, triangular2,
    exp_range or a custom ``scale_fn``), with momentum or beta1 cycled inversely; see
    :class:`torch.optim.lr_scheduler.CyclicLR`.

    The built-in modes run in the engine; a custom ``scale_fn`` is called by torch's code.
    """

    _fastlr_reads_lr = False
    _fastlr_kind = _KIND_CYCLIC
    _fastlr_seek = "closed"
    _fastlr_hooks = (*_STANDARD_HOOKS, "scale_fn")


class OneCycleLR(LRScheduler, _tls.OneCycleLR):
    """The 1cycle policy (two or three phases, cosine or linear annealing, momentum or beta1 cycled
    inversely); see :class:`torch.optim.lr_scheduler.OneCycleLR`."""

    _fastlr_reads_lr = False
    _fastlr_kind = _KIND_ONE_CYCLE
    _fastlr_seek = "closed"
    _fastlr_hooks = (*_STANDARD_HOOKS, "_anneal_func", "_annealing_cos", "_annealing_linear")


class CosineAnnealingWarmRestarts(LRScheduler, _tls.CosineAnnealingWarmRestarts):
    """SGDR: cosine annealing with warm restarts every ``T_0 * T_mult**i`` steps, including
    fractional ``step(epoch)``; see :class:`torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`."""

    _fastlr_reads_lr = False
    _fastlr_kind = _KIND_WARM_RESTARTS
    _fastlr_seek = "warm_restarts"
    _fastlr_hooks = ("get_lr",)


class ReduceLROnPlateau(LRScheduler, _tls.ReduceLROnPlateau):
    """Reduces each group's lr by ``factor`` when a metric stops improving; see
    :class:`torch.optim.lr_scheduler.ReduceLROnPlateau`."""

    _fastlr_reads_lr = False
    _fastlr_kind = _KIND_PLATEAU
    _fastlr_seek = None
    _fastlr_hooks = ("_reduce_lr", "_is_better", "in_cooldown")


class SequentialLR(LRScheduler, _tls.SequentialLR):
    """Runs member schedulers one after another, switching at ``milestones``; see
    :class:`torch.optim.lr_scheduler.SequentialLR`. Members may be fastlr's or torch's classes."""

    _fastlr_reads_lr = False
    _fastlr_kind = _KIND_SEQUENTIAL
    _fastlr_seek = "forward"
    _fastlr_hooks = ()


class ChainedScheduler(LRScheduler, _tls.ChainedScheduler):
    """Steps several schedulers on one optimizer at every step, composing their effects; see
    :class:`torch.optim.lr_scheduler.ChainedScheduler`. Members may be fastlr's or torch's classes."""

    _fastlr_reads_lr = False
    _fastlr_kind = _KIND_CHAINED
    _fastlr_seek = None  # no step counter of its own: seek its members, or step it
    _fastlr_hooks = ()


class SWALR(LRScheduler, _swa.SWALR):
    """Anneals each group's lr to its ``swa_lr`` over ``anneal_epochs`` (cosine or linear), for
    stochastic weight averaging; see :class:`torch.optim.swa_utils.SWALR`."""

    _fastlr_kind = _KIND_SWALR
    _fastlr_seek = "replay"
    _fastlr_hooks = (*_STANDARD_HOOKS, "_get_initial_lr")


_core._install_step(CosineAnnealingWarmRestarts, _STEP_WARM_RESTARTS)
_core._install_step(ReduceLROnPlateau, _STEP_PLATEAU)
_core._install_step(SequentialLR, _STEP_COMPOSITE)
_core._install_step(ChainedScheduler, _STEP_COMPOSITE)


def __getattr__(name: str) -> Any:
    # ScheduledLR lives in fastlr._scheduled (it builds on this module); re-exported lazily.
    if name == "ScheduledLR":
        from ._scheduled import ScheduledLR

        return ScheduledLR
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


for _cls in (
    LambdaLR, MultiplicativeLR, StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR,
    CosineAnnealingLR, CyclicLR, OneCycleLR, CosineAnnealingWarmRestarts, ReduceLROnPlateau, SWALR,
):
    _wrap_init(_cls, capturable=True)
for _cls in (SequentialLR, ChainedScheduler):
    _wrap_init(_cls, capturable=False)
del _cls


def _check_torch_behaviour() -> None:
    """Step every engine-driven class beside torch's (see :mod:`fastlr._protocol_probe`); take the
    classes that differ off the engine, and say so once."""
    global FAST_PATH_AVAILABLE
    if not _torch_protocol_ok:
        return
    from . import _protocol_probe

    found = _protocol_probe.probe(__import__(__name__, fromlist=["_"]))
    if not found:
        return
    FAST_PATH_MISMATCHES.update(found)
    FAST_PATH_AVAILABLE = False
    for c in list(_all_subclasses(LRScheduler)):
        c._fastlr_active_kind = c._fastlr_class_kind()
    import warnings

    import torch

    warnings.warn(
        f"fastlr: with torch {torch.__version__}, {len(found)} scheduler class(es) behave differently from "
        f"what fastlr's engine reproduces ({', '.join(sorted(found))}); they run torch's own code (exact, "
        "not faster). fastlr.lr_scheduler.FAST_PATH_MISMATCHES says what differed.",
        RuntimeWarning,
        stacklevel=2,
    )


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for c in cls.__subclasses__():
        out.append(c)
        out.extend(_all_subclasses(c))
    return out


_check_torch_behaviour()
