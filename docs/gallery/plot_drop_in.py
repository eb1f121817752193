"""
Every drop-in class
===================

Each class of :mod:`fastlr.lr_scheduler`, stepped 100 times on a one-group SGD optimizer
(``lr=1.0``), with torch's class of the same name stepped beside it (dashed). The two curves are the
same to the last bit: the script checks ``==`` on every step. The title is the constructor call.
"""

import textwrap
import warnings

import matplotlib.pyplot as plt
import torch

import fastlr.lr_scheduler as L
import fastlr.schedules as S

STEPS = 100


def halving(base):
    """A scheduler of your own: subclass LRScheduler as torch's docs teach (override get_lr).
    On fastlr's base class it runs torch's Python logic, so it behaves as it does on torch's."""

    class Halving(base):
        def get_lr(self):
            if self.last_epoch == 0 or self.last_epoch % 25:
                return [g["lr"] for g in self.optimizer.param_groups]
            return [g["lr"] * 0.5 for g in self.optimizer.param_groups]

    return Halving

TORCH = {**vars(torch.optim.lr_scheduler), "SWALR": torch.optim.swa_utils.SWALR,
         "ScheduledLR": lambda opt, s: torch.optim.lr_scheduler.LambdaLR(opt, s),  # a schedule is a lambda
         "Halving": halving(torch.optim.lr_scheduler.LRScheduler)}
FASTLR = {**vars(L), "Halving": halving(L.LRScheduler)}


def optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.9)


def lrs(call, names):
    """Build `call` (the text shown) against `names` (fastlr's classes or torch's) and step it."""
    opt = optimizer()
    sched = eval(call, {**names, "S": S}, {"opt": opt})  # noqa: S307 - the calls below
    out = []
    for t in range(STEPS):
        out.append(sched.get_last_lr()[0])
        opt.step()
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(1.0 if t > 20 else 2.0 - t / 20)  # a metric that stalls after step 20
        else:
            sched.step()
    return out


CALLS = [
    "LambdaLR(opt, lambda t: 0.97 ** t)",
    "MultiplicativeLR(opt, lambda t: 0.98)",
    "StepLR(opt, step_size=30, gamma=0.5)",
    "MultiStepLR(opt, milestones=[30, 60, 80], gamma=0.5)",
    "ConstantLR(opt, factor=0.25, total_iters=40)",
    "LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=50)",
    "ExponentialLR(opt, gamma=0.96)",
    "PolynomialLR(opt, total_iters=80, power=2.0)",
    "CosineAnnealingLR(opt, T_max=100, eta_min=0.05)",
    "CyclicLR(opt, base_lr=0.1, max_lr=1.0, step_size_up=20)",
    "OneCycleLR(opt, max_lr=1.0, total_steps=101)",
    "CosineAnnealingWarmRestarts(opt, T_0=15, T_mult=2)",
    "ReduceLROnPlateau(opt, patience=5, factor=0.5)",
    "SequentialLR(opt, [LinearLR(opt, 0.1, total_iters=20), CosineAnnealingLR(opt, T_max=80)], milestones=[20])",
    "ChainedScheduler([ConstantLR(opt, 0.5, total_iters=30), ExponentialLR(opt, 0.98)])",
    "SWALR(opt, swa_lr=0.2, anneal_epochs=30)",
    "ScheduledLR(opt, S.wsd(1.0, warmup=10, decay=30, total=100))",
    "Halving(opt)",  # class Halving(LRScheduler), above
]

fig, axes = plt.subplots(6, 3, figsize=(13, 15), layout="constrained")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torch's deprecation notes on some constructors
    for ax, call in zip(axes.flat, CALLS):
        ours, theirs = lrs(call, FASTLR), lrs(call, TORCH)
        assert ours == theirs, call  # bitwise, every step
        ax.plot(ours, lw=2.2, label="fastlr")
        ax.plot(theirs, lw=1.2, ls="--", c="k", label="torch")
        title = call if call != "Halving(opt)" else "Halving(opt): a subclass of LRScheduler whose get_lr halves every 25 steps"
        ax.set_title(textwrap.fill(title, 50), fontsize=7.5, family="monospace")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
axes.flat[0].legend(fontsize=8)

plt.show()
print("fastlr == torch at every step, for", len(CALLS), "classes")
