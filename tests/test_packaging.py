"""Packaging facts: one version source, README commands, import without torch."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import subprocess
import sys

import pytest

import fastlr

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_version_is_the_installed_metadata():
    assert fastlr.__version__ == importlib.metadata.version("fastlr")


def test_version_comes_from_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r'^version = "([^"]+)"', text, re.M)
    assert m and m.group(1) == fastlr.__version__


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up and run", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_commands():
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert cmds[0].endswith("python -m fastlr demo")
    assert cmds[1].endswith("python -m pytest -n auto")
    # Both build in the same venv without build isolation, so the second reuses the first's objects.
    for c in cmds:
        assert "--no-build-isolation" in c and c.startswith("python3 -m venv .venv && ")


def test_ci_runs_the_readme_commands_verbatim_in_order():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    demo, tests = _readme_commands()
    assert demo in ci and tests in ci
    assert ci.index(demo) < ci.index(tests)


def test_requires_python_is_what_ci_builds():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.10"' in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "for v in 3.10 3.11 3.12 3.13; do" in ci


def test_linux_release_wheels_are_built_with_the_cuda_kernels():
    """cibuildwheel's Linux wheels: FASTLR_CUDA=ON, with the nvcc that before-all installs (the same CUDA
    version in both places), and the architectures CMake defaults to; the macOS wheels without."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    linux, macos = cfg["linux"], cfg["macos"]
    assert linux["environment"]["FASTLR_CUDA"] == "ON"
    assert macos["environment"]["FASTLR_CUDA"] == "OFF"
    script = ROOT / ".github" / "install_cuda.sh"
    assert linux["before-all"] == "bash {project}/.github/install_cuda.sh" and script.exists()
    version = re.search(r"cuda-nvcc-(\d+)-(\d+)", script.read_text())
    assert version, "install_cuda.sh installs no cuda-nvcc package"
    assert linux["environment"]["CUDACXX"] == f"/usr/local/cuda-{version[1]}.{version[2]}/bin/nvcc"
    assert "75-real 80-real 90" in (ROOT / "CMakeLists.txt").read_text()


def test_import_fastlr_without_torch():
    # A meta-path hook makes `import torch` fail, as on a machine without torch.
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
sys.meta_path.insert(0, Block())
import fastlr
assert "torch" not in sys.modules
try:
    fastlr.lr_scheduler
except ImportError as e:
    assert "PyTorch" in str(e), e
    print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "ok", out.stderr
