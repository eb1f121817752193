"""``seek(k)`` for the classes test_seek_more.py does not cover (the decays, CosineAnnealingLR and the
lambda classes), against torch stepping its own scheduler to ``last_epoch == k``: every group's lr and
the whole state_dict, bit for bit, at random k (past each class's horizon too), forwards and back,
float and tensor lrs, and stepping on from there."""

from __future__ import annotations

from typing import Any, Callable

import pytest

pytest.importorskip("torch")
from _helpers_more import TORCH, deep_bits, group_view, make_opt  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fastlr import lr_scheduler as F  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _lam(e: int) -> float:
    return 1.0 / (1.0 + 0.05 * e)


def _mul(e: int) -> float:
    return 0.999 if e % 4 else 0.97


#: name -> (builder, horizon: where the schedule's last change happens)
BUILDS: dict[str, tuple[Callable[[Any, Any], Any], int]] = {
    "StepLR": (lambda m, o: m.StepLR(o, step_size=7, gamma=0.6), 100),
    "MultiStepLR": (lambda m, o: m.MultiStepLR(o, milestones=[5, 20, 20, 61], gamma=0.5), 61),
    "ConstantLR": (lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=33), 33),
    "LinearLR": (lambda m, o: m.LinearLR(o, start_factor=0.05, end_factor=0.8, total_iters=77), 77),
    "ExponentialLR": (lambda m, o: m.ExponentialLR(o, gamma=0.991), 300),
    "PolynomialLR": (lambda m, o: m.PolynomialLR(o, total_iters=90, power=2.5), 90),
    "CosineAnnealingLR": (lambda m, o: m.CosineAnnealingLR(o, T_max=64, eta_min=3e-4), 256),
    "LambdaLR": (lambda m, o: m.LambdaLR(o, lr_lambda=_lam), 100),
    "MultiplicativeLR": (lambda m, o: m.MultiplicativeLR(o, lr_lambda=_mul), 100),
}


def torch_at(name: str, k: int, lr_kind: str) -> tuple[Any, Any]:
    o = make_opt(3, lr_kind)
    s = BUILDS[name][0](TORCH, o)
    for _ in range(k):
        s.step()
    return s, o


def same(fs: Any, fo: Any, ts: Any, to: Any, where: str) -> None:
    assert group_view(fo) == group_view(to), where
    assert deep_bits(fs.state_dict()) == deep_bits(ts.state_dict()), where


@settings(max_examples=25, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("lr_kind", ["float", "tensor64"])
@pytest.mark.parametrize("name", list(BUILDS))
def test_seek_matches_torch_stepping(name: str, lr_kind: str, data: Any) -> None:
    horizon = BUILDS[name][1]
    targets = data.draw(st.lists(st.integers(0, 3 * horizon), min_size=1, max_size=3), label="targets")
    o = make_opt(3, lr_kind)
    s = BUILDS[name][0](F, o)
    for k in targets:  # forwards and backwards (a backward seek restarts from initial_lr)
        s.seek(k)
        ts, to = torch_at(name, k, lr_kind)
        same(s, o, ts, to, f"seek({k}) after {targets}")
    for j in range(5):  # stepping on from there
        s.step()
        ts.step()
        same(s, o, ts, to, f"step {j} after seek({targets[-1]})")
    if lr_kind == "float" and name not in ("LambdaLR", "MultiplicativeLR"):
        # the decays' replay runs in C++: the engine did the work, torch's code did not
        assert s._fastlr_engine.deferred == 0


@pytest.mark.parametrize("name", list(BUILDS))
def test_seek_far_past_the_horizon(name: str) -> None:
    """10,000 steps ahead in one call equals 10,000 of torch's steps (the chainable classes replay the
    recurrence: drift would show, a closed form would differ in the last bits)."""
    o = make_opt(3)
    s = BUILDS[name][0](F, o)
    s.seek(10_000)
    ts, to = torch_at(name, 10_000, "float")
    same(s, o, ts, to, "seek(10000)")
