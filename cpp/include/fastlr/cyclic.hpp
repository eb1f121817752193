// Exact steppers for torch's cyclical schedules: CyclicLR and OneCycleLR. Both are closed forms in
// `last_epoch`; they also move each group's momentum (or Adam's beta1) inversely to the lr.
#pragma once

#include "decay.hpp"

namespace fastlr {

/// torch.optim.lr_scheduler.CyclicLR's built-in scale functions.
enum class cyclic_scale : std::uint8_t {
    triangular,   ///< 1.0
    triangular2,  ///< 1 / (2.0 ** (x - 1))
    exp_range,    ///< gamma ** x
};

/// torch.optim.lr_scheduler.CyclicLR(base_lr, max_lr, step_size_up, step_size_down, mode, gamma, ...):
/// the per-step scalars. Per group, lr = base + (max - base) * scale_factor * scale and momentum =
/// max_m - (max_m - base_m) * scale_factor * scale (update ops cyclic_rise / cyclic_fall).
struct cyclic_lr_params {
    pynum total_size;
    pynum step_ratio;
    cyclic_scale fn = cyclic_scale::triangular;
    pynum gamma;          ///< exp_range's base (the partial's bound argument)
    bool by_cycle = true;  ///< scale_mode == "cycle": the scale function's argument is the cycle number
};

/// CyclicLR.get_lr's scalars at `le`: scale_factor (a) and the scale function's value (b).
inline errc cyclic_lr_scalars(const cyclic_lr_params& p, pynum le, double& scale_factor, double& scale) {
    // cycle = math.floor(1 + le / total_size); x = 1.0 + le / total_size - cycle
    double q = 0.0;
    FASTLR_TRY(py_truediv(le, p.total_size, q));
    pynum one_plus;
    FASTLR_TRY(py_add(pynum::of_int(1), pynum::of_float(q), one_plus));
    std::int64_t cycle;
    FASTLR_TRY(py_floor(one_plus, cycle));
    const double x = (1.0 + q) - static_cast<double>(cycle);
    int c;
    FASTLR_TRY(py_cmp(pynum::of_float(x), p.step_ratio, c));
    if (c == -1 || c == 0) {
        FASTLR_TRY(py_truediv(pynum::of_float(x), p.step_ratio, scale_factor));
    } else {
        pynum den;
        FASTLR_TRY(py_sub(p.step_ratio, pynum::of_int(1), den));
        FASTLR_TRY(py_truediv(pynum::of_float(x - 1.0), den, scale_factor));
    }
    const pynum arg = p.by_cycle ? pynum::of_int(cycle) : le;
    switch (p.fn) {
        case cyclic_scale::triangular:
            scale = 1.0;
            break;
        case cyclic_scale::triangular2: {
            pynum e;
            double pw = 0.0;
            FASTLR_TRY(py_sub(arg, pynum::of_int(1), e));
            FASTLR_TRY(py_pow(pynum::of_float(2.0), e, pw));  // OverflowError from cycle 1025 on, as torch
            FASTLR_TRY(py_truediv(pynum::of_int(1), pynum::of_float(pw), scale));
            break;
        }
        case cyclic_scale::exp_range:
            FASTLR_TRY(py_pow(p.gamma, arg, scale));
            break;
    }
    return errc::ok;
}

// ----------------------------------------------------------------------------------------------
/// torch.optim.lr_scheduler.OneCycleLR: one phase of `_schedule_phases` (its end step as Python holds
/// it: a float, or an int for the last phase).
struct onecycle_phase {
    pynum end_step;
};

/// OneCycleLR.get_lr's phase search at `step_num` (the same for all groups): the phase index and pct.
/// Returns errc::domain past total_steps (torch raises ValueError there).
inline errc onecycle_locate(const onecycle_phase* phases, std::size_t n_phases, pynum step_num, pynum total_steps,
                            std::size_t& index, double& pct) {
    int c;
    FASTLR_TRY(py_cmp(step_num, total_steps, c));
    if (c == 1) return errc::domain;
    if (n_phases == 0) return errc::domain;  // torch: UnboundLocalError
    pynum start_step = pynum::of_float(0.0);
    for (std::size_t i = 0; i < n_phases; ++i) {
        const pynum end_step = phases[i].end_step;
        FASTLR_TRY(py_cmp(step_num, end_step, c));
        if (c == -1 || c == 0 || i + 1 == n_phases) {
            pynum num, den;
            FASTLR_TRY(py_sub(step_num, start_step, num));
            FASTLR_TRY(py_sub(end_step, start_step, den));
            FASTLR_TRY(py_truediv(num, den, pct));
            index = i;
            return errc::ok;
        }
        start_step = end_step;
    }
    return errc::domain;
}

/// OneCycleLR's anneal for the located phase: `_annealing_cos` (cos_out = math.cos(math.pi * pct) + 1)
/// or `_annealing_linear`, as an update over x = start value, y = end value.
inline errc onecycle_anneal(bool cosine, double pct, update& u) {
    if (cosine) {
        double c = 0.0;
        FASTLR_TRY(py_cos(py_pi * pct, c));
        u = update{update::op::anneal_cos, c + 1.0, 0.0, false};
    } else {
        u = update{update::op::anneal_linear, pct, 0.0, false};
    }
    return errc::ok;
}

}  // namespace fastlr
