"""``fastlr.patch_torch()``: torch's scheduler classes swapped for fastlr's drop-ins, and back.

For code that builds torch's schedulers where you cannot change it (Hugging Face Trainer's
``create_scheduler``, Lightning CLI, timm's plateau wrapper): after ``fastlr.patch_torch()``, every
``torch.optim.lr_scheduler.<Name>`` (and ``torch.optim.swa_utils.SWALR``) that fastlr has is
fastlr's class. Because each fastlr class subclasses torch's, ``isinstance(s, <torch's class>)``
stays true for everything built meanwhile, and a subclass of the patched ``LRScheduler`` is written
exactly as torch's docs teach.

Modules that already did ``from torch.optim.lr_scheduler import LambdaLR`` hold torch's class in
their own namespace; with ``imported=True`` (the default) those module-level names are swapped too,
and put back by the undo. Schedulers constructed before the patch stay torch's objects.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType
from typing import Any

from torch.optim import lr_scheduler as _tls
from torch.optim import swa_utils as _swa

from . import lr_scheduler as _F

__all__ = ["patch_torch", "unpatch_torch", "torch_patched"]

_lock = threading.Lock()
# While patched: every (namespace dict, name, torch's object) that was rebound, to put back.
_undo: list[tuple[dict[str, Any], str, Any]] | None = None


def _pairs() -> dict[int, tuple[Any, Any]]:
    """id(torch's class) -> (torch's class, fastlr's class), for every class fastlr replaces."""
    out: dict[int, tuple[Any, Any]] = {}
    for name, torch_cls in _F.TORCH_CLASSES.items():
        fast = getattr(_F, name, None)
        if isinstance(fast, type) and issubclass(fast, torch_cls):
            out[id(torch_cls)] = (torch_cls, fast)
    return out


def _own_module(name: str) -> bool:
    return name == "fastlr" or name.startswith("fastlr.")


class _Patch:
    """What ``patch_torch()`` returns: also a context manager that undoes the patch on exit (if this
    call made it)."""

    def __init__(self, made: bool) -> None:
        self.made = made

    def __enter__(self) -> _Patch:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.made:
            unpatch_torch()

    def __repr__(self) -> str:
        return f"<fastlr.patch_torch: {'active' if torch_patched() else 'undone'}>"


def patch_torch(*, imported: bool = True) -> _Patch:
    """Make torch's scheduler names build fastlr's classes, until :func:`unpatch_torch`.

    Rebinds ``torch.optim.lr_scheduler.<Name>`` for every class fastlr has (``LRScheduler``,
    ``LambdaLR`` ... ``ChainedScheduler``) and ``torch.optim.swa_utils.SWALR``. With ``imported``,
    also the module-level names of already imported modules that hold one of torch's classes (``from
    torch.optim.lr_scheduler import LambdaLR`` done before this call). Calling it again while patched
    does nothing. Use it as a context manager to undo on exit::

        with fastlr.patch_torch():
            trainer.train()        # Trainer's LambdaLR is fastlr's

    Not thread-safe against code that imports or builds schedulers meanwhile; call it at start-up.
    """
    global _undo
    with _lock:
        if _undo is not None:
            return _Patch(made=False)
        pairs = _pairs()
        undo: list[tuple[dict[str, Any], str, Any]] = []

        def swap(ns: dict[str, Any], name: str) -> None:
            hit = pairs.get(id(ns.get(name)))
            if hit is not None and ns[name] is hit[0]:
                undo.append((ns, name, hit[0]))
                ns[name] = hit[1]

        for mod in (_tls, _swa):
            for name in list(vars(mod)):
                swap(vars(mod), name)
        if imported:
            for mod_name, mod in list(sys.modules.items()):
                if not isinstance(mod, ModuleType) or mod in (_tls, _swa) or _own_module(mod_name):
                    continue
                try:
                    ns = vars(mod)
                except TypeError:  # pragma: no cover - a module object without a __dict__
                    continue
                for name, value in list(ns.items()):
                    if id(value) in pairs:
                        swap(ns, name)
        _undo = undo
        return _Patch(made=True)


def unpatch_torch() -> None:
    """Undo :func:`patch_torch`: every name it rebound holds torch's class again (those that were
    rebound to something else since are left as they are). Does nothing when not patched."""
    global _undo
    with _lock:
        undo, _undo = _undo, None
        if not undo:
            return
        pairs = _pairs()
        for ns, name, torch_cls in reversed(undo):
            if ns.get(name) is pairs[id(torch_cls)][1]:
                ns[name] = torch_cls


def torch_patched() -> bool:
    """Whether :func:`patch_torch` is in effect."""
    return _undo is not None
