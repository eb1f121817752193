"""`python -m fastlr plot`: specs, JSON files, terminal and PNG output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fastlr import schedules as S
from fastlr.__main__ import main


def test_terminal_plot_marks_phases_and_horizon(capsys):
    assert main(["plot", "wsd:warmup=100,decay=200,total=1000", "cosine:init_value=1,steps=1000", "--width", "80"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "wsd:warmup=100,decay=200,total=1000   (horizon: 1000)" in out
    assert "phase boundaries at steps 100, 800" in out
    assert "┴" in out and "step 1050" in out
    assert sum("│" in line for line in lines) >= 16


def test_ascii_plot_and_named_schedules(capsys):
    spec = "cosine_with_min_lr:num_warmup_steps=10,num_training_steps=100,min_lr_rate=0.1"
    assert main(["plot", spec, "multistep:init_value=1,milestones=[30,60],gamma=0.5", "--ascii", "--steps", "120"]) == 0
    out = capsys.readouterr().out
    assert out.isascii()
    assert "phase boundaries at steps 10, 30, 60" in out


def test_json_spec_and_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    spec = tmp_path / "sched.json"
    spec.write_text(json.dumps([S.warmup(S.cosine(1.0, 90), 10).to_dict(), {**S.onecycle(1.0, 100).to_dict(), "label": "1cycle"}]))
    png = tmp_path / "out.png"
    assert main(["plot", str(spec), "-o", str(png)]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert main(["plot", str(spec)]) == 0
    assert "1cycle" in capsys.readouterr().out


def test_bad_specs_exit_2(capsys):
    assert main(["plot", "nosuch:x=1"]) == 2
    assert "unknown schedule" in capsys.readouterr().err
    assert main(["plot", "cosine:init_value=1"]) == 2
    assert main(["plot", "linear:0,1"]) == 2


def test_module_entry_point_keeps_demo():
    out = subprocess.run([sys.executable, "-m", "fastlr", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout and "plot" in out.stdout
