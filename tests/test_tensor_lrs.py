"""The fused tensor-lr path: packed buffers written by the engine (CPU) or the device executor.

Parity contract: float64 tensor lrs bitwise equal to torch's; float32 tensor lrs exactly the float32
rounding of the float64 (Python float) sequence torch computes; tensor identity kept; a constant
number of torch ops per step whatever the group count.
"""

from __future__ import annotations

import math
import struct
import warnings

import pytest

torch = pytest.importorskip("torch")

import torch.optim.lr_scheduler as _tls  # noqa: E402
from torch.optim import swa_utils as _swa  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import fastlr.lr_scheduler as F  # noqa: E402
from fastlr import _tensor_lrs  # noqa: E402


class T:  # torch's classes by name, SWALR included
    def __getattr__(self, name):  # pragma: no cover - trivial
        return getattr(_swa if name == "SWALR" else _tls, name)


T = T()


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def base_lrs(n: int, round32: bool = False) -> list[float]:
    lrs = [0.1 * (0.7**i) + 1e-3 * i for i in range(n)]
    return [f32(x) for x in lrs] if round32 else lrs


def make(kind: str, n: int, opt: str = "SGD", round32: bool = False) -> torch.optim.Optimizer:
    """kind: float, t64, t32, mixed (even groups float, odd groups float64 tensors)."""
    lrs = base_lrs(n, round32)
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(n)]

    def value(i: int, lr: float):
        if kind == "float" or (kind == "mixed" and i % 2 == 0):
            return lr
        return torch.tensor(lr, dtype=torch.float32 if kind == "t32" else torch.float64)

    groups = [{"params": [p], "lr": value(i, lr)} for i, (p, lr) in enumerate(zip(params, lrs))]
    if opt == "SGD":
        return torch.optim.SGD(groups, momentum=0.9)
    return torch.optim.Adam(groups)


CASES = [
    ("StepLR", dict(step_size=3, gamma=0.7), "SGD"),
    ("MultiStepLR", dict(milestones=[3, 9, 9, 40], gamma=0.3), "SGD"),
    ("ConstantLR", dict(factor=0.3, total_iters=7), "SGD"),
    ("LinearLR", dict(start_factor=0.1, total_iters=50), "SGD"),
    ("ExponentialLR", dict(gamma=0.999), "SGD"),
    ("PolynomialLR", dict(total_iters=70, power=0.9), "SGD"),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=1e-3), "SGD"),
    ("LambdaLR", dict(lr_lambda=lambda e: 0.99**e), "SGD"),
    ("MultiplicativeLR", dict(lr_lambda=lambda e: 0.99), "SGD"),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=7, mode="triangular2"), "SGD"),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=1200), "Adam"),
    ("SWALR", dict(swa_lr=0.05, anneal_epochs=13), "SGD"),
]
IDS = [c[0] for c in CASES]
STEPS = 1200


def lr_floats(opt) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _edit(k: int, opt, value: float) -> None:
    if k == STEPS // 2:
        g = opt.param_groups[-1]
        if isinstance(g["lr"], torch.Tensor):
            g["lr"].fill_(value)
        else:
            g["lr"] = value


@pytest.mark.parametrize("n", [1, 3, 17])
@pytest.mark.parametrize("kind", ["t64", "mixed"])
@pytest.mark.parametrize("name,kw,opt", CASES, ids=IDS)
def test_float64_tensor_lrs_bitwise(name, kw, opt, kind, n):
    o1, o2 = make(kind, n, opt), make(kind, n, opt)
    s1, s2 = getattr(T, name)(o1, **kw), getattr(F, name)(o2, **kw)
    tensors = [g["lr"] for g in o2.param_groups if isinstance(g["lr"], torch.Tensor)]
    for k in range(STEPS):
        _edit(k, o1, 0.05)
        _edit(k, o2, 0.05)
        s1.step()
        s2.step()
        assert lr_floats(o1) == lr_floats(o2), k
        last1, last2 = s1.get_last_lr(), s2.get_last_lr()
        assert [type(x) for x in last1] == [type(x) for x in last2]
        assert [float(x) for x in last1] == [float(x) for x in last2], k
    # identity kept, and the engine did every step
    assert [g["lr"] for g in o2.param_groups if isinstance(g["lr"], torch.Tensor)] == tensors
    assert all(a is b for a, b in zip([g["lr"] for g in o2.param_groups if isinstance(g["lr"], torch.Tensor)], tensors))
    assert s2._fastlr_engine.deferred == 0


@pytest.mark.parametrize("name,kw,opt", CASES, ids=IDS)
def test_float32_tensor_lrs_are_the_rounding_of_the_float64_sequence(name, kw, opt):
    n = 5
    ref, o32, t32 = make("float", n, opt, round32=True), make("t32", n, opt), make("t32", n, opt)
    sr, s32, st = getattr(T, name)(ref, **kw), getattr(F, name)(o32, **kw), getattr(T, name)(t32, **kw)
    worst = 0.0
    for k in range(STEPS):
        _edit(k, ref, f32(0.05))
        _edit(k, o32, 0.05)
        _edit(k, t32, 0.05)
        sr.step()
        s32.step()
        st.step()
        exact = lr_floats(ref)
        assert [f32(x) for x in exact] == lr_floats(o32), k
        for a, b in zip(lr_floats(t32), lr_floats(o32)):
            if a != b and max(abs(a), abs(b)) > 1e-30:  # both float32, away from underflow
                worst = max(worst, abs(a - b) / max(abs(a), abs(b)))
    # torch's own float32 recurrence drifts from the exact value; fastlr stays at its rounding. The two
    # stay close (torch's drift is bounded by float32 accumulation over this many steps).
    assert worst < 1e-3
    assert s32._fastlr_engine.deferred == 0


class _CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


def _ops_per_step(name, kw, opt, n, force_device: bool) -> list[int]:
    """The number of torch ops dispatched by each of 8 consecutive steps."""
    old = _tensor_lrs.FORCE_DEVICE_EXECUTOR
    _tensor_lrs.FORCE_DEVICE_EXECUTOR = force_device
    try:
        o = make("t64", n, opt)
        s = getattr(F, name)(o, **kw)
        s.step()
        counts = []
        for _ in range(8):
            with _CountOps() as c:
                s.step()
            counts.append(c.n)
        assert s._fastlr_engine.deferred == 0
        return counts
    finally:
        _tensor_lrs.FORCE_DEVICE_EXECUTOR = old


@pytest.mark.parametrize("name,kw,opt", CASES, ids=IDS)
def test_torch_ops_per_step_do_not_grow_with_groups(name, kw, opt):
    # CPU buffers are written by the engine directly: no torch op at all.
    assert _ops_per_step(name, kw, opt, 1, False) == [0] * 8
    assert _ops_per_step(name, kw, opt, 512, False) == [0] * 8
    # The device executor (used off the CPU without fastlr._cuda): the same few ops at any group count.
    few = _ops_per_step(name, kw, opt, 1, True)
    assert few == _ops_per_step(name, kw, opt, 512, True)
    assert 0 < max(few) <= 12


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name,kw,opt", CASES, ids=IDS)
def test_device_executor_matches_direct_writes(name, kw, opt, dtype):
    def run(force: bool):
        old = _tensor_lrs.FORCE_DEVICE_EXECUTOR
        _tensor_lrs.FORCE_DEVICE_EXECUTOR = force
        try:
            o = make("t64" if dtype == torch.float64 else "t32", 7, opt)
            s = getattr(F, name)(o, **kw)
            out = []
            for k in range(300):
                _edit(k * 4, o, 0.05)
                s.step()
                out.append([g["lr"].item() for g in o.param_groups])
            assert s._fastlr_engine.deferred == 0
            return out
        finally:
            _tensor_lrs.FORCE_DEVICE_EXECUTOR = old

    assert run(True) == run(False)


def test_last_lr_is_a_snapshot_not_an_alias():
    o1, o2 = make("t64", 3), make("t64", 3)
    a1, a2 = T.ExponentialLR(o1, gamma=0.5), F.ExponentialLR(o2, gamma=0.5)
    b1, b2 = T.ConstantLR(o1, factor=0.5, total_iters=2), F.ConstantLR(o2, factor=0.5, total_iters=2)
    for _ in range(4):
        a1.step()
        a2.step()
        b1.step()  # a second scheduler changes the lrs after a's step: a's _last_lr must not follow
        b2.step()
        for x, y in zip(a1.get_last_lr(), a2.get_last_lr()):
            assert isinstance(y, torch.Tensor) and y.item() == x.item()
        last = a2.get_last_lr()
        assert all(t.data_ptr() != g["lr"].data_ptr() for t, g in zip(last, o2.param_groups))
    sd1, sd2 = a1.state_dict(), a2.state_dict()
    assert sd1.keys() == sd2.keys()
    assert [t.item() for t in sd1["_last_lr"]] == [t.item() for t in sd2["_last_lr"]]
    # load torch's state into fastlr and step on identically
    a2.load_state_dict(sd1)
    a1.step()
    a2.step()
    assert lr_floats(o1) == lr_floats(o2)


def test_replaced_tensor_is_packed_again():
    o1, o2 = make("t64", 3), make("t64", 3)
    s1, s2 = T.CosineAnnealingLR(o1, T_max=10), F.CosineAnnealingLR(o2, T_max=10)
    for k in range(30):
        if k == 7:
            for o in (o1, o2):
                o.param_groups[1]["lr"] = torch.tensor(0.3, dtype=torch.float64)
        s1.step()
        s2.step()
        assert lr_floats(o1) == lr_floats(o2), k
    assert s2._fastlr_engine.deferred == 0


def test_compiled_step_does_not_recompile():
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    opt = torch.optim.Adam(
        [{"params": [model.weight], "lr": torch.tensor(0.01)}, {"params": [model.bias], "lr": torch.tensor(0.02)}],
        betas=(torch.tensor(0.9), torch.tensor(0.999)),
    )
    sched = F.OneCycleLR(
        opt, max_lr=[0.1, 0.2], total_steps=300, max_momentum=torch.tensor(0.95), base_momentum=torch.tensor(0.85)
    )
    beta1 = opt.param_groups[0]["betas"][0]
    lr0 = opt.param_groups[0]["lr"]
    cnt = CompileCounter()

    @torch.compile(backend=cnt)
    def train_step():
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    train_step()
    sched.step()
    frames = cnt.frame_count
    seen = set()
    for _ in range(200):
        train_step()
        sched.step()
        seen.add(round(lr0.item(), 12))
    assert cnt.frame_count == frames, "the compiled step recompiled"
    assert len(seen) > 150  # the lr really moved every step
    assert opt.param_groups[0]["lr"] is lr0 and opt.param_groups[0]["betas"][0] is beta1
    assert sched._fastlr_engine.deferred == 0
    assert not math.isclose(beta1.item(), 0.95)


def _tensor_momentum_opt(opt: str, n: int) -> torch.optim.Optimizer:
    """Groups with float64 tensor lrs and float64 tensor momentum (SGD) or beta1 (Adam)."""
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(n)]
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    groups = [{"params": [p], "lr": t(lr)} for p, lr in zip(params, base_lrs(n))]
    if opt == "SGD":
        return torch.optim.SGD(groups, momentum=t(0.9))
    return torch.optim.Adam(groups, betas=(t(0.9), t(0.999)))


MOMENTUM_CASES = [
    # OneCycleLR reads its momentum bounds from group keys (key operands); CyclicLR from lists.
    ("OneCycleLR", lambda: dict(max_lr=0.1, total_steps=120, max_momentum=torch.tensor(0.95, dtype=torch.float64),
                                base_momentum=torch.tensor(0.8, dtype=torch.float64))),
    ("CyclicLR", lambda: dict(base_lr=0.01, max_lr=0.1, step_size_up=7, cycle_momentum=True,
                              base_momentum=torch.tensor(0.8, dtype=torch.float64),
                              max_momentum=torch.tensor(0.95, dtype=torch.float64))),
]


@pytest.mark.parametrize("opt", ["SGD", "Adam"])
@pytest.mark.parametrize("name,kw", MOMENTUM_CASES, ids=[c[0] for c in MOMENTUM_CASES])
def test_device_executor_cycles_tensor_momentum_as_torch(name, kw, opt, monkeypatch):
    """Tensor momentum (beta1) cycled through the device executor (CPU buffers routed through it):
    the momentum side's operands, read from group keys (OneCycleLR) or lists (CyclicLR), reach the
    executor in group order; lrs and momenta are torch's, bitwise, and the tensors stay in place."""
    monkeypatch.setattr(_tensor_lrs, "FORCE_DEVICE_EXECUTOR", True)
    o1, o2 = _tensor_momentum_opt(opt, 5), _tensor_momentum_opt(opt, 5)
    s1, s2 = getattr(T, name)(o1, **kw()), getattr(F, name)(o2, **kw())
    mom = (lambda g: g["momentum"]) if opt == "SGD" else (lambda g: g["betas"][0])
    held = [mom(g) for g in o2.param_groups]
    for k in range(100):
        s1.step()
        s2.step()
        assert lr_floats(o1) == lr_floats(o2), k
        assert [float(mom(g)) for g in o1.param_groups] == [float(mom(g)) for g in o2.param_groups], k
    assert all(mom(g) is h for g, h in zip(o2.param_groups, held))
    assert s2._fastlr_engine.deferred == 0


def test_device_operands_die_with_their_buffer(monkeypatch):
    """The operands uploaded for a buffer (its lambda values, its base lrs) are cached with the buffer,
    not beyond it: once the optimizer and scheduler are gone (a resume re-packs into new buffers),
    nothing holds them."""
    import gc
    import weakref

    monkeypatch.setattr(_tensor_lrs, "FORCE_DEVICE_EXECUTOR", True)
    uploaded = []
    real = _tensor_lrs._device_operand

    def spy(buf, role, raw):
        t = real(buf, role, raw)
        if t is not None:
            uploaded.append(weakref.ref(t))
        return t

    monkeypatch.setattr(_tensor_lrs, "_device_operand", spy)
    for _ in range(3):
        o = make("t64", 4, "SGD")
        s = F.LambdaLR(o, lr_lambda=lambda e: 0.9**e)
        for _ in range(3):
            s.step()
        del o, s
    gc.collect()
    assert uploaded, "no operand was uploaded: the test does not exercise the cache"
    assert [r for r in uploaded if r() is not None] == []
