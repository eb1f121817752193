"""Exact resume: save at step k, restore into fresh objects, continue, and get the uninterrupted run
bit for bit (lrs, momentum/betas and get_last_lr()), for every class and every lr kind: Python floats,
float64 and float32 tensors, and capturable mode; through torch.save / torch.load(weights_only=True)
and through torch.distributed.checkpoint (get_state_dict / set_state_dict).

float32 tensor lrs are the float32 rounding of a float64 value the engine continues from; that value
travels in the scheduler's state_dict (`_fastlr_lr64`), whichever of optimizer and scheduler is
loaded first.
"""

from __future__ import annotations

import io
import struct
import warnings
from typing import Any, Callable

import pytest

torch = pytest.importorskip("torch")

import fastlr.lr_scheduler as F  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

K1, K2 = 23, 31  # steps before and after the save (past milestones, restarts and plateaus both sides)
METRICS = [1.0 / (k + 1) if k % 9 < 4 else 3.0 for k in range(K1 + K2 + 1)]


def _lam(e: int) -> float:
    return 0.97**e


def _mul(e: int) -> float:
    return 0.99 if e % 2 else 0.98


def _tensor(x: float, kind: str) -> Any:
    if kind == "float":
        return x
    return torch.tensor(x, dtype=torch.float64 if kind == "tensor64" else torch.float32)


CLASSES: dict[str, Callable[[Any, Any, str], Any]] = {
    "LambdaLR": lambda M, o, k: M.LambdaLR(o, lr_lambda=_lam),
    "MultiplicativeLR": lambda M, o, k: M.MultiplicativeLR(o, lr_lambda=_mul),
    "StepLR": lambda M, o, k: M.StepLR(o, step_size=5, gamma=0.7),
    "MultiStepLR": lambda M, o, k: M.MultiStepLR(o, milestones=[10, 30, 40], gamma=0.4),
    "ConstantLR": lambda M, o, k: M.ConstantLR(o, factor=0.3, total_iters=30),
    "LinearLR": lambda M, o, k: M.LinearLR(o, start_factor=0.1, total_iters=40),
    "ExponentialLR": lambda M, o, k: M.ExponentialLR(o, gamma=0.93),
    "PolynomialLR": lambda M, o, k: M.PolynomialLR(o, total_iters=50, power=1.7),
    "CosineAnnealingLR": lambda M, o, k: M.CosineAnnealingLR(o, T_max=17, eta_min=1e-4),
    "CyclicLR": lambda M, o, k: M.CyclicLR(
        o, base_lr=1e-3, max_lr=0.05, step_size_up=6, mode="exp_range", gamma=0.99,
        max_momentum=_tensor(0.95, k) if k != "float" else 0.95, base_momentum=_tensor(0.85, k) if k != "float" else 0.85,
    ),
    "OneCycleLR": lambda M, o, k: M.OneCycleLR(
        o, max_lr=0.07, total_steps=K1 + K2 + 5,
        max_momentum=_tensor(0.95, k) if k != "float" else 0.95, base_momentum=_tensor(0.85, k) if k != "float" else 0.85,
    ),
    "CosineAnnealingWarmRestarts": lambda M, o, k: M.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=1e-4),
    "ReduceLROnPlateau": lambda M, o, k: M.ReduceLROnPlateau(o, patience=2, factor=0.5, min_lr=1e-6),
    "SequentialLR": lambda M, o, k: M.SequentialLR(
        o, [M.LinearLR(o, start_factor=0.1, total_iters=9), M.CosineAnnealingLR(o, T_max=30)], milestones=[9]
    ),
    "ChainedScheduler": lambda M, o, k: M.ChainedScheduler(
        [M.ConstantLR(o, factor=0.5, total_iters=25), M.ExponentialLR(o, gamma=0.95)]
    ),
    "SWALR": lambda M, o, k: M.SWALR(o, swa_lr=0.004, anneal_epochs=35),
}
#: Classes with a closed form on the device (capturable=True).
CAPTURABLE = [n for n in CLASSES if n not in ("LambdaLR", "MultiplicativeLR", "SequentialLR", "ChainedScheduler")]


def make_opt(kind: str) -> Any:
    ps = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3)]
    lrs = [0.1, 0.037, 0.0123]
    groups = [{"params": [p], "lr": _tensor(lr, kind)} for p, lr in zip(ps, lrs)]
    return torch.optim.SGD(groups, momentum=_tensor(0.9, kind) if kind != "float" else 0.9)


def step(name: str, s: Any, k: int) -> None:
    if name == "ReduceLROnPlateau":
        s.step(torch.tensor(METRICS[k], dtype=torch.float64) if s.capturable else METRICS[k])
    else:
        s.step()


def observe(opt: Any, s: Any) -> Any:
    """Every group's lr and momentum, and get_last_lr(), bitwise."""

    def bits(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return (str(v.dtype), v.detach().cpu().numpy().tobytes())
        return ("f", struct.pack("<d", v))

    groups = [(bits(g["lr"]), bits(g["momentum"])) for g in opt.param_groups]
    return groups, [bits(v) for v in s.get_last_lr()]


def through_disk(sd: Any) -> Any:
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def build(name: str, kind: str, capturable: bool) -> tuple[Any, Any]:
    opt = make_opt(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if capturable:
            s = CLASSES[name](_Capturable(F), opt, kind)
        else:
            s = CLASSES[name](F, opt, kind)
    return opt, s


class _Capturable:
    """fastlr.lr_scheduler with capturable=True on every constructor (the members of composites too)."""

    def __init__(self, mod: Any) -> None:
        self.mod = mod

    def __getattr__(self, name: str) -> Any:
        cls = getattr(self.mod, name)
        return lambda *a, **kw: cls(*a, capturable=True, **kw)


def run(name: str, kind: str, capturable: bool, save: Callable[[Any, Any], Any], restore: Callable[[Any, Any, Any], None]) -> None:
    opt_a, a = build(name, kind, capturable)
    want = []
    for k in range(K1 + K2):
        step(name, a, k)
        want.append(observe(opt_a, a))

    opt_b, b = build(name, kind, capturable)
    for k in range(K1):
        step(name, b, k)
    saved = save(opt_b, b)
    del opt_b, b
    opt_c, c = build(name, kind, capturable)
    for k in range(3):  # the fresh objects have run a little elsewhere first (their own state)
        step(name, c, k)
    restore(opt_c, c, saved)
    for k in range(K1, K1 + K2):
        step(name, c, k)
        assert observe(opt_c, c) == want[k], f"step {k + 1}"


def save_torch(opt: Any, s: Any) -> Any:
    return through_disk({"optimizer": opt.state_dict(), "scheduler": s.state_dict()})


def restore_opt_first(opt: Any, s: Any, saved: Any) -> None:
    opt.load_state_dict(saved["optimizer"])
    s.load_state_dict(saved["scheduler"])


def restore_sched_first(opt: Any, s: Any, saved: Any) -> None:
    s.load_state_dict(saved["scheduler"])
    opt.load_state_dict(saved["optimizer"])


@pytest.mark.parametrize("order", ["optimizer-first", "scheduler-first"])
@pytest.mark.parametrize("kind", ["float", "tensor64", "tensor32"])
@pytest.mark.parametrize("name", list(CLASSES))
def test_resume_through_torch_save(name: str, kind: str, order: str):
    run(name, kind, False, save_torch, restore_opt_first if order == "optimizer-first" else restore_sched_first)


@pytest.mark.parametrize("kind", ["tensor64", "tensor32"])
@pytest.mark.parametrize("name", CAPTURABLE)
def test_resume_capturable_through_torch_save(name: str, kind: str):
    run(name, kind, True, save_torch, restore_opt_first)


# ------------------------------------------------------------------------------------------------
# torch.distributed.checkpoint: a model, get_state_dict / set_state_dict, and the scheduler's state
# beside them in one checkpoint (as torchtitan and Accelerate's FSDP paths save it), in one process.


def _model_opt(kind: str) -> tuple[Any, Any]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    lrs = [0.1, 0.037, 0.0123]
    groups = [{"params": list(m.parameters()), "lr": _tensor(lr, kind)} for m, lr in zip(model, lrs)]
    return model, torch.optim.SGD(groups, momentum=_tensor(0.9, kind) if kind != "float" else 0.9)


def _dcp_build(name: str, kind: str, capturable: bool) -> tuple[Any, Any, Any]:
    model, opt = _model_opt(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CLASSES[name](_Capturable(F) if capturable else F, opt, kind)
    return model, opt, s


def _train_step(model: Any, opt: Any) -> None:
    opt.zero_grad()
    model(torch.ones(2, 3)).sum().backward()
    opt.step()


@pytest.mark.parametrize(
    ("kind", "capturable"), [("float", False), ("tensor64", False), ("tensor32", False), ("tensor64", True), ("tensor32", True)]
)
@pytest.mark.parametrize("name", list(CLASSES))
def test_resume_through_distributed_checkpoint(name: str, kind: str, capturable: bool, tmp_path: Any):
    dcp = pytest.importorskip("torch.distributed.checkpoint")
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    if capturable and name not in CAPTURABLE:
        pytest.skip("no closed form on the device")
    model_a, opt_a, a = _dcp_build(name, kind, capturable)
    want = []
    for k in range(K1 + K2):
        _train_step(model_a, opt_a)
        step(name, a, k)
        want.append(observe(opt_a, a))

    model_b, opt_b, b = _dcp_build(name, kind, capturable)
    for k in range(K1):
        _train_step(model_b, opt_b)
        step(name, b, k)
    msd, osd = get_state_dict(model_b, opt_b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # single process: no process group
        dcp.save({"model": msd, "optim": osd, "sched": b.state_dict()}, checkpoint_id=str(tmp_path))

    model_c, opt_c, c = _dcp_build(name, kind, capturable)
    for k in range(3):
        _train_step(model_c, opt_c)
        step(name, c, k)
    msd, osd = get_state_dict(model_c, opt_c)
    state = {"model": msd, "optim": osd, "sched": c.state_dict()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(state, checkpoint_id=str(tmp_path))
    set_state_dict(model_c, opt_c, model_state_dict=state["model"], optim_state_dict=state["optim"])
    c.load_state_dict(state["sched"])
    for k in range(K1, K1 + K2):
        _train_step(model_c, opt_c)
        step(name, c, k)
        assert observe(opt_c, c) == want[k], f"step {k + 1}"
