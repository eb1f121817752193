"""fastlr.diagnose and fastlr.LossMonitor (issue 14 part 2): accuracy on the shipped corpus of real
training runs (overall and per class, on the tuning part and on the held-out part), each verdict on
hand-made curves, NaN/inf, the advice naming an lr, the monitor's warnings and its agreement with
diagnose, the CLI on CSV/JSON files, the framework callbacks, and the generator itself (a tiny slice
trained again must give the shipped runs and labels)."""

from __future__ import annotations

import collections
import csv
import json
import math
import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
from fastlr import _corpus, _diagnose
from fastlr._diagnose import LossMonitor, LossMonitorWarning, diagnose

CORPUS = pathlib.Path(__file__).parent / "data" / "loss_curves.npz"
LABELS = _corpus.LABELS


# --------------------------------------------------------------------------------------------------
# Accuracy on the corpus (read from tests/data; nothing is trained here).


@pytest.fixture(scope="module")
def scored() -> list[tuple[_corpus.Curve, str]]:
    return [(c, diagnose(c.losses, steps=c.steps).verdict) for c in _corpus.load(str(CORPUS))]


def _accuracy(rows: list[tuple[_corpus.Curve, str]]) -> tuple[float, dict[str, float], dict[str, int]]:
    per, ok = collections.Counter(), collections.Counter()
    for c, v in rows:
        per[c.label] += 1
        ok[c.label] += v == c.label
    overall = sum(ok.values()) / sum(per.values())
    return overall, {k: ok[k] / per[k] for k in per}, dict(per)


#: The issue's target: 90% overall and 80% in each class, on the corpus and on its held-out part. It is
#: met on the whole corpus and on the tuning part, NOT on the held-out part (tests/data/loss_curves.md
#: has the numbers and why). The floors are the accuracy measured when the forest was fitted, less 3
#: points, so that a change which makes the diagnosis worse fails here. Raise them as it improves;
#: never lower them to pass.
TARGET_OVERALL, TARGET_PER_CLASS = 0.90, 0.80
FLOORS = {
    "all": (0.93, {"healthy": 0.93, "lr_too_high": 0.85, "lr_too_high_late": 0.89, "lr_too_low": 0.96,
                   "diverged": 0.97}),
    "tuning": (0.95, {"healthy": 0.95, "lr_too_high": 0.90, "lr_too_high_late": 0.94, "lr_too_low": 0.96,
                      "diverged": 0.97}),
    "heldout": (0.85, {"healthy": 0.83, "lr_too_high": 0.71, "lr_too_high_late": 0.67, "lr_too_low": 0.92,
                       "diverged": 0.97}),
}


@pytest.mark.parametrize("part", ["all", "tuning", "heldout"])
def test_accuracy_on_the_corpus(scored, part):
    rows = [(c, v) for c, v in scored if part == "all" or c.heldout == (part == "heldout")]
    overall, per_class, counts = _accuracy(rows)
    assert set(counts) == set(LABELS), counts  # every class is in every part
    assert min(counts.values()) >= 20, counts
    report = f"{part}: overall {overall:.3f}, " + ", ".join(f"{k} {per_class[k]:.3f} (n={counts[k]})" for k in LABELS)
    print(report)
    floor, class_floors = FLOORS[part]
    assert overall >= floor, report
    for k in LABELS:
        assert per_class[k] >= class_floors[k], (k, report)
    if overall >= TARGET_OVERALL and min(per_class.values()) >= TARGET_PER_CLASS:
        print(f"{part}: the issue's target is met: raise FLOORS")


def test_corpus_is_what_the_doc_says():
    runs, info = _corpus.load_runs(str(CORPUS))
    datasets = {r.dataset for r in runs}
    assert {"digits", "wine", "breast_cancer", "iris", "diabetes", "friedman"} <= datasets
    assert {r.model for r in runs} == {"linear", "mlp", "mlp2", "cnn"}
    assert {r.optimizer for r in runs} == {"sgd", "momentum", "adamw"}
    assert {r.seed for r in runs} == {0, 1, 2}
    assert {r.model for r in runs if _corpus.heldout(r.dataset, r.model)} == {"linear", "mlp", "mlp2", "cnn"}
    assert {r.dataset for r in runs if r.model == "cnn"} == {"digits"}
    for r in runs:  # the labelling rule, checked from what is stored
        if r.label == "diverged":
            assert not np.all(np.isfinite(r.losses))
        else:
            assert np.all(np.isfinite(r.losses)), r.meta()
        if r.label == "healthy":
            assert r.lr == r.lr_star and r.schedule == "warmup_cosine"
        if r.label == "lr_too_low":
            assert r.lr <= r.lr_star / 100 * (1 + 1e-12) and r.schedule == "warmup_cosine"
        if r.label in ("lr_too_high", "diverged"):
            assert r.schedule == "constant" and r.lr >= 10 * r.lr_star * (1 - 1e-12)
        if r.label == "lr_too_high_late":
            assert r.schedule in ("constant", "warmup_constant") and 2 <= r.lr / r.lr_star <= 5 + 1e-9
    doc = (CORPUS.parent / "loss_curves.md").read_text()
    counts = collections.Counter(r.label for r in runs)
    for label in LABELS:  # the doc's table of counts is the file's
        assert f"| `{label}` | {counts[label]} |" in doc


def test_forest_is_scikit_learns_and_fitted_on_the_tuning_part(tmp_path):
    """The numpy evaluation of the shipped forest gives scikit-learn's predict_proba, and fitting again on
    the corpus's tuning part (with the scikit-learn version that fitted it) gives the shipped arrays."""
    sklearn = pytest.importorskip("sklearn")
    shipped = _diagnose._forest()
    if sklearn.__version__ != shipped["meta"]["sklearn"]:
        pytest.skip(f"the forest was fitted with scikit-learn {shipped['meta']['sklearn']}, this is {sklearn.__version__}")
    clf, n = _corpus._fit(str(CORPUS))
    assert n == shipped["meta"]["curves"]
    out = tmp_path / "forest.npz"
    _corpus.fit_forest(str(CORPUS), str(out))
    again = _diagnose._load_forest(out)
    for k in ("feature", "threshold", "left", "right", "value", "roots"):
        np.testing.assert_array_equal(again[k], shipped[k], err_msg=k)
    X, y = _corpus.tuning_features(str(CORPUS))
    proba = clf.predict_proba(X[::7])
    for row, p in zip(X[::7], proba):
        shares = _diagnose.verdict_shares(dict(zip(_diagnose.FOREST_FEATURES, row)))
        np.testing.assert_allclose([shares[c] for c in clf.classes_], p, rtol=1e-5, atol=1e-6)
        assert max(shares, key=shares.__getitem__) == clf.classes_[int(np.argmax(p))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_folds_keep_each_dataset_and_model_in_one_fold(seed):
    """The cross-validation's folds partition the curves by group: a group's curves are all in one test
    fold (never split between fitting and testing), and every curve is tested exactly once."""
    groups = np.array([f"d{i % 7}/m{i % 3}" for i in range(200)])
    folds = _corpus.grouped_folds(groups, 5, seed)
    assert len(folds) == 5
    np.testing.assert_array_equal(np.sum(folds, axis=0), np.ones(len(groups)))
    for g in np.unique(groups):
        inside = [bool(f[groups == g].all()) for f in folds]
        assert sum(inside) == 1, g  # all of the group in one fold
        assert sum(bool(f[groups == g].any()) for f in folds) == 1, g  # and none elsewhere
    assert _corpus.grouped_folds(groups, 5, seed)[0].tolist() == folds[0].tolist()  # deterministic


def test_grouped_cv_reads_only_the_tuning_parts_scored_curves():
    """``grouped_cv``'s accounting, with a classifier that always says ``healthy``: its accuracy is
    then the share of healthy curves among the finite, non-``diverged`` tuning curves (counted here
    from the corpus), healthy is always right and the other classes never."""
    dummy = pytest.importorskip("sklearn.dummy")
    curves = [c for c in _corpus.load(str(CORPUS))
              if not c.heldout and c.label != "diverged" and np.all(np.isfinite(c.losses))]
    res = _corpus.grouped_cv(str(CORPUS), repeats=2,
                             make=lambda: dummy.DummyClassifier(strategy="constant", constant="healthy"))
    assert res["curves"] == len(curves)
    assert res["groups"] == len({(c.meta["dataset"], c.meta["model"]) for c in curves})
    share = sum(c.label == "healthy" for c in curves) / len(curves)
    assert res["accuracy"] == pytest.approx(share) and res["repeats"] == [pytest.approx(share)] * 2
    assert res["per_class"] == {"healthy": 1.0, "lr_too_high": 0.0, "lr_too_high_late": 0.0, "lr_too_low": 0.0}
    assert set(res["per_view"]) == set(_corpus.VIEWS)


def test_generator_is_deterministic_and_reproduces_a_slice(tmp_path):
    """Train one configuration again (iris, logistic regression, plain SGD, seed 0): the sweep finds the
    same lr*, and the runs, their labels and lrs are the shipped ones; the losses too (to float32
    rounding) where torch's CPU kernels are the ones the corpus was made with. Another instruction set
    rounds differently (seen with AVX-512: losses apart from step 41 on in a high-lr run), and then only
    the first loss, before any update has amplified the difference, is compared."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    config = ("iris", "linear", "sgd")
    runs, info = _corpus.run_config(config, seeds=(0,))
    shipped, shipped_info = _corpus.load_runs(str(CORPUS))
    # the shipped file predates "made_with": made with torch 2.13.0 on an AVX2 machine (loss_curves.md)
    made_on = shipped_info.get("made_with", {}).get("cpu_capability", "AVX2")
    same_kernels = torch.backends.cpu.get_cpu_capability() == made_on
    shipped = [r for r in shipped if (r.dataset, r.model, r.optimizer) == config and r.seed == 0]
    assert [r.label for r in runs] == [r.label for r in shipped]
    for a, b in zip(runs, shipped):
        assert (a.lr, a.lr_star, a.schedule, a.steps_per_epoch) == (b.lr, b.lr_star, b.schedule, b.steps_per_epoch)
        n = len(b.losses) if same_kernels else 1
        assert len(a.losses) == len(b.losses)
        np.testing.assert_allclose(a.losses[:n], b.losses[:n], rtol=1e-4, atol=1e-6, equal_nan=True)
    # and the views derived from them are deterministic
    v1, v2 = _corpus.views(runs[0].losses, runs[0].steps_per_epoch), _corpus.views(runs[0].losses, runs[0].steps_per_epoch)
    for k in v1:
        np.testing.assert_array_equal(v1[k][1], v2[k][1])
    path = tmp_path / "slice.npz"
    _corpus.save(str(path), runs, info)
    back, _ = _corpus.load_runs(str(path))
    assert [r.meta() for r in back] == [r.meta() for r in runs]


# --------------------------------------------------------------------------------------------------
# Hand-made curves.

RNG = np.random.default_rng(0)
N = 400
T = np.arange(N) / (N - 1)


def _cosine_progress(t: np.ndarray) -> np.ndarray:
    """The integral of a warm-up + cosine lr, scaled to end at 1: how far training has got."""
    lr = np.where(t < 0.05, t / 0.05, 0.5 * (1 + np.cos(np.pi * (t - 0.05) / 0.95)))
    c = np.cumsum(lr)
    return c / c[-1]


def _noisy(x: np.ndarray, rel: float) -> np.ndarray:
    return x * np.exp(RNG.normal(0.0, rel, len(x)))


HAND = {
    # warm-up + cosine at a good lr: a fast fall that keeps sliding to the end
    "healthy": _noisy(0.02 + 2.3 * np.exp(-8 * _cosine_progress(T)), 0.05),
    # the loss jumps up at once and swings at a high level
    "lr_too_high": _noisy(2.3 + 3.0 * np.abs(np.sin(40 * T)) + 1.5 * (T > 0), 0.1),
    # a fast drop, then flat in a wide band
    "lr_too_high_late": _noisy(0.6 + 1.7 * np.exp(-T / 0.04), 0.25),
    # a slow fall throughout
    "lr_too_low": _noisy(2.3 - 0.5 * T, 0.02),
}


#: Hand-made curves the shipped forest gets wrong (strict: a fix shows up as an unexpected pass). Per
#: epoch (20 points), the healthy curve falls 100x in its first few epochs, then is flat: the corpus's
#: healthy per-epoch curves fall less and keep sliding (the forest of 50 trees of depth 10 had it right,
#: the one chosen by cross-validation, 100 trees of depth 14, does not).
HAND_XFAIL = {("healthy", "epoch")}


@pytest.mark.parametrize("view", ["step", "epoch"])
@pytest.mark.parametrize("verdict", list(HAND))
def test_verdict_on_hand_made_curves(verdict, view, request):
    if (verdict, view) in HAND_XFAIL:
        request.applymarker(pytest.mark.xfail(strict=True, reason="the shipped forest mislabels this curve"))
    if view == "step":
        d = diagnose(HAND[verdict])
    else:  # per epoch: means of 20 steps, at each epoch's last step
        d = diagnose(HAND[verdict].reshape(-1, 20).mean(1), steps=np.arange(19, N, 20))
    assert d.verdict == verdict, d.evidence


@pytest.mark.xfail(strict=True, reason="a noise-free curve that converged and sits exactly flat reads as stuck")
def test_noise_free_converged_curve_is_healthy():
    """A loss that halves every 10 steps to its floor and then does not move at all (no batch noise): the
    forest calls it lr_too_high, as it calls a dead network that sits at one value. The corpus has no
    noise-free curve that falls this far; its stuck curves are dead networks at their starting loss."""
    d = diagnose([2.3 * 0.5 ** (t / 10) + 0.01 for t in range(400)])
    assert d.verdict in ("healthy", "lr_too_high_late")


@pytest.fixture
def verdict_is(monkeypatch):
    """Make the classifier return a given verdict, for the tests of what is built around it (span,
    advice, binning, monitor, CLI), which must not depend on how good the fitted rules are."""

    def fix(v: str) -> None:
        monkeypatch.setattr(_diagnose, "classify", lambda ev: "diverged" if ev["explosion"] >= math.log(
            _diagnose.EXPLOSION) else v)

    return fix


@pytest.mark.parametrize("verdict", list(HAND))
def test_diagnosis_fields(verdict, verdict_is):
    verdict_is(verdict)
    d = diagnose(HAND[verdict])
    assert d.verdict == verdict and d.verdict in _diagnose.VERDICTS
    assert isinstance(d.advice, str) and d.advice.count(". ") == 0  # one sentence
    assert 0 <= d.span[0] <= d.span[1] <= N - 1
    assert set(_diagnose.FOREST_FEATURES) <= set(d.evidence)


def test_spans_say_which_steps(verdict_is):
    verdict_is("lr_too_high")
    assert diagnose(HAND["lr_too_high"]).span[0] == 0
    verdict_is("lr_too_high_late")
    late = diagnose(HAND["lr_too_high_late"])
    assert 5 <= late.span[0] <= N // 4 and late.span[1] == N - 1  # from the end of the fast drop on
    verdict_is("lr_too_low")
    assert diagnose(HAND["lr_too_low"]).span == (0, N - 1)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_is_diverged(bad):
    x = HAND["healthy"].copy()
    x[300] = bad
    x[301:] = math.nan
    d = diagnose(x, steps=np.arange(N) * 10)
    assert d.verdict == "diverged"
    assert d.span == (3000, (N - 1) * 10)
    assert d.evidence["first_nonfinite_step"] == 3000
    assert "diverged" in d.advice


def test_explosion_is_diverged():
    x = np.concatenate([np.linspace(2.3, 2.0, 50), 2.0 * 10.0 ** np.linspace(0, 7, 50)])
    d = diagnose(x)
    assert d.verdict == "diverged", d.evidence
    assert d.span[0] > 50


def test_advice_names_the_lr(verdict_is):
    lrs = np.full(N, 0.3)
    verdict_is("lr_too_high")
    assert "lower the peak lr from 0.3 to about 0.03 and train again from scratch" in diagnose(
        HAND["lr_too_high"], lrs=lrs).advice
    verdict_is("lr_too_low")
    assert "raise the peak lr from 0.001 to about 0.01 and train again from scratch" in diagnose(
        HAND["lr_too_low"], lrs=np.full(N, 0.001)).advice
    verdict_is("lr_too_high_late")
    late = diagnose(HAND["lr_too_high_late"], lrs=lrs)
    assert "0.3" in late.advice and "0.03" in late.advice and "last epochs" in late.advice
    x = HAND["healthy"].copy()
    x[200:] = math.nan
    assert "lower the peak lr from 0.3 to about 0.03" in diagnose(x, lrs=lrs).advice
    # without lrs: the remedy, no number
    verdict_is("lr_too_high")
    assert "train again from scratch" in diagnose(HAND["lr_too_high"]).advice
    verdict_is("healthy")
    assert "fine" in diagnose(HAND["healthy"]).advice


def test_bad_input_raises():
    with pytest.raises(ValueError, match="at least 2"):
        diagnose([1.0])
    with pytest.raises(ValueError, match="one-dimensional"):
        diagnose(np.ones((3, 3)))
    with pytest.raises(ValueError, match="increasing"):
        diagnose([1.0, 2.0, 3.0], steps=[0, 2, 1])
    with pytest.raises(ValueError, match="lrs has 2 entries"):
        diagnose([1.0, 2.0, 3.0], lrs=[0.1, 0.1])
    with pytest.raises(TypeError):
        diagnose(["a", "b"])


@pytest.mark.parametrize("verdict", list(HAND))
def test_long_curves_are_binned_and_keep_their_verdict(verdict):
    x = np.repeat(HAND[verdict], 256)  # 102,400 steps: bins of 256, each one point of the short curve
    d = diagnose(x)
    assert d.verdict == diagnose(HAND[verdict]).verdict
    assert d.evidence["bin_width"] == 256 and d.evidence["points"] <= _diagnose.MAX_BINS


def test_plot_terminal_and_matplotlib():
    d = diagnose(HAND["lr_too_high_late"])
    text = d.plot(terminal=True)
    assert "lr_too_high_late: steps" in text and "│" in text
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    fig = d.plot()
    ax = fig.axes[0]
    assert any(p.get_label() == "lr_too_high_late" for p in ax.patches)  # the span is shaded
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_import_fastlr_imports_no_heavy_module():
    code = ("import sys, fastlr; fastlr.diagnose([2.3, 2.0, 1.9]); fastlr.LossMonitor();"
            "import fastlr.callbacks;"
            "print(sorted(m for m in ('torch', 'sklearn', 'matplotlib', 'transformers', 'lightning', 'scipy')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------------------------------
# LossMonitor.


def _feed(m: LossMonitor, x: np.ndarray, steps: np.ndarray | None = None) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for i, v in enumerate(x):
            m.update(v, None if steps is None else steps[i])
    return [x for x in w if issubclass(x.category, LossMonitorWarning)]


def test_monitor_warns_once_per_new_verdict():
    m = LossMonitor()
    x = np.concatenate([np.repeat(HAND["lr_too_high"], 5), [math.nan] * 500])
    w = _feed(m, x)
    assert [str(e.message).split(":")[1].split()[0] for e in w] == ["lr_too_high", "diverged"]
    assert m.warned == ["lr_too_high", "diverged"]
    assert m.verdict == "diverged" and len(m) == len(x)
    assert w[0].filename == __file__  # the warning points at the caller's update()
    # a healthy run: no warning at all, and the verdict is there at the end
    m = LossMonitor()
    assert _feed(m, np.repeat(HAND["healthy"], 3)) == []
    assert m.verdict == "healthy"
    # warn=False: the verdicts, no warnings
    m = LossMonitor(warn=False)
    assert _feed(m, np.repeat(HAND["lr_too_low"], 3)) == [] and m.verdict == "lr_too_low"
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m.finish()
    assert w == []


@pytest.mark.parametrize("verdict", ["lr_too_low", "lr_too_high_late"])
def test_monitor_warns_whole_run_verdicts_at_finish(verdict):
    """lr_too_low and lr_too_high_late are about the whole run: no warning mid-run, whatever the checks
    say, one at finish() (pointing at the caller), and none again at a second finish()."""
    m = LossMonitor()
    mid = _feed(m, np.repeat(HAND[verdict], 3))
    # (the prefix of the slow, noisy fall can look like swinging: an early lr_too_high warning is allowed)
    assert not any(x in str(e.message) for e in mid for x in ("lr_too_low", "lr_too_high_late"))
    assert m.verdict == verdict and verdict not in m.warned
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        d = m.finish()
        m.finish()
    assert d.verdict == verdict
    assert [str(e.message).split(":")[1].split()[0] for e in w] == [verdict]
    assert w[0].filename == __file__
    assert m.warned[-1] == verdict and m.warned.count(verdict) == 1


def test_monitor_warns_lr_too_high_after_two_checks(monkeypatch):
    """A single scheduled check that says lr_too_high does not warn; two in a row do."""
    seq = iter(["lr_too_high", "healthy", "lr_too_high", "lr_too_high"] + ["healthy"] * 100)
    monkeypatch.setattr(_diagnose, "classify", lambda ev: next(seq))
    m = LossMonitor(min_points=10, growth=2.0)
    counts = []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for i in range(200):
            m.update(1.0 + 0.01 * math.sin(i))
            if w and not counts:
                counts.append(len(m))
    assert m.warned == ["lr_too_high"]
    assert counts == [80]  # checks at 10, 20, 40, 80: the second of two in a row


def test_monitor_before_min_points():
    m = LossMonitor(min_points=50)
    _feed(m, HAND["healthy"][:49])
    assert m.verdict is None and m.diagnosis is None
    m.update(math.inf)
    assert m.verdict == "diverged"


@pytest.mark.parametrize("view", _corpus.VIEWS)
def test_monitor_agrees_with_diagnose_at_the_end(view):
    curves = [c for c in _corpus.load(str(CORPUS), [view]) if c.meta["seed"] == 1][::3]
    assert len(curves) > 20
    for c in curves:
        m = LossMonitor(warn=False, min_points=2)
        for s, v in zip(c.steps, c.losses):
            m.update(v, step=s)
        assert m.verdict == diagnose(c.losses, steps=c.steps).verdict, c.meta


def test_monitor_update_is_cheap(monkeypatch):
    """The structure behind the 2 µs budget (benchmarks/test_bench_diagnose.py times it): over 10^5
    updates the monitor diagnoses O(log n) times and folds its buffer every FLUSH updates."""
    calls = collections.Counter()
    real_diag, real_fold = _diagnose._diagnose_binned, LossMonitor._fold
    monkeypatch.setattr(_diagnose, "_diagnose_binned", lambda *a: calls.update(["diagnose"]) or real_diag(*a))
    monkeypatch.setattr(LossMonitor, "_fold", lambda self: calls.update(["fold"]) or real_fold(self))
    m = LossMonitor(warn=False)
    for v in np.repeat(HAND["lr_too_high_late"], 250):
        m.update(v)
    assert calls["diagnose"] <= math.log(100_000 / 50) / math.log(m.growth) + 2
    assert calls["fold"] <= 100_000 / LossMonitor.FLUSH + 2 * calls["diagnose"] + 2  # update + _arrays
    assert len(m._buf) < LossMonitor.FLUSH and len(m._sums) <= _diagnose.MAX_BINS


def test_monitor_bins_are_diagnose_bins():
    x = _noisy(np.repeat(HAND["lr_too_high_late"], 33), 0.3)  # 13,200 points: the bins merge 5 times
    m = LossMonitor(warn=False)
    for i, v in enumerate(x):
        m.update(v, lr=0.1)
    steps, losses, lrs = m._arrays()
    ref_steps, ref_losses = _diagnose._bin(np.arange(len(x), dtype=float), x)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12)
    np.testing.assert_allclose(steps, ref_steps, rtol=1e-12)
    np.testing.assert_allclose(lrs, 0.1, rtol=1e-12)
    assert m.verdict == diagnose(x).verdict
    assert "0.1" in m.diagnosis.advice  # the lrs it was given


# --------------------------------------------------------------------------------------------------
# The command line.


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    from fastlr.__main__ import main

    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_tensorboard_and_wandb_csv(tmp_path, capsys, verdict_is):
    verdict_is("lr_too_high_late")
    x = HAND["lr_too_high_late"]
    tb = tmp_path / "tb.csv"
    with open(tb, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Wall time", "Step", "Value"])
        for i, v in enumerate(x):
            w.writerow([1700000000 + i, i * 10, v])
    rc, out, _ = _cli(["diagnose", str(tb)], capsys)
    assert rc == 0
    assert "verdict: lr_too_high_late" in out and "advice:" in out and "step 3990" in out
    wb = tmp_path / "wandb.csv"
    with open(wb, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Step", "run-1 - train/loss", "run-1 - train/loss__MIN", "run-1 - train/learning_rate"])
        for i, v in enumerate(HAND["lr_too_low"]):
            w.writerow([i, v if i % 7 else "", v, 0.001])
    verdict_is("lr_too_low")
    rc, out, _ = _cli(["diagnose", "--ascii", str(wb)], capsys)
    assert rc == 0 and "verdict: lr_too_low" in out
    assert "raise the peak lr from 0.001 to about 0.01" in out and "│" not in out


def test_cli_json(tmp_path, capsys, verdict_is):
    verdict_is("lr_too_high")
    p = tmp_path / "losses.json"
    p.write_text(json.dumps([float(v) for v in HAND["lr_too_high"]]))
    rc, out, _ = _cli(["diagnose", str(p)], capsys)
    assert rc == 0 and "verdict: lr_too_high\n" in out
    p.write_text(json.dumps([2.3, 2.1, None, None]))
    rc, out, _ = _cli(["diagnose", str(p)], capsys)
    assert rc == 0 and "verdict: diverged" in out
    verdict_is("healthy")
    p.write_text(json.dumps([{"step": i * 5, "loss": float(v)} for i, v in enumerate(HAND["healthy"])]))
    rc, out, _ = _cli(["diagnose", str(p)], capsys)
    assert rc == 0 and "verdict: healthy" in out and "step 1995" in out


def test_cli_errors(tmp_path, capsys):
    p = tmp_path / "x.csv"
    p.write_text("step,accuracy\n0,0.1\n1,0.2\n")
    rc, _, err = _cli(["diagnose", str(p)], capsys)
    assert rc == 2 and "no loss column" in err
    rc, _, err = _cli(["diagnose", str(tmp_path / "missing.csv")], capsys)
    assert rc == 2 and "error" in err


def test_cli_as_a_module(tmp_path):
    p = tmp_path / "l.json"
    p.write_text(json.dumps([float(v) for v in HAND["lr_too_low"]]))
    r = subprocess.run([sys.executable, "-m", "fastlr", "diagnose", str(p)], capture_output=True, text=True)
    assert r.returncode == 0 and "verdict: lr_too_low" in r.stdout


# --------------------------------------------------------------------------------------------------
# Callbacks.


def test_callbacks_module_without_the_frameworks():
    import fastlr.callbacks as cb

    with pytest.raises(AttributeError):
        cb.NoSuchCallback  # noqa: B018


def test_transformers_callback_through_the_trainers_callback_handler():
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from fastlr.callbacks import LossMonitorCallback
    from transformers.trainer_callback import (
        CallbackHandler,
        TrainerControl,
        TrainerState,
    )

    cb = LossMonitorCallback(min_points=20)
    assert isinstance(cb, transformers.TrainerCallback)
    model = torch.nn.Linear(2, 1)
    handler = CallbackHandler([cb], model, None, None, None)
    state, control = TrainerState(), TrainerControl()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for i, v in enumerate(HAND["lr_too_high"]):
            state.global_step = (i + 1) * 10
            handler.on_log(None, state, control, {"loss": float(v), "learning_rate": 0.3, "epoch": i / 40})
        handler.on_log(None, state, control, {"eval_loss": 1.0})  # not a training log: ignored
    assert len(cb.monitor) == N
    assert cb.monitor.verdict == "lr_too_high"
    assert "from 0.3 to about 0.03" in cb.monitor.diagnosis.advice
    assert sum(issubclass(x.category, LossMonitorWarning) for x in w) == 1


def test_transformers_callback_in_a_real_trainer(tmp_path):
    pytest.importorskip("accelerate")  # transformers' Trainer needs it
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from fastlr.callbacks import LossMonitorCallback

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 1)

        def forward(self, x, labels=None):
            out = self.lin(x).squeeze(-1)
            return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}

    g = torch.Generator().manual_seed(0)
    xs = torch.randn(64, 4, generator=g)
    data = [{"x": xs[i], "labels": xs[i].sum()} for i in range(64)]
    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=60, per_device_train_batch_size=8,
                                          logging_steps=1, learning_rate=1e-3, report_to=[], use_cpu=True,
                                          save_strategy="no", lr_scheduler_type="constant")
    cb = LossMonitorCallback(min_points=10, warn=False)
    transformers.Trainer(model=Model(), args=args, train_dataset=data, callbacks=[cb]).train()
    assert len(cb.monitor) == 60
    assert cb.monitor.verdict in _diagnose.VERDICTS


def test_lightning_callback_in_a_real_trainer():
    torch = pytest.importorskip("torch")
    if os.environ.get("FASTLR_REQUIRE_LIGHTNING") == "1":
        import lightning.pytorch as L
    else:
        L = pytest.importorskip("lightning.pytorch")
    from fastlr.callbacks import LightningLossMonitor

    class Tiny(L.LightningModule):
        def __init__(self, lr: float) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Linear(8, 1)
            self.lr = lr

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.lr)

    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)

    def fit(lr: float) -> LightningLossMonitor:
        cb = LightningLossMonitor(min_points=10)
        trainer = L.Trainer(max_epochs=3, callbacks=[cb], logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(Tiny(lr), loader)
        return cb

    cb = fit(10.0)  # SGD at lr 10 on this regression blows up
    assert cb.monitor.verdict == "diverged"
    assert "diverged" in cb.monitor.warned
    assert "from 10 to about 1" in cb.monitor.diagnosis.advice  # the optimizer's lr, read by the callback
    cb = fit(0.01)
    assert len(cb.monitor) == 96  # every training batch
    assert cb.monitor.verdict in _diagnose.VERDICTS and "diverged" not in cb.monitor.warned
