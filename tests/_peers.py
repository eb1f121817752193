"""The peer libraries that some tests compare fastlr's shapes with (timm, optax, fvcore), imported
when they are installed. ``FASTLR_REQUIRE_PEERS=1`` (CI) turns a missing peer into a failure
instead of a skip.

timm's package ``__init__`` imports torchvision (through ``timm.layers``), which is not installable
beside every torch; ``timm.scheduler`` itself needs only torch and numpy, so where ``import timm``
fails on torchvision alone, the scheduler package is loaded from timm's files without running the
package ``__init__``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from typing import Any

import pytest

REQUIRED = os.environ.get("FASTLR_REQUIRE_PEERS") == "1"


def _missing(name: str, why: str) -> Any:
    if REQUIRED:
        pytest.fail(f"FASTLR_REQUIRE_PEERS=1 but {name} is not importable: {why}")
    pytest.skip(f"{name} is not installed ({why})")


def timm_scheduler(needs: str | None = None) -> Any:
    """``timm.scheduler``, or skip; also skip when it lacks the class `needs` (an older timm)."""
    try:
        mod = importlib.import_module("timm.scheduler")
    except ModuleNotFoundError as e:
        if e.name != "torchvision":
            return _missing("timm", str(e))
        spec = importlib.util.find_spec("timm")
        if spec is None or not spec.submodule_search_locations:
            return _missing("timm", "no timm package")
        shell = types.ModuleType("timm")
        shell.__path__ = list(spec.submodule_search_locations)
        sys.modules["timm"] = shell  # a package with timm's files and without its __init__
        mod = importlib.import_module("timm.scheduler")
    if needs is not None and not hasattr(mod, needs):
        return _missing(f"timm.scheduler.{needs}", "an older timm (CI pins timm 1.0.31)")
    return mod


def optax() -> Any:
    """``optax``, with jax in float64 (``jax_enable_x64``), or skip."""
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        return importlib.import_module("optax")
    except ImportError as e:
        return _missing("optax", str(e))


def fvcore_param_scheduler() -> Any:
    try:
        return importlib.import_module("fvcore.common.param_scheduler")
    except ImportError as e:
        return _missing("fvcore", str(e))
