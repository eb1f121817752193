"""
Warm restarts with ``T_mult``
=============================

:class:`fastlr.lr_scheduler.CosineAnnealingWarmRestarts` (SGDR) with torch's integer ``T_mult``,
stepped per iteration; and the same restarts as a schedule value,
:func:`fastlr.schedules.warm_restarts`, which also takes a fractional ``t_mult`` and timm's
``cycle_decay``. The class and the schedule agree where both apply (checked below).
"""

import matplotlib.pyplot as plt
import numpy as np
import torch

import fastlr.schedules as S
from fastlr.lr_scheduler import CosineAnnealingWarmRestarts

STEPS = 700

fig, ax = plt.subplots(figsize=(9, 3.6), layout="constrained")
for t_mult in (1, 2, 3):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = CosineAnnealingWarmRestarts(opt, T_0=50, T_mult=t_mult, eta_min=0.01)
    lr = []
    for _ in range(STEPS):
        lr.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    value = S.warm_restarts(1.0, period=50, min_value=0.01, t_mult=t_mult).table(STEPS)
    assert np.allclose(lr, value, rtol=1e-12, atol=1e-15)  # torch steps a recurrence; the schedule is closed form
    ax.plot(lr, lw=1.5, label=f"CosineAnnealingWarmRestarts(opt, T_0=50, T_mult={t_mult}, eta_min=0.01)")
ax.legend(fontsize=7.5, prop={"family": "monospace", "size": 7.5})
ax.set_xlabel("step")
plt.show()

# %%
# Fractional ``t_mult`` and decaying restarts (schedule values)

fig, ax = plt.subplots(figsize=(9, 3.2), layout="constrained")
for s in (S.warm_restarts(1.0, period=50, t_mult=1.5, cycle_decay=0.8),
          S.warm_restarts(1.0, period=80, t_mult=1.2, cycle_decay=0.6, cycle_limit=4, min_value=0.05)):
    ax.plot(s.table(STEPS), lw=1.5, label=repr(s))
ax.legend(prop={"family": "monospace", "size": 7})
ax.set_xlabel("step")
plt.show()
