"""Shared helpers for the fastlr test suite.

Parity tests build two identical optimizers, attach torch's scheduler to one and fastlr's to the
other, step both, and compare every learning rate bit for bit against the installed torch.
"""

from __future__ import annotations

import math
import struct
import warnings
from typing import Any, Callable

import pytest

torch = pytest.importorskip("torch")

#: Group counts used by the parity tests (1, a few, and a prime that defeats any accidental pairing).
GROUP_COUNTS = (1, 3, 17)


def base_lrs_for(n_groups: int) -> list[float]:
    """Distinct, awkward base lrs (not powers of two), one per group."""
    return [0.1 * (0.7**i) + 1e-3 * i for i in range(n_groups)]


def make_optimizer(
    n_groups: int = 3,
    lr_kind: str = "float",
    opt: str = "SGD",
    base_lrs: list[float] | None = None,
    **opt_kwargs: Any,
) -> torch.optim.Optimizer:
    """An optimizer with ``n_groups`` one-parameter groups and distinct lrs.

    lr_kind: "float" (Python floats), "tensor64" / "tensor32" (0-d tensors of that dtype).
    """
    lrs = base_lrs if base_lrs is not None else base_lrs_for(n_groups)
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(n_groups)]
    groups = []
    for p, lr in zip(params, lrs):
        if lr_kind == "float":
            v: Any = lr
        elif lr_kind == "tensor64":
            v = torch.tensor(lr, dtype=torch.float64)
        elif lr_kind == "tensor32":
            v = torch.tensor(lr, dtype=torch.float32)
        else:
            raise ValueError(lr_kind)
        groups.append({"params": [p], "lr": v})
    cls = getattr(torch.optim, opt)
    if opt == "SGD":
        opt_kwargs.setdefault("momentum", 0.9)
    return cls(groups, **opt_kwargs)


def step_optimizer(opt: torch.optim.Optimizer) -> None:
    """A real optimizer step (with a gradient), so the lr-scheduler order warnings stay quiet."""
    for g in opt.param_groups:
        for p in g["params"]:
            p.grad = torch.ones_like(p)
    opt.step()


def lr_values(opt: torch.optim.Optimizer) -> list[Any]:
    return [g["lr"] for g in opt.param_groups]


def as_bits(x: Any) -> Any:
    """A float (or 0-d tensor) as something whose equality is bitwise (NaN == NaN, -0.0 != 0.0)."""
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.float64:
            return ("t64", struct.pack("<d", x.item()))
        if x.dtype == torch.float32:
            return ("t32", struct.pack("<f", x.item()))
        return ("t", x.dtype, x.tolist())
    if isinstance(x, float):
        return ("f", struct.pack("<d", x))
    return (type(x).__name__, x)


def bits(xs: list[Any]) -> list[Any]:
    return [as_bits(x) for x in xs]


def f32_ulps(a: float, b: float) -> int:
    """Distance between two float32 values in units in the last place."""
    ia = struct.unpack("<i", struct.pack("<f", a))[0]
    ib = struct.unpack("<i", struct.pack("<f", b))[0]
    if ia < 0:
        ia = -(1 << 31) - ia
    if ib < 0:
        ib = -(1 << 31) - ib
    return abs(ia - ib)


def to_f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def run_pair(
    torch_factory: Callable[[torch.optim.Optimizer], Any],
    fast_factory: Callable[[torch.optim.Optimizer], Any],
    n_steps: int,
    make: Callable[[], torch.optim.Optimizer],
    between: Callable[[int, torch.optim.Optimizer], None] | None = None,
    step_opt: bool = False,
) -> tuple[Any, Any, torch.optim.Optimizer, torch.optim.Optimizer]:
    """Step a torch and a fastlr scheduler side by side, asserting bitwise-equal lrs every step.

    Returns both schedulers and optimizers for further checks. ``between(k, opt)`` runs on both
    optimizers before step k (manual lr edits and the like).
    """
    o1, o2 = make(), make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s1 = torch_factory(o1)
        s2 = fast_factory(o2)
    assert bits(lr_values(o1)) == bits(lr_values(o2)), "after construction"
    assert bits(s1.get_last_lr()) == bits(s2.get_last_lr()), "get_last_lr after construction"
    for k in range(n_steps):
        if between is not None:
            between(k, o1)
            between(k, o2)
        if step_opt:
            step_optimizer(o1)
            step_optimizer(o2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s1.step()
            s2.step()
        a, b = s1.get_last_lr(), s2.get_last_lr()
        if bits(a) != bits(b) or bits(lr_values(o1)) != bits(lr_values(o2)):
            raise AssertionError(f"step {k + 1}: torch {a!r} != fastlr {b!r}")
    return s1, s2, o1, o2


def same_state(sd1: dict[str, Any], sd2: dict[str, Any]) -> bool:
    """State dicts equal, floats compared bitwise (lambda entries compared as torch stores them)."""
    if sd1.keys() != sd2.keys():
        return False
    for k in sd1:
        a, b = sd1[k], sd2[k]
        if isinstance(a, list) and isinstance(b, list):
            if bits(a) != bits(b):
                return False
        elif isinstance(a, float) and isinstance(b, float):
            if as_bits(a) != as_bits(b):
                return False
        elif a != b and not (isinstance(a, float) and math.isnan(a) and math.isnan(b)):
            return False
    return True
