"""Capturable mode (``capturable=True``): the counter and the closed form on the device.

On CPU tensors the step runs the same program evaluator as the CUDA kernel (in C++, no torch op);
these tests check the values against torch's closed forms, the counter, save/resume, the refusals,
and that ``fastlr._cuda`` imports and reports launch failures without a GPU. The GPU itself is
exercised by tests/test_cuda.py and benchmarks/gpu_check.py (benchmarks/gpu_run.sh runs both).
"""

from __future__ import annotations

import math
import random
import warnings

import pytest

torch = pytest.importorskip("torch")

import torch.optim.lr_scheduler as _tls  # noqa: E402
from torch.optim import swa_utils as _swa  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import fastlr.lr_scheduler as F  # noqa: E402
from fastlr._capturable import CapturableError  # noqa: E402


def torch_class(name):
    return getattr(_swa if name == "SWALR" else _tls, name)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def make(n=3, dtype=torch.float64, opt="SGD", tensor=True):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(n)]
    lrs = [0.1 * (0.7**i) + 1e-3 * i for i in range(n)]
    groups = [{"params": [p], "lr": torch.tensor(lr, dtype=dtype) if tensor else lr} for p, lr in zip(params, lrs)]
    if opt == "SGD":
        return torch.optim.SGD(groups, momentum=0.9)
    betas = (torch.tensor(0.9, dtype=dtype), torch.tensor(0.999, dtype=dtype)) if tensor else (0.9, 0.999)
    return torch.optim.Adam(groups, betas=betas)


def rel(a, b) -> float:
    a, b = float(a), float(b)
    return abs(a - b) / max(abs(b), 1e-300)


M = torch.tensor(0.95, dtype=torch.float64)
B = torch.tensor(0.85, dtype=torch.float64)
CASES = [
    ("StepLR", dict(step_size=3, gamma=0.7), "SGD"),
    ("MultiStepLR", dict(milestones=[3, 9, 9, 40], gamma=0.3), "SGD"),
    ("ConstantLR", dict(factor=0.3, total_iters=7), "SGD"),
    ("LinearLR", dict(start_factor=0.1, total_iters=50), "SGD"),
    ("ExponentialLR", dict(gamma=0.999), "SGD"),
    ("PolynomialLR", dict(total_iters=70, power=0.9), "SGD"),
    ("CosineAnnealingLR", dict(T_max=77, eta_min=1e-3), "SGD"),
    ("CosineAnnealingWarmRestarts", dict(T_0=7, T_mult=2, eta_min=1e-3), "SGD"),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=7, mode="triangular2", cycle_momentum=False), "SGD"),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=5, mode="exp_range", gamma=0.999, max_momentum=M, base_momentum=B), "Adam"),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=400, max_momentum=M, base_momentum=B), "Adam"),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=400, three_phase=True, anneal_strategy="linear", cycle_momentum=False), "SGD"),
    ("SWALR", dict(swa_lr=0.05, anneal_epochs=13), "SGD"),
    ("SWALR", dict(swa_lr=0.05, anneal_epochs=13, anneal_strategy="linear"), "SGD"),
]
IDS = [f"{c[0]}-{i}" for i, c in enumerate(CASES)]


def as_floats(kw):
    return {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,kw,opt", CASES, ids=IDS)
def test_values_are_the_closed_form(name, kw, opt, dtype):
    """Every step equals torch's lr (and momentum/beta1) up to the closed form's rounding: 1e-12
    relative for float64, the float32 rounding for float32."""
    o_ref = make(opt=opt, tensor=False)
    o_cap = make(opt=opt, dtype=dtype)
    ref = torch_class(name)(o_ref, **as_floats(kw))
    cap = getattr(F, name)(o_cap, capturable=True, **kw)
    assert cap.capturable
    tol = 1e-12 if dtype == torch.float64 else 2**-23
    counter = cap._fastlr_capture.counter
    for k in range(1, 399):
        ref.step()
        cap.step()
        for g_ref, g_cap in zip(o_ref.param_groups, o_cap.param_groups):
            assert rel(g_cap["lr"], g_ref["lr"]) <= tol, (k, g_cap["lr"], g_ref["lr"])
            if "betas" in g_ref and kw.get("cycle_momentum", True) and name in ("CyclicLR", "OneCycleLR"):
                assert rel(g_cap["betas"][0], g_ref["betas"][0]) <= tol
        assert int(counter) == k
    sd = cap.state_dict()
    assert sd["last_epoch"] == 398 == ref.last_epoch
    assert sd.keys() == ref.state_dict().keys()


@pytest.mark.parametrize("name,kw,opt", CASES, ids=IDS)
def test_no_torch_op_per_step_on_cpu(name, kw, opt):
    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))

    cap = getattr(F, name)(make(opt=opt), capturable=True, **kw)
    Count.n = 0
    with Count():
        for _ in range(10):
            cap.step()
    assert Count.n == 0


@pytest.mark.parametrize("name,kw,opt", CASES, ids=IDS)
def test_save_and_resume_reproduce_the_uninterrupted_run(name, kw, opt):
    o_a, o_b = make(opt=opt), make(opt=opt)
    a = getattr(F, name)(o_a, capturable=True, **kw)
    for _ in range(150):
        a.step()
    sd = a.state_dict()
    saved_lrs = [g["lr"].clone() for g in o_a.param_groups]
    # a "restart": a new optimizer with the same lrs, a new capturable scheduler, then load
    b = getattr(F, name)(o_b, capturable=True, **kw)
    for g, v in zip(o_b.param_groups, saved_lrs):
        g["lr"].copy_(v)
    b.load_state_dict(sd)
    for k in range(100):
        a.step()
        b.step()
        assert [g["lr"].item() for g in o_a.param_groups] == [g["lr"].item() for g in o_b.param_groups], k
    assert a.state_dict()["last_epoch"] == b.state_dict()["last_epoch"] == 250


def test_step_epoch_sets_the_counter():
    o_ref, o_cap = make(tensor=False), make()
    ref, cap = _tls.StepLR(o_ref, step_size=3, gamma=0.5), F.StepLR(o_cap, step_size=3, gamma=0.5, capturable=True)
    for e in (7, 2, 30):
        ref.step(e)
        cap.step(e)
        assert [float(g["lr"]) for g in o_cap.param_groups] == [g["lr"] for g in o_ref.param_groups]
        assert int(cap._fastlr_capture.counter) == e == cap.last_epoch
    with pytest.raises(ValueError, match="integer epochs"):
        cap.step(2.5)


def test_get_last_lr_reads_the_device_values():
    o = make()
    s = F.ExponentialLR(o, gamma=0.5, capturable=True)
    for _ in range(3):
        s.step()
    last = s.get_last_lr()
    assert [t.item() for t in last] == [g["lr"].item() for g in o.param_groups]
    assert all(t.data_ptr() != g["lr"].data_ptr() for t, g in zip(last, o.param_groups))


def test_plateau_on_the_device_matches_torch():
    o_ref, o_cap = make(tensor=False), make()
    ref = _tls.ReduceLROnPlateau(o_ref, patience=2, cooldown=1, min_lr=1e-4, threshold=0.01)
    cap = F.ReduceLROnPlateau(o_cap, patience=2, cooldown=1, min_lr=1e-4, threshold=0.01, capturable=True)
    rng = random.Random(7)
    for _ in range(400):
        m = rng.choice([1.0, 0.5, math.nan, 2.0, 0.4, 0.3, 0.299])
        ref.step(m)
        cap.step(torch.tensor(m, dtype=torch.float64))  # the metric as a device tensor
        assert [g["lr"] for g in o_ref.param_groups] == [g["lr"].item() for g in o_cap.param_groups]
    sd_ref, sd_cap = ref.state_dict(), cap.state_dict()
    for k in sd_ref:
        if k != "_last_lr":
            assert (sd_ref[k] == sd_cap[k]) or (sd_ref[k] != sd_ref[k] and sd_cap[k] != sd_cap[k]), k


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda o: F.LambdaLR(o, lambda e: 0.9, capturable=True), "Python lambda"),
        (lambda o: F.MultiplicativeLR(o, lambda e: 0.9, capturable=True), "Python lambda"),
        (lambda o: F.CyclicLR(o, 0.01, 0.1, scale_fn=lambda x: 1.0, cycle_momentum=False, capturable=True), "scale_fn"),
        (lambda o: F.OneCycleLR(o, max_lr=0.1, total_steps=10, capturable=True), "tensor momentum"),
    ],
    ids=["LambdaLR", "MultiplicativeLR", "CyclicLR-scale_fn", "OneCycleLR-float-momentum"],
)
def test_refusals_are_clear(build, match):
    with pytest.raises(CapturableError, match=match):
        build(make())


def test_float_lrs_are_refused():
    with pytest.raises(CapturableError, match="tensor learning rates"):
        F.StepLR(make(tensor=False), step_size=2, capturable=True)


def test_cuda_module_imports_and_reports_launch_failures():
    cuda = pytest.importorskip("fastlr._cuda", reason="built without a CUDA compiler")
    if cuda.device_count() > 0:
        pytest.skip("a GPU is present: tests/test_cuda.py exercises the kernels")
    # Without a device every launch fails, and the failure is raised, never ignored.
    with pytest.raises(RuntimeError, match="fastlr._cuda"):
        cuda.apply(1, 0.5, 0.0, 1 << 20, 1, 0, 0, 0, 4, 0)
    with pytest.raises(RuntimeError, match="fastlr._cuda"):
        cuda.run_programs(1 << 20, 1 << 20, 1 << 20, 1 << 20, 1, 1 << 20, 1, 0)
    with pytest.raises(ValueError):
        cuda.run_programs(0, 0, 0, 0, 1, 0, 1, 0)


def _through_disk(sd):
    import io

    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,kw,opt", CASES, ids=IDS)
def test_resume_through_optimizer_load_state_dict(name, kw, opt, dtype):
    """A trainer's resume: optimizer.load_state_dict (new lr tensors in the groups) and the scheduler's,
    through torch.save/torch.load(weights_only=True), into objects that had run elsewhere; then the
    run continues exactly as the uninterrupted one (it used to freeze: the old buffers were written)."""
    o_a, o_b = make(opt=opt, dtype=dtype), make(opt=opt, dtype=dtype)
    a = getattr(F, name)(o_a, capturable=True, **kw)
    b = getattr(F, name)(o_b, capturable=True, **kw)
    # Resumed at step 5, where every case's lrs still change (a frozen group would show); b had run
    # elsewhere first (its old buffers hold other values).
    for _ in range(5):
        a.step()
    for _ in range(2):
        b.step()
    sd_opt, sd_sched = _through_disk(o_a.state_dict()), _through_disk(a.state_dict())
    o_b.load_state_dict(sd_opt)
    b.load_state_dict(sd_sched)
    loaded = [g["lr"] for g in o_b.param_groups]
    for k in range(100):
        a.step()
        b.step()
        assert [g["lr"].item() for g in o_a.param_groups] == [g["lr"].item() for g in o_b.param_groups], k
        if "betas" in o_a.param_groups[0]:
            assert [g["betas"][0].item() for g in o_a.param_groups] == [g["betas"][0].item() for g in o_b.param_groups]
    assert all(g["lr"] is t for g, t in zip(o_b.param_groups, loaded))  # the loaded tensors, updated
    assert b.state_dict()["last_epoch"] == a.state_dict()["last_epoch"] == 105


@pytest.mark.parametrize("change", ["add_param_group", "assign_lr", "new_list"])
def test_replaced_groups_are_followed(change):
    """Every way of replacing what the groups hold is noticed before the next write, and the new
    tensors take the closed form (capturable mode's values: torch's step(epoch), here)."""
    o_ref, o = make(tensor=False), make()
    ref = _tls.ExponentialLR(o_ref, gamma=0.9)
    s = F.ExponentialLR(o, gamma=0.9, capturable=True)
    for _ in range(5):
        ref.step(ref.last_epoch + 1)
        s.step()
    if change == "add_param_group":
        for opt, lr in ((o_ref, 0.05), (o, torch.tensor(0.05, dtype=torch.float64))):
            opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr, "initial_lr": 0.05})
        ref.base_lrs.append(0.05)
        s.base_lrs.append(0.05)
    elif change == "assign_lr":
        o_ref.param_groups[1]["lr"] = 0.033
        o.param_groups[1]["lr"] = torch.tensor(0.033, dtype=torch.float64)
    else:
        o_ref.param_groups = list(o_ref.param_groups)
        o.param_groups = [dict(g) for g in o.param_groups]
    new = [g["lr"] for g in o.param_groups]
    for k in range(10):
        ref.step(ref.last_epoch + 1)
        s.step()
        assert [g["lr"].item() for g in o.param_groups] == pytest.approx([g["lr"] for g in o_ref.param_groups], rel=1e-12), k
    assert all(g["lr"] is t for g, t in zip(o.param_groups, new))


def test_plateau_resume_through_optimizer_load_state_dict():
    o_a, o_b = make(), make()
    kw = dict(patience=2, cooldown=1, min_lr=1e-12, capturable=True)
    a, b = F.ReduceLROnPlateau(o_a, **kw), F.ReduceLROnPlateau(o_b, **kw)
    metrics = [1.0 / (k + 1) if k % 7 < 3 else 5.0 for k in range(120)]  # plateaus: a reduction every 7 steps
    for m in metrics[:20]:
        a.step(torch.tensor(m, dtype=torch.float64))
    o_b.load_state_dict(_through_disk(o_a.state_dict()))
    b.load_state_dict(_through_disk(a.state_dict()))
    for m in metrics[20:]:
        a.step(torch.tensor(m, dtype=torch.float64))
        b.step(torch.tensor(m, dtype=torch.float64))
        assert [g["lr"].item() for g in o_a.param_groups] == [g["lr"].item() for g in o_b.param_groups]


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_onecycle_continues_its_last_phase_at_total_steps(strategy, three_phase):
    """torch's OneCycleLR steps once more at last_epoch == total_steps (pct > 1 in its last phase): the
    cosine goes on, the line goes on (below the final lr). Capturable mode used to clamp there."""
    kw = dict(max_lr=0.1, total_steps=20, anneal_strategy=strategy, three_phase=three_phase)
    o_ref, o_cap = make(tensor=False), make()
    ref = _tls.OneCycleLR(o_ref, **kw)
    cap = F.OneCycleLR(o_cap, capturable=True, max_momentum=M, base_momentum=B, **kw)
    ref_m = _tls.OneCycleLR(make(tensor=False), max_momentum=0.95, base_momentum=0.85, **kw)
    for k in range(20):
        ref.step()
        ref_m.step()
        cap.step()
        for g_ref, g_m, g_cap in zip(o_ref.param_groups, ref_m.optimizer.param_groups, o_cap.param_groups):
            assert rel(g_cap["lr"], g_ref["lr"]) <= 1e-12, (k, g_cap["lr"], g_ref["lr"])
            assert rel(g_cap["momentum"], g_m["momentum"]) <= 1e-12
    assert ref.last_epoch == 20 == ref.total_steps


@pytest.mark.parametrize("devices", [0, 1])
def test_kernels_unusable_under_an_old_driver_fall_back_with_one_warning(devices, monkeypatch):
    """fastlr._cuda links CUDA's runtime statically: under a driver older than that runtime it sees no
    device while torch does. Then the kernels are not used (torch ops instead), with one warning."""
    from fastlr import _tensor_lrs

    class FakeKernels:
        calls = 0

        @staticmethod
        def device_count():
            FakeKernels.calls += 1
            return devices

    monkeypatch.setattr(_tensor_lrs, "_cuda", FakeKernels)
    monkeypatch.setattr(_tensor_lrs, "_cuda_usable", None)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        first, second = _tensor_lrs.cuda_kernels(), _tensor_lrs.cuda_kernels()
    assert FakeKernels.calls == 1  # asked once
    if devices:
        assert first is second is FakeKernels and not seen
    else:
        assert first is None and second is None
        assert len(seen) == 1 and "driver" in str(seen[0].message) and seen[0].category is RuntimeWarning
