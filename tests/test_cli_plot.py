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


def _rows(out: str) -> tuple[list[str], list[str]]:
    """The value-axis labels and the plot rows of a unicode terminal plot."""
    rows = [line.split("┤", 1) for line in out.splitlines() if "┤" in line]
    return [lab.strip() for lab, _ in rows], [cells for _, cells in rows]


def test_value_axis_has_round_ticks(capsys):
    # Old labels: 0.8, -1.11e-16 (0.8 - 1.6 * 6 / 12 in floating point), -0.8.
    assert main(["plot", "linear:init_value=0.8,end_value=-0.8,steps=100", "--height", "13", "--width", "40"]) == 0
    labels, _ = _rows(capsys.readouterr().out)
    assert [x for x in labels if x] == ["1.0", "0.5", "0.0", "-0.5", "-1.0"]
    # Old labels: 1, 0.467, 0: 1-2-5 steps now, all with the same digits.
    assert main(["plot", "cosine:init_value=1,steps=1000", "--width", "60"]) == 0
    labels, _ = _rows(capsys.readouterr().out)
    assert [x for x in labels if x] == ["1.0", "0.8", "0.6", "0.4", "0.2", "0.0"]
    assert main(["plot", "cosine:init_value=3e-4,steps=1000", "--width", "60"]) == 0
    labels, _ = _rows(capsys.readouterr().out)
    assert [x for x in labels if x] == ["3e-04", "2e-04", "1e-04", "0"]


def test_ticks_snap_noise_to_zero():
    from fastlr._plot import nice_ticks, tick_labels

    ticks = nice_ticks(-5e-10, 1.0, 5)  # a bottom this close to 0 (relative to the top) is 0, not -0.2
    assert ticks[0] == 0.0 and tick_labels(ticks) == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    assert nice_ticks(-1.0, 1.1102230246251565e-16, 5)[-1] == 0.0
    assert tick_labels(nice_ticks(0.999, 1.001, 5)) == ["0.9990", "0.9995", "1.0000", "1.0005", "1.0010"]
    assert nice_ticks(-3.0, 7.0, 1) == [-10.0, 0.0, 10.0]  # one bin cannot straddle 0: two


def test_shared_cells_are_marked(capsys):
    # The two Hugging Face schedules share their warm-up: the old plot drew ○ over ● there, and the
    # legend did not say so.
    specs = ["linear:num_warmup_steps=10,num_training_steps=100", "cosine:num_warmup_steps=10,num_training_steps=100"]
    assert main(["plot", *specs, "--width", "60"]) == 0
    out = capsys.readouterr().out
    _, rows = _rows(out)
    for c in range(60):
        column = {row[c] for row in rows}
        assert column & {"●", "≡"} and column & {"○", "≡"}, f"a curve is hidden in column {c}"
    assert "  ≡ curves on top of each other: ● ○ (" in out
    assert main(["plot", "constant:value=1", "constant:value=1", "constant:value=1", "--ascii", "--width", "40"]) == 0
    out = capsys.readouterr().out
    assert "=" * 40 in out and "  = curves on top of each other: * o + (40 cells)" in out
    assert main(["plot", "constant:value=1", "constant:value=0.5", "--width", "40"]) == 0
    assert "on top of each other" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "spec",
    [
        "cosine:num_warmup_steps=10,num_training_steps=100",
        "cosine_with_min_lr:num_warmup_steps=10,num_training_steps=100,min_lr_rate=0.1",
        "cosine_warmup_with_min_lr:num_warmup_steps=10,num_training_steps=100,min_lr_rate=0.1",
    ],
    ids=["cosine", "cosine_with_min_lr", "cosine_warmup_with_min_lr"],
)
def test_hugging_face_cosines_show_their_horizon(spec, capsys):
    # Their multiplier keeps moving past num_training_steps (schedule.horizon is None), and the
    # plot said "(horizon: none)" and drew 1000 steps.
    assert main(["plot", spec, "--width", "60"]) == 0
    out = capsys.readouterr().out
    assert f"{spec}   (horizon: 100)" in out
    assert "step 105" in out and "┴" in out


def test_horizon_none_where_there_is_none(capsys):
    assert main(["plot", "inverse_sqrt:num_warmup_steps=10", "--width", "60"]) == 0
    out = capsys.readouterr().out
    assert "(horizon: none)" in out and "step 999" in out and "┴" not in out


def test_names_that_are_also_constructors(capsys):
    # onecycle is a constructor and a name: Hugging Face style arguments mean the name.
    assert main(["plot", "onecycle:num_training_steps=100", "--width", "60"]) == 0
    assert "(horizon: 99)" in capsys.readouterr().out
    assert main(["plot", "onecycle:max_value=1,total_steps=100", "--width", "60"]) == 0
