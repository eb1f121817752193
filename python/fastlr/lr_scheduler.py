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

import functools
import inspect
import sys
from typing import Any

from torch.optim import lr_scheduler as _tls
from torch.optim import swa_utils as _swa

from . import _core, _lr_base
from ._lr_base import (  # noqa: F401 - re-exported: fastlr.lr_scheduler is their public home
    _KIND_CHAINED,
    _KIND_CONSTANT,
    _KIND_COSINE_ANNEALING,
    _KIND_CYCLIC,
    _KIND_EXPONENTIAL,
    _KIND_LAMBDA,
    _KIND_LINEAR,
    _KIND_MULTIPLICATIVE,
    _KIND_MULTISTEP,
    _KIND_NONE,
    _KIND_ONE_CYCLE,
    _KIND_PLATEAU,
    _KIND_POLYNOMIAL,
    _KIND_SCHEDULED,
    _KIND_SEQUENTIAL,
    _KIND_STEP,
    _KIND_SWALR,
    _KIND_WARM_RESTARTS,
    _STANDARD_HOOKS,
    _STEP_COMPOSITE,
    _STEP_PLATEAU,
    _STEP_SCHEDULED,
    _STEP_STANDARD,
    _STEP_WARM_RESTARTS,
    EPOCH_DEPRECATION_WARNING,
    FAST_PATH_MISMATCHES,
    TORCH_CLASSES,
    LRScheduler,
    _all_subclasses,
    _capture_of,
    _engine_of,
    _init_slots,
    _torch_protocol_ok,
    _TorchLRScheduler,
    _TorchPlateau,
    _TorchWarmRestarts,
    torch_step_warning_at_caller,
)

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
    "ScheduledLR",
]

FAST_PATH_AVAILABLE: bool = _torch_protocol_ok
"""False when the installed torch's scheduler internals differ from what the engine reproduces: the
names it relies on are missing, or a class stepped beside torch's at import behaved differently
(see ``FAST_PATH_MISMATCHES``). Every step then runs torch's code for such classes: exact, not faster."""


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


for _cls in (
    LambdaLR, MultiplicativeLR, StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR,
    CosineAnnealingLR, CyclicLR, OneCycleLR, CosineAnnealingWarmRestarts, ReduceLROnPlateau, SWALR,
):
    _wrap_init(_cls, capturable=True)
for _cls in (SequentialLR, ChainedScheduler):
    _wrap_init(_cls, capturable=False)
del _cls


# ScheduledLR (fastlr._scheduled, which builds on fastlr._lr_base) is re-exported here. Its module
# probes it at import; here, inside one collection, so that a torch that differs gets one warning.
with _lr_base.collect_probe_warnings():
    from ._scheduled import ScheduledLR  # noqa: E402

    _lr_base.check_torch_behaviour(sys.modules[__name__], __all__)
FAST_PATH_AVAILABLE = _torch_protocol_ok and not FAST_PATH_MISMATCHES
