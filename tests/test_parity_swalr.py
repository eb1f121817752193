"""SWALR (torch.optim.swa_utils) parity with the installed torch, bit for bit.

SWALR is a recurrence on the *current* lr indexed by ``_step_count``: it composes with preceding
schedulers and manual edits, and ``step(epoch)`` ignores the epoch. All compared against torch.
"""

from __future__ import annotations

import pytest
torch = pytest.importorskip("torch")
from _helpers_more import (
    GROUPS,
    TENSOR_STEPS,
    TORCH,
    Twin,
    assert_engine_deferred,
    assert_engine_did_the_work,
    check_float32_contract,
    deep_bits,
    make_opt,
    reload,
    same_outcome,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastlr import lr_scheduler as F

pytestmark = pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)` before:UserWarning")

N = 10_000


def swalr(swa_lr, **kw):
    return lambda mod, opt: mod.SWALR(opt, swa_lr, **kw)


CONFIGS = [
    ("cos-10", dict(anneal_epochs=10, anneal_strategy="cos")),
    ("linear-10", dict(anneal_epochs=10, anneal_strategy="linear")),
    ("cos-0", dict(anneal_epochs=0, anneal_strategy="cos")),
    ("linear-0", dict(anneal_epochs=0, anneal_strategy="linear")),
    ("cos-1", dict(anneal_epochs=1)),
    ("cos-9999", dict(anneal_epochs=9999)),
    ("linear-10000", dict(anneal_epochs=10000, anneal_strategy="linear")),
]


@pytest.mark.parametrize("G", GROUPS)
@pytest.mark.parametrize("cid, kw", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_matches_torch(cid, kw, G):
    swa = [0.05 * (1 + 0.21 * i) for i in range(G)]
    t = Twin(swalr(swa, **kw), lambda: make_opt(G))
    t.steps(N)
    assert_engine_did_the_work(t.sf, N)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_scalar_swa_lr(strategy):
    t = Twin(swalr(0.0123, anneal_epochs=37, anneal_strategy=strategy), lambda: make_opt(3))
    t.steps(1000)
    assert_engine_did_the_work(t.sf)


def test_step_epoch_is_ignored():
    """step(epoch) sets last_epoch (and warns) but the schedule index is _step_count."""
    t = Twin(swalr(0.01, anneal_epochs=20), lambda: make_opt(3))
    for e in [100, 0, 5, None, 3, 3, None, 7.5, None]:
        a, b = t.do(lambda s, o: s.step(e) if e is not None else s.step())
        if e is not None:
            assert [w[1] for w in a.warnings][-1] == F.EPOCH_DEPRECATION_WARNING
    assert t.sf._step_count == t.st._step_count == 10
    t.steps(50, action=lambda s, k: s.step(k * 1000))


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_manual_lr_edit_mid_anneal(strategy):
    """The current lr is inverted through the previous alpha: a manual edit shifts the whole anneal."""

    def between(k, opt, s):
        if k == 4:
            for g in opt.param_groups:
                g["lr"] = 1.0
        if k == 12:
            opt.param_groups[1]["swa_lr"] = 0.3  # read each step
        if k == 30:
            opt.param_groups[2]["lr"] = 0.0

    t = Twin(swalr(0.05, anneal_epochs=25, anneal_strategy=strategy), lambda: make_opt(3))
    t.steps(200, between=between)
    assert_engine_did_the_work(t.sf)


@pytest.mark.parametrize("G", (1, 17))
def test_after_another_scheduler(G):
    """The usual SWA recipe: a cosine schedule, then SWALR from swa_start on, stepped in turn."""

    o1, o2 = make_opt(G), make_opt(G)
    m1, m2 = TORCH.CosineAnnealingLR(o1, T_max=5000), F.CosineAnnealingLR(o2, T_max=5000)
    for _ in range(3000):
        m1.step()
        m2.step()
    s1 = TORCH.SWALR(o1, swa_lr=0.01, anneal_epochs=100)
    s2 = F.SWALR(o2, swa_lr=0.01, anneal_epochs=100)
    for k in range(N - 3000):
        s1.step()
        s2.step()
        if k % 97 == 0:
            assert deep_bits(s1.get_last_lr()) == deep_bits(s2.get_last_lr()), k
    assert deep_bits([g["lr"] for g in o1.param_groups]) == deep_bits([g["lr"] for g in o2.param_groups])
    assert deep_bits(s1.state_dict()) == deep_bits(s2.state_dict())
    assert_engine_did_the_work(s2, N - 3000)


def test_chained_with_exponential():
    """In a ChainedScheduler SWALR re-derives its start lr from the current lr, so it composes."""

    def build(mod, opt):
        return mod.ChainedScheduler([mod.ExponentialLR(opt, 0.999), mod.SWALR(opt, 0.01, anneal_epochs=300)])

    t = Twin(build, lambda: make_opt(3))
    t.steps(2000)


@pytest.mark.parametrize("k", [0, 5, 100])
def test_resume_with_last_epoch(k):
    def build(mod, opt):
        for g in opt.param_groups:
            g["initial_lr"] = 0.5
        return mod.SWALR(opt, 0.02, anneal_epochs=10, last_epoch=k)

    t = Twin(build, lambda: make_opt(3))
    t.steps(100)
    assert_engine_did_the_work(t.sf)


@pytest.mark.parametrize("G", GROUPS)
def test_tensor64_lrs(G):
    t = Twin(swalr(0.01, anneal_epochs=TENSOR_STEPS[G] // 2), lambda: make_opt(G, "tensor64"))
    ids = [id(g["lr"]) for g in t.of.param_groups]
    t.steps(TENSOR_STEPS[G])
    assert [id(g["lr"]) for g in t.of.param_groups] == ids


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_tensor32_lrs_contract(strategy):
    """float32 tensor lrs: the float32 rounding of torch's float64 recurrence (see the helper)."""
    check_float32_contract(swalr(0.01, anneal_epochs=500, anneal_strategy=strategy), 3, 1000)


def test_tensor_swa_lr():
    """A tensor swa_lr (cloned per group) turns float lrs into tensors, as in torch."""
    swa = torch.tensor(0.01, dtype=torch.float64)
    t = Twin(swalr(swa, anneal_epochs=5), lambda: make_opt(3))
    t.steps(20)
    assert all(g["swa_lr"] is not swa for g in t.of.param_groups)


def test_int_swa_lr_and_lr():
    def make():
        o = make_opt(3)
        o.param_groups[0]["lr"] = 1
        return o

    t = Twin(swalr([0, 1, 2], anneal_epochs=3, anneal_strategy="linear"), make)
    t.steps(10)


def test_custom_anneal_func_attribute():
    """A user-assigned anneal_func is called by torch's code (fastlr defers), same values."""
    t = Twin(swalr(0.01, anneal_epochs=50), lambda: make_opt(3))
    t.steps(5)
    t.do(lambda s, o: setattr(s, "anneal_func", lambda x: x * x))
    t.steps(100)
    assert_engine_deferred(t.sf)


def test_get_lr_outside_step_warns_like_torch():
    t = Twin(swalr(0.01), lambda: make_opt(3))
    t.steps(3)
    a, b = t.do(lambda s, o: s.get_lr())
    assert len(a.warnings) == 1 and "get_last_lr()" in a.warnings[0][1]
    assert deep_bits(a.result) == deep_bits(b.result)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_state_dict_round_trip_and_cross_load(strategy):
    t = Twin(swalr([0.01, 0.02, 0.03], anneal_epochs=40, anneal_strategy=strategy), lambda: make_opt(3))
    t.steps(17)
    sd_t, sd_f = reload(t.st.state_dict()), reload(t.sf.state_dict())
    assert deep_bits(sd_t) == deep_bits(sd_f)
    assert "anneal_func" not in sd_f and "optimizer" not in sd_f
    other = "linear" if strategy == "cos" else "cos"
    fresh = Twin(swalr([0.01, 0.02, 0.03], anneal_epochs=40, anneal_strategy=other), lambda: make_opt(3))
    for g_t, g_f, s_t, s_f in zip(fresh.ot.param_groups, fresh.of.param_groups, t.ot.param_groups,
                                  t.of.param_groups):
        g_t["lr"], g_f["lr"] = s_t["lr"], s_f["lr"]
    fresh.st.load_state_dict(sd_f)
    fresh.sf.load_state_dict(sd_t)
    assert fresh.sf.anneal_func is fresh.st.anneal_func  # re-set from _anneal_strategy
    fresh.check()
    fresh.steps(100)
    assert_engine_did_the_work(fresh.sf)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -2.0, 0.5, 0.0, -0.0, 1, 0, True])
@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_odd_anneal_epochs_from_a_state_dict(value, strategy):
    """load_state_dict does not validate: Python's max(1, nan) is 1, min/max clamps keep ints."""
    t = Twin(swalr(0.01, anneal_epochs=5, anneal_strategy=strategy), lambda: make_opt(3))
    t.steps(2)
    t.do(lambda s, o: s.load_state_dict({**s.state_dict(), "anneal_epochs": value}))
    t.steps(10)
    assert_engine_did_the_work(t.sf)


def test_attributes():
    t = Twin(swalr(0.01, anneal_epochs=7, anneal_strategy="linear"), lambda: make_opt(3))
    for name in ("anneal_epochs", "_anneal_strategy", "anneal_func", "base_lrs", "last_epoch", "_step_count",
                 "_last_lr"):
        assert deep_bits(getattr(t.st, name)) == deep_bits(getattr(t.sf, name)), name
    assert isinstance(t.sf, TORCH.SWALR) and isinstance(t.sf, TORCH.LRScheduler)
    for name in ("_linear_anneal", "_cosine_anneal", "_get_initial_lr"):
        ft, ff = getattr(TORCH.SWALR, name), getattr(F.SWALR, name)
        args = (0.3,) if name != "_get_initial_lr" else (0.3, 0.01, 0.25)
        assert deep_bits(ft(*args)) == deep_bits(ff(*args))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    G=st.sampled_from(GROUPS),
    anneal=st.integers(0, 12_000),
    strategy=st.sampled_from(["cos", "linear"]),
    swa=st.floats(0.0, 1.0),
    lr0=st.floats(1e-6, 10.0),
)
def test_random_configs(G, anneal, strategy, swa, lr0):
    t = Twin(swalr(swa, anneal_epochs=anneal, anneal_strategy=strategy),
             lambda: make_opt(G, lrs=[lr0 * (1 + i) for i in range(G)]))
    t.steps(N)
    assert_engine_did_the_work(t.sf, N)


def test_validation_like_torch():
    cases = [
        dict(swa_lr=0.01, anneal_strategy="cosine"),
        dict(swa_lr=0.01, anneal_epochs=-1),
        dict(swa_lr=0.01, anneal_epochs=2.0),
        dict(swa_lr=[0.01, 0.02]),
        dict(swa_lr=0.01, anneal_epochs=True),
    ]
    for kw in cases:
        o1, o2 = make_opt(3), make_opt(3)
        a, b = same_outcome(lambda: TORCH.SWALR(o1, **kw), lambda: F.SWALR(o2, **kw))
        # group["swa_lr"] is written before the later checks, in both
        assert deep_bits([g.get("swa_lr") for g in o1.param_groups]) == deep_bits(
            [g.get("swa_lr") for g in o2.param_groups])
