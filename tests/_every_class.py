"""Every drop-in class, configured to pass its milestones, horizons and restarts within 30 steps: the
builders the hostile tests share (``build(mod, optimizer)`` with ``mod`` torch's or fastlr's classes)."""

from __future__ import annotations

from typing import Any

_METRICS = [1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.7] * 3


def _lam(e: int) -> float:
    return 0.95**e


def _mul(e: int) -> float:
    return 0.97


#: Every drop-in class, configured to pass its milestones, horizons and restarts within 30 steps.
EVERY_CLASS: dict[str, Any] = {
    "LambdaLR": lambda M, o: M.LambdaLR(o, lr_lambda=_lam),
    "MultiplicativeLR": lambda M, o: M.MultiplicativeLR(o, lr_lambda=_mul),
    "StepLR": lambda M, o: M.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda M, o: M.MultiStepLR(o, milestones=[4, 9], gamma=0.3),
    "ConstantLR": lambda M, o: M.ConstantLR(o, factor=0.4, total_iters=5),
    "LinearLR": lambda M, o: M.LinearLR(o, start_factor=0.2, total_iters=8),
    "ExponentialLR": lambda M, o: M.ExponentialLR(o, gamma=0.93),
    "PolynomialLR": lambda M, o: M.PolynomialLR(o, total_iters=12, power=2.0),
    "CosineAnnealingLR": lambda M, o: M.CosineAnnealingLR(o, T_max=10, eta_min=1e-4),
    "CyclicLR": lambda M, o: M.CyclicLR(o, base_lr=1e-3, max_lr=1e-2, step_size_up=4, mode="triangular2"),
    "OneCycleLR": lambda M, o: M.OneCycleLR(o, max_lr=0.05, total_steps=40),
    "CosineAnnealingWarmRestarts": lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2, eta_min=1e-4),
    "ReduceLROnPlateau": lambda M, o: M.ReduceLROnPlateau(o, patience=1, factor=0.5, min_lr=[1e-4, 2e-4, 3e-4, 4e-4]),
    "SequentialLR": lambda M, o: M.SequentialLR(
        o, [M.LinearLR(o, start_factor=0.1, total_iters=5), M.ExponentialLR(o, gamma=0.9)], milestones=[5]
    ),
    "ChainedScheduler": lambda M, o: M.ChainedScheduler([M.ConstantLR(o, factor=0.5, total_iters=6), M.ExponentialLR(o, gamma=0.9)]),
    "SWALR": lambda M, o: M.SWALR(o, swa_lr=0.003, anneal_epochs=6),
}


def _action(name: str) -> Any:
    if name == "ReduceLROnPlateau":
        return lambda s, k: s.step(_METRICS[k])
    return None


