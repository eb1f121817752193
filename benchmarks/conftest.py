"""pytest-benchmark suite: fastlr against torch in the same run (see benchmarks/README.md).

Every benchmark records ``extra_info`` (``scheduler``, ``groups``, ``lrs``, ``impl``) and belongs to a
group named ``<Scheduler>-G<n>`` (``-tensor`` / ``-equal`` for the other lr kinds), which holds
torch's ``step()``, fastlr's, and the floor. After pytest-benchmark's own tables, a summary gives the
ratios per group (torch/fastlr, fastlr/floor), and ``--benchmark-json``/``--benchmark-save`` files
carry them under ``"fastlr"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import importlib.util

import pytest

from fastlr import _bench

try:  # benchmarks of fastlr.schedules run without torch
    import torch
except ModuleNotFoundError:
    torch = None
else:
    torch.set_num_threads(1)  # one intra-op thread for every benchmark, torch's and fastlr's alike

if importlib.util.find_spec("pytest_benchmark") is not None:  # its hooks exist only with the plugin

    def pytest_benchmark_update_machine_info(config: Any, machine_info: dict[str, Any]) -> None:
        """Versions, CPU model and the fastlr commit, as ``python -m fastlr bench --json`` records them."""
        machine_info["fastlr"] = _bench.machine_info()

    def pytest_benchmark_update_json(config: Any, benchmarks: Any, output_json: dict[str, Any]) -> None:
        """Saved runs carry the ratios too (``pytest-benchmark compare`` ignores the extra key)."""
        session = getattr(config, "_benchmarksession", None)
        objs = getattr(session, "benchmarks", None) or []
        output_json["fastlr"] = {"ratios": ratios(objs)}


def _median_us(bench: Any) -> float | None:
    stats = getattr(bench, "stats", None)
    stats = getattr(stats, "stats", stats)  # Metadata.stats is a Stats object (pytest-benchmark >= 4)
    med = getattr(stats, "median", None)
    return None if med is None else med * 1e6


def ratios(benchmarks: Iterable[Any]) -> list[dict[str, Any]]:
    """Per group: the median µs of each impl, torch/fastlr and fastlr over the floor."""
    groups: dict[str, dict[str, Any]] = {}
    for b in benchmarks:
        info = getattr(b, "extra_info", {}) or {}
        impl = info.get("impl")
        med = _median_us(b)
        if impl is None or med is None or b.group is None:
            continue
        row = groups.setdefault(b.group, {"group": b.group, "kind": info.get("kind", "step")})
        row[impl] = med
        if "scale" in info:  # whole-curve rows: the factor from the measured steps to the reported ones
            row.setdefault("scale", {})[impl] = info["scale"]
    out = []
    for row in groups.values():
        t, f = row.get("torch"), row.get("fastlr")
        floor = row.get("floor+callables", row.get("floor"))
        if t and f:
            row["torch/fastlr"] = t / f
        if f and floor:
            row["fastlr/floor"] = f / floor
        opt = row.get("optimizer")
        if opt and t and f:
            row["sched_share_torch"] = (t - opt) / t
            row["sched_share_fastlr"] = (f - opt) / f
        out.append(row)
    return out


def _fmt(x: Any, spec: str) -> str:
    return format(x, spec) if isinstance(x, (int, float)) else "-"


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables
def pytest_terminal_summary(terminalreporter: Any, config: Any) -> None:
    session = getattr(config, "_benchmarksession", None)
    benchmarks = getattr(session, "benchmarks", None)
    rows = ratios(benchmarks or [])
    tr = terminalreporter
    steps = [r for r in rows if r["kind"] == "step"]
    if steps:
        tr.write_sep("-", "fastlr vs torch: scheduler.step() medians (µs) and ratios")
        tr.write_line(f"{'group':<40}{'torch':>11}{'fastlr':>11}{'floor':>11}{'torch/fastlr':>14}{'fastlr/floor':>14}")
        for r in steps:
            floor = r.get("floor+callables", r.get("floor"))
            tr.write_line(
                f"{r['group']:<40}{_fmt(r.get('torch'), '11.2f')}{_fmt(r.get('fastlr'), '11.2f')}"
                f"{_fmt(floor, '11.2f')}{_fmt(r.get('torch/fastlr'), '13.1f')}x{_fmt(r.get('fastlr/floor'), '13.2f')}x"
            )
    train = [r for r in rows if r["kind"] == "train"]
    if train:
        tr.write_sep("-", "share of a small training step: optimizer.step() + scheduler.step() (µs)")
        head = ("group", "optimizer", "+torch", "+fastlr", "torch share", "fastlr share")
        tr.write_line(f"{head[0]:<40}{head[1]:>11}{head[2]:>11}{head[3]:>11}{head[4]:>13}{head[5]:>14}")
        for r in train:
            tr.write_line(
                f"{r['group']:<40}{_fmt(r.get('optimizer'), '11.2f')}{_fmt(r.get('torch'), '11.2f')}"
                f"{_fmt(r.get('fastlr'), '11.2f')}{_fmt(100 * r.get('sched_share_torch', float('nan')), '12.1f')}%"
                f"{_fmt(100 * r.get('sched_share_fastlr', float('nan')), '13.1f')}%"
            )
    advance = [r for r in rows if r["kind"] == "advance"]
    if advance:
        tr.write_sep("-", "move 1000 steps ahead (µs): 1000 x step() (torch, fastlr), fastlr seek()")
        for r in advance:
            impls = ("torch", "fastlr", "seek", "ScheduledLR-seek")
            parts = [f"{impl} {r[impl]:.1f}" for impl in impls if impl in r]
            tr.write_line(f"{r['group']:<40}" + ", ".join(parts))
    memory = getattr(config, "_fastlr_memory_rows", [])
    if memory:
        tr.write_sep("-", "memory per step (tracemalloc): growth over many steps, transient at the peak")
        tr.write_line(f"{'scheduler':<30}{'impl':>8}{'G':>6}{'steps':>8}{'growth B':>10}{'G':>6}{'transient B':>13}")
        for m in memory:
            tr.write_line(
                f"{m['scheduler']:<30}{m['impl']:>8}{m['growth_groups']:>6}{m['steps']:>8}{m['growth_bytes']:>10}"
                f"{m['transient_groups']:>6}{m['transient_bytes']:>13}"
            )
    curve = [r for r in rows if r["kind"] == "curve"]
    if curve:
        tr.write_sep("-", "whole curve, 10^7 steps (s; stepping measured over 10^5 steps and scaled)")
        for r in curve:
            parts = [
                f"{impl} {r[impl] * r.get('scale', {}).get(impl, 1) / 1e6:.3g} s"
                for impl in ("torch", "fastlr", "table", "seek")
                if impl in r
            ]
            tr.write_line(f"{r['group']:<40}" + ", ".join(parts))


@pytest.fixture
def memory_report(request: Any) -> Any:
    """Append a row to the memory table of the terminal summary."""
    rows = request.config.__dict__.setdefault("_fastlr_memory_rows", [])
    return rows.append
