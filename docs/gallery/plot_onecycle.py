"""
One-cycle: the lr and the momentum
==================================

:class:`fastlr.lr_scheduler.OneCycleLR` cycles the momentum (SGD) or Adam's ``beta1`` inversely to
the lr, between ``max_momentum`` and ``base_momentum``: high momentum while the lr is low, and the
other way round. Two and three phases, cosine and linear annealing.
"""

import matplotlib.pyplot as plt
import torch

from fastlr.lr_scheduler import OneCycleLR

STEPS = 1000
cases = [
    ("SGD", {}),
    ("SGD", {"anneal_strategy": "linear", "pct_start": 0.25}),
    ("SGD", {"three_phase": True}),
    ("AdamW", {"base_momentum": 0.85, "max_momentum": 0.95}),
]
fig, axes = plt.subplots(len(cases), 1, figsize=(9, 2.3 * len(cases)), sharex=True, layout="constrained")
for ax, (name, kw) in zip(axes, cases):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9) if name == "SGD" else torch.optim.AdamW([p], lr=0.1)
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=STEPS, **kw)
    lr, mom = [], []
    for _ in range(STEPS):
        g = opt.param_groups[0]
        lr.append(g["lr"])
        mom.append(g["momentum"] if name == "SGD" else g["betas"][0])
        opt.step()
        sched.step()
    ax.plot(lr, lw=1.6)
    ax.set_ylabel("lr", fontsize=8)
    ax2 = ax.twinx()
    ax2.plot(mom, lw=1.2, c="tab:orange")
    ax2.set_ylabel("momentum" if name == "SGD" else "beta1", fontsize=8, color="tab:orange")
    extra = "".join(f", {k}={v!r}" for k, v in kw.items())
    ax.set_title(f"{name}: OneCycleLR(opt, max_lr=1.0, total_steps={STEPS}{extra})", fontsize=8, family="monospace")
    ax.grid(alpha=0.25)
axes[-1].set_xlabel("step")
plt.show()
