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


@pytest.mark.parametrize(
    "name",
    ["ExponentialLR", "CosineAnnealingLR", "LinearLR", "SWALR", "CosineAnnealingWarmRestarts", "LambdaLR",
     "MultiplicativeLR", "CyclicLR", "OneCycleLR"],
)
def test_floats_and_lists_anyone_holds_never_change(name):
    """The engine updates the previous step's floats and `_last_lr` in place only when nothing else
    holds them; a value the caller kept (a get_last_lr() list, a group's lr float) keeps its value."""
    from torch.optim import swa_utils

    import torch.optim.lr_scheduler as T

    build = {
        "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
        "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=7),
        "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.1, total_iters=20),
        "SWALR": lambda m, o: (swa_utils if m is T else m).SWALR(o, swa_lr=0.01, anneal_epochs=20),
        "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=5),
        "LambdaLR": lambda m, o: m.LambdaLR(o, lambda e: 0.9**e),
        "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.95),
        "CyclicLR": lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=4),
        "OneCycleLR": lambda m, o: m.OneCycleLR(o, 0.1, total_steps=100),
    }[name]

    def make():
        ps = [torch.nn.Parameter(torch.zeros(2)) for _ in range(4)]
        return torch.optim.SGD([{"params": [p], "lr": 0.1 + 0.01 * i} for i, p in enumerate(ps)], momentum=0.9)

    o1, o2 = make(), make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s1, s2 = build(T, o1), build(F, o2)
        kept_lists, kept_floats = [], []
        for k in range(30):
            if k % 3 == 0:
                lst = s2.get_last_lr()
                kept_lists.append((lst, list(map(float.hex, lst))))
            if k % 4 == 1:
                g = o2.param_groups[k % 4]
                kept_floats.append((g["lr"], g["lr"].hex()))
                kept_floats.append((g["momentum"], float(g["momentum"]).hex()))
            s1.step()
            s2.step()
            assert [g["lr"] for g in o1.param_groups] == [g["lr"] for g in o2.param_groups], k
            assert [g["momentum"] for g in o1.param_groups] == [g["momentum"] for g in o2.param_groups], k
            assert s1.get_last_lr() == s2.get_last_lr()
    assert s2._fastlr_engine.handled >= 30
    for lst, hexes in kept_lists:
        assert list(map(float.hex, lst)) == hexes
    for f, h in kept_floats:
        assert f.hex() == h
