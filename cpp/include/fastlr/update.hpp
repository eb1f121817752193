// One scheduler step applied to all param groups at once (struct-of-arrays over groups).
//
// Every torch scheduler step, evaluated in Python order, reduces to one per-group expression of at
// most two per-group operands (x, y) and two scalars (a, b) that are the same for all groups. The
// class-specific code (decay.hpp, cosine.hpp, cyclic.hpp, swa.hpp) computes the scalars once per step
// with CPython semantics and says what x and y are; `eval` then evaluates the expression in exactly
// torch's operation order.
#pragma once

#include <cstddef>

#include "config.hpp"

namespace fastlr {

/// The per-group expression of one step. Operands: x, y per group; a, b per step.
struct update {
    enum class op : std::uint8_t {
        keep,             ///< x                                  (torch returns the current lrs; x = lr)
        scale,            ///< x * a                              (chainable decays: x = lr; closed forms: x = base)
        scale_each,       ///< x * y                              (lambdas: x = lr or base, y = the lambda's value)
        cos_add,          ///< x + (y - b) * a / 2                (CosineAnnealingLR at T_max+1: x = lr, y = base)
        cos_ratio,        ///< a * (x - b) + b                    (CosineAnnealingLR recursive form: x = lr)
        cos_closed,       ///< b + (x - b) * a / 2                (cosine closed forms: x = base)
        cyclic_rise,      ///< x + (y - x) * a * b                (CyclicLR lr: x = base_lr, y = max_lr)
        cyclic_fall,      ///< y - (y - x) * a * b                (CyclicLR momentum: x = base_m, y = max_m)
        anneal_cos,       ///< y + (x - y) / 2.0 * a              (OneCycleLR cos: x = start, y = end)
        anneal_linear,    ///< (y - x) * a + x                    (OneCycleLR linear: x = start, y = end)
        swa,              ///< y * a + prev(x) * (1 - a)          (SWALR: x = lr, y = swa_lr, b = previous alpha)
    };
    op kind = op::keep;
    double a = 0.0;
    double b = 0.0;
    /// For the decay and cosine families: x is the group's base lr (closed forms) instead of its
    /// current lr (chainable forms); y, where read, is the base lr.
    bool x_is_base = false;

    static constexpr update keep() { return update{op::keep, 0.0, 0.0, false}; }
    static constexpr update scale(double f) { return update{op::scale, f, 0.0, false}; }
    static constexpr update base_scale(double f) { return update{op::scale, f, 0.0, true}; }

    /// Whether the expression reads the y operand.
    FASTLR_HD constexpr bool needs_y() const {
        return kind == op::scale_each || kind == op::cos_add || kind == op::cyclic_rise ||
               kind == op::cyclic_fall || kind == op::anneal_cos || kind == op::anneal_linear || kind == op::swa;
    }
};

/// SWALR._get_initial_lr: the lr before the previous interpolation, `(lr - alpha * swa_lr) / (1 - alpha)`.
FASTLR_HD inline double swa_initial_lr(double lr, double swa_lr, double alpha) {
    if (alpha == 1.0) return swa_lr;
    return (lr - (alpha * swa_lr)) / (1.0 - alpha);
}

/// Evaluate `u` for one group. Each expression is written with explicit parentheses in CPython's
/// left-to-right evaluation order; the build disables FMA contraction so each operation rounds
/// separately, as CPython's do (and the CUDA build passes --fmad=false for the same reason: the
/// per-group arithmetic is plain IEEE +, -, *, /, so the device gives the same bits as the host).
/// Operands the op does not read are ignored.
FASTLR_HD inline double eval(const update& u, double x, double y) {
    const double a = u.a, b = u.b;
    switch (u.kind) {
        case update::op::keep: return x;
        case update::op::scale: return x * a;
        case update::op::scale_each: return x * y;
        case update::op::cos_add: return x + (((y - b) * a) / 2.0);
        case update::op::cos_ratio: return (a * (x - b)) + b;
        case update::op::cos_closed: return b + (((x - b) * a) / 2.0);
        case update::op::cyclic_rise: return x + (((y - x) * a) * b);
        case update::op::cyclic_fall: return y - (((y - x) * a) * b);
        case update::op::anneal_cos: return y + (((x - y) / 2.0) * a);
        case update::op::anneal_linear: return ((y - x) * a) + x;
        case update::op::swa: return (y * a) + (swa_initial_lr(x, y, b) * (1.0 - a));
    }
    return x;
}

/// Evaluate `u` for n groups (struct-of-arrays); `y` may be null when the op does not read it, and
/// `out` may be `x` (in place). The op is dispatched once, outside the loops, so each loop is a plain
/// element-wise kernel the compiler can vectorise (without reassociation: the order stays torch's).
inline void apply(const update& u, const double* x, const double* y, double* out, std::size_t n) {
#define FASTLR_APPLY_LOOP(op_)                                                          \
    case update::op::op_:                                                               \
        for (std::size_t i = 0; i < n; ++i) out[i] = eval(fixed, x[i], y ? y[i] : 0.0); \
        break;
    switch (u.kind) {
        case update::op::scale: {
            const double a = u.a;
            for (std::size_t i = 0; i < n; ++i) out[i] = x[i] * a;
            break;
        }
        case update::op::cos_ratio: {
            const double a = u.a, b = u.b;
            for (std::size_t i = 0; i < n; ++i) out[i] = (a * (x[i] - b)) + b;
            break;
        }
        default: {
            const update fixed = u;
            switch (u.kind) {
                FASTLR_APPLY_LOOP(keep)
                FASTLR_APPLY_LOOP(scale_each)
                FASTLR_APPLY_LOOP(cos_add)
                FASTLR_APPLY_LOOP(cos_closed)
                FASTLR_APPLY_LOOP(cyclic_rise)
                FASTLR_APPLY_LOOP(cyclic_fall)
                FASTLR_APPLY_LOOP(anneal_cos)
                FASTLR_APPLY_LOOP(anneal_linear)
                FASTLR_APPLY_LOOP(swa)
                default: break;
            }
        }
    }
#undef FASTLR_APPLY_LOOP
}

}  // namespace fastlr
