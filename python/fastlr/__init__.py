"""fastlr: learning-rate schedules with a compiled C++ core.

* :mod:`fastlr.schedules` - schedules as values (pure functions of the step, numpy tables,
  composition), evaluated in C++; no torch needed.
* :mod:`fastlr.lr_scheduler` - bit-exact drop-in replacements for ``torch.optim.lr_scheduler``
  (needs torch; imported on first use, so ``import fastlr`` itself never imports torch).
* :func:`fastlr.get_scheduler` - Hugging Face's ``get_scheduler`` names, as a
  :class:`~fastlr.lr_scheduler.ScheduledLR` (needs torch).
* :func:`fastlr.patch_torch` / :func:`fastlr.unpatch_torch` - torch's scheduler names build fastlr's
  classes, for code you cannot change (needs torch).
"""

from __future__ import annotations

import importlib
from typing import Any

from . import schedules
from ._core import __version__

__all__ = [
    "Diagnosis",
    "LRFindResult",
    "LossMonitor",
    "__version__",
    "diagnose",
    "find_lr",
    "get_scheduler",
    "lr_scheduler",
    "patch_torch",
    "schedules",
    "unpatch_torch",
]


def _torch_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name == "torch":
            raise ImportError(
                f"{name} needs PyTorch: pip install 'fastlr[torch]' (or torch itself)"
            ) from e
        raise


def __getattr__(name: str) -> Any:
    if name == "lr_scheduler":
        return _torch_module("fastlr.lr_scheduler")
    if name in ("get_scheduler", "ScheduledLR"):
        return getattr(_torch_module("fastlr._scheduled"), name)
    if name in ("patch_torch", "unpatch_torch", "torch_patched"):
        return getattr(_torch_module("fastlr._patch"), name)
    if name in ("find_lr", "LRFindResult"):
        return getattr(_torch_module("fastlr._find_lr"), name)
    if name in ("diagnose", "Diagnosis", "LossMonitor", "LossMonitorWarning"):  # numpy only
        return getattr(importlib.import_module("fastlr._diagnose"), name)
    raise AttributeError(f"module 'fastlr' has no attribute {name!r}")
