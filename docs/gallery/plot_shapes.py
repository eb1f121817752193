"""
Every basic shape
=================

The building blocks of :mod:`fastlr.schedules`, each over 1000 steps, with the variations their
keywords give: timm's ``k_decay``, optax's ``exponent``, Hugging Face's restarts and
``num_cycles``, staircases. Each curve is ``s.table(n)``: the C++ engine's values at steps
``0 .. n-1``.
"""

import textwrap

import matplotlib.pyplot as plt
import numpy as np

import fastlr.schedules as S


def grid(schedules, steps=1000, cols=3):
    """One panel per schedule, titled with its repr (the call that builds it)."""
    rows = -(-len(schedules) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 2.5 * rows), squeeze=False, layout="constrained")
    for ax, s in zip(axes.flat, schedules):
        ax.plot(np.arange(steps), s.table(steps), lw=1.6)
        for b in s.phase_boundaries():
            if 0 < b < steps:
                ax.axvline(b, ls=":", c="0.6", lw=1)
        ax.set_title(textwrap.fill(repr(s), 52), fontsize=7.5, family="monospace")
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    for ax in axes.flat[len(schedules):]:
        ax.axis("off")
    return fig


# %%
# Constant, linear, polynomial, exponential and step decays
# ---------------------------------------------------------

grid([
    S.constant(0.5),
    S.linear(1.0, 0.1, steps=800),
    S.linear(1.0, 0.5, steps=400, extrapolate=True),
    S.polynomial(1.0, 0.0, steps=1000, power=2.0),
    S.polynomial(1.0, 0.0, steps=1000, power=1.0, k_decay=3.0),
    S.exponential(1.0, 0.5, transition_steps=200),
    S.exponential(1.0, 0.5, transition_steps=200, staircase=True, end_value=0.1),
    S.step(1.0, step_size=250, gamma=0.5),
    S.multistep(1.0, [300, 600, 900], gamma=0.3),
])
plt.show()

# %%
# Cosines
# -------
#
# ``k_decay`` (timm) holds the value up for longer; ``exponent`` (optax) decays sooner;
# ``restarts=True`` is Hugging Face's ``cosine_with_restarts``; ``cycles`` with ``extrapolate=True``
# is Hugging Face's ``num_cycles`` past the end of training.

grid([
    S.cosine(1.0, steps=1000, end_value=0.1),
    S.cosine(1.0, steps=1000, k_decay=2.0),
    S.cosine(1.0, steps=1000, exponent=3.0),
    S.cosine(1.0, steps=1000, cycles=3, restarts=True),
    S.cosine(1.0, steps=700, cycles=0.75, extrapolate=True),
    S.inverse_sqrt(1.0, timescale=100),
])
plt.show()

# %%
# Piecewise schedules and timm's tanh
# -----------------------------------

grid([
    S.piecewise_constant([200, 500, 800], [1.0, 0.5, 0.2, 0.05]),
    S.piecewise_linear([0, 100, 400, 1000], [0.0, 1.0, 0.3, 0.0]),
    S.tanh(1.0, steps=1000, min_value=0.05),
    S.tanh(1.0, steps=300, t_mult=1.5, cycle_decay=0.7, cycle_limit=None),
])
plt.show()
