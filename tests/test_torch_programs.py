"""The capturable fallback without ``fastlr._cuda``: schedule programs evaluated with vectorised
torch ops (`fastlr._torch_programs`), checked against the C++ evaluator (`Program.__call__`, the
function the CUDA kernel runs) at run time, and driven through capturable schedulers on CPU tensors
(`_capturable.FORCE_TORCH_OPS`): values, counter, save/resume, and a torch-op count that does not
grow with the number of param groups."""

from __future__ import annotations

import math
from typing import Any

import pytest
torch = pytest.importorskip("torch")
from torch.utils._python_dispatch import TorchDispatchMode

from fastlr import _capturable, _tensor_lrs, _torch_programs
from fastlr import lr_scheduler as F
from fastlr import schedules as S

STEPS = list(range(0, 130)) + [199, 200, 201, 999, 1000, 1001, 4095, 12345, 10**6 - 1, 10**6, 3 * 10**7 + 17]

SCHEDULES: dict[str, Any] = {
    "constant": S.constant(0.3),
    "linear": S.linear(0.1, 1.0, 97),
    "linear_extrapolated": S.linear(0.1, 1.0, 97, extrapolate=True),
    "cosine": S.cosine(1.0, 1000, end_value=1e-3),
    "cosine_zero_end_long": S.cosine(0.1, 10**6),
    "cosine_extrapolate": S.cosine(1.0, 77, end_value=0.1, extrapolate=True),
    "cosine_k_decay": S.cosine(1.0, 500, k_decay=1.7),
    "cosine_restarts": S.cosine(1.0, 900, cycles=3, restarts=True),
    "polynomial": S.polynomial(1.0, 0.01, 300, power=2.5),
    "polynomial_linear": S.polynomial(1.0, 0.0, 300),
    "exponential": S.exponential(1.0, 0.97),
    "exponential_staircase_end": S.exponential(2.0, 0.5, 10, staircase=True, end_value=0.01),
    "step": S.step(1.0, 30, 0.5),
    "multistep": S.multistep(1.0, [10, 20, 20, 95], 0.3),
    "piecewise_constant": S.piecewise_constant([5, 50, 51], [1.0, 0.5, 0.25, 0.125]),
    "piecewise_linear": S.piecewise_linear([0, 10, 10, 100], [0.0, 1.0, 0.5, 0.01]),
    "piecewise_linear_one": S.piecewise_linear([7], [0.4]),
    "cyclic": S.cyclic(0.01, 0.1, 13, 7),
    "cyclic_triangular2": S.cyclic(0.01, 0.1, 5, mode="triangular2"),
    "cyclic_exp_range": S.cyclic(0.01, 0.1, 9, mode="exp_range", gamma=0.999),
    "onecycle": S.onecycle(0.1, 1000),
    "onecycle_three_linear": S.onecycle(0.1, 300, pct_start=0.25, anneal_strategy="linear", three_phase=True),
    "warm_restarts": S.warm_restarts(1.0, 10, 0.01),
    "warm_restarts_mult": S.warm_restarts(1.0, 10, 0.01, t_mult=2, cycle_decay=0.8, cycle_limit=9, k_decay=1.3),
    "warm_restarts_mult3": S.warm_restarts(0.5, 7, t_mult=3),
    "inverse_sqrt": S.inverse_sqrt(1.0, 400),
    "wsd": S.wsd(1.0, warmup=50, stable=500, decay=200, end_value=0.01),
    "wsd_cosine_sqrt": S.wsd(1.0, warmup=40, stable=100, decay=60, warmup_shape="cosine", decay_shape="1-sqrt"),
    "wsd_sqrt_exp": S.wsd(1.0, warmup=40, stable=10, decay=60, warmup_shape="1-sqrt", decay_shape="exponential"),
    "wsd_rsqrt_power": S.wsd(1.0, warmup=40, stable=300, decay=60, stable_shape="rsqrt", decay_shape="power",
                             decay_power=1.5, end_value=0.05),
    "wsd_power_exp_ratio": S.wsd(1.0, warmup=40, stable=300, decay=60, stable_shape="power", stable_power=2.0,
                                 stable_timescale=10, decay_shape="exp", decay_ratio=0.1, end_value=0.01),
    "tanh": S.tanh(1.0, 300, 0.01),
    "tanh_cycles": S.tanh(1.0, 50, 0.01, lb=-5.0, ub=2.0, t_mult=2.0, cycle_decay=0.7, cycle_limit=None),
    "polynomial_k_decay": S.polynomial(1.0, 0.01, 300, power=0.5, k_decay=2.0),
    "cosine_exponent": S.cosine(1.0, 500, end_value=0.01, exponent=2.5),
    "linear_onecycle": S.linear_onecycle(900, 1.0, pct_start=0.0),
    "warmup_cosine": S.warmup(S.cosine(1.0, 1000, end_value=0.01), 100),
    "join3": S.join([S.linear(0.0, 1.0, 10), S.constant(1.0), S.cosine(1.0, 100)], [10, 60]),
    "product_scale_offset": S.scale(S.product(S.offset(S.linear(0.0, 1.0, 20), 15), S.exponential(1.0, 0.99)), 3e-4),
    # transformers' get_scheduler formulas, each variant
    "hf_constant_with_warmup": S.from_name("constant_with_warmup", 40),
    "hf_linear": S.from_name("linear", 40, 700),
    "hf_cosine": S.from_name("cosine", 40, 700, num_cycles=1.3),
    "hf_cosine_with_restarts": S.from_name("cosine_with_restarts", 40, 700, num_cycles=3),
    "hf_polynomial": S.from_name("polynomial", 40, 700, power=2.0, lr_end=1e-4, lr_init=0.1),
    "hf_inverse_sqrt": S.from_name("inverse_sqrt", 40, timescale=100),
    "hf_cosine_with_min_lr": S.from_name("cosine_with_min_lr", 40, 700, min_lr_rate=0.1),
    "hf_cosine_warmup_with_min_lr": S.from_name("cosine_warmup_with_min_lr", 40, 700, min_lr_rate=0.1, warmup_lr_rate=0.2),
    "hf_cosine_warmup_with_min_lr_none": S.from_name("cosine_warmup_with_min_lr", 40, 700, min_lr_rate=0.1),
    "hf_warmup_stable_decay": S.from_name("warmup_stable_decay", 40, 700, num_decay_steps=200, warmup_type="cosine",
                                          decay_type="1-sqrt", min_lr_ratio=0.05),
    "hf_warmup_stable_decay_cos": S.from_name("warmup_stable_decay", 40, 300, num_decay_steps=400, warmup_type="1-sqrt",
                                              decay_type="cosine", num_cycles=0.7),
}


def _close(a: float, b: float) -> bool:
    return a == b or (math.isfinite(b) and abs(a - b) <= 1e-12 * abs(b))


def _eval_with_torch_ops(prog: Any, ts: list[int]) -> list[float]:
    buf = _tensor_lrs.Buffer([(0, torch.tensor(0.0, dtype=torch.float64))])
    runner = _torch_programs.TorchPrograms([prog], [(buf, 0)], torch.device("cpu"))
    counter = torch.tensor(0, dtype=torch.int64)
    out = []
    for t in ts:
        counter.fill_(t)
        runner.run(counter, 0)
        out.append(float(buf.data[0]))
    return out


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_torch_ops_match_the_cpp_evaluator(name: str) -> None:
    prog = SCHEDULES[name]._sync()
    got = _eval_with_torch_ops(prog, list(STEPS))
    bad = [(t, g, prog(float(t))) for t, g in zip(STEPS, got) if not _close(g, prog(float(t)))]
    assert not bad, f"{name}: torch ops differ from the C++ evaluator at {bad[:5]}"


def _cos_half(a: float, b: float, x: float) -> float:
    return b + (a - b) * 0.5 * (1 + math.cos(math.pi * x))


#: Independent references: the formulas written out with Python's math (not fastlr's evaluators), so a
#: shape both evaluators get wrong the same way (a warm-up reaching its peak a step late, say) fails.
REFERENCES: dict[str, Any] = {
    "constant": lambda t: 0.3,
    "linear": lambda t: 0.1 + 0.9 * t / 97 if t < 97 else 1.0,
    "linear_extrapolated": lambda t: 0.1 + 0.9 * t / 97,
    "cosine": lambda t: _cos_half(1.0, 1e-3, min(t, 1000) / 1000),
    "cosine_extrapolate": lambda t: _cos_half(1.0, 0.1, t / 77),
    "polynomial": lambda t: 0.01 + 0.99 * (1 - min(t, 300) / 300) ** 2.5,
    "polynomial_linear": lambda t: 1.0 - min(t, 300) / 300,
    "exponential": lambda t: 0.97**t,
    "step": lambda t: 0.5 ** (t // 30),
    "multistep": lambda t: 0.3 ** sum(t >= m for m in (10, 20, 20, 95)),
    "piecewise_constant": lambda t: [1.0, 0.5, 0.25, 0.125][sum(t >= b for b in (5, 50, 51))],
    "inverse_sqrt": lambda t: 1.0 / math.sqrt((t + 400) / 400),
    "warmup_cosine": lambda t: t / 100 if t < 100 else _cos_half(1.0, 0.01, min(t - 100, 1000) / 1000),
    "join3": lambda t: t / 10 if t < 10 else 1.0 if t < 60 else _cos_half(1.0, 0.0, min(t - 60, 100) / 100),
    "wsd": lambda t: (
        t / 50 if t < 50 else 1.0 if t < 550 else 0.01 + 0.99 * (1 - min(t - 550, 200) / 200) if t < 750 else 0.01
    ),
}


def _torch_scheduler_values(make: Any, n: int, lr: float = 1.0) -> list[float]:
    """lr after each of n steps of a torch scheduler (index t: last_epoch == t)."""
    o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make(o)
    out = [o.param_groups[0]["lr"]]
    for _ in range(n - 1):
        sched.step()
        out.append(o.param_groups[0]["lr"])
    return out


#: Shapes that are torch schedulers' closed forms, checked against torch itself (up to t = 1000).
TORCH_REFERENCES: dict[str, Any] = {
    "onecycle": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=1000),
    "onecycle_three_linear": lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.1, total_steps=300, pct_start=0.25, anneal_strategy="linear", three_phase=True
    ),
    "cyclic": lambda o: torch.optim.lr_scheduler.CyclicLR(o, 0.01, 0.1, step_size_up=13, step_size_down=7, cycle_momentum=False),
    "cyclic_triangular2": lambda o: torch.optim.lr_scheduler.CyclicLR(o, 0.01, 0.1, 5, mode="triangular2", cycle_momentum=False),
    "warm_restarts": lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, 10, eta_min=0.01),
    "warm_restarts_mult3": lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, 7, T_mult=3),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_both_evaluators_match_the_written_out_formula(name: str) -> None:
    prog = SCHEDULES[name]._sync()
    ts = [t for t in STEPS if t < 10**6]
    want = [REFERENCES[name](t) for t in ts]
    for label, got in (("torch ops", _eval_with_torch_ops(prog, ts)), ("C++", [prog(float(t)) for t in ts])):
        bad = [(t, g, w) for t, g, w in zip(ts, got, want) if not (g == w or abs(g - w) <= 1e-12 * abs(w) + 1e-15)]
        assert not bad, f"{name} ({label}) differs from the formula at {bad[:5]}"


@pytest.mark.parametrize("name", sorted(TORCH_REFERENCES))
def test_both_evaluators_match_torch_s_scheduler(name: str) -> None:
    import warnings

    prog = SCHEDULES[name]._sync()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_vals = _torch_scheduler_values(
            TORCH_REFERENCES[name], 300 if "three" in name else 1000, lr=0.5 if name == "warm_restarts_mult3" else 1.0
        )
    ts = list(range(len(torch_vals)))
    want = [torch_vals[t] for t in ts]
    for label, got in (("torch ops", _eval_with_torch_ops(prog, ts)), ("C++", [prog(float(t)) for t in ts])):
        bad = [(t, g, w) for t, g, w in zip(ts, got, want) if not abs(g - w) <= 1e-12 * abs(w) + 1e-15]
        assert not bad, f"{name} ({label}) differs from torch at {bad[:5]}"


def test_programs_of_one_structure_are_one_class_and_rows_stay_apart() -> None:
    """Groups with different base values share a class (one evaluation), each row its own values."""
    progs = [S.cosine(b, 100, end_value=b / 10)._sync() for b in (0.1, 0.2, 0.3, 0.4)]
    progs.append(S.step(1.0, 7, 0.5)._sync())
    data = torch.zeros(5, dtype=torch.float64)
    members = [(j, data[j].clone()) for j in range(5)]
    buf = _tensor_lrs.Buffer(members)
    runner = _torch_programs.TorchPrograms(progs, [(buf, j) for j in (4, 3, 2, 1, 0)], torch.device("cpu"))
    assert len(runner.classes) == 2
    counter = torch.tensor(41, dtype=torch.int64)
    runner.run(counter, 1)
    assert int(counter) == 42
    assert [float(v) for v in buf.data] == [progs[4 - j](42.0) for j in range(5)]


def test_noise_is_refused_with_a_clear_error() -> None:
    prog = S.noise(S.constant(1.0), pct=0.1, seed=3)._sync()
    buf = _tensor_lrs.Buffer([(0, torch.tensor(0.0, dtype=torch.float64))])
    with pytest.raises(_torch_programs.UnsupportedProgram, match="noise"):
        _torch_programs.TorchPrograms([prog], [(buf, 0)], torch.device("cpu"))


def _opt(n: int, dtype: torch.dtype = torch.float64, momentum: bool = False) -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": torch.tensor(0.1 * (i + 1), dtype=dtype)}
              for i in range(n)]
    if momentum:
        for g in groups:
            g["momentum"] = torch.tensor(0.9, dtype=dtype)
        return torch.optim.SGD(groups)
    return torch.optim.SGD(groups)


_M = torch.tensor(0.95, dtype=torch.float64)  # tensor momentum bounds: the groups' momentum is packed
_B = torch.tensor(0.85, dtype=torch.float64)

BUILDS = {
    "StepLR": lambda o: F.StepLR(o, 3, 0.5, capturable=True),
    "CosineAnnealingLR": lambda o: F.CosineAnnealingLR(o, 40, eta_min=1e-3, capturable=True),
    "LinearLR": lambda o: F.LinearLR(o, 0.1, 1.0, 15, capturable=True),
    "CosineAnnealingWarmRestarts": lambda o: F.CosineAnnealingWarmRestarts(o, 5, T_mult=2, capturable=True),
    "OneCycleLR": lambda o: F.OneCycleLR(o, max_lr=[0.1 * (i + 1) for i in range(len(o.param_groups))],
                                         total_steps=200, max_momentum=_M, base_momentum=_B, capturable=True),
    "CyclicLR": lambda o: F.CyclicLR(o, 0.01, 0.1, step_size_up=6, max_momentum=_M, base_momentum=_B,
                                     capturable=True),
}


@pytest.fixture
def torch_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_capturable, "FORCE_TORCH_OPS", True)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_capturable_scheduler_with_torch_ops_matches_the_cpp_path(name: str, torch_ops: None,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    momentum = name in ("OneCycleLR", "CyclicLR")
    o1 = _opt(4, momentum=momentum)
    s1 = BUILDS[name](o1)
    assert s1._fastlr_capture._torch_ops is not None
    monkeypatch.setattr(_capturable, "FORCE_TORCH_OPS", False)
    o2 = _opt(4, momentum=momentum)
    s2 = BUILDS[name](o2)
    assert s2._fastlr_capture._torch_ops is None  # the C++ evaluator
    for _ in range(60):
        s1.step()
        s2.step()
        for g1, g2 in zip(o1.param_groups, o2.param_groups):
            assert _close(float(g1["lr"]), float(g2["lr"]))
            if momentum:
                assert _close(float(g1["momentum"]), float(g2["momentum"]))
    assert s1.last_epoch == s2.last_epoch == int(s1._fastlr_capture.counter) == 60


def test_torch_ops_save_and_resume_reproduce_the_run(torch_ops: None) -> None:
    o = _opt(3)
    s = F.CosineAnnealingLR(o, 50, eta_min=1e-3, capturable=True)
    for _ in range(20):
        s.step()
    state = s.state_dict()
    rest = []
    for _ in range(15):
        s.step()
        rest.append([float(g["lr"]) for g in o.param_groups])
    o2 = _opt(3)
    s2 = F.CosineAnnealingLR(o2, 50, eta_min=1e-3, capturable=True)
    s2.load_state_dict(state)
    for want in rest:
        s2.step()
        assert [float(g["lr"]) for g in o2.param_groups] == want


class _CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", ["CosineAnnealingLR", "OneCycleLR"])
def test_torch_ops_per_step_do_not_grow_with_groups(name: str, torch_ops: None) -> None:
    counts = []
    for n in (1, 512):
        o = _opt(n, momentum=name == "OneCycleLR")
        s = BUILDS[name](o)
        s.step()
        with _CountOps() as mode:
            s.step()
        counts.append(mode.ops)
    assert counts[0] == counts[1] > 0, counts
