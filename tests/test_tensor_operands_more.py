"""Tensor hyperparameters (max_lr, swa_lr, base_lr, momentum bounds) with float, float64-tensor and
mixed lrs, for CyclicLR, OneCycleLR, SWALR and CosineAnnealingWarmRestarts: everything bitwise
torch's, types included.

torch's arithmetic with a tensor operand yields a tensor, which it *assigns* into a group that held a
Python float (that lr or momentum becomes a tensor), and CyclicLR/OneCycleLR store one tensor object
as both ``group["momentum"]`` (or beta1) and ``group["max_momentum"]``. Both are easy to get wrong in
a packed, in-place tensor path.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
torch = pytest.importorskip("torch")
from _helpers_more import Twin, engine_counts, make_opt

pytestmark = pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)` before:UserWarning")


def t64(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def mixed(opt: str = "SGD") -> Callable[[], torch.optim.Optimizer]:
    def make() -> torch.optim.Optimizer:
        o = make_opt(4, opt=opt)
        o.param_groups[1]["lr"] = t64(0.05)
        o.param_groups[3]["lr"] = t64(0.02)
        return o

    return make


OPTIMIZERS: list[tuple[str, Callable[[], torch.optim.Optimizer]]] = [
    ("float", lambda: make_opt(4)),
    ("tensor64", lambda: make_opt(4, "tensor64")),
    ("mixed", mixed()),
    ("mixed-Adam", mixed("Adam")),
    ("tensor64-Adam-tensor-betas", lambda: make_opt(4, "tensor64", opt="Adam", betas=(t64(0.9), t64(0.99)))),
]

BUILDS: list[tuple[str, Callable[[Any, torch.optim.Optimizer], Any]]] = [
    ("OneCycleLR-tensor-max_lr", lambda m, o: m.OneCycleLR(o, t64(0.1), total_steps=50)),
    ("OneCycleLR-tensor-max_momentum", lambda m, o: m.OneCycleLR(o, 0.1, total_steps=50, max_momentum=t64(0.95))),
    ("OneCycleLR-tensor-momentum-bounds",
     lambda m, o: m.OneCycleLR(o, 0.1, total_steps=50, max_momentum=t64(0.95), base_momentum=t64(0.85))),
    ("CyclicLR-tensor-base_momentum", lambda m, o: m.CyclicLR(o, 0.01, 0.1, base_momentum=t64(0.8))),
    ("CyclicLR-tensor-momentum-bounds",
     lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=3, base_momentum=t64(0.8), max_momentum=t64(0.9))),
    ("CyclicLR-tensor-base_lr", lambda m, o: m.CyclicLR(o, t64(0.01), 0.1, step_size_up=3)),
    ("SWALR-tensor-swa_lr", lambda m, o: m.SWALR(o, t64(0.01), anneal_epochs=5)),
    ("SWALR-one-tensor-swa_lr", lambda m, o: m.SWALR(o, [0.01, t64(0.02), 0.03, 0.04], anneal_epochs=5)),
    ("CAWR", lambda m, o: m.CosineAnnealingWarmRestarts(o, 5)),
    ("OneCycleLR", lambda m, o: m.OneCycleLR(o, 0.1, total_steps=50)),
    ("CyclicLR", lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=3)),
    ("SWALR", lambda m, o: m.SWALR(o, 0.01, anneal_epochs=5)),
]


@pytest.mark.parametrize("oid, make", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
@pytest.mark.parametrize("bid, build", BUILDS, ids=[b[0] for b in BUILDS])
def test_tensor_hyperparameters_like_torch(bid, build, oid, make):
    t = Twin(build, make)
    t.steps(48)  # every group key (lr, momentum, betas, bounds) compared bitwise, types included
    assert engine_counts(t.sf)[0] + engine_counts(t.sf)[1] > 0


@pytest.mark.parametrize("which", ["CyclicLR", "OneCycleLR"])
def test_momentum_bound_is_not_moved_by_the_momentum(which):
    """torch stores one tensor as momentum and max_momentum, then assigns a new momentum every step:
    max_momentum never moves."""
    o = make_opt(3, "tensor64")
    from fastlr import lr_scheduler as F

    if which == "CyclicLR":
        s = F.CyclicLR(o, 0.01, 0.1, step_size_up=3, base_momentum=t64(0.8), max_momentum=t64(0.9))
    else:
        s = F.OneCycleLR(o, 0.1, total_steps=50, max_momentum=t64(0.95), base_momentum=t64(0.85))
    bounds = [(g["max_momentum"].item(), g["base_momentum"].item()) for g in o.param_groups]
    for _ in range(10):
        s.step()
    assert [(g["max_momentum"].item(), g["base_momentum"].item()) for g in o.param_groups] == bounds
    assert all(g["momentum"] is not g["max_momentum"] for g in o.param_groups)
