"""Measure everything the benchmarks README reports, with the alternating-block method, as markdown.

    python benchmarks/report.py [--quick] [--json results.json] > results.md

Sections: the targets table (every class at G = 1, 64, 4096, float lrs: the same cells as
``python -m fastlr bench``), the sweep over G = 1 ... 4096 (speed-up and fastlr over the floor),
tensor lrs, equal lrs, the share of a small training step, whole-curve work, moving 1000 steps
ahead (seek), and memory.
Every timing is a median over alternating blocks (torch, fastlr and the floor in turn, GC off inside
blocks, one torch thread); see fastlr._bench. Takes about 5 minutes (``--quick``: about 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from fastlr import _bench

G_ALL = _bench.GROUP_COUNTS
G_TARGET = (1, 64, 4096)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def step_cells(
    kinds: dict[str, tuple[int, ...]], blocks: int, target_s: float, passes: int
) -> list[dict[str, Any]]:
    """Every cell, in `passes` passes over all cells (fastlr._bench.measure_cells)."""
    cells = [(name, g, kind) for kind, counts in kinds.items() for name in _bench.SCHEDULERS for g in counts]
    done = [0]

    def progress(label: str) -> None:
        done[0] += 1
        log(f"[{done[0]}/{len(cells) * passes}] step {label}")

    return _bench.measure_cells(cells, blocks, target_s, passes, progress)


def _cell(rows: list[dict[str, Any]], name: str, g: int, kind: str) -> dict[str, Any] | None:
    for r in rows:
        if r["scheduler"] == name and r["groups"] == g and r["lrs"] == kind:
            return r
    return None


def pivot(rows: list[dict[str, Any]], kind: str, counts: tuple[int, ...], fmt: Any) -> str:
    head = "| scheduler | " + " | ".join(f"G={g}" for g in counts) + " |"
    sep = "|---|" + "---:|" * len(counts)
    lines = [head, sep]
    for name in _bench.SCHEDULERS:
        cells = []
        for g in counts:
            r = _cell(rows, name, g, kind)
            cells.append(fmt(r) if r else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def train_share(blocks: int, counts: tuple[int, ...]) -> list[dict[str, Any]]:
    out = []
    for opt_name in ("SGD", "AdamW"):
        for sched_name in ("CosineAnnealingLR", "OneCycleLR"):
            for g in counts:
                log(f"train {opt_name} {sched_name} G={g}")
                opt_only, _, k0 = _bench.make_train_step(opt_name, sched_name, "optimizer", g)
                t_train, t_sched, k1 = _bench.make_train_step(opt_name, sched_name, "torch", g)
                f_train, f_sched, k2 = _bench.make_train_step(opt_name, sched_name, "fastlr", g)
                fns = {
                    "optimizer": opt_only,
                    "torch": t_train,
                    "fastlr": f_train,
                    "torch_sched": t_sched,
                    "fastlr_sched": f_sched,
                }
                raw = _bench.time_alternating(fns, blocks=blocks, target_s=0.01)
                us = {k: _bench.median(v) * 1e6 for k, v in raw.items()}
                out.append(
                    {
                        "optimizer_name": opt_name,
                        "scheduler": sched_name,
                        "groups": g,
                        **{f"{k}_us": v for k, v in us.items()},
                        "torch_share": us["torch_sched"] / (us["optimizer"] + us["torch_sched"]),
                        "fastlr_share": us["fastlr_sched"] / (us["optimizer"] + us["fastlr_sched"]),
                    }
                )
                del k0, k1, k2
    return out


def whole_curve(measured: int = 10**5, curve: int = 10**7) -> dict[str, Any]:
    """CosineAnnealingLR, one group: stepping (and reading the lr) for `measured` steps, scaled to
    `curve`; fastlr's seek(curve) from a fresh scheduler; fastlr.schedules' table(curve)."""
    res: dict[str, Any] = {"measured_steps": measured, "curve_steps": curve}

    def fresh(impl: str) -> Any:
        o = _bench.make_optimizer(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = _bench.scheduler_module(impl).CosineAnnealingLR(o, T_max=curve)
            o.step()
        return s, o

    for impl in ("torch", "fastlr"):
        times = []
        for _ in range(3):
            s, o = fresh(impl)
            group, step, out = o.param_groups[0], s.step, []
            t0 = time.perf_counter()
            for _ in range(measured):
                step()
                out.append(group["lr"])
            times.append(time.perf_counter() - t0)
        res[f"{impl}_stepping_s"] = _bench.median(times) * curve / measured
    s, _ = fresh("fastlr")
    if hasattr(s, "seek"):
        times = []
        for _ in range(3):
            s, _ = fresh("fastlr")
            t0 = time.perf_counter()
            s.seek(curve)
            times.append(time.perf_counter() - t0)
        res["seek_s"] = _bench.median(times)
    try:
        from fastlr import schedules  # type: ignore[attr-defined]

        sch = schedules.cosine(3e-4, curve)
        sch.table(1000)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            sch.table(curve)
            times.append(time.perf_counter() - t0)
        res["table_s"] = _bench.median(times)
    except (ImportError, AttributeError, TypeError) as e:
        res["table_s"] = None
        res["table_note"] = f"fastlr.schedules table() not available: {e}"
    return res


def advance(blocks: int) -> list[dict[str, Any]]:
    """Move a scheduler 1000 steps ahead: 1000 x step() (torch, fastlr) against fastlr's seek()."""
    sys.path.insert(0, str(Path(__file__).parent))
    import pytest  # test_bench_curve skips through pytest where an API is absent

    from test_bench_curve import advance_callable

    out = []
    for name in ("CosineAnnealingLR", "OneCycleLR"):
        for g in (1, 64, 512):
            log(f"advance {name} G={g}")
            fns, keep = {}, []
            for impl in ("torch", "fastlr", "seek", "ScheduledLR-seek"):
                if impl == "ScheduledLR-seek" and name != "CosineAnnealingLR":
                    continue  # a ScheduledLR of the cosine schedule: the CosineAnnealingLR rows only
                try:
                    fn, s = advance_callable(impl, name, g)
                except pytest.skip.Exception:
                    continue
                fns[impl] = fn
                keep.append(s)
            raw = _bench.time_alternating(fns, blocks=max(5, blocks // 2), target_s=0.004)
            out.append({"scheduler": name, "groups": g, **{f"{k}_us": _bench.median(v) * 1e6 for k, v in raw.items()}})
    return out


def memory() -> list[dict[str, Any]]:
    rows = []
    for name in _bench.SCHEDULERS:
        row: dict[str, Any] = {"scheduler": name}
        for impl in ("torch", "fastlr"):
            log(f"memory {impl} {name}")
            _, _, step = _bench.make_scheduler(name, impl, 16)
            row[f"{impl}_growth_bytes_1e5_steps_G16"] = _bench.growth_bytes(step, 10**5)
            sched, _, step = _bench.make_scheduler(name, impl, 4096)
            row[f"{impl}_transient_bytes_G4096"] = max(_bench.transient_bytes(sched, step) for _ in range(12))
        rows.append(row)
    return rows


def markdown(doc: dict[str, Any]) -> str:
    info = doc["machine"]
    steps = doc["steps"]
    out = []
    out.append(
        f"Measured {info['date'][:10]} on {info['cpu']} ({info['cores_available']} cores, shared), "
        f"{info['system']}, Python {info['python']}, torch {info['torch']}, fastlr {info['fastlr']} "
        f"(commit {info['fastlr_commit'] or 'unknown'}). Medians of {doc['blocks']} alternating blocks per "
        f"cell (in {doc.get('passes', 1)} pass(es) over all cells), GC off inside blocks, one torch thread; "
        "µs per `scheduler.step()`; ratios are medians of per-round ratios."
    )
    out.append("\n### step() with float lrs (distinct per group): the targets\n")
    out.append(_bench.format_table([r for r in steps if r["lrs"] == "float" and r["groups"] in G_TARGET]))
    floors = {g: _cell(steps, "StepLR", g, "float") for g in G_ALL}
    out.append(
        "\nfloor = `for g in groups: g['lr'] = x`: "
        + ", ".join(f"G={g}: {r['floor_us']:.2f} µs" for g, r in floors.items() if r)
        + ". `*` LambdaLR/MultiplicativeLR: over the floor plus the user's callables (`g['lr'] = f(epoch)`)."
    )
    if any(r["groups"] not in G_TARGET for r in steps if r["lrs"] == "float"):
        out.append("\n### Sweep over G, float lrs: torch/fastlr (fastlr/floor)\n")
        out.append(
            pivot(steps, "float", G_ALL, lambda r: f"{r['speedup']:.1f}x ({r['fastlr_over_floor']:.2f})")
        )
    if any(r["lrs"] == "tensor" for r in steps):
        counts = tuple(g for g in G_ALL if _cell(steps, "StepLR", g, "tensor"))
        out.append(
            "\n### Tensor lrs (0-d float32 tensors): torch µs / fastlr µs (torch/fastlr)\n"
        )

        def num(x: float) -> str:  # three significant digits at most, none lost below 10 µs
            return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"

        out.append(pivot(steps, "tensor", counts,
                         lambda r: f"{num(r['torch_us'])} / {num(r['fastlr_us'])} ({r['torch_us'] / r['fastlr_us']:.0f}x)"))
    if any(r["lrs"] == "equal" for r in steps):
        counts = tuple(g for g in G_ALL if _cell(steps, "StepLR", g, "equal"))
        out.append("\n### Equal lrs in every group: fastlr µs equal / distinct (fastlr/floor equal)\n")

        def eq(r: dict[str, Any]) -> str:
            d = _cell(steps, r["scheduler"], r["groups"], "float")
            dist = f"{d['fastlr_us']:.0f}" if d else "-"
            return f"{r['fastlr_us']:.0f} / {dist} ({r['fastlr_over_floor']:.2f})"

        out.append(pivot(steps, "equal", counts, eq))
    if doc.get("train"):
        out.append(
            "\n### Share of a small training step (16-element parameter per group): scheduler step / "
            "(optimizer step + scheduler step), each timed alone\n"
        )
        out.append(
            "| optimizer | scheduler | G | optimizer µs | torch sched µs | fastlr sched µs | torch share | "
            "fastlr share | opt+torch µs | opt+fastlr µs |"
        )
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in doc["train"]:
            out.append(
                f"| {r['optimizer_name']} | {r['scheduler']} | {r['groups']} | {r['optimizer_us']:.1f} | "
                f"{r['torch_sched_us']:.2f} | {r['fastlr_sched_us']:.2f} | {100 * r['torch_share']:.1f}% | "
                f"{100 * r['fastlr_share']:.1f}% | {r['torch_us']:.1f} | {r['fastlr_us']:.1f} |"
            )
    if doc.get("curve"):
        c = doc["curve"]
        out.append("\n### Whole curve: CosineAnnealingLR, one group, 10^7 steps\n")
        out.append("| how | seconds |\n|---|---:|")
        out.append(f"| torch, stepping and reading the lr (10^5 steps, scaled) | {c['torch_stepping_s']:.2f} |")
        out.append(f"| fastlr drop-in, stepping and reading the lr (scaled) | {c['fastlr_stepping_s']:.2f} |")
        if c.get("seek_s") is not None:
            out.append(f"| fastlr `seek(10**7)` from step 0 (exact end state, no per-step lrs) | {c['seek_s']:.3f} |")
        if c.get("table_s") is not None:
            out.append(f"| `fastlr.schedules.cosine(...).table(10**7)` | {c['table_s']:.3f} |")
        else:
            out.append("| `fastlr.schedules` `table()` | not available in this build |")
    if doc.get("advance"):
        out.append(
            "\n### Move 1000 steps ahead (µs): 1000 x `step()` against `seek(last_epoch + 1000)` "
            "(exact: CosineAnnealingLR replays torch's recurrence in C++, OneCycleLR is O(1))\n"
        )
        keys = ["torch_us", "fastlr_us", "seek_us", "ScheduledLR-seek_us"]
        keys = [k for k in keys if any(k in r for r in doc["advance"])]
        out.append("| scheduler | G | " + " | ".join(k[:-3] for k in keys) + " |")
        out.append("|---|---:|" + "---:|" * len(keys))
        for r in doc["advance"]:
            cells = " | ".join(f"{r[k]:.1f}" if k in r else "-" for k in keys)
            out.append(f"| {r['scheduler']} | {r['groups']} | {cells} |")
    if doc.get("memory"):
        out.append(
            "\n### Memory (tracemalloc, bytes): growth over 10^5 steps at G=16; temporaries of one step "
            "beyond what it stores, at G=4096\n"
        )
        out.append("| scheduler | torch growth | fastlr growth | torch temporaries | fastlr temporaries |")
        out.append("|---|---:|---:|---:|---:|")
        for r in doc["memory"]:
            out.append(
                f"| {r['scheduler']} | {r['torch_growth_bytes_1e5_steps_G16']} | "
                f"{r['fastlr_growth_bytes_1e5_steps_G16']} | "
                f"{r['torch_transient_bytes_G4096']} | {r['fastlr_transient_bytes_G4096']} |"
            )
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the targets table and the extras only")
    ap.add_argument("--blocks", type=int, default=7, help="alternating rounds per cell and pass (default 7)")
    ap.add_argument("--passes", type=int, default=3, help="passes over all cells (default 3)")
    ap.add_argument("--json", default=None, help="write the raw results here")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: train,curve,advance,memory")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    kinds = {"float": G_TARGET} if args.quick else {"float": G_ALL, "tensor": G_ALL, "equal": (512, 4096)}
    doc: dict[str, Any] = {"machine": _bench.machine_info(), "blocks": args.blocks * args.passes}
    doc["passes"] = args.passes
    def save() -> None:  # after every section, so that an interrupted run keeps what it measured
        doc["elapsed_s"] = time.perf_counter() - t0
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")

    doc["steps"] = step_cells(kinds, args.blocks, 0.004, args.passes)
    save()
    if "train" not in skip:
        doc["train"] = train_share(args.blocks, (1, 64) if args.quick else (1, 64, 512))
        save()
    if "curve" not in skip:
        log("whole curve")
        doc["curve"] = whole_curve()
        save()
    if "advance" not in skip:
        doc["advance"] = advance(args.blocks)
        save()
    if "memory" not in skip and not args.quick:
        doc["memory"] = memory()
        save()
    sys.stdout.write(markdown(doc))
    log(f"done in {doc['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
