"""
CyclicLR: three modes, a custom ``scale_fn``, and momentum
==========================================================

:class:`fastlr.lr_scheduler.CyclicLR` with torch's three modes, and with a custom ``scale_fn``
(called by torch's code, as in torch: the values are still torch's), together with the momentum it
cycles inversely (``cycle_momentum=True``, the default: SGD's ``momentum``).
"""

import matplotlib.pyplot as plt
import torch

from fastlr.lr_scheduler import CyclicLR

STEPS = 600


def run(**kwargs):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.9)
    sched = CyclicLR(opt, base_lr=0.1, max_lr=1.0, step_size_up=50, step_size_down=100, **kwargs)
    lr, momentum = [], []
    for _ in range(STEPS):
        lr.append(opt.param_groups[0]["lr"])
        momentum.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    return lr, momentum


cases = {
    'mode="triangular"': {},
    'mode="triangular2"': {"mode": "triangular2"},
    'mode="exp_range", gamma=0.997': {"mode": "exp_range", "gamma": 0.997},
    'scale_fn=lambda c: 1 / c ** 0.5, scale_mode="cycle"': {"scale_fn": lambda c: 1 / c**0.5, "scale_mode": "cycle"},
    'scale_fn=lambda t: 0.5 + 0.5 * (t % 300 < 150), scale_mode="iterations"':
        {"scale_fn": lambda t: 0.5 + 0.5 * (t % 300 < 150), "scale_mode": "iterations"},
}
fig, axes = plt.subplots(len(cases), 1, figsize=(9, 2.2 * len(cases)), sharex=True, layout="constrained")
for ax, (label, kw) in zip(axes, cases.items()):
    lr, momentum = run(**kw)
    ax.plot(lr, lw=1.6, label="lr")
    ax.set_ylabel("lr", fontsize=8)
    ax2 = ax.twinx()
    ax2.plot(momentum, lw=1, c="tab:orange", label="momentum")
    ax2.set_ylabel("momentum", fontsize=8, color="tab:orange")
    ax.set_title(f"CyclicLR(opt, base_lr=0.1, max_lr=1.0, step_size_up=50, step_size_down=100, {label})",
                 fontsize=7.5, family="monospace")
    ax.grid(alpha=0.25)
axes[-1].set_xlabel("step")
plt.show()
