"""
Cycles, one-cycles and warm restarts
====================================

:func:`~fastlr.schedules.cyclic` (torch's ``CyclicLR`` modes), the one-cycle policies (torch's
:func:`~fastlr.schedules.onecycle` and optax's :func:`~fastlr.schedules.linear_onecycle` and
:func:`~fastlr.schedules.cosine_onecycle`) and SGDR's :func:`~fastlr.schedules.warm_restarts` with
timm's ``t_mult``, ``cycle_decay`` and ``cycle_limit``.
"""

import textwrap

import matplotlib.pyplot as plt
import numpy as np

import fastlr.schedules as S


def grid(schedules, steps=1000, cols=3):
    rows = -(-len(schedules) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 2.5 * rows), squeeze=False, layout="constrained")
    for ax, s in zip(axes.flat, schedules):
        ax.plot(np.arange(steps), s.table(steps), lw=1.4)
        ax.set_title(textwrap.fill(repr(s), 52), fontsize=7.5, family="monospace")
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    for ax in axes.flat[len(schedules):]:
        ax.axis("off")
    return fig


# %%
# Cyclic: the three modes
# -----------------------

grid([
    S.cyclic(0.1, 1.0, step_size_up=100),
    S.cyclic(0.1, 1.0, step_size_up=100, mode="triangular2"),
    S.cyclic(0.1, 1.0, step_size_up=100, mode="exp_range", gamma=0.998),
    S.cyclic(0.1, 1.0, step_size_up=50, step_size_down=150),
])
plt.show()

# %%
# One-cycle policies
# ------------------

grid([
    S.onecycle(1.0, total_steps=1000),
    S.onecycle(1.0, total_steps=1000, anneal_strategy="linear", pct_start=0.25),
    S.onecycle(1.0, total_steps=1000, three_phase=True),
    S.linear_onecycle(1000, 1.0),
    S.cosine_onecycle(1000, 1.0),
    S.linear_onecycle(1000, 1.0, pct_start=0.0, pct_final=0.5),
])
plt.show()

# %%
# Warm restarts
# -------------
#
# ``t_mult`` stretches each cycle (any float >= 1, not only torch's integers), ``cycle_decay``
# lowers each restart's peak, ``cycle_limit`` stops restarting (timm's ``CosineLRScheduler``).

grid([
    S.warm_restarts(1.0, period=200),
    S.warm_restarts(1.0, period=100, t_mult=2.0),
    S.warm_restarts(1.0, period=100, t_mult=1.5, cycle_decay=0.7, min_value=0.05),
    S.warm_restarts(1.0, period=150, cycle_limit=3),
    S.warm_restarts(1.0, period=200, k_decay=2.0),
])
plt.show()
