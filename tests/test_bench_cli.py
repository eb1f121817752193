"""``python -m fastlr bench``: the table, the JSON record, and no pytest-benchmark needed.

Runs a tiny plan (two classes, two group counts, one round in each of two passes): nothing here
looks at the timings.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from fastlr import _bench  # noqa: E402
from fastlr.__main__ import main  # noqa: E402

TINY = (("StepLR", "LambdaLR"), (1, 8), 1, 0.0002, 2)


def test_bench_prints_one_table_and_writes_json(tmp_path: Path) -> None:
    out = io.StringIO()
    path = tmp_path / "run.json"
    assert _bench.run_bench(json_path=str(path), out=out, plan=TINY) == 0
    text = out.getvalue()
    assert "| scheduler" in text and "torch µs" in text and "fastlr µs" in text and "fastlr/floor" in text
    rows = [line for line in text.splitlines() if line.startswith("| StepLR") or line.startswith("| LambdaLR")]
    assert len(rows) == 4
    doc = json.loads(path.read_text())
    machine = doc["machine"]
    for key in ("cpu", "logical_cores", "cores_available", "python", "torch", "fastlr", "fastlr_commit", "date"):
        assert key in machine, key
    assert [(r["scheduler"], r["groups"]) for r in doc["results"]] == [
        ("StepLR", 1),
        ("StepLR", 8),
        ("LambdaLR", 1),
        ("LambdaLR", 8),
    ]
    for r in doc["results"]:
        assert r["torch_us"] > 0 and r["fastlr_us"] > 0 and r["floor_us"] > 0
        assert r["fast_path"] is True
    assert doc["results"][2]["floor_kind"] == "floor+callables"


def test_bench_subcommand_is_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def fake_run_bench(quick: bool = False, json_path: str | None = None) -> int:
        seen.update(quick=quick, json_path=json_path)
        return 0

    monkeypatch.setattr(_bench, "run_bench", fake_run_bench)
    assert main(["bench", "--quick", "--json", "x.json"]) == 0
    assert seen == {"quick": True, "json_path": "x.json"}


def test_bench_runs_without_pytest_benchmark() -> None:
    # A meta-path hook makes pytest and pytest_benchmark unimportable, as on a fresh install.
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pytest", "_pytest", "pytest_benchmark", "cpuinfo"):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
from fastlr import _bench
sys.exit(_bench.run_bench(plan={TINY!r}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "| StepLR" in res.stdout
