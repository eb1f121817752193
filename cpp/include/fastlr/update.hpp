// One scheduler step applied to all param groups at once (struct-of-arrays over groups).
//
// Every torch scheduler step, evaluated in Python order, reduces to one of a few per-group
// expressions whose scalar coefficients are the same for all groups. The class-specific code
// (decay.hpp, cosine.hpp) computes those coefficients once per step with CPython semantics; `apply`
// then evaluates the per-group expression in exactly torch's operation order.
#pragma once

#include <cstddef>

#include "config.hpp"

namespace fastlr {

/// The per-group expression of one step. `lr` is the group's current lr, `base` its base lr
/// (`initial_lr`), `each` a per-group factor supplied by the caller (a user lambda's value).
struct update {
    enum class op : std::uint8_t {
        keep,             ///< lr                                (torch returns the current lrs)
        scale,            ///< lr * a                            (chainable decays)
        base_scale,       ///< base * a                          (closed forms of the decays)
        cos_add,          ///< lr + (base - b) * a / 2           (CosineAnnealingLR at T_max+1 mod 2*T_max)
        cos_ratio,        ///< a * (lr - b) + b                  (CosineAnnealingLR recursive form)
        cos_closed,       ///< b + (base - b) * a / 2            (CosineAnnealingLR closed form)
        scale_each,       ///< lr * each[i]                      (MultiplicativeLR)
        base_scale_each,  ///< base * each[i]                    (LambdaLR)
    };
    op kind = op::keep;
    double a = 0.0;
    double b = 0.0;

    static constexpr update keep() { return update{op::keep, 0.0, 0.0}; }
    static constexpr update scale(double f) { return update{op::scale, f, 0.0}; }
    static constexpr update base_scale(double f) { return update{op::base_scale, f, 0.0}; }

    /// Whether the expression reads the groups' base lrs.
    constexpr bool needs_base() const {
        return kind == op::base_scale || kind == op::cos_add || kind == op::cos_closed ||
               kind == op::base_scale_each;
    }
    /// Whether it reads the groups' current lrs.
    constexpr bool needs_lr() const {
        return kind == op::keep || kind == op::scale || kind == op::cos_add || kind == op::cos_ratio ||
               kind == op::scale_each;
    }
    constexpr bool needs_each() const { return kind == op::scale_each || kind == op::base_scale_each; }
};

/// Evaluate `u` for one group. Each expression is written with explicit parentheses in CPython's
/// left-to-right evaluation order; the build disables FMA contraction so each operation rounds
/// separately, as CPython's do. Operands the op does not read are ignored.
inline double eval(const update& u, double lr, double base, double each) {
    const double a = u.a, b = u.b;
    switch (u.kind) {
        case update::op::keep: return lr;
        case update::op::scale: return lr * a;
        case update::op::base_scale: return base * a;
        case update::op::cos_add: return lr + (((base - b) * a) / 2.0);
        case update::op::cos_ratio: return (a * (lr - b)) + b;
        case update::op::cos_closed: return b + (((base - b) * a) / 2.0);
        case update::op::scale_each: return lr * each;
        case update::op::base_scale_each: return base * each;
    }
    return lr;
}

/// Evaluate `u` for n groups (struct-of-arrays). Pointers that the op does not read may be null.
inline void apply(const update& u, const double* lr, const double* base, const double* each, double* out,
                  std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
        out[i] = eval(u, u.needs_lr() ? lr[i] : 0.0, u.needs_base() ? base[i] : 0.0, u.needs_each() ? each[i] : 0.0);
}

}  // namespace fastlr
