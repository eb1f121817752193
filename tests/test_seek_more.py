"""``seek(step)`` (a fastlr extension) on the second-issue classes: the state and lrs must be bit for
bit what torch reaches by calling ``step()`` until ``last_epoch == step``."""

from __future__ import annotations

from typing import Any, Callable

import pytest

pytest.importorskip("torch")
from _helpers_more import TORCH, deep_bits, group_view, make_opt

from fastlr import lr_scheduler as F

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

BUILDS: dict[str, tuple[Callable[[Any, Any], Any], str]] = {
    "CyclicLR-triangular2": (lambda m, o: m.CyclicLR(o, [0.01, 0.02, 0.03], 0.1, step_size_up=7, step_size_down=3,
                                                     mode="triangular2"), "SGD"),
    "CyclicLR-exp_range-Adam": (lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=7, mode="exp_range",
                                                        gamma=0.999), "Adam"),
    "CyclicLR-after-CosineAnnealingLR": (lambda m, o: (m.CosineAnnealingLR(o, 10),
                                                       m.CyclicLR(o, 0.004, 0.08, step_size_up=5))[1], "SGD"),
    "OneCycleLR": (lambda m, o: m.OneCycleLR(o, 0.1, total_steps=20_000, three_phase=True), "SGD"),
    "CosineAnnealingWarmRestarts": (lambda m, o: m.CosineAnnealingWarmRestarts(o, 3, 2, 1e-4), "SGD"),
    "SWALR": (lambda m, o: m.SWALR(o, [0.01, 0.02, 0.03], anneal_epochs=50), "SGD"),
    "SequentialLR": (lambda m, o: m.SequentialLR(o, [m.LinearLR(o, 0.1, total_iters=5), m.CyclicLR(o, 0.01, 0.1),
                                                     m.ExponentialLR(o, 0.999)], [5, 300]), "SGD"),
}


def stepped(name: str, k: int) -> tuple[Any, Any]:
    build, opt = BUILDS[name]
    o = make_opt(3, opt=opt)
    s = build(TORCH, o)
    for _ in range(k):
        s.step()
    return s, o


@pytest.mark.parametrize("targets", [[0], [1], [17], [4000], [9999], [30, 30, 2000]], ids=str)
@pytest.mark.parametrize("name", sorted(BUILDS))
def test_seek_forward_matches_stepping(name, targets):
    build, opt = BUILDS[name]
    o = make_opt(3, opt=opt)
    s = build(F, o)
    for t in targets:
        s.seek(t)
        s_t, o_t = stepped(name, t)
        assert group_view(o) == group_view(o_t), t
        assert deep_bits(s.state_dict()) == deep_bits(s_t.state_dict()), t
    for _ in range(50):  # and stepping on from there
        s.step()
        s_t.step()
    assert deep_bits(s.state_dict()) == deep_bits(s_t.state_dict())


@pytest.mark.parametrize("name", sorted(set(BUILDS) - {"SequentialLR"}))
def test_seek_backwards_restarts(name):
    build, opt = BUILDS[name]
    o = make_opt(3, opt=opt)
    s = build(F, o)
    s.seek(500)
    s.seek(40)
    s_t, o_t = stepped(name, 40)
    assert group_view(o) == group_view(o_t)
    assert deep_bits(s.state_dict()) == deep_bits(s_t.state_dict())


def test_sequential_seeks_forward_only():
    s = BUILDS["SequentialLR"][0](F, make_opt(3))
    s.seek(100)
    with pytest.raises(ValueError, match="forward"):
        s.seek(10)


def test_plateau_has_no_seek():
    with pytest.raises(TypeError):
        F.ReduceLROnPlateau(make_opt(3)).seek(3)


def test_chained_seek():
    o = make_opt(3)
    s = F.ChainedScheduler([F.ConstantLR(o, 0.5, 9), F.ExponentialLR(o, 0.999)])
    try:
        s.seek(30)
    except (TypeError, ValueError):
        return  # a clear refusal would be acceptable too
    o_t = make_opt(3)
    s_t = TORCH.ChainedScheduler([TORCH.ConstantLR(o_t, 0.5, 9), TORCH.ExponentialLR(o_t, 0.999)])
    for _ in range(30):
        s_t.step()
    assert group_view(o) == group_view(o_t)


@pytest.mark.parametrize("name, build, target", [
    ("OneCycleLR", lambda m, o: m.OneCycleLR(o, 0.1, total_steps=100), 105),
    ("CyclicLR", lambda m, o: m.CyclicLR(o, [0.01, 0.02, 0.03], 0.1, step_size_up=1, step_size_down=2,
                                         mode="triangular2"), 3100),
], ids=["OneCycleLR", "CyclicLR"])
def test_seek_to_a_raising_step_stops_at_the_step_before(name, build, target):
    """seek's docstring: 'A step at which torch would raise raises here, with the scheduler left at the
    step before.' torch's own stepping raises first at some step r <= target."""
    o_t = make_opt(3)
    s_t = build(TORCH, o_t)
    raised_at = None
    while raised_at is None:
        before = (deep_bits(s_t.state_dict()), group_view(o_t))
        try:
            s_t.step()
        except (ValueError, OverflowError) as e:
            raised_at, exc_type = s_t.last_epoch, type(e)
    o = make_opt(3)
    s = build(F, o)
    with pytest.raises(exc_type):
        s.seek(target)
    assert (deep_bits(s.state_dict()), group_view(o)) == before
