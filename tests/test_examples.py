"""The example scripts under examples/ run to the end and print what their docstrings promise."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_choose_lr_example_runs():
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "choose_lr.py")], capture_output=True, text=True, check=False,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    for stage in ("1. the range test", "2. train at the suggestion", "3. three bad runs"):
        assert stage in out, out
    # each of the four runs is diagnosed, with its advice, and the summary names how each was made
    assert out.count("verdict '") == 4 and out.count("advice: ") == 4, out
    summary = next(line for line in out.splitlines() if "how each run was made" in line)
    for label in ("healthy ->", "lr_too_low ->", "lr_too_high ->", "lr_too_high_late ->"):
        assert label in summary, summary
    assert "diagnose agrees on" in out
