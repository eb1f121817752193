"""Hugging Face's named schedules against their published formulas, fastlr.get_scheduler, and
ScheduledLR driving torch optimizers.

The references below are transcribed from transformers.optimization's lambdas (transformers is not
installed here), as plain Python on the step.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlr
from fastlr import schedules as S

torch = pytest.importorskip("torch")


# ------------------------------------------------------------------------------------------------
# Hugging Face reference lambdas (multipliers of the initial lr)


def hf_linear(step, W, T):
    if step < W:
        return float(step) / float(max(1, W))
    return max(0.0, float(T - step) / float(max(1, T - W)))


def hf_cosine(step, W, T, num_cycles=0.5):
    if step < W:
        return float(step) / float(max(1, W))
    progress = float(step - W) / float(max(1, T - W))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))


def hf_cosine_restarts(step, W, T, num_cycles=1):
    if step < W:
        return float(step) / float(max(1, W))
    progress = float(step - W) / float(max(1, T - W))
    if progress >= 1.0:
        return 0.0
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(num_cycles) * progress) % 1.0))))


def hf_polynomial(step, W, T, lr_init, lr_end=1e-7, power=1.0):
    if step < W:
        return float(step) / float(max(1, W))
    if step > T:
        return lr_end / lr_init
    lr_range = lr_init - lr_end
    decay_steps = T - W
    pct_remaining = 1 - (step - W) / decay_steps
    decay = lr_range * pct_remaining**power + lr_end
    return decay / lr_init


def hf_constant_with_warmup(step, W):
    if step < W:
        return float(step) / float(max(1.0, W))
    return 1.0


def hf_inverse_sqrt(step, W, timescale=None):
    if timescale is None:
        timescale = W or 10_000
    if step < W:
        return float(step) / float(max(1, W))
    shift = timescale - W
    return 1.0 / math.sqrt((step + shift) / timescale)


def hf_cosine_min_lr(step, W, T, num_cycles=0.5, min_lr_rate=0.0):
    if step < W:
        return float(step) / float(max(1, W))
    progress = float(step - W) / float(max(1, T - W))
    factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    factor = factor * (1 - min_lr_rate) + min_lr_rate
    return max(0, factor)


def hf_wsd(step, W, S_, D, warmup_type="linear", decay_type="cosine", min_lr_ratio=0.0, num_cycles=0.5):
    if step < W:
        progress = float(step) / float(max(1, W))
        if warmup_type == "linear":
            factor = progress
        elif warmup_type == "cosine":
            factor = 0.5 * (1.0 - math.cos(math.pi * progress))
        else:
            factor = 1.0 - math.sqrt(1.0 - progress)
        factor = factor * (1.0 - min_lr_ratio) + min_lr_ratio
        return max(0.0, factor)
    if step < W + S_:
        return 1.0
    if step < W + S_ + D:
        progress = float(step - W - S_) / float(max(1, D))
        if decay_type == "linear":
            factor = 1.0 - progress
        elif decay_type == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
        else:
            factor = 1.0 - math.sqrt(progress)
        factor = factor * (1.0 - min_lr_ratio) + min_lr_ratio
        return max(0.0, factor)
    return min_lr_ratio


def steps_for(W, T, extra=40):
    return list(range(0, max(W, T) + extra))


def assert_matches(s, ref, steps, grow=False):
    """Equal to a few ulps. With grow, the reference's math.cos(pi * x) loses accuracy as x grows
    (fastlr reduces x exactly), so the absolute tolerance grows with the step."""
    t = np.array(steps, dtype=float)
    got = s.at(t)
    want = np.array([ref(x) for x in steps])
    tol = 2e-14 * np.abs(want) + (1e-15 * (1 + t) if grow else 2e-16)
    bad = np.abs(got - want) > tol
    assert not bad.any(), f"steps {t[bad][:5]}: fastlr {got[bad][:5]} != reference {want[bad][:5]}"


W_ = st.integers(0, 60)
T_ = st.integers(0, 300)


@settings(max_examples=50, deadline=None)
@given(W=W_, T=T_)
def test_hf_linear(W, T):
    assert_matches(S.from_name("linear", W, T), lambda t: hf_linear(t, W, T), steps_for(W, T))


@settings(max_examples=50, deadline=None)
@given(W=W_, T=T_, c=st.sampled_from([0.5, 0.25, 1.0, 2.0, 0.7]))
def test_hf_cosine(W, T, c):
    assert_matches(S.from_name("cosine", W, T, num_cycles=c), lambda t: hf_cosine(t, W, T, c), steps_for(W, T, 200), True)


@settings(max_examples=50, deadline=None)
@given(W=W_, T=T_, c=st.sampled_from([1, 2, 3, 5, 0.5, 1.5]))
def test_hf_cosine_with_restarts(W, T, c):
    s = S.from_name("cosine_with_restarts", W, T, num_cycles=c)
    assert_matches(s, lambda t: hf_cosine_restarts(t, W, T, c), steps_for(W, T), True)


@settings(max_examples=50, deadline=None)
@given(W=W_, T=st.integers(1, 300), power=st.sampled_from([1.0, 2.0, 0.5]), lr=st.sampled_from([1e-3, 0.1, 3e-4]))
def test_hf_polynomial(W, T, power, lr):
    if T <= W:
        T = W + 1  # transformers divides by T - W at step W
    s = S.from_name("polynomial", W, T, power=power, lr_init=lr, lr_end=1e-7)
    assert_matches(s, lambda t: hf_polynomial(t, W, T, lr, 1e-7, power), steps_for(W, T))


def test_hf_polynomial_validation():
    with pytest.raises(ValueError, match="must be smaller than initial lr"):
        S.from_name("polynomial", 0, 10, lr_init=1e-7, lr_end=1e-7)
    with pytest.raises(ValueError, match="lr_init"):
        S.from_name("polynomial", 0, 10)


@settings(max_examples=30, deadline=None)
@given(W=W_)
def test_hf_constant_and_constant_with_warmup(W):
    assert_matches(S.from_name("constant"), lambda t: 1.0, steps_for(W, 10))
    assert_matches(S.from_name("constant_with_warmup", W), lambda t: hf_constant_with_warmup(t, W), steps_for(W, 10))


@settings(max_examples=40, deadline=None)
@given(W=W_, ts=st.one_of(st.none(), st.integers(1, 20000)))
def test_hf_inverse_sqrt(W, ts):
    s = S.from_name("inverse_sqrt", W, timescale=ts)
    assert_matches(s, lambda t: hf_inverse_sqrt(t, W, ts), steps_for(W, 400))


@settings(max_examples=40, deadline=None)
@given(W=W_, T=T_, c=st.sampled_from([0.5, 1.0]), r=st.floats(0, 1))
def test_hf_cosine_with_min_lr(W, T, c, r):
    s = S.from_name("cosine_with_min_lr", W, T, num_cycles=c, min_lr_rate=r)
    assert_matches(s, lambda t: hf_cosine_min_lr(t, W, T, c, r), steps_for(W, T, 100), True)
    s2 = S.from_name("cosine_with_min_lr", W, T, num_cycles=c, min_lr=r * 1e-3, lr_init=1e-3)
    assert_matches(s2, lambda t: hf_cosine_min_lr(t, W, T, c, r * 1e-3 / 1e-3), steps_for(W, T), True)
    with pytest.raises(ValueError, match="Only one"):
        S.from_name("cosine_with_min_lr", W, T, min_lr=1.0, min_lr_rate=0.1)
    with pytest.raises(ValueError, match="One of min_lr"):
        S.from_name("cosine_with_min_lr", W, T)


@settings(max_examples=60, deadline=None)
@given(
    W=W_,
    S_=st.integers(0, 100),
    D=st.integers(0, 100),
    wt=st.sampled_from(["linear", "cosine", "1-sqrt"]),
    dt=st.sampled_from(["linear", "cosine", "1-sqrt"]),
    r=st.sampled_from([0.0, 0.1]),
    by_total=st.booleans(),
)
def test_hf_warmup_stable_decay(W, S_, D, wt, dt, r, by_total):
    kw = dict(num_decay_steps=D, warmup_type=wt, decay_type=dt, min_lr_ratio=r)
    if by_total:
        s = S.from_name("warmup_stable_decay", W, W + S_ + D, **kw)
    else:
        s = S.from_name("warmup_stable_decay", W, num_stable_steps=S_, **kw)
    assert_matches(s, lambda t: hf_wsd(t, W, S_, D, wt, dt, r), steps_for(W, W + S_ + D))


def test_hf_wsd_errors():
    with pytest.raises(ValueError, match="Either num_training_steps or num_stable_steps"):
        S.from_name("warmup_stable_decay", 10, num_decay_steps=5)
    with pytest.raises(ValueError, match="requires `num_decay_steps`"):
        S.from_name("warmup_stable_decay", 10, 100)
    with pytest.raises(ValueError, match="Unknown decay type"):
        S.from_name("warmup_stable_decay", 10, 100, num_decay_steps=5, decay_type="exp")
    with pytest.warns(UserWarning, match="num_stable_steps will be used"):
        S.from_name("warmup_stable_decay", 10, 100, num_decay_steps=5, num_stable_steps=3)


def test_name_errors():
    with pytest.raises(ValueError, match="not a valid schedule name"):
        S.from_name("cosine_annealing", 0, 10)
    with pytest.raises(ValueError, match="requires `num_warmup_steps`"):
        S.from_name("linear", None, 10)
    with pytest.raises(ValueError, match="requires `num_training_steps`"):
        S.from_name("cosine", 10)
    with pytest.raises(TypeError, match="unexpected keyword"):
        S.from_name("linear", 0, 10, num_cycles=3)
    with pytest.raises(TypeError):
        S.from_name("linear", 1.5, 10)
    assert {"linear", "cosine", "wsd", "onecycle"} <= set(S.names())


def test_fastlr_names():
    s = S.from_name("wsd", 100, 1000, decay=200, decay_shape="1-sqrt")
    assert s == S.wsd(1.0, warmup=100, decay=200, total=1000, decay_shape="1-sqrt")
    wc = S.from_name("warmup_cosine", 100, 1000, end_value=0.1)
    assert wc == S.warmup(S.cosine(1.0, 900, 0.1), 100)
    # and by value, against the formula written out here: a linear ramp from 0 over the warm-up, then a
    # half cosine from 1 to end_value over the remaining steps, then end_value
    for t in [0, 1, 37, 99, 100, 101, 333, 550, 999, 1000, 1001, 5000]:
        want = t / 100 if t < 100 else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t - 100, 900) / 900))
        assert wc(t) == pytest.approx(want, rel=1e-13, abs=1e-15), t
    assert np.allclose(wc.table(1200), [wc(t) for t in range(1200)], rtol=0, atol=0)
    oc = S.from_name("onecycle", num_training_steps=500)
    assert oc == S.onecycle(1.0, 500)
    assert S.from_name("warm_restarts", 10, period=50, t_mult=2.0) == S.warmup(S.warm_restarts(1.0, 50, t_mult=2.0), 10)
    assert S.from_name("multistep", milestones=[3, 5]) == S.multistep(1.0, [3, 5])


# ------------------------------------------------------------------------------------------------
# get_scheduler and ScheduledLR


def make_opt(lrs=(0.1, 0.03, 0.007), cls=torch.optim.SGD, **kw):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in lrs]
    return cls([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], **kw)


def run(sched, opt, n):
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            out.append(list(sched.get_last_lr()))
            opt.step()
            sched.step()
    return out


@pytest.mark.parametrize(
    "name,kw,ref",
    [
        ("linear", {}, lambda t: hf_linear(t, 10, 100)),
        ("cosine", {}, lambda t: hf_cosine(t, 10, 100)),
        ("cosine_with_restarts", {"num_cycles": 3}, lambda t: hf_cosine_restarts(t, 10, 100, 3)),
        ("polynomial", {"power": 2.0}, lambda t: hf_polynomial(t, 10, 100, 0.1, 1e-7, 2.0)),
        ("constant_with_warmup", {}, lambda t: hf_constant_with_warmup(t, 10)),
        ("inverse_sqrt", {}, lambda t: hf_inverse_sqrt(t, 10)),
        ("cosine_with_min_lr", {"min_lr": 1e-3}, lambda t: hf_cosine_min_lr(t, 10, 100, min_lr_rate=1e-3 / 0.1)),
        ("warmup_stable_decay", {"num_decay_steps": 30}, lambda t: hf_wsd(t, 10, 60, 30)),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_get_scheduler_drives_the_optimizer(name, kw, ref):
    opt = make_opt(cls=torch.optim.AdamW, lr=0.1)  # defaults["lr"] = 0.1, read by polynomial / min_lr
    sched = fastlr.get_scheduler(name, opt, num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs=kw)
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    assert isinstance(sched, fastlr.lr_scheduler.LRScheduler)
    lrs = run(sched, opt, 130)
    for t, row in enumerate(lrs):
        for base, lr in zip((0.1, 0.03, 0.007), row):
            assert lr == pytest.approx(base * ref(t), rel=2e-14, abs=base * 5e-16), (t, base)


def test_get_scheduler_reduce_lr_on_plateau_matches_torch():
    rng = np.random.default_rng(1)
    metrics = np.round(rng.normal(size=150).cumsum() * 0.1, 2).tolist()
    o1, o2 = make_opt(), make_opt()
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(o1, patience=2, factor=0.5, min_lr=[1e-3, 1e-4, 1e-5], cooldown=1)
    ours = fastlr.get_scheduler("reduce_lr_on_plateau", o2, patience=2, factor=0.5, min_lr=[1e-3, 1e-4, 1e-5], cooldown=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in metrics:
            o1.step()
            o2.step()
            ref.step(m)
            ours.step(m)
            assert [g["lr"] for g in o1.param_groups] == [g["lr"] for g in o2.param_groups]
    assert any(g["lr"] < 0.007 for g in o2.param_groups)
    with pytest.raises(TypeError, match="no plateau"):
        fastlr.get_scheduler("linear", make_opt(), 1, 10).step(0.5)


def test_get_scheduler_errors():
    with pytest.raises(ValueError, match="not a valid scheduler name"):
        fastlr.get_scheduler("nope", make_opt())
    with pytest.raises(TypeError, match="is not an Optimizer"):
        fastlr.get_scheduler("linear", object(), 1, 10)
    with pytest.raises(ValueError, match="Factor"):
        fastlr.get_scheduler("reduce_lr_on_plateau", make_opt(), factor=2.0)
    with pytest.raises(ValueError, match="expected 3 min_lrs"):
        fastlr.get_scheduler("reduce_lr_on_plateau", make_opt(), min_lr=[0.1])


def test_scheduled_lr_matches_torch_cyclic_bitwise():
    # cyclic() follows torch CyclicLR's formula and operation order; ScheduledLR(absolute) equals it.
    o1 = make_opt(lrs=(0.1,))
    o2 = make_opt(lrs=(0.1,))
    ref = torch.optim.lr_scheduler.CyclicLR(o1, 0.01, 0.1, step_size_up=7, step_size_down=5, mode="triangular2", cycle_momentum=False)
    ours = fastlr.ScheduledLR(o2, S.cyclic(0.01, 0.1, 7, 5, "triangular2"), mode="absolute")
    assert run(ref, o1, 300) == run(ours, o2, 300)


def test_scheduled_lr_matches_torch_step_lr_bitwise():
    o1, o2 = make_opt(), make_opt()
    ref = torch.optim.lr_scheduler.StepLR(o1, 7, gamma=0.3)
    ours = fastlr.ScheduledLR(o2, S.step(1.0, 7, 0.3))
    a, b = run(ref, o1, 100), run(ours, o2, 100)
    assert b == [[base * 0.3 ** (t // 7) for base in (0.1, 0.03, 0.007)] for t in range(100)]
    np.testing.assert_allclose(a, b, rtol=1e-13)  # torch's chainable form rounds differently


def test_scheduled_lr_per_group_modes_momentum_and_weight_decay():
    opt = make_opt(cls=torch.optim.AdamW, weight_decay=0.01)
    lr_s = [S.constant(1.0), S.linear(1.0, 0.0, 10), S.cosine(0.5, 10)]
    mom = S.linear(0.95, 0.85, 10)
    wd = S.linear(1.0, 2.0, 10)
    sched = fastlr.ScheduledLR(opt, lr_s, momentum=mom, weight_decay=wd)
    run(sched, opt, 5)
    g = opt.param_groups
    assert [x["lr"] for x in g] == [0.1 * lr_s[0](5), 0.03 * lr_s[1](5), 0.007 * lr_s[2](5)]
    assert g[0]["betas"][0] == mom(5) and g[0]["betas"][1] == 0.999
    assert g[1]["weight_decay"] == 0.01 * wd(5)
    opt2 = make_opt(momentum=0.9)
    s2 = fastlr.ScheduledLR(opt2, S.cosine(0.2, 10), mode="absolute", momentum=mom)
    run(s2, opt2, 3)
    assert opt2.param_groups[2]["lr"] == S.cosine(0.2, 10)(3) and opt2.param_groups[0]["momentum"] == mom(3)


def test_scheduled_lr_seek_state_dict_and_resume():
    s = S.warmup(S.cosine(1.0, 90, 0.1), 10)
    o1 = make_opt()
    a = fastlr.ScheduledLR(o1, s)
    run(a, o1, 37)
    sd = a.state_dict()
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    sd2 = torch.load(buf, weights_only=True)
    o2 = make_opt()
    b = fastlr.ScheduledLR(o2, S.constant(1.0))
    b.load_state_dict(sd2)
    assert b.schedules[0] == s and b.last_epoch == a.last_epoch
    a.step()
    b.step()
    assert a.get_last_lr() == b.get_last_lr()
    # seek: O(1) jump, same values as stepping there
    o3 = make_opt()
    c = fastlr.ScheduledLR(o3, s)
    c.seek(38)
    assert c.get_last_lr() == a.get_last_lr() and c.last_epoch == 38
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c.step(epoch=50)
    assert c.get_last_lr() == [base * s(50) for base in (0.1, 0.03, 0.007)]
    with pytest.raises(ValueError):
        c.seek(-1)


def test_scheduled_lr_plateau_phase():
    p = S.plateau(1.0, patience=0, factor=0.5)
    s = S.join([S.linear(0.0, 1.0, 5), p, p * S.cosine(1.0, 10)], [5, 20])
    opt = make_opt()
    sched = fastlr.ScheduledLR(opt, s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(25):
            opt.step()
            sched.step(1.0)  # a metric that never improves
    assert p.value < 1.0
    sd = sched.state_dict()
    assert sd["schedules"]["schedules"][0]["schedules"][1]["state"]["value"] == p.value


def test_scheduled_lr_errors():
    opt = make_opt()
    with pytest.raises(TypeError, match="fastlr schedule"):
        fastlr.ScheduledLR(opt, lambda t: 1.0)
    with pytest.raises(ValueError, match="expected 3"):
        fastlr.ScheduledLR(opt, [S.constant(1.0)])
    with pytest.raises(ValueError, match="mode"):
        fastlr.ScheduledLR(opt, S.constant(1.0), mode="relative")
    with pytest.raises(ValueError, match="momentum"):
        fastlr.ScheduledLR(make_opt(cls=torch.optim.Adagrad), S.constant(1.0), momentum=S.constant(0.9))
    with pytest.raises(TypeError, match="is not an Optimizer"):
        fastlr.ScheduledLR(None, S.constant(1.0))


def _trainer_loop(sched: Any, opt: Any, metrics: list[float]) -> list[float]:
    """Hugging Face Trainer's stepping logic (trainer.py): step() after each training step unless the
    scheduler is torch's ReduceLROnPlateau, which gets step(metric) after each evaluation (here every
    10 steps). Lightning's `reduce_on_plateau` flag is the same isinstance test."""
    plateau = isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(200):
            opt.step()
            if not plateau:
                sched.step()
            if step % 10 == 9 and plateau:
                sched.step(metrics[step // 10])
            lrs.append(opt.param_groups[0]["lr"])
    return lrs


def test_reduce_lr_on_plateau_is_recognised_by_trainers():
    """The issue's report: get_scheduler("reduce_lr_on_plateau") inside Trainer kept lr at 1e-3 for 200
    steps (the frameworks test isinstance(s, torch's ReduceLROnPlateau) to pass the metric), where
    transformers' own reduced. It must reduce exactly as transformers' (torch's class with the kwargs)."""
    metrics = [1.0 + 0.01 * i for i in range(20)]  # never improves
    kw = dict(patience=1, factor=0.5, min_lr=1e-8)
    o1, o2 = make_opt(), make_opt()
    ours = fastlr.get_scheduler("reduce_lr_on_plateau", o2, num_warmup_steps=5, num_training_steps=200,
                                scheduler_specific_kwargs=kw)
    assert isinstance(ours, torch.optim.lr_scheduler.ReduceLROnPlateau) and ours.uses_fast_path
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(o1, **kw)  # transformers' get_reduce_on_plateau_schedule
    a, b = _trainer_loop(theirs, o1, metrics), _trainer_loop(ours, o2, metrics)
    assert a == b
    assert b[-1] < b[0] / 100


def _order_warnings(sched) -> tuple[list[tuple[str, int]], int]:
    """Step `sched` once; the (file, line) of each "lr_scheduler.step() before optimizer.step()"
    warning, and the line of that step() call."""
    import inspect

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        sched.step()
    return [(w.filename, w.lineno) for w in caught if "before `optimizer.step()`" in str(w.message)], line


def test_scheduled_lr_order_warning_points_at_the_caller():
    """torch's "lr_scheduler.step() before optimizer.step()" warning names the line that called
    step(), for ScheduledLR as for torch's classes (it named fastlr's own _scheduled.py)."""
    s = fastlr.ScheduledLR(make_opt(), S.cosine(1.0, 100))
    order, line = _order_warnings(s)
    assert order == [(__file__, line)]
    assert _order_warnings(s)[0] == []  # only the first step warns, as torch's


def test_capturable_order_warning_points_at_the_caller():
    """The same for a capturable drop-in (its step() runs torch's step from fastlr's Python method)."""
    import fastlr.lr_scheduler as FL

    o = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": torch.tensor(0.1, dtype=torch.float64)}])
    order, line = _order_warnings(FL.StepLR(o, 3, capturable=True))
    assert order == [(__file__, line)]


def test_scheduled_lr_counters_follow_torch_step():
    """ScheduledLR's step() past the first takes a direct path (no detour through torch's Python
    step): the counters and last lrs must stay what torch's step gives a LambdaLR with the same
    multiplier."""
    o1, o2 = make_opt(), make_opt()
    s = S.from_name("cosine", 3, 40)
    ours = fastlr.ScheduledLR(o2, s)
    ref = torch.optim.lr_scheduler.LambdaLR(o1, lambda t: s(t))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(30):
            o1.step()
            o2.step()
            ref.step()
            ours.step()
            assert ours._step_count == ref._step_count and ours.last_epoch == ref.last_epoch, k
            assert ours.get_last_lr() == ref.get_last_lr(), k
            assert [g["lr"] for g in o1.param_groups] == [g["lr"] for g in o2.param_groups], k
