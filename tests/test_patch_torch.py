"""fastlr.patch_torch(): code written against torch.optim.lr_scheduler gets fastlr's classes and
behaves exactly as it does unpatched. The oracle is torch's own classes, kept aside before patching
(fastlr.lr_scheduler.TORCH_CLASSES); the fastlr side is reached only through torch's patched names."""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.optim.lr_scheduler as TL  # noqa: E402
import torch.optim.swa_utils as SWA  # noqa: E402
from _every_class import _METRICS, EVERY_CLASS  # noqa: E402
from _helpers_more import Twin, make_opt  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastlr  # noqa: E402
import fastlr.lr_scheduler as F  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ORIG = F.TORCH_CLASSES
NAMES = sorted(n for n in ORIG if isinstance(getattr(F, n, None), type))


class _Originals:
    """torch's classes as they were before any patch."""

    def __getattr__(self, name: str) -> Any:
        return ORIG[name]


class _ThroughTorch:
    """Classes looked up in torch's modules at call time (patched: fastlr's)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(SWA if name == "SWALR" else TL, name)


ORIGINALS, THROUGH_TORCH = _Originals(), _ThroughTorch()


@pytest.fixture
def patched():
    with fastlr.patch_torch() as p:
        assert p.made
        yield p
    assert not fastlr.torch_patched()


def test_names_are_swapped_and_put_back():
    assert not fastlr.torch_patched()
    before = {n: getattr(SWA if n == "SWALR" else TL, n) for n in NAMES}
    assert all(before[n] is ORIG[n] for n in NAMES)
    p = fastlr.patch_torch()
    try:
        assert fastlr.torch_patched() and p.made
        for n in NAMES:
            now = getattr(SWA if n == "SWALR" else TL, n)
            assert now is getattr(F, n), n
            assert issubclass(now, ORIG[n])
        assert not fastlr.patch_torch().made  # a second call while patched does nothing
    finally:
        fastlr.unpatch_torch()
    assert {n: getattr(SWA if n == "SWALR" else TL, n) for n in NAMES} == before
    fastlr.unpatch_torch()  # not patched: nothing to do
    assert TL._LRScheduler.__mro__[1] is ORIG["LRScheduler"]  # torch's deprecated alias is untouched


def test_modules_that_imported_the_names_are_swapped_too():
    mod = types.ModuleType("user_code_imported_before")
    mod.LambdaLR = ORIG["LambdaLR"]
    mod.RLROP = ORIG["ReduceLROnPlateau"]
    mod.other = 3
    sys.modules[mod.__name__] = mod
    try:
        with fastlr.patch_torch():
            assert mod.LambdaLR is F.LambdaLR and mod.RLROP is F.ReduceLROnPlateau and mod.other == 3
        assert mod.LambdaLR is ORIG["LambdaLR"] and mod.RLROP is ORIG["ReduceLROnPlateau"]
        with fastlr.patch_torch(imported=False):
            assert TL.LambdaLR is F.LambdaLR and mod.LambdaLR is ORIG["LambdaLR"]
        # A name rebound to something else meanwhile is left as it is by the undo.
        with fastlr.patch_torch():
            mod.LambdaLR = "mine"
        assert mod.LambdaLR == "mine"
    finally:
        del sys.modules[mod.__name__]


@pytest.mark.parametrize("lr_kind", ["float", "tensor64"])
@pytest.mark.parametrize("name", sorted(EVERY_CLASS))
def test_every_class_through_patched_names_is_torch_exactly(name: str, lr_kind: str, patched: Any):
    """Built by torch's (patched) name: fastlr's object on the engine, torch's values bitwise."""
    tw = Twin(lambda M, o: EVERY_CLASS[name](THROUGH_TORCH if M is F else ORIGINALS, o), lambda: make_opt(4, lr_kind))
    # (Twin's "torch" side was built from torch's original class and its "fastlr" side through the
    # patched names; see Twin.__init__'s `build(TORCH, ...)` / `build(F, ...)`.)
    s_orig, s_patched = tw.st, tw.sf
    assert type(s_orig) is ORIG[name] and type(s_patched) is getattr(F, name)
    assert isinstance(s_patched, ORIG[name]) and isinstance(s_patched, ORIG["LRScheduler"])
    act = (lambda s, k: s.step(_METRICS[k])) if name == "ReduceLROnPlateau" else None
    tw.steps(30, action=act)
    assert s_patched.uses_fast_path


def _subclass(base_mod: Any) -> type:
    base = base_mod.LRScheduler

    class Halving(base):  # written as torch's docs teach
        def __init__(self, optimizer: Any, every: int = 3, last_epoch: int = -1) -> None:
            self.every = every
            super().__init__(optimizer, last_epoch)

        def get_lr(self) -> list[float]:
            if self.last_epoch == 0 or self.last_epoch % self.every:
                return [g["lr"] for g in self.optimizer.param_groups]
            return [g["lr"] * 0.5 for g in self.optimizer.param_groups]

    return Halving


@pytest.mark.parametrize("lr_kind", ["float", "tensor64"])
def test_subclass_of_the_patched_base_behaves_as_unpatched(lr_kind: str, patched: Any):
    unpatched_cls, patched_cls = _subclass(ORIGINALS), _subclass(THROUGH_TORCH)
    assert issubclass(patched_cls, F.LRScheduler) and not issubclass(unpatched_cls, F.LRScheduler)
    tw = Twin(lambda M, o: (patched_cls if M is F else unpatched_cls)(o, every=4), lambda: make_opt(3, lr_kind))
    tw.steps(20)
    tw.do(lambda s, o: s.step(7))  # the deprecated epoch argument, with its warning
    tw.do(lambda s, o: s.load_state_dict(s.state_dict()))
    tw.steps(5)


def test_a_composite_of_patched_members_is_torch_exactly(patched: Any):
    def build(M: Any, o: Any) -> Any:
        m = THROUGH_TORCH if M is F else ORIGINALS
        a = m.LinearLR(o, start_factor=0.1, total_iters=4)
        b = m.CosineAnnealingLR(o, T_max=9)
        return m.SequentialLR(o, [a, b], milestones=[4])

    tw = Twin(build, lambda: make_opt(3, "float"))
    tw.steps(25)


def test_transformers_style_import_gets_fastlr(patched: Any):
    """A module written as transformers' optimization.py (`from torch.optim.lr_scheduler import
    LambdaLR`), imported after the patch, builds fastlr's LambdaLR with torch's values."""
    code = (
        "from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau\n"
        "def get_linear(optimizer, w, t):\n"
        "    def lam(step):\n"
        "        if step < w:\n"
        "            return float(step) / float(max(1, w))\n"
        "        return max(0.0, float(t - step) / float(max(1, t - w)))\n"
        "    return LambdaLR(optimizer, lam)\n"
    )
    mod = types.ModuleType("hf_style")
    exec(compile(code, "hf_style.py", "exec"), mod.__dict__)
    o1, o2 = make_opt(2, "float"), make_opt(2, "float")
    s = mod.get_linear(o1, 5, 40)
    assert type(s) is F.LambdaLR and s.uses_fast_path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ORIG["LambdaLR"](o2, lambda step: float(step) / 5.0 if step < 5 else max(0.0, float(40 - step) / 35.0))
        for _ in range(45):
            s.step()
            ref.step()
            assert [g["lr"] for g in o1.param_groups] == [g["lr"] for g in o2.param_groups]


# The hostile twin (tests/test_hostile_twin.py) through the patched names: random scripts of steps
# and param-group mutations, everything observable compared with torch's original classes.
from test_hostile_twin import EXAMPLES, actions, run_twin  # noqa: E402


@settings(max_examples=max(EXAMPLES // 2, 10), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(EVERY_CLASS)),
    kinds=st.lists(st.sampled_from(["float", "t64", "int", "numpy"]), min_size=4, max_size=4),
    script=st.lists(actions, min_size=1, max_size=20),
)
def test_hostile_twin_through_patched_names(name: str, kinds: list[str], script: list[Any]) -> None:
    with fastlr.patch_torch():
        run_twin(name, kinds, [], script, ORIGINALS, THROUGH_TORCH)


@pytest.mark.parametrize("name", ["StepLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "ReduceLROnPlateau"])
def test_capturable_through_patched_names(name: str, patched: Any):
    """fastlr's extra keyword reaches fastlr's class through torch's name; its step() runs torch's
    step bookkeeping from torch's original class (not the patched name, which is fastlr's own)."""
    kw = {"StepLR": dict(step_size=3, gamma=0.5), "CosineAnnealingLR": dict(T_max=7),
          "CosineAnnealingWarmRestarts": dict(T_0=3, T_mult=2), "ReduceLROnPlateau": dict(patience=0, factor=0.5)}[name]
    o1, o2 = make_opt(3, "tensor64"), make_opt(3, "tensor64")
    ref = ORIG[name](o1, **kw)
    s = getattr(TL, name)(o2, capturable=True, **kw)
    assert type(s) is getattr(F, name) and s.capturable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(15):
            args = (float(k),) if name == "ReduceLROnPlateau" else ()
            ref.step(*args)
            s.step(*args)
            # (capturable mode evaluates the closed form: within an ulp or two of torch's recurrence)
            assert [float(g["lr"]) for g in o2.param_groups] == pytest.approx(
                [float(g["lr"]) for g in o1.param_groups], rel=1e-12, abs=0), k
            assert s.last_epoch == ref.last_epoch
