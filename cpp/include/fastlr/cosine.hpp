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
        double term;
        FASTLR_TRY(cosine_annealing_term(p, s.le(), term));
        u = update{update::op::cos_closed, term, eta};
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
        u = update{update::op::cos_add, 1.0 - c, eta};
        return errc::ok;
    }
    double num, den, ratio;
    FASTLR_TRY(cosine_annealing_term(p, s.le(), num));
    FASTLR_TRY(cosine_annealing_term(p, t1, den));
    FASTLR_TRY(py_truediv(pynum::of_float(num), pynum::of_float(den), ratio));
    u = update{update::op::cos_ratio, ratio, eta};
    return errc::ok;
}

/// CosineAnnealingLR._get_closed_form_lr: eta_min + (base - eta_min) * (1 + cos(pi * le / T_max)) / 2.
inline errc cosine_annealing_lr_closed(const cosine_annealing_lr_params& p, const step_state& s, update& u) {
    double term;
    FASTLR_TRY(cosine_annealing_term(p, s.le(), term));
    u = update{update::op::cos_closed, term, p.eta_min.d};
    return errc::ok;
}

}  // namespace fastlr
