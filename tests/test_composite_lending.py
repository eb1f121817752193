"""SequentialLR and ChainedScheduler let their fastlr members reuse the previous step's objects (the
member's ``_last_lr`` list and the floats in it) although the composite holds them too, because the
composite replaces its own ``_last_lr`` right after. These tests hold on to every such object from
outside, as a user may, and check that nothing a user holds ever changes, and that every step is
bitwise torch's.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
torch = pytest.importorskip("torch")

from _helpers_more import Twin, make_opt


def _bits(xs: Any) -> list[bytes]:
    return [struct.pack("<d", x) for x in xs]


def _sequential(mod: Any, opt: torch.optim.Optimizer) -> Any:
    warm = mod.LinearLR(opt, start_factor=0.1, total_iters=4)
    decay = mod.CosineAnnealingLR(opt, T_max=50)
    tail = mod.ExponentialLR(opt, gamma=0.97)
    return mod.SequentialLR(opt, [warm, decay, tail], milestones=[4, 20])


def _chained(mod: Any, opt: torch.optim.Optimizer) -> Any:
    return mod.ChainedScheduler([mod.LinearLR(opt, start_factor=0.1, total_iters=9),
                                 mod.ExponentialLR(opt, gamma=0.97),
                                 mod.StepLR(opt, step_size=3, gamma=0.5)])


def _chained_lambda(mod: Any, opt: torch.optim.Optimizer) -> Any:
    return mod.ChainedScheduler([mod.ExponentialLR(opt, gamma=0.97),
                                 mod.LambdaLR(opt, lambda e: 1.0 / (1 + e))])


BUILDS = {"SequentialLR": _sequential, "ChainedScheduler": _chained, "ChainedScheduler+LambdaLR": _chained_lambda}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_held_objects_never_change(name: str) -> None:
    twin = Twin(BUILDS[name], lambda: make_opt(5))
    held: dict[int, list[tuple[list[Any], list[bytes]]]] = {}

    def between(k: int, opt: torch.optim.Optimizer, sched: Any) -> None:
        mine = held.setdefault(id(opt), [])
        if k in (3, 4, 10, 21):  # lists: the composite's, each member's; floats: the groups' lrs
            lists = [sched.get_last_lr()] + [m.get_last_lr() for m in sched._schedulers]
            lists.append([g["lr"] for g in opt.param_groups])
            mine.extend((lst, _bits(lst)) for lst in lists)
        if k in (6, 14, 25):  # drop some of them again, so that reuse resumes
            del mine[: len(mine) // 2]
        for lst, b in mine:
            assert _bits(lst) == b, f"step {k}: an object held outside the scheduler changed"

    twin.steps(30, between=between)
    # A member's first step is torch's (its order warning); every other step is the engine's.
    assert twin.sf._fastlr_engine.handled >= 30 - len(twin.sf._schedulers)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_member_edits_between_steps(name: str) -> None:
    """Group lrs set by hand and a member's list replaced: the next steps are still torch's."""
    twin = Twin(BUILDS[name], lambda: make_opt(4))

    def between(k: int, opt: torch.optim.Optimizer, sched: Any) -> None:
        if k == 5:
            opt.param_groups[1]["lr"] = 0.05
        if k == 8:
            sched._schedulers[0]._last_lr = list(sched._schedulers[0]._last_lr)
        if k == 12:
            sched._last_lr = list(sched._last_lr)

    twin.steps(25, between=between)


def test_chained_reuses_its_objects() -> None:
    """What the lending is for: a ChainedScheduler of fastlr members makes no float per step."""
    from fastlr import lr_scheduler as F

    opt = make_opt(6)
    s = F.ChainedScheduler([F.LinearLR(opt, start_factor=0.1, total_iters=100), F.ExponentialLR(opt, gamma=0.99)])
    for _ in range(3):
        s.step()
    ids = lambda: ([id(g["lr"]) for g in opt.param_groups], [id(x) for m in s._schedulers for x in m._last_lr],
                   id(s._last_lr))  # noqa: E731
    before = ids()
    for _ in range(5):
        s.step()
    assert ids() == before


def test_sequential_reuses_its_objects() -> None:
    from fastlr import lr_scheduler as F

    opt = make_opt(6)
    warm = F.LinearLR(opt, start_factor=0.1, total_iters=3)
    s = F.SequentialLR(opt, [warm, F.CosineAnnealingLR(opt, T_max=100)], milestones=[3])
    for _ in range(5):
        s.step()
    before = ([id(g["lr"]) for g in opt.param_groups], id(s._last_lr))
    for _ in range(5):
        s.step()
    assert ([id(g["lr"]) for g in opt.param_groups], id(s._last_lr)) == before
    assert s._last_lr is s._schedulers[1]._last_lr


def test_chained_fallback_mid_pass_and_odd_values() -> None:
    """A group the fused pass cannot take (an int lr, then a tensor-free odd value) makes the step go
    member by member, with torch's results; later steps fuse again."""
    twin = Twin(_chained, lambda: make_opt(4))

    def between(k: int, opt: torch.optim.Optimizer, sched: Any) -> None:
        if k == 5:
            opt.param_groups[3]["lr"] = 1  # an int
        if k == 9:
            opt.param_groups[0]["lr"] = True  # a bool: torch multiplies it like an int

    twin.steps(20, between=between)


def test_chained_respects_a_member_that_overrides_step() -> None:
    """A member whose class overrides step() is stepped through it (no fused pass skips it)."""
    from fastlr import lr_scheduler as F

    calls = []

    class Counting(F.ExponentialLR):
        def step(self, epoch: Any = None) -> None:
            calls.append(self.last_epoch)
            super().step(epoch)

    def build(mod: Any, opt: torch.optim.Optimizer) -> Any:
        exp = Counting(opt, gamma=0.9) if mod is F else mod.ExponentialLR(opt, gamma=0.9)
        return mod.ChainedScheduler([mod.LinearLR(opt, start_factor=0.2, total_iters=6), exp])

    twin = Twin(build, lambda: make_opt(3))
    before = len(calls)
    twin.steps(10)
    assert len(calls) - before == 10


def test_chained_members_on_different_optimizers() -> None:
    """Members re-pointed at another optimizer after construction: each steps its own groups."""
    def build(mod: Any, opt: torch.optim.Optimizer) -> Any:
        return mod.ChainedScheduler([mod.ExponentialLR(opt, gamma=0.9), mod.StepLR(opt, step_size=2, gamma=0.5)])

    twin = Twin(build, lambda: make_opt(3))
    other_t, other_f = make_opt(3), make_opt(3)
    twin.st._schedulers[1].optimizer = other_t
    twin.sf._schedulers[1].optimizer = other_f
    twin.steps(8)
    assert [g["lr"] for g in other_t.param_groups] == [g["lr"] for g in other_f.param_groups]


def test_chained_with_the_same_member_twice() -> None:
    """torch steps a member listed twice twice (counters and values); so does fastlr."""
    def build(mod: Any, opt: torch.optim.Optimizer) -> Any:
        exp = mod.ExponentialLR(opt, gamma=0.9)
        return mod.ChainedScheduler([exp, mod.StepLR(opt, step_size=2, gamma=0.5), exp])

    twin = Twin(build, lambda: make_opt(3))
    twin.steps(12)


def test_chained_fallback_after_new_floats_were_made() -> None:
    """The fused pass makes new floats where it cannot rewrite one in place (here: every group's lr
    is also held from outside); a group it cannot take after that (an int lr) makes it drop them all
    and step member by member. The next fused steps must not see any of them again."""
    twin = Twin(_chained, lambda: make_opt(6))
    held: list[Any] = []

    def between(k: int, opt: torch.optim.Optimizer, sched: Any) -> None:
        if k == 4:
            held.append([g["lr"] for g in opt.param_groups])  # every group float shared
            opt.param_groups[4]["lr"] = 2  # an int, after 4 groups of new floats
        if k == 5:
            held.clear()

    twin.steps(14, between=between)


def test_chained_fallback_leaks_nothing() -> None:
    """Repeated fused passes that make new floats and then fall back must free them all."""
    import gc
    import tracemalloc
    import warnings

    from fastlr import lr_scheduler as F

    opt = make_opt(6)
    s = _chained(F, opt)
    groups = opt.param_groups

    def cycle() -> None:
        held = [g["lr"] for g in groups]  # every group float shared: new floats are made
        old = groups[4]["lr"]
        groups[4]["lr"] = 2  # an int after 4 groups: the fused pass falls back
        s.step()
        groups[4]["lr"] = old
        del held
        s.step()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(20):
            cycle()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(300):
            cycle()
        gc.collect()
        grew = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
    assert grew < 4096, f"memory grew by {grew} bytes over 300 fallbacks"
