"""The performance page's tables, made from a ``benchmarks/report.py --json`` file.

The numbers come from the checked-in JSON of a real run (``docs/_data/benchmarks.json``); the docs
build never times anything. Regenerate the JSON (about 5 minutes on 2 cores) with::

    python benchmarks/report.py --json docs/_data/benchmarks.json > /dev/null

Every time is shown beside torch's time for the same cell, or as a ratio to it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "docs" / "_data" / "benchmarks.json"
GPU_DATA = ROOT / "docs" / "_data" / "gpu_check.json"


def _report() -> Any:
    """benchmarks/report.py as a module (one source for its pivot table and the targets table)."""
    spec = importlib.util.spec_from_file_location("fastlr_bench_report", ROOT / "benchmarks" / "report.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def _num(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def render(path: Path = DATA) -> str:
    """The page's tables as Markdown."""
    report = _report()
    from fastlr import _bench

    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    m, steps = doc["machine"], doc["steps"]
    cell = report._cell
    out = [
        f"Measured on **{m['date'][:10]}**, on **{m['cpu']}** ({m['cores_available']} cores, a shared machine), "
        f"{m['system']}, Python {m['python']}, torch {m['torch']} (one thread), fastlr {m['fastlr']} "
        f"(commit `{m['fastlr_commit'] or 'unknown'}`). Medians of {doc['blocks']} alternating blocks per cell "
        f"({doc.get('passes', 1)} passes over all cells); the run took {doc.get('elapsed_s', 0) / 60:.0f} minutes. "
        "µs per `scheduler.step()`; a ratio is the median of the per-round ratios, so it holds better than "
        "the absolute times when the machine is busy.",
        "",
        "## `step()` with float lrs, one lr per group",
        "",
        "fastlr/floor: fastlr's time over the cost of a bare `for g in groups: g['lr'] = x` loop "
        "(`*`: plus the user's lambdas).",
        "",
        _bench.format_table([r for r in steps if r["lrs"] == "float" and r["groups"] in report.G_TARGET]),
    ]
    if any(r["groups"] not in report.G_TARGET for r in steps if r["lrs"] == "float"):
        out += ["", "## Speed-up over the number of param groups G, float lrs: torch/fastlr", "",
                report.pivot(steps, "float", report.G_ALL, lambda r: f"{r['speedup']:.1f}x")]
    for kind, title in (("tensor", "Tensor lrs (0-d float32 tensors)"), ("equal", "The same lr in every group")):
        if any(r["lrs"] == kind for r in steps):
            counts = tuple(g for g in report.G_ALL if cell(steps, "StepLR", g, kind))
            out += ["", f"## {title}: torch µs / fastlr µs (torch/fastlr)", "",
                    report.pivot(steps, kind, counts, lambda r: f"{_num(r['torch_us'])} / {_num(r['fastlr_us'])} "
                                 f"({r['torch_us'] / r['fastlr_us']:.0f}x)")]
    if doc.get("train"):
        out += ["", "## Share of a small training step", "",
                "scheduler step / (optimizer step + scheduler step), each timed alone; 16-element parameter per group.",
                "", "| optimizer | scheduler | G | torch µs | fastlr µs | torch share | fastlr share |",
                "|---|---|---:|---:|---:|---:|---:|"]
        for r in doc["train"]:
            out.append(f"| {r['optimizer_name']} | {r['scheduler']} | {r['groups']} | {r['torch_sched_us']:.2f} | "
                       f"{r['fastlr_sched_us']:.2f} | {100 * r['torch_share']:.1f}% | {100 * r['fastlr_share']:.1f}% |")
    if doc.get("curve"):
        c = doc["curve"]
        t = c["torch_stepping_s"]
        out += ["", f"## Every lr of a {c['curve_steps']:.0e}-step CosineAnnealingLR run, one group", "",
                "| how | seconds | torch/this |", "|---|---:|---:|",
                f"| torch, stepping and reading the lr (timed over {c['measured_steps']:.0e} steps, scaled) | {t:.2f} | 1.0x |",
                f"| fastlr drop-in, stepping and reading the lr | {c['fastlr_stepping_s']:.2f} | {t / c['fastlr_stepping_s']:.1f}x |"]
        if c.get("seek_s"):
            out.append(f"| fastlr `seek(last step)` (exact end state) | {c['seek_s']:.3f} | {t / c['seek_s']:.0f}x |")
        if c.get("table_s"):
            out.append(f"| `fastlr.schedules.cosine(...).table(n)` (every value) | {c['table_s']:.3f} | {t / c['table_s']:.0f}x |")
    if doc.get("advance"):
        keys = [k for k in ("torch_us", "fastlr_us", "seek_us", "ScheduledLR-seek_us") if any(k in r for r in doc["advance"])]
        out += ["", "## Moving 1000 steps ahead: 1000 x `step()` against `seek()` (µs; torch/this in brackets)", "",
                "| scheduler | G | " + " | ".join(k[:-3] for k in keys) + " |", "|---|---:|" + "---:|" * len(keys)]
        for r in doc["advance"]:
            cells = [f"{_num(r[k])} ({r['torch_us'] / r[k]:.0f}x)" if k in r else "-" for k in keys]
            out.append(f"| {r['scheduler']} | {r['groups']} | " + " | ".join(cells) + " |")
    if doc.get("memory"):
        out += ["", "## Memory (tracemalloc, bytes)", "",
                "Growth over 10^5 steps at G=16; temporaries of one step at G=4096.", "",
                "| scheduler | torch growth | fastlr growth | torch temporaries | fastlr temporaries |",
                "|---|---:|---:|---:|---:|"]
        for r in doc["memory"]:
            out.append(f"| {r['scheduler']} | {r['torch_growth_bytes_1e5_steps_G16']} | {r['fastlr_growth_bytes_1e5_steps_G16']} "
                       f"| {r['torch_transient_bytes_G4096']} | {r['fastlr_transient_bytes_G4096']} |")
    return "\n".join(out) + "\n"


def _ratio(x: float) -> str:
    return f"{x:.2f}x" if x < 1 else f"{x:.1f}x" if x < 10 else f"{x:.0f}x"


def render_gpu(path: Path = GPU_DATA) -> str:
    """The GPU table, from a ``benchmarks/gpu_check.py --json`` file (run by ``benchmarks/gpu_run.sh``)."""
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    i = doc["info"]
    out = [
        f"Measured on **{i['date']}**, on one **{i['gpu']}** (driver {i['driver']}), Python {i['python']}, torch "
        f"{i['torch']}, fastlr {i['fastlr']} ({i['how']}). `CosineAnnealingLR` with float32 CUDA lrs; µs per "
        "`scheduler.step()`, medians of 7 alternating blocks; the ratio is torch's time over fastlr's in the same run.",
        "",
        "| G | torch | fastlr, host-driven | fastlr, capturable (eager) | captured graph replay | "
        "torch-ops fallback (eager) | fallback replay |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["timings"]:
        t = r["torch"]
        out.append(f"| {r['groups']} | {_num(t)} | {_num(r['fastlr_fused'])} ({_ratio(t / r['fastlr_fused'])}) | "
                   f"{_num(r['fastlr_capturable'])} ({_ratio(t / r['fastlr_capturable'])}) | "
                   f"{_num(r['fastlr_graph_replay'])} | {_num(r['fastlr_torch_ops'])} "
                   f"({_ratio(t / r['fastlr_torch_ops'])}) | {_num(r['fastlr_torch_ops_replay'])} |")
    if doc.get("failures"):
        out += ["", "Checks that failed in that run: " + "; ".join(doc["failures"])]
    return "\n".join(out)
