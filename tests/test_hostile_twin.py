"""The hostile twin: hypothesis builds two identical optimizers, torch's scheduler on one and fastlr's
on the other, and applies one random sequence of actions to both -- steps, and mutations of the param
groups between steps and from inside the lambdas during a step -- then compares, after every action,
everything observable: the outcome (exception type and message, or none), every group's keys and
values (bitwise, types included), get_last_lr() and state_dict() (or the exception they raise).

Mutations: lrs of every type (float, float subclass, int, numpy scalar, 0-d and 1-d tensors, None),
deleted keys, groups added or removed, lr objects shared between groups, a new param_groups list, a
state_dict round trip, and lambdas that step the scheduler again, set last_epoch, append to
lr_lambdas, remove a param group or raise.

CI runs a bounded number of examples (derandomized under CI=1, see conftest.py);
FASTLR_FUZZ_EXAMPLES=2000 searches deeper.
"""

from __future__ import annotations

import math
import os
import struct
from typing import Any

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from _every_class import _METRICS, EVERY_CLASS  # noqa: E402
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastlr.lr_scheduler as F  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")

EXAMPLES = int(os.environ.get("FASTLR_FUZZ_EXAMPLES", "40"))
N_GROUPS = 4  # (ReduceLROnPlateau's builder takes a min_lr per group)


class FloatSub(float):
    """A float subclass (torch's arithmetic returns plain floats from it)."""


VALUE_KINDS = ["float", "float_sub", "int", "numpy", "t64", "t1d", "none"]


def make_value(kind: str, x: float) -> Any:
    if kind == "float":
        return float(x)
    if kind == "float_sub":
        return FloatSub(x)
    if kind == "int":
        return max(1, int(x * 10))
    if kind == "numpy":
        return np.float64(x)
    if kind == "t64":
        return torch.tensor(x, dtype=torch.float64)
    if kind == "t1d":
        return torch.tensor([x, x / 2], dtype=torch.float64)
    return None


def make_opt(kinds: list[str]) -> Any:
    groups = []
    for i, k in enumerate(kinds):
        groups.append({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": make_value(k, 0.1 * 0.7**i + 1e-3 * i)})
    return torch.optim.SGD(groups, momentum=0.9)


# ------------------------------------------------------------------------------------------------
# What is compared


def bits(x: Any) -> Any:
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return (type(x).__name__, x)
    if isinstance(x, float):
        return (type(x).__name__, struct.pack("<d", x))
    if isinstance(x, int):
        return ("int", x)
    if isinstance(x, np.generic):
        return ("np", str(x.dtype), x.tobytes())
    if isinstance(x, torch.Tensor):
        t = x.detach()
        return ("T", str(t.dtype), tuple(t.shape), t.cpu().contiguous().view(-1).numpy().tobytes())
    if isinstance(x, dict):
        return ("dict", tuple((k, bits(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, tuple(bits(v) for v in x))
    if callable(x):
        return ("callable",)
    return ("obj", type(x).__qualname__, repr(x))


def outcome(fn: Any) -> tuple[Any, Any]:
    try:
        r = fn()
    except Exception as e:  # noqa: BLE001 - the exception is what is compared
        return ("raised", type(e).__name__, str(e)), None
    return ("ok",), r


def observe(s: Any, o: Any) -> Any:
    groups = [
        (tuple(k for k in g), tuple(bits(v) for k, v in g.items() if k != "params")) if isinstance(g, dict) else bits(g)
        for g in o.param_groups
    ]
    last = outcome(lambda: s.get_last_lr())
    sd = outcome(lambda: s.state_dict())
    return groups, (last[0], bits(last[1])), (sd[0], bits(sd[1]))


# ------------------------------------------------------------------------------------------------
# The lambdas, driven by a plan the example draws: at call `when` (counting calls), do `what`.


class Plan:
    def __init__(self, events: list[tuple[int, str]]) -> None:
        self.events = dict(events)
        self.calls = 0
        self.sched: Any = None
        self.opt: Any = None

    def lam(self, base: float) -> Any:
        def f(e: int) -> float:
            self.calls += 1
            what = self.events.pop(self.calls, None)
            if what == "step":
                self.sched.step()
            elif what == "set_epoch":
                self.sched.last_epoch = 40
            elif what == "append_lambda":
                self.sched.lr_lambdas.append(lambda e: 1.0)
            elif what == "pop_group" and len(self.opt.param_groups) > 1:
                self.opt.param_groups.pop()
            elif what == "raise":
                raise ValueError("a lambda failed")
            elif what == "set_lr":
                self.opt.param_groups[0]["lr"] = 0.0123
            return base**e

        return f


LAMBDA_EVENTS = ["step", "set_epoch", "append_lambda", "pop_group", "raise", "set_lr"]


def build(name: str, mod: Any, o: Any, plan: Plan | None) -> Any:
    if plan is not None and name in ("LambdaLR", "MultiplicativeLR"):
        lams = [plan.lam(0.97 - 0.01 * i) for i in range(N_GROUPS)]
        s = getattr(mod, name)(o, lr_lambda=lams)
        plan.sched, plan.opt = s, o
        return s
    return EVERY_CLASS[name](mod, o)


# ------------------------------------------------------------------------------------------------
# Actions (applied to both sides; values are made afresh for each side)

actions = st.one_of(
    st.just(("step",)),
    st.just(("step",)),
    st.just(("step",)),
    st.tuples(st.just("set"), st.integers(0, N_GROUPS - 1), st.sampled_from(VALUE_KINDS), st.floats(0.001, 0.5)),
    st.tuples(st.just("del"), st.integers(0, N_GROUPS - 1), st.sampled_from(["lr", "initial_lr", "momentum"])),
    st.tuples(st.just("share"), st.integers(0, N_GROUPS - 1), st.integers(0, N_GROUPS - 1)),
    st.tuples(st.just("add_group"), st.sampled_from(["float", "t64"])),
    st.just(("pop_group",)),
    st.just(("new_list",)),
    st.just(("state_roundtrip",)),
)


def apply(action: tuple[Any, ...], name: str, s: Any, o: Any, k: int) -> None:
    kind = action[0]
    if kind == "step":
        if name == "ReduceLROnPlateau":
            s.step(_METRICS[k % len(_METRICS)])
        else:
            s.step()
    elif kind == "set":
        _, i, vk, x = action
        if i < len(o.param_groups):
            o.param_groups[i]["lr"] = make_value(vk, x)
    elif kind == "del":
        _, i, key = action
        if i < len(o.param_groups):
            o.param_groups[i].pop(key, None)
    elif kind == "share":
        _, i, j = action
        g = o.param_groups
        if i < len(g) and j < len(g) and "lr" in g[i]:
            g[j]["lr"] = g[i]["lr"]
    elif kind == "add_group":
        o.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": make_value(action[1], 0.05)})
    elif kind == "pop_group":
        if len(o.param_groups) > 1:
            o.param_groups.pop()
    elif kind == "new_list":
        o.param_groups = list(o.param_groups)
    elif kind == "state_roundtrip":
        s.load_state_dict(s.state_dict())


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    name=st.sampled_from(sorted(EVERY_CLASS)),
    kinds=st.lists(st.sampled_from(["float", "float", "t64", "t64", "int", "numpy"]), min_size=N_GROUPS, max_size=N_GROUPS),
    events=st.lists(st.tuples(st.integers(1, 40), st.sampled_from(LAMBDA_EVENTS)), max_size=3),
    script=st.lists(actions, min_size=1, max_size=25),
)
def test_hostile_twin(name: str, kinds: list[str], events: list[tuple[int, str]], script: list[Any]) -> None:
    run_twin(name, kinds, events, script, _TorchNS, F)


def run_twin(name: str, kinds: list[str], events: list[tuple[int, str]], script: list[Any],
             torch_side: Any, fast_side: Any) -> None:
    """One hostile-twin example: `torch_side` and `fast_side` give the classes by name."""
    sides = []
    for m in (torch_side, fast_side):
        o = make_opt(kinds)
        plan = Plan(list(events))
        got = outcome(lambda: build(name, m, o, plan))
        sides.append((got, o))
    (t_out, o_t), (f_out, o_f) = sides
    assert t_out[0] == f_out[0], f"construction: torch {t_out[0]}, fastlr {f_out[0]}"
    event(f"construction {t_out[0][0]}")
    if t_out[0][0] != "ok":
        return
    s_t, s_f = t_out[1], f_out[1]
    assert observe(s_t, o_t) == observe(s_f, o_f), "after construction"
    for k, action in enumerate(script):
        a = outcome(lambda: apply(action, name, s_t, o_t, k))
        b = outcome(lambda: apply(action, name, s_f, o_f, k))
        event(f"{action[0]}: {a[0][0]}")
        assert a[0] == b[0], f"action {k} {action}: torch {a[0]}, fastlr {b[0]} (script {script[: k + 1]})"
        assert observe(s_t, o_t) == observe(s_f, o_f), f"after action {k} {action} (script {script[: k + 1]})"


class _TorchNSType:
    def __getattr__(self, name: str) -> Any:
        if name == "SWALR":
            return torch.optim.swa_utils.SWALR
        return getattr(torch.optim.lr_scheduler, name)


_TorchNS = _TorchNSType()


def test_the_fuzz_can_fail() -> None:
    """The comparison sees a difference when there is one (a planted change of one lr on one side)."""
    o_t, o_f = make_opt(["float"] * N_GROUPS), make_opt(["float"] * N_GROUPS)
    s_t, s_f = EVERY_CLASS["StepLR"](_TorchNS, o_t), EVERY_CLASS["StepLR"](F, o_f)
    assert observe(s_t, o_t) == observe(s_f, o_f)
    o_f.param_groups[2]["lr"] = math.nextafter(o_f.param_groups[2]["lr"], 1.0)
    assert observe(s_t, o_t) != observe(s_f, o_f)
