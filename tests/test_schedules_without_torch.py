"""fastlr.schedules (and from_name, plot) work on a machine without torch: a meta-path hook makes
`import torch` fail in a subprocess, as tests/test_packaging.py does for `import fastlr`."""

from __future__ import annotations

import subprocess
import sys

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
sys.meta_path.insert(0, Block())
"""


def run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_schedules_without_torch():
    out = run(
        """
import json
import fastlr
from fastlr import schedules as S
s = S.warmup(S.cosine(1.0, 900, 0.1), 100)
t = s.table(1000)
assert t.shape == (1000,) and t[0] == 0.0 and t[100] == 1.0
assert S.from_dict(json.loads(json.dumps(s.to_dict()))) == s
h = S.from_name("cosine_with_min_lr", 10, 100, min_lr_rate=0.1)
assert abs(h(100) - 0.1) < 1e-15
p = S.plateau(1.0, patience=0)
p.observe(1.0); p.observe(1.0)
assert p(0) == 0.1
assert "torch" not in sys.modules
for name in ("get_scheduler", "ScheduledLR", "lr_scheduler"):
    try:
        getattr(fastlr, name)
    except ImportError as e:
        assert "PyTorch" in str(e), e
    else:
        raise AssertionError(name + " imported without torch")
print("ok")
"""
    )
    assert out.strip().splitlines()[-1] == "ok"


def test_plot_cli_without_torch():
    out = run(
        """
from fastlr.__main__ import main
assert main(["plot", "wsd:warmup=10,decay=20,total=100", "--ascii", "--width", "60"]) == 0
assert "torch" not in sys.modules
"""
    )
    assert "phase boundaries at steps 10, 80" in out
