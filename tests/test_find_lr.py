"""fastlr.find_lr, the lr range test: the restore contract, the stop rules, the lr grid, the
suggestion rules (against torch-lr-finder, fastai's rules and hand-checked curves), the errors."""

from __future__ import annotations

import copy
import json
import fractions
import io
import math
import types
import random
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastlr  # noqa: E402
from fastlr._find_lr import LRFindResult, find_lr  # noqa: E402

mse = torch.nn.functional.mse_loss
LR = 0.05


# --------------------------------------------------------------------------------------------------
# Helpers


class Net(torch.nn.Module):
    """BatchNorm buffers, and Dropout so that training draws from torch's RNG."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                        torch.nn.Dropout(0.3))
        self.head = torch.nn.Linear(16, 1)

    def forward(self, x):
        return self.head(self.body(x))


def _lr(value: float, kind: str):
    return torch.tensor(value, dtype=torch.float64) if kind == "tensor" else value


def _make_opt(name: str, model: Net, lr_kind: str):
    groups = [
        {"params": list(model.body.parameters()), "lr": _lr(LR, lr_kind)},
        {"params": list(model.head.parameters()), "lr": _lr(LR / 4, lr_kind)},
    ]
    if name == "SGD-momentum":
        return torch.optim.SGD(groups, lr=_lr(LR, lr_kind), momentum=0.9, foreach=False)
    return torch.optim.Adam(groups, lr=_lr(LR, lr_kind), foreach=False)


def _make_sched(name: str, opt):
    if name == "none":
        return None
    if name == "CosineAnnealingLR":
        return fastlr.lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=1e-4)
    return fastlr.get_scheduler("cosine", opt, num_warmup_steps=3, num_training_steps=20)


def _train(model, opt, batch) -> None:
    opt.zero_grad()
    x, y = batch
    mse(model(x), y).backward()
    opt.step()


def _setup(opt_name: str, lr_kind: str, sched_name: str, warmup: int = 3):
    """A model, optimizer and scheduler after ``warmup`` training steps, all from one seed."""
    torch.manual_seed(0)
    model = Net()
    opt = _make_opt(opt_name, model, lr_kind)
    sched = _make_sched(sched_name, opt)
    data = [(torch.randn(16, 6), torch.randn(16, 1)) for _ in range(4)]
    for k in range(warmup):
        _train(model, opt, data[k % len(data)])
        if sched is not None:
            sched.step()
    return model, opt, sched, data


def _state(model, opt) -> dict:
    """A deep copy of everything restore=True promises to put back."""
    return {
        "model": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "optimizer": copy.deepcopy(opt.state_dict()),
        "rng": torch.get_rng_state(),
    }


def assert_same(a, b, path: str = "") -> None:
    """Equal structures; tensors bitwise (``torch.equal``, same dtype), everything else with ``==``."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), path
        assert a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{k}]")
    else:
        assert a == b, path


def _continue(model, opt, sched, data, steps: int = 6) -> tuple[list, list]:
    """Train on with the scheduler: the lrs it sets and the final parameters."""
    torch.manual_seed(7)
    lrs = []
    for k in range(steps):
        _train(model, opt, data[k % len(data)])
        sched.step()
        lrs.append([float(x) for x in sched.get_last_lr()] + [float(g["lr"]) for g in opt.param_groups])
    return lrs, [p.detach().clone() for p in model.parameters()]


def _run_range_test(model, opt, data, **kw):
    kw.setdefault("start_lr", 1e-4)
    kw.setdefault("end_lr", 10.0)
    kw.setdefault("num_steps", 25)
    return find_lr(opt, data, model=model, loss_fn=mse, **kw)


# --------------------------------------------------------------------------------------------------
# restore=True


@pytest.mark.parametrize("sched_name", ["none", "CosineAnnealingLR", "get_scheduler-cosine"])
@pytest.mark.parametrize("lr_kind", ["float", "tensor"])
@pytest.mark.parametrize("opt_name", ["SGD-momentum", "Adam"])
def test_restores_everything(opt_name, lr_kind, sched_name):
    model, opt, sched, data = _setup(opt_name, lr_kind, sched_name)
    before = _state(model, opt)
    assert opt.state  # the optimizer has momentum / moment state to lose
    res = _run_range_test(model, opt, data)
    assert len(res.lrs) >= 2
    assert_same(_state(model, opt), before)
    if sched is None:
        return
    # The attached scheduler goes on exactly as its twin that never saw a range test.
    twin = _setup(opt_name, lr_kind, sched_name)
    got = _continue(model, opt, sched, data)
    want = _continue(*twin)
    assert got[0] == want[0]
    assert_same(got[1], want[1])


@pytest.mark.parametrize("opt_name", ["SGD-momentum", "Adam"])
def test_restore_keeps_tensor_objects(opt_name):
    """Restore writes back into the same objects (graphs, compiled code and fastlr's views hold them)."""
    model, opt, _sched, data = _setup(opt_name, "tensor", "CosineAnnealingLR")
    lr_objs = [g["lr"] for g in opt.param_groups]
    state_objs = {id(p): dict(st) for p, st in opt.state.items()}
    grads = [p.grad for p in model.parameters()]
    bufs = dict(model.named_buffers())
    _run_range_test(model, opt, data)
    assert all(g["lr"] is o for g, o in zip(opt.param_groups, lr_objs))
    for p, st in opt.state.items():
        assert all(st[k] is v for k, v in state_objs[id(p)].items())
    assert all(p.grad is g for p, g in zip(model.parameters(), grads))
    assert all(b is bufs[n] for n, b in model.named_buffers())


def test_restore_removes_state_created_by_the_test():
    model, opt, _, data = _setup("Adam", "float", "none", warmup=0)
    assert not opt.state
    before = _state(model, opt)
    _run_range_test(model, opt, data)
    assert not opt.state
    assert_same(_state(model, opt), before)


def test_restore_twice_in_a_row():
    model, opt, _, data = _setup("Adam", "tensor", "CosineAnnealingLR")
    before = _state(model, opt)
    _run_range_test(model, opt, data)
    _run_range_test(model, opt, data, num_steps=10)
    assert_same(_state(model, opt), before)


@pytest.mark.parametrize("lr_kind", ["float", "tensor"])
def test_restore_from_cache_dir(tmp_path, lr_kind):
    model, opt, sched, data = _setup("Adam", lr_kind, "get_scheduler-cosine")
    before = _state(model, opt)
    _run_range_test(model, opt, data, cache_dir=tmp_path)
    assert_same(_state(model, opt), before)
    assert list(tmp_path.iterdir()) == []  # the file is gone
    twin = _setup("Adam", lr_kind, "get_scheduler-cosine")
    assert _continue(model, opt, sched, data)[0] == _continue(*twin)[0]


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("cache", [False, True])
def test_restore_after_an_exception_in_train_step(tmp_path, exc, cache):
    model, opt, _, data = _setup("SGD-momentum", "float", "none")
    before = _state(model, opt)
    calls = []

    def train_step(batch):
        calls.append(1)
        if len(calls) == 5:
            raise exc("boom")
        _train(model, opt, batch)
        return 1.0

    with pytest.raises(exc, match="boom"):
        find_lr(opt, data, model=model, train_step=train_step, num_steps=20, cache_dir=tmp_path if cache else None)
    assert len(calls) == 5
    assert_same(_state(model, opt), before)
    assert list(tmp_path.iterdir()) == []


def test_restore_after_an_exception_in_loss_fn_mode():
    model, opt, _, data = _setup("Adam", "float", "none")
    model.eval()
    before = _state(model, opt)
    with pytest.raises(TypeError, match=r"\(inputs, targets\)"):
        _run_range_test(model, opt, data[:2] + [(data[0][0],)])
    assert_same(_state(model, opt), before)  # model.eval() is back too


def test_train_step_mode_restores_what_it_knows():
    """Without model=: the optimizer's params, state and groups and the RNG; with it, buffers too."""
    for with_model in (False, True):
        model, opt, _, data = _setup("Adam", "float", "none")
        before = _state(model, opt)

        def train_step(batch, model=model, opt=opt):
            _train(model, opt, batch)
            torch.rand(3)
            return 1.0

        find_lr(opt, data, train_step=train_step, num_steps=10, model=model if with_model else None)
        after = _state(model, opt)
        for key in ("optimizer", "rng", "grads"):
            assert_same(after[key], before[key])
        params = {k for k, _ in model.named_parameters()}
        assert_same({k: v for k, v in after["model"].items() if k in params},
                    {k: v for k, v in before["model"].items() if k in params})
        buffers_same = all(torch.equal(after["model"][k], before["model"][k]) for k, _ in model.named_buffers())
        assert buffers_same is with_model


def test_restore_puts_back_replaced_groups_and_tensors_inside_group_values():
    """A train_step that replaces a group dict and a group's params list by others of the same length,
    and changes tensors held inside a tuple and a dict of a group (torch allows tensor ``betas``; custom
    keys are kept): afterwards the optimizer holds the original objects, with their original values."""
    p0, p1 = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    b0, b1, sc, tap = (torch.tensor(v, dtype=torch.float64) for v in (0.9, 0.999, 2.0, 4.0))
    opt = torch.optim.SGD([{"params": [p0], "lr": 0.1, "betas": (b0, b1), "extra": {"scale": sc, "k": 1},
                            "taps": [tap, 3]},
                           {"params": [p1], "lr": 0.2}], lr=0.1)
    g0, g1 = opt.param_groups
    params1, keys0 = g1["params"], list(g0)

    def train_step(batch):
        g0["betas"][0].fill_(0.5)
        g0["extra"]["scale"].mul_(3.0)
        g0["extra"] = {"scale": torch.tensor(7.0)}
        g0["taps"][0].zero_()
        g0["taps"] = (torch.tensor(1.0),)
        g0["added"] = 1  # a key the test made: removed
        opt.param_groups[1] = dict(g1, params=[torch.nn.Parameter(torch.zeros(2))])
        g1["params"][0] = torch.nn.Parameter(torch.zeros(2))
        return 1.0

    find_lr(opt, [0], train_step=train_step, num_steps=4)
    assert opt.param_groups[0] is g0 and opt.param_groups[1] is g1
    assert g1["params"] is params1 and g1["params"][0] is p1
    assert g0["betas"][0] is b0 and g0["betas"][1] is b1 and float(b0) == 0.9 and float(b1) == 0.999
    assert g0["extra"]["scale"] is sc and float(sc) == 2.0 and g0["extra"]["k"] == 1
    assert type(g0["betas"]) is tuple and type(g0["taps"]) is list and type(g0["extra"]) is dict
    assert g0["taps"][0] is tap and float(tap) == 4.0 and g0["taps"][1] == 3
    assert list(g0) == keys0 and "added" not in g0


def test_loss_fn_mode_moves_batches_to_the_models_device():
    """With loss_fn=, inputs and targets that have ``.to`` go to the device of the model's first
    parameter (non-blocking); others (a list, a float) are passed as they are."""
    moved = []

    class Box:  # a batch part with .to(): records the call and gives the tensor
        def __init__(self, t):
            self.t = t

        def to(self, device, non_blocking=False):
            moved.append((device, non_blocking))
            return self.t

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(1, 1)

        def forward(self, x):  # also takes a list of floats
            return self.lin(torch.as_tensor(x, dtype=torch.float32).reshape(-1, 1))

    def loss_fn(out, t):
        return ((out - torch.as_tensor(t, dtype=torch.float32).reshape(-1, 1)) ** 2).mean()

    model = Model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(Box(torch.ones(2)), [1.0, 2.0]), ([0.5, 1.5], Box(torch.zeros(2)))]
    res = find_lr(opt, data, model=model, loss_fn=loss_fn, num_steps=4, end_lr=1e-3)
    assert len(res.losses) == 4
    assert moved == [(torch.device("cpu"), True)] * 4


def test_restore_covers_model_parameters_outside_the_optimizer():
    """A model part the optimizer does not train (its grads still accumulate in backward), and a
    parameter slot that holds None (``bias=False``): the grads are put back, the None slot stays."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1, bias=False))
    opt = torch.optim.SGD(model[0].parameters(), lr=0.1)
    w1 = model[1].weight
    w1.grad = torch.full_like(w1, 0.5)
    grad_obj = w1.grad
    data = [(torch.randn(8, 3), torch.randn(8, 1)) for _ in range(3)]
    find_lr(opt, data, model=model, loss_fn=mse, num_steps=5, end_lr=1e-2)
    assert w1.grad is grad_obj and torch.equal(grad_obj, torch.full_like(w1, 0.5))
    assert model[1].bias is None and "bias" in model[1]._parameters


def test_memory_copy_writes_no_file_and_cache_dir_holds_one(tmp_path, monkeypatch):
    """Without cache_dir the copy is in memory (torch.save is never called); with it, one file is in
    cache_dir while the test runs, and none after."""
    opt = _opt_with_groups([0.1])
    real_save = torch.save

    def no_save(*a, **k):
        raise AssertionError("torch.save called without cache_dir")

    monkeypatch.setattr(torch, "save", no_save)
    find_lr(opt, [0], train_step=lambda b: 1.0, num_steps=3)
    monkeypatch.setattr(torch, "save", real_save)
    seen = []
    find_lr(opt, [0], train_step=lambda b: seen.append(len(list(tmp_path.iterdir()))) or 1.0, num_steps=3,
            cache_dir=tmp_path)
    assert seen == [1, 1, 1] and list(tmp_path.iterdir()) == []


def test_one_copy_of_each_tensor(tmp_path, monkeypatch):
    """A tensor reachable several ways (a parameter of the model and of the optimizer, momentum state,
    a tensor lr) is saved once: the saved list is the distinct tensors, each once."""
    model, opt, _, data = _setup("SGD-momentum", "tensor", "none")
    distinct = {id(t): t for t in [*model.parameters(), *model.buffers(),
                                   *(p for g in opt.param_groups for p in g["params"]),
                                   *(v for st in opt.state.values() for v in st.values() if torch.is_tensor(v)),
                                   *(v for g in opt.param_groups for v in g.values() if torch.is_tensor(v))]}
    assert opt.state and len(distinct) > len(list(model.parameters()))
    saved = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: saved.append(obj) or real_save(obj, f))
    _run_range_test(model, opt, data, cache_dir=tmp_path)
    [tensors] = saved
    assert len(tensors) == len(distinct)
    assert sorted(t.data_ptr() for t in tensors) == sorted(t.data_ptr() for t in distinct.values())


def test_rng_is_restored_and_test_draws_from_it():
    _, opt, _, data = _setup("SGD-momentum", "float", "none")
    rng = torch.get_rng_state()
    drawn = []
    find_lr(opt, data, train_step=lambda b: drawn.append(torch.rand(1).item()) or 1.0, num_steps=5)
    assert torch.equal(torch.get_rng_state(), rng)
    assert drawn[0] == torch.rand(1).item()  # the test saw the same stream the caller now sees


def test_scheduler_warning_state_is_restored():
    """torch warns when scheduler.step() comes before any optimizer.step(); a range test in between
    must not hide that (the optimizer's ``_opt_called`` flag is restored)."""
    for range_test in (False, True):
        model, opt, sched, data = _setup("SGD-momentum", "float", "CosineAnnealingLR", warmup=0)
        if range_test:
            _run_range_test(model, opt, data, num_steps=5)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            sched.step()
        assert any("optimizer.step()" in str(x.message) for x in w), range_test
    # and an optimizer that had stepped keeps its flag: no warning afterwards
    model, opt, sched, data = _setup("SGD-momentum", "float", "CosineAnnealingLR", warmup=0)
    opt.step()
    assert opt._opt_called is True
    _run_range_test(model, opt, data, num_steps=5)
    assert opt.__dict__.get("_opt_called") is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()


def test_restore_puts_back_replaced_slots_and_state_dicts():
    """A train_step that rebinds a module's parameter and buffer and replaces a parameter's optimizer
    state dict: afterwards the original objects are back in their slots, with their values."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data = [(torch.randn(8, 3), torch.randn(8, 2))]
    _train(model, opt, data[0])
    w, mean = model[0].weight, model[1].running_mean
    st = opt.state[w]
    before = _state(model, opt)

    def train_step(batch):
        _train(model, opt, batch)
        model[0].weight = torch.nn.Parameter(torch.zeros(2, 3))
        model[1].running_mean = torch.ones(2)
        opt.state[w] = {"momentum_buffer": torch.zeros(2, 3)}
        return 1.0

    find_lr(opt, data, model=model, train_step=train_step, num_steps=3)
    assert model[0].weight is w and model[1].running_mean is mean and opt.state[w] is st
    assert_same(_state(model, opt), before)


def test_restore_false_leaves_the_trained_state():
    model, opt, _, data = _setup("SGD-momentum", "float", "none")
    before = _state(model, opt)
    res = _run_range_test(model, opt, data, restore=False, num_steps=6, diverge=math.inf)
    assert opt.param_groups[0]["lr"] == res.lrs[-1]
    assert not torch.equal(next(model.parameters()), before["model"]["body.0.weight"])


def test_loss_fn_mode_starts_without_leftover_gradients():
    """With restore=False too, the first step does not add gradients left over from before the test."""
    results = []
    for leftover in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        if leftover:
            for p in model.parameters():
                p.grad = torch.full_like(p, 1e3)
        data = [(torch.ones(8, 4), torch.zeros(8, 1))]
        res = find_lr(opt, data, model=model, loss_fn=mse, start_lr=1e-2, end_lr=0.1, num_steps=3, restore=False)
        results.append(res.losses)
    assert results[0] == results[1]


# --------------------------------------------------------------------------------------------------
# The loop: the lr grid, smoothing, stopping, data


def _recorder(opt, losses=None):
    """A train_step that records every group's lr (as a float, and the object) and returns losses."""
    seen = []

    def step(batch):
        seen.append([(float(g["lr"]), g["lr"]) for g in opt.param_groups])
        return 1.0 if losses is None else losses[len(seen) - 1]

    return step, seen


def _opt_with_groups(lrs, kind="float"):
    ps = [torch.nn.Parameter(torch.zeros(2)) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": _lr(lr, kind)} for p, lr in zip(ps, lrs)], lr=0.1)


def _formula(mode, start, end, n):
    if mode == "exp":
        return [start * (end / start) ** (i / (n - 1)) for i in range(n)]
    return [start + (end - start) * (i / (n - 1)) for i in range(n - 1)] + [end]


@pytest.mark.parametrize("kind", ["float", "tensor"])
@pytest.mark.parametrize(("mode", "start", "end", "n"), [
    ("exp", 1e-7, 10.0, 100), ("exp", 3e-5, 0.7, 37), ("exp", 1e-3, 1e-2, 2),
    ("linear", 1e-4, 1.0, 100), ("linear", 0.0, 0.3, 41), ("linear", 0.5, 2.0, 2),
])
def test_lrs_follow_the_formula(mode, start, end, n, kind):
    """Group 0 follows the formula exactly (fastlr's exponential/linear tables are bitwise the Python
    expression: same libm pow, same operation order); other groups keep their ratio to group 0."""
    lrs0 = [2e-3, 1e-3, 6e-3]
    opt = _opt_with_groups(lrs0, kind)
    lr_objs = [g["lr"] for g in opt.param_groups]
    step, seen = _recorder(opt)
    res = find_lr(opt, [0], train_step=step, start_lr=start, end_lr=end, num_steps=n, mode=mode)
    want = _formula(mode, start, end, n)
    assert res.lrs == want
    assert [row[0][0] for row in seen] == want
    for g in (1, 2):
        assert [row[g][0] for row in seen] == [w * (lrs0[g] / lrs0[0]) for w in want]
    if kind == "tensor":  # written in place
        assert all(row[g][1] is lr_objs[g] for row in seen for g in range(3))
    assert [float(g["lr"]) for g in opt.param_groups] == lrs0


@pytest.mark.parametrize("mode", ["exp", "linear"])
def test_per_group_ranges(mode):
    opt = _opt_with_groups([1.0, 1.0, 1.0], "tensor")
    lr_objs = [g["lr"] for g in opt.param_groups]
    starts, ends = [1e-6, 1e-5, 2e-4], [1.0, 0.1, 3.0]
    step, seen = _recorder(opt)
    res = find_lr(opt, [0], train_step=step, start_lr=starts, end_lr=ends, num_steps=30, mode=mode)
    for g in range(3):
        assert [row[g][0] for row in seen] == _formula(mode, starts[g], ends[g], 30)
        assert all(row[g][1] is lr_objs[g] for row in seen)  # written in place
    assert res.lrs == _formula(mode, starts[0], ends[0], 30)


@pytest.mark.parametrize("which", ["start", "end"])
def test_one_list_and_one_scalar_bound(which):
    """A list for one bound makes the ranges per group; the scalar bound is every group's."""
    opt = _opt_with_groups([1.0, 1.0])
    starts, ends = ([1e-6, 1e-5], 0.5) if which == "start" else (1e-6, [1.0, 0.1])
    step, seen = _recorder(opt)
    find_lr(opt, [0], train_step=step, start_lr=starts, end_lr=ends, num_steps=12)
    for g in range(2):
        s = starts[g] if which == "start" else starts
        e = ends if which == "start" else ends[g]
        assert [row[g][0] for row in seen] == _formula("exp", s, e, 12)


def test_float32_tensor_lrs():
    opt = _opt_with_groups([1e-3, 3e-3])
    for g in opt.param_groups:
        g["lr"] = torch.tensor(g["lr"], dtype=torch.float32)
    before = [g["lr"].clone() for g in opt.param_groups]
    step, seen = _recorder(opt)
    find_lr(opt, [0], train_step=step, start_lr=1e-5, end_lr=1.0, num_steps=20)
    want = _formula("exp", 1e-5, 1.0, 20)
    ratio = float(before[1]) / float(before[0])
    assert [row[0][0] for row in seen] == [float(np.float32(w)) for w in want]
    assert [row[1][0] for row in seen] == [float(np.float32(w * ratio)) for w in want]
    assert all(torch.equal(g["lr"], b) for g, b in zip(opt.param_groups, before))


def _smooth(losses, smooth):
    """The bias-corrected EMA, written out independently."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses):
        avg = (1 - smooth) * avg + smooth * loss
        out.append(avg / (1 - (1 - smooth) ** (i + 1)))
    return out


@pytest.mark.parametrize("smooth", [0.05, 0.3, 1.0])
def test_smoothing(smooth):
    rnd = random.Random(3)
    losses = [2.0 + rnd.random() for _ in range(40)]
    opt = _opt_with_groups([0.1])
    step, _ = _recorder(opt, losses)
    res = find_lr(opt, [0], train_step=step, num_steps=40, smooth=smooth)
    assert res.losses == losses
    assert res.smoothed_losses == pytest.approx(_smooth(losses, smooth), rel=1e-14)
    assert res.smoothed_losses[0] == pytest.approx(losses[0], rel=1e-14)
    assert not res.stopped_early


def test_defaults():
    """The issue's defaults: 100 steps from 1e-7 to 10 on the geometric grid, smoothing 0.05."""
    rnd = random.Random(5)
    losses = [2.0 + rnd.random() for _ in range(100)]
    opt = _opt_with_groups([0.1])
    step, seen = _recorder(opt, losses)
    res = find_lr(opt, [0], train_step=step)
    assert [row[0][0] for row in seen] == res.lrs == _formula("exp", 1e-7, 10.0, 100)
    assert res.smoothed_losses == pytest.approx(_smooth(losses, 0.05), rel=1e-14)
    assert res.mode == "exp" and res.num_steps == 100
    # and diverge=5: a loss rising slowly from 1 stops at the first smoothed value over 5
    rising = [1.0] * 10 + [1.0 + 0.5 * k for k in range(1, 90)]
    step, seen = _recorder(opt, rising)
    res = find_lr(opt, [0], train_step=step)
    sm = _smooth(rising, 0.05)
    assert res.stopped_early and len(seen) == next(i for i, v in enumerate(sm) if v > 5.0) + 1


def test_stops_when_the_loss_diverges():
    torch.manual_seed(1)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(32, 8), torch.randn(32, 1)) for _ in range(4)]
    res = find_lr(opt, data, model=model, loss_fn=mse, start_lr=1e-3, end_lr=100.0, num_steps=60)
    assert res.stopped_early and len(res.lrs) < 60
    sm = _smooth(res.losses, 0.05)
    first = next(i for i in range(len(sm)) if sm[i] > 5 * min(sm[: i + 1]))
    assert first == len(res.lrs) - 1  # stopped at the first step over 5x the best, and recorded it
    # A looser threshold runs longer.
    res10 = find_lr(opt, data, model=model, loss_fn=mse, start_lr=1e-3, end_lr=100.0, num_steps=60, diverge=1e6)
    assert len(res10.lrs) > len(res.lrs)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_stops_on_nan_or_inf(bad):
    losses = [1.0] * 7 + [bad] + [1.0] * 20
    opt = _opt_with_groups([0.1])
    step, seen = _recorder(opt, losses)
    res = find_lr(opt, [0], train_step=step, num_steps=20, diverge=math.inf)
    assert res.stopped_early and len(seen) == 8 and len(res.lrs) == 8
    assert res.losses[:7] == [1.0] * 7 and not math.isfinite(res.losses[-1])
    json.dumps(res.to_dict(), allow_nan=False)  # JSON-safe even so


def test_nan_from_a_model():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.tensor([[1.0, math.nan]]), torch.zeros(1, 1))]
    res = find_lr(opt, data, model=model, loss_fn=mse, num_steps=10)
    assert res.stopped_early and len(res.lrs) == 1 and math.isnan(res.losses[0])


def test_data_is_cycled():
    opt = _opt_with_groups([0.1])
    seen = []
    find_lr(opt, ["a", "b", "c"], train_step=lambda b: seen.append(b) or 1.0, num_steps=8)
    assert seen == list("abcabcab")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(6.0)), batch_size=4)
    seen = []
    find_lr(opt, loader, train_step=lambda b: seen.append(b[0].tolist()) or 1.0, num_steps=5)
    assert seen == [[0, 1, 2, 3], [4, 5], [0, 1, 2, 3], [4, 5], [0, 1, 2, 3]]


def test_data_errors():
    opt = _opt_with_groups([0.1])
    with pytest.raises(ValueError, match="no batches"):
        find_lr(opt, [], train_step=lambda b: 1.0)
    with pytest.raises(ValueError, match="data ran out after 3 batches and is an iterator"):
        find_lr(opt, iter([1, 2, 3]), train_step=lambda b: 1.0, num_steps=5)

    class Once:  # re-iterable, but empty after its first pass
        def __init__(self):
            self.left = [1, 2]

        def __iter__(self):
            while self.left:
                yield self.left.pop()

    with pytest.raises(ValueError, match="data yielded no batches"):
        find_lr(opt, Once(), train_step=lambda b: 1.0, num_steps=5)
    assert opt.param_groups[0]["lr"] == 0.1
    with pytest.raises(TypeError, match="data must be an iterable of batches, got int"):
        find_lr(opt, 3, train_step=lambda b: 1.0)
    with pytest.raises(TypeError, match="train_step must return"):
        find_lr(opt, [0], train_step=lambda b: "x")
    with pytest.raises(TypeError, match="scalar"):
        find_lr(opt, [0], train_step=lambda b: torch.ones(3))
    with pytest.raises(TypeError, match="train_step must return the loss as a number .*, got bool"):
        find_lr(opt, [0], train_step=lambda b: True)


def test_loss_types():
    """A train_step may return any real number or a one-element tensor; losses are floats."""
    opt = _opt_with_groups([0.1])
    for loss, want in [(3, 3.0), (np.float32(0.25), 0.25), (fractions.Fraction(1, 4), 0.25),
                       (torch.tensor([0.5]), 0.5), (torch.tensor(2, dtype=torch.int64), 2.0)]:
        res = find_lr(opt, [0], train_step=lambda b, loss=loss: loss, num_steps=3)
        assert res.losses == [want] * 3 and all(type(x) is float for x in res.losses), loss


def test_progress(capsys):
    opt = _opt_with_groups([0.1])
    find_lr(opt, [0], train_step=lambda b: 1.0, num_steps=20, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 10 and err[-1].startswith("find_lr: 100% (20/20")
    find_lr(opt, [0], train_step=lambda b: 1.0, num_steps=20, progress=False)
    find_lr(opt, [0], train_step=lambda b: 1.0, num_steps=20)  # stderr is not a terminal here
    assert capsys.readouterr().err == ""


def test_progress_on_a_terminal(monkeypatch):
    """With progress=None, a terminal on stderr gets the bar (a line rewritten with \\r)."""
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    find_lr(_opt_with_groups([0.1]), [0], train_step=lambda b: 1.0, num_steps=20)
    out = tty.getvalue()
    assert "\r" in out and "find_lr" in out and "20/20" in out


def test_divergence_threshold_is_strict_and_needs_a_positive_best():
    """It stops when the smoothed loss is *above* diverge times the best (smooth=1: the loss itself),
    and never while the best smoothed loss is 0 or below (no ratio to read)."""
    def run(losses, **kw):
        opt = _opt_with_groups([0.1])
        step, seen = _recorder(opt, losses)
        res = find_lr(opt, [0], train_step=step, num_steps=len(losses), smooth=1.0, **kw)
        return res.stopped_early, len(seen)

    assert run([1.0, 5.0, 5.0, 4.0]) == (False, 4)  # exactly 5x: not above
    assert run([1.0, 5.0, 5.000001, 4.0]) == (True, 3)
    assert run([1.0, 3.0, 3.1], diverge=3.0) == (True, 3)
    assert run([0.0, 2.0, 50.0, 1e6]) == (False, 4)  # best 0
    assert run([-1.0, 2.0, 50.0]) == (False, 3)  # best below 0


def test_exported_lazily():
    assert fastlr.find_lr is find_lr and fastlr.LRFindResult is LRFindResult
    assert {"find_lr", "LRFindResult"} <= set(fastlr.__all__)


# --------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(("kw", "match"), [
    ({}, "needs a way to train"),
    ({"loss_fn": mse, "train_step": lambda b: 1.0}, "not both"),
    ({"loss_fn": mse, "train_step": lambda b: 1.0, "model": torch.nn.Linear(1, 1)}, "not both"),
    ({"loss_fn": mse}, "loss_fn= needs model="),
    ({"model": torch.nn.Linear(1, 1)}, "needs a way to train"),
    ({"train_step": 3}, "train_step must be callable"),
    ({"loss_fn": 3, "model": torch.nn.Linear(1, 1)}, "loss_fn must be callable"),
    ({"loss_fn": mse, "model": 3}, r"model must be callable \(a torch.nn.Module\), got int"),
], ids=["neither", "both", "both-with-model", "loss_fn-without-model", "model-only", "train_step-not-callable",
        "loss_fn-not-callable", "model-not-callable"])
def test_training_argument_errors(kw, match):
    opt = _opt_with_groups([0.1])
    with pytest.raises(TypeError, match=match):
        find_lr(opt, [0], **kw)


@pytest.mark.parametrize("missing", [None, "param_groups", "state", "step"])
def test_optimizer_type_error(missing):
    """Not an optimizer: nothing of one, or an object without one of param_groups, state and step."""
    if missing is None:
        bad = object()
    else:
        attrs = {"param_groups": [{"lr": 0.1, "params": []}], "state": {}, "step": lambda: None}
        del attrs[missing]
        bad = types.SimpleNamespace(**attrs)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        find_lr(bad, [0], train_step=lambda b: 1.0)


def test_optimizer_without_param_groups():
    """A duck-typed optimizer with no groups (torch's own refuse to be made without parameters)."""
    bad = types.SimpleNamespace(param_groups=[], state={}, step=lambda: None, zero_grad=lambda: None)
    with pytest.raises(ValueError, match="the optimizer has no param groups"):
        find_lr(bad, [0], train_step=lambda b: 1.0)


@pytest.mark.parametrize(("kw", "exc", "match"), [
    ({"num_steps": 1}, ValueError, "num_steps must be >= 2"),
    ({"num_steps": 2.5}, TypeError, "num_steps must be an int"),
    ({"num_steps": True}, TypeError, "num_steps must be an int"),
    ({"mode": "cos"}, ValueError, "mode must be one of"),
    ({"smooth": 0.0}, ValueError, r"smooth must be in \(0, 1\]"),
    ({"smooth": 1.5}, ValueError, r"smooth must be in \(0, 1\]"),
    ({"diverge": 1.0}, ValueError, "diverge must be > 1"),
    ({"diverge": math.nan}, ValueError, "diverge must not be NaN"),
    ({"start_lr": 0.0}, ValueError, "start_lr must be > 0 in 'exp' mode"),
    ({"start_lr": -1.0, "mode": "linear"}, ValueError, "start_lr must be >= 0"),
    ({"start_lr": 1.0, "end_lr": 1.0}, ValueError, "end_lr must be greater than start_lr"),
    ({"start_lr": 1.0, "end_lr": 0.1}, ValueError, "end_lr must be greater than start_lr"),
    ({"end_lr": math.inf}, ValueError, "start_lr and end_lr must be finite, got 1e-07 and inf"),
    ({"start_lr": -math.inf}, ValueError, "start_lr and end_lr must be finite, got -inf and 10.0"),
    ({"start_lr": -math.inf, "mode": "linear"}, ValueError, "start_lr and end_lr must be finite"),
    ({"start_lr": math.nan}, ValueError, "start_lr must not be NaN"),
    ({"start_lr": "1e-3"}, TypeError, "start_lr must be a real number"),
    ({"start_lr": [1e-5, 1e-5]}, ValueError, "start_lr has 2 values for 1 param groups"),
    ({"start_lr": [1e-5], "end_lr": [1e-6]}, ValueError, r"end_lr\[0\] must be greater than start_lr\[0\]"),
    ({"cache_dir": "/nonexistent/dir"}, ValueError, "is not a directory"),
    ({"restore": 1}, TypeError, "restore must be a bool"),
    ({"progress": "yes"}, TypeError, "progress must be None or a bool"),
])
def test_value_errors(kw, exc, match):
    """Each bad argument is refused before the first training step."""
    opt = _opt_with_groups([0.1])
    calls = []
    with pytest.raises(exc, match=match):
        find_lr(opt, [0], train_step=lambda b: calls.append(b) or 1.0, **kw)
    assert opt.param_groups[0]["lr"] == 0.1
    assert calls == []


def test_values_at_the_bounds_are_accepted():
    """The edges of what the checks allow run: 2 steps, diverge just above 1, start_lr 0 in linear mode."""
    opt = _opt_with_groups([0.1])
    res = find_lr(opt, [0], train_step=lambda b: 1.0, num_steps=2, diverge=1.5, start_lr=0.0, end_lr=1.0,
                  mode="linear")
    assert res.lrs == [0.0, 1.0] and not res.stopped_early


def test_group_zero_lr_zero_needs_lists():
    opt = _opt_with_groups([0.0, 0.1])
    with pytest.raises(ValueError, match="first param group's lr is 0.0"):
        find_lr(opt, [0], train_step=lambda b: 1.0)
    find_lr(opt, [0], train_step=lambda b: 1.0, start_lr=[1e-5, 1e-5], end_lr=[1.0, 1.0], num_steps=3)


# --------------------------------------------------------------------------------------------------
# Suggestions


def _result(losses, lrs=None, num_steps=None, mode="exp"):
    lrs = lrs if lrs is not None else [1e-3 * 2.0**k for k in range(len(losses))]
    return LRFindResult(lrs, list(losses), list(losses), False, mode=mode, num_steps=num_steps)


def test_steepest_hand_checked():
    # Points [10:-5] are 10..24; central differences (np.gradient): at 12 (2.5 - 3.0) / 2 = -0.25,
    # at 13 (1.5 - 2.9) / 2 = -0.7, at 14 (1.3 - 2.5) / 2 = -0.6, smaller in size elsewhere. The early drop at 2 and the late one at 27 are
    # outside the window.
    losses = [3.0, 3.0, 0.1] + [3.0] * 9 + [2.9, 2.5, 1.5, 1.3, 1.2, 1.1, 1.0] + [1.0] * 6 + [5.0, 0.0, 5.0, 5.0, 5.0]
    assert len(losses) == 30
    res = _result(losses)
    assert res.suggest("steepest") == res.suggestion == res.lrs[13]


def test_valley_and_minimum_hand_checked():
    # num_steps = 20: fastai's window is points [2:-5] = 2..14. The global minima at 0 and 17 are
    # outside it. In the window (positions 0..12 = points 2..14):
    #   4.0 4.5 4.2 3.9 3.5 3.0 2.0 1.0 0.5 0.8 2.0 3.0 4.0
    # the longest decreasing run is 4.0 (or 4.5), 4.2, 3.9, ..., 0.5: 8 points ending at position 8,
    # so max_start = 8 - 8 = 0, d = 8, and valley = position 0 + int(8/3) + int(8/6) = 2 + 1 = 3, the
    # point 2 + 3 = 5. The minimum is 0.5 at position 8, the point 10: lr / 10.
    losses = [0.1, 5.0, 4.0, 4.5, 4.2, 3.9, 3.5, 3.0, 2.0, 1.0, 0.5, 0.8, 2.0, 3.0, 4.0, 9.0, 9.0, 0.05, 9.0, 9.0]
    lrs = [1e-3 * 2.0**k for k in range(20)]
    res = _result(losses, lrs)
    assert res.suggest("valley") == lrs[5] == 0.032
    assert res.suggest("minimum") == lrs[10] / 10 == pytest.approx(0.1024, rel=1e-15)
    # A NaN ends the curve for the rules: with it at point 9, the window is points 2..8.
    res_nan = _result(losses[:9] + [math.nan] + losses[10:], lrs)
    assert res_nan.suggest("minimum") == lrs[8] / 10
    # Points 2..8: 4.0 4.5 4.2 3.9 3.5 3.0 2.0 -> run of 6 ending at position 6, max_start 0,
    # valley at position int(6/3) + int(6/6) = 3, the point 5.
    assert res_nan.suggest("valley") == lrs[5]


def _fastai_valley(lrs, losses):
    """fastai's ``valley`` (fastai/callback/schedule.py), as written there."""
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(lrs[idx])


def test_valley_matches_fastai_on_random_curves():
    rnd = np.random.default_rng(5)
    for trial in range(300):
        n = int(rnd.integers(7, 80))
        walk = np.cumsum(rnd.normal(size=n)) if trial % 2 else rnd.integers(0, 4, size=n).astype(float)
        res = _result(walk.tolist())
        lo = n // 10
        window = res.smoothed_losses[lo:-5]
        assert res.suggest("valley") == _fastai_valley(res.lrs[lo:-5], window), (trial, walk)


def test_too_few_points():
    res = _result([1.0] * 16)
    with pytest.raises(ValueError, match="'steepest' needs at least 17 points"):
        res.suggest("steepest")
    with pytest.raises(ValueError, match="'steepest' needs at least 17 points"):
        _ = res.suggestion
    assert res.to_dict()["suggestion"] is None
    res17 = _result([1.0] * 17)
    assert res17.suggestion == res17.lrs[10]
    short = _result([1.0] * 7, num_steps=100)  # 100 // 10 = 10 points skipped
    for m in ("valley", "minimum"):
        with pytest.raises(ValueError, match=f"'{m}' needs at least one point"):
            short.suggest(m)
    # nothing skipped at the start (num_steps // 10 == 0): the last 5 points are still skipped, so 5
    # points leave none and 6 leave the first
    five, six = _result([3.0, 2.0, 1.0, 0.5, 0.2], num_steps=5), _result([3.0, 2.0, 1.0, 0.5, 0.2, 0.1], num_steps=6)
    for m in ("valley", "minimum"):
        with pytest.raises(ValueError, match=f"'{m}' needs at least one point"):
            five.suggest(m)
    assert six.suggest("valley") == six.lrs[0] and six.suggest("minimum") == six.lrs[0] / 10
    with pytest.raises(ValueError, match="method must be one of"):
        res.suggest("fastest")


def test_to_dict_is_json_safe():
    res = _result([3.0] * 20 + [math.inf])
    d = res.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["losses"][-1] is None and d["suggestions"]["steepest"] == res.suggest("steepest")
    assert set(d) == {"lrs", "losses", "smoothed_losses", "stopped_early", "mode", "num_steps", "suggestion",
                      "suggestions"}


def test_result_checks_lengths_and_mode():
    with pytest.raises(ValueError, match="same length"):
        LRFindResult([1.0], [1.0, 2.0], [1.0], False)
    with pytest.raises(ValueError, match="mode must be one of"):
        LRFindResult([1.0], [1.0], [1.0], False, mode="cos")


# --------------------------------------------------------------------------------------------------
# Against torch-lr-finder


def _tlf_setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(512, 10, generator=gen)
    y = (x @ torch.randn(10, 1, generator=gen)).tanh() + 0.1 * torch.randn(512, 1, generator=gen)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), loader


@pytest.mark.parametrize(("mode", "start", "end"), [("exp", 1e-5, 10.0), ("linear", 1e-3, 1.0)])
def test_steepest_agrees_with_torch_lr_finder(mode, start, end):
    tlf = pytest.importorskip("torch_lr_finder")
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 100
    model, opt, loader = _tlf_setup()
    finder = tlf.LRFinder(model, opt, torch.nn.MSELoss(), device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        finder.range_test(loader, start_lr=start, end_lr=end, num_iter=n, step_mode=mode, smooth_f=0.05,
                          diverge_th=5)
    fig, ax = plt.subplots()
    _, their_lr = finder.plot(ax=ax, suggest_lr=True)
    plt.close(fig)
    their = finder.history

    # The rule itself: on torch-lr-finder's own curve, the same lr, exactly.
    mine_on_theirs = LRFindResult(their["lr"], their["loss"], their["loss"], False, mode=mode)
    assert mine_on_theirs.suggest("steepest") == their_lr

    # The whole test from the same initial state: the same grid, and a suggestion within one step.
    model, opt, loader = _tlf_setup()
    res = find_lr(opt, loader, model=model, loss_fn=torch.nn.MSELoss(), start_lr=start, end_lr=end, num_steps=n,
                  mode=mode, smooth=0.05, diverge=5.0)
    k = min(len(res.lrs), len(their["lr"]))
    assert res.lrs[:k] == pytest.approx(their["lr"][:k], rel=1e-12)
    assert res.losses[0] == pytest.approx(their["loss"][0], rel=1e-6)  # same first step
    mine_i = res.lrs.index(res.suggestion)
    their_i = min(range(len(their["lr"])), key=lambda i: abs(their["lr"][i] - their_lr))
    assert abs(mine_i - their_i) <= 1, (mine_i, their_i)


# --------------------------------------------------------------------------------------------------
# Plots


def test_plot_matplotlib():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [3.0] * 12 + [2.9, 2.5, 1.5, 1.3, 1.2, 1.1, 1.0] + [1.0] * 6 + [5.0] * 5
    res = _result(losses)
    fig = res.plot()
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    (marker,) = ax.collections
    assert marker.get_offsets().tolist() == [[res.lrs[13], 2.5]]
    plt.close(fig)
    fig, ax = plt.subplots()
    assert _result(losses, mode="linear").plot(ax=ax) is fig and ax.get_xscale() == "linear"
    plt.close(fig)


def test_plot_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    losses = [3.0] * 12 + [2.9, 2.5, 1.5, 1.3, 1.2, 1.1, 1.0] + [1.0] * 6 + [5.0] * 5
    res = _result(losses)
    text = res.plot()
    assert isinstance(text, str)
    assert "smoothed loss" in text and f"suggestion (steepest): lr {res.lrs[13]:.3g} at step 13" in text
    assert "no suggestion" in _result([1.0, 2.0]).plot()
    assert _result([]).plot() == "(no points)"
    first_nan = _result([math.nan, 1.0, 1.0]).plot()  # a test that stopped at its first step
    assert "smoothed loss" in first_nan and "no suggestion" in first_nan
