// Exact steppers for torch's multiplicative decays: StepLR, MultiStepLR, ConstantLR, LinearLR,
// ExponentialLR and PolynomialLR.
//
// Each class has two functions, mirroring torch:
//   *_chainable: `get_lr()`, which reads the groups' current lrs (so it composes with other schedulers
//                and manual edits, and accumulates rounding exactly as torch does);
//   *_closed:    `_get_closed_form_lr()`, used by `step(epoch)` and SequentialLR milestones.
// Both return the step as an `update` whose coefficients are computed with CPython semantics from
// the attributes as Python holds them (int or float), in torch's operation order.
#pragma once

#include "pymath.hpp"
#include "update.hpp"

namespace fastlr {

/// What every get_lr() may look at besides the class's own attributes.
struct step_state {
    std::int64_t last_epoch = 0;  ///< already advanced for this step, as in torch's _update_lr
    bool is_initial = false;      ///< inside LRScheduler._initial_step
    std::int64_t step_count = 0;  ///< `_step_count` (already incremented by step())
    pynum le() const { return pynum::of_int(last_epoch); }
};


// ----------------------------------------------------------------------------------------------
/// torch.optim.lr_scheduler.StepLR(step_size, gamma)
struct step_lr_params {
    pynum step_size;
    pynum gamma;
};

/// StepLR.get_lr: lr unless `le == 0 or le % step_size != 0`, else lr * gamma.
inline errc step_lr_chainable(const step_lr_params& p, const step_state& s, update& u) {
    if (s.last_epoch == 0) { u = update::keep(); return errc::ok; }
    pynum r;
    FASTLR_TRY(py_mod(s.le(), p.step_size, r));
    u = r.d != 0.0 ? update::keep() : update::scale(p.gamma.d);
    return errc::ok;
}

/// StepLR._get_closed_form_lr: base_lr * gamma ** (le // step_size).
inline errc step_lr_closed(const step_lr_params& p, const step_state& s, update& u) {
    pynum q;
    FASTLR_TRY(py_floordiv(s.le(), p.step_size, q));
    double f = 0.0;
    FASTLR_TRY(py_pow(p.gamma, q, f));
    u = update::base_scale(f);
    return errc::ok;
}

// ----------------------------------------------------------------------------------------------
/// torch.optim.lr_scheduler.MultiStepLR(milestones, gamma). The milestones Counter lives in Python;
/// the caller passes what get_lr reads from it.
struct multistep_lr_params {
    pynum gamma;
};

/// MultiStepLR.get_lr: lr unless `le in milestones`, else lr * gamma ** milestones[le].
inline errc multistep_lr_chainable(const multistep_lr_params& p, bool is_milestone, pynum count, update& u) {
    if (!is_milestone) { u = update::keep(); return errc::ok; }
    double f = 0.0;
    FASTLR_TRY(py_pow(p.gamma, count, f));
    u = update::scale(f);
    return errc::ok;
}

/// MultiStepLR._get_closed_form_lr: base_lr * gamma ** bisect_right(sorted(milestones.elements()), le);
/// `passed` is that bisect count.
inline errc multistep_lr_closed(const multistep_lr_params& p, std::int64_t passed, update& u) {
    double f = 0.0;
    FASTLR_TRY(py_pow(p.gamma, pynum::of_int(passed), f));
    u = update::base_scale(f);
    return errc::ok;
}

// ----------------------------------------------------------------------------------------------
/// torch.optim.lr_scheduler.ConstantLR(factor, total_iters)
struct constant_lr_params {
    pynum factor;
    pynum total_iters;
};

/// ConstantLR.get_lr: lr * factor at le 0; lr * (1.0 / factor) at le == total_iters; else lr.
inline errc constant_lr_chainable(const constant_lr_params& p, const step_state& s, update& u) {
    if (s.last_epoch == 0) { u = update::scale(p.factor.d); return errc::ok; }
    int c;
    FASTLR_TRY(py_cmp(s.le(), p.total_iters, c));
    if (c != 0) { u = update::keep(); return errc::ok; }
    double inv = 0.0;
    FASTLR_TRY(py_truediv(pynum::of_float(1.0), p.factor, inv));
    u = update::scale(inv);
    return errc::ok;
}

/// ConstantLR._get_closed_form_lr: base_lr * (factor + (le >= total_iters) * (1 - factor)).
inline errc constant_lr_closed(const constant_lr_params& p, const step_state& s, update& u) {
    int c;
    FASTLR_TRY(py_cmp(s.le(), p.total_iters, c));
    const pynum reached = pynum::of_int(c == 0 || c == 1 ? 1 : 0);
    pynum one_minus, term, f;
    FASTLR_TRY(py_sub(pynum::of_int(1), p.factor, one_minus));
    FASTLR_TRY(py_mul(reached, one_minus, term));
    FASTLR_TRY(py_add(p.factor, term, f));
    u = update::base_scale(f.d);
    return errc::ok;
}

// ----------------------------------------------------------------------------------------------
/// torch.optim.lr_scheduler.LinearLR(start_factor, end_factor, total_iters)
struct linear_lr_params {
    pynum start_factor;
    pynum end_factor;
    pynum total_iters;
};

/// LinearLR.get_lr: lr * start at le 0; lr while initial or le > total_iters; else
/// lr * (1.0 + (end - start) / (total_iters * start + (le - 1) * (end - start))).
inline errc linear_lr_chainable(const linear_lr_params& p, const step_state& s, update& u) {
    if (s.last_epoch == 0) { u = update::scale(p.start_factor.d); return errc::ok; }
    if (s.is_initial) { u = update::keep(); return errc::ok; }
    int c;
    FASTLR_TRY(py_cmp(s.le(), p.total_iters, c));
    if (c == 1) { u = update::keep(); return errc::ok; }
    pynum span, t_start, le_m1, t_span, den;
    FASTLR_TRY(py_sub(p.end_factor, p.start_factor, span));
    FASTLR_TRY(py_mul(p.total_iters, p.start_factor, t_start));
    FASTLR_TRY(py_sub(s.le(), pynum::of_int(1), le_m1));
    FASTLR_TRY(py_mul(le_m1, span, t_span));
    FASTLR_TRY(py_add(t_start, t_span, den));
    double q = 0.0;
    FASTLR_TRY(py_truediv(span, den, q));
    u = update::scale(1.0 + q);
    return errc::ok;
}

/// LinearLR._get_closed_form_lr:
/// base_lr * (start + (end - start) * min(total_iters, le) / total_iters).
inline errc linear_lr_closed(const linear_lr_params& p, const step_state& s, update& u) {
    int c;
    FASTLR_TRY(py_cmp(s.le(), p.total_iters, c));
    const pynum m = c == -1 ? s.le() : p.total_iters;  // min(T, le) returns T unless le < T
    pynum span, num, f;
    FASTLR_TRY(py_sub(p.end_factor, p.start_factor, span));
    FASTLR_TRY(py_mul(span, m, num));
    double q = 0.0;
    FASTLR_TRY(py_truediv(num, p.total_iters, q));
    FASTLR_TRY(py_add(p.start_factor, pynum::of_float(q), f));
    u = update::base_scale(f.d);
    return errc::ok;
}

// ----------------------------------------------------------------------------------------------
/// torch.optim.lr_scheduler.ExponentialLR(gamma)
struct exponential_lr_params {
    pynum gamma;
};

/// ExponentialLR.get_lr: lr while initial, else lr * gamma.
inline errc exponential_lr_chainable(const exponential_lr_params& p, const step_state& s, update& u) {
    u = s.is_initial ? update::keep() : update::scale(p.gamma.d);
    return errc::ok;
}

/// ExponentialLR._get_closed_form_lr: base_lr * gamma ** le.
inline errc exponential_lr_closed(const exponential_lr_params& p, const step_state& s, update& u) {
    double f = 0.0;
    FASTLR_TRY(py_pow(p.gamma, s.le(), f));
    u = update::base_scale(f);
    return errc::ok;
}

// ----------------------------------------------------------------------------------------------
/// torch.optim.lr_scheduler.PolynomialLR(total_iters, power)
struct polynomial_lr_params {
    pynum total_iters;
    pynum power;
};

/// PolynomialLR.get_lr: lr while initial or le > total_iters, else
/// lr * ((1.0 - le / total_iters) / (1.0 - (le - 1) / total_iters)) ** power.
inline errc polynomial_lr_chainable(const polynomial_lr_params& p, const step_state& s, update& u) {
    if (s.is_initial) { u = update::keep(); return errc::ok; }
    int c;
    FASTLR_TRY(py_cmp(s.le(), p.total_iters, c));
    if (c == 1) { u = update::keep(); return errc::ok; }
    double x, y, ratio, f;
    pynum le_m1;
    FASTLR_TRY(py_truediv(s.le(), p.total_iters, x));
    FASTLR_TRY(py_sub(s.le(), pynum::of_int(1), le_m1));
    FASTLR_TRY(py_truediv(le_m1, p.total_iters, y));
    FASTLR_TRY(py_truediv(pynum::of_float(1.0 - x), pynum::of_float(1.0 - y), ratio));
    FASTLR_TRY(py_pow(pynum::of_float(ratio), p.power, f));
    u = update::scale(f);
    return errc::ok;
}

/// PolynomialLR._get_closed_form_lr: base_lr * (1.0 - min(total_iters, le) / total_iters) ** power.
inline errc polynomial_lr_closed(const polynomial_lr_params& p, const step_state& s, update& u) {
    int c;
    FASTLR_TRY(py_cmp(s.le(), p.total_iters, c));
    const pynum m = c == -1 ? s.le() : p.total_iters;
    double q, f;
    FASTLR_TRY(py_truediv(m, p.total_iters, q));
    FASTLR_TRY(py_pow(pynum::of_float(1.0 - q), p.power, f));
    u = update::base_scale(f);
    return errc::ok;
}

}  // namespace fastlr
