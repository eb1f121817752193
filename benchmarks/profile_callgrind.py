"""Instruction counts per ``step()`` and per param group, under valgrind's callgrind (exact, noise-free).

Timings on a shared machine are noisy; instruction counts are not. This script runs itself under
``valgrind --tool=callgrind`` and, for each workload, steps a scheduler (or the floor loop) N times
at G = 1 and at G = 4096. It prints instructions per step and the marginal instructions per param
group, ``(Ir(G=4096) - Ir(G=1)) / 4095``, next to the floor's, and keeps the callgrind files so that
``callgrind_annotate --inclusive=yes FILE`` shows where the instructions go.

Run (about 5 minutes, most of it importing torch under valgrind):

    python benchmarks/profile_callgrind.py [--out DIR] [--only StepLR,OneCycleLR] [--torch]

Only the stepping is collected: collection is on inside ``itertools.starmap`` (which the driver uses
to call the step N times, and which nothing else here uses) and a dump is taken at each
``os.getpgrp()`` call, which separates the workloads.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

G_SMALL, G_LARGE = 1, 4096


def _workloads(only: set[str] | None, with_torch: bool) -> list[tuple[str, str, int]]:
    from fastlr import _bench

    out = []
    for g in (G_SMALL, G_LARGE):
        out += [("floor", "floor", g), ("floor-new-float", "floor", g), ("floor-lr+momentum", "floor", g)]
        out.append(("floor+callables", "LambdaLR", g))
        for name in _bench.SCHEDULERS:
            if only and name not in only:
                continue
            out.append(("fastlr", name, g))
            if with_torch:
                out.append(("torch", name, g))
    return out


def child(n_steps: int, only: set[str] | None, with_torch: bool) -> None:
    """Runs under valgrind: one dump per workload, in the order of _workloads()."""
    import warnings

    import torch

    from fastlr import _bench

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    for impl, name, g in _workloads(only, with_torch):
        if impl == "floor" and name == "floor":
            fn = _bench.make_floor(_bench.make_optimizer(g))
        elif impl == "floor-new-float":
            groups = _bench.make_optimizer(g).param_groups

            def fn(groups=groups) -> None:  # read, multiply (a new float), write: a chainable update's floor
                for gr in groups:
                    gr["lr"] = gr["lr"] * 0.9999999

        elif impl == "floor-lr+momentum":
            groups = _bench.make_optimizer(g).param_groups

            def fn(groups=groups) -> None:  # two keys written per group, as CyclicLR/OneCycleLR must
                for gr in groups:
                    gr["lr"] = 1e-4
                    gr["momentum"] = 0.9

        elif impl == "floor+callables":
            sched, _, _ = _bench.make_scheduler("LambdaLR", "torch", g)
            fn = _bench.make_floor_callables(_bench.make_optimizer(g), sched.lr_lambdas)
        else:
            _, _, fn = _bench.make_scheduler(name, impl, g)
        n = n_steps if impl != "torch" else max(2, n_steps // 4)
        fn()
        os.getpgrp()  # dump boundary: everything collected so far belongs to the previous workload
        collections.deque(itertools.starmap(fn, itertools.repeat((), n)), maxlen=0)
    os.getpgrp()


def _totals(files: list[Path]) -> list[int]:
    out = []
    for f in files:
        m = re.search(r"^(?:summary|totals):\s+(\d+)", f.read_text(errors="replace"), re.M)
        out.append(int(m.group(1)) if m else 0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=40, help="steps per workload (torch: a quarter)")
    ap.add_argument("--only", default="", help="comma-separated scheduler names")
    ap.add_argument("--torch", action="store_true", help="also count torch's schedulers")
    ap.add_argument("--out", default=None, help="directory for the callgrind files (default: a temp dir)")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(","))) or None
    if args.child:
        child(args.steps, only, args.torch)
        return 0
    out = Path(args.out or tempfile.mkdtemp(prefix="fastlr-callgrind-"))
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        "--toggle-collect=starmap_next",
        "--dump-before=posix_getpgrp",
        "--dump-before=os_getpgrp",
        "--dump-before=os_getpgrp_impl",
        f"--callgrind-out-file={out}/cg.out",
        sys.executable,
        __file__,
        "--child",
        f"--steps={args.steps}",
    ]
    if args.only:
        cmd.append(f"--only={args.only}")
    if args.torch:
        cmd.append("--torch")
    print("running:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    files = sorted(out.glob("cg.out.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    totals = _totals(files)
    wl = _workloads(only, args.torch)
    # Dump k (1-based) holds what was collected before the k-th os.getpgrp(): dump 1 is empty, dump
    # k + 1 is workload k.
    if len(totals) < len(wl) + 1:
        print(f"expected {len(wl) + 1} dumps, got {len(totals)} in {out}", file=sys.stderr)
        return 1
    per_step: dict[tuple[str, str, int], float] = {}
    for k, (impl, name, g) in enumerate(wl):
        n = args.steps if impl != "torch" else max(2, args.steps // 4)
        per_step[impl, name, g] = totals[k + 1] / n
    keys = sorted({(impl, name) for impl, name, _ in wl}, key=lambda k: (not k[0].startswith("floor"), k[1], k[0]))
    floor_pg = (per_step["floor", "floor", G_LARGE] - per_step["floor", "floor", G_SMALL]) / (G_LARGE - G_SMALL)
    print(f"{'workload':<40}{'Ir/step G=1':>14}{'Ir/step G=4096':>16}{'Ir/group':>10}{'x floor':>9}")
    for impl, name in keys:
        a, b = per_step[impl, name, G_SMALL], per_step[impl, name, G_LARGE]
        pg = (b - a) / (G_LARGE - G_SMALL)
        label = impl if impl.startswith("floor") else f"{impl} {name}"
        print(f"{label:<40}{a:>14.0f}{b:>16.0f}{pg:>10.1f}{pg / floor_pg:>8.2f}x")
    print(f"callgrind files: {out} (dump k+1 = workload k, in the order above by G then class)")
    for k, w in enumerate(wl):
        print(f"  {files[k + 1].name}: {w}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
