"""CyclicLR and OneCycleLR remember, per param group, what they found in the group dict at their last
step (its lr and momentum objects, OneCycleLR's start/end values), and skip the lookups while the
dict's version tag says nothing was assigned since. These tests edit the groups between steps in
every way a user can, and check each step bitwise against the installed torch: any stale reuse of a
remembered value shows up as a different lr or momentum.
"""

from __future__ import annotations

import struct
import warnings
from typing import Any

import pytest
torch = pytest.importorskip("torch")

from _helpers_more import TORCH, Twin, assert_engine_did_the_work, fast_values, make_opt

from fastlr import lr_scheduler as F


def _cyclic(mod: Any, opt: torch.optim.Optimizer) -> Any:
    return mod.CyclicLR(opt, base_lr=[1e-3, 2e-3, 3e-3, 4e-3], max_lr=[0.1, 0.2, 0.3, 0.4], step_size_up=7,
                        mode="triangular2")


def _onecycle(mod: Any, opt: torch.optim.Optimizer) -> Any:
    return mod.OneCycleLR(opt, max_lr=[0.1, 0.2, 0.3, 0.4], total_steps=60, three_phase=True, pct_start=0.2)


BUILDS = {"CyclicLR": _cyclic, "OneCycleLR": _onecycle}


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_group_edits_between_steps_are_seen(name: str) -> None:
    twin = Twin(BUILDS[name], lambda: make_opt(4))
    held: dict[int, list[tuple[float, bytes]]] = {}

    def between(k: int, opt: torch.optim.Optimizer, sched: Any) -> None:
        g = opt.param_groups
        if k == 4:  # operand keys (OneCycleLR reads them every step) and the cycled momentum itself
            g[1]["max_lr"] = 0.55
            g[2]["max_momentum"] = 0.97
            g[3]["base_momentum"] = 0.5
            g[0]["momentum"] = 0.25
        elif k == 8:  # a group dict replaced by a copy (a new dict, same values)
            g[2] = dict(g[2])
        elif k == 11:  # someone else holds the lr and momentum floats: they must keep their values
            held[id(opt)] = [(x, _bits(x)) for x in (g[0]["lr"], g[1]["momentum"], g[3]["lr"])]
        elif k == 15:
            for x, b in held.pop(id(opt)):
                assert _bits(x) == b, "a float held outside the scheduler was changed in place"
        elif k == 17:  # the same object assigned back, then a new lr value
            g[0]["lr"] = g[0]["lr"]
            g[1]["lr"] = 0.0123
        elif k == 21:  # momentum cycling off for a while, then on again
            sched.cycle_momentum = False
        elif k == 25:
            sched.cycle_momentum = True
        elif k == 28:  # OneCycleLR's phase bounds read from another key's value
            g[2]["initial_lr"] = 0.031
            g[0]["min_lr"] = 1e-5
        elif k == 31:  # a key deleted and put back
            m = g[3].pop("momentum")
            g[3]["momentum"] = m
        elif k == 34:  # groups reordered
            g[0], g[3] = g[3], g[0]

    twin.steps(45, between=between)
    assert_engine_did_the_work(twin.sf)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_fallback_mid_pass_restores_and_forgets(name: str) -> None:
    """A group the fast path cannot take (an int lr) after others were written in place: the written
    groups are restored, torch's code runs the step, and the following steps see fresh values."""
    twin = Twin(BUILDS[name], lambda: make_opt(4))

    def between(k: int, opt: torch.optim.Optimizer, sched: Any) -> None:
        if k == 6:
            opt.param_groups[2]["lr"] = 1  # an int: torch's arithmetic makes a float of it
        if k == 7:
            opt.param_groups[3]["momentum"] = 1  # an int momentum

    twin.steps(20, between=between)
    handled, deferred = twin.sf._fastlr_engine.handled, twin.sf._fastlr_engine.deferred
    assert deferred >= 1 and handled >= 15


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_two_schedulers_on_the_same_groups(name: str) -> None:
    """Two schedulers on one optimizer, stepped in changing order: each one's memo must notice the
    other's writes to the same group dicts."""

    def build(mod: Any, opt: torch.optim.Optimizer) -> tuple[Any, Any]:
        first = BUILDS[name](mod, opt)
        second = mod.CyclicLR(opt, base_lr=5e-4, max_lr=0.05, step_size_up=5, cycle_momentum=False)
        return first, second

    ot, of = make_opt(4), make_opt(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t1, t2 = build(TORCH, ot)
        f1, f2 = build(F, of)
        for k in range(30):
            for s_t, s_f in ((t1, f1), (t2, f2)) if k % 3 else ((t2, f2), (t1, f1)):
                s_t.step()
                s_f.step()
                assert fast_values(ot, s_t.get_last_lr()) == fast_values(of, s_f.get_last_lr()), k
    assert_engine_did_the_work(f1)
    assert_engine_did_the_work(f2)


def _editing_lambdas(opt: torch.optim.Optimizer, n: int) -> list[Any]:
    """One lambda per group; at some epochs, group 0's lambda edits later groups mid-step (torch's
    comprehension reads each group's lr after the previous lambdas ran, so the edit is seen)."""

    def make(i: int) -> Any:
        def lam(epoch: int) -> float:
            if i == 0 and epoch in (4, 9):
                opt.param_groups[n - 1]["lr"] = 0.02 * epoch
            if i == 0 and epoch == 12:
                opt.param_groups[1] = dict(opt.param_groups[1])  # a new dict for group 1
            return 0.9 + 0.01 * i

        return lam

    return [make(i) for i in range(n)]


@pytest.mark.parametrize("cls", ["LambdaLR", "MultiplicativeLR"])
def test_lambda_classes_see_edits_made_by_lambdas(cls: str) -> None:
    def build(mod: Any, opt: torch.optim.Optimizer) -> Any:
        return getattr(mod, cls)(opt, lr_lambda=_editing_lambdas(opt, len(opt.param_groups)))

    twin = Twin(build, lambda: make_opt(4))

    def between(k: int, opt: torch.optim.Optimizer, sched: Any) -> None:
        if k == 15:
            opt.param_groups[2]["lr"] = 0.3  # an edit between steps
        if k == 18:  # held from outside: never rewritten in place
            x = opt.param_groups[0]["lr"]
            held.append((x, _bits(x)))

    held: list[tuple[float, bytes]] = []
    twin.steps(25, between=between)
    assert_engine_did_the_work(twin.sf)
    assert len(held) == 2 and all(_bits(x) == b for x, b in held)


@pytest.mark.parametrize("name", ["OneCycleLR", "CyclicLR", "ExponentialLR", "MultiplicativeLR"])
def test_torch_step_failing_midway_then_fast_steps(name: str) -> None:
    """torch's own step fails after writing group 0 (group 1 holds a 1-d tensor), so `_last_lr` and
    group 0's lr part ways. The following steps, tried by the engine first, must leave `_last_lr`
    exactly as torch's failing steps do (found by the fuzz test: an undo put group 0's lr there)."""
    builds = {
        "OneCycleLR": (lambda m, o: m.OneCycleLR(o, 0.1, total_steps=40, three_phase=True), "initial_lr"),
        "CyclicLR": (lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=3), "lr"),
        "ExponentialLR": (lambda m, o: m.ExponentialLR(o, 0.9), "lr"),
        "MultiplicativeLR": (lambda m, o: m.MultiplicativeLR(o, lambda e: 0.9), "lr"),
    }
    build, key = builds[name]
    twin = Twin(build, lambda: make_opt(3))
    twin.steps(2)
    twin.do(lambda s, o: o.param_groups[1].__setitem__(key, torch.tensor([0.1, 0.2])), state=False)
    for _ in range(3):
        twin.do(lambda s, o: s.step())


@pytest.mark.parametrize("name", ["CosineAnnealingLR", "OneCycleLR", "MultiplicativeLR"])
def test_tensor_lrs_edited_between_steps(name: str) -> None:
    """The tensor executor also skips the lookup of a packed lr tensor while the group dict is
    unchanged: a replaced tensor, an in-place fill_, a float put back, all as torch sees them."""
    builds = {
        "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=30),
        "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=60),
        "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.97),
    }
    twin = Twin(builds[name], lambda: make_opt(4, lr_kind="tensor64"))

    def between(k: int, opt: torch.optim.Optimizer, sched: Any) -> None:
        g = opt.param_groups
        if k == 5:
            g[1]["lr"] = torch.tensor(0.05, dtype=torch.float64)  # another tensor object
        if k == 9:
            with torch.no_grad():
                g[2]["lr"].fill_(0.02)  # same object, new value: the dict does not change
        if k == 13:
            g[3]["lr"] = 0.01  # a Python float in a tensor-lr optimizer

    twin.steps(25, between=between)


@pytest.mark.parametrize("name", ["ExponentialLR", "CosineAnnealingLR", "SWALR", "StepLR"])
def test_single_update_classes_see_group_edits(name: str) -> None:
    """The one-update classes (decays, CosineAnnealingLR, SWALR) also take an unchanged group's lr
    float (and SWALR's swa_lr) from the memo: every kind of edit between steps must be seen."""
    builds = {
        "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.95),
        "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=20, eta_min=1e-4),
        "SWALR": lambda m, o: m.SWALR(o, swa_lr=[0.01, 0.02, 0.03, 0.04], anneal_epochs=12),
        "StepLR": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    }
    twin = Twin(builds[name], lambda: make_opt(4))
    held: list[tuple[float, bytes]] = []

    def between(k: int, opt: torch.optim.Optimizer, sched: Any) -> None:
        g = opt.param_groups
        if k == 3:
            g[1]["lr"] = 0.07
        if k == 5 and "swa_lr" in g[2]:
            g[2]["swa_lr"] = 0.5
        if k == 7:
            g[0] = dict(g[0])
        if k == 9:
            x = g[3]["lr"]
            held.append((x, _bits(x)))
        if k == 11:
            v = g[2].pop("lr")
            g[2]["lr"] = v

    twin.steps(20, between=between)
    assert len(held) == 2 and all(_bits(x) == b for x, b in held)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_betas_rewritten_in_place_only_when_nobody_holds_them(name: str) -> None:
    """Adam-style betas: beta1 is rewritten inside the group's tuple only when nothing else holds the
    tuple or its beta1; a tuple held from outside keeps its values, and edits are seen."""
    twin = Twin(BUILDS[name], lambda: make_opt(4, opt="AdamW"))
    held: list[tuple[Any, bytes]] = []

    def between(k: int, opt: torch.optim.Optimizer, sched: Any) -> None:
        g = opt.param_groups
        if k == 4:
            t = g[1]["betas"]
            held.append((t, _bits(t[0])))  # the tuple held from outside
        if k == 6:
            b1 = g[2]["betas"][0]
            held.append(((b1,), _bits(b1)))  # only its beta1 held from outside
        if k == 8:
            g[3]["betas"] = (0.5, 0.9)  # a new tuple (a code constant: shared)
        if k == 10:
            g[0]["betas"] = (g[0]["betas"][0], 0.95)  # beta2 edited

    twin.steps(20, between=between)
    assert len(held) == 4 and all(_bits(t[0]) == b for t, b in held)
    assert_engine_did_the_work(twin.sf)


@pytest.mark.parametrize("opt", ["SGD", "AdamW"])
@pytest.mark.parametrize("name", sorted(BUILDS))
def test_tensor_lrs_with_float_momentum_edited_between_steps(name: str, opt: str) -> None:
    """Tensor lrs beside a Python-float momentum (SGD) or betas tuple (AdamW), the common case of a
    compiled step with `lr=torch.tensor(...)`: the executor remembers the packed lr tensor and the
    momentum object, rewrites a momentum float (beta1 inside its tuple) in place when only its group
    holds it, and must see every edit; floats and tuples held from outside keep their values."""
    twin = Twin(BUILDS[name], lambda: make_opt(4, lr_kind="tensor64", opt=opt))
    key = "betas" if opt == "AdamW" else "momentum"
    held: list[tuple[Any, bytes]] = []

    def first(v: Any) -> float:
        return v[0] if isinstance(v, tuple) else v

    def between(k: int, o: torch.optim.Optimizer, sched: Any) -> None:
        g = o.param_groups
        if k == 3:  # the momentum object held from outside: it must not change
            v = g[1][key]
            held.append((v, _bits(first(v))))
        if k == 5:  # a new momentum value (for AdamW: a new tuple, a code constant shared by both twins)
            g[2][key] = (0.5, 0.9) if opt == "AdamW" else 0.5
        if k == 7:  # a replaced lr tensor, and a dict replaced by a copy
            g[0]["lr"] = torch.tensor(0.05, dtype=torch.float64)
            g[3] = dict(g[3])
        if k == 9:  # the lr tensor edited in place: the dict does not change
            with torch.no_grad():
                g[1]["lr"].fill_(0.02)
        if k == 11:  # momentum deleted and put back (the dict changes, the object does not)
            v = g[2].pop(key)
            g[2][key] = v
        if k == 13 and name == "OneCycleLR":  # an operand key: read again
            g[0]["max_lr"] = 0.3

    twin.steps(30, between=between)
    assert len(held) == 2 and all(_bits(first(v)) == b for v, b in held)
    assert_engine_did_the_work(twin.sf)


def test_tensor_operand_keys_edited_in_place_are_seen() -> None:
    """OneCycleLR reading its phase keys from 0-d tensors: the memo keeps only float operands, so a
    tensor edited in place (the dict unchanged) is read again at the next step, as torch does."""
    def build(m: Any, o: torch.optim.Optimizer) -> Any:
        s = m.OneCycleLR(o, max_lr=0.1, total_steps=40)
        for g in o.param_groups:
            g["max_lr"] = torch.tensor(g["max_lr"], dtype=torch.float64)
        return s

    twin = Twin(build, lambda: make_opt(3, lr_kind="tensor64"))

    def between(k: int, o: torch.optim.Optimizer, sched: Any) -> None:
        if k in (4, 9):
            with torch.no_grad():
                o.param_groups[1]["max_lr"].mul_(0.5)

    twin.steps(20, between=between)


@pytest.mark.parametrize("lr_kind", ["float", "tensor64"])
@pytest.mark.parametrize("name", ["CyclicLR", "CosineAnnealingWarmRestarts", "CosineAnnealingLR"])
def test_operand_lists_edited_between_steps(name: str, lr_kind: str) -> None:
    """The engine remembers a list of float operands (base_lrs, max_lrs, momentum bounds) by its float
    objects: an item replaced, a whole list replaced, an item replaced by an equal float, or by a
    value freed and made again, must all be seen as torch sees them."""
    builds = {
        "CyclicLR": lambda m, o: m.CyclicLR(o, base_lr=[1e-3, 2e-3, 3e-3, 4e-3], max_lr=0.1, step_size_up=5),
        "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=7, eta_min=1e-4),
        "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=9),
    }
    twin = Twin(builds[name], lambda: make_opt(4, lr_kind=lr_kind))

    def between(k: int, o: torch.optim.Optimizer, s: Any) -> None:
        key = "max_lrs" if name == "CyclicLR" and k % 2 else "base_lrs"
        lst = getattr(s, key)
        if not all(isinstance(v, float) for v in lst):
            return
        if k == 3:
            lst[1] = 0.05
        elif k == 6:
            setattr(s, key, [v * 0.5 for v in lst])
        elif k == 9:
            lst[2] = float(str(lst[2]))  # an equal value in another object
        elif k == 12:
            v = lst.pop(0)
            del v
            lst.insert(0, 0.0123)  # the old object freed, a new one made (perhaps at its address)
        elif k == 15:
            lst.reverse()

    twin.steps(22, between=between)


def test_momentum_taken_while_the_device_executor_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Buffers off the CPU are updated by Python (the device executor) before the Python-float
    momentum is rewritten in place; a reference taken meanwhile must see the old value, and the group
    gets the new one as a new object, as torch assigns it. (CPU buffers routed through the executor.)"""
    from fastlr import _tensor_lrs

    monkeypatch.setattr(_tensor_lrs, "FORCE_DEVICE_EXECUTOR", True)
    o_ref, o = make_opt(3, lr_kind="tensor64"), make_opt(3, lr_kind="tensor64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = TORCH.OneCycleLR(o_ref, max_lr=0.1, total_steps=50)
        s = F.OneCycleLR(o, max_lr=0.1, total_steps=50)
        held: list[tuple[float, bytes]] = []
        real = _tensor_lrs.DeviceExecutor.apply

        def apply(*args: Any) -> None:
            if len(held) == 0 and s.last_epoch == 6:  # the call inside the step that makes epoch 6
                m = o.param_groups[1]["momentum"]
                held.append((m, _bits(m)))
            real(*args)

        monkeypatch.setattr(_tensor_lrs.DeviceExecutor, "apply", staticmethod(apply))
        for _ in range(12):
            ref.step()
            s.step()
            for a, b in zip(o_ref.param_groups, o.param_groups):
                assert _bits(a["momentum"]) == _bits(b["momentum"])
                assert _bits(float(a["lr"])) == _bits(float(b["lr"]))
    assert len(held) == 1 and _bits(held[0][0]) == held[0][1]
    assert_engine_did_the_work(s)
