"""Layer-wise lr decay as timm applies it (issue 13): ScheduledLR(..., lr_scale=True) and
get_scheduler(..., lr_scale=True) multiply each group's schedule by the group's "lr_scale"; without the
flag the key is ignored, as torch's schedulers ignore it. Checked against timm's own scheduler where
timm is installed (tests/_peers.py)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import fastlr
from fastlr import schedules as S
from fastlr.lr_scheduler import ScheduledLR

import _peers

SCALES = [0.75**3, 0.75**2, 0.75, 1.0]  # timm's param_groups_layer_decay: decay ** (num_layers - layer)


def _groups(base: float = 0.1, scales: list[float] = SCALES) -> torch.optim.Optimizer:
    ps = [torch.nn.Parameter(torch.zeros(2)) for _ in scales]
    return torch.optim.SGD([{"params": [p], "lr": base, "lr_scale": sc} for p, sc in zip(ps, scales)], lr=base)


def _run(opt: torch.optim.Optimizer, sched, n: int, *args) -> list[list[float]]:
    out = []
    for _ in range(n):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step(*args)
    return out


def test_each_group_is_scaled_by_its_lr_scale() -> None:
    opt = _groups()
    s = S.warmup(S.cosine(1.0, 90, end_value=0.01), 10)
    sched = ScheduledLR(opt, s, lr_scale=True)
    got = _run(opt, sched, 120)
    for t, row in enumerate(got):
        assert row == [0.1 * (s(t) * sc) for sc in SCALES], t
    assert sched.uses_fast_path  # a scaled schedule is still a plain program


def test_without_the_flag_lr_scale_is_ignored_as_torch_does() -> None:
    opt = _groups()
    s = S.cosine(1.0, 50)
    sched = ScheduledLR(opt, s)
    torch_opt = _groups()
    torch_sched = torch.optim.lr_scheduler.LambdaLR(torch_opt, lambda t: s(t))
    assert _run(opt, sched, 60) == _run(torch_opt, torch_sched, 60)


def test_get_scheduler_applies_lr_scale_to_the_transformers_multipliers() -> None:
    opt = _groups(base=3e-4)
    sched = fastlr.get_scheduler("cosine", opt, num_warmup_steps=10, num_training_steps=100, lr_scale=True)
    ref = S.from_name("cosine", 10, 100)
    for t, row in enumerate(_run(opt, sched, 110)):
        assert row == [3e-4 * (ref(t) * sc) for sc in SCALES]
    with pytest.raises(ValueError, match="lr_scale"):
        fastlr.get_scheduler("reduce_lr_on_plateau", _groups(), lr_scale=True)


def test_state_dict_round_trip_keeps_the_scaled_schedules() -> None:
    opt = _groups()
    sched = ScheduledLR(opt, S.linear(1.0, 0.0, 40), lr_scale=True)
    _run(opt, sched, 15)
    sd, osd = sched.state_dict(), opt.state_dict()
    opt2 = _groups(scales=[1.0, 1.0, 1.0, 1.0])  # the scales come back with the state, not the groups
    sched2 = ScheduledLR(opt2, S.linear(1.0, 0.0, 40))  # a resume: build, then load both states
    opt2.load_state_dict(osd)
    sched2.load_state_dict(sd)
    assert sched2.lr_scale and sched2.schedules == sched.schedules
    assert _run(opt, sched, 20) == _run(opt2, sched2, 20)


def test_bad_lr_scale_values_raise_clearly() -> None:
    with pytest.raises(TypeError, match=r"param_groups\[1\]\['lr_scale'\]"):
        ScheduledLR(_groups(scales=[1.0, "x"]), S.constant(1.0), lr_scale=True)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="finite"):
        ScheduledLR(_groups(scales=[1.0, math.nan]), S.constant(1.0), lr_scale=True)
    with pytest.raises(TypeError, match="lr_scale must be True or False"):
        ScheduledLR(_groups(), S.constant(1.0), lr_scale=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("t_initial,warmup", [(60, 0), (50, 10)])
def test_matches_timm_cosine_with_layer_decay(t_initial: int, warmup: int) -> None:
    timm = _peers.timm_scheduler()
    topt = _groups()
    tsched = timm.CosineLRScheduler(topt, t_initial=t_initial, lr_min=1e-4, warmup_t=warmup, warmup_lr_init=1e-5,
                                    warmup_prefix=True)
    want = []
    for t in range(t_initial + warmup + 10):
        tsched.step(t)
        want.append([g["lr"] for g in topt.param_groups])
    opt = _groups()
    body = S.warm_restarts(0.1, t_initial, 1e-4, cycle_limit=1)
    s = S.warmup(body, warmup, start_value=1e-5) if warmup else body
    sched = ScheduledLR(opt, s, mode="absolute", lr_scale=True)
    got = _run(opt, sched, t_initial + warmup + 10)
    for t, (a, b) in enumerate(zip(got, want)):
        assert a == pytest.approx(b, rel=4e-15, abs=1e-16), t  # (cos differs near its end: ulps of the peak)
