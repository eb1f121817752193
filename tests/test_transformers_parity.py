"""fastlr.get_scheduler against the installed transformers' get_scheduler, side by side: the same
lrs (==) at every step, for every name of transformers' SchedulerType, with random warm-up, total
and kwargs, edges included (warm-up 0, warm-up == total, warm-up + decay > total, power 0, any
num_cycles), and the same exceptions where transformers raises."""

from __future__ import annotations

import os
import random
import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")
if os.environ.get("FASTLR_REQUIRE_TRANSFORMERS"):  # CI installs it: a missing module is a failure there
    import transformers.optimization as transformers_opt
    import transformers.trainer_utils as trainer_utils
else:
    transformers_opt = pytest.importorskip("transformers.optimization")
    trainer_utils = pytest.importorskip("transformers.trainer_utils")

import fastlr  # noqa: E402

NAMES = [s.value for s in trainer_utils.SchedulerType]
# Names with their own tests: a plateau scheduler (tests/test_get_scheduler.py) and GreedyLR, a
# metric-driven class of transformers' own that fastlr does not provide.
STEPPED = [n for n in NAMES if n not in ("reduce_lr_on_plateau", "greedy")]
LRS = [0.1, 0.037, 3e-4]


def make_opt() -> torch.optim.Optimizer:
    ps = [torch.nn.Parameter(torch.zeros(2)) for _ in LRS]
    return torch.optim.AdamW([{"params": [p], "lr": lr} for p, lr in zip(ps, LRS)], lr=LRS[0])


def draw(name: str, rng: random.Random) -> tuple[int, int, dict[str, Any]]:
    """A random (num_warmup_steps, num_training_steps, scheduler_specific_kwargs), edges often."""
    w = rng.choice([0, 1, 2, rng.randint(0, 60)])
    t = rng.choice([w, w + 1, w + rng.randint(1, 150), max(w - 3, 0) if rng.random() < 0.1 else w + 7])
    cycles = rng.choice([0.5, 1, 2, 0.25, 0.0, rng.uniform(0, 4), 3])
    kw: dict[str, Any] = {}
    if name in ("cosine", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "cosine_with_restarts"):
        kw["num_cycles"] = cycles
    if name == "polynomial":
        kw["power"] = rng.choice([0, 0.0, 1.0, 2, 0.5, rng.uniform(0, 3)])
        kw["lr_end"] = rng.choice([1e-7, 0.0, 1e-4, 0.05])
    if name in ("cosine_with_min_lr", "cosine_warmup_with_min_lr"):
        if rng.random() < 0.5:
            kw["min_lr_rate"] = rng.choice([0.0, 0.1, rng.random()])
        else:
            kw["min_lr"] = rng.choice([1e-5, 0.01])
    if name == "cosine_warmup_with_min_lr" and rng.random() < 0.5:
        kw["warmup_lr_rate"] = rng.choice([0.0, 0.1, rng.random()])
    if name == "inverse_sqrt" and rng.random() < 0.5:
        kw["timescale"] = rng.randint(1, 200)
    if name == "warmup_stable_decay":
        kw["num_decay_steps"] = rng.choice([0, 1, rng.randint(0, 80)])
        kw["warmup_type"] = rng.choice(["linear", "cosine", "1-sqrt"])
        kw["decay_type"] = rng.choice(["linear", "cosine", "1-sqrt"])
        kw["min_lr_ratio"] = rng.choice([0, 0.0, 0.1, rng.random()])
        kw["num_cycles"] = cycles
        if rng.random() < 0.3:
            kw["num_stable_steps"] = rng.randint(0, 50)
            if rng.random() < 0.5:
                t = None  # type: ignore[assignment]
    return w, t, kw


def outcome(fn: Any) -> tuple[str, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return "ok", fn()
    except Exception as e:  # noqa: BLE001
        return type(e).__name__, None


def run(get: Any, name: str, w: int, t: int | None, kw: dict[str, Any], steps: int) -> tuple[str, list[list[float]] | None]:
    o = make_opt()
    kind, sched = outcome(lambda: get(name, o, num_warmup_steps=w, num_training_steps=t, scheduler_specific_kwargs=dict(kw)))
    if kind != "ok":
        return kind, None
    lrs = [[g["lr"] for g in o.param_groups]]
    for _ in range(steps):
        kind, _ = outcome(sched.step)
        if kind != "ok":
            return kind, lrs
        lrs.append([g["lr"] for g in o.param_groups])
    return "ok", lrs


@pytest.mark.parametrize("name", STEPPED)
def test_get_scheduler_is_transformers_bitwise(name: str):
    rng = random.Random(f"fastlr-{name}")
    for draw_no in range(40):
        w, t, kw = draw(name, rng)
        steps = (t or 0) + w + kw.get("num_decay_steps", 0) + kw.get("num_stable_steps", 0) + 25
        theirs = run(transformers_opt.get_scheduler, name, w, t, kw, steps)
        ours = run(fastlr.get_scheduler, name, w, t, kw, steps)
        where = f"{name} draw {draw_no}: W={w} T={t} kwargs={kw}"
        if theirs[0] == "ZeroDivisionError" and ours[0] == "ZeroDivisionError":
            continue  # (polynomial with W == T: transformers raises at that step, fastlr when built)
        assert ours[0] == theirs[0], f"{where}: transformers {theirs[0]}, fastlr {ours[0]}"
        if theirs[1] is None:
            continue
        for k, (a, b) in enumerate(zip(theirs[1], ours[1])):
            assert a == b, f"{where}, step {k}: transformers {a}, fastlr {b}"


def test_every_name_is_covered():
    ours = set(fastlr.schedules.names())
    assert set(STEPPED) <= ours, sorted(set(STEPPED) - ours)
    assert "reduce_lr_on_plateau" in NAMES  # (tests/test_get_scheduler.py steps it with Trainer's logic)


@pytest.mark.parametrize(
    "name,w,t,kw",
    [
        ("linear", None, 10, {}),
        ("cosine", 5, None, {}),
        ("polynomial", 2, 10, {"lr_end": 0.5}),  # lr_end >= the optimizer's lr
        ("cosine_with_min_lr", 2, 10, {}),  # neither min_lr nor min_lr_rate
        ("cosine_with_min_lr", 2, 10, {"min_lr": 0.1, "min_lr_rate": 0.1}),
        ("warmup_stable_decay", 2, None, {"num_decay_steps": 3}),
        ("warmup_stable_decay", 2, 10, {"num_decay_steps": 3, "decay_type": "exp"}),
        ("warmup_stable_decay", 2, 10, {"num_decay_steps": 3, "warmup_type": "exp"}),
        ("nope", 2, 10, {}),
    ],
)
def test_errors_are_transformers(name: str, w: Any, t: Any, kw: dict[str, Any]):
    a = run(transformers_opt.get_scheduler, name, w, t, kw, 3)
    b = run(fastlr.get_scheduler, name, w, t, kw, 3)
    assert a[0] != "ok" and a[0] == b[0], (a[0], b[0])
