// Exact stepper for torch.optim.swa_utils.SWALR, and the ReduceLROnPlateau state machine.
#pragma once

#include <cmath>

#include "decay.hpp"

namespace fastlr {

/// torch.optim.swa_utils.SWALR(swa_lr, anneal_epochs, anneal_strategy)
struct swalr_params {
    pynum anneal_epochs;
    bool cosine = true;  ///< anneal_func is SWALR._cosine_anneal (else _linear_anneal)
};

namespace detail {
/// max(0, min(1, v)) by value (Python may return the int 0 or 1; the value is what matters here).
/// NaN: min(1, nan) keeps 1, like the comparisons below.
inline double clamp01(double v) { return v < 1.0 ? (v > 0.0 ? v : 0.0) : 1.0; }

inline errc swalr_alpha(const swalr_params& p, pynum t, double& alpha) {
    // max(1, anneal_epochs): Python's max keeps the first argument unless a later one compares
    // greater, so a NaN anneal_epochs (possible after load_state_dict) gives 1.
    pynum denom = p.anneal_epochs;
    int c;
    FASTLR_TRY(py_cmp(denom, pynum::of_int(1), c));
    if (c != 1) denom = pynum::of_int(1);
    double q = 0.0;
    FASTLR_TRY(py_truediv(t, denom, q));
    const double tt = clamp01(q);  // max(0, min(1, q)): a NaN q would give 1, as in Python
    if (p.cosine) {
        double cs = 0.0;
        FASTLR_TRY(py_cos(py_pi * tt, cs));
        alpha = (1.0 - cs) / 2.0;
    } else {
        alpha = tt;
    }
    return errc::ok;
}
}  // namespace detail

/// SWALR.get_lr's scalars: alpha (a) and the previous step's alpha (b), from `_step_count` (already
/// incremented). Per group, lr = swa_lr * alpha + prev_lr * (1 - alpha) where prev_lr inverts the
/// previous interpolation from the current lr (update op swa).
inline errc swalr_scalars(const swalr_params& p, std::int64_t step_count, update& u) {
    std::int64_t step = step_count - 1;
    if (p.anneal_epochs.is_int ? p.anneal_epochs.i == 0 : p.anneal_epochs.d == 0.0) step = step < 1 ? 1 : step;
    double prev_alpha, alpha;
    FASTLR_TRY(detail::swalr_alpha(p, pynum::of_int(step - 1), prev_alpha));
    FASTLR_TRY(detail::swalr_alpha(p, pynum::of_int(step), alpha));
    u = update{update::op::swa, alpha, prev_alpha, false};
    return errc::ok;
}

// ----------------------------------------------------------------------------------------------
/// torch.optim.lr_scheduler.ReduceLROnPlateau's state machine (everything but the lr writes).
struct plateau_params {
    /// Which branch of `_is_better` applies, in torch's if/elif order on (mode, threshold_mode):
    /// min_rel, min_abs, max_rel, or max_abs for anything else.
    enum class rule : std::uint8_t { min_rel, min_abs, max_rel, max_abs };
    rule is_better = rule::min_rel;
    pynum threshold;
    pynum patience;
    pynum cooldown;
};

struct plateau_state {
    std::int64_t last_epoch = 0;
    pynum best;
    pynum num_bad_epochs;
    pynum cooldown_counter;
};

/// ReduceLROnPlateau._is_better(a, best): min/rel a < best * (1.0 - threshold), min/abs
/// a < best - threshold, max/rel a > best * (threshold + 1.0), max/abs a > best + threshold.
inline errc plateau_is_better(const plateau_params& p, double a, pynum best, bool& out) {
    pynum eps, bound;
    int c;
    switch (p.is_better) {
        case plateau_params::rule::min_rel:
            FASTLR_TRY(py_sub(pynum::of_float(1.0), p.threshold, eps));
            FASTLR_TRY(py_mul(best, eps, bound));
            break;
        case plateau_params::rule::min_abs:
            FASTLR_TRY(py_sub(best, p.threshold, bound));
            break;
        case plateau_params::rule::max_rel:
            FASTLR_TRY(py_add(p.threshold, pynum::of_float(1.0), eps));
            FASTLR_TRY(py_mul(best, eps, bound));
            break;
        case plateau_params::rule::max_abs:
            FASTLR_TRY(py_add(best, p.threshold, bound));
            break;
    }
    FASTLR_TRY(py_cmp(pynum::of_float(a), bound, c));
    const bool minimizing = p.is_better == plateau_params::rule::min_rel || p.is_better == plateau_params::rule::min_abs;
    out = minimizing ? c == -1 : c == 1;
    return errc::ok;
}

/// ReduceLROnPlateau.step(metrics) without the lr writes: advances the epoch and the counters, says
/// whether the metric improved (torch then stores it as `best`) and whether the lrs are reduced at this
/// step (torch then sets cooldown_counter = cooldown and num_bad_epochs = 0, which this does too).
inline errc plateau_observe(const plateau_params& p, plateau_state& s, double current, bool& better, bool& reduce) {
    if (__builtin_add_overflow(s.last_epoch, std::int64_t{1}, &s.last_epoch)) return errc::out_of_range;
    FASTLR_TRY(plateau_is_better(p, current, s.best, better));
    if (better) {
        s.best = pynum::of_float(current);
        s.num_bad_epochs = pynum::of_int(0);
    } else {
        FASTLR_TRY(py_add(s.num_bad_epochs, pynum::of_int(1), s.num_bad_epochs));
    }
    int c;
    FASTLR_TRY(py_cmp(s.cooldown_counter, pynum::of_int(0), c));
    if (c == 1) {  // in_cooldown: bad epochs are ignored
        FASTLR_TRY(py_sub(s.cooldown_counter, pynum::of_int(1), s.cooldown_counter));
        s.num_bad_epochs = pynum::of_int(0);
    }
    FASTLR_TRY(py_cmp(s.num_bad_epochs, p.patience, c));
    reduce = c == 1;
    if (reduce) {
        s.cooldown_counter = p.cooldown;
        s.num_bad_epochs = pynum::of_int(0);
    }
    return errc::ok;
}

/// ReduceLROnPlateau._reduce_lr for one group: new_lr = max(old_lr * factor, min_lr), written only if
/// old_lr - new_lr > eps. `takes_min` says that Python's max() returned min_lr itself (the object is
/// stored as is, possibly an int).
inline errc plateau_reduce(double old_lr, pynum factor, pynum min_lr, pynum eps, bool& write, double& new_lr,
                           bool& takes_min) {
    pynum scaled, diff;
    FASTLR_TRY(py_mul(pynum::of_float(old_lr), factor, scaled));
    int c;
    FASTLR_TRY(py_cmp(min_lr, scaled, c));
    takes_min = c == 1;  // max(a, b) returns b only when b > a
    const pynum nv = takes_min ? min_lr : scaled;
    FASTLR_TRY(py_sub(pynum::of_float(old_lr), nv, diff));
    FASTLR_TRY(py_cmp(diff, eps, c));
    write = c == 1;
    new_lr = nv.d;
    return errc::ok;
}

}  // namespace fastlr
