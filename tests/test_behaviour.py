"""Everything about the drop-in classes besides their numbers: warnings, the optimizer.step wrapper,
reference cycles, subclassing, isinstance/signatures, and torch's composite schedulers driving fastlr
members. Each check runs the same scenario on torch's class and on fastlr's and compares.
"""

from __future__ import annotations

import gc
import inspect
import subprocess
import sys
import warnings
import weakref
from typing import Any, Callable
from unittest import mock

import pytest

pytest.importorskip("torch")

from _torch_helpers import (
    ORDINARY_KWARGS,
    SCHEDULER_NAMES,
    assert_same_state,
    bits,
    build_pair,
    engine,
    fast_class,
    lockstep,
    lr_values,
    make_optimizer,
    quiet,
    step_optimizer,
    torch,
    torch_class,
)

import fastlr.lr_scheduler as fls

tls = torch.optim.lr_scheduler


def record(fn: Callable[[], Any]) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fn()
    return list(w)


def summary(ws: list[warnings.WarningMessage]) -> list[tuple[Any, ...]]:
    """What must be equal between torch and fastlr: category, text, file and line."""
    return [(w.category, str(w.message), w.message.args, w.filename, w.lineno) for w in ws]


# ------------------------------------------------------------------------------------------------
# Warnings


def _scenario_order_warning(cls, kwargs):
    """First scheduler step before any optimizer step: the order warning (once)."""
    opt = make_optimizer(3)
    s = cls(opt, **kwargs)
    s.step()  # the warning points here (this file)
    s.step()
    return opt


def _scenario_overridden(cls, kwargs):
    """optimizer.step replaced after the scheduler was built: the 'overridden' warning."""
    opt = make_optimizer(3)
    s = cls(opt, **kwargs)
    opt.step = lambda *a, **k: None
    opt.step()
    s.step()
    s.step()


def _scenario_proper_order(cls, kwargs):
    """optimizer.step() first: no warning at all, construction included."""
    opt = make_optimizer(3)
    s = cls(opt, **kwargs)
    for _ in range(3):
        step_optimizer(opt)
        s.step()


def _scenario_epoch(cls, kwargs):
    """step(epoch): the deprecation warning at every such call, pointing at the caller."""
    opt = make_optimizer(3)
    s = cls(opt, **kwargs)
    step_optimizer(opt)
    s.step(3)
    s.step()
    s.step(epoch=5)
    s.step(None)
    s.step(0)


def _scenario_get_lr_outside_step(cls, kwargs):
    """get_lr() called by the user: the 'use get_last_lr()' warning (torch's stacklevel)."""
    opt = make_optimizer(3)
    s = cls(opt, **kwargs)
    step_optimizer(opt)
    s.step()
    s.get_lr()
    s.step()
    s.get_lr()


SCENARIOS = {
    "order": _scenario_order_warning,
    "overridden": _scenario_overridden,
    "proper_order": _scenario_proper_order,
    "epoch": _scenario_epoch,
    "get_lr_outside_step": _scenario_get_lr_outside_step,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_warnings_match_torch(name, scenario):
    run = SCENARIOS[scenario]
    kw = ORDINARY_KWARGS[name]
    wt = record(lambda: run(torch_class(name), kw))
    wf = record(lambda: run(fast_class(name), kw))
    assert summary(wf) == summary(wt)
    expected_counts = {"order": 1, "overridden": 1, "proper_order": 0, "epoch": 3, "get_lr_outside_step": 2}
    assert len(wf) == expected_counts[scenario]
    if scenario in ("order", "overridden", "epoch"):
        # stacklevel=2 lands in the caller's frame even though fastlr's step() is a C function
        assert all(w.filename == __file__ for w in wf), [w.filename for w in wf]
        assert all(w.category is UserWarning for w in wf)
    if scenario == "epoch":
        assert all(w.message.args == (fls.EPOCH_DEPRECATION_WARNING,) for w in wf)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_warning_from_subclass_step_points_at_the_subclass(name):
    """A subclass whose step() calls super().step(): the warning is attributed to that frame."""

    def sub(base):
        class Sub(base):
            def step(self, epoch=None):
                self.extra = getattr(self, "extra", 0) + 1
                super().step(epoch)  # warnings point here

        return Sub

    kw = ORDINARY_KWARGS[name]
    wt = record(lambda: _scenario_epoch(sub(torch_class(name)), kw))
    wf = record(lambda: _scenario_epoch(sub(fast_class(name)), kw))
    assert summary(wf) == summary(wt)
    assert wf and all(w.filename == __file__ for w in wf)


def test_warnings_with_error_filter():
    """With warnings turned into errors (pytest -W error), step() raises the warning as torch does,
    and the scheduler state afterwards is torch's."""
    for name in SCHEDULER_NAMES:
        scheds = []
        for cls in (torch_class(name), fast_class(name)):
            opt = make_optimizer(3)
            s = cls(opt, **ORDINARY_KWARGS[name])
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with pytest.raises(UserWarning, match="Detected call of"):
                    s.step()
                step_optimizer(opt)
                with pytest.raises(UserWarning, match="The epoch parameter"):
                    s.step(4)
            scheds.append(s)
        assert_same_state(*scheds, where=name)
        assert bits(lr_values(scheds[0].optimizer)) == bits(lr_values(scheds[1].optimizer))


# ------------------------------------------------------------------------------------------------
# The optimizer.step wrapper and reference cycles


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_optimizer_step_wrapper(name):
    o1, o2 = make_optimizer(2), make_optimizer(2)
    with quiet():
        s1 = torch_class(name)(o1, **ORDINARY_KWARGS[name])
        s2 = fast_class(name)(o2, **ORDINARY_KWARGS[name])
    for o in (o1, o2):
        assert o.step._wrapped_by_lr_sched is True
        assert o.step.__name__ == "step"
        assert o.step.__wrapped__ is type(o).step
        assert not getattr(o, "_opt_called", False)
    wrapper = o2.step
    with quiet():
        fast_class("ExponentialLR")(o2, gamma=0.9)  # a second scheduler does not re-wrap
    assert o2.step is wrapper
    step_optimizer(o2)
    assert o2._opt_called is True
    # the wrapper holds the optimizer weakly and nothing of the scheduler
    cells = [c.cell_contents for c in o2.step.__closure__ or ()]
    assert not any(c is s2 for c in cells)
    assert any(isinstance(c, weakref.ref) and c() is o2 for c in cells)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_no_cyclic_references(name):
    """torch's own test: after `del scheduler` nothing refers to the optimizer, and it is freed by
    reference counting."""
    results = []
    for cls in (torch_class(name), fast_class(name)):
        param = torch.nn.Parameter(torch.empty(10))
        optim = torch.optim.SGD([param], lr=0.5)
        with quiet():
            scheduler = cls(optim, **ORDINARY_KWARGS[name])
            optim.step()
            scheduler.step()
        del scheduler
        results.append(len(gc.get_referrers(optim)))
        gc.collect()
        gc.disable()
        try:
            ref = weakref.ref(optim)
            del optim
            assert ref() is None, f"{cls.__module__}.{name}: optimizer not freed by refcount"
        finally:
            gc.enable()
    assert results == [0, 0]


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_scheduler_freed_by_refcount(name):
    """torch's test_no_cyclic_references_in_step: with gc disabled, a stepped scheduler (and its
    engine) is freed as soon as the last reference goes."""

    def run(cls):
        param = torch.empty(10, requires_grad=True)
        optim = torch.optim.SGD(params=[param], lr=0.5)
        with quiet():
            scheduler = cls(optim, **ORDINARY_KWARGS[name])
            param.sum().backward()
            optim.step()
            for _ in range(3):
                scheduler.step()
            scheduler.step(2)
        return weakref.ref(scheduler), weakref.ref(optim)

    gc.collect()
    gc.disable()
    try:
        for cls in (torch_class(name), fast_class(name)):
            rs, ro = run(cls)
            assert rs() is None and ro() is None, cls
    finally:
        gc.enable()


def test_engine_holds_no_references():
    """The engine object in the slot refers to nothing (its refcount is the slot's alone)."""
    opt = make_optimizer(3)
    s = fls.StepLR(opt, 2)
    eng = engine(s)
    assert sys.getrefcount(eng) == 3  # the slot, `eng`, getrefcount's argument
    assert gc.get_referents(eng) == [] or all(isinstance(r, type) for r in gc.get_referents(eng))


# ------------------------------------------------------------------------------------------------
# Subclassing


def _warmup_subclass(base):
    class Warmup(base):
        """A scheduler written as torch's docs teach: override get_lr()."""

        def __init__(self, optimizer, warm, last_epoch=-1):
            self.warm = warm
            self.get_lr_calls = 0
            super().__init__(optimizer, last_epoch)

        def get_lr(self):
            self.get_lr_calls += 1
            if not self._get_lr_called_within_step:
                warnings.warn("outside", UserWarning)
            return [b * min(1.0, (self.last_epoch + 1) / self.warm) * 0.99**self.last_epoch for b in self.base_lrs]

    return Warmup


def test_user_subclass_of_base_class():
    """A user subclass of fastlr's LRScheduler behaves exactly like the same subclass of torch's."""
    t_cls, f_cls = _warmup_subclass(tls.LRScheduler), _warmup_subclass(fls.LRScheduler)
    o1, o2 = make_optimizer(3), make_optimizer(3)
    with quiet():
        s1, s2 = t_cls(o1, warm=7), f_cls(o2, warm=7)
    assert not s2.uses_fast_path
    assert isinstance(s2, tls.LRScheduler)
    lockstep(s1, s2, o1, o2, 40)
    lockstep(s1, s2, o1, o2, 5, action=lambda s, k: s.step(k * 2))
    assert s1.get_lr_calls == s2.get_lr_calls
    assert_same_state(s1, s2)
    wt = record(lambda: _scenario_get_lr_outside_step(lambda o: t_cls(o, warm=3), {}))
    wf = record(lambda: _scenario_get_lr_outside_step(lambda o: f_cls(o, warm=3), {}))
    assert summary(wf) == summary(wt)


def test_user_subclass_get_lr_needing_arguments():
    """A get_lr that needs extra arguments fails in the initial step (TypeError), as in torch."""
    for base in (tls.LRScheduler, fls.LRScheduler):

        class Bad(base):
            def get_lr(self, x):
                return [x]

        with pytest.raises(TypeError):
            Bad(make_optimizer(1))


OVERRIDES: dict[str, Callable[[type], type]] = {}


def _override(hook: str):
    def deco(fn):
        OVERRIDES[hook] = fn
        return fn

    return deco


@_override("get_lr")
def _sub_get_lr(base):
    class Half(base):
        def get_lr(self):
            return [x * 0.5 + 1e-3 for x in super().get_lr()]

    return Half


@_override("_get_closed_form_lr")
def _sub_closed(base):
    class Closed(base):
        def _get_closed_form_lr(self):
            return [b * 0.25 for b in self.base_lrs]

    return Closed


@_override("_update_lr")
def _sub_update(base):
    class Update(base):
        def _update_lr(self, epoch=None):
            super()._update_lr(epoch)
            for g in self.optimizer.param_groups:
                g["lr"] = g["lr"] * 0.9
            self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    return Update


@_override("nothing")
def _sub_plain(base):
    class Plain(base):
        extra = 1

    return Plain


@pytest.mark.parametrize("hook", ["get_lr", "_get_closed_form_lr", "_update_lr", "nothing"])
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_subclass_of_a_fastlr_class(name, hook):
    """Subclasses of fastlr's classes use their own overrides (torch's Python path); a subclass that
    overrides nothing keeps the engine."""
    t_cls, f_cls = OVERRIDES[hook](torch_class(name)), OVERRIDES[hook](fast_class(name))
    s1, s2, o1, o2 = build_pair_cls(t_cls, f_cls, ORDINARY_KWARGS[name])
    assert s2.uses_fast_path == (hook == "nothing")
    lockstep(s1, s2, o1, o2, 30)
    lockstep(s1, s2, o1, o2, 4, action=lambda s, k: s.step(k + 3))
    lockstep(s1, s2, o1, o2, 5)
    assert_same_state(s1, s2)
    if hook == "nothing":
        assert engine(s2).deferred == 0


def build_pair_cls(t_cls, f_cls, kwargs):
    o1, o2 = make_optimizer(3), make_optimizer(3)
    with quiet():
        s1, s2 = t_cls(o1, **kwargs), f_cls(o2, **kwargs)
    assert bits(lr_values(o1)) == bits(lr_values(o2))
    return s1, s2, o1, o2


def test_get_lr_patched_on_the_class():
    results = []
    for cls in (torch_class("StepLR"), fast_class("StepLR")):
        with mock.patch.object(cls, "get_lr", lambda self: [0.5] * len(self.optimizer.param_groups)):
            opt = make_optimizer(2)
            with quiet():
                s = cls(opt, step_size=3)
                step_optimizer(opt)
                s.step()
                s.step()
            results.append(lr_values(opt))
    assert results[0] == results[1]


def test_get_lr_patched_on_an_instance():
    results = []
    for cls in (torch_class("ExponentialLR"), fast_class("ExponentialLR")):
        opt = make_optimizer(2)
        with quiet():
            s = cls(opt, gamma=0.5)
            s.get_lr = lambda: [0.125, 0.25]
            step_optimizer(opt)
            s.step()
            s.step()
        results.append(lr_values(opt))
    assert results[0] == results[1]


# ------------------------------------------------------------------------------------------------
# Identity with torch's API


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_isinstance_and_signature(name):
    t_cls, f_cls = torch_class(name), fast_class(name)
    assert issubclass(f_cls, t_cls) and issubclass(f_cls, tls.LRScheduler)
    assert issubclass(f_cls, fls.LRScheduler)
    assert f_cls.__name__ == name and f_cls.__doc__
    # torch's parameters, in order, plus fastlr's keyword-only `capturable` (device stepping)
    f_params = list(inspect.signature(f_cls).parameters.values())
    assert f_params[-1].name == "capturable" and f_params[-1].kind is inspect.Parameter.KEYWORD_ONLY
    assert f_params[-1].default is False
    assert inspect.signature(f_cls).replace(parameters=f_params[:-1]) == inspect.signature(t_cls)
    assert hasattr(f_cls, "_get_closed_form_lr") == hasattr(t_cls, "_get_closed_form_lr")
    opt = make_optimizer(2)
    with quiet():
        s = f_cls(opt, **ORDINARY_KWARGS[name])
    assert isinstance(s, t_cls) and isinstance(s, tls.LRScheduler)
    assert s.uses_fast_path
    # step() binds arguments like torch's (names, kinds and defaults; annotations aside)
    with quiet():
        t = t_cls(make_optimizer(2), **ORDINARY_KWARGS[name])
    t_params = [p.replace(annotation=inspect.Parameter.empty) for p in inspect.signature(t.step).parameters.values()]
    assert list(inspect.signature(s.step).parameters.values()) == t_params


def test_module_exports():
    assert fls.EPOCH_DEPRECATION_WARNING == tls.EPOCH_DEPRECATION_WARNING
    assert issubclass(fls.LRScheduler, tls.LRScheduler)
    assert fls.FAST_PATH_AVAILABLE is True  # the suite pins torch 2.13
    for name in SCHEDULER_NAMES:
        assert name in fls.__all__


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_get_last_lr_is_the_attribute(name):
    """get_last_lr() returns the _last_lr list itself (torch), a fresh list every step."""
    s1, s2, o1, o2 = build_pair(name, lambda: make_optimizer(3), ORDINARY_KWARGS[name])
    prev = s2.get_last_lr()
    lockstep(s1, s2, o1, o2, 2)
    assert s2.get_last_lr() is s2._last_lr and s1.get_last_lr() is s1._last_lr
    assert s2.get_last_lr() is not prev


@pytest.mark.xfail(
    strict=True, reason="bug: param_groups that are the same dict object are updated once per entry (one-pass write)"
)
def test_aliased_param_groups():
    """An optimizer whose param_groups list holds the same dict twice: torch computes all values from
    the old lrs, then writes; the engine reads each group after writing the previous one."""
    results = []
    for cls in (torch_class("ExponentialLR"), fast_class("ExponentialLR")):
        opt = make_optimizer(1)
        opt.param_groups.append(opt.param_groups[0])
        with quiet():
            s = cls(opt, gamma=0.5)
            step_optimizer(opt)
            s.step()
        results.append(bits(s.get_last_lr()))
    assert results[0] == results[1]


# ------------------------------------------------------------------------------------------------
# torch's composites with fastlr members

COMPOSITES = [
    ("Sequential", [("LinearLR", {"start_factor": 0.1, "total_iters": 5}), ("CosineAnnealingLR", {"T_max": 20})], [5]),
    ("Sequential", [("ConstantLR", {"factor": 0.1, "total_iters": 3}), ("ExponentialLR", {"gamma": 0.9})], [3]),
    (
        "Sequential",
        [
            ("StepLR", {"step_size": 2, "gamma": 0.5}),
            ("MultiplicativeLR", {"lr_lambda": lambda e: 0.9}),
            ("LambdaLR", {"lr_lambda": lambda e: 1.0 / (e + 1)}),
            ("PolynomialLR", {"total_iters": 6, "power": 2.0}),
            ("MultiStepLR", {"milestones": [2, 4], "gamma": 0.5}),
        ],
        [4, 9, 15, 22],
    ),
    ("Sequential", [("ExponentialLR", {"gamma": 0.5}), ("CosineAnnealingLR", {"T_max": 4})], [0]),
    ("Chained", [("ConstantLR", {"factor": 0.1, "total_iters": 3}), ("ExponentialLR", {"gamma": 0.9})], None),
    (
        "Chained",
        [
            ("LinearLR", {"start_factor": 0.01, "total_iters": 10}),
            ("CosineAnnealingLR", {"T_max": 25, "eta_min": 1e-5}),
        ],
        None,
    ),
    ("Chained", [("ExponentialLR", {"gamma": 0.5}), ("LambdaLR", {"lr_lambda": lambda e: 1})], None),
    ("Chained", [("LambdaLR", {"lr_lambda": lambda e: 1}), ("ExponentialLR", {"gamma": 0.5})], None),
    (
        "Chained",
        [
            ("StepLR", {"step_size": 3, "gamma": 0.7}),
            ("MultiStepLR", {"milestones": [5, 5, 8], "gamma": 0.5}),
            ("PolynomialLR", {"total_iters": 12, "power": 0.5}),
            ("MultiplicativeLR", {"lr_lambda": lambda e: 0.99}),
        ],
        None,
    ),
]


def _composite(kind, members, milestones, lib):
    def make(opt):
        scheds = [lib(n)(opt, **kw) for n, kw in members]
        if kind == "Sequential":
            return tls.SequentialLR(opt, scheds, milestones=milestones), scheds
        return tls.ChainedScheduler(scheds), scheds

    return make


@pytest.mark.parametrize(
    "case", COMPOSITES, ids=[f"{k}-" + "+".join(n for n, _ in m) for k, m, _ in COMPOSITES]
)
def test_torch_composites_with_fastlr_members(case):
    kind, members, milestones = case
    o1, o2 = make_optimizer(3), make_optimizer(3)
    with quiet():
        c1, m1 = _composite(kind, members, milestones, torch_class)(o1)
        c2, m2 = _composite(kind, members, milestones, fast_class)(o2)
    assert bits(lr_values(o1)) == bits(lr_values(o2))
    assert bits(c1.get_last_lr()) == bits(c2.get_last_lr())
    completed, raised = lockstep(c1, c2, o1, o2, 60)
    assert raised is None
    assert_same_state(c1, c2)
    for a, b in zip(m1, m2):
        assert_same_state(a, b)
        assert engine(b).deferred == 0, type(b).__name__
    # the composites' state dicts round-trip across libraries too
    c1.load_state_dict(c2.state_dict())
    lockstep(c1, c2, o1, o2, 10)


def test_composite_warnings_match():
    """The order warning raised from a member inside SequentialLR is torch's (file and line)."""

    def run(lib):
        opt = make_optimizer(2)
        scheds = [lib("ConstantLR")(opt, factor=0.5, total_iters=2), lib("ExponentialLR")(opt, gamma=0.9)]
        seq = tls.SequentialLR(opt, scheds, milestones=[2])
        for _ in range(4):
            seq.step()

    assert summary(record(lambda: run(fast_class))) == summary(record(lambda: run(torch_class)))


def test_mixed_torch_and_fastlr_members():
    """A composite mixing torch and fastlr members gives the same lrs as an all-torch one."""
    o1, o2 = make_optimizer(3), make_optimizer(3)
    with quiet():
        c1 = tls.ChainedScheduler([tls.LinearLR(o1, 0.1, total_iters=4), tls.StepLR(o1, 3, 0.5)])
        c2 = tls.ChainedScheduler([fls.LinearLR(o2, 0.1, total_iters=4), tls.StepLR(o2, 3, 0.5)])
    lockstep(c1, c2, o1, o2, 30)


def test_without_the_fast_path_everything_is_torch():
    """On a torch whose scheduler internals differ (simulated by removing one attribute the check
    looks for), FAST_PATH_AVAILABLE is False, no class uses the engine, and values are still torch's."""
    code = r"""
import warnings, struct
import torch
from torch.optim import lr_scheduler as tls
del tls.LRScheduler._is_initial           # torch sets it per instance; only fastlr's check reads the class attr
import fastlr.lr_scheduler as fls
assert fls.FAST_PATH_AVAILABLE is False
warnings.simplefilter("ignore")
def opt():
    ps = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    return torch.optim.SGD([{"params": [p], "lr": 0.1 / (i + 1)} for i, p in enumerate(ps)])
cases = {"StepLR": dict(step_size=3), "CosineAnnealingLR": dict(T_max=7),
         "LambdaLR": dict(lr_lambda=lambda e: 0.9 ** e),
         "LinearLR": dict(start_factor=0.2, total_iters=6), "MultiStepLR": dict(milestones=[2, 5])}
for name, kw in cases.items():
    o1, o2 = opt(), opt()
    s1, s2 = getattr(tls, name)(o1, **kw), getattr(fls, name)(o2, **kw)
    assert not s2.uses_fast_path
    for k in range(40):
        s1.step(); s2.step()
        a, b = s1.get_last_lr(), s2.get_last_lr()
        assert struct.pack("3d", *a) == struct.pack("3d", *b), (name, k, a, b)
    assert s2._fastlr_engine.handled == 0
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_protocol_probe_passes_on_the_installed_torch():
    """Every engine-driven class stepped beside torch's at import behaved the same (else the class runs
    torch's code and FAST_PATH_MISMATCHES names it)."""
    assert fls.FAST_PATH_MISMATCHES == {}
    for name in SCHEDULER_NAMES:
        assert getattr(fls, name)._fastlr_active_kind != 0, name


_PROBE_CASE = r"""
import warnings, struct
import torch
from torch.optim import lr_scheduler as tls
PATCH
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastlr.lr_scheduler as fls
msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning) and "fastlr" in str(w.message)]
assert len(msgs) == 1, msgs
assert fls.FAST_PATH_AVAILABLE is False
print(sorted(fls.FAST_PATH_MISMATCHES))
warnings.simplefilter("ignore")
def opt():
    ps = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    return torch.optim.SGD([{"params": [p], "lr": 0.1 / (i + 1)} for i, p in enumerate(ps)])
for name in sorted(fls.FAST_PATH_MISMATCHES):
    if name not in ("StepLR", "ExponentialLR"):
        continue
    kw = {"StepLR": dict(step_size=2), "ExponentialLR": dict(gamma=0.9)}[name]
    o1, o2 = opt(), opt()
    s1, s2 = getattr(tls, name)(o1, **kw), getattr(fls, name)(o2, **kw)
    assert not s2.uses_fast_path
    for k in range(20):
        s1.step(); s2.step()
        a, b = s1.get_last_lr(), s2.get_last_lr()
        assert struct.pack("3d", *a) == struct.pack("3d", *b), (name, k, a, b)
        assert s1.state_dict() == s2.state_dict()
for name in ("CosineAnnealingLR", "CyclicLR"):
    if name not in fls.FAST_PATH_MISMATCHES:
        assert getattr(fls, name)._fastlr_active_kind != 0
"""


def test_protocol_probe_takes_a_changed_class_off_the_engine():
    """A torch whose StepLR decays differently, with every name fastlr checks still there: the probe at
    import finds it, warns once, and only StepLR runs torch's (changed) code."""
    patch = """
orig = tls.StepLR.get_lr
def get_lr(self):  # a changed rule: decays one epoch late
    if self.last_epoch == 0 or self.last_epoch % self.step_size != 1:
        return [g["lr"] for g in self.optimizer.param_groups]
    return [g["lr"] * self.gamma for g in self.optimizer.param_groups]
tls.StepLR.get_lr = get_lr
"""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE_CASE.replace("PATCH", patch) + "print('ok')"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and out.stdout.split("\n")[-2:] == ["ok", ""], out.stdout + out.stderr
    assert out.stdout.splitlines()[0] == "['StepLR']"


def test_protocol_probe_notices_a_changed_step_protocol():
    """A torch whose LRScheduler.step records something more at every step (a new counter): the classes
    that step through it differ in their state_dict after the first engine step, and run torch's code."""
    patch = """
orig = tls.LRScheduler.step
def step(self, *args, **kwargs):
    self.__dict__["_calls"] = self.__dict__.get("_calls", 0) + 1
    return orig(self, *args, **kwargs)
tls.LRScheduler.step = step
"""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE_CASE.replace("PATCH", patch) + "print('ok')"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and out.stdout.split("\n")[-2:] == ["ok", ""], out.stdout + out.stderr
    found = set(eval(out.stdout.splitlines()[0]))  # noqa: S307 - our own printed list
    assert {"StepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR", "OneCycleLR", "SWALR"} <= found
