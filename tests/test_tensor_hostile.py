"""Tensor lrs under hostile edits: what a sanitizer build found in the tensor executor, and more, each
checked against torch's own scheduler on a twin optimizer (values, exceptions and state)."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from _helpers_more import Twin, make_opt  # noqa: E402


def _step_lr(mod: Any, opt: Any) -> Any:
    return mod.StepLR(opt, step_size=1, gamma=0.5)


@pytest.mark.parametrize("lr_kind", ["tensor64", "tensor32"])
@pytest.mark.parametrize("which", [0, 1, 2])
def test_packed_group_lr_set_to_none(lr_kind: str, which: int):
    """A packed group's lr replaced by None was taken for the group's packed tensor (its unpacked slot
    is None too), at buffer index -1: a heap overflow read. torch raises TypeError in get_lr."""
    tw = Twin(_step_lr, lambda: make_opt(3, lr_kind))
    tw.steps(2)

    def set_none(s: Any, o: Any) -> None:
        o.param_groups[which]["lr"] = None

    tw.do(set_none, state=False)
    for _ in range(2):
        tw.do(lambda s, o: s.step(), state=False)


def test_mixed_groups_after_a_float_step_with_more_groups():
    """Per-group scratch bytes left by an earlier float step with more groups were read as "momentum
    rewritten in place" by a tensor step without momentum: a null dereference."""

    def build(mod: Any, opt: Any) -> Any:
        return mod.ExponentialLR(opt, gamma=0.9)

    tw = Twin(build, lambda: make_opt(6, "float"))
    # Float steps after groups 4 and 5 got an equal new lr float: the engine recycles the previous
    # `_last_lr` float into those groups (its scratch flag for that is 2, which the tensor executor
    # reads as "momentum rewritten in place" at momentum holder 4 - 3 = 1 of a 3-group step).
    def renew(k: int, o: Any, s: Any) -> None:
        for g in o.param_groups[4:]:
            g["lr"] = g["lr"] * 1.0

    tw.steps(5, between=renew)

    def reshape(s: Any, o: Any) -> None:
        del o.param_groups[3:]  # group 0 keeps its float (and its memo entry): its flag byte is read
        o.param_groups[1]["lr"] = torch.tensor(0.05, dtype=torch.float64)
        o.param_groups[2]["lr"] = torch.tensor(0.04, dtype=torch.float64)
        s.base_lrs = s.base_lrs[:3]
        s._last_lr = s._last_lr[:3]

    tw.do(reshape, state=False)
    tw.steps(20)
    assert tw.sf._fastlr_engine.deferred == 0  # (the stale bytes also sent such steps to torch's code)
