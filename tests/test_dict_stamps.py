"""The group memo's change detector, without torch: ``_core._dict_stamp(d)`` is the stamp a step
compares to know that a param-group dict is unchanged since the last step (see FASTLR_GROUP_MEMO in
cpp/bindings/scheduler.hpp): PEP 509's version tag on CPython <= 3.11, fastlr's dict watcher on 3.12+
(the code path CPython 3.14 takes), none on the free-threaded build or a ``FASTLR_AS_PY314`` build on
an older Python (every step looks the keys up). These tests run on every Python CI builds, torch or not.

The contract the memo relies on: the stamp of a dict changes whenever any of its keys is added,
assigned another object or deleted, by any means; it does not change otherwise; and a stamp once
seen never comes back, for this dict or for another one made later at the same address.
"""

from __future__ import annotations

import gc
import os
import sys
import sysconfig
from typing import Any, Callable

import pytest

from fastlr import _core

MEMO = _core.BUILD["group_memo"]
needs_memo = pytest.mark.skipif(MEMO == "off", reason="this build has no group memo (every step looks keys up)")


def stamp(d: dict[Any, Any]) -> int:
    s = _core._dict_stamp(d)
    assert isinstance(s, int), s
    return s


def test_build_takes_the_path_of_this_python():
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    if os.environ.get("FASTLR_EXPECT_AS_PY314") == "1":  # CI's leg for CPython 3.14's rules
        assert _core.BUILD["as_py314"] is True
    if free_threaded:
        expected = "off"
    elif sys.version_info >= (3, 12):
        expected = "dict watchers"  # also what 3.14 builds: the tags are gone there (PEP 699)
    elif _core.BUILD["as_py314"]:
        expected = "off"
    else:
        expected = "version tags"
    assert MEMO == expected
    assert _core.BUILD["tuple_in_place"] is (
        not free_threaded and sys.version_info < (3, 14) and not _core.BUILD["as_py314"]
    )


def test_no_stamp_without_a_memo_or_for_other_objects():
    if MEMO == "off":
        assert _core._dict_stamp({"lr": 0.1}) is None
    for other in ([], (), 1.0, None, type("D", (dict,), {})(lr=0.1), {"a": 1}.keys()):
        assert _core._dict_stamp(other) is None


@needs_memo
def test_stamp_is_stable_while_nothing_is_assigned():
    lr = 0.1
    d = {"params": [], "lr": lr, "momentum": 0.9}
    s = stamp(d)
    _ = d["lr"], d.get("momentum"), list(d.items()), len(d), "lr" in d, d.copy()
    for _ in d:
        pass
    assert stamp(d) == s
    assert stamp(d) == s


MUTATIONS: list[tuple[str, Callable[[dict[Any, Any]], Any]]] = [
    ("assign", lambda d: d.__setitem__("lr", 0.2)),
    ("assign-same-value-new-object", lambda d: d.__setitem__("lr", float("0.1"))),
    ("add", lambda d: d.__setitem__("new", 1)),
    ("del", lambda d: d.__delitem__("momentum")),
    ("pop", lambda d: d.pop("lr")),
    ("popitem", lambda d: d.popitem()),
    ("clear", lambda d: d.clear()),
    ("update", lambda d: d.update(lr=0.3)),
    ("update-other-dict", lambda d: d.update({"momentum": 0.5})),
    ("ior", lambda d: d.__ior__({"lr": 0.4})),
    ("setdefault-inserts", lambda d: d.setdefault("initial_lr", 0.1)),
    ("init-again", lambda d: d.__init__(lr=0.5)),
    ("fromkeys-like-merge", lambda d: dict.update(d, dict.fromkeys(["x", "y"], 0.0))),
]


@needs_memo
@pytest.mark.parametrize("mutate", [m for _, m in MUTATIONS], ids=[n for n, _ in MUTATIONS])
def test_every_assignment_changes_the_stamp(mutate: Callable[[dict[Any, Any]], Any]):
    d = {"params": [], "lr": 0.1, "momentum": 0.9}
    before = stamp(d)
    mutate(d)
    after = stamp(d)
    assert after != before
    assert stamp(d) == after  # and it is stable again


@needs_memo
def test_merge_into_an_empty_dict_changes_the_stamp():
    d: dict[str, Any] = {}
    before = stamp(d)
    d.update({"lr": 0.1, "momentum": 0.9})  # CPython's "cloned" event
    assert stamp(d) != before


@needs_memo
def test_stamps_never_repeat_across_dicts_and_addresses():
    seen: dict[int, int] = {}
    by_address: dict[int, set[int]] = {}
    for i in range(3000):
        d = {"lr": float(i)}
        s1 = stamp(d)
        d["lr"] = float(i) + 0.5
        s2 = stamp(d)
        for s in (s1, s2):
            assert s not in seen, f"stamp {s} of dict {i} was already given to dict {seen[s]}"
            seen[s] = i
        by_address.setdefault(id(d), set()).update((s1, s2))
        del d
    gc.collect()
    # CPython reuses freed dicts' memory: many addresses held several dicts, none of them shared a stamp.
    assert any(len(v) > 2 for v in by_address.values())


@needs_memo
def test_a_new_dict_at_a_dead_dicts_address_does_not_match_its_stamp():
    matched = 0
    for _ in range(200):
        d = {"lr": 0.1}
        addr, old = id(d), stamp(d)
        del d
        e = {"lr": 0.1}  # very often at the same address
        if id(e) == addr:
            matched += 1
            assert stamp(e) != old
            s = stamp(e)
            e["lr"] = 0.2  # and the new dict is followed too (watched afresh)
            assert stamp(e) != s
        del e
    assert matched > 0


@needs_memo
def test_switching_the_memo_off_and_on_keeps_the_stamps_true():
    assert _core._group_memo() is True
    d = {"lr": 0.1}
    before = stamp(d)
    try:
        assert _core._group_memo(False) is False
        d["lr"] = 0.2  # changed while the memo was off
    finally:
        assert _core._group_memo(True) is True
    assert stamp(d) != before


@needs_memo
def test_many_watched_dicts_churn():
    """Thousands of dicts watched, dropped and made again (cells recycled): each still follows its own."""
    live = [{"lr": float(i)} for i in range(2000)]
    stamps = [stamp(d) for d in live]
    for round_ in range(3):
        for i in range(0, len(live), 2):
            live[i] = {"lr": float(round_)}  # the old dict dies, its cell goes back
        gc.collect()
        fresh = [stamp(d) for d in live]
        for i, d in enumerate(live):
            if i % 2 == 0:
                assert fresh[i] not in stamps
            else:
                assert fresh[i] == stamps[i]  # untouched dicts keep their stamp
            d["lr"] = -1.0 - i - round_  # a new float object (one assigned again changes nothing)
            assert stamp(d) != fresh[i]
        stamps = [stamp(d) for d in live]
