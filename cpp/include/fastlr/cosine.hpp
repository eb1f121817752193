// Exact stepper for torch's CosineAnnealingLR (recursive form and closed form).
#pragma once

#include "decay.hpp"

namespace fastlr {

/// torch.optim.lr_scheduler.CosineAnnealingLR(T_max, eta_min)
struct cosine_annealing_lr_params {
    pynum T_max;
    pynum eta_min;
};

/// (1 + math.cos(math.pi * le / T_max)), the closed form's cosine term.
inline errc cosine_annealing_term(const cosine_annealing_lr_params& p, pynum le, double& out) {
    pynum x;
    double arg, c;
    FASTLR_TRY(py_mul(pynum::of_float(py_pi), le, x));
    FASTLR_TRY(py_truediv(x, p.T_max, arg));
    FASTLR_TRY(py_cos(arg, c));
    out = 1.0 + c;
    return errc::ok;
}

/// CosineAnnealingLR.get_lr, torch's four branches in order:
///   initial:                          lr
///   _step_count == 1 and le > 0:      eta_min + (base - eta_min) * (1 + cos(le * pi / T_max)) / 2
///   (le - 1 - T_max) % (2 T_max) == 0: lr + (base - eta_min) * (1 - cos(pi / T_max)) / 2
///   otherwise:                        (1 + cos(pi le / T_max)) / (1 + cos(pi (le - 1) / T_max))
///                                       * (lr - eta_min) + eta_min
inline errc cosine_annealing_lr_chainable(const cosine_annealing_lr_params& p, const step_state& s, update& u) {
    if (s.is_initial) { u = update::keep(); return errc::ok; }
    const double eta = p.eta_min.d;
    if (s.step_count == 1 && s.last_epoch > 0) {
        // torch writes (le * pi) / T_max here; le * pi == pi * le exactly, so the term is shared.
        double term = 0.0;
        FASTLR_TRY(cosine_annealing_term(p, s.le(), term));
        u = update{update::op::cos_closed, term, eta, true};
        return errc::ok;
    }
    pynum t1, t2, two_t, r;
    FASTLR_TRY(py_sub(s.le(), pynum::of_int(1), t1));
    FASTLR_TRY(py_sub(t1, p.T_max, t2));
    FASTLR_TRY(py_mul(pynum::of_int(2), p.T_max, two_t));
    FASTLR_TRY(py_mod(t2, two_t, r));
    if (r.d == 0.0) {
        double arg, c;
        FASTLR_TRY(py_truediv(pynum::of_float(py_pi), p.T_max, arg));
        FASTLR_TRY(py_cos(arg, c));
        u = update{update::op::cos_add, 1.0 - c, eta, false};
        return errc::ok;
    }
    double num, den, ratio;
    FASTLR_TRY(cosine_annealing_term(p, s.le(), num));
    FASTLR_TRY(cosine_annealing_term(p, t1, den));
    FASTLR_TRY(py_truediv(pynum::of_float(num), pynum::of_float(den), ratio));
    u = update{update::op::cos_ratio, ratio, eta, false};
    return errc::ok;
}

/// CosineAnnealingLR._get_closed_form_lr: eta_min + (base - eta_min) * (1 + cos(pi * le / T_max)) / 2.
inline errc cosine_annealing_lr_closed(const cosine_annealing_lr_params& p, const step_state& s, update& u) {
    double term = 0.0;
    FASTLR_TRY(cosine_annealing_term(p, s.le(), term));
    u = update{update::op::cos_closed, term, p.eta_min.d, true};
    return errc::ok;
}

// ----------------------------------------------------------------------------------------------
/// torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(T_0, T_mult, eta_min): SGDR.
struct cosine_warm_restarts_params {
    pynum T_0;
    pynum T_mult;
    pynum eta_min;
};

/// The counters CosineAnnealingWarmRestarts.step() advances (Python ints, T_cur a float after
/// fractional or explicit epochs with T_mult > 1).
struct cosine_warm_restarts_state {
    pynum T_cur;
    pynum T_i;
    std::int64_t last_epoch = 0;
};

/// CosineAnnealingWarmRestarts.step(epoch): the counter logic, with at most one wrap per plain step
/// and `int(math.log(x, T_mult))` for explicit epochs (CPython's log(x)/log(b), truncation and all,
/// which misplaces some exact restart points just as torch does). `epoch_given` false is step().
inline errc cosine_warm_restarts_advance(const cosine_warm_restarts_params& p, cosine_warm_restarts_state& s,
                                         bool epoch_given, pynum epoch) {
    if (!epoch_given && s.last_epoch < 0) {
        epoch_given = true;
        epoch = pynum::of_int(0);
    }
    if (!epoch_given) {
        FASTLR_TRY(py_add(pynum::of_int(s.last_epoch), pynum::of_int(1), epoch));
        FASTLR_TRY(py_add(s.T_cur, pynum::of_int(1), s.T_cur));
        int c;
        FASTLR_TRY(py_cmp(s.T_cur, s.T_i, c));
        if (c == 0 || c == 1) {
            FASTLR_TRY(py_mod(s.T_cur, s.T_i, s.T_cur));
            FASTLR_TRY(py_mul(s.T_i, p.T_mult, s.T_i));
        }
    } else {
        int c;
        FASTLR_TRY(py_cmp(epoch, pynum::of_int(0), c));
        if (c == -1) return errc::domain;  // ValueError("Expected non-negative epoch, ...")
        FASTLR_TRY(py_cmp(epoch, p.T_0, c));
        if (c == 0 || c == 1) {
            int m1;
            FASTLR_TRY(py_cmp(p.T_mult, pynum::of_int(1), m1));
            if (m1 == 0) {
                FASTLR_TRY(py_mod(epoch, p.T_0, s.T_cur));
            } else {
                // n = int(math.log((epoch / T_0 * (T_mult - 1) + 1), T_mult))
                double q, lg;
                pynum tm1, prod, arg;
                FASTLR_TRY(py_truediv(epoch, p.T_0, q));
                FASTLR_TRY(py_sub(p.T_mult, pynum::of_int(1), tm1));
                FASTLR_TRY(py_mul(pynum::of_float(q), tm1, prod));
                FASTLR_TRY(py_add(prod, pynum::of_int(1), arg));
                FASTLR_TRY(py_log(arg, p.T_mult, lg));
                std::int64_t n;
                FASTLR_TRY(py_int_of_float(lg, n));
                // T_cur = epoch - T_0 * (T_mult ** n - 1) / (T_mult - 1);  T_i = T_0 * T_mult ** n
                pynum pw, pw1, num, t_i;
                double frac = 0.0;
                FASTLR_TRY(py_pow_num(p.T_mult, pynum::of_int(n), pw));
                FASTLR_TRY(py_sub(pw, pynum::of_int(1), pw1));
                FASTLR_TRY(py_mul(p.T_0, pw1, num));
                FASTLR_TRY(py_truediv(num, tm1, frac));
                FASTLR_TRY(py_sub(epoch, pynum::of_float(frac), s.T_cur));
                FASTLR_TRY(py_mul(p.T_0, pw, t_i));
                s.T_i = t_i;
            }
        } else {
            s.T_i = p.T_0;
            s.T_cur = epoch;
        }
    }
    return py_floor(epoch, s.last_epoch);
}

/// CosineAnnealingWarmRestarts.get_lr: eta_min + (base - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2.
inline errc cosine_warm_restarts_lr(const cosine_warm_restarts_params& p, const cosine_warm_restarts_state& s,
                                    update& u) {
    pynum x;
    double arg, c;
    FASTLR_TRY(py_mul(pynum::of_float(py_pi), s.T_cur, x));
    FASTLR_TRY(py_truediv(x, s.T_i, arg));
    FASTLR_TRY(py_cos(arg, c));
    u = update{update::op::cos_closed, 1.0 + c, p.eta_min.d, true};
    return errc::ok;
}

}  // namespace fastlr
