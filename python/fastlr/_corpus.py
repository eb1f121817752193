"""A labelled corpus of real training-loss curves, for measuring :func:`fastlr.diagnose`.

``python -m fastlr._corpus [--out tests/data/loss_curves.npz] [--jobs N]`` trains small models on the
datasets that ship inside scikit-learn and writes every run's per-step loss with its label. The label
comes from how the run was made, never from a threshold on the curve (see tests/data/loss_curves.md):

* for each (dataset, model, optimizer) and seed, a sweep of the peak lr (1e-4 .. 100, x10 a rung,
  then the two x3.16 neighbours of the best) under warm-up + cosine decay; ``lr*`` is the lr with the
  best final loss (mean of the last epoch's batch losses) for that seed;
* ``healthy``: the sweep's run at ``lr*`` (warm-up + cosine);
* ``lr_too_low``: warm-up + cosine at ``lr* / 100``, ``/ 300``, ``/ 1000``, ``/ 3000`` or ``/ 10000``,
  starting at the rung the seed picks (``/ 100``, ``/ 300`` or ``/ 1000``), the first whose run ends
  clearly above the healthy one (the margin of ``lr_too_high_late`` below; on a convex problem
  ``lr* / 100`` can end where ``lr*`` does, and such a run shows nothing to diagnose);
* ``lr_too_high_late``: a constant lr 2, 3 or 5 times ``lr*``, from step 0 or after a 5% warm-up
  (the seed picks which is tried first), the first that ends clearly above the healthy run (final
  loss above ``healthy + 0.05 * (initial - healthy)``, where ``initial`` is the healthy run's first
  batch loss), finite, and not rising at the start (the ``lr_too_high`` start rule below does not hold);
* ``lr_too_high``: a constant lr from ``10 * lr*`` up (x3.16 a rung), the first whose run stays finite
  and whose loss rises or oscillates at the start: over the first 20% of the steps the mean batch
  loss is at least 0.8 times the first batch's, or the mean of one of its quarters is above 1.2
  times it;
* ``diverged``: a constant lr on the same ladder, above the ``lr_too_high`` one (or the rung where
  that search met a non-finite loss first), up to ``10**4 * lr*``: the first whose loss becomes
  NaN or inf.

A configuration with no run that meets a class's rule contributes no curve to that class (counted).
Datasets: digits, wine, breast cancer, iris and diabetes (regression), all inside scikit-learn;
California housing is downloaded by scikit-learn, so it is skipped without the internet (and was for
the shipped corpus). Models: logistic/linear regression, an MLP (64 ReLU units), a deeper MLP
(128 tanh, 64 ReLU) and, on digits, a small CNN. Held out from fitting the rules: wine (every model)
and the CNN. Training: the whole dataset (standardised features; digits' pixels / 16), batches of 32 (more on
digits, so that an epoch has at most 30 steps), at least 15 epochs and about 300 steps, cross-entropy
with label smoothing 0.1 (MSE for diabetes), SGD and SGD + momentum 0.9 with weight decay 5e-4,
AdamW with its default 0.01. Each run gives four views (:func:`views`): the raw per-step batch loss,
the same smoothed as TensorBoard smooths (EMA 0.9, debiased), the per-epoch mean, and the last batch
loss of each epoch (per epoch, with the run's own batch noise). The file stores the raw per-step
losses only; the views are derived from them, deterministically, by :func:`load`. numpy only at
import; training needs torch and scikit-learn, imported when a run starts.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

LABELS = ("healthy", "lr_too_high", "lr_too_high_late", "lr_too_low", "diverged")
VIEWS = ("step", "step_ema", "epoch", "epoch_last")
DATASETS = ("digits", "wine", "breast_cancer", "iris", "diabetes", "friedman", "california_housing")
MODELS = ("linear", "mlp", "mlp2", "cnn")
OPTIMIZERS = ("sgd", "momentum", "adamw")
SEEDS = (0, 1, 2)
#: Held out from tuning diagnose: one dataset (every model on it) and one model family (every dataset).
HELDOUT_DATASETS = ("wine",)
HELDOUT_MODELS = ("cnn",)
#: The peak-lr grid of the sweep: x10 a rung, then the two x sqrt(10) neighbours of the best.
LR_GRID = tuple(float(x) for x in 10.0 ** np.arange(-4.0, 2.01, 1.0))
TARGET_STEPS = 300
#: Classification uses label smoothing and SGD a little weight decay (AdamW has its own), as real
#: training does: on these small separable datasets the unregularised loss goes to 0 (even exactly,
#: in float32) at any large lr, and the lr with the lowest final loss would be the largest stable one.
LABEL_SMOOTHING = 0.1
WARMUP = 0.05


@dataclass
class Run:
    """One training run: its raw per-step losses and how it was made."""

    label: str
    dataset: str
    model: str
    optimizer: str
    seed: int
    lr: float  # the peak (or constant) lr
    lr_star: float
    schedule: str  # "warmup_cosine", "constant", "warmup_constant"
    steps_per_epoch: int
    losses: np.ndarray  # float32, per step, NaN after a non-finite loss

    def meta(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("label", "dataset", "model", "optimizer", "seed", "lr", "lr_star",
                                              "schedule", "steps_per_epoch")}


def heldout(dataset: str, model: str) -> bool:
    """Whether curves of this dataset and model belong to the held-out part."""
    return dataset in HELDOUT_DATASETS or model in HELDOUT_MODELS


# --------------------------------------------------------------------------------------------------
# Views: derived from the raw per-step losses, deterministically.


def ema(x: np.ndarray, beta: float = 0.9) -> np.ndarray:
    """TensorBoard's smoothing: a debiased exponential moving average (NaN once a NaN is seen)."""
    out = np.empty(len(x), dtype=np.float64)
    m = 0.0
    for i, v in enumerate(np.asarray(x, dtype=np.float64)):
        m = beta * m + (1 - beta) * v
        out[i] = m / (1 - beta ** (i + 1))
    return out


def epoch_means(x: np.ndarray, steps_per_epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-epoch mean batch loss, at each epoch's last step (as a per-epoch logger records it)."""
    n = len(x) // steps_per_epoch
    means = np.asarray(x[: n * steps_per_epoch], dtype=np.float64).reshape(n, steps_per_epoch).mean(axis=1)
    return np.arange(1, n + 1) * steps_per_epoch - 1, means


def views(run_losses: np.ndarray, steps_per_epoch: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The four views of one run: ``{view: (steps, losses)}``.

    ``step``: every batch loss; ``step_ema``: the same smoothed as TensorBoard smooths; ``epoch``: the
    mean of each epoch's batch losses (a logger that averages over the epoch); ``epoch_last``: the last
    batch loss of each epoch (a loop that prints ``loss.item()`` at the end of each epoch), so per
    epoch with the batch-to-batch noise of the run itself. Both per-epoch views sit at each epoch's
    last step."""
    x = np.asarray(run_losses, dtype=np.float64)
    steps = np.arange(len(x))
    es, em = epoch_means(x, steps_per_epoch)
    last = x[steps_per_epoch - 1:len(es) * steps_per_epoch:steps_per_epoch]
    return {"step": (steps, x), "step_ema": (steps, ema(x)), "epoch": (es, em), "epoch_last": (es, last)}


@dataclass
class Curve:
    """One curve of the corpus."""

    label: str
    view: str
    steps: np.ndarray
    losses: np.ndarray
    lrs: np.ndarray  # the lr at each of ``steps``
    meta: dict[str, Any]

    @property
    def heldout(self) -> bool:
        return heldout(self.meta["dataset"], self.meta["model"])


def lr_table(schedule: str, lr: float, n: int) -> np.ndarray:
    """The lr at each of n steps: ``warmup_cosine`` (5% linear warm-up then cosine to 0),
    ``constant``, or ``warmup_constant`` (5% linear warm-up then constant)."""
    t = np.arange(n, dtype=np.float64)
    w = max(int(round(WARMUP * n)), 1)
    warm = np.minimum((t + 1) / w, 1.0)
    if schedule == "constant":
        return np.full(n, lr)
    if schedule == "warmup_constant":
        return lr * warm
    if schedule == "warmup_cosine":
        cos = 0.5 * (1 + np.cos(np.pi * np.clip((t - w) / max(n - w, 1), 0.0, 1.0)))
        return lr * np.where(t < w, warm, cos)
    raise ValueError(f"unknown schedule {schedule!r}")


def curves(runs: Iterable[Run], view_names: Iterable[str] = VIEWS) -> Iterator[Curve]:
    """Every view of every run, as :class:`Curve` objects."""
    names = tuple(view_names)
    for i, r in enumerate(runs):
        table = lr_table(r.schedule, r.lr, len(r.losses))
        for view, (steps, losses) in views(r.losses, r.steps_per_epoch).items():
            if view in names:
                yield Curve(r.label, view, steps, losses, table[steps], {**r.meta(), "run": i})


def save(path: str, runs: list[Run], info: dict[str, Any]) -> None:
    """Write the runs to a compressed .npz: one float32 array of all losses, offsets, and JSON metadata."""
    offsets = np.cumsum([0] + [len(r.losses) for r in runs]).astype(np.int64)
    flat = np.concatenate([r.losses for r in runs]).astype(np.float32) if runs else np.zeros(0, np.float32)
    meta = json.dumps({"runs": [r.meta() for r in runs], "info": info}, sort_keys=True)
    np.savez_compressed(path, losses=flat, offsets=offsets, meta=np.frombuffer(meta.encode(), dtype=np.uint8))


def load_runs(path: str) -> tuple[list[Run], dict[str, Any]]:
    """The runs saved by :func:`save`, and the generator's info."""
    with np.load(path) as z:
        flat, offsets = z["losses"], z["offsets"]
        meta = json.loads(bytes(z["meta"]).decode())
    runs = [Run(losses=flat[offsets[i]:offsets[i + 1]], **m) for i, m in enumerate(meta["runs"])]
    return runs, meta["info"]


def load(path: str, view_names: Iterable[str] = VIEWS) -> list[Curve]:
    """Every curve of the corpus at ``path`` (every view of every run)."""
    runs, _ = load_runs(path)
    return list(curves(runs, view_names))


# --------------------------------------------------------------------------------------------------
# Training (torch and scikit-learn, imported here).


def _dataset(name: str) -> tuple[Any, Any, str]:
    """Standardised features and targets of a scikit-learn dataset: (X float32, y, task)."""
    import sklearn.datasets as D

    if name == "friedman":
        # Friedman's regression problem #1, noiseless, from scikit-learn's generator: the loss of a model
        # that can fit it falls by orders of magnitude (the label-smoothed classifications stop near 0.3)
        X, y = D.make_friedman1(n_samples=1000, n_features=10, noise=0.0, random_state=0)
        task = "regression"
    elif name == "california_housing":
        d = D.fetch_california_housing()  # downloads: fails without the internet (then skipped)
        X, y, task = d.data, d.target, "regression"
    else:
        loader = {"digits": D.load_digits, "wine": D.load_wine, "breast_cancer": D.load_breast_cancer,
                  "iris": D.load_iris, "diabetes": D.load_diabetes}[name]
        d = loader()
        X, y = d.data, d.target
        task = "regression" if name == "diabetes" else "classification"
    X = np.asarray(X, dtype=np.float64)
    if name == "digits":
        X = X / 16.0  # pixels: keep the image scale for the CNN
    else:
        X = (X - X.mean(0)) / (X.std(0) + 1e-12)
    if task == "regression":
        y = ((y - y.mean()) / y.std()).astype(np.float32)
    else:
        y = np.asarray(y, dtype=np.int64)
    return X.astype(np.float32), y, task


def _model(name: str, n_in: int, n_out: int, dataset: str) -> Any:
    from torch import nn

    if name == "linear":
        return nn.Linear(n_in, n_out)
    if name == "mlp":
        return nn.Sequential(nn.Linear(n_in, 64), nn.ReLU(), nn.Linear(64, n_out))
    if name == "mlp2":
        return nn.Sequential(nn.Linear(n_in, 128), nn.Tanh(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, n_out))
    if name == "cnn":
        if dataset != "digits":
            raise ValueError("the CNN takes digits' 8x8 images only")
        return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(32 * 16, n_out))
    raise ValueError(f"unknown model {name!r}")


def _optimizer(name: str, params: Any, lr: float) -> Any:
    import torch

    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=5e-4)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    raise ValueError(f"unknown optimizer {name!r}")


class _Trainer:
    """Trains one (dataset, model, optimizer) under any lr table; deterministic given the seed."""

    def __init__(self, dataset: str, model: str, optimizer: str):
        X, y, task = _dataset(dataset)
        self.X, self.y, self.task = X, y, task
        self.dataset, self.model_name, self.optimizer = dataset, model, optimizer
        self.n_out = 1 if task == "regression" else int(y.max()) + 1
        self.batch_size = max(32, math.ceil(len(X) / 30))  # at most 30 steps an epoch
        self.steps_per_epoch = math.ceil(len(X) / self.batch_size)
        self.epochs = max(15, round(TARGET_STEPS / self.steps_per_epoch))
        self.n_steps = self.epochs * self.steps_per_epoch

    def run(self, lrs: np.ndarray, seed: int) -> np.ndarray:
        """Per-step batch losses under the per-step lrs; NaN from the first non-finite loss on."""
        import torch
        import torch.nn.functional as F

        torch.manual_seed(seed)
        X, y = torch.from_numpy(self.X), torch.from_numpy(self.y)
        net = _model(self.model_name, X.shape[1], self.n_out, self.dataset)
        opt = _optimizer(self.optimizer, net.parameters(), float(lrs[0]))
        gen = torch.Generator().manual_seed(seed)
        out = np.full(self.n_steps, np.nan, dtype=np.float32)
        step = 0
        for _ in range(self.epochs):
            perm = torch.randperm(len(X), generator=gen)
            for b in range(self.steps_per_epoch):
                idx = perm[b * self.batch_size:(b + 1) * self.batch_size]
                pred = net(X[idx])
                if self.task == "regression":
                    loss = F.mse_loss(pred.squeeze(1), y[idx])
                else:
                    loss = F.cross_entropy(pred, y[idx], label_smoothing=LABEL_SMOOTHING)
                v = loss.item()
                out[step] = v
                if not math.isfinite(v):
                    return out
                for g in opt.param_groups:
                    g["lr"] = float(lrs[step])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
        return out


def final_loss(losses: np.ndarray, steps_per_epoch: int) -> float:
    """Mean batch loss of the last epoch (inf when it is not finite)."""
    v = float(np.mean(losses[-steps_per_epoch:]))
    return v if math.isfinite(v) else math.inf


def rises_at_start(losses: np.ndarray) -> bool:
    """The ``lr_too_high`` start rule: over the first 20% of the steps, the mean batch loss is at
    least 0.8 times the first batch's, or the mean of one of its four quarters is above 1.2 times it."""
    x = np.asarray(losses, dtype=np.float64)
    head = x[: max(int(0.2 * len(x)), 4)]
    quarters = [q.mean() for q in np.array_split(head, 4)]
    return bool(head.mean() >= 0.8 * x[0] or max(quarters) > 1.2 * x[0])


def configs(datasets: Iterable[str] = DATASETS, models: Iterable[str] = MODELS,
            optimizers: Iterable[str] = OPTIMIZERS) -> list[tuple[str, str, str]]:
    """The (dataset, model, optimizer) triples to train (the CNN on digits only)."""
    return [(d, m, o) for d in datasets for m in models for o in optimizers if m != "cnn" or d == "digits"]


def run_config(config: tuple[str, str, str], seeds: Iterable[int] = SEEDS,
               lr_grid: Iterable[float] = LR_GRID) -> tuple[list[Run], dict[str, Any]]:
    """Sweep for each seed's ``lr*`` and make that seed's labelled runs, for one configuration."""
    import torch

    torch.set_num_threads(1)
    ds, mdl, opt = config
    info: dict[str, Any] = {"missing": [], "lr_star": {}, "log": []}
    tr = _Trainer(ds, mdl, opt)
    runs: list[Run] = []
    for seed in seeds:
        lr_star, healthy, final = _sweep(tr, seed, tuple(lr_grid))
        info["lr_star"][f"{ds}/{mdl}/{opt}/seed{seed}"] = lr_star
        info["log"].append(f"{ds}/{mdl}/{opt}/seed{seed}: lr* = {lr_star:.3g}, final {final:.4g}")
        made = _label_runs(tr, lr_star, seed, healthy)
        runs.extend(made)
        have = {r.label for r in made}
        info["missing"] += [f"{ds}/{mdl}/{opt}/seed{seed}: {lab}" for lab in LABELS if lab not in have]
    return runs, info


def _sweep(tr: _Trainer, seed: int, lr_grid: tuple[float, ...]) -> tuple[float, np.ndarray, float]:
    """``lr*`` of one seed: the peak lr with the best final loss under warm-up + cosine (the grid, then the
    two x sqrt(10) neighbours of its best); returns it, its run (the healthy run) and its final loss."""
    n, spe = tr.n_steps, tr.steps_per_epoch
    made = {lr: tr.run(lr_table("warmup_cosine", lr, n), seed) for lr in lr_grid}
    finals = {lr: final_loss(x, spe) for lr, x in made.items()}
    best = min(finals, key=lambda lr: (finals[lr], lr))
    for lr in (best / math.sqrt(10), best * math.sqrt(10)):
        made[lr] = tr.run(lr_table("warmup_cosine", lr, n), seed)
        finals[lr] = final_loss(made[lr], spe)
    lr_star = min(finals, key=lambda lr: (finals[lr], lr))
    return lr_star, made[lr_star], finals[lr_star]


def made_with(torch: Any) -> dict[str, str]:
    """What the losses depend on beyond the code and the seeds: torch's version and the instruction set
    its CPU kernels use (another one rounds differently, and the high-lr runs amplify the difference)."""
    import sklearn

    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "sklearn": sklearn.__version__}


def generate(datasets: Iterable[str] = DATASETS, models: Iterable[str] = MODELS,
             optimizers: Iterable[str] = OPTIMIZERS, seeds: Iterable[int] = SEEDS,
             lr_grid: Iterable[float] = LR_GRID, jobs: int = 1, log: Any = None,
             progress: Any = None) -> tuple[list[Run], dict[str, Any]]:
    """Train and label the runs (see the module docstring); ``jobs`` processes train configurations
    in parallel (the result does not depend on it). ``progress(runs, info)`` is called after each
    configuration. Returns the runs and a report."""
    import torch

    say = log or (lambda *a: None)
    info: dict[str, Any] = {"skipped": [], "missing": [], "lr_star": {}, "made_with": made_with(torch)}
    usable = []
    for ds in datasets:
        try:
            _dataset(ds)
        except Exception as e:  # a dataset that must be downloaded, without the internet
            info["skipped"].append(f"{ds}: {type(e).__name__}: {str(e)[:120]}")
            say(f"skip {ds}: {type(e).__name__}: {str(e)[:120]}")
        else:
            usable.append(ds)
    todo = configs(usable, models, optimizers)
    seeds, lr_grid = tuple(seeds), tuple(lr_grid)
    runs: list[Run] = []
    if jobs > 1:
        import functools
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            results = pool.imap(functools.partial(run_config, seeds=seeds, lr_grid=lr_grid), todo)
            for r, i in results:
                runs.extend(r)
                _merge(info, i, say)
                if progress:
                    progress(runs, info)
    else:
        for c in todo:
            r, i = run_config(c, seeds, lr_grid)
            runs.extend(r)
            _merge(info, i, say)
            if progress:
                progress(runs, info)
    return runs, info


def _merge(info: dict[str, Any], part: dict[str, Any], say: Any) -> None:
    info["missing"] += part["missing"]
    info["lr_star"].update(part["lr_star"])
    for line in part["log"]:
        say(line)


def _label_runs(tr: _Trainer, lr_star: float, seed: int, healthy: np.ndarray) -> list[Run]:
    n, spe = tr.n_steps, tr.steps_per_epoch

    def make(label: str, schedule: str, lr: float, losses: np.ndarray) -> Run:
        return Run(label, tr.dataset, tr.model_name, tr.optimizer, seed, float(lr), float(lr_star), schedule, spe,
                   losses)

    out = [make("healthy", "warmup_cosine", lr_star, healthy)]
    h_final, l0 = final_loss(healthy, spe), float(healthy[0])

    def clearly_above(f: float) -> bool:  # ends clearly above the healthy run
        return math.isfinite(f) and f > h_final + 0.05 * (l0 - h_final)

    for div in (100, 300, 1000, 3000, 10000)[seed % 3:]:  # the first rung (by seed) that ends clearly above
        x = tr.run(lr_table("warmup_cosine", lr_star / div, n), seed)
        if clearly_above(final_loss(x, spe)):
            out.append(make("lr_too_low", "warmup_cosine", lr_star / div, x))
            break
    order = ("constant", "warmup_constant") if seed % 2 == 0 else ("warmup_constant", "constant")
    found = False
    for sched in order:
        for m in (2, 3, 5):
            x = tr.run(lr_table(sched, m * lr_star, n), seed)
            f = final_loss(x, spe)
            if clearly_above(f) and not rises_at_start(x):
                out.append(make("lr_too_high_late", sched, m * lr_star, x))
                found = True
                break
        if found:
            break
    diverged = None
    for k in range(2, 9):  # 10 .. 10**4 times lr*: the first finite run that rises at the start
        lr = lr_star * 10 ** (k / 2)
        x = tr.run(lr_table("constant", lr, n), seed)
        if not np.all(np.isfinite(x)):
            diverged = make("diverged", "constant", lr, x)
            break
        if rises_at_start(x):
            out.append(make("lr_too_high", "constant", lr, x))
            for k2 in range(k + 1, 9):  # larger still, up to 10**4 times lr*: the first that diverges
                lr = lr_star * 10 ** (k2 / 2)
                x = tr.run(lr_table("constant", lr, n), seed)
                if not np.all(np.isfinite(x)):
                    diverged = make("diverged", "constant", lr, x)
                    break
            break
    if diverged is not None:
        out.append(diverged)
    return out


def features(curve: Curve) -> dict[str, float] | None:
    """:func:`fastlr._diagnose.evidence` of a curve's bins, or None for a curve with a NaN/inf."""
    from ._diagnose import _bin, evidence

    if not np.all(np.isfinite(curve.losses)):
        return None
    return evidence(_bin(np.asarray(curve.steps, dtype=np.float64), curve.losses)[1])


#: The forest of :func:`fastlr._diagnose.classify`: scikit-learn's RandomForestClassifier with these
#: settings (classes balanced, seed 0, one job: the fit is deterministic for one scikit-learn version).
FOREST = {"n_estimators": 100, "max_depth": 14, "min_samples_leaf": 2}


def _evidence_rows(path: str, keep: Callable[[Curve], bool]) -> tuple[np.ndarray, list[Curve]]:
    """The evidence (``FOREST_FEATURES`` columns) of the finite curves that ``keep`` keeps, and those curves."""
    from ._diagnose import FOREST_FEATURES

    rows, kept = [], []
    for c in load(path):
        ev = features(c) if keep(c) else None
        if ev is not None:
            rows.append([ev[k] for k in FOREST_FEATURES])
            kept.append(c)
    return np.array(rows), kept


def tuning_features(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The evidence (``FOREST_FEATURES`` columns) and labels of the finite curves of the tuning part."""
    X, kept = _evidence_rows(path, lambda c: not c.heldout)
    return X, np.array([c.label for c in kept])


def _fit(path: str) -> tuple[Any, int]:
    """scikit-learn's forest fitted on the tuning part (and the number of curves it saw)."""
    from sklearn.ensemble import RandomForestClassifier

    X, y = tuning_features(path)
    clf = RandomForestClassifier(**FOREST, class_weight="balanced", random_state=0, n_jobs=1)
    return clf.fit(X, y), len(y)


def fit_forest(path: str, out: str) -> dict[str, Any]:
    """Fit the random forest of :func:`fastlr._diagnose.classify` on the *tuning* part of the corpus at
    ``path`` (never the held-out part) and write it to ``out`` as the flat arrays that ``_diagnose``
    reads (``python -m fastlr._corpus --fit CORPUS`` writes ``python/fastlr/_diagnose_forest.npz``).
    Curves with a NaN/inf are left out: they are ``diverged`` by rule. Needs scikit-learn."""
    import sklearn

    from ._diagnose import FOREST_FEATURES

    clf, n = _fit(path)
    feature, threshold, left, right, value, roots = [], [], [], [], [], []
    for est in clf.estimators_:
        t = est.tree_
        base = sum(len(f) for f in feature)
        roots.append(base)
        leaf = t.children_left < 0
        feature.append(np.where(leaf, -1, t.feature).astype(np.int16))
        threshold.append(t.threshold.astype(np.float64))
        left.append(np.where(leaf, -1, t.children_left + base).astype(np.int32))
        right.append(np.where(leaf, -1, t.children_right + base).astype(np.int32))
        v = t.value[:, 0, :]
        value.append((v / v.sum(axis=1, keepdims=True)).astype(np.float32))  # class shares of each leaf
    meta = {"classes": [str(c) for c in clf.classes_], "features": list(FOREST_FEATURES), "forest": FOREST,
            "sklearn": sklearn.__version__, "curves": n}
    np.savez_compressed(out, feature=np.concatenate(feature), threshold=np.concatenate(threshold),
                        left=np.concatenate(left), right=np.concatenate(right), value=np.concatenate(value),
                        roots=np.array(roots, dtype=np.int32),
                        meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8))
    return meta


def grouped_folds(groups: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Masks of ``folds`` test folds over the curves, by group: every group (a dataset and model) lies
    in exactly one fold, so a fold is predicted by a forest that never saw its datasets and models.
    The groups are shuffled with ``seed`` and dealt round-robin."""
    names = np.random.default_rng(seed).permutation(np.unique(groups))
    return [np.isin(groups, names[i::folds]) for i in range(folds)]


def grouped_cv(
    path: str, repeats: int = 3, folds: int = 5, make: Callable[[], Any] | None = None
) -> dict[str, Any]:
    """A cross-validation of :func:`fit_forest`'s forest on the corpus's *tuning* part, grouped by
    dataset and model: how well the evidence carries to families the forest was not fitted on, without
    spending the held-out part (``tests/data/loss_curves.md`` judges changes by it).

    Train and test curves are the finite curves of the four classes that are not ``diverged`` by rule;
    each repeat shuffles the groups into ``folds`` folds anew (seed = the repeat's index). ``make()``
    returns the classifier (default: the shipped forest's settings). Returns the mean accuracy, each
    repeat's, and per class and per view over all repeats. Needs scikit-learn."""
    from sklearn.ensemble import RandomForestClassifier

    X, kept = _evidence_rows(path, lambda c: not c.heldout and c.label != "diverged")
    y = np.array([c.label for c in kept])
    g = np.array([f"{c.meta['dataset']}/{c.meta['model']}" for c in kept])
    v = np.array([c.view for c in kept])
    make = make or (lambda: RandomForestClassifier(**FOREST, class_weight="balanced", random_state=0, n_jobs=1))
    hits = np.zeros((repeats, len(y)), dtype=bool)
    for r in range(repeats):
        for test in grouped_folds(g, folds, r):
            clf = make().fit(X[~test], y[~test])
            hits[r, test] = clf.predict(X[test]) == y[test]
    return {"accuracy": float(hits.mean()), "repeats": [float(h.mean()) for h in hits],
            "per_class": {str(k): float(hits[:, y == k].mean()) for k in np.unique(y)},
            "per_view": {str(k): float(hits[:, v == k].mean()) for k in np.unique(v)},
            "curves": len(y), "groups": int(len(np.unique(g))), "folds": folds}


def describe(path: str) -> str:
    """The counts of the corpus as markdown tables (runs per class and part; runs per dataset and model)."""
    import collections

    runs, info = load_runs(path)
    lines = ["| class | runs | tuning | held-out | curves (x4 views) |", "|---|---|---|---|---|"]
    for lab in LABELS:
        rs = [r for r in runs if r.label == lab]
        h = sum(heldout(r.dataset, r.model) for r in rs)
        lines.append(f"| `{lab}` | {len(rs)} | {len(rs) - h} | {h} | {len(VIEWS) * len(rs)} |")
    h = sum(heldout(r.dataset, r.model) for r in runs)
    lines.append(f"| all | {len(runs)} | {len(runs) - h} | {h} | {len(VIEWS) * len(runs)} |")
    lines += ["", "| dataset / model | " + " | ".join(f"`{lab}`" for lab in LABELS) + " |",
              "|---|" + "---|" * len(LABELS)]
    per = collections.Counter((r.dataset, r.model, r.label) for r in runs)
    for ds, mdl in dict.fromkeys((r.dataset, r.model) for r in runs):
        tag = " (held out)" if heldout(ds, mdl) else ""
        lines.append(f"| {ds} / {mdl}{tag} | " + " | ".join(str(per[ds, mdl, lab]) for lab in LABELS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastlr._corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="tests/data/loss_curves.npz")
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    p.add_argument("--jobs", type=int, default=1, help="processes (the result does not depend on it)")
    p.add_argument("--fit", metavar="CORPUS", help="fit diagnose's forest on CORPUS's tuning part, write it to "
                   "python/fastlr/_diagnose_forest.npz (or --forest), and exit")
    p.add_argument("--forest", default=None, help="where --fit writes the forest")
    p.add_argument("--describe", metavar="CORPUS", help="print CORPUS's counts as markdown tables, and exit")
    p.add_argument("--cv", metavar="CORPUS", help="print the grouped cross-validation of the forest on CORPUS's "
                   "tuning part (by dataset and model; the held-out part is not read), and exit")
    p.add_argument("--repeats", type=int, default=3, help="repeats of --cv (each shuffles the folds anew)")
    a = p.parse_args(argv)
    if a.fit:
        import pathlib

        out = a.forest or str(pathlib.Path(__file__).with_name("_diagnose_forest.npz"))
        meta = fit_forest(a.fit, out)
        print(f"wrote {out}: {meta['forest']} on {meta['curves']} curves (scikit-learn {meta['sklearn']})")
        return 0
    if a.describe:
        print(describe(a.describe))
        return 0
    if a.cv:
        res = grouped_cv(a.cv, repeats=a.repeats)
        print(f"grouped {res['folds']}-fold cross-validation, {res['groups']} datasets/models, {res['curves']} curves: "
              f"{res['accuracy']:.3f} (repeats: {', '.join(f'{x:.3f}' for x in res['repeats'])})")
        for part in ("per_class", "per_view"):
            print(f"  {part.replace('_', ' ')}: " + ", ".join(f"{k} {x:.3f}" for k, x in res[part].items()))
        return 0
    t0 = time.perf_counter()
    runs, info = generate(a.datasets.split(","), a.models.split(","), a.optimizers.split(","),
                          [int(s) for s in a.seeds.split(",")], jobs=a.jobs, log=lambda m: print(m, flush=True),
                          progress=lambda r, i: save(a.out + ".partial.npz", r, i))
    info["seconds"] = round(time.perf_counter() - t0, 1)
    save(a.out, runs, info)
    counts = {lab: sum(r.label == lab for r in runs) for lab in LABELS}
    print(f"wrote {a.out}: {len(runs)} runs ({counts}), x{len(VIEWS)} views; {info['seconds']} s")
    for s in info["skipped"]:
        print("skipped:", s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
