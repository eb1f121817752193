# Hand-written stubs for fastlr._core (the compiled engine; private: use the fastlr package).
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

# -- drop-in schedulers' fast path (cpp/bindings/register_scheduler.cpp) ---------------------------

BUILD: dict[str, str | bool]
"""What this build relies on in CPython's objects: ``group_memo`` (how a step knows a group dict is
unchanged: ``"version tags"`` (PEP 509, CPython <= 3.11), ``"dict watchers"`` (3.12+) or ``"off"``),
``tuple_in_place`` (beta1 rewritten inside a betas tuple), ``as_py314`` (built with
``FASTLR_AS_PY314=ON``: CPython 3.14's rules on an older Python)."""

def _group_memo(enabled: bool | None = None) -> bool:
    """Whether the group memo is on; ``enabled`` switches it (tests)."""

def _dict_stamp(d: object) -> int | None:
    """The stamp the group memo compares for dict ``d`` (None where it cannot follow ``d``)."""

class Engine:
    """Per-scheduler state of fastlr's C++ fast path."""

    def __init__(self, kind: int) -> None: ...
    @property
    def kind(self) -> int: ...
    @property
    def handled(self) -> int: ...
    @property
    def deferred(self) -> int: ...

def update(scheduler: object, epoch: object = None) -> bool: ...
def _install(base: type, engine_slot: Any, counter_type: type, update_group: Any, val_list: Any) -> None: ...

# -- CPython-semantics arithmetic, for tests (cpp/bindings/register_pymath.cpp) ---------------------

def _pymath(op: str, a: int | float, b: int | float | None = None) -> int | float | str: ...

# -- schedule programs (cpp/bindings/register_schedules.cpp, cpp/include/fastlr/program.hpp) -------

SCHEDULE_MAX_NODES: int
"""The most nodes one program may have."""

NodeSpec = tuple[int, Sequence[float], Sequence[int]]
"""(node kind, parameters, child indices); see the `op` enum in program.hpp."""

class Program:
    """A validated schedule program: nodes in post-order (children first), the root last."""

    def __init__(self, nodes: Sequence[NodeSpec]) -> None:
        """Build and validate; raises ValueError naming the bad node or parameter."""
    def __call__(self, t: float) -> float:
        """The value at step t (finite, in [0, 2**53]; else ValueError)."""
    def at(
        self, steps: npt.ArrayLike, float32: bool = False, threads: int = 0
    ) -> npt.NDArray[np.float64] | npt.NDArray[np.float32]:
        """The values at an array of steps, same shape, float64 (or float32), computed with the GIL
        released (threads: 0 picks FASTLR_NUM_THREADS or the hardware's count for long arrays)."""
    def table(
        self, n: int, start: float = 0.0, float32: bool = False, threads: int = 0
    ) -> npt.NDArray[np.float64] | npt.NDArray[np.float32]:
        """The values at steps start, ..., start + n - 1, float64 (or float32), computed with the GIL
        released (threads: 0 picks FASTLR_NUM_THREADS or the hardware's count for long tables)."""
    def active(self, t: float) -> list[bool]:
        """Which nodes are evaluated at step t."""
    def set_state(self, index: int, value: float) -> None:
        """Write the state of node `index`: a plateau's value, a one-boundary join's boundary or an
        offset's steps (IndexError for another node, ValueError for a value that breaks the program)."""
    @property
    def nodes(self) -> list[tuple[int, list[float], list[int]]]: ...
    def buffers(self) -> tuple[bytes, bytes, bytes]:
        """The raw (nodes, children, params) arrays in program.hpp's layout, for the device."""
    def __len__(self) -> int: ...

def _table_isa(which: str | None = None) -> str:
    """The block evaluator's build in use, "avx2" or "baseline"; "baseline" forces the baseline x86-64
    build, "auto" restores the run-time CPU check (for tests: the two must give the same bits)."""

def schedule_eval_many(programs: Sequence[Program], t: float) -> list[float]:
    """Each program at step t, in one call."""
