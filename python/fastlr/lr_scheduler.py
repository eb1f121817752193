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
from typing import Any

from torch.optim import lr_scheduler as _tls

from . import _core

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
]

EPOCH_DEPRECATION_WARNING: str = _tls.EPOCH_DEPRECATION_WARNING

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

# The methods whose work the engine does. A class that overrides one of them below the class that
# declares the engine kind gets the Python path.
_FAST_HOOKS = ("get_lr", "_get_closed_form_lr", "_update_lr")


def _torch_protocol_supported() -> bool:
    """Whether the installed torch schedules with the protocol the engine reproduces (torch 2.13's)."""
    needed = ("_initial_mode", "_enable_get_lr_call", "_update_param_group_val", "_param_groups_val_list")
    return all(hasattr(_tls, n) for n in needed) and all(
        hasattr(_tls.LRScheduler, n) for n in ("_update_lr", "_initial_step", "_is_initial")
    )


FAST_PATH_AVAILABLE: bool = _torch_protocol_supported()
"""False when the installed torch's scheduler internals differ from what the engine reproduces."""


class LRScheduler(_tls.LRScheduler):
    """Base class of fastlr's schedulers; a subclass of :class:`torch.optim.lr_scheduler.LRScheduler`.

    Subclass it exactly as torch's docs teach (override :meth:`get_lr`): such a scheduler runs
    torch's Python logic unchanged. fastlr's own classes declare an engine kind and are stepped in C++.

    ``step()`` is implemented in C: a plain ``scheduler.step()`` is one C call that updates every
    param group, and any other call (``step(epoch)``, the first step after construction, which may
    warn) goes through torch's ``step()``.
    """

    __slots__ = ("_fastlr_engine",)

    _fastlr_kind: int = _KIND_NONE
    _fastlr_active_kind: int = _KIND_NONE

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declaring = next(k for k in cls.__mro__ if "_fastlr_kind" in k.__dict__)
        overridden = any(getattr(cls, n, None) is not getattr(declaring, n, None) for n in _FAST_HOOKS)
        active = declaring.__dict__["_fastlr_kind"]
        cls._fastlr_active_kind = _KIND_NONE if overridden or not FAST_PATH_AVAILABLE else active

    def _fastlr_attach(self) -> None:
        self._fastlr_engine = _core.Engine(type(self)._fastlr_active_kind)

    def _initial_step(self) -> None:
        """Attach the engine, then take torch's initial step (which runs on the engine)."""
        self._fastlr_attach()
        super()._initial_step()

    def _update_lr(self, epoch: int | None = None) -> None:
        if not _core.update(self, epoch):
            super()._update_lr(epoch)

    @property
    def uses_fast_path(self) -> bool:
        """Whether this scheduler's steps run in fastlr's engine (per step it may still defer to
        torch's code for values the engine does not reproduce, such as tensor learning rates)."""
        eng = getattr(self, "_fastlr_engine", None)
        return eng is not None and eng.kind != _KIND_NONE

    # Pickling and copying carry torch's state (the instance dict) only; the engine is rebuilt.
    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._fastlr_attach()


_core._install(
    LRScheduler,
    LRScheduler.__dict__["_fastlr_engine"],
    collections.Counter,
    _tls._update_param_group_val,
    _tls._param_groups_val_list,
)


class LambdaLR(LRScheduler, _tls.LambdaLR):
    """Sets each group's lr to its initial lr times ``lr_lambda(epoch)``; see
    :class:`torch.optim.lr_scheduler.LambdaLR`.

    The callables are called exactly as torch calls them (once per group per step, with
    ``last_epoch``); the multiplication and the writes into ``param_groups`` are done in C++.
    """

    _fastlr_kind = _KIND_LAMBDA


class MultiplicativeLR(LRScheduler, _tls.MultiplicativeLR):
    """Multiplies each group's lr by ``lr_lambda(epoch)`` every step; see
    :class:`torch.optim.lr_scheduler.MultiplicativeLR`."""

    _fastlr_kind = _KIND_MULTIPLICATIVE


class StepLR(LRScheduler, _tls.StepLR):
    """Decays each group's lr by ``gamma`` every ``step_size`` epochs; see
    :class:`torch.optim.lr_scheduler.StepLR`."""

    _fastlr_kind = _KIND_STEP


class MultiStepLR(LRScheduler, _tls.MultiStepLR):
    """Decays each group's lr by ``gamma`` at each milestone; see
    :class:`torch.optim.lr_scheduler.MultiStepLR`."""

    _fastlr_kind = _KIND_MULTISTEP


class ConstantLR(LRScheduler, _tls.ConstantLR):
    """Multiplies each group's lr by ``factor`` until ``total_iters``; see
    :class:`torch.optim.lr_scheduler.ConstantLR`."""

    _fastlr_kind = _KIND_CONSTANT


class LinearLR(LRScheduler, _tls.LinearLR):
    """Scales each group's lr linearly from ``start_factor`` to ``end_factor`` over ``total_iters``;
    see :class:`torch.optim.lr_scheduler.LinearLR`."""

    _fastlr_kind = _KIND_LINEAR


class ExponentialLR(LRScheduler, _tls.ExponentialLR):
    """Decays each group's lr by ``gamma`` every step; see
    :class:`torch.optim.lr_scheduler.ExponentialLR`."""

    _fastlr_kind = _KIND_EXPONENTIAL


class PolynomialLR(LRScheduler, _tls.PolynomialLR):
    """Decays each group's lr polynomially to zero over ``total_iters``; see
    :class:`torch.optim.lr_scheduler.PolynomialLR`."""

    _fastlr_kind = _KIND_POLYNOMIAL


class CosineAnnealingLR(LRScheduler, _tls.CosineAnnealingLR):
    """Cosine annealing from each group's initial lr to ``eta_min`` over ``T_max`` steps (torch's
    recursive form, continuing as a cosine of period ``2 * T_max``); see
    :class:`torch.optim.lr_scheduler.CosineAnnealingLR`."""

    _fastlr_kind = _KIND_COSINE_ANNEALING
