"""Helpers for the parity tests of the second drop-in issue (CyclicLR, OneCycleLR, CAWR,
ReduceLROnPlateau, SequentialLR, ChainedScheduler, SWALR).

Kept apart from ``conftest.py`` so the two test efforts do not collide. Everything here compares the
installed torch with fastlr at run time; no expected value is ever hard-coded.

The core idea is a *twin*: two identically built optimizers, torch's scheduler on one and fastlr's on
the other. Every action is applied to both and then everything observable is compared bitwise:
the outcome (return value or exception type and message), the warnings (text, category, count), each
param group's keys in order (lr, momentum, betas, initial_lr, ...), ``get_last_lr()`` and, where asked,
``state_dict()`` (keys in order, values bitwise, recursively).
"""

from __future__ import annotations

import io
import struct
import warnings
from typing import Any, Callable

import torch

from fastlr import lr_scheduler as F

TL = torch.optim.lr_scheduler
SWA = torch.optim.swa_utils

#: Group counts the issue asks for.
GROUPS = (1, 3, 17)

#: Steps for the tensor-lr runs per group count. torch's tensor path costs ~0.3 ms per group per step
#: (fill_ and clone per group), so the full 10,000 steps run at G=1 only, to keep the suite's time.
TENSOR_STEPS = {1: 10_000, 3: 2_000, 17: 500}


# ------------------------------------------------------------------------------------------------
# Bitwise views


def deep_bits(x: Any) -> Any:
    """A comparable structure whose equality is bitwise for floats and tensors and keeps container
    types and dict key order (so ``state_dict()`` key order is compared too)."""
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return (type(x).__name__, x)
    if isinstance(x, float):
        return ("f", struct.pack("<d", x))
    if isinstance(x, int):
        return ("i", x)
    if isinstance(x, torch.Tensor):
        t = x.detach()
        return ("T", str(t.dtype), tuple(t.shape), t.cpu().contiguous().view(-1).numpy().tobytes())
    if isinstance(x, dict):
        return (type(x).__name__, tuple((k, deep_bits(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, tuple(deep_bits(v) for v in x))
    if callable(x):
        return ("callable", getattr(x, "__qualname__", type(x).__qualname__))
    return ("obj", type(x).__qualname__, repr(x))


def group_view(opt: torch.optim.Optimizer) -> Any:
    """Every param group's keys (in order) and values, bitwise, without the parameters."""
    return deep_bits([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups])


def fast_values(opt: torch.optim.Optimizer, last: list[Any]) -> tuple[Any, ...]:
    """A cheap bitwise key of what a step changes: every group's lr, momentum and betas, and
    ``get_last_lr()``; types included (an int ``min_lr`` stored as lr must stay an int)."""
    vals: list[Any] = []
    for g in opt.param_groups:
        vals.append(g["lr"])
        if "momentum" in g:
            vals.append(g["momentum"])
        if "betas" in g:
            vals.extend(g["betas"])
    vals.extend(last)
    if all(type(v) is float for v in vals):
        return ("floats", len(vals), struct.pack(f"<{len(vals)}d", *vals))
    nums: list[float] = []
    tags: list[Any] = []
    for v in vals:
        if type(v) is float:
            nums.append(v)
            tags.append(float)
        elif isinstance(v, torch.Tensor) and v.dim() == 0 and v.dtype in (torch.float64, torch.float32):
            nums.append(v.item())  # exact: a float32 value is representable as a double
            tags.append(v.dtype)
        else:
            return ("mixed", deep_bits(vals))
    return ("numbers", tuple(tags), struct.pack(f"<{len(nums)}d", *nums))


def engine_counts(s: Any) -> tuple[int, int]:
    """(handled, deferred) of a fastlr scheduler's engine (created on its first step)."""
    e = s._fastlr_engine
    return e.handled, e.deferred


def assert_engine_did_the_work(s: Any, min_handled: int = 1) -> None:
    """The engine computed every call: without this a parity test could pass on torch's own code."""
    handled, deferred = engine_counts(s)
    assert deferred == 0, f"{type(s).__name__}: {deferred} calls deferred to torch (handled {handled})"
    assert handled >= min_handled, f"{type(s).__name__}: only {handled} calls handled"


def assert_engine_deferred(s: Any) -> None:
    """torch's code did some of the calls (documented deferrals: a custom scale_fn, anneal_func...)."""
    _, deferred = engine_counts(s)
    assert deferred > 0


# ------------------------------------------------------------------------------------------------
# Outcomes


class Outcome:
    """What a call did: its result or exception (type and message) and the warnings it raised."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.exc: BaseException | None = None
        self.result: Any = None
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            try:
                self.result = fn()
            except Exception as e:  # noqa: BLE001 - the exception is what is compared
                self.exc = e
        self.warnings = [(type(x.message), str(x.message), x.message.args, x.category) for x in w]

    def key(self) -> Any:
        exc = None if self.exc is None else (type(self.exc), str(self.exc), self.exc.args)
        return (exc, self.warnings)

    def __repr__(self) -> str:
        return f"Outcome(exc={self.exc!r}, warnings={[m for _, m, _, _ in self.warnings]!r})"


def same_outcome(f_torch: Callable[[], Any], f_fast: Callable[[], Any]) -> tuple[Outcome, Outcome]:
    a, b = Outcome(f_torch), Outcome(f_fast)
    assert a.key() == b.key(), f"torch: {a!r}\nfastlr: {b!r}"
    return a, b


def reload(sd: dict[str, Any]) -> dict[str, Any]:
    """A state dict through ``torch.save`` / ``torch.load(weights_only=True)``."""
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# ------------------------------------------------------------------------------------------------
# Optimizers


def lrs_for(n: int, seed: int = 0) -> list[float]:
    """Distinct awkward lrs (not powers of two), one per group."""
    return [0.1 * (0.73 ** ((i + seed) % 11)) + 1.3e-3 * i + 1e-4 * seed for i in range(n)]


def make_opt(
    n: int = 3,
    lr_kind: str = "float",
    opt: str = "SGD",
    lrs: list[float] | None = None,
    **kw: Any,
) -> torch.optim.Optimizer:
    """An optimizer with ``n`` one-parameter groups (float, float64 or float32 tensor lrs)."""
    lrs = lrs if lrs is not None else lrs_for(n)
    groups = []
    for lr in lrs:
        if lr_kind == "float":
            v: Any = lr
        elif lr_kind == "tensor64":
            v = torch.tensor(lr, dtype=torch.float64)
        elif lr_kind == "tensor32":
            v = torch.tensor(lr, dtype=torch.float32)
        else:
            raise ValueError(lr_kind)
        groups.append({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": v})
    cls = getattr(torch.optim, opt)
    if opt == "SGD":
        kw.setdefault("momentum", 0.9)
    return cls(groups, **kw)


def opt_step(opt: torch.optim.Optimizer) -> None:
    """A real optimizer step, so that the order warning is not emitted."""
    for g in opt.param_groups:
        for p in g["params"]:
            p.grad = torch.ones_like(p)
    opt.step()


# ------------------------------------------------------------------------------------------------
# Twins


class Twin:
    """torch's and fastlr's scheduler side by side on identical optimizers.

    ``build(mod, opt)`` constructs a scheduler from ``mod`` (:data:`TORCH`, torch's classes, or
    :mod:`fastlr.lr_scheduler`) on ``opt``; the two constructions must agree (outcome and warnings).
    """

    def __init__(self, build: Callable[[Any, torch.optim.Optimizer], Any],
                 make: Callable[[], torch.optim.Optimizer]) -> None:
        self.ot, self.of = make(), make()
        a, b = same_outcome(lambda: build(TORCH, self.ot), lambda: build(F, self.of))
        if a.exc is not None:
            raise AssertionError(f"construction raised on both sides: {a.exc!r}")
        self.st, self.sf = a.result, b.result
        self.check()

    # Comparisons
    def check(self, state: bool = True) -> None:
        """Everything observable is equal bitwise."""
        assert group_view(self.ot) == group_view(self.of), self._diff_groups()
        assert deep_bits(self.st.get_last_lr()) == deep_bits(self.sf.get_last_lr())
        if state:
            assert deep_bits(self.st.state_dict()) == deep_bits(self.sf.state_dict()), self._diff_state()

    def _diff_groups(self) -> str:
        for i, (a, b) in enumerate(zip(self.ot.param_groups, self.of.param_groups)):
            for k in a:
                if k != "params" and deep_bits(a.get(k)) != deep_bits(b.get(k)):
                    return f"group {i} key {k!r}: torch {a.get(k)!r} fastlr {b.get(k)!r}"
            if list(a) != list(b):
                return f"group {i} keys: torch {list(a)} fastlr {list(b)}"
        return "param_groups differ"

    def _diff_state(self) -> str:
        a, b = self.st.state_dict(), self.sf.state_dict()
        if list(a) != list(b):
            return f"state_dict keys: torch {list(a)} fastlr {list(b)}"
        for k in a:
            if deep_bits(a[k]) != deep_bits(b[k]):
                return f"state_dict[{k!r}]: torch {a[k]!r} fastlr {b[k]!r}"
        return "state dicts differ"

    # Actions
    def do(self, action: Callable[[Any, torch.optim.Optimizer], Any], state: bool = True) -> tuple[Outcome, Outcome]:
        """Apply ``action(sched, opt)`` to both; same outcome and warnings, then same state."""
        res = same_outcome(lambda: action(self.st, self.ot), lambda: action(self.sf, self.of))
        self.check(state)
        return res

    def steps(self, n: int, action: Callable[[Any, int], Any] | None = None, opt_first: bool = False,
              between: Callable[[int, torch.optim.Optimizer, Any], None] | None = None) -> None:
        """``n`` steps in lockstep (``action(sched, k)``, default ``sched.step()``), comparing the
        lrs, momentum/betas and ``get_last_lr()`` of every step bitwise; state dicts at the end.

        Exceptions must match (type, message, step). Warnings are not compared here (use ``do``).
        """
        act = action or (lambda s, k: s.step())
        for k in range(n):
            if between is not None:
                between(k, self.ot, self.st)
                between(k, self.of, self.sf)
            if opt_first:
                opt_step(self.ot)
                opt_step(self.of)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                et = ef = None
                try:
                    act(self.st, k)
                except Exception as e:  # noqa: BLE001
                    et = e
                try:
                    act(self.sf, k)
                except Exception as e:  # noqa: BLE001
                    ef = e
            if (et is None) != (ef is None) or (et is not None and (type(et), str(et)) != (type(ef), str(ef))):
                raise AssertionError(f"step {k}: torch raised {et!r}, fastlr raised {ef!r}")
            vt = fast_values(self.ot, self.st.get_last_lr())
            vf = fast_values(self.of, self.sf.get_last_lr())
            if vt != vf:
                raise AssertionError(
                    f"step {k}: torch {[g['lr'] for g in self.ot.param_groups]} / {self.st.get_last_lr()}\n"
                    f"        fastlr {[g['lr'] for g in self.of.param_groups]} / {self.sf.get_last_lr()}"
                )
        self.check()


class _TorchNS:
    """torch's classes under fastlr's names (SWALR lives in swa_utils)."""

    def __getattr__(self, name: str) -> Any:
        if name == "SWALR":
            return SWA.SWALR
        return getattr(TL, name)


TORCH = _TorchNS()


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def check_float32_contract(build: Callable[[Any, torch.optim.Optimizer], Any], n_groups: int, n_steps: int,
                           action: Callable[[Any, int], Any] | None = None, opt: str = "SGD") -> None:
    """fastlr's float32 tensor lrs against the documented contract (DESIGN.md section 3: "within float32
    rounding of torch's value; computing in double and rounding once is allowed"): every value is
    either torch's own float32 value or the float32 rounding of the float64 sequence torch computes on
    Python floats (started from the float32-rounded lrs), and stays close to torch's float32 value;
    tensor identity is kept."""
    act = action or (lambda s, k: s.step())
    lrs = [f32(x) for x in lrs_for(n_groups)]
    ref_o = make_opt(n_groups, "float", opt=opt, lrs=lrs)
    o32, t32 = make_opt(n_groups, "tensor32", opt=opt, lrs=lrs), make_opt(n_groups, "tensor32", opt=opt, lrs=lrs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, s32, st = build(TORCH, ref_o), build(F, o32), build(TORCH, t32)
        ids = [id(g["lr"]) for g in o32.param_groups]
        for k in range(n_steps):
            for s in (ref, s32, st):
                act(s, k)
            exact = [f32(float(g["lr"])) for g in ref_o.param_groups]
            got = [g["lr"].item() for g in o32.param_groups]
            theirs = [g["lr"].item() for g in t32.param_groups]
            for a, e, b in zip(got, exact, theirs):
                assert a == e or a == b, f"step {k}: {a} is neither float32({e}) nor torch's {b}"
                assert a == b or abs(a - b) <= 1e-4 * max(abs(a), abs(b)), (k, a, b)
    assert [id(g["lr"]) for g in o32.param_groups] == ids
    assert all(g["lr"].dtype == torch.float32 for g in o32.param_groups)
