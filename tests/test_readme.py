"""Every code block of the README runs as written (so no snippet can rot).

* Python blocks run in a fresh interpreter, in an empty directory; a block that needs a CUDA device
  is skipped where there is none, one that needs torch where torch is missing.
* Shell blocks: every command is either run (``python -m fastlr ...``, with this interpreter), or is
  an install/build command that CI runs itself (the two set-up commands: ``.ci/run`` runs them
  verbatim) or that cannot run inside a test (a build, the suite itself), listed here with the
  reason. A new command that is neither fails the test, so it has to be decided on.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_MPL = importlib.util.find_spec("matplotlib") is not None

# Shell commands not run here, by pattern, and why.
NOT_RUN = [
    (r"(^|\s)(\.venv/bin/)?pip install ", "an install or build"),
    (r"^\.venv/bin/python -m pytest", "the test or benchmark suite itself"),
    (r"^bash \.ci/run$", "CI itself"),
    (r"^python examples/choose_lr\.py$", "an example script: tests/test_examples.py runs it"),
]


def blocks() -> list[tuple[str, str, str]]:
    """(language, section heading, code) of every fenced block."""
    out = []
    section = ""
    for m in re.finditer(r"^(#{2,3} [^\n]+)$|^```(\w*)\n(.*?)^```$", README, re.M | re.S):
        if m.group(1):
            section = m.group(1).lstrip("# ").strip()
        else:
            out.append((m.group(2), section, m.group(3)))
    return out


def shell_commands() -> list[tuple[str, str]]:
    """(section, command) for every command line of the bash blocks (comments dropped, continuations joined)."""
    cmds = []
    for lang, section, code in blocks():
        if lang != "bash":
            continue
        code = code.replace("\\\n", " ")
        for line in code.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                cmds.append((section, line))
    return cmds


def test_the_readme_has_the_blocks_this_test_knows():
    langs = {lang for lang, _, _ in blocks()}
    assert langs <= {"python", "bash"}, langs
    assert sum(lang == "python" for lang, _, _ in blocks()) >= 3
    assert len(shell_commands()) >= 8


PY_BLOCKS = [(s, c) for lang, s, c in blocks() if lang == "python"]


@pytest.mark.parametrize("code", [c for _, c in PY_BLOCKS], ids=[s for s, _ in PY_BLOCKS])
def test_python_block_runs(code: str, tmp_path: pathlib.Path):
    if re.search(r"^\s*import torch|^from fastlr.lr_scheduler|fastlr\.lr_scheduler", code, re.M) and not HAS_TORCH:
        pytest.skip("needs torch")
    if "cuda" in code:
        if not HAS_TORCH:
            pytest.skip("needs torch")
        import torch

        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA device")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr


def _decide(section: str, cmd: str) -> str | None:
    if section == "Set up and run":
        return "a set-up command: .ci/run runs it verbatim"
    bare = re.sub(r'^(\w+=("[^"]*"|\S*)\s+)+', "", cmd)  # without leading VAR=value (or VAR="...") assignments
    for pat, why in NOT_RUN:
        if re.search(pat, bare):
            return why
    return None


SH = shell_commands()


@pytest.mark.parametrize(("section", "cmd"), SH, ids=[f"{s}: {c[:50]}" for s, c in SH])
def test_shell_command_runs_or_is_accounted_for(section: str, cmd: str, tmp_path: pathlib.Path):
    why = _decide(section, cmd)
    if why is not None:
        if why.startswith("a set-up command"):
            ci = (ROOT / ".ci" / "run").read_text().splitlines()
            assert cmd in ci, "the README's set-up command is not what CI runs"
        pytest.skip(f"not run here: {why}")
    argv = shlex.split(cmd)
    assert argv[:3] == ["python", "-m", "fastlr"], f"a README command this test does not know how to run: {cmd}"
    if argv[3] in ("bench", "demo") and not HAS_TORCH:
        pytest.skip("needs torch")
    if "-o" in argv and not HAS_MPL:
        pytest.skip("needs matplotlib")
    if argv[3] == "bench" and "--quick" not in argv:
        argv.append("--quick")  # the full run is 25 s of timing: the quick one runs the same code
    # Files the command reads: the README's plot example takes the user's own schedule JSON.
    if "my_schedule.json" in argv:
        from fastlr import schedules as S

        (tmp_path / "my_schedule.json").write_text(json.dumps(S.wsd(1.0, warmup=100, decay=500, total=3000).to_dict()))
    out = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    if "-o" in argv:
        assert (tmp_path / argv[argv.index("-o") + 1]).stat().st_size > 1000
