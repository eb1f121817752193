"""Progress reporting of the long-running commands (fastlr._progress), without torch."""

from __future__ import annotations

import io

from fastlr._progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_mode_prints_each_tenth_once():
    out = io.StringIO()
    p = Progress(100, out, interval=0.0, what="work")
    for i in range(100):
        p.show(f"item {i}")
    p.close()
    lines = out.getvalue().splitlines()
    assert [ln.split("%")[0].split(":")[1].strip() for ln in lines] == [str(10 * k) for k in range(1, 11)]
    assert lines[-1].startswith("work: 100% (100/100")


def test_lines_mode_with_fewer_units_than_tenths():
    out = io.StringIO()
    p = Progress(3, out, interval=0.0)
    for _ in range(3):
        p.show()
    assert len(out.getvalue().splitlines()) == 3


def test_lines_are_throttled_by_the_interval():
    out = io.StringIO()
    p = Progress(1000, out, interval=3600.0)
    for _ in range(1000):
        p.show()
    assert out.getvalue() == ""


def test_terminal_rewrites_one_line_and_clears_it():
    out = _Tty()
    p = Progress(5, out)
    for i in range(5):
        p.show(f"cell {i}")
    text = out.getvalue()
    assert text.count("\r") == 5 and "\n" not in text and "[  5/5] cell 4" in text
    p.close()
    assert out.getvalue().endswith("\r") and out.getvalue()[len(text):].strip() == ""


def test_disabled_writes_nothing_and_forced_lines_on_a_terminal():
    out = _Tty()
    p = Progress(10, out, mode=False)
    for _ in range(10):
        p.show()
    p.close()
    assert out.getvalue() == ""
    p = Progress(10, out, mode=True, interval=0.0)
    for _ in range(10):
        p.show()
    assert len(out.getvalue().splitlines()) == 10 and "\r" not in out.getvalue()
