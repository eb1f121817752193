"""ReduceLROnPlateau parity with the installed torch: the state machine, the reductions (bitwise,
types included) and every odd metric, compared against torch at run time."""

from __future__ import annotations

import math

import numpy as np
import pytest
torch = pytest.importorskip("torch")
from _helpers_more import (
    GROUPS,
    TENSOR_STEPS,
    TORCH,
    Twin,
    assert_engine_did_the_work,
    deep_bits,
    make_opt,
    reload,
    same_outcome,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastlr import lr_scheduler as F

N = 10_000


def metric_stream(n: int, seed: int, nan_rate: float = 0.01, mode: str = "min") -> list[float]:
    """Noisy improvements with long plateaus, occasional NaN/inf, so reductions and cooldowns happen."""
    rng = np.random.default_rng(seed)
    out, level = [], 10.0
    for k in range(n):
        r = rng.random()
        if r < 0.02:
            level *= 0.9 if mode == "min" else 1.1  # a real improvement
        if r < nan_rate:
            out.append(float("nan"))
        elif r > 1 - nan_rate / 3:
            out.append(float("inf") if rng.random() < 0.5 else float("-inf"))
        else:
            noise = float(rng.normal(0.0, 1e-5)) if rng.random() < 0.5 else 0.0
            out.append(level + noise)
    return out


def rlrop(**kw):
    return lambda mod, opt: mod.ReduceLROnPlateau(opt, **kw)


CONFIGS = [
    ("min-rel", dict(mode="min", threshold_mode="rel")),
    ("max-rel", dict(mode="max", threshold_mode="rel", patience=3)),
    ("min-abs-cooldown", dict(mode="min", threshold_mode="abs", threshold=1e-3, patience=2, cooldown=5)),
    ("max-abs-min_lr", dict(mode="max", threshold_mode="abs", patience=0, min_lr=1e-4, factor=0.5)),
    ("min-lr-int", dict(patience=1, min_lr=0, factor=0.3)),
    ("negative-factor", dict(patience=1, factor=-0.5)),  # lr becomes the int min_lr 0 (see below)
    ("negative-factor-float-min_lr", dict(patience=1, factor=-0.5, min_lr=-1.0)),
    ("eps-skips", dict(patience=0, factor=0.999, eps=1e-3)),
    ("patience-float", dict(patience=2.5, cooldown=1.5, threshold=0.0)),
]


@pytest.mark.parametrize("G", GROUPS)
@pytest.mark.parametrize("cid, kw", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_matches_torch(cid, kw, G):
    ms = metric_stream(N, seed=G, mode=kw.get("mode", "min"))
    t = Twin(rlrop(**kw), lambda: make_opt(G))
    t.steps(N, action=lambda s, k: s.step(ms[k]))
    if all(type(g["lr"]) is float for g in t.ot.param_groups):
        assert_engine_did_the_work(t.sf, N)
    else:  # an int lr (max() returned the int min_lr) is not a float lr: torch's code reduces it
        assert t.sf._fastlr_engine.handled > 0


@pytest.mark.parametrize("G", GROUPS)
def test_per_group_min_lr_list(G):
    min_lrs = [1e-3 * (i + 1) for i in range(G)]
    min_lrs[0] = 0  # an int in the list: max() returns the int object, stored as the lr
    ms = metric_stream(N, seed=3)
    t = Twin(rlrop(patience=1, factor=0.5, min_lr=min_lrs), lambda: make_opt(G))
    t.steps(N, action=lambda s, k: s.step(ms[k]))
    assert t.sf._fastlr_engine.handled > N // 2
    assert type(t.of.param_groups[0]["lr"]) is type(t.ot.param_groups[0]["lr"])


def test_int_min_lr_is_stored_as_int():
    """max(old * factor, 0) returns the int 0 once the product is negative: the group lr becomes 0."""
    t = Twin(rlrop(patience=0, factor=-0.5, min_lr=0), lambda: make_opt(3))
    for m in [1.0, 1.0, 1.0, 1.0]:
        t.do(lambda s, o: s.step(m))
    assert type(t.ot.param_groups[0]["lr"]) is int
    assert deep_bits(t.ot.param_groups[0]["lr"]) == deep_bits(t.of.param_groups[0]["lr"])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    G=st.sampled_from(GROUPS),
    mode=st.sampled_from(["min", "max"]),
    threshold_mode=st.sampled_from(["rel", "abs"]),
    threshold=st.one_of(st.just(0.0), st.floats(-0.1, 0.5), st.integers(0, 1)),
    factor=st.one_of(st.floats(-2.0, 0.999), st.sampled_from([0.1, 0.5, 0, -1])),
    patience=st.integers(0, 20),
    cooldown=st.integers(0, 10),
    min_lr=st.one_of(st.just(0), st.floats(0.0, 1e-2), st.integers(0, 1)),
    eps=st.one_of(st.just(1e-8), st.floats(0.0, 1e-2)),
    nan_rate=st.sampled_from([0.0, 0.01, 0.2]),
    seed=st.integers(0, 1000),
)
def test_random_metric_streams(G, mode, threshold_mode, threshold, factor, patience, cooldown, min_lr, eps,
                               nan_rate, seed):
    ms = metric_stream(N, seed=seed, nan_rate=nan_rate, mode=mode)
    t = Twin(rlrop(mode=mode, threshold_mode=threshold_mode, threshold=threshold, factor=factor,
                   patience=patience, cooldown=cooldown, min_lr=min_lr, eps=eps), lambda: make_opt(G))
    t.steps(N, action=lambda s, k: s.step(ms[k]))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3)), max_size=60),
       st.sampled_from(["min", "max"]), st.sampled_from(["rel", "abs"]))
def test_arbitrary_metrics(metrics, mode, threshold_mode):
    """Every float (subnormals, -0.0, inf, NaN, huge) and ints as metrics; short runs, patience 0."""
    t = Twin(rlrop(mode=mode, threshold_mode=threshold_mode, patience=0, cooldown=1, factor=0.5),
             lambda: make_opt(3))
    t.steps(len(metrics), action=lambda s, k: s.step(metrics[k]))


@pytest.mark.parametrize(
    "metric",
    [torch.tensor(0.5), torch.tensor(0.5, dtype=torch.float64), torch.tensor([0.25]), torch.tensor(3),
     torch.tensor(True), np.float32(0.1), np.float64(0.3), np.int64(2), True, "0.125", 2**1100,
     torch.tensor([1.0, 2.0]), "abc", None, [1.0], complex(1, 0)],
    ids=lambda m: f"{type(m).__name__}-{m!r}"[:40],
)
def test_metric_types(metric):
    """0-d tensors, numpy scalars, strings...: the same value, or the same exception, as torch."""
    t = Twin(rlrop(patience=0), lambda: make_opt(3))
    t.do(lambda s, o: s.step(1.0))
    for _ in range(3):
        t.do(lambda s, o: s.step(metric))


@pytest.mark.parametrize("G", GROUPS)
def test_tensor_lrs(G):
    """Tensor lrs stay the same tensor objects (fill_), values bitwise equal to torch's."""
    n = TENSOR_STEPS[G]
    ms = metric_stream(n, seed=11)
    t = Twin(rlrop(patience=1, factor=0.7, min_lr=1e-6), lambda: make_opt(G, "tensor64"))
    ids = [id(g["lr"]) for g in t.of.param_groups]
    t.steps(n, action=lambda s, k: s.step(ms[k]))
    assert [id(g["lr"]) for g in t.of.param_groups] == ids
    assert all(g["lr"].dtype == torch.float64 for g in t.of.param_groups)


def test_tensor32_lrs():
    ms = metric_stream(2000, seed=5)
    t = Twin(rlrop(patience=1, factor=0.7), lambda: make_opt(3, "tensor32"))
    t.steps(2000, action=lambda s, k: s.step(ms[k]))


def test_mixed_float_and_tensor_lrs():
    def make():
        o = make_opt(3)
        o.param_groups[1]["lr"] = torch.tensor(0.05, dtype=torch.float64)
        return o

    ms = metric_stream(3000, seed=9)
    t = Twin(rlrop(patience=2, factor=0.5), make)
    t.steps(3000, action=lambda s, k: s.step(ms[k]))


def test_add_param_group_scalar_min_lr_extends():
    t = Twin(rlrop(patience=0, factor=0.5, min_lr=1e-3), lambda: make_opt(2))
    t.do(lambda s, o: s.step(1.0))
    t.do(lambda s, o: o.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.2}))
    for m in [1.0, 1.0, 0.5, 0.5, 0.5]:
        t.do(lambda s, o: s.step(m))
    assert len(t.sf.min_lrs) == 3


def test_add_param_group_list_min_lr_raises():
    t = Twin(rlrop(patience=0, factor=0.5, min_lr=[1e-3, 2e-3]), lambda: make_opt(2))
    t.do(lambda s, o: s.step(1.0))
    t.do(lambda s, o: o.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.2}))
    a, b = t.do(lambda s, o: s.step(1.0))  # no reduction yet (patience 0 needs one bad epoch)
    a, b = t.do(lambda s, o: s.step(1.0))
    assert isinstance(a.exc, RuntimeError) and "min_lrs" in str(a.exc)
    # the state machine had already advanced when the error was raised: compared by do()
    t.do(lambda s, o: setattr(s, "min_lrs", [0.0, 0.0, 0.0]))
    t.do(lambda s, o: s.step(2.0))
    t.do(lambda s, o: s.step(2.0))


def test_step_with_epoch_warns_and_sets_last_epoch():
    t = Twin(rlrop(patience=1), lambda: make_opt(3))
    for m, e in [(1.0, 5), (1.0, None), (1.0, 3.5), (0.5, None), (2.0, "x"), (2.0, None)]:
        a, b = t.do(lambda s, o: s.step(m, e) if e is not None else s.step(m))
        if e is not None:
            assert [w[1] for w in a.warnings] == [F.EPOCH_DEPRECATION_WARNING]
        else:
            assert a.warnings == []
    # keyword forms
    t.do(lambda s, o: s.step(metrics=0.1))
    t.do(lambda s, o: s.step(0.1, epoch=None))
    t.do(lambda s, o: s.step(metrics=0.1, epoch=9))
    t.do(lambda s, o: s.step())  # missing metrics: TypeError on both


def test_no_order_warning():
    """ReduceLROnPlateau does not patch optimizer.step: no order warning, ever."""
    t = Twin(rlrop(), lambda: make_opt(3))
    a, b = t.do(lambda s, o: s.step(1.0))
    assert a.warnings == b.warnings == []
    assert not hasattr(t.of.step, "_wrapped_by_lr_sched")


def test_get_last_lr_before_step_and_attributes():
    t = Twin(rlrop(mode="max", min_lr=[0.1, 0.2, 0.3]), lambda: make_opt(3))
    for name in ("factor", "default_min_lr", "min_lrs", "patience", "cooldown", "eps", "last_epoch", "mode_worse",
                 "mode", "threshold", "threshold_mode", "best", "cooldown_counter", "num_bad_epochs", "in_cooldown"):
        assert deep_bits(getattr(t.st, name)) == deep_bits(getattr(t.sf, name)), name
    assert isinstance(t.sf, TORCH.ReduceLROnPlateau) and isinstance(t.sf, TORCH.LRScheduler)
    a, b = same_outcome(lambda: t.st.get_lr(), lambda: t.sf.get_lr())


def test_manual_state_edits():
    ms = metric_stream(2000, seed=1)

    def between(k, opt, s):
        if k == 100:
            s.best = 5
        if k == 200:
            s.num_bad_epochs = 50
        if k == 300:
            s.cooldown_counter = 7
        if k == 400:
            s.threshold_mode = "unknown"  # not re-validated: torch's else-branch (max/abs)
        if k == 500:
            s.factor = 0.25
            s.eps = 0
        if k == 600:
            opt.param_groups[0]["lr"] = 3  # an int lr: float(int) in _reduce_lr
        if k == 700:
            s.min_lrs = [1e-2, 0, 1]

    t = Twin(rlrop(patience=1), lambda: make_opt(3))
    t.steps(2000, action=lambda s, k: s.step(ms[k]), between=between)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_state_dict_round_trip_and_cross_load(mode):
    ms = metric_stream(1000, seed=2, mode=mode)
    t = Twin(rlrop(mode=mode, patience=2, cooldown=1, min_lr=[0, 1e-3, 1e-4]), lambda: make_opt(3))
    t.steps(500, action=lambda s, k: s.step(ms[k]))
    sd_t, sd_f = reload(t.st.state_dict()), reload(t.sf.state_dict())
    assert deep_bits(sd_t) == deep_bits(sd_f)
    fresh = Twin(rlrop(), lambda: make_opt(3))
    for g_t, g_f, src_t, src_f in zip(fresh.ot.param_groups, fresh.of.param_groups, t.ot.param_groups,
                                      t.of.param_groups):
        g_t["lr"], g_f["lr"] = src_t["lr"], src_f["lr"]
    fresh.st.load_state_dict(sd_f)
    fresh.sf.load_state_dict(sd_t)
    fresh.check()
    fresh.steps(500, action=lambda s, k: s.step(ms[500 + k]))
    assert_engine_did_the_work(fresh.sf, 500)


def test_load_state_dict_revalidates():
    t = Twin(rlrop(), lambda: make_opt(3))
    sd = t.st.state_dict()
    for bad in (dict(mode="sideways"), dict(threshold_mode="relative"), dict(mode=3), dict(mode="max")):
        t.do(lambda s, o: s.load_state_dict({**sd, **bad}))
    # mode "max" loaded: mode_worse recomputed to -inf, best keeps the loaded inf
    assert t.sf.mode_worse == -math.inf and t.sf.best == math.inf


def test_unknown_keys_in_state_dict_are_kept():
    t = Twin(rlrop(), lambda: make_opt(3))
    t.do(lambda s, o: s.load_state_dict({**s.state_dict(), "extra": [1, 2]}))
    assert t.sf.state_dict()["extra"] == [1, 2]


class CountingMetric:
    """A metric object whose __float__ is observable (think of a CUDA tensor's .item() sync)."""

    def __init__(self, value, sub: bool = False) -> None:
        self.value, self.sub, self.calls = value, sub, 0

    def __float__(self):
        self.calls += 1
        return type("FloatSub", (float,), {})(self.value) if self.sub else self.value


@pytest.mark.parametrize("sub", [False, True], ids=["float", "float-subclass"])
def test_metric_float_called_once_per_step(sub):
    t = Twin(rlrop(patience=0), lambda: make_opt(3))
    mt, mf = CountingMetric(0.5, sub), CountingMetric(0.5, sub)
    for _ in range(4):
        t.do(lambda s, o: s.step(mt if s is t.st else mf))
    assert mt.calls == mf.calls == 4
    assert_engine_did_the_work(t.sf, 4)


@pytest.mark.parametrize("attr, value", [("cooldown", True), ("cooldown", False), ("cooldown_counter", False),
                                         ("cooldown_counter", True), ("patience", True), ("num_bad_epochs", True)])
def test_bool_counters_keep_their_type(attr, value):
    """torch assigns `cooldown` itself to cooldown_counter (a bool stays a bool) and leaves an untouched
    counter as it is."""
    t = Twin(rlrop(patience=0, cooldown=1), lambda: make_opt(3))
    t.do(lambda s, o: setattr(s, attr, value))
    for m in [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]:
        t.do(lambda s, o: s.step(m))


@pytest.mark.parametrize("kind", ["tensor64", "tensor32"])
def test_tensor_lrs_last_lr_is_the_value_at_its_step(kind):
    """With tensor lrs `_last_lr` is a snapshot, built into fresh tensors when read: a list read after a
    step holds that step's values even when later steps reduce the lrs (torch's list holds clones);
    the engine handles those steps, reducing ones included (in place, as torch's fill_)."""
    t = Twin(rlrop(patience=1, factor=0.5), lambda: make_opt(4, kind))
    held = []
    for k, m in enumerate([1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8]):
        t.do(lambda s, o: s.step(m))
        held.append((t.st.get_last_lr(), t.sf.get_last_lr()))
    for ref_list, fast_list in held:
        assert [float(x) for x in fast_list] == [float(x) for x in ref_list]
        assert all(isinstance(x, torch.Tensor) and x.dtype == y.dtype for x, y in zip(fast_list, ref_list))
    assert [float(x) for x in held[0][1]] != [float(x) for x in held[-1][1]]  # the lrs were reduced
    # Every step the engine's, reducing ones included (CPU tensors), but the first (torch's order warning).
    assert t.sf._fastlr_engine.deferred <= 1 and t.sf._fastlr_engine.handled >= 7
