"""CyclicLR parity with the installed torch: lrs and momentum/beta1, bit for bit.

Every test builds the same scheduler from torch and from fastlr on identical optimizers (see
``_helpers_more.Twin``) and compares everything observable after each action. Tests of ordinary
float configs also assert that fastlr's engine computed every step (``deferred == 0``).
"""

from __future__ import annotations

import types

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
    lrs_for,
    make_opt,
    reload,
    same_outcome,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastlr import lr_scheduler as F

pytestmark = pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)` before:UserWarning")

N = 10_000

# (id, kwargs) for the built-in modes; cycles stay below 1024 over N steps (triangular2 overflows
# beyond: tested separately).
MODES = [
    ("triangular", dict(step_size_up=7, step_size_down=4, mode="triangular")),
    ("triangular-symmetric", dict(step_size_up=50, mode="triangular")),
    ("triangular2", dict(step_size_up=9, step_size_down=3, mode="triangular2")),
    ("triangular2-fractional-steps", dict(step_size_up=2.5, step_size_down=8.25, mode="triangular2")),
    ("exp_range", dict(step_size_up=13, step_size_down=21, mode="exp_range", gamma=0.99973)),
    ("exp_range-gamma-int", dict(step_size_up=5, mode="exp_range", gamma=1)),
]


def per_group(n: int, lo: float, hi: float) -> tuple[list[float], list[float]]:
    base = [lo * (1 + 0.37 * i) for i in range(n)]
    top = [hi * (1 + 0.11 * i) + 1e-3 for i in range(n)]
    return base, top


@pytest.mark.parametrize("G", GROUPS)
@pytest.mark.parametrize("mode_id, kw", MODES, ids=[m[0] for m in MODES])
def test_matches_torch_sgd_momentum(mode_id, kw, G):
    base, top = per_group(G, 1e-3, 0.1)
    bm = [0.8 - 0.01 * i for i in range(G)]
    mm = [0.95 - 0.003 * i for i in range(G)]

    def build(mod, opt):
        return mod.CyclicLR(opt, base_lr=base, max_lr=top, base_momentum=bm, max_momentum=mm, **kw)

    t = Twin(build, lambda: make_opt(G))
    t.steps(N)
    assert_engine_did_the_work(t.sf, N)


@pytest.mark.parametrize("G", GROUPS)
@pytest.mark.parametrize("mode_id, kw", MODES[::2], ids=[m[0] for m in MODES[::2]])
def test_matches_torch_adam_beta1(mode_id, kw, G):
    def build(mod, opt):
        return mod.CyclicLR(opt, base_lr=0.0011, max_lr=0.0173, base_momentum=0.85, max_momentum=0.97, **kw)

    t = Twin(build, lambda: make_opt(G, opt="Adam", betas=(0.9, 0.997)))
    t.steps(N)
    assert_engine_did_the_work(t.sf, N)
    # beta2 is carried along untouched, beta1 is cycled
    assert all(g["betas"][1] == 0.997 for g in t.of.param_groups)


@pytest.mark.parametrize("G", (1, 3))
def test_no_cycle_momentum_with_momentum_free_optimizer(G):
    def build(mod, opt):
        return mod.CyclicLR(opt, 0.01, 0.1, step_size_up=3, cycle_momentum=False)

    t = Twin(build, lambda: make_opt(G, opt="SGD", momentum=0.0))
    t.steps(2000)
    assert_engine_did_the_work(t.sf)
    assert not hasattr(t.sf, "use_beta1") and not hasattr(t.sf, "base_momentums")


class HalvingScale:
    """A callable object: CyclicLR's state dict keeps its ``__dict__``."""

    def __init__(self) -> None:
        self.rate = 0.5

    def __call__(self, x):
        return self.rate ** (x % 5)


@pytest.mark.parametrize("G", GROUPS)
@pytest.mark.parametrize(
    "scale_fn, scale_mode",
    [
        (lambda x: 1 / (1.0 + x) ** 0.5, "cycle"),
        (lambda x: 0.9995**x, "iterations"),
        (HalvingScale(), "cycle"),
        (lambda x: 1.0, "not-a-mode"),  # not validated by torch: anything but "cycle" is "iterations"
    ],
    ids=["cycle", "iterations", "callable-object", "unvalidated-mode"],
)
def test_custom_scale_fn(scale_fn, scale_mode, G):
    def build(mod, opt):
        return mod.CyclicLR(opt, 0.002, 0.05, step_size_up=11, step_size_down=6, scale_fn=scale_fn,
                            scale_mode=scale_mode, mode="nonsense-is-fine-with-scale_fn")

    t = Twin(build, lambda: make_opt(G))
    t.steps(N if G == 3 else 1500)
    # A user scale_fn is torch's code today (documented); parity must hold regardless.
    assert_engine_deferred(t.sf)


def test_custom_scale_fn_called_like_torch():
    calls = {"torch": [], "fast": []}

    def make_fn(tag):
        return lambda x: calls[tag].append(x) or 1.0

    o1, o2 = make_opt(3), make_opt(3)
    s1 = TORCH.CyclicLR(o1, 0.01, 0.1, step_size_up=4, scale_fn=make_fn("torch"))
    s2 = F.CyclicLR(o2, 0.01, 0.1, step_size_up=4, scale_fn=make_fn("fast"))
    for _ in range(20):
        s1.step()
        s2.step()
    assert calls["torch"] == calls["fast"] and len(calls["torch"]) > 0
    assert [type(x) for x in calls["torch"]] == [type(x) for x in calls["fast"]]


def test_triangular2_overflow_like_torch():
    """cycle 1025 needs 2.0 ** 1024: Python raises OverflowError at the same step, state left as torch."""

    def build(mod, opt):
        return mod.CyclicLR(opt, [0.01, 0.02, 0.03], 0.1, step_size_up=1, mode="triangular2")

    t = Twin(build, lambda: make_opt(3))
    t.steps(2046)
    assert_engine_did_the_work(t.sf, 2046)
    for _ in range(4):  # steps 2047.. raise from 2048 on, every time
        a, b = t.do(lambda s, o: s.step())
    assert isinstance(a.exc, OverflowError) and isinstance(b.exc, OverflowError)
    assert t.sf.last_epoch == t.st.last_epoch == 2050


def test_exp_range_overflow_like_torch():
    def build(mod, opt):
        return mod.CyclicLR(opt, 0.01, 0.1, step_size_up=3, mode="exp_range", gamma=1.5)

    t = Twin(build, lambda: make_opt(3))
    t.steps(1740)  # 1.5 ** 1751 overflows
    outcomes = [t.do(lambda s, o: s.step())[0] for _ in range(20)]
    assert any(isinstance(o.exc, OverflowError) for o in outcomes)


@pytest.mark.parametrize("G", (1, 17))
def test_after_another_scheduler_initial_lr_pitfall(G):
    """pytorch#21965: CyclicLR after a scheduler that set initial_lr computes its initial step from the
    old initial_lr (its base_lrs are only assigned after super().__init__)."""

    def build(mod, opt):
        mod.CosineAnnealingLR(opt, T_max=10)
        return mod.CyclicLR(opt, 0.004, 0.08, step_size_up=5)

    t = Twin(build, lambda: make_opt(G))
    t.steps(N)
    assert_engine_did_the_work(t.sf, N)


@pytest.mark.parametrize("k", [0, 3, 17, 1234])
def test_resume_with_last_epoch(k):
    """Train k steps, checkpoint optimizer + scheduler, rebuild with last_epoch=k, load, continue."""

    def first(mod, opt):
        return mod.CyclicLR(opt, [0.001, 0.002, 0.003], 0.1, step_size_up=6, step_size_down=9)

    t = Twin(first, lambda: make_opt(3))
    t.steps(k)
    osd_t, osd_f = t.ot.state_dict(), t.of.state_dict()
    ssd_t = t.st.state_dict()  # torch's state, loaded into both after the resume
    assert deep_bits(osd_t) == deep_bits(osd_f)

    def make_t():
        o = make_opt(3)
        o.load_state_dict(osd_t)
        return o

    def resumed(mod, opt):
        return mod.CyclicLR(opt, [0.001, 0.002, 0.003], 0.1, step_size_up=6, step_size_down=9, last_epoch=k)

    t2 = Twin(resumed, make_t)
    t2.steps(500)
    t2.do(lambda s, o: s.load_state_dict(dict(ssd_t)))
    t2.steps(500)
    assert_engine_did_the_work(t2.sf)


def test_resume_without_initial_lr_raises_like_torch():
    def build(mod, opt):
        return mod.CyclicLR(opt, 0.01, 0.1, last_epoch=5)

    a, b = same_outcome(lambda: build(TORCH, make_opt(3)), lambda: build(F, make_opt(3)))
    assert isinstance(a.exc, KeyError)


@pytest.mark.parametrize("G", (1, 17))
def test_step_epoch(G):
    """step(epoch): closed form at last_epoch=epoch (deprecation warning); mixed with step()."""
    epochs = [5, 5, 0, 123, 7, 4096, 3, 3]

    def build(mod, opt):
        return mod.CyclicLR(opt, 0.001, 0.1, step_size_up=7, step_size_down=3, mode="triangular2")

    t = Twin(build, lambda: make_opt(G))
    for i, e in enumerate(epochs):
        a, _ = t.do(lambda s, o: s.step(e))
        assert [m for _, m, _, _ in a.warnings] == [F.EPOCH_DEPRECATION_WARNING] or i == 0
        t.steps(3)
    t.steps(N, action=lambda s, k: s.step(k * 3 % 1001) if k % 7 == 0 else s.step())
    assert_engine_did_the_work(t.sf)


@pytest.mark.parametrize("G", GROUPS)
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_tensor64_lrs(G, opt_name):
    """float64 tensor lrs: bitwise values and the group's tensor object is never replaced."""
    kw = dict(betas=(0.9, 0.99)) if opt_name == "Adam" else {}

    def build(mod, opt):
        return mod.CyclicLR(opt, [0.001 * (i + 1) for i in range(G)], 0.1, step_size_up=9, step_size_down=4,
                            mode="exp_range", gamma=0.9999)

    t = Twin(build, lambda: make_opt(G, "tensor64", opt=opt_name, **kw))
    ids = [id(g["lr"]) for g in t.of.param_groups]
    t.steps(TENSOR_STEPS[G])
    assert [id(g["lr"]) for g in t.of.param_groups] == ids
    assert all(isinstance(g["lr"], torch.Tensor) and g["lr"].dtype == torch.float64 for g in t.of.param_groups)
    assert all(isinstance(x, torch.Tensor) for x in t.sf.get_last_lr())
    assert not any(x is g["lr"] for x, g in zip(t.sf.get_last_lr(), t.of.param_groups))


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_tensor32_lrs_contract(opt_name):
    """float32 tensor lrs: the float32 rounding of torch's float64 values (see the helper)."""

    def build(mod, opt):
        return mod.CyclicLR(opt, 0.001, 0.1, step_size_up=9, mode="triangular2")

    check_float32_contract(build, 3, 3000, opt=opt_name)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("which", ["CyclicLR", "OneCycleLR"])
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_tensor_momentum_is_kept_a_tensor(which, opt_name, dtype):
    """Deliberate deviation (DESIGN.md section 4): a group holding its momentum / beta1 as a 0-d tensor
    keeps that tensor object, updated in place, so compiled steps do not recompile; torch assigns a
    new Python float every step. Values: the rounding of torch's float to the tensor's dtype; the lrs
    are bitwise torch's."""

    def build(mod, opt):
        if which == "CyclicLR":
            return mod.CyclicLR(opt, 0.001, 0.1, step_size_up=7)
        return mod.OneCycleLR(opt, 0.1, total_steps=500, three_phase=True)

    o_t, o_f = make_opt(3, opt=opt_name), make_opt(3, opt=opt_name)
    s_t, s_f = build(TORCH, o_t), build(F, o_f)
    for g in o_f.param_groups:
        if opt_name == "SGD":
            g["momentum"] = torch.tensor(float(g["momentum"]), dtype=dtype)
        else:
            g["betas"] = (torch.tensor(float(g["betas"][0]), dtype=dtype), *g["betas"][1:])

    def mom(g):
        return g["momentum"] if opt_name == "SGD" else g["betas"][0]

    held = [mom(g) for g in o_f.param_groups]
    for k in range(400):
        s_t.step()
        s_f.step()
        assert deep_bits([g["lr"] for g in o_t.param_groups]) == deep_bits([g["lr"] for g in o_f.param_groups]), k
        for g_t, g_f, h in zip(o_t.param_groups, o_f.param_groups, held):
            assert mom(g_f) is h
            assert type(mom(g_t)) is float
            assert mom(g_f).item() == torch.tensor(mom(g_t), dtype=dtype).item(), k
    assert_engine_did_the_work(s_f)


def test_tensor_base_lr_on_float_optimizer():
    """A tensor base_lr turns the float group lr into a tensor (torch's plain assignment)."""

    def build(mod, opt):
        return mod.CyclicLR(opt, torch.tensor(0.01, dtype=torch.float64), 0.1, step_size_up=3)

    t = Twin(build, lambda: make_opt(3))
    t.steps(100)


@pytest.mark.parametrize("G", (1, 3))
def test_manual_edits_are_honoured(G):
    """Attributes live in __dict__: editing max_lrs / step_ratio / momentum bounds mid-run."""

    def build(mod, opt):
        return mod.CyclicLR(opt, 0.001, 0.1, step_size_up=10)

    def between(k, opt, s):
        if k == 100:
            s.max_lrs = [0.5 + i for i in range(G)]
        if k == 200:
            s.base_momentums = [0.5] * G
        if k == 300:
            s.total_size = 33.0
            s.step_ratio = 0.25
        if k == 400:
            s.mode = "triangular2"  # mode alone changes nothing: torch reads _scale_fn_ref
        if k == 500:
            s._init_scale_fn()
        if k == 600:
            opt.param_groups[0]["lr"] = 123.0  # overwritten: CyclicLR is a closed form

    t = Twin(build, lambda: make_opt(G))
    t.steps(1000, between=between)
    assert_engine_did_the_work(t.sf)


def test_step_order_warning_and_first_step():
    def build(mod, opt):
        return mod.CyclicLR(opt, 0.001, 0.1, step_size_up=10)

    t = Twin(build, lambda: make_opt(3))
    a, _ = t.do(lambda s, o: s.step())
    assert len(a.warnings) == 1 and "lr_scheduler.step()" in a.warnings[0][1]
    a, _ = t.do(lambda s, o: s.step())
    assert a.warnings == []


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_state_dict_round_trip_through_torch_save(mode):
    def build(mod, opt):
        return mod.CyclicLR(opt, 0.001, 0.1, step_size_up=10, mode=mode, gamma=0.999)

    t = Twin(build, lambda: make_opt(3))
    t.steps(37)
    sd_t, sd_f = reload(t.st.state_dict()), reload(t.sf.state_dict())
    assert deep_bits(sd_t) == deep_bits(sd_f)
    assert "_scale_fn_ref" not in sd_f and sd_f["_scale_fn_custom"] is None
    # cross-load: torch's state into fastlr and fastlr's into torch, on fresh twins
    fresh = Twin(build, lambda: make_opt(3))
    fresh.st.load_state_dict(dict(sd_f))
    fresh.sf.load_state_dict(dict(sd_t))
    for g_t, g_f, g_t0, g_f0 in zip(fresh.ot.param_groups, fresh.of.param_groups, t.ot.param_groups,
                                    t.of.param_groups):
        g_t.update({k: v for k, v in g_t0.items() if k != "params"})
        g_f.update({k: v for k, v in g_f0.items() if k != "params"})
    fresh.check()
    fresh.steps(2000)
    assert_engine_did_the_work(fresh.sf)


def test_load_state_dict_pops_custom_scale_fn_like_torch():
    def build(mod, opt):
        return mod.CyclicLR(opt, 0.001, 0.1, step_size_up=10, scale_fn=HalvingScale())

    t = Twin(build, lambda: make_opt(3))
    t.steps(12)
    sd_t, sd_f = t.st.state_dict(), t.sf.state_dict()
    assert deep_bits(sd_t) == deep_bits(sd_f)
    assert sd_f["_scale_fn_custom"] == {"rate": 0.5}
    sd_t["_scale_fn_custom"]["rate"] = 0.25
    sd_f["_scale_fn_custom"]["rate"] = 0.25
    t.do(lambda s, o: s.load_state_dict(sd_t if s is t.st else sd_f))
    assert "_scale_fn_custom" not in sd_f and "_scale_fn_custom" not in sd_t
    assert t.sf._scale_fn_custom.rate == 0.25
    t.steps(200)


def test_load_state_dict_reinits_builtin_scale_fn():
    """Loading a triangular2 state into a triangular scheduler switches the scale function."""
    o1, o2 = make_opt(3), make_opt(3)
    src = F.CyclicLR(make_opt(3), 0.001, 0.1, step_size_up=2, mode="triangular2")
    for _ in range(9):
        src.step()
    sd = src.state_dict()
    s1 = TORCH.CyclicLR(o1, 0.001, 0.1, step_size_up=2)
    s2 = F.CyclicLR(o2, 0.001, 0.1, step_size_up=2)
    s1.load_state_dict(dict(sd))
    s2.load_state_dict(dict(sd))
    assert s2._scale_fn_ref is s1._scale_fn_ref
    for _ in range(100):
        s1.step()
        s2.step()
        assert deep_bits(s1.get_last_lr()) == deep_bits(s2.get_last_lr())
    assert_engine_did_the_work(s2)


def test_attributes_like_torch():
    o1, o2 = make_opt(3, opt="Adam"), make_opt(3, opt="Adam")
    s1 = TORCH.CyclicLR(o1, 0.001, 0.1, mode="exp_range", gamma=0.5)
    s2 = F.CyclicLR(o2, 0.001, 0.1, mode="exp_range", gamma=0.5)
    for name in ("max_lrs", "total_size", "step_ratio", "mode", "gamma", "scale_mode", "cycle_momentum",
                 "use_beta1", "base_momentums", "max_momentums", "base_lrs", "last_epoch", "_step_count"):
        assert deep_bits(getattr(s1, name)) == deep_bits(getattr(s2, name)), name
    assert isinstance(s2._scale_fn_ref, type(s1._scale_fn_ref))
    assert s2._scale_fn_ref.func is s1._scale_fn_ref.func and s2._scale_fn_ref.args == s1._scale_fn_ref.args
    assert s2.scale_fn(3) == s1.scale_fn(3)
    assert isinstance(TORCH.CyclicLR.__dict__["_triangular_scale_fn"], staticmethod)
    assert isinstance(F.CyclicLR._triangular2_scale_fn, types.FunctionType)
    assert isinstance(s2, TORCH.CyclicLR) and isinstance(s2, torch.optim.lr_scheduler.LRScheduler)


# ------------------------------------------------------------------------------------------------
# Random configurations


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    G=st.sampled_from(GROUPS),
    up=st.one_of(st.integers(1, 40), st.floats(0.5, 40.0)),
    down=st.one_of(st.none(), st.integers(1, 40), st.floats(0.5, 40.0)),
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    gamma=st.floats(0.99, 1.0),
    adam=st.booleans(),
    seed=st.integers(0, 10),
)
def test_random_configs(G, up, down, mode, gamma, adam, seed):
    base = lrs_for(G, seed)
    top = [b * 10 for b in base]

    def build(mod, opt):
        return mod.CyclicLR(opt, base, top, step_size_up=up, step_size_down=down, mode=mode, gamma=gamma,
                            base_momentum=0.8, max_momentum=0.9)

    t = Twin(build, lambda: make_opt(G, opt="Adam" if adam else "SGD"))
    # Only triangular2 can overflow within N steps (cycles > 1024): compare the raise too.
    t.steps(N)
    if not (mode == "triangular2" and N / ((up + (down if down is not None else up))) > 1020):
        assert_engine_did_the_work(t.sf, N)
