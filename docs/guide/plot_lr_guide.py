"""
The learning-rate guide, on real data
=====================================

Every figure on this page comes from real training runs, made while these docs were built: a small
network learns scikit-learn's handwritten digits (1797 images of 8x8 pixels, ten classes) on the
CPU, with one torch thread, a fixed seed, and fastlr's schedules. Each run takes a second or less,
so the whole page trains about thirty networks in well under a minute. The code is here; download
it (below) and change what you like.

The questions: how the size of the learning rate shows in the loss curve, what decaying it buys,
which schedule to use when, why and how to warm up, and how to find a good lr in the first place.
"""

# %%
# The data, the model and the training loop
# -----------------------------------------
#
# A two-layer perceptron (64 inputs, 64 hidden units, 10 outputs), trained with SGD on mini-batches
# of 64 drawn at random from 1500 training images; 297 images are held out for the test accuracy.
# ``train`` takes the peak lr and a :mod:`fastlr.schedules` schedule (a multiplier of that lr,
# driven by :class:`~fastlr.lr_scheduler.ScheduledLR`), and records the loss of every step, the lr,
# and, every 10 steps, the loss on the whole training set.

import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

import fastlr
import fastlr.schedules as S
from fastlr.lr_scheduler import ReduceLROnPlateau, ScheduledLR

T0 = time.perf_counter()
torch.set_num_threads(1)
X, y = load_digits(return_X_y=True)
X, y = torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)
order = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
X_train, y_train, X_test, y_test = X[order[:1500]], y[order[:1500]], X[order[1500:]], y[order[1500:]]


def make_model():
    torch.manual_seed(0)  # every run starts from the same weights
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


def train(lr, schedule=None, steps=600, momentum=0.9, batch=64, feed=None, plateau=None, weight_decay=0.0):
    """Train a fresh model; return a dict of per-step losses, lrs, full-train losses and test accuracy.

    feed="error": pass the running training error to ``scheduler.step(metric)`` (for S.switch);
    plateau=dict(...): use torch's ReduceLROnPlateau (fastlr's drop-in) on the full training loss.
    """
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    if plateau is not None:
        sched = ReduceLROnPlateau(opt, **plateau)
    else:
        sched = ScheduledLR(opt, schedule if schedule is not None else S.constant(1.0))
    batches = torch.Generator().manual_seed(1)
    losses, lrs, full_steps, full = [], [], [], []
    error = None
    for step in range(steps):
        idx = torch.randint(0, len(X_train), (batch,), generator=batches)
        out = model(X_train[idx])
        loss = F.cross_entropy(out, y_train[idx])
        opt.zero_grad()
        loss.backward()
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        losses.append(loss.item())
        e = (out.argmax(1) != y_train[idx]).float().mean().item()
        error = e if error is None else 0.9 * error + 0.1 * e
        if step % 10 == 9:
            with torch.no_grad():
                full_steps.append(step)
                full.append(F.cross_entropy(model(X_train), y_train).item())
        if plateau is not None:
            if step % 50 == 49:
                sched.step(full[-1])
        elif feed == "error":
            sched.step(error)
        else:
            sched.step()
    with torch.no_grad():
        acc = (model(X_test).argmax(1) == y_test).float().mean().item()
    return {"loss": np.array(losses), "lr": np.array(lrs), "full_steps": np.array(full_steps),
            "full": np.array(full), "acc": acc}


def smooth(x, beta=0.95):
    """Exponential moving average (bias-corrected), for readable per-step curves."""
    out, avg = np.empty(len(x)), 0.0
    for i, v in enumerate(x):
        avg = beta * avg + (1 - beta) * v
        out[i] = avg / (1 - beta ** (i + 1))
    return out


HAS_DIAGNOSE = hasattr(fastlr, "diagnose")


def verdict(run):
    """fastlr.diagnose's verdict on a run's per-step losses (where this fastlr has it)."""
    if not HAS_DIAGNOSE:
        return "(fastlr.diagnose is not in this build)"
    d = fastlr.diagnose(run["loss"], lrs=run["lr"])
    return f"{d.verdict}: {d.advice}"


# %%
# How the lr's size shapes the loss curve
# ---------------------------------------
#
# The same model, the same batches, a constant lr (plain SGD, no momentum) from 0.003 to 3. Too
# small, and the loss creeps down: after 600 steps it has hardly moved. Too large, and the first
# steps throw the weights so far that the loss rises, and here the network dies (every ReLU off:
# the loss sits at ln 10 = 2.3, chance). In between lies a range of good lrs, about a factor of 10
# wide, in which the loss falls fast and keeps falling.

sizes = [0.003, 0.03, 0.3, 1.0, 3.0]
runs = {lr: train(lr, momentum=0.0) for lr in sizes}
fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
for lr, run in runs.items():
    ax.plot(smooth(run["loss"]), lw=1.5, label=f"lr={lr}: test accuracy {run['acc']:.0%}")
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("training loss (smoothed)")
ax.set_title("Constant lr, plain SGD: too small, good, too large")
ax.legend(fontsize=8)
plt.show()

# %%
# The four classic loss curves
# ----------------------------
#
# Four curves that every practitioner learns to read, each from a real run here, with the verdict
# of :func:`fastlr.diagnose` on its per-step losses (and its advice, which names an lr because the
# lrs are passed too):
#
# * **an initial rise**: the lr is far too high; the first updates overshoot and the loss goes up;
# * **a fast drop, then flat**: the lr is high enough to make quick progress, too high to settle:
#   the loss stops improving, swinging in a wide band (decay the lr, or lower it);
# * **slow throughout**: the lr is too small: the loss slides slowly and is still sliding at the end;
# * **a steady slide**: the loss falls quickly, then keeps improving, ever more slowly.

classic = {
    "an initial rise (SGD, lr=2.5)": train(2.5, momentum=0.0),
    "a fast drop, then flat (momentum 0.9, lr=0.5)": train(0.5),
    "slow throughout (SGD, lr=0.003)": train(0.003, momentum=0.0),
    "a steady slide (momentum 0.9, lr=0.05)": train(0.05),
}
fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), layout="constrained")
for ax, (title, run) in zip(axes, classic.items()):
    ax.plot(run["loss"], lw=0.4, c="0.75")
    ax.plot(smooth(run["loss"]), lw=1.6)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("step")
    v = verdict(run).split(":")[0] if HAS_DIAGNOSE else "-"
    ax.text(0.97, 0.95, f"diagnose: {v}", transform=ax.transAxes, ha="right", va="top", fontsize=8,
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})
axes[0].set_ylabel("training loss")
plt.show()
for title, run in classic.items():
    print(f"{title}\n    {verdict(run)}")

# %%
# A fixed lr against a decayed one
# --------------------------------
#
# Near the optimum, the gradient of a mini-batch is mostly noise, and a step of a fixed size keeps
# kicking the weights around the minimum: the loss swings in a band whose width grows with the lr.
# Decaying the lr shrinks the steps, and the band with them. Below, the loss on the whole training
# set, measured every 10 steps (with a little weight decay, so that the optimum is a real minimum
# rather than a loss of zero), for two fixed lrs and for the larger one decayed along a cosine; the
# shaded bands are the ranges the loss swings in over the last quarter of training.

band_runs = {
    "fixed lr 0.1": train(0.1, steps=1000, weight_decay=1e-3),
    "fixed lr 0.3": train(0.3, steps=1000, weight_decay=1e-3),
    "cosine decay from 0.3": train(0.3, S.cosine(1.0, 1000), steps=1000, weight_decay=1e-3),
}
fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
for name, run in band_runs.items():
    tail = run["full"][-len(run["full"]) // 4:]
    line, = ax.plot(run["full_steps"], run["full"], lw=1.4,
                    label=f"{name}: band {tail.min():.3f} to {tail.max():.3f}, width {tail.max() - tail.min():.4f}")
    ax.axhspan(tail.min(), tail.max(), xmin=0.75, color=line.get_color(), alpha=0.25)
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("loss on the whole training set")
ax.legend(fontsize=8)
plt.show()
for name, run in band_runs.items():
    print(f"{name}: test accuracy {run['acc']:.1%}")

# %%
# Each scheduler family, and when to use it
# -----------------------------------------
#
# The same peak lr (0.3, momentum 0.9) and budget (600 steps), ten schedules. On a problem this
# small they all get somewhere; what differs is the path, and how each behaves when the budget or the
# data change.
#
# * **constant**: a baseline; the loss stays in the band of the fixed lr.
# * **step decay** (``multistep``, torch's ``MultiStepLR``): the classic ImageNet recipe (divide by
#   10 at 50% and 75%); each drop gives a sudden improvement. Needs the milestones tuned to the
#   budget.
# * **exponential**: smooth, but it needs the rate tuned to the budget, and it decays early.
# * **cosine** (``CosineAnnealingLR``, ``get_scheduler("cosine")``): the default of most modern
#   recipes, one parameter (the length), no milestones.
# * **linear decay**: the transformers default (after a warm-up); much like the cosine.
# * **one-cycle** (``OneCycleLR``): warm-up to a high peak, then anneal far below; fast training for a
#   fixed, known budget.
# * **WSD** (warmup-stable-decay): a long constant phase, then a short decay; you can stop, branch or
#   extend the run at any point of the stable phase and decay from there (LLM pre-training).
# * **inverse square root** (after a warm-up): the original Transformer's schedule; it never ends,
#   for runs whose length is unknown.
# * **warm restarts** (SGDR): the lr jumps back up periodically; each restart's end is a usable
#   snapshot (ensembles, anytime results).
# * **reduce on plateau** (``ReduceLROnPlateau``): lowers the lr when a measured loss stalls; no
#   schedule to plan, at the price of a metric and some patience.

family = {
    "constant": S.constant(1.0),
    "step decay": S.multistep(1.0, [300, 450], gamma=0.1),
    "exponential": S.exponential(1.0, 0.995),
    "cosine": S.cosine(1.0, 600),
    "linear decay": S.linear(1.0, 0.0, 600),
    "one-cycle": S.onecycle(1.0, 600),
    "WSD": S.wsd(1.0, warmup=30, decay=120, total=600, decay_shape="1-sqrt"),
    "inverse sqrt": S.warmup(S.inverse_sqrt(1.0, timescale=30), 30),
    "warm restarts": S.warm_restarts(1.0, period=100, t_mult=2.0),
}
family_runs = {name: train(0.3, s) for name, s in family.items()}
family_runs["reduce on plateau"] = train(0.3, plateau={"patience": 1, "factor": 0.3})
fig, axes = plt.subplots(2, 1, figsize=(9, 7), sharex=True, layout="constrained")
for name, run in family_runs.items():
    axes[0].plot(run["lr"], lw=1.3, label=name)
    axes[1].plot(run["full_steps"], run["full"], lw=1.3, label=f"{name}: {run['acc']:.1%}")
axes[0].set_ylabel("lr")
axes[1].set_ylabel("loss on the whole training set")
axes[1].set_yscale("log")
axes[1].set_xlabel("step")
axes[1].legend(fontsize=7.5, ncol=2, title="test accuracy", title_fontsize=8)
plt.show()
print(f"{'schedule':<20}{'final train loss':>18}{'test accuracy':>16}")
for name, run in family_runs.items():
    print(f"{name:<20}{run['full'][-1]:>18.4f}{run['acc']:>16.1%}")

# %%
# Warm-up: constant against gradual
# ---------------------------------
#
# At a high lr the first steps are the dangerous ones: the weights are random, the gradients large,
# and momentum has not yet averaged them. A warm-up starts with a small lr. Two recipes:
#
# * **constant warm-up** (He et al. 2016, ResNet-110 on CIFAR-10): train at a tenth of the lr until
#   the training error falls below 80%, then switch to the full lr. A phase change on a metric:
#   :func:`fastlr.schedules.switch`, fed the running training error through
#   ``scheduler.step(error)``;
# * **gradual warm-up** (Goyal et al. 2017, large-batch ImageNet): raise the lr linearly from 0 to the
#   peak over the first steps: :func:`fastlr.schedules.warmup`.
#
# Here the peak lr is 0.8 with momentum 0.9, at the edge of what this network takes. Without a
# warm-up, the first steps spike the loss and the run never fully recovers; the constant warm-up
# switches after a few steps (the error is below 80% very soon on digits) and so barely helps;
# the gradual warm-up trains well. This is what Goyal et al. found: a constant warm-up was not
# enough, a gradual one was.

warmups = {
    "no warm-up": train(0.8, S.cosine(1.0, 600)),
    "constant warm-up: 0.1x until error < 80%": train(
        0.8, S.switch(S.constant(0.1), S.cosine(1.0, 600), threshold=0.8), feed="error"),
    "gradual warm-up: linear over 100 steps": train(0.8, S.warmup(S.cosine(1.0, 500), 100)),
}
fig, axes = plt.subplots(1, 2, figsize=(13, 4), layout="constrained")
for name, run in warmups.items():
    axes[0].plot(run["lr"][:200], lw=1.5, label=name)
    axes[1].plot(smooth(run["loss"], 0.9), lw=1.3, label=f"{name}: {run['acc']:.1%}")
axes[0].set_title("lr, first 200 steps")
axes[1].set_title("training loss (smoothed); test accuracy")
axes[1].set_yscale("log")
for ax in axes:
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
plt.show()

# %%
# Finding a good lr: the range test
# ---------------------------------
#
# :func:`fastlr.find_lr` trains for a few steps while the lr rises geometrically, records the
# smoothed loss, and stops when the loss blows up; the model and the optimizer are then put back as
# they were. The suggested lr is where the loss falls fastest ("steepest", torch-lr-finder's rule);
# fastai's "valley" and "minimum" rules are there too.

model = make_model()
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
batches = torch.Generator().manual_seed(2)
data = [(X_train[i], y_train[i]) for i in torch.randint(0, 1500, (150, 64), generator=batches)]
res = fastlr.find_lr(opt, data, model=model, loss_fn=F.cross_entropy, start_lr=1e-4, end_lr=10.0,
                     num_steps=150, progress=False)
fig = res.plot()
plt.show()
suggested = {rule: res.suggest(rule) for rule in ("steepest", "valley", "minimum")}
print({rule: float(f"{lr:.3g}") for rule, lr in suggested.items()})

# %%
# And a cosine run at each suggestion, next to ten times more and ten times less than the
# "valley" one:

valley = suggested["valley"]
tries = {f"{rule} {lr:.3g}": lr for rule, lr in suggested.items()}
tries.update({f"valley x 10 = {10 * valley:.3g}": 10 * valley, f"valley / 10 = {valley / 10:.3g}": valley / 10})
fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
for name, lr in tries.items():
    run = train(lr, S.cosine(1.0, 600))
    ax.plot(run["full_steps"], run["full"], lw=1.4, label=f"{name}: {run['acc']:.1%}")
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("loss on the whole training set")
ax.legend(fontsize=8, title="lr: test accuracy", title_fontsize=8)
plt.show()
print(f"this page trained its networks in {time.perf_counter() - T0:.0f} s")
