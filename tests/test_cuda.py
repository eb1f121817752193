"""fastlr on a CUDA device: the kernels, CUDA graph capture and replay, resume, and no host sync.

Skipped where torch sees no GPU. On a machine with one, after building with the kernels
(``FASTLR_CUDA=ON pip install .``), run ``pytest tests/test_cuda.py``; benchmarks/gpu_run.sh does
that, then benchmarks/gpu_check.py's timings. With ``FASTLR_REQUIRE_CUDA_KERNELS=1`` a build
without ``fastlr._cuda`` fails here instead of testing the torch-ops fallback alone.

``FASTLR_CUDA_TESTS_ON=cpu`` runs this file on CPU tensors instead (CI does, so that it cannot rot
between GPU sessions): "replays" are then eager calls, the sync checks are off, and the tests that
need a real capture skip. The GPU itself is what the file is for.

References: torch's own schedulers (float lrs on the CPU: Python floats, the parity contract) and,
for capturable mode, the same closed forms evaluated on the CPU.
"""

from __future__ import annotations

import io
import os
import struct
import warnings

import pytest

torch = pytest.importorskip("torch")
_ON = os.environ.get("FASTLR_CUDA_TESTS_ON", "cuda")
if _ON == "cuda" and not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import torch.optim.lr_scheduler as _tls  # noqa: E402
from torch.optim import swa_utils as _swa  # noqa: E402

import fastlr.lr_scheduler as F  # noqa: E402
from fastlr import _capturable, _tensor_lrs  # noqa: E402

import test_capturable as _capturable_tests  # noqa: E402  (the cases of the CPU-side tests)
import test_tensor_lrs as _tensor_lrs_tests  # noqa: E402

try:
    from fastlr import _cuda
except ImportError:  # built without a CUDA compiler: the torch-ops fallbacks run instead
    _cuda = None

DEV = torch.device(_ON)
GPU = DEV.type == "cuda"
needs_gpu = pytest.mark.skipif(not GPU, reason="needs a real CUDA graph capture")


def sync_debug(mode) -> None:
    """torch's sync debug mode ("error": any host-device synchronisation raises); GPU runs only."""
    if GPU:
        torch.cuda.set_sync_debug_mode(mode)


def synchronize() -> None:
    if GPU:
        torch.cuda.synchronize()


def torch_class(name):
    return getattr(_swa if name == "SWALR" else _tls, name)


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def rel(a, b) -> float:
    a, b = float(a), float(b)
    return abs(a - b) / max(abs(b), 1e-300)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    sync_debug(0)


def base_lrs(n: int) -> list[float]:
    return [0.1 * (0.7 ** (i % 17)) + 1e-3 * i for i in range(n)]


def make(n: int, *, kind: str = "t64", device=DEV, opt: str = "SGD", tensor_momentum: bool = False) -> torch.optim.Optimizer:
    """kind: float, t64, t32, mixed (even groups float, odd groups float64 tensors); parameters and
    tensors on `device`. opt: "SGD" (foreach, momentum 0.9), "SGD-fused", "Adam" (capturable on the
    GPU: it steps inside graphs) or "Adam-fused". torch's fused kernels read float32 tensor lrs, and
    its foreach SGD reads a tensor lr on the host, so graphs hold Adam (float64) or fused optimizers
    (float32)."""
    params = [torch.nn.Parameter(torch.zeros(4, device=device)) for _ in range(n)]
    dt = torch.float32 if kind == "t32" else torch.float64

    def value(i: int, lr: float):
        if kind == "float" or (kind == "mixed" and i % 2 == 0):
            return lr
        return torch.tensor(lr, dtype=dt, device=device)

    groups = [{"params": [p], "lr": value(i, lr)} for i, (p, lr) in enumerate(zip(params, base_lrs(n)))]
    for p in params:
        p.grad = torch.ones_like(p)
    t = (lambda v: torch.tensor(v, dtype=torch.float64, device=device)) if tensor_momentum else (lambda v: v)  # noqa: E731
    on_gpu = torch.device(device).type == "cuda"
    capturable = {"capturable": True} if on_gpu else {}  # torch's capturable optimizers are for GPUs
    if opt == "SGD":
        return torch.optim.SGD(groups, momentum=t(0.9))
    if opt == "SGD-fused":
        return torch.optim.SGD(groups, momentum=0.9, fused=True)
    if opt == "Adam-fused":
        return torch.optim.Adam(groups, fused=True, **capturable)
    return torch.optim.Adam(groups, betas=(t(0.9), t(0.999)), foreach=on_gpu or None, **capturable)


def lrs_of(opt) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


# ---------------------------------------------------------------------------------------------------
# The build


@needs_gpu
def test_the_kernels_are_built_and_see_the_gpu():
    if _cuda is None:
        if os.environ.get("FASTLR_REQUIRE_CUDA_KERNELS"):
            pytest.fail("fastlr._cuda is missing: build with FASTLR_CUDA=ON")
        pytest.skip("built without fastlr._cuda (the torch-ops fallbacks are tested below)")
    assert _cuda.device_count() == torch.cuda.device_count() >= 1


# ---------------------------------------------------------------------------------------------------
# The host-driven fused path (capturable=False): the engine computes on the host, one kernel launch
# (or a fixed few torch ops) writes every group's lr on the device.

# test_tensor_lrs.py's cases (the CPU side of this check), and warm restarts.
ENGINE_CASES = _tensor_lrs_tests.CASES + [
    ("CosineAnnealingWarmRestarts", dict(T_0=7, T_mult=2, eta_min=1e-3), "SGD"),
]
ENGINE_IDS = [c[0] for c in ENGINE_CASES]
STEPS = 300
# torch's own run on CUDA tensors is not its CPU run here: SWALR's _get_initial_lr divides a CUDA tensor
# by a Python float, which torch's CUDA kernel computes as a product with the reciprocal (seen on torch
# 2.11, H200: up to 2 ulps (4.3e-16) from step 2 on; compared within 1e-15 below). fastlr keeps the CPU
# (Python float) values on every device, the torch-ops fallback too: the parity contract.
TORCH_CUDA_ROUNDS_ON_ITS_OWN = {"SWALR"} if GPU else set()


def _host_driven_evaluator(force_torch_ops: bool, monkeypatch) -> None:
    """The kernel (`fastlr._cuda.apply`), or the in-place torch ops of builds without it. On the CPU
    (dry run): the engine's direct writes, or the same torch ops."""
    if force_torch_ops:
        monkeypatch.setattr(_tensor_lrs, "_cuda", None)
        if not GPU:
            monkeypatch.setattr(_tensor_lrs, "FORCE_DEVICE_EXECUTOR", True)
    elif GPU and _cuda is None:
        pytest.skip("built without fastlr._cuda")


@pytest.mark.parametrize("force_torch_ops", [False, True], ids=["kernel", "torch-ops"])
@pytest.mark.parametrize("n", [1, 17, 300] if GPU else [1, 17])  # 300: more than one block of the apply kernel
@pytest.mark.parametrize("kind", ["t64", "mixed"])
@pytest.mark.parametrize("name,kw,opt", ENGINE_CASES, ids=ENGINE_IDS)
def test_float64_cuda_lrs_are_torchs_bitwise(name, kw, opt, kind, n, force_torch_ops, monkeypatch):
    """float64 lrs on the GPU: every step equal (==) to torch's float lrs and to torch's own run on
    the same CUDA tensors; an edit of one lr mid-run is followed; the tensors stay in place."""
    _host_driven_evaluator(force_torch_ops, monkeypatch)
    ref = make(n, kind="float", device="cpu", opt=opt)
    o_t, o_f = make(n, kind=kind, opt=opt), make(n, kind=kind, opt=opt)
    s_ref, s_t, s_f = torch_class(name)(ref, **kw), torch_class(name)(o_t, **kw), getattr(F, name)(o_f, **kw)
    tensors = lambda: [g["lr"] for g in o_f.param_groups if isinstance(g["lr"], torch.Tensor)]  # noqa: E731
    held = tensors()
    for k in range(STEPS):
        if k == STEPS // 2:
            for o in (ref, o_t, o_f):
                g = o.param_groups[-1]
                if isinstance(g["lr"], torch.Tensor):
                    g["lr"].fill_(0.05)
                else:
                    g["lr"] = 0.05
        s_ref.step()
        s_t.step()
        s_f.step()
        got = lrs_of(o_f)
        assert got == lrs_of(ref), k
        if name in TORCH_CUDA_ROUNDS_ON_ITS_OWN:
            assert got == pytest.approx(lrs_of(o_t), rel=1e-15, abs=0), k
        else:
            assert got == lrs_of(o_t), k
        assert [float(x) for x in s_f.get_last_lr()] == got
    assert len(tensors()) == len(held) and all(a is b for a, b in zip(tensors(), held))
    assert s_f._fastlr_engine.deferred == 0


@pytest.mark.parametrize("force_torch_ops", [False, True], ids=["kernel", "torch-ops"])
@pytest.mark.parametrize("name,kw,opt", ENGINE_CASES, ids=ENGINE_IDS)
def test_float32_cuda_lrs_are_the_rounding_of_torchs_float64_values(name, kw, opt, force_torch_ops, monkeypatch):
    _host_driven_evaluator(force_torch_ops, monkeypatch)
    n = 40
    ref = make(n, kind="float", device="cpu", opt=opt)
    for g in ref.param_groups:  # the float32 values the GPU run starts from
        g["lr"] = f32(g["lr"])
        g["initial_lr"] = g["lr"]
    o = make(n, kind="t32", opt=opt)
    s_ref, s = torch_class(name)(ref, **kw), getattr(F, name)(o, **kw)
    for k in range(STEPS):
        s_ref.step()
        s.step()
        assert [f32(x) for x in lrs_of(ref)] == lrs_of(o), k
        assert [float(x) for x in s.get_last_lr()] == lrs_of(o), k  # the snapshot the kernel writes
    assert s._fastlr_engine.deferred == 0


def on_device(kw: dict) -> dict:
    """A case's keyword arguments with its tensors (momentum bounds) moved to the device."""
    return {k: v.to(DEV) if isinstance(v, torch.Tensor) else v for k, v in kw.items()}


# test_tensor_lrs.py's cases (its CPU buffers routed through the device executor), on the device.
MOMENTUM_CASES = _tensor_lrs_tests.MOMENTUM_CASES


@pytest.mark.parametrize("opt", ["SGD", "Adam"])
@pytest.mark.parametrize("name,kw", MOMENTUM_CASES, ids=[c[0] for c in MOMENTUM_CASES])
def test_tensor_momentum_is_cycled_on_the_gpu_as_torch_does(name, kw, opt):
    o1, o2 = make(5, opt=opt, tensor_momentum=True), make(5, opt=opt, tensor_momentum=True)
    s1, s2 = torch_class(name)(o1, **on_device(kw())), getattr(F, name)(o2, **on_device(kw()))
    mom = (lambda g: g["momentum"]) if opt == "SGD" else (lambda g: g["betas"][0])
    held = [mom(g) for g in o2.param_groups]
    for k in range(100):
        s1.step()
        s2.step()
        assert lrs_of(o1) == lrs_of(o2), k
        assert [float(mom(g)) for g in o1.param_groups] == [float(mom(g)) for g in o2.param_groups], k
    assert all(mom(g) is h for g, h in zip(o2.param_groups, held))


def test_float32_resume_on_the_gpu_is_the_uninterrupted_run():
    """The float64 values behind float32 CUDA lrs travel in the state dict (`_fastlr_lr64`)."""
    o_a, o_b = make(9, kind="t32"), make(9, kind="t32")
    a = F.CosineAnnealingLR(o_a, T_max=50, eta_min=1e-4)
    for _ in range(20):
        a.step()
    sd_o, sd_s = _through_disk(o_a.state_dict()), _through_disk(a.state_dict())
    b = F.CosineAnnealingLR(o_b, T_max=50, eta_min=1e-4)
    o_b.load_state_dict(sd_o)
    b.load_state_dict(sd_s)
    for k in range(60):
        a.step()
        b.step()
        assert lrs_of(o_a) == lrs_of(o_b), k


def test_host_driven_steps_never_synchronise():
    o = make(64)
    s = F.CosineAnnealingLR(o, T_max=100)
    lam = F.LambdaLR(make(64), lambda e: 0.99**e)  # new operand bytes every step: a pinned upload each
    s.step()
    lam.step()
    synchronize()
    sync_debug("error")
    for _ in range(50):
        s.step()
        lam.step()
    sync_debug(0)
    synchronize()
    ref = _tls.CosineAnnealingLR(make(64, kind="float", device="cpu"), T_max=100)
    ref_l = _tls.LambdaLR(make(64, kind="float", device="cpu"), lambda e: 0.99**e)
    for _ in range(51):
        ref.step()
        ref_l.step()
    assert lrs_of(o) == lrs_of(ref.optimizer)
    assert lrs_of(lam.optimizer) == lrs_of(ref_l.optimizer)


# ---------------------------------------------------------------------------------------------------
# Capturable mode: the counter and the closed forms on the device.

def cap_cases():
    """test_capturable.py's cases (checked there on CPU tensors), their momentum bounds on the device."""
    return [(name, on_device(kw), opt) for name, kw, opt in _capturable_tests.CASES]


CAP_IDS = [f"{c[0]}-{i}" for i, c in enumerate(cap_cases())]


def as_floats(kw):
    return {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}


def _moms(kw) -> bool:
    return "max_momentum" in kw and kw.get("cycle_momentum", True)


@pytest.fixture(params=[False, True], ids=["kernel", "torch-ops"])
def evaluator(request, monkeypatch):
    """The `fastlr._cuda` kernel, and the vectorised torch-ops fallback (builds without it)."""
    if request.param:
        monkeypatch.setattr(_capturable, "FORCE_TORCH_OPS", True)
    elif GPU and _cuda is None:
        pytest.skip("built without fastlr._cuda")
    return "torch-ops" if request.param else "kernel"


def check_evaluator(sched, evaluator):
    cap = sched._fastlr_capture
    assert (cap._torch_ops is not None) == (evaluator == "torch-ops")
    assert (cap._cuda_arrays is not None) == (evaluator == "kernel" and GPU)  # on the CPU: C++


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("i", range(len(CAP_IDS)), ids=CAP_IDS)
def test_capturable_steps_are_the_closed_form(i, dtype, evaluator):
    name, kw, opt = cap_cases()[i]
    n = 5
    o_ref = make(n, kind="float", device="cpu", opt=opt)
    o = make(n, kind="t32" if dtype == torch.float32 else "t64", opt=opt, tensor_momentum=_moms(kw))
    ref = torch_class(name)(o_ref, **as_floats(kw))
    cap = getattr(F, name)(o, capturable=True, **kw)
    check_evaluator(cap, evaluator)
    tol = 1e-12 if dtype == torch.float64 else 2**-23
    for k in range(1, 399):
        ref.step()
        cap.step()
        for g_ref, g in zip(o_ref.param_groups, o.param_groups):
            assert rel(g["lr"], g_ref["lr"]) <= tol, (k, float(g["lr"]), g_ref["lr"])
            if _moms(kw):
                key = "betas" if opt == "Adam" else "momentum"
                got, want = (g[key][0], g_ref[key][0]) if key == "betas" else (g[key], g_ref[key])
                assert rel(got, want) <= 1e-12, k
    assert int(cap._fastlr_capture.counter) == 398 == cap.state_dict()["last_epoch"]


def _warm_up(fn, times: int = 3) -> None:
    """Steps on a side stream before capture, as torch's CUDA-graph docs require."""
    if not GPU:
        for _ in range(times):
            fn()
        return
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(times):
            fn()
    torch.cuda.current_stream().wait_stream(s)


class _Eager:
    """A stand-in for a captured graph on the CPU dry run: each replay calls the function."""

    def __init__(self, fn) -> None:
        self.replay = fn


def _capture(fn):
    if not GPU:
        return _Eager(fn)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g


@pytest.mark.parametrize("setup", ["Adam-f64", "SGD-fused-f32"])
@pytest.mark.parametrize("i", range(len(CAP_IDS)), ids=CAP_IDS)
def test_graph_replays_advance_the_schedule(i, setup, evaluator):
    """optimizer.step() and scheduler.step() captured together; every replay is one step of the
    schedule (compared with the closed form at the device counter), with no host sync between.
    Adam (capturable, foreach) with float64 lrs, and fused SGD with float32 lrs. Where beta1 cycles,
    the graph holds the scheduler's step alone: torch's Adam reads a tensor beta1 on the host
    (``_foreach_lerp_``'s and ``addcmul_``'s scalar weights), so no torch optimizer with a cycled
    tensor beta1 can be captured (seen on torch 2.11: cudaErrorStreamCaptureUnsupported)."""
    name, kw, opt = cap_cases()[i]
    if opt == "Adam" and setup != "Adam-f64":
        pytest.skip("beta1 cycles: Adam only")
    n = 8
    f32_lrs = setup == "SGD-fused-f32"
    o = make(n, kind="t32" if f32_lrs else "t64", opt="SGD-fused" if f32_lrs else "Adam", tensor_momentum=_moms(kw))
    o_ref = make(n, kind="float", device="cpu", opt=opt)
    if f32_lrs:
        for g in o_ref.param_groups:
            g["lr"] = f32(g["lr"])
    tol = 2**-23 if f32_lrs else 1e-12
    sched = getattr(F, name)(o, capturable=True, **kw)
    ref = torch_class(name)(o_ref, **as_floats(kw))
    check_evaluator(sched, evaluator)

    def train_step():
        if not _moms(kw):
            o.step()
        sched.step()

    _warm_up(train_step)
    graph = _capture(train_step)
    c0 = int(sched._fastlr_capture.counter)
    assert c0 == 3
    sync_debug("error")
    for k in range(1, 301):  # within OneCycleLR's 400 steps
        graph.replay()
        if k % 50 == 0:
            sync_debug(0)
            t = int(sched._fastlr_capture.counter)
            assert t == c0 + k
            while ref.last_epoch < t:
                ref.step()
            for g, g_ref in zip(o.param_groups, o_ref.param_groups):
                assert rel(g["lr"], g_ref["lr"]) <= tol, (k, float(g["lr"]), g_ref["lr"])
            sync_debug("error")
    sync_debug(0)
    # the host learns the step from the device counter when it asks
    assert sched.state_dict()["last_epoch"] == c0 + 300
    assert [float(x) for x in sched.get_last_lr()] == lrs_of(o)


def _through_disk(sd):
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True, map_location=DEV)


@pytest.mark.parametrize("fused", [False, True], ids=["Adam-capturable", "Adam-fused"])
@pytest.mark.parametrize("name,kw", [
    ("CosineAnnealingLR", dict(T_max=300, eta_min=1e-4)),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=1000, cycle_momentum=False)),
    ("CosineAnnealingWarmRestarts", dict(T_0=10, T_mult=2)),
    ("MultiStepLR", dict(milestones=[60, 90], gamma=0.1)),
])
def test_resume_then_capture_then_replay_is_the_uninterrupted_run(name, kw, fused, evaluator):
    """A trainer's resume: run A captures its step and replays it; its state goes through disk; run B
    is built fresh, loads both state dicts, warms up, captures and replays. From there the two runs'
    lrs are equal (==) at every replay, and so are the parameters."""
    n = 6

    def build():
        torch.manual_seed(0)
        model = torch.nn.Sequential(*[torch.nn.Linear(8, 8) for _ in range(n)]).to(DEV)
        groups = [{"params": layer.parameters(), "lr": torch.tensor(base_lrs(n)[j], device=DEV)} for j, layer in enumerate(model)]
        opt = torch.optim.Adam(groups, capturable=GPU, fused=fused or None, foreach=None if fused else GPU or None)
        sched = getattr(F, name)(opt, capturable=True, **kw)
        x = torch.randn(32, 8).to(DEV)  # CPU generator: a failed capture elsewhere leaves CUDA's unusable

        def train_step():
            opt.zero_grad(set_to_none=False)
            model(x).square().mean().backward()
            opt.step()
            sched.step()

        return model, opt, sched, train_step

    model_a, opt_a, sched_a, step_a = build()
    _warm_up(step_a)
    graph_a = _capture(step_a)
    for _ in range(37):
        graph_a.replay()
    sd_model = _through_disk(model_a.state_dict())
    sd_opt = _through_disk(opt_a.state_dict())
    sd_sched = _through_disk(sched_a.state_dict())
    assert sd_sched["last_epoch"] == 40

    model_b, opt_b, sched_b, step_b = build()
    for _ in range(5):  # B had run elsewhere first: its tensors hold other values
        step_b()
    model_b.load_state_dict(sd_model)
    opt_b.load_state_dict(sd_opt)
    sched_b.load_state_dict(sd_sched)
    check_evaluator(sched_b, evaluator)
    _warm_up(step_b)  # three real steps, eager
    for _ in range(3):
        graph_a.replay()
    graph_b = _capture(step_b)
    synchronize()
    for k in range(100):
        graph_a.replay()
        graph_b.replay()
        if k % 20 == 19:
            assert lrs_of(opt_a) == lrs_of(opt_b), k
            assert int(sched_a._fastlr_capture.counter) == int(sched_b._fastlr_capture.counter) == 43 + k + 1
            for pa, pb in zip(model_a.parameters(), model_b.parameters()):
                torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
    assert sched_b.state_dict()["last_epoch"] == sched_a.state_dict()["last_epoch"] == 143


def test_load_into_a_captured_graph_moves_its_replays(evaluator):
    """The counter is loaded in place: a graph captured before `load_state_dict` replays from the
    loaded step (the lr tensors are the same ones)."""
    o = make(4)
    sched = F.CosineAnnealingLR(o, T_max=100, eta_min=1e-3, capturable=True)
    check_evaluator(sched, evaluator)
    _warm_up(sched.step, 1)
    graph = _capture(sched.step)
    for _ in range(10):
        graph.replay()
    sd = sched.state_dict()
    assert sd["last_epoch"] == 11
    for _ in range(30):
        graph.replay()
    sched.load_state_dict(sd)  # back to step 11
    graph.replay()
    ref = _tls.CosineAnnealingLR(make(4, kind="float", device="cpu"), T_max=100, eta_min=1e-3)
    for _ in range(12):
        ref.step()
    assert [rel(a, b) <= 1e-12 for a, b in zip(lrs_of(o), lrs_of(ref.optimizer))] == [True] * 4
    assert int(sched._fastlr_capture.counter) == 12


@needs_gpu
def test_replacing_the_groups_tensors_is_refused_inside_a_capture():
    o = make(3)
    sched = F.ExponentialLR(o, gamma=0.9, capturable=True)
    _warm_up(sched.step, 1)
    o.param_groups[1]["lr"] = torch.tensor(0.02, dtype=torch.float64, device=DEV)
    g = torch.cuda.CUDAGraph()
    with pytest.raises(_capturable.CapturableError, match="capture"):
        with torch.cuda.graph(g):
            sched.step()


def test_capturable_plateau_on_the_gpu_matches_torch():
    o_ref, o = make(3, kind="float", device="cpu"), make(3)
    ref = _tls.ReduceLROnPlateau(o_ref, patience=2, cooldown=1, min_lr=1e-4, threshold=0.01)
    cap = F.ReduceLROnPlateau(o, patience=2, cooldown=1, min_lr=1e-4, threshold=0.01, capturable=True)
    metrics = [1.0, 0.5, 2.0, 0.4, 0.3, 0.299, 5.0, 5.0, 5.0, 5.0] * 30
    dev_metrics = torch.tensor(metrics, dtype=torch.float64, device=DEV)
    synchronize()
    sync_debug("error")
    for k, m in enumerate(metrics):
        ref.step(m)
        cap.step(dev_metrics[k])  # the metric as a device tensor: no sync
        if k % 25 == 24:
            sync_debug(0)
            assert lrs_of(o_ref) == lrs_of(o), k
            sync_debug("error")
    sync_debug(0)
    assert lrs_of(o_ref) == lrs_of(o)


def test_a_plateau_step_captured_in_a_graph_reduces_on_replay():
    o = make(2)
    cap = F.ReduceLROnPlateau(o, patience=0, factor=0.5, capturable=True)
    metric = torch.tensor(1.0, dtype=torch.float64, device=DEV)
    _warm_up(lambda: cap.step(metric), 1)  # best = 1.0
    graph = _capture(lambda: cap.step(metric))
    before = lrs_of(o)
    for _ in range(3):  # no improvement: patience 0, one reduction a replay
        graph.replay()
    assert lrs_of(o) == [x * 0.125 for x in before]
    metric.fill_(0.1)  # an improvement: no reduction
    graph.replay()
    assert lrs_of(o) == [x * 0.125 for x in before]


# ---------------------------------------------------------------------------------------------------
# A second GPU: the kernels launch on the lr tensors' device, not on torch's current one.


@pytest.mark.skipif(not GPU or torch.cuda.device_count() < 2, reason="needs two CUDA devices")
@pytest.mark.parametrize("capturable", [False, True], ids=["host-driven", "capturable"])
def test_lrs_on_another_gpu_than_the_current_one(capturable):
    """An optimizer on cuda:1 while torch's current device is cuda:0 (no set_device): the lrs are
    torch's and stay on cuda:1, and torch's current device is still cuda:0 afterwards."""
    assert torch.cuda.current_device() == 0
    dev = torch.device("cuda:1")
    ref = make(5, kind="float", device="cpu")
    o = make(5, device=dev)
    kw = dict(T_max=40, eta_min=1e-3)
    s_ref = torch_class("CosineAnnealingLR")(ref, **kw)
    s = F.CosineAnnealingLR(o, capturable=capturable, **kw)
    for k in range(60):
        s_ref.step()
        s.step()
        got = lrs_of(o)
        if capturable:  # the closed form on the device
            assert got == pytest.approx(lrs_of(ref), rel=1e-12), k
        else:
            assert got == lrs_of(ref), k
    assert all(g["lr"].device == dev for g in o.param_groups)
    assert torch.cuda.current_device() == 0


@needs_gpu
@pytest.mark.parametrize("capturable", [False, True], ids=["host-driven", "capturable"])
def test_a_launch_makes_the_tensors_device_current_when_it_is_not(capturable, monkeypatch):
    """The branch the test above needs two GPUs for, on one: torch's current device reported as
    another one, so the launch runs inside torch.cuda.device(<the tensors' device>)."""
    if _cuda is None:
        pytest.skip("built without fastlr._cuda")
    entered = []
    real = torch.cuda.device

    class Spy(real):
        def __enter__(self):
            entered.append(self.idx)
            return super().__enter__()

    ref = make(3, kind="float", device="cpu")
    o = make(3)
    s_ref, s = torch_class("StepLR")(ref, step_size=2, gamma=0.5), F.StepLR(o, step_size=2, gamma=0.5, capturable=capturable)
    monkeypatch.setattr(_tensor_lrs, "_current_device", lambda: DEV.index + 1 if DEV.index is not None else 1)
    monkeypatch.setattr(torch.cuda, "device", Spy)
    for _ in range(5):
        s_ref.step()
        s.step()
    assert entered and set(entered) == {o.param_groups[0]["lr"].get_device()}
    assert lrs_of(o) == lrs_of(ref)

