"""Memory: no growth over 10^5 steps, and no allocation per step beyond the objects a step stores.

For every drop-in class, fastlr and torch (for comparison), float lrs:

* growth: traced memory (``tracemalloc``, GC off) after 10^5 steps minus before, at G = 16 (a few
  KiB may change sides through CPython's freelists without any leak; a leak of one 16-byte object per
  step would show 1.6 MB);
* transient: with the previous state held alive, the traced memory at the peak of one ``step()``
  minus the memory after it (which includes the new floats, ``_last_lr`` and counters the step
  stored): the temporaries of one step, the largest over 12 consecutive steps, at G = 4096.

Asserted for fastlr: growth under 16 KiB; transient under 512 bytes, except the classes listed in
``KNOWN_TEMPORARIES`` (a temporary list of G pointers, 8 bytes per group; see
tests/test_perf_guard.py, which guards the same facts in CI at G = 1 and 512). torch's rows are
reported, not asserted. The summary prints the table.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("torch")

from fastlr import _bench  # noqa: E402

GROWTH_STEPS = 10**5
GROWTH_GROUPS = 16
TRANSIENT_GROUPS = 4096
TRANSIENT_STEPS = 12
KNOWN_TEMPORARIES = {"CyclicLR", "OneCycleLR", "ReduceLROnPlateau"}


@pytest.mark.parametrize("impl", ["fastlr", "torch"])
@pytest.mark.parametrize("name", _bench.SCHEDULERS)
def test_memory(name: str, impl: str, memory_report: Any) -> None:
    _, _, step = _bench.make_scheduler(name, impl, GROWTH_GROUPS, "float")
    growth = _bench.growth_bytes(step, GROWTH_STEPS)
    sched, _, step = _bench.make_scheduler(name, impl, TRANSIENT_GROUPS, "float")
    transient = max(_bench.transient_bytes(sched, step) for _ in range(TRANSIENT_STEPS))
    memory_report(
        {
            "scheduler": name,
            "impl": impl,
            "growth_groups": GROWTH_GROUPS,
            "steps": GROWTH_STEPS,
            "growth_bytes": growth,
            "transient_groups": TRANSIENT_GROUPS,
            "transient_bytes": transient,
        }
    )
    if impl == "fastlr":
        assert growth <= 16384, f"{name}: traced memory grew by {growth} bytes over {GROWTH_STEPS} steps"
        if name in KNOWN_TEMPORARIES:
            assert transient <= 8 * TRANSIENT_GROUPS + 512, transient
        else:
            assert transient <= 512, f"{name}: {transient} bytes of temporaries in one step"
