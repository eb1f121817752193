"""
Warmup-stable-decay (WSD)
=========================

:func:`fastlr.schedules.wsd` in all its shapes: the decay shapes (Hugging Face's ``linear``,
``cosine`` and ``1-sqrt``, Megatron's exponential, timm's ``power``), the warm-up shapes, and
timm's decaying stable phases (``rsqrt``, ``power``). Every panel: 100 warm-up steps, 200 decay
steps, 1000 in all.
"""

import textwrap

import matplotlib.pyplot as plt
import numpy as np

import fastlr.schedules as S

STEPS = 1000


def panel(ax, s, label=None):
    ax.plot(np.arange(STEPS), s.table(STEPS), lw=1.6, label=label)
    for b in s.phase_boundaries():
        ax.axvline(b, ls=":", c="0.6", lw=1)
    ax.grid(alpha=0.25)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)


# %%
# What does ``wsd`` look like with ``decay_shape="1-sqrt"``?
# -----------------------------------------------------------
#
# Each decay shape over the same phases; ``1-sqrt`` drops fastest at the start of the decay.

fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
for shape in ("linear", "cosine", "1-sqrt", "exp", "power"):
    panel(ax, S.wsd(1.0, warmup=100, decay=200, total=STEPS, decay_shape=shape), f'decay_shape="{shape}"')
ax.set_title("wsd(1.0, warmup=100, decay=200, total=1000, decay_shape=...)", family="monospace", fontsize=9)
ax.set_xlim(650, 1000)
ax.legend(fontsize=8)
plt.show()

# %%
# Every variant, one panel each
# -----------------------------

variants = [
    S.wsd(1.0, warmup=100, decay=200, total=STEPS),
    S.wsd(1.0, warmup=100, decay=200, total=STEPS, decay_shape="1-sqrt"),
    S.wsd(1.0, warmup=100, decay=200, total=STEPS, decay_shape="cosine", warmup_shape="cosine"),
    S.wsd(1.0, warmup=100, decay=200, total=STEPS, decay_shape="exp", decay_ratio=0.1),
    S.wsd(1.0, warmup=100, decay=200, total=STEPS, decay_shape="power", decay_power=2.0),
    S.wsd(1.0, warmup=100, decay=200, total=STEPS, warmup_shape="1-sqrt", init_value=0.1, end_value=0.05),
    S.wsd(1.0, warmup=100, decay=200, total=STEPS, stable_shape="rsqrt"),
    S.wsd(1.0, warmup=100, decay=200, total=STEPS, stable_shape="power", stable_power=0.3, stable_timescale=50),
    S.wsd(1.0, warmup=100, stable=500, decay=400, decay_shape="cosine"),
]
fig, axes = plt.subplots(3, 3, figsize=(13, 7.5), layout="constrained")
for ax, s in zip(axes.flat, variants):
    panel(ax, s)
    ax.set_title(textwrap.fill(repr(s), 50), fontsize=7.5, family="monospace")
plt.show()
