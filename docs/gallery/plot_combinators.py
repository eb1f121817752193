"""
Composed schedules
==================

Schedules are values: :func:`~fastlr.schedules.join` runs them one after another,
:func:`~fastlr.schedules.warmup` prepends a ramp, ``*`` multiplies them
(:func:`~fastlr.schedules.product`, :func:`~fastlr.schedules.scale`),
:func:`~fastlr.schedules.offset` shifts one in time and :func:`~fastlr.schedules.noise` adds
timm's multiplicative noise. The metric-driven nodes, :func:`~fastlr.schedules.plateau` and
:func:`~fastlr.schedules.switch`, change when :meth:`~fastlr.schedules.Schedule.observe` feeds them a
metric.
"""

import textwrap

import matplotlib.pyplot as plt
import numpy as np

import fastlr.schedules as S

STEPS = 1000


def panel(ax, s, title=None):
    ax.plot(np.arange(STEPS), s.table(STEPS), lw=1.4)
    for b in s.phase_boundaries():
        if 0 < b < STEPS:
            ax.axvline(b, ls=":", c="0.6", lw=1)
    ax.set_title(textwrap.fill(title or repr(s), 52), fontsize=7.5, family="monospace")
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.25)


# %%
# The pure combinators
# --------------------

combos = [
    S.join([S.linear(0.0, 1.0, 100), S.constant(1.0), S.cosine(1.0, 300)], [100, 700]),
    S.join([S.constant(1.0), S.constant(0.3), S.constant(0.1)], fractions=[0.5, 0.8], horizon=STEPS),
    S.warmup(S.cosine(1.0, 900), 100),
    S.warmup(S.cosine(1.0, 900), 100, kind="cosine"),
    S.warmup(S.cosine(1.0, 900), 100, kind="exponential", start_value=0.01),
    S.warmup(S.multistep(1.0, [500, 750]), 100, kind="constant", start_value=0.1),
    S.product(S.cosine(1.0, 1000), S.cyclic(0.5, 1.0, step_size_up=50)),  # also: s1 * s2
    S.scale(S.linear(1.0, 0.0, 1000), 0.5),  # also: 0.5 * s
    S.offset(S.cosine(1.0, 600), 300),
    S.noise(S.cosine(1.0, 1000), pct=0.2, std=0.5, seed=0, start=100, end=800),
]
fig, axes = plt.subplots(4, 3, figsize=(13, 10), layout="constrained")
for ax, s in zip(axes.flat, combos):
    panel(ax, s)
for ax in axes.flat[len(combos):]:
    ax.axis("off")
plt.show()

# %%
# Warm-up, then a plateau phase, then a decay
# -------------------------------------------
#
# The warm-up + plateau + decay recipe that torch cannot compose (its ``ReduceLROnPlateau`` does not
# chain): a linear warm-up, a :func:`~fastlr.schedules.plateau` phase that halves the lr when the
# validation loss stalls, then a cosine decay that starts from wherever the plateau left the lr
# (the same plateau object multiplies the decay). Here a made-up validation loss, measured every 20
# steps, stalls from step 300 to 600: the plateau halves the lr after each 4 evaluations without
# improvement (``patience=3``), until the loss improves again.

p = S.plateau(1.0, patience=3, factor=0.5)
s = S.join([S.linear(0.0, 1.0, 100), p, p * S.cosine(1.0, 300)], [100, 700])
val_loss = lambda t: max(0.25, 1.0 / (1 + t / 100)) if t < 600 else 0.25 - (t - 600) / 2000
lr = []
for t in range(STEPS):
    lr.append(s(t))
    if t % 20 == 19:  # an evaluation every 20 steps
        s.observe(val_loss(t), step=t)
fig, ax = plt.subplots(figsize=(8, 3.5), layout="constrained")
ax.plot(lr, lw=1.6, label="lr")
ax.plot([val_loss(t) for t in range(STEPS)], lw=1, c="0.5", ls="--", label="validation loss (made up)")
for b in s.phase_boundaries():
    ax.axvline(b, ls=":", c="0.6")
ax.set_title("join([linear(0, 1, 100), p, p * cosine(1, 300)], [100, 700]), p = plateau(patience=3, factor=0.5)",
             fontsize=8, family="monospace")
ax.legend(fontsize=8)
ax.set_xlabel("step")
plt.show()

# %%
# A phase change on a metric: ``switch``
# --------------------------------------
#
# The ResNet-110 warm-up (He et al. 2016): a small constant lr until the training error falls below
# 80%, then the usual schedule. Here the (made-up) error crosses 0.8 at step 180.

r = S.switch(S.constant(0.01), S.multistep(0.1, [500, 750]), threshold=0.8)
err = lambda t: 0.9 - 0.1 * t / 180
lr = []
for t in range(STEPS):
    lr.append(r(t))
    r.observe(err(t), step=t)
fig, ax = plt.subplots(figsize=(8, 3), layout="constrained")
ax.plot(lr, lw=1.6)
ax.axvline(r.switched_at, ls=":", c="0.6")
ax.set_title(f"{r!r}: switched_at = {r.switched_at}", fontsize=8, family="monospace")
ax.set_xlabel("step")
plt.show()
