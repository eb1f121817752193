"""fastlr.schedules.switch (issue 14 part 3): a metric-triggered phase change, against a reference
computed by hand from its definition; its resume; local steps inside join/warmup; only an active
switch sees a metric; composition with plateau; ScheduledLR.step(metrics) feeding it; and the
ResNet-110 recipe on real data (scikit-learn's digits)."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest

from fastlr import schedules as S


def ref_switch(first, then, k: int | None, shift: bool, t: float) -> float:
    if k is None or t < k:
        return first(t)
    return then(t - k) if shift else then(t)


@pytest.mark.parametrize("shift", [False, True])
@pytest.mark.parametrize("mode", ["below", "above"])
def test_switches_the_step_after_the_crossing(shift: bool, mode: str) -> None:
    first, then = S.linear(0.0, 1.0, 50), S.cosine(1.0, 200, 0.1)
    s = S.switch(first, then, threshold=0.5, mode=mode, shift=shift)
    metrics = [0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.3, 0.2] if mode == "below" else [0.1, 0.3, 0.5, 0.6, 0.7, 0.1]
    crossing = next(i for i, m in enumerate(metrics) if (m < 0.5 if mode == "below" else m > 0.5))
    for step, m in enumerate(metrics):
        assert s(step) == ref_switch(first, then, None if step <= crossing else crossing + 1, shift, step)
        s.observe(m, step)
    k = crossing + 1
    assert s.switched_at == k and s.boundary == k
    ts = np.arange(0, 400)
    want = [ref_switch(first, then, k, shift, t) for t in ts]
    assert s.at(ts).tolist() == want
    assert s(k - 1) == first(k - 1) and s(k) == (then(0) if shift else then(k))
    # the threshold itself is not a crossing (strict)
    e = S.switch(first, then, threshold=0.5, mode=mode)
    e.observe(0.5, 3)
    assert e.switched_at is None


def test_max_steps_switches_when_no_crossing_came_first() -> None:
    s = S.switch(S.constant(1.0), S.constant(2.0), threshold=0.0, max_steps=30, shift=True)
    assert [s(29), s(30)] == [1.0, 2.0] and s.boundary == 30 and s.switched_at is None
    s.observe(-1.0, 40)  # after max_steps: nothing changes
    assert s.switched_at is None and s.boundary == 30
    s.observe(-1.0, 9)  # a crossing before max_steps wins
    assert s.boundary == 10 and s(10) == 2.0 and s(9) == 1.0
    s.observe(-5.0, 3)  # once switched, later observations change nothing
    assert s.boundary == 10
    assert S.switch(S.constant(1.0), S.linear(2.0, 0.0, 10), threshold=0.0, max_steps=5, shift=True).horizon == 15
    assert S.switch(S.constant(1.0), S.constant(2.0), threshold=0.0).horizon is None


def test_local_steps_inside_join_and_warmup_and_only_active_switches_see_metrics() -> None:
    inner = S.switch(S.constant(1.0), S.linear(1.0, 0.0, 100), threshold=0.5, shift=True)
    s = S.warmup(inner, 10)
    s.observe(0.1, 5)  # during the ramp: the switch is not evaluated, so it does not see the metric
    assert inner.switched_at is None
    s.observe(0.1, 15)  # global 15 is the switch's local 5
    assert inner.switched_at == 6
    assert [s(15), s(16), s(17), s(116)] == [1.0, 1.0, 0.99, 0.0]
    a = S.switch(S.constant(1.0), S.constant(0.5), threshold=1.0)
    b = S.switch(S.constant(3.0), S.constant(0.25), threshold=1.0)
    j = S.join([a, b], [100])
    j.observe(0.0, 50)  # only the first phase runs at 50
    assert a.switched_at == 51 and b.switched_at is None
    j.observe(0.0, 130)  # the second phase's local 30
    assert b.switched_at == 31 and j(130) == 3.0 and j(131) == 0.25 and j(60) == 0.5


def test_composes_with_plateau() -> None:
    pl = S.plateau(1.0, patience=0, factor=0.5)
    s = S.switch(S.constant(0.1), pl, threshold=0.8)
    for step, m in enumerate([0.9, 0.85, 0.7, 0.6, 0.6, 0.6]):
        s.observe(m, step)
    # switched at 3 (0.7 observed at 2); the plateau saw 0.6 (new best), 0.6 (bad: halve), 0.6 (halve)
    assert s.switched_at == 3 and pl.value == 0.25 and s(10) == 0.25 and s(2) == 0.1
    assert {type(n).__name__ for n in s.plateaus} == {"Switch", "Plateau"}


def test_round_trip_records_the_state_and_resumes_at_the_same_step() -> None:
    s = S.switch(S.linear(0.0, 1.0, 20), S.exponential(1.0, 0.99), threshold=2.0, mode="above", max_steps=500)
    for step in range(0, 40):
        s.observe(1.0 + step / 10, step)  # crosses 2.0 at step 11
    assert s.switched_at == 12
    back = S.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s and back.switched_at == 12 and back.table(600).tolist() == s.table(600).tolist()
    assert pickle.loads(pickle.dumps(s)).switched_at == 12
    fresh = S.from_dict({**s.to_dict(), "state": {"switched_at": None}})
    assert fresh.switched_at is None and fresh(100) == s.first(100)


def test_errors() -> None:
    s = S.switch(S.constant(1.0), S.constant(2.0), threshold=1.0)
    with pytest.raises(TypeError, match="step"):
        s.observe(0.5)
    with pytest.raises(TypeError, match="needs the step"):
        S.join([s, S.constant(1.0)], [10]).observe(0.5)
    with pytest.raises(TypeError, match="metric"):
        s.observe("0.5", 3)
    with pytest.raises(ValueError, match="mode"):
        S.switch(S.constant(1.0), S.constant(2.0), threshold=1.0, mode="under")
    with pytest.raises(TypeError, match="then"):
        S.switch(S.constant(1.0), 2.0, threshold=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_steps"):
        S.switch(S.constant(1.0), S.constant(2.0), threshold=1.0, max_steps=-1)
    with pytest.raises(ValueError, match="unknown switch state"):
        S.from_dict({**s.to_dict(), "state": {"k": 3}})


def test_scheduled_lr_feeds_it_and_resumes() -> None:
    torch = pytest.importorskip("torch")
    from fastlr.lr_scheduler import ScheduledLR

    def make() -> tuple:
        p = torch.nn.Parameter(torch.zeros(2))
        opt = torch.optim.SGD([p], lr=1.0)
        return opt, ScheduledLR(opt, S.switch(S.constant(0.01), S.multistep(0.1, [30, 45]), threshold=0.8))

    opt, sched = make()
    lrs = []
    errs = [0.9] * 16 + [0.75] + [0.5] * 43  # below 0.8 first at i = 16
    for i, e in enumerate(errs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step(e)
        if i == 25:
            saved = sched.state_dict()
    # step(e) after the optimizer step at t feeds the metric measured at t: the crossing at t = 16
    # switches from 17 on (the lr of step 17 is the first 0.1), then multistep's own decays
    want = [0.01 if t < 17 else (0.1 if t < 30 else (0.1 * 0.1 if t < 45 else 0.1 * 0.1 * 0.1)) for t in range(60)]
    assert np.allclose(lrs, want, rtol=1e-15, atol=0) and lrs[16] == 0.01 and lrs[17] == 0.1
    opt2, sched2 = make()
    sched2.load_state_dict(saved)
    for e in errs[26:]:
        opt2.step()
        sched2.step(e)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_resnet_recipe_on_real_data() -> None:
    """He et al.'s ResNet-110 warm-up: 0.01 until the training error is below 80%, then 0.1 (with
    the 32k/48k decays), on scikit-learn's digits with a small MLP: the switch happens the step after
    the first training error below 0.8, and the lr follows the recipe exactly."""
    torch = pytest.importorskip("torch")
    datasets = pytest.importorskip("sklearn.datasets")
    from fastlr.lr_scheduler import ScheduledLR

    X, y = datasets.load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
    recipe = S.switch(S.constant(0.01), S.multistep(0.1, [32000, 48000]), threshold=0.8)
    sched = ScheduledLR(opt, recipe)
    g = torch.Generator().manual_seed(1)
    errors, lrs = [], []
    for t in range(300):
        idx = torch.randint(0, len(X), (64,), generator=g)
        out = model(X[idx])
        loss = torch.nn.functional.cross_entropy(out, y[idx])
        opt.zero_grad()
        loss.backward()
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        err = (out.argmax(1) != y[idx]).float().mean().item()
        errors.append(err)
        sched.step(err)
    first_below = next(t for t, e in enumerate(errors) if e < 0.8)
    assert 0 < first_below < 250, first_below  # the run does start above 80% error and gets below it
    assert recipe.switched_at == first_below + 1
    assert lrs[: first_below + 1] == [0.01] * (first_below + 1)  # the lr of the step that measured it, too
    assert all(lr == 0.1 for lr in lrs[first_below + 1 :])
    assert math.isclose(errors[-1], 0.0, abs_tol=0.5)  # it trained
