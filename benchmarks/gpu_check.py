"""GPU check for fastlr's CUDA paths: correctness under graph capture, no host sync, and timings.

Run on a machine with a GPU, from the repository root, after building:

    pip install --no-build-isolation --no-deps . && python benchmarks/gpu_check.py --json gpu.json

What it does, in one call:

1. Checks:
   * ``fastlr._cuda`` is built and sees the GPU;
   * host-driven fused path on CUDA tensor lrs: float64 lrs bitwise equal to torch's for every
     engine class, float32 lrs the float32 rounding of the float64 values, tensor identity kept;
   * capturable mode: ``optimizer.step()`` + ``scheduler.step()`` captured in ``torch.cuda.graph`` for
     ``Adam(fused=True, capturable=True)`` and ``SGD``, replayed 1,000 times; every replay's lrs
     compared with the closed form (relative error <= 1e-12 for float64); and the counter advanced
     by exactly 1,000; the same for SGD with the torch-ops fallback (what builds without
     ``fastlr._cuda`` run, forced with ``_capturable.FORCE_TORCH_OPS``);
   * all stepping runs under ``torch.cuda.set_sync_debug_mode("error")``: any host-device sync raises.
2. Times one step, per G in (1, 64, 1024), medians over alternating blocks:
   torch's scheduler with tensor lrs | fastlr host-driven fused path | the same with the snapshot for
   get_last_lr() copied by a second launch (the path before the kernel wrote it) | fastlr capturable, eager |
   fastlr capturable, captured graph replay (scheduler step alone); and the torch-ops fallback,
   eager and replayed.

Exit status 0 when every check passes. ``--device cpu`` runs the non-CUDA parts as a smoke test.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
import warnings
from typing import Any, Callable

import torch
import torch.optim.lr_scheduler as T

import fastlr
import fastlr.lr_scheduler as F
from fastlr import _capturable, _tensor_lrs

CASES: list[tuple[str, dict[str, Any]]] = [
    ("StepLR", dict(step_size=3, gamma=0.7)),
    ("MultiStepLR", dict(milestones=[3, 9, 40], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.999)),
    ("LinearLR", dict(start_factor=0.1, total_iters=50)),
    ("PolynomialLR", dict(total_iters=700, power=0.9)),
    ("CosineAnnealingLR", dict(T_max=77, eta_min=1e-3)),
    ("CosineAnnealingWarmRestarts", dict(T_0=7, T_mult=2, eta_min=1e-3)),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=7, cycle_momentum=False)),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=5000, cycle_momentum=False)),
    ("LambdaLR", dict(lr_lambda=lambda e: 0.999**e)),
]

failures: list[str] = []


def check(cond: bool, what: str) -> None:
    print(("  ok   " if cond else "  FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def make(device: str, n: int, dtype: torch.dtype, opt: str = "SGD"):
    """opt: "SGD" (foreach, momentum 0.9: never stepped inside a graph, since torch's foreach SGD reads a
    tensor lr on the host), "Adam" (capturable, foreach: float64 lrs in graphs) or "Adam-fused" /
    "SGD-fused" (torch's fused kernels read float32 tensor lrs)."""
    params = [torch.nn.Parameter(torch.zeros(16, device=device)) for _ in range(n)]
    groups = [
        {"params": [p], "lr": torch.tensor(0.1 * (0.7 ** (i % 17)) + 1e-3 * i, dtype=dtype, device=device)}
        for i, p in enumerate(params)
    ]
    cap = {"capturable": True} if device == "cuda" else {}
    if opt == "Adam":
        o = torch.optim.Adam(groups, foreach=device == "cuda" or None, **cap)
    elif opt == "Adam-fused":
        o = torch.optim.Adam(groups, fused=True, **cap)
    elif opt == "SGD-fused":
        o = torch.optim.SGD(groups, momentum=0.9, fused=True)
    else:
        o = torch.optim.SGD(groups, momentum=0.9)
    for p in params:
        p.grad = torch.ones_like(p)
    return o


def host_driven_parity(device: str) -> None:
    print("host-driven fused path (tensor lrs on %s)" % device)
    for name, kw in CASES:
        o1, o2 = make(device, 5, torch.float64), make(device, 5, torch.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s1, s2 = getattr(T, name)(o1, **kw), getattr(F, name)(o2, **kw)
        ids = [id(g["lr"]) for g in o2.param_groups]
        ok = True
        for _ in range(300):
            s1.step()
            s2.step()
        ok = [g["lr"].item() for g in o1.param_groups] == [g["lr"].item() for g in o2.param_groups]
        check(ok and ids == [id(g["lr"]) for g in o2.param_groups] and s2._fastlr_engine.deferred == 0,
              f"{name}: float64 bitwise after 300 steps, identity kept, engine-driven")


def capture_check(device: str, torch_ops: bool = False, replays: int = 1000) -> None:
    """`torch_ops`: the fallback for builds without fastlr._cuda (vectorised torch ops), forced."""
    _capturable.FORCE_TORCH_OPS = torch_ops
    print("capturable mode in a CUDA graph" + (" (torch-ops fallback)" if torch_ops else ""))
    setups = [("Adam", torch.float64), ("Adam-fused", torch.float32), ("SGD-fused", torch.float32)]
    for opt_name, dtype in setups[:1] if torch_ops else setups:
        for name, kw in [("CosineAnnealingLR", dict(T_max=777, eta_min=1e-4)), ("OneCycleLR", dict(max_lr=0.1, total_steps=5000, cycle_momentum=False)), ("StepLR", dict(step_size=50, gamma=0.9))]:
            o = make(device, 8, dtype, opt_name)
            ref_o = make("cpu", 8, torch.float64)
            sched = getattr(F, name)(o, capturable=True, **kw)
            ref = getattr(F, name)(ref_o, **kw)
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):  # warm-up on a side stream, as torch's docs require
                for _ in range(3):
                    o.step()
                    sched.step()
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                o.step()
                sched.step()
            counter0 = int(sched._fastlr_capture.counter.item())
            worst = 0.0
            torch.cuda.set_sync_debug_mode("error")
            try:
                for k in range(replays):
                    g.replay()
                    if k % 100 == 99 or k == replays - 1:
                        torch.cuda.set_sync_debug_mode(0)
                        torch.cuda.synchronize()
                        t = int(sched._fastlr_capture.counter.item())
                        ref.seek(t)
                        for ga, gb in zip(o.param_groups, ref_o.param_groups):
                            a, b = ga["lr"].item(), gb["lr"]
                            worst = max(worst, abs(a - b) / max(abs(b), 1e-300))
                        torch.cuda.set_sync_debug_mode("error")
            finally:
                torch.cuda.set_sync_debug_mode(0)
            counter1 = int(sched._fastlr_capture.counter.item())
            tol = 1e-12 if dtype == torch.float64 else 2**-23
            what = f"{opt_name}({str(dtype)[6:]})+{name}" + (" (torch ops)" if torch_ops else "")
            check(sched._fastlr_capture._torch_ops is not None if torch_ops else sched._fastlr_capture._torch_ops is None,
                  f"{what}: the intended evaluator")
            check(counter1 - counter0 == replays, f"{what}: {replays} replays advanced the counter by {counter1 - counter0}")
            check(worst <= tol, f"{what}: replayed lrs match the closed form (worst rel {worst:.2e} <= {tol:.1e})")
    _capturable.FORCE_TORCH_OPS = False


def no_sync_eager(device: str) -> None:
    print("no host-device sync while stepping")
    for capturable in (False, True):
        o = make(device, 64, torch.float64)
        sched = F.CosineAnnealingLR(o, T_max=100, capturable=capturable)
        sched.step()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(50):
                sched.step()
            ok = True
        except RuntimeError as e:  # raised by torch on a synchronising call
            ok = False
            print("   ", e)
        finally:
            torch.cuda.set_sync_debug_mode(0)
        check(ok, f"{'capturable' if capturable else 'host-driven'} step() under set_sync_debug_mode('error')")


def median_times(fns: dict[str, Callable[[], None]], reps: int, device: str, blocks: int = 7) -> dict[str, float]:
    """Median seconds per call of each function, over `blocks` blocks of `reps` calls; the functions
    alternate block by block, so that a slow spell of the machine hits all of them alike."""
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(blocks):
        for key, fn in fns.items():
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            if device == "cuda":
                torch.cuda.synchronize()
            samples[key].append((time.perf_counter() - t0) / reps)
    return {k: statistics.median(v) for k, v in samples.items()}


def _unfused_snapshot(sched: Any) -> Callable[[], None]:
    """`sched.step` on the earlier host-driven path: the kernel, then a copy for get_last_lr()."""

    def step() -> None:
        _tensor_lrs._FUSE_SNAPSHOT = False
        try:
            sched.step()
        finally:
            _tensor_lrs._FUSE_SNAPSHOT = True

    return step


def timings(device: str) -> list[dict[str, Any]]:
    print("timings (median per step, microseconds)")
    rows = []
    for n in (1, 64, 1024):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_torch = T.CosineAnnealingLR(make(device, n, torch.float32), T_max=10**6)
            t_fast = F.CosineAnnealingLR(make(device, n, torch.float32), T_max=10**6)
            t_cap = F.CosineAnnealingLR(make(device, n, torch.float32), T_max=10**6, capturable=True)
            _capturable.FORCE_TORCH_OPS = True
            t_ops = F.CosineAnnealingLR(make(device, n, torch.float32), T_max=10**6, capturable=True)
            _capturable.FORCE_TORCH_OPS = False
        reps = max(20, 2000 // n)
        eager = median_times({"torch": t_torch.step, "fastlr_fused": t_fast.step,
                              "fastlr_fused_copy_snapshot": _unfused_snapshot(t_fast),
                              "fastlr_capturable": t_cap.step, "fastlr_torch_ops": t_ops.step}, reps, device)
        row: dict[str, Any] = {"groups": n, **{k: v * 1e6 for k, v in eager.items()}}
        if device == "cuda":
            graphs = {}
            for key, sched in (("fastlr_graph_replay", t_cap), ("fastlr_torch_ops_replay", t_ops)):
                g = torch.cuda.CUDAGraph()
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    sched.step()
                torch.cuda.current_stream().wait_stream(s)
                with torch.cuda.graph(g):
                    sched.step()
                graphs[key] = g.replay
            row.update({k: v * 1e6 for k, v in median_times(graphs, reps, device).items()})
        rows.append(row)
        print("   ", {k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    return rows


def main() -> int:
    warnings.simplefilter("ignore")  # torch's order warnings: the timings step schedulers alone
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--quick", action="store_true",
                    help="checks only, few replays, no timings (for compute-sanitizer, which slows every launch)")
    args = ap.parse_args()
    device = args.device
    info: dict[str, Any] = {"fastlr": fastlr.__version__, "torch": torch.__version__, "python": platform.python_version()}
    if device == "cuda":
        if not torch.cuda.is_available():
            print("no CUDA device")
            return 2
        import fastlr._cuda as fc

        info["gpu"] = torch.cuda.get_device_name()
        info["date"] = time.strftime("%Y-%m-%d")
        try:
            import subprocess

            info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True, timeout=30).stdout.split("\n")[0].strip()
        except (OSError, subprocess.SubprocessError):
            info["driver"] = "unknown"
        info["how"] = "benchmarks/gpu_check.py"
        check(fc.device_count() >= 1, "fastlr._cuda is built and sees the GPU")
    host_driven_parity(device)
    if device == "cuda":
        no_sync_eager(device)
        capture_check(device, replays=20 if args.quick else 1000)
        capture_check(device, torch_ops=True, replays=20 if args.quick else 1000)
    if args.quick:
        print("\nFAILURES:" if failures else "\nall checks passed", *failures, sep="\n  ")
        return 1 if failures else 0
    rows = timings(device)
    print("\n| G | torch tensor-lr step | fastlr fused | (snapshot copied) | fastlr capturable (eager) |"
          " captured graph replay | torch-ops fallback (eager) | torch-ops fallback replay |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['groups']} | {r['torch']:.2f} µs | {r['fastlr_fused']:.2f} µs | "
              f"{r['fastlr_fused_copy_snapshot']:.2f} µs | {r['fastlr_capturable']:.2f} µs | "
              f"{r.get('fastlr_graph_replay', math.nan):.2f} µs | {r['fastlr_torch_ops']:.2f} µs | "
              f"{r.get('fastlr_torch_ops_replay', math.nan):.2f} µs |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "timings": rows, "failures": failures}, f, indent=2)
    print("\nFAILURES:" if failures else "\nall checks passed", *failures, sep="\n  ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
