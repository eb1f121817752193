"""fastlr's schedulers drive real optimizers exactly as torch's do.

A small two-layer model is trained twice from the same initial weights and data, once with torch's
scheduler and once with fastlr's. After every step the learning rates must be bitwise equal, and so
must every parameter and every optimizer state tensor: the optimizers saw the same lrs.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("torch")
from _torch_helpers import ORDINARY_KWARGS, SCHEDULER_NAMES, bits, engine, fast_class, lr_key, quiet, torch, torch_class

#: (id, optimizer class name, constructor kwargs, tensor lr?)
OPTIMIZERS: list[tuple[str, str, dict[str, Any], bool]] = [
    ("SGD", "SGD", {"momentum": 0.9}, False),
    ("SGD-nesterov-foreach", "SGD", {"momentum": 0.9, "nesterov": True, "foreach": True}, False),
    ("SGD-fused", "SGD", {"momentum": 0.5, "fused": True}, False),
    ("Adam", "Adam", {}, False),
    ("Adam-amsgrad-foreach", "Adam", {"amsgrad": True, "foreach": True}, False),
    ("Adam-fused-tensor-lr", "Adam", {"fused": True}, True),
    ("AdamW", "AdamW", {"weight_decay": 0.05}, False),
    ("AdamW-tensor-lr", "AdamW", {"foreach": False}, True),
    ("Adagrad", "Adagrad", {}, False),
    ("RMSprop", "RMSprop", {"momentum": 0.5, "centered": True}, False),
    ("Adadelta", "Adadelta", {}, False),
    ("NAdam", "NAdam", {}, False),
    ("RAdam", "RAdam", {"decoupled_weight_decay": True, "weight_decay": 0.01}, False),
    ("Adamax", "Adamax", {}, False),
    ("ASGD", "ASGD", {}, False),
    ("Rprop", "Rprop", {}, False),
    ("Adafactor", "Adafactor", {}, False),
    ("LBFGS", "LBFGS", {"max_iter": 2}, False),
]

N_STEPS = 30


def make_model_and_optimizer(opt_name: str, opt_kwargs: dict[str, Any], tensor_lr: bool):
    torch.manual_seed(1234)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    lrs = [0.03, 0.011, 0.007]
    params = [[model[0].weight], [model[0].bias, model[2].bias], [model[2].weight]]
    groups = []
    for ps, lr in zip(params, lrs):
        # float64 tensor lrs: bitwise parity holds for them (float32 ones are checked in
        # test_float32_tensor_lr_training below, where fastlr rounds the exact value once).
        groups.append({"params": ps, "lr": torch.tensor(lr, dtype=torch.float64) if tensor_lr else lr})
    opt_cls = getattr(torch.optim, opt_name)
    # LBFGS only supports one param group.
    if opt_name == "LBFGS":
        groups = [{"params": list(model.parameters()), "lr": 0.05}]
    return model, opt_cls(groups, **opt_kwargs)


def train_step(model, opt, k: int) -> None:
    g = torch.Generator().manual_seed(k)
    x = torch.randn(8, 6, generator=g)
    y = torch.randn(8, 2, generator=g)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    if isinstance(opt, torch.optim.LBFGS):
        opt.step(closure)
    else:
        closure()
        opt.step()


def param_bits(model) -> list[bytes]:
    return [p.detach().numpy().tobytes() for p in model.parameters()]


def state_bits(opt) -> list[Any]:
    out = []
    for st in opt.state.values():
        for k in sorted(st):
            v = st[k]
            out.append((k, v.detach().numpy().tobytes() if isinstance(v, torch.Tensor) else repr(v)))
    return out


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
@pytest.mark.parametrize("opt_case", OPTIMIZERS, ids=[c[0] for c in OPTIMIZERS])
def test_training_matches_torch(opt_case, name):
    opt_id, opt_name, opt_kwargs, tensor_lr = opt_case
    m1, o1 = make_model_and_optimizer(opt_name, opt_kwargs, tensor_lr)
    m2, o2 = make_model_and_optimizer(opt_name, opt_kwargs, tensor_lr)
    assert param_bits(m1) == param_bits(m2)
    with quiet():
        s1 = torch_class(name)(o1, **ORDINARY_KWARGS[name])
        s2 = fast_class(name)(o2, **ORDINARY_KWARGS[name])
        for k in range(N_STEPS):
            train_step(m1, o1, k)
            train_step(m2, o2, k)
            s1.step()
            s2.step()
            assert lr_key(s1.get_last_lr()) == lr_key(s2.get_last_lr()), f"step {k + 1}"
            assert bits([g["lr"] for g in o1.param_groups]) == bits([g["lr"] for g in o2.param_groups])
            assert param_bits(m1) == param_bits(m2), f"parameters differ after step {k + 1}"
    assert state_bits(o1) == state_bits(o2)
    eng = engine(s2)
    if tensor_lr:
        assert all(isinstance(g["lr"], torch.Tensor) for g in o2.param_groups)
    assert eng.deferred == 0 and eng.handled == N_STEPS + 1


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_float32_tensor_lr_training(name):
    """float32 tensor lrs: fastlr's lr is the float32 rounding of the exact (float64) schedule, which
    torch's own float32 recurrence only approximates; training stays within float32 noise of torch's."""
    import struct

    def f32(x: float) -> float:
        return struct.unpack("<f", struct.pack("<f", x))[0]

    m1, o1 = make_model_and_optimizer("AdamW", {"foreach": False}, False)
    m2, o2 = make_model_and_optimizer("AdamW", {"foreach": False}, False)
    for g in o1.param_groups:
        g["lr"] = f32(g["lr"])  # the exact schedule of the float32 starting values
    for g in o2.param_groups:
        g["lr"] = torch.tensor(g["lr"], dtype=torch.float32)
    with quiet():
        s1 = torch_class(name)(o1, **ORDINARY_KWARGS[name])
        s2 = fast_class(name)(o2, **ORDINARY_KWARGS[name])
        for k in range(N_STEPS):
            train_step(m1, o1, k)
            train_step(m2, o2, k)
            s1.step()
            s2.step()
            exact = [g["lr"] for g in o1.param_groups]
            assert [f32(x) for x in exact] == [g["lr"].item() for g in o2.param_groups], f"step {k + 1}"
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p1, p2, rtol=1e-4, atol=1e-6)
    assert engine(s2).deferred == 0


def test_optimizer_step_hooks_still_run():
    """The lr scheduler wraps optimizer.step; pre/post hooks and the return value are unaffected."""
    calls: list[list[str]] = [[], []]
    for side, cls in enumerate((torch_class("StepLR"), fast_class("StepLR"))):
        model, opt = make_model_and_optimizer("SGD", {}, False)
        opt.register_step_pre_hook(lambda o, a, kw, side=side: calls[side].append("pre"))
        opt.register_step_post_hook(lambda o, a, kw, side=side: calls[side].append("post"))
        s = cls(opt, step_size=2)
        for k in range(3):
            train_step(model, opt, k)
            s.step()
        assert opt._opt_called is True
    assert calls[0] == calls[1] == ["pre", "post"] * 3


class WrappedOptimizer(torch.optim.Optimizer):
    """An optimizer wrapper in the style of accelerate's AcceleratedOptimizer: ``param_groups`` and
    ``state`` are properties delegating to the wrapped optimizer."""

    def __init__(self, inner: torch.optim.Optimizer) -> None:  # no super().__init__, as accelerate
        self.optimizer = inner
        self.defaults = inner.defaults

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value):
        self.optimizer.param_groups = value

    @property
    def state(self):
        return self.optimizer.state

    def step(self, closure=None):
        return self.optimizer.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_wrapped_optimizer(name):
    """Schedulers on an optimizer wrapper whose param_groups is a property."""
    m1, o1 = make_model_and_optimizer("AdamW", {}, False)
    m2, o2 = make_model_and_optimizer("AdamW", {}, False)
    w1, w2 = WrappedOptimizer(o1), WrappedOptimizer(o2)
    with quiet():
        s1 = torch_class(name)(w1, **ORDINARY_KWARGS[name])
        s2 = fast_class(name)(w2, **ORDINARY_KWARGS[name])
        for k in range(20):
            train_step(m1, w1, k)
            train_step(m2, w2, k)
            s1.step()
            s2.step()
            assert lr_key(s1.get_last_lr()) == lr_key(s2.get_last_lr()), f"step {k + 1}"
            assert param_bits(m1) == param_bits(m2)
    assert engine(s2).deferred == 0 and engine(s2).handled == 21
