"""Shared torch helpers for the fastlr test suite (modules that import it need torch).

Parity tests build two identical optimizers, attach torch's scheduler to one and fastlr's to the
other, step both, and compare every learning rate bit for bit against the installed torch.
"""

from __future__ import annotations

import contextlib
import math
import struct
import warnings
from typing import Any, Callable, Iterator

import pytest

import torch

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
    return [g.get("lr", "<no lr key>") for g in opt.param_groups]


def as_bits(x: Any) -> Any:
    """A float (or 0-d tensor) as something whose equality is bitwise (NaN == NaN, -0.0 != 0.0)."""
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.float64:
            return ("t64", struct.pack("<d", x.item()))
        if x.dtype == torch.float32:
            return ("t32", struct.pack("<f", x.item()))
        return ("t", x.dtype, x.tolist())
    if type(x) is float:
        return ("f", struct.pack("<d", x))
    if isinstance(x, float):  # numpy.float64 and other float subclasses: keep the type visible
        return (type(x).__name__, struct.pack("<d", x))
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
        if type(a) is not type(b):  # an int where torch has a float changes later arithmetic
            return False
        if isinstance(a, list) and isinstance(b, list):
            if bits(a) != bits(b):
                return False
        elif isinstance(a, float) and isinstance(b, float):
            if as_bits(a) != as_bits(b):
                return False
        elif a != b and not (isinstance(a, float) and math.isnan(a) and math.isnan(b)):
            return False
    return True


# ------------------------------------------------------------------------------------------------
# Helpers for the drop-in parity suites (test_parity_torch, test_errors, test_state_dict, ...).

#: The drop-in classes of the foundation issue, in torch's documentation order.
SCHEDULER_NAMES = (
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "PolynomialLR",
    "CosineAnnealingLR",
)

#: One ordinary configuration per class (keyword arguments), used where a test is about something
#: other than the arguments (state dicts, optimizers, warnings, ...). Lambdas are module-level
#: functions so that torch stores ``None`` for them in ``state_dict()``.
def _lam_warmup(e: int) -> float:
    return min(1.0, (e + 1) / 7) * 0.97**e


def _mul_decay(e: int) -> float:
    return 0.95 if e % 3 == 0 else 1.0


ORDINARY_KWARGS: dict[str, dict[str, Any]] = {
    "LambdaLR": {"lr_lambda": _lam_warmup},
    "MultiplicativeLR": {"lr_lambda": _mul_decay},
    "StepLR": {"step_size": 3, "gamma": 0.7},
    "MultiStepLR": {"milestones": [2, 5, 5, 9], "gamma": 0.3},
    "ConstantLR": {"factor": 0.7, "total_iters": 4},
    "LinearLR": {"start_factor": 0.1, "end_factor": 0.9, "total_iters": 8},
    "ExponentialLR": {"gamma": 0.93},
    "PolynomialLR": {"total_iters": 9, "power": 0.9},
    "CosineAnnealingLR": {"T_max": 7, "eta_min": 1e-4},
}


def torch_class(name: str) -> type:
    return getattr(torch.optim.lr_scheduler, name)


def fast_class(name: str) -> type:
    from fastlr import lr_scheduler as fls

    return getattr(fls, name)


def engine(sched: Any) -> Any:
    """The scheduler's C++ engine (``handled`` / ``deferred`` count updates done by it / by torch)."""
    return sched._fastlr_engine


def lr_key(xs: list[Any]) -> Any:
    """Bitwise identity of a list of lrs; fast for the common all-float and all-tensor cases."""
    if all(type(x) is float for x in xs):
        return struct.pack(f"<{len(xs)}d", *xs)
    if xs and all(type(x) is torch.Tensor for x in xs) and len({(x.dtype, x.shape) for x in xs}) == 1:
        t = torch.stack(xs).detach().cpu()
        return ("tensors", t.dtype, tuple(t.shape), t.numpy().tobytes())
    return bits(xs)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence warnings (the parity loops do not test them; test_behaviour does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def outcome(fn: Callable[[], Any]) -> BaseException | None:
    """Run ``fn``; return the exception it raised (or None)."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - every exception type is part of the behaviour compared
        return e
    return None


def assert_same_exception(te: BaseException | None, fe: BaseException | None, where: str = "") -> None:
    """fastlr raised exactly what torch raised (type and message), or neither raised."""
    assert type(fe) is type(te), f"{where}: torch raised {te!r}, fastlr raised {fe!r}"
    if te is not None:
        assert str(fe) == str(te), f"{where}: messages differ: torch {te!r}, fastlr {fe!r}"


def assert_same_state(t_sched: Any, f_sched: Any, where: str = "") -> None:
    """state_dict() keys (in order) and values equal, floats bitwise. Where torch's state_dict()
    itself raises (a corrupted scheduler), fastlr's must raise alike; the instance dicts are compared."""
    got: list[Any] = [None, None]
    te = outcome(lambda: got.__setitem__(0, t_sched.state_dict()))
    fe = outcome(lambda: got.__setitem__(1, f_sched.state_dict()))
    assert_same_exception(te, fe, f"{where}: state_dict()")
    if te is not None:
        skip = ("optimizer", "lr_lambdas")
        got = [{k: v for k, v in vars(s).items() if k not in skip} for s in (t_sched, f_sched)]
    sd1, sd2 = got
    assert list(sd1) == list(sd2), f"{where}: keys {list(sd1)} != {list(sd2)}"
    assert same_state(sd1, sd2), f"{where}: torch {sd1!r}\n != fastlr {sd2!r}"


def assert_same_lrs(t_sched: Any, f_sched: Any, t_opt: Any, f_opt: Any, where: str = "") -> None:
    a, b = t_sched.get_last_lr(), f_sched.get_last_lr()
    assert lr_key(a) == lr_key(b), f"{where}: get_last_lr torch {a!r} != fastlr {b!r}"
    ga, gb = lr_values(t_opt), lr_values(f_opt)
    assert lr_key(ga) == lr_key(gb), f"{where}: group lrs torch {ga!r} != fastlr {gb!r}"


def lockstep(
    t_sched: Any,
    f_sched: Any,
    t_opt: Any,
    f_opt: Any,
    n_steps: int,
    action: Callable[[Any, int], Any] = lambda s, k: s.step(),
    between: Callable[[int, Any], None] | None = None,
) -> tuple[int, BaseException | None]:
    """Apply ``action`` to both schedulers ``n_steps`` times, asserting bitwise-equal lrs after every
    step. If torch raises, fastlr must raise the same exception at the same step and be left in the
    same state; the run stops there. Returns (steps completed, torch's exception or None)."""
    with quiet():
        for k in range(n_steps):
            if between is not None:
                between(k, t_opt)
                between(k, f_opt)
            te = outcome(lambda: action(t_sched, k))
            fe = outcome(lambda: action(f_sched, k))
            assert_same_exception(te, fe, f"step {k + 1}")
            if te is not None:
                assert_same_state(t_sched, f_sched, f"after the exception at step {k + 1}")
                assert_same_lrs(t_sched, f_sched, t_opt, f_opt, f"after the exception at step {k + 1}")
                return k, te
            assert_same_lrs(t_sched, f_sched, t_opt, f_opt, f"step {k + 1}")
    return n_steps, None


def build_pair(name: str, make: Callable[[], Any], kwargs: Callable[[], dict[str, Any]] | dict[str, Any]) -> Any:
    """(torch scheduler, fastlr scheduler, torch optimizer, fastlr optimizer) built from the same
    arguments; asserts both constructions behave alike (same exception, or same lrs and state).
    ``kwargs`` may be a factory, for arguments (lambdas with state) that must not be shared."""
    kw = kwargs if callable(kwargs) else (lambda: kwargs)
    o1, o2 = make(), make()
    holder: dict[str, Any] = {}
    with quiet():
        te = outcome(lambda: holder.__setitem__("t", torch_class(name)(o1, **kw())))
        fe = outcome(lambda: holder.__setitem__("f", fast_class(name)(o2, **kw())))
    assert_same_exception(te, fe, "construction")
    if te is not None:
        assert bits(lr_values(o1)) == bits(lr_values(o2))
        return None, None, o1, o2
    s1, s2 = holder["t"], holder["f"]
    assert_same_lrs(s1, s2, o1, o2, "after construction")
    assert_same_state(s1, s2, "after construction")
    return s1, s2, o1, o2


def arg_id(v: Any) -> str:
    """A stable, short test-id fragment for an argument value (no memory addresses)."""
    if callable(v) and not isinstance(v, type):
        return "fn"
    if isinstance(v, (list, tuple)):
        inner = ",".join(arg_id(x) for x in v[:4]) + (",..." if len(v) > 4 else "")
        return f"[{inner}]" if isinstance(v, list) else f"({inner})"
    if isinstance(v, torch.Tensor):
        return f"tensor({v.item()!r})"
    return repr(v)


def kwargs_id(name: str, kwargs: dict[str, Any]) -> str:
    return name + "-" + (",".join(f"{k}={arg_id(v)}" for k, v in kwargs.items()) or "noargs")
