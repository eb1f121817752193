"""state_dict() / load_state_dict() of the second-issue classes against torch: keys (in order) and
values bitwise, torch.save + torch.load(weights_only=True), and checkpoints written by one library
resumed by the other, continuing bit for bit."""

from __future__ import annotations

import copy
import io
from typing import Any, Callable

import pytest
torch = pytest.importorskip("torch")
from _helpers_more import (
    TORCH,
    Twin,
    assert_engine_did_the_work,
    deep_bits,
    group_view,
    make_opt,
    reload,
    same_outcome,
)

from fastlr import lr_scheduler as F

pytestmark = pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)` before:UserWarning")

CASES: dict[str, tuple[Callable[[Any, torch.optim.Optimizer], Any], str]] = {
    "CyclicLR-SGD": (lambda m, o: m.CyclicLR(o, [0.01, 0.02, 0.03], 0.1, step_size_up=7, mode="triangular2"), "SGD"),
    "CyclicLR-Adam": (lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=5, mode="exp_range", gamma=0.999), "Adam"),
    "OneCycleLR-SGD": (lambda m, o: m.OneCycleLR(o, 0.1, total_steps=400, three_phase=True), "SGD"),
    "OneCycleLR-Adam": (lambda m, o: m.OneCycleLR(o, [0.1, 0.2, 0.3], total_steps=400, anneal_strategy="linear"),
                        "Adam"),
    "CosineAnnealingWarmRestarts": (lambda m, o: m.CosineAnnealingWarmRestarts(o, 7, 2, 1e-4), "SGD"),
    "ReduceLROnPlateau": (lambda m, o: m.ReduceLROnPlateau(o, patience=1, cooldown=2, min_lr=[0, 1e-3, 1e-4]),
                          "SGD"),
    "SequentialLR": (lambda m, o: m.SequentialLR(o, [m.LinearLR(o, 0.1, total_iters=20), m.CyclicLR(o, 0.01, 0.1),
                                                     m.CosineAnnealingLR(o, 50)], [20, 150]), "SGD"),
    "ChainedScheduler": (lambda m, o: m.ChainedScheduler([m.ConstantLR(o, 0.5, 9), m.ExponentialLR(o, 0.99),
                                                          m.SWALR(o, 0.01, anneal_epochs=30)]), "SGD"),
    "SWALR": (lambda m, o: m.SWALR(o, [0.01, 0.02, 0.03], anneal_epochs=40, anneal_strategy="linear"), "SGD"),
}
IDS = sorted(CASES)


def stepper(case: str) -> Callable[[Any, int], Any]:
    if case == "ReduceLROnPlateau":
        return lambda s, k: s.step(1.0 if k % 5 else 0.5 / (k + 1))
    if case == "CosineAnnealingWarmRestarts":
        return lambda s, k: s.step(k / 3) if k % 4 == 0 else s.step()
    return lambda s, k: s.step()


@pytest.mark.parametrize("case", IDS)
def test_keys_order_and_values(case):
    build, opt = CASES[case]
    t = Twin(build, lambda: make_opt(3, opt=opt))
    keys0 = list(t.sf.state_dict())
    assert keys0 == list(t.st.state_dict())
    t.steps(150, action=stepper(case))  # compares state dicts (keys, order, values) at the end
    assert list(t.sf.state_dict()) == keys0  # unchanged by stepping
    assert "optimizer" not in keys0 and "_fastlr_engine" not in keys0


@pytest.mark.parametrize("case", IDS)
def test_survives_torch_save_weights_only(case):
    build, opt = CASES[case]
    t = Twin(build, lambda: make_opt(3, opt=opt))
    t.steps(50, action=stepper(case))
    assert deep_bits(reload(t.sf.state_dict())) == deep_bits(reload(t.st.state_dict()))
    assert deep_bits(reload(t.sf.state_dict())) == deep_bits(t.sf.state_dict())


def checkpoint(sched: Any, opt: torch.optim.Optimizer) -> bytes:
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    return buf.getvalue()


def resume(mod: Any, case: str, blob: bytes) -> tuple[Any, torch.optim.Optimizer]:
    """The usual resume: rebuild optimizer and scheduler, then load both state dicts."""
    build, opt_name = CASES[case]
    ck = torch.load(io.BytesIO(blob), weights_only=True)
    o = make_opt(3, opt=opt_name)
    o.load_state_dict(ck["opt"])
    s = build(mod, o)
    s.load_state_dict(ck["sched"])
    return s, o


@pytest.mark.parametrize("case", IDS)
@pytest.mark.parametrize("writer", ["torch", "fastlr"])
def test_checkpoint_from_one_library_resumed_by_the_other(case, writer):
    """A checkpoint written by `writer`, resumed by torch and by fastlr: both continue identically,
    and identically to the run that wrote it."""
    build, opt_name = CASES[case]
    t = Twin(build, lambda: make_opt(3, opt=opt_name))
    act = stepper(case)
    t.steps(120, action=act)
    src_s, src_o = (t.st, t.ot) if writer == "torch" else (t.sf, t.of)
    blob = checkpoint(src_s, src_o)
    r_t, o_t = resume(TORCH, case, blob)
    r_f, o_f = resume(F, case, blob)
    assert deep_bits(r_t.state_dict()) == deep_bits(r_f.state_dict())
    assert group_view(o_t) == group_view(o_f)
    for k in range(120, 400):
        a, b = same_outcome(lambda: act(r_t, k), lambda: act(r_f, k))
        assert deep_bits(r_t.get_last_lr()) == deep_bits(r_f.get_last_lr()), k
        assert group_view(o_t) == group_view(o_f), k
    assert deep_bits(r_t.state_dict()) == deep_bits(r_f.state_dict())
    if not hasattr(r_f, "_schedulers"):
        assert r_f._fastlr_engine.handled > 0


@pytest.mark.parametrize("case", IDS)
def test_load_does_not_touch_optimizer(case):
    build, opt = CASES[case]
    t = Twin(build, lambda: make_opt(3, opt=opt))
    t.steps(30, action=stepper(case))
    sd = t.st.state_dict()
    fresh = Twin(build, lambda: make_opt(3, opt=opt))
    before_t, before_f = group_view(fresh.ot), group_view(fresh.of)
    fresh.do(lambda s, o: s.load_state_dict(copy.deepcopy(sd)))  # loading pops keys: one copy each
    assert group_view(fresh.ot) == before_t and group_view(fresh.of) == before_f
    fresh.steps(100, action=stepper(case))


@pytest.mark.parametrize("case", IDS)
def test_caller_dict_left_as_torch_leaves_it(case):
    """CyclicLR pops `_scale_fn_custom` from the caller's dict; composites restore `_schedulers`."""
    build, opt = CASES[case]
    t = Twin(build, lambda: make_opt(3, opt=opt))
    t.steps(10, action=stepper(case))
    sd_t, sd_f = t.st.state_dict(), t.sf.state_dict()
    t.st.load_state_dict(sd_t)
    t.sf.load_state_dict(sd_f)
    assert list(sd_t) == list(sd_f)


@pytest.mark.parametrize("src, dst", [("CyclicLR-SGD", "OneCycleLR-SGD"), ("OneCycleLR-SGD", "SWALR"),
                                      ("SWALR", "CosineAnnealingWarmRestarts"),
                                      ("CosineAnnealingWarmRestarts", "CyclicLR-SGD")])
def test_state_dict_from_another_class(src, dst):
    """torch does not validate: the foreign keys are merged in. Whatever happens next is torch's."""
    t_src = Twin(CASES[src][0], lambda: make_opt(3))
    t_src.steps(10, action=stepper(src))
    sd = t_src.st.state_dict()
    t = Twin(CASES[dst][0], lambda: make_opt(3))
    t.do(lambda s, o: s.load_state_dict(copy.deepcopy(sd)))
    for k in range(10):
        t.do(lambda s, o: stepper(dst)(s, k))


def test_unknown_keys_are_kept():
    for case in IDS:
        build, opt = CASES[case]
        t = Twin(build, lambda: make_opt(3, opt=opt))
        t.do(lambda s, o: s.load_state_dict({**s.state_dict(), "zzz_extra": 3}) if not hasattr(s, "_schedulers")
             else None)
        t.steps(5, action=stepper(case))


@pytest.mark.parametrize("case", ["CyclicLR-SGD", "OneCycleLR-Adam", "CosineAnnealingWarmRestarts", "SWALR"])
def test_tensor64_state_dicts(case):
    build, opt = CASES[case]
    t = Twin(build, lambda: make_opt(3, "tensor64", opt=opt))
    t.steps(40, action=stepper(case))
    sd_t, sd_f = reload(t.st.state_dict()), reload(t.sf.state_dict())
    assert deep_bits(sd_t) == deep_bits(sd_f)
    fresh = Twin(build, lambda: make_opt(3, "tensor64", opt=opt))
    fresh.st.load_state_dict(sd_f)
    fresh.sf.load_state_dict(sd_t)
    fresh.check()


def test_engine_resumes_on_fast_path_after_load():
    t = Twin(CASES["CyclicLR-SGD"][0], lambda: make_opt(3))
    t.steps(20)
    sd = t.st.state_dict()
    fresh = Twin(CASES["CyclicLR-SGD"][0], lambda: make_opt(3))
    fresh.do(lambda s, o: s.load_state_dict(copy.deepcopy(sd)))
    fresh.steps(500)
    assert_engine_did_the_work(fresh.sf, 500)
