"""The engine keeps nothing alive: schedulers in reference cycles are collected."""

from __future__ import annotations

import gc
import warnings
import weakref

import pytest

torch = pytest.importorskip("torch")

import fastlr.lr_scheduler as F  # noqa: E402


@pytest.mark.parametrize("lr_kind", ["float", "tensor"])
def test_scheduler_in_a_reference_cycle_is_collected(lr_kind):
    """A lambda that refers to its own scheduler makes a cycle (scheduler -> __dict__ -> lr_lambdas ->
    closure -> scheduler). The collector must be able to free it, engine included."""
    p = torch.nn.Parameter(torch.zeros(2))
    lr = 0.1 if lr_kind == "float" else torch.tensor(0.1, dtype=torch.float64)
    opt = torch.optim.SGD([{"params": [p], "lr": lr}])
    box = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = F.LambdaLR(opt, lambda e: 0.9 ** e if box.get("s") is not None else 1.0)
        box["s"] = sched
        for _ in range(5):
            sched.step()
    assert sched._fastlr_engine.handled > 0
    ref = weakref.ref(sched)
    del sched, box
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("name", ["LambdaLR", "StepLR", "CyclicLR", "ReduceLROnPlateau", "CosineAnnealingWarmRestarts"])
def test_engine_holds_no_reference_to_the_instance_dict_between_calls(name):
    import sys

    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [p], "lr": 0.1}], momentum=0.9)
    build = {
        "LambdaLR": lambda: F.LambdaLR(opt, lambda e: 0.9**e),
        "StepLR": lambda: F.StepLR(opt, 3),
        "CyclicLR": lambda: F.CyclicLR(opt, 0.01, 0.1),
        "ReduceLROnPlateau": lambda: F.ReduceLROnPlateau(opt),
        "CosineAnnealingWarmRestarts": lambda: F.CosineAnnealingWarmRestarts(opt, 5),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = build[name]()
        for _ in range(3):
            s.step(1.0) if name == "ReduceLROnPlateau" else s.step()
    assert s._fastlr_engine.handled > 0
    refs = sys.getrefcount(s.__dict__)  # outside the assert: pytest's rewriting would hold one more
    assert refs == 2  # the instance's own reference, and getrefcount's argument
