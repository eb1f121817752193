"""fastlr: learning-rate schedules with a compiled C++ core.

* :mod:`fastlr.lr_scheduler` - bit-exact drop-in replacements for ``torch.optim.lr_scheduler``
  (needs torch; imported on first use, so ``import fastlr`` itself never imports torch).
"""

from __future__ import annotations

import importlib
from typing import Any

from ._core import __version__

__all__ = ["__version__", "lr_scheduler"]


def __getattr__(name: str) -> Any:
    if name == "lr_scheduler":
        try:
            return importlib.import_module("fastlr.lr_scheduler")
        except ModuleNotFoundError as e:
            if e.name == "torch":
                raise ImportError(
                    "fastlr.lr_scheduler needs PyTorch: pip install 'fastlr[torch]' (or torch itself)"
                ) from e
            raise
    raise AttributeError(f"module 'fastlr' has no attribute {name!r}")
