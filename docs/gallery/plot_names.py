"""
Every scheduler name
====================

The names that :func:`fastlr.get_scheduler` and :func:`fastlr.schedules.from_name` accept
(:func:`fastlr.schedules.names`): Hugging Face transformers' ``SchedulerType`` names, bit for bit
the multipliers transformers' lambdas return, and fastlr's own. Each panel: 100 warm-up steps of
1000 (``num_warmup_steps=100, num_training_steps=1000``), plus the keywords shown.
``reduce_lr_on_plateau`` follows a made-up metric that stalls.
"""

import matplotlib.pyplot as plt
import numpy as np

import fastlr.schedules as S

KWARGS = {  # the extra keywords of the names that need (or show off) some
    "cosine_with_restarts": {"num_cycles": 3},
    "polynomial": {"lr_init": 1.0, "lr_end": 0.1, "power": 2.0},
    "cosine_with_min_lr": {"min_lr_rate": 0.1},
    "cosine_warmup_with_min_lr": {"min_lr_rate": 0.1},
    "warmup_stable_decay": {"num_decay_steps": 300},
    "reduce_lr_on_plateau": {"patience": 2, "factor": 0.5},
    "wsd": {"decay": 300, "decay_shape": "1-sqrt"},
    "warm_restarts": {"period": 300},
    "cyclic": {"step_size_up": 150, "mode": "triangular2"},
    "exponential": {"decay_rate": 0.997},
    "step": {"step_size": 300, "gamma": 0.5},
    "multistep": {"milestones": [500, 800], "gamma": 0.3},
    "tanh": {},
}

names = S.names()
print(len(names), "names:", ", ".join(names))

fig, axes = plt.subplots(-(-len(names) // 4), 4, figsize=(15, 2.3 * -(-len(names) // 4)), layout="constrained")
for ax, name in zip(axes.flat, names):
    kw = KWARGS.get(name, {})
    s = S.from_name(name, num_warmup_steps=100, num_training_steps=1000, **kw)
    if name == "reduce_lr_on_plateau":
        values = []
        for t in range(1000):
            values.append(s(t))
            if t % 50 == 49:
                s.observe(min(1.0, 0.5 + t / 2000) if t < 600 else 0.8, step=t)  # stalls, then rises
    else:
        values = s.table(1000)
    ax.plot(np.arange(1000), values, lw=1.4)
    extra = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    ax.set_title(f'"{name}"' + (f"\n{extra}" if extra else ""), fontsize=8, family="monospace")
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.25)
for ax in axes.flat[len(names):]:
    ax.axis("off")
plt.show()
