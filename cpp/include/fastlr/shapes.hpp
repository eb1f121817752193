// Closed-form schedule shapes: pure functions v(t) of the step t, host and device (FASTLR_HD).
//
// Each shape reads its parameters from a `const double* p` (its slice of a program's parameter
// array, layout documented at each function) and is defined for every t >= 0. The host validates
// parameters when it builds a program (program.hpp); these functions never branch on errors and
// never convert an out-of-range double to an integer, so a garbage time (an inactive branch of a
// join, which the host's block loop may evaluate) costs time but is harmless.
//
// Conventions shared by the shapes that run over a finite number of steps T:
//   frac(t, T) = min(t, T) / T, and 1 when T == 0 (a zero-length transition is already complete);
//   at and past T the shape returns its end value exactly.
#pragma once

#include <math.h>

#include <cstdint>

#include "hdmath.hpp"

namespace fastlr {
namespace shape {

/// Parameter counts, checked by program validation. Variable-length shapes give a formula there.
enum : std::uint32_t {
    n_constant = 1,
    n_linear = 4,
    n_cosine = 7,
    n_polynomial = 5,
    n_exponential = 6,
    n_step = 3,
    n_cyclic = 6,
    n_onecycle = 7,
    n_warm_restarts = 10,
    n_inverse_sqrt = 2,
    n_wsd = 13,
    n_plateau = 1,
    n_noise = 6,
    n_transformers = 8,
};

/// constant: [value]
FASTLR_HD inline double constant(const double* p, double) { return p[0]; }

/// linear: [init, end, T, extrapolate]   v = init + (end - init) * (t / T) for t < T, else end; with
/// extrapolate (and T > 0) the line goes on past T (fvcore's LinearParamScheduler past its end, torch
/// OneCycleLR's linear anneal at pct > 1). (optax.linear_schedule; torch LinearLR's closed form with
/// init = base * start_factor; torch OneCycleLR's `(end - start) * pct + start`, the same rounding.)
FASTLR_HD inline double linear(const double* p, double t) {
    const double init = p[0], end = p[1], T = p[2];
    return t < T || (p[3] != 0.0 && T > 0.0) ? init + (end - init) * (t / T) : end;
}

/// cosine: [init, end, T, k_decay, cycles, mode, exponent]
///   x = t / T, clamped to 1 in mode 0 (and 1 when T == 0); q = x ** k_decay
///   modes 0 and 1:  c = 0.5 * (1 + cos(2 pi cycles q))
///   mode 2:         c = 0.5 * (1 + cos(pi ((cycles q) mod 1))) for x < 1 (else v = end)
///   v = end + (init - end) * c ** exponent  (optax.cosine_decay_schedule's exponent)
/// cycles = 0.5 is the usual half-period decay (optax.cosine_decay_schedule with alpha = end / init,
/// torch CosineAnnealingLR's closed form, timm's k_decay). Mode 1 keeps oscillating past T, and
/// mode 2 restarts `cycles` times within T: Hugging Face's cosine (num_cycles = cycles) and
/// cosine_with_restarts. With cycles == 0.5 a mode-0 cosine is exactly end from T on
/// (cos_pi(1) == -1 exactly).
FASTLR_HD inline double cosine(const double* p, double t) {
    const double init = p[0], end = p[1], T = p[2], k = p[3], cycles = p[4], mode = p[5];
    const double r = t / T;
    const double x = !(T > 0.0) ? 1.0 : (mode == 1.0 ? r : hd::min(r, 1.0));
    const double q = k == 1.0 ? x : ::pow(x, k);
    const double arg = mode == 2.0 ? ::fmod(cycles * q, 1.0) : (2.0 * cycles) * q;
    const double c = 0.5 * (1.0 + hd::cos_pi(arg));
    const double v = end + (init - end) * (p[6] == 1.0 ? c : ::pow(c, p[6]));
    return mode == 2.0 && !(x < 1.0) ? end : v;
}

/// polynomial: [init, end, T, power, k_decay]
///   v = end + (init - end) * (1 - t / T) ** power for t < T, else end
/// (optax.polynomial_schedule; torch PolynomialLR's closed form with end = 0); with k_decay != 1,
/// (1 - t**k / T**k) ** power, in timm PolyLRScheduler's operation order.
FASTLR_HD inline double polynomial(const double* p, double t) {
    const double init = p[0], end = p[1], T = p[2], power = p[3], k = p[4];
    if (!(t < T)) return end;
    const double r = k == 1.0 ? 1.0 - t / T : 1.0 - ::pow(t, k) / ::pow(T, k);
    return end + (init - end) * (power == 1.0 ? r : ::pow(r, power));
}

/// exponential: [init, rate, T, staircase, end, has_end]
///   e = t / T (floor(t / T) if staircase);  v = init * rate ** e,
///   bounded below by end when rate < 1 and above when rate > 1 if has_end (optax.exponential_decay;
///   torch ExponentialLR's closed form with T = 1).
FASTLR_HD inline double exponential(const double* p, double t) {
    const double init = p[0], rate = p[1], T = p[2], end = p[4];
    double e = t / T;
    if (p[3] != 0.0) e = ::floor(e);
    double v = init * ::pow(rate, e);
    if (p[5] != 0.0) v = rate < 1.0 ? hd::max(v, end) : hd::min(v, end);
    return v;
}

/// step: [init, gamma, size]   v = init * gamma ** floor(t / size)   (torch StepLR's closed form)
FASTLR_HD inline double step(const double* p, double t) {
    return p[0] * ::pow(p[1], ::floor(t / p[2]));
}

/// Number of the n ascending values b[0..n) that are <= t (bisect_right).
FASTLR_HD inline std::uint32_t count_le(const double* b, std::uint32_t n, double t) {
    std::uint32_t lo = 0, hi = n;
    while (lo < hi) {
        const std::uint32_t mid = lo + (hi - lo) / 2;
        if (b[mid] <= t) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/// piecewise_constant: [n, b_1..b_n, v_0..v_n]   v = v_j, j = #{i : b_i <= t}
/// (torch MultiStepLR's closed form and optax.piecewise_constant_schedule, as values).
FASTLR_HD inline double piecewise_constant(const double* p, double t) {
    const std::uint32_t n = static_cast<std::uint32_t>(p[0]);
    return p[1 + n + count_le(p + 1, n, t)];
}

/// piecewise_linear: [n, t_1..t_n, v_1..v_n] (n >= 1, t_i non-decreasing): linear interpolation
/// between the points, v_1 before t_1 and v_n from t_n on; at a repeated t_i the later value holds.
FASTLR_HD inline double piecewise_linear(const double* p, double t) {
    const std::uint32_t n = static_cast<std::uint32_t>(p[0]);
    const double* ts = p + 1;
    const double* vs = p + 1 + n;
    const std::uint32_t j = count_le(ts, n, t);
    if (j == 0) return vs[0];
    if (j == n) return vs[n - 1];
    const double t0 = ts[j - 1], t1 = ts[j], v0 = vs[j - 1], v1 = vs[j];
    return v0 + (v1 - v0) * ((t - t0) / (t1 - t0));
}

/// cyclic: [base, max, up, down, mode, gamma] with mode 0 triangular, 1 triangular2, 2 exp_range.
/// torch CyclicLR.get_lr in torch's operation order:
///   total = up + down; ratio = up / total; cycle = floor(1 + t / total); x = 1 + t / total - cycle
///   s = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
///   v = base + (max - base) * s * scale,  scale = 1 | 1 / 2 ** (cycle - 1) | gamma ** t
FASTLR_HD inline double cyclic(const double* p, double t) {
    const double base = p[0], top = p[1], up = p[2], down = p[3], mode = p[4], gamma = p[5];
    const double total = up + down;
    const double ratio = up / total;
    const double cycle = ::floor(1.0 + t / total);
    const double x = (1.0 + t / total) - cycle;
    const double s = x <= ratio ? x / ratio : (x - 1.0) / (ratio - 1.0);
    double scale = 1.0;
    if (mode == 1.0) scale = 1.0 / ::pow(2.0, cycle - 1.0);
    else if (mode == 2.0) scale = ::pow(gamma, t);
    return base + ((top - base) * s) * scale;
}

/// One phase of OneCycleLR: anneal from a to b at fraction f (cos, or linear when lin).
FASTLR_HD inline double onecycle_anneal(double a, double b, double f, bool lin) {
    if (lin) return (b - a) * f + a;
    return b + ((a - b) / 2.0) * (hd::cos_pi(f) + 1.0);
}

/// onecycle: [max, total, pct_start, div_factor, final_div_factor, three_phase, linear]
/// torch OneCycleLR.get_lr: initial = max / div, min = initial / final_div, phase ends
/// e1 = pct * total - 1, (e2 = 2 * pct * total - 2,) last = total - 1; inside a phase [s, e],
/// v = anneal(start, end, (t - s) / (e - s)). Unlike torch (which extrapolates once at t = total and
/// raises after), the schedule holds its final value, min, from t = total - 1 on.
FASTLR_HD inline double onecycle(const double* p, double t) {
    const double top = p[0], total = p[1], pct = p[2];
    const bool three = p[5] != 0.0, lin = p[6] != 0.0;
    const double initial = top / p[3];
    const double low = initial / p[4];
    const double last = total - 1.0;
    t = hd::min(t, last);
    const double e1 = pct * total - 1.0;
    double s = 0.0, e, a, b;
    if (t <= e1) {
        e = e1; a = initial; b = top;
    } else if (three && t <= 2.0 * pct * total - 2.0) {
        s = e1; e = 2.0 * pct * total - 2.0; a = top; b = initial;
    } else {
        s = three ? 2.0 * pct * total - 2.0 : e1;
        e = last; a = three ? initial : top; b = low;
    }
    const double f = e != s ? (t - s) / (e - s) : 1.0;
    return onecycle_anneal(a, b, f, lin);
}

/// warm_restarts: [max, min, T0, t_mult, cycle_decay, cycle_limit, k_decay, shape, lb, ub]  (SGDR)
/// Cycle i starts at S_i = T0 * (t_mult**i - 1) / (t_mult - 1) (T0 * i when t_mult == 1; see
/// warm_restarts_start for its rounding) and lasts
/// T_i = T0 * t_mult**i. Inside cycle i (i < cycle_limit; cycle_limit may be +inf), with
/// q = ((t - S_i) / T_i) ** k_decay and peak = max * cycle_decay**i:
///   shape 0 (cosine):  v = min + 0.5 * (peak - min) * (1 + cos(pi q))
///   shape 1 (tanh):    v = min + 0.5 * (peak - min) * (1 - tanh(lb * (1 - q) + ub * q))
/// and min from the end of cycle cycle_limit - 1 on (timm CosineLRScheduler and TanhLRScheduler;
/// torch CosineAnnealingWarmRestarts with integer T_mult). The cycle index from the logarithm is corrected
/// against the cycle starts, so a restart lands exactly on its step (torch's int(log) can miss one).
/// Start of cycle i (t_mult m != 1): T0 * ((m**i - 1) / (m - 1)), the geometric sum taken first (so
/// cycle 1 starts at T0 exactly: (T0 * (m - 1)) / (m - 1) can round above T0 and miss the first
/// restart), then snapped to the whole step it is within a few ulps of (a restart whose exact start
/// is a whole step lands on it).
FASTLR_HD inline double warm_restarts_start(double T0, double m, double i) {
    const double s = T0 * ((::pow(m, i) - 1.0) / (m - 1.0));
    const double r = ::floor(s + 0.5);
    return ::fabs(s - r) <= 8.0 * 2.220446049250313e-16 * ::fabs(r) ? r : s;
}

FASTLR_HD inline double warm_restarts(const double* p, double t) {
    const double top = p[0], low = p[1], T0 = p[2], m = p[3], decay = p[4], limit = p[5], k = p[6];
    double i, start, len;
    if (m == 1.0) {
        i = ::floor(t / T0);
        start = T0 * i;
        if (start > t) { i -= 1.0; start = T0 * i; }
        else if (T0 * (i + 1.0) <= t) { i += 1.0; start = T0 * i; }
        len = T0;
    } else {
        i = ::floor(::log(1.0 + t / T0 * (m - 1.0)) / ::log(m));
        if (!(i >= 0.0)) i = 0.0;
        // At most a step or two of correction, bounded for safety.
        for (int r = 0; r < 4; ++r) {
            if (warm_restarts_start(T0, m, i) > t && i > 0.0) i -= 1.0;
            else if (warm_restarts_start(T0, m, i + 1.0) <= t) i += 1.0;
            else break;
        }
        start = warm_restarts_start(T0, m, i);
        len = T0 * ::pow(m, i);
    }
    if (!(i < limit)) return low;
    const double x = (t - start) / len;
    const double q = k == 1.0 ? x : ::pow(x, k);
    const double peak = decay == 1.0 ? top : top * ::pow(decay, i);
    if (p[7] == 1.0) return low + (0.5 * (peak - low)) * (1.0 - ::tanh(p[8] * (1.0 - q) + p[9] * q));
    return low + (0.5 * (peak - low)) * (1.0 + hd::cos_pi(q));
}

/// inverse_sqrt: [init, timescale]   v = init / sqrt((t + timescale) / timescale)
/// (Hugging Face's inverse_sqrt after warm-up, with t counted from the end of the warm-up).
FASTLR_HD inline double inverse_sqrt(const double* p, double t) {
    return p[0] / ::sqrt((t + p[1]) / p[1]);
}

/// Warm-up coefficient w(f), f in [0, 1): 0 linear, 1 cosine, 2 1-sqrt.
FASTLR_HD inline double wsd_warmup(double kind, double f) {
    if (kind == 1.0) return 0.5 * (1.0 - hd::cos_pi(f));
    if (kind == 2.0) return 1.0 - ::sqrt(1.0 - f);
    return f;
}

/// Decay coefficient c(f), f in [0, 1): 0 linear 1 - f, 1 cosine, 2 1-sqrt (Megatron minus_sqrt),
/// 3 exponential (r**f - r) / (1 - r) to the ratio r (timm's exp; r = 0.5 is Megatron's
/// 2 * 0.5**f - 1, computed so), 4 power 1 - f**a (timm's power).
FASTLR_HD inline double wsd_decay(double kind, double f, double a, double r) {
    if (kind == 1.0) return 0.5 * (1.0 + hd::cos_pi(f));
    if (kind == 2.0) return 1.0 - ::sqrt(f);
    if (kind == 3.0) return r == 0.5 ? 2.0 * ::pow(0.5, f) - 1.0 : (::pow(r, f) - r) / (1.0 - r);
    if (kind == 4.0) return 1.0 - ::pow(f, a);
    return 1.0 - f;
}

/// wsd: [init, peak, end, W, S, D, warmup_kind, decay_kind, stable_kind, timescale, stable_power,
///       decay_power, decay_ratio]  (warmup-stable-decay)
///   t < W:           init + (peak - init) * w(t / W)
///   t < W + S:       s(t)
///   t < W + S + D:   end + (s(t) - end) * c((t - W - S) / D)   (c with decay_power, decay_ratio)
///   otherwise:       end
/// s(t) = peak for stable_kind 0; else max(peak * (1 + (t - W) / timescale) ** -a, end) with a = 0.5
/// (kind 1, rsqrt) or stable_power (kind 2): a decaying stable phase that keeps decaying through the
/// decay phase, held at or above end (timm WSDLRScheduler's stable_fn, in its operation order).
FASTLR_HD inline double wsd(const double* p, double t) {
    const double init = p[0], peak = p[1], end = p[2], W = p[3], S = p[4], D = p[5];
    if (t < W) return init + (peak - init) * wsd_warmup(p[6], t / W);
    const double ds = W + S;
    if (!(t < ds + D)) return end;
    double sv = peak;
    if (p[8] != 0.0) sv = hd::max(peak * ::pow(1.0 + (t - W) / p[9], -(p[8] == 1.0 ? 0.5 : p[10])), end);
    if (t < ds) return sv;
    return end + (sv - end) * wsd_decay(p[7], (t - ds) / D, p[11], p[12]);
}

/// plateau: [value]. The value is written by the host-side ReduceLROnPlateau state machine.
FASTLR_HD inline double plateau(const double* p, double) { return p[0]; }

/// noise: [pct, std, seed, normal, start, end] applied to a child's value v (timm's noise):
///   start <= t < end:  v + v * n, n = std * z (z standard normal, |std * z| < pct) if normal,
///                      else n = 2 * (u - 0.5) * pct (u uniform); drawn from (seed, floor(t)).
FASTLR_HD inline double noise(const double* p, double t, double v) {
    if (!(t >= p[4] && t < p[5])) return v;
    const double step_d = ::floor(t);
    // t is validated finite and >= 0 on the host; the guard keeps the conversion defined regardless.
    const std::uint64_t step = step_d >= 0.0 && step_d < 1.8e19 ? static_cast<std::uint64_t>(step_d) : 0;
    const std::uint64_t seed = static_cast<std::uint64_t>(p[2]);
    double n = 0.0;
    if (p[3] != 0.0) n = p[1] * hd::truncated_normal(seed, step, p[0] / p[1]);
    else n = 2.0 * (hd::uniform(seed, step, 0) - 0.5) * p[0];
    return v + v * n;
}

/// transformers: [variant, W, T, a, b, c, d, e]  Hugging Face transformers' `get_scheduler` lambdas
/// (transformers/optimization.py), evaluated operation for operation as CPython evaluates them, so
/// that `base_lr * v` is the bits of torch's LambdaLR with transformers' lambda. W, T: warm-up and
/// training steps (integers). `pi` is math.pi and `::cos`/`::sqrt`/`::pow` are the C library's, as
/// CPython's math module calls them (bitwise on the host; on a device within an ulp or two).
///   0 constant_with_warmup    t < W: t / max(1, W); else 1
///   1 linear                  t < W: t / max(1, W); else max(0, (T - t) / max(1, T - W))
///   2 cosine (a cycles)       p = (t - W) / max(1, T - W); max(0, 0.5 * (1 + cos(pi * a * 2 * p)))
///   3 cosine_with_restarts    p as above; 0 if p >= 1, else max(0, 0.5 * (1 + cos(pi * ((a * p) % 1))))
///   4 polynomial (a lr_end, b power, c lr_init)  t > T: a / c; else
///                             ((c - a) * (1 - (t - W) / (T - W)) ** b + a) / c
///   5 inverse_sqrt (a timescale)  1 / sqrt((t + (a - W)) / a)
///   6 cosine_with_min_lr (a cycles, b min_lr_rate)  f = cosine's; max(0, f * (1 - b) + b)
///   7 cosine_warmup_with_min_lr (a cycles, b min_lr_rate, c warmup_lr_rate, d has it): t < W:
///                             (t + 1) / max(1, W), or c + (1 - c) * t / max(1, W - 1); else
///                             p = (t - W + 1) / max(1, T - W), f as cosine_with_min_lr
///   8 warmup_stable_decay (T stable steps S, a decay steps D, b warm-up kind, c decay kind,
///                             d min_lr_ratio r, e cycles; kinds 0 linear, 1 cosine, 2 1-sqrt)
/// Every variant but 5 and 8 returns its warm-up (t < W) first, as above.
FASTLR_HD inline double transformers(const double* p, double t) {
    const double pi = 3.141592653589793;
    const int variant = static_cast<int>(p[0]);
    const double W = p[1], T = p[2], a = p[3], b = p[4], c = p[5], d = p[6], e = p[7];
    auto warm = [&]() { return t / hd::max(1.0, W); };
    auto progress = [&]() { return (t - W) / hd::max(1.0, T - W); };
    auto nonneg = [](double x) { return 0.0 < x ? x : 0.0; };  // Python's max(0.0, x)
    switch (variant) {
        case 0: return t < W ? warm() : 1.0;
        case 1: return t < W ? warm() : nonneg((T - t) / hd::max(1.0, T - W));
        case 2: return t < W ? warm() : nonneg(0.5 * (1.0 + ::cos(pi * a * 2.0 * progress())));
        case 3: {
            if (t < W) return warm();
            const double q = progress();
            if (q >= 1.0) return 0.0;
            double m = ::fmod(a * q, 1.0);  // Python's float %: the sign of the divisor
            if (m != 0.0 && m < 0.0) m += 1.0;
            if (m == 0.0) m = 0.0;
            return nonneg(0.5 * (1.0 + ::cos(pi * m)));
        }
        case 4: {
            if (t < W) return warm();
            if (t > T) return a / c;
            const double pct = 1.0 - (t - W) / (T - W);
            return ((c - a) * ::pow(pct, b) + a) / c;
        }
        case 5: return t < W ? warm() : 1.0 / ::sqrt((t + (a - W)) / a);
        case 6: {
            if (t < W) return warm();
            const double f = 0.5 * (1.0 + ::cos(pi * a * 2.0 * progress()));
            return nonneg(f * (1.0 - b) + b);
        }
        case 7: {
            if (t < W) return d != 0.0 ? c + (1.0 - c) * t / hd::max(1.0, W - 1.0) : (t + 1.0) / hd::max(1.0, W);
            const double q = (t - W + 1.0) / hd::max(1.0, T - W);
            const double f = 0.5 * (1.0 + ::cos(pi * a * 2.0 * q));
            return nonneg(f * (1.0 - b) + b);
        }
        case 8: {
            const double S = T, D = a, r = d;
            double f;
            if (t < W) {
                const double q = t / hd::max(1.0, W);
                f = b == 1.0 ? 0.5 * (1.0 - ::cos(pi * q)) : b == 2.0 ? 1.0 - ::sqrt(1.0 - q) : q;
                return nonneg(f * (1.0 - r) + r);
            }
            if (t < W + S) return 1.0;
            if (t < W + S + D) {
                const double q = (t - W - S) / hd::max(1.0, D);
                f = c == 1.0 ? 0.5 * (1.0 + ::cos(pi * e * 2.0 * q)) : c == 2.0 ? 1.0 - ::sqrt(q) : 1.0 - q;
                return nonneg(f * (1.0 - r) + r);
            }
            return r;
        }
        default: return 0.0;
    }
}

}  // namespace shape
}  // namespace fastlr
