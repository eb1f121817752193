// Host side of schedule programs: an owning program, its validation, and the block evaluator that
// fills tables of values (256 steps at a time: one dispatch per node per block, the loop over steps
// innermost, and nodes that no step of the block reads are skipped).
//
// Host only (std::vector, std::string). The device uses program.hpp's `eval` over the same arrays.
#pragma once

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "program.hpp"

namespace fastlr {
namespace sched {

/// A program that owns its arrays. Build with `add`, then `validate` before any evaluation.
struct program_data {
    std::vector<node> nodes;
    std::vector<std::uint32_t> children;
    std::vector<double> params;

    /// Append a node; returns its index. Children must already have been added.
    std::uint32_t add(op k, const double* p, std::size_t np, const std::uint32_t* ch, std::size_t nc) {
        node nd{static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(params.size()),
                static_cast<std::uint32_t>(np), static_cast<std::uint32_t>(children.size()),
                static_cast<std::uint32_t>(nc), 0};
        params.insert(params.end(), p, p + np);
        children.insert(children.end(), ch, ch + nc);
        nodes.push_back(nd);
        return static_cast<std::uint32_t>(nodes.size() - 1);
    }

    program view() const {
        return program{nodes.data(), children.data(), params.data(), static_cast<std::uint32_t>(nodes.size())};
    }
};

namespace detail {

inline bool finite(double x) { return std::isfinite(x); }
inline bool flag(double x) { return x == 0.0 || x == 1.0; }
inline bool integral(double x) { return finite(x) && std::floor(x) == x; }

inline const char* op_name(std::uint32_t k) {
    static const char* const names[] = {"?",          "constant",    "linear",       "cosine",
                                        "polynomial", "exponential", "step",         "piecewise_constant",
                                        "piecewise_linear", "cyclic", "onecycle",    "warm_restarts",
                                        "inverse_sqrt", "wsd",       "plateau",      "noise",
                                        "join",       "product",     "scale",        "offset",
                                        "transformers"};
    return k <= op_max ? names[k] : "?";
}

inline std::string num(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", x);
    return buf;
}

/// The message for parameter `what` of node kind k, which must satisfy `rule`.
inline std::string bad(std::uint32_t k, const char* what, const char* rule, double got) {
    return std::string(op_name(k)) + ": " + what + " must be " + rule + " (got " + num(got) + ")";
}

/// Semantic checks of one node's parameters (the count is already checked). Empty when valid.
inline std::string check_params(std::uint32_t k, const double* p, std::uint32_t np) {
    // Every parameter must be finite, except the few slots where +inf means "unbounded".
    for (std::uint32_t j = 0; j < np; ++j) {
        const bool inf_ok = (k == static_cast<std::uint32_t>(op::warm_restarts) && j == 5) ||
                            (k == static_cast<std::uint32_t>(op::noise) && j == 5);
        if (!finite(p[j]) && !(inf_ok && p[j] == HUGE_VAL))
            return std::string(op_name(k)) + ": parameters must be finite (parameter " + std::to_string(j) +
                   " is " + num(p[j]) + ")";
    }
    switch (static_cast<op>(k)) {
        case op::constant:
        case op::plateau:
        case op::product:
        case op::scale:
        case op::offset: return {};
        case op::linear:
            if (p[2] < 0) return bad(k, "steps", ">= 0", p[2]);
            if (!flag(p[3])) return bad(k, "extrapolate", "0 or 1", p[3]);
            return {};
        case op::cosine:
            if (p[2] < 0) return bad(k, "steps", ">= 0", p[2]);
            if (!(p[3] > 0)) return bad(k, "k_decay", "> 0", p[3]);
            if (p[4] < 0) return bad(k, "cycles", ">= 0", p[4]);
            if (!(p[5] == 0.0 || p[5] == 1.0 || p[5] == 2.0)) return bad(k, "mode", "0, 1 or 2", p[5]);
            if (!(p[6] > 0)) return bad(k, "exponent", "> 0", p[6]);
            return {};
        case op::polynomial:
            if (p[2] < 0) return bad(k, "steps", ">= 0", p[2]);
            if (p[3] < 0) return bad(k, "power", ">= 0", p[3]);
            if (!(p[4] > 0)) return bad(k, "k_decay", "> 0", p[4]);
            return {};
        case op::exponential:
            if (!(p[1] > 0)) return bad(k, "decay_rate", "> 0", p[1]);
            if (!(p[2] > 0)) return bad(k, "transition_steps", "> 0", p[2]);
            if (!flag(p[3])) return bad(k, "staircase", "0 or 1", p[3]);
            if (!flag(p[5])) return bad(k, "has_end", "0 or 1", p[5]);
            return {};
        case op::step:
            if (!(p[2] > 0)) return bad(k, "step_size", "> 0", p[2]);
            return {};
        case op::piecewise_constant:
        case op::piecewise_linear: {
            const std::uint32_t n = static_cast<std::uint32_t>(p[0]);
            for (std::uint32_t j = 1; j < n; ++j)
                if (p[1 + j] < p[j]) return bad(k, "boundaries", "non-decreasing", p[1 + j]);
            return {};
        }
        case op::cyclic:
            if (!(p[2] > 0)) return bad(k, "step_size_up", "> 0", p[2]);
            if (p[3] < 0) return bad(k, "step_size_down", ">= 0", p[3]);
            if (!(p[4] == 0.0 || p[4] == 1.0 || p[4] == 2.0)) return bad(k, "mode", "0, 1 or 2", p[4]);
            if (!(p[5] > 0)) return bad(k, "gamma", "> 0", p[5]);
            return {};
        case op::onecycle:
            if (!(p[1] >= 1) || !integral(p[1])) return bad(k, "total_steps", "an integer >= 1", p[1]);
            if (!(p[2] >= 0 && p[2] <= 1)) return bad(k, "pct_start", "in [0, 1]", p[2]);
            if (p[3] == 0) return bad(k, "div_factor", "non-zero", p[3]);
            if (p[4] == 0) return bad(k, "final_div_factor", "non-zero", p[4]);
            if (!flag(p[5])) return bad(k, "three_phase", "0 or 1", p[5]);
            if (!flag(p[6])) return bad(k, "linear", "0 or 1", p[6]);
            if (p[2] * p[1] == 1.0)
                return std::string("onecycle: pct_start * total_steps == 1 gives a first phase of zero length (got ") +
                       num(p[2]) + " * " + num(p[1]) + ")";
            return {};
        case op::warm_restarts:
            if (!(p[2] > 0)) return bad(k, "period", "> 0", p[2]);
            if (!(p[3] >= 1)) return bad(k, "t_mult", ">= 1", p[3]);
            if (!(p[4] > 0)) return bad(k, "cycle_decay", "> 0", p[4]);
            if (!(p[5] >= 0) || !(p[5] == HUGE_VAL || integral(p[5])))
                return bad(k, "cycle_limit", "an integer >= 0 or unlimited", p[5]);
            if (!(p[6] > 0)) return bad(k, "k_decay", "> 0", p[6]);
            if (!flag(p[7])) return bad(k, "shape", "0 (cosine) or 1 (tanh)", p[7]);
            if (p[7] == 1.0 && !(p[8] < p[9])) return bad(k, "lb", "< ub", p[8]);
            return {};
        case op::transformers:
            if (!(p[0] >= 0 && p[0] <= 8) || !integral(p[0])) return bad(k, "variant", "an integer in [0, 8]", p[0]);
            if (!(p[1] >= 0) || !integral(p[1])) return bad(k, "num_warmup_steps", "an integer >= 0", p[1]);
            if (!integral(p[2])) return bad(k, "num_training_steps", "an integer", p[2]);
            if (p[0] == 5.0 && !(p[3] > 0)) return bad(k, "timescale", "> 0", p[3]);
            if (p[0] == 4.0 && p[5] == 0) return bad(k, "lr_init", "non-zero", p[5]);
            return {};
        case op::inverse_sqrt:
            if (!(p[1] > 0)) return bad(k, "timescale", "> 0", p[1]);
            return {};
        case op::wsd:
            if (p[3] < 0) return bad(k, "warmup", ">= 0", p[3]);
            if (p[4] < 0) return bad(k, "stable", ">= 0", p[4]);
            if (p[5] < 0) return bad(k, "decay", ">= 0", p[5]);
            if (!(p[6] == 0.0 || p[6] == 1.0 || p[6] == 2.0)) return bad(k, "warmup_shape", "0, 1 or 2", p[6]);
            if (!(p[7] == 0.0 || p[7] == 1.0 || p[7] == 2.0 || p[7] == 3.0 || p[7] == 4.0))
                return bad(k, "decay_shape", "0, 1, 2, 3 or 4", p[7]);
            if (!(p[8] == 0.0 || p[8] == 1.0 || p[8] == 2.0)) return bad(k, "stable_shape", "0, 1 or 2", p[8]);
            if (p[8] != 0.0 && !(p[9] > 0)) return bad(k, "stable_timescale", "> 0", p[9]);
            if (!(p[10] > 0)) return bad(k, "stable_power", "> 0", p[10]);
            if (!(p[11] > 0)) return bad(k, "decay_power", "> 0", p[11]);
            if (!(p[12] > 0 && p[12] < 1)) return bad(k, "decay_ratio", "in (0, 1)", p[12]);
            return {};
        case op::noise:
            if (!(p[0] > 0)) return bad(k, "pct", "> 0", p[0]);
            if (!(p[1] > 0)) return bad(k, "std", "> 0", p[1]);
            if (!(p[2] >= 0 && p[2] <= hd::two_pow_53) || !integral(p[2]))
                return bad(k, "seed", "an integer in [0, 2**53]", p[2]);
            if (!flag(p[3])) return bad(k, "normal", "0 or 1", p[3]);
            if (p[4] < 0) return bad(k, "start", ">= 0", p[4]);
            if (!(p[5] >= p[4])) return bad(k, "end", ">= start", p[5]);
            return {};
        case op::join:
            for (std::uint32_t j = 0; j < np; ++j) {
                if (p[j] < 0) return bad(k, "boundaries", ">= 0", p[j]);
                if (j > 0 && p[j] < p[j - 1]) return bad(k, "boundaries", "non-decreasing", p[j]);
            }
            return {};
    }
    return "unknown node kind " + std::to_string(k);
}

}  // namespace detail

/// Check that `prog` is a well-formed program that `eval` may run: sizes, indices, tree shape,
/// parameter counts and values. Returns an empty string when valid, else what is wrong.
inline std::string validate(const program_data& prog) {
    using detail::op_name;
    const std::size_t n = prog.nodes.size();
    if (n == 0) return "a program needs at least one node";
    if (n > max_nodes)
        return "a schedule may have at most " + std::to_string(max_nodes) + " nodes (this one has " +
               std::to_string(n) + ")";
    std::vector<int> parent_count(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
        const node& nd = prog.nodes[i];
        const std::string where = "node " + std::to_string(i) + " (" + op_name(nd.op) + "): ";
        if (nd.op < 1 || nd.op > op_max) return "node " + std::to_string(i) + ": unknown kind " + std::to_string(nd.op);
        if (nd.reserved != 0) return where + "reserved field must be 0";
        if (nd.first_param > prog.params.size() || nd.n_params > prog.params.size() - nd.first_param)
            return where + "parameters out of range";
        if (nd.first_child > prog.children.size() || nd.n_children > prog.children.size() - nd.first_child)
            return where + "children out of range";
        const double* p = prog.params.data() + nd.first_param;
        const std::uint32_t np = nd.n_params, nc = nd.n_children;
        // Parameter and child counts.
        std::uint32_t want_np = 0, want_nc = 0;
        switch (static_cast<op>(nd.op)) {
            case op::constant: want_np = shape::n_constant; break;
            case op::linear: want_np = shape::n_linear; break;
            case op::cosine: want_np = shape::n_cosine; break;
            case op::polynomial: want_np = shape::n_polynomial; break;
            case op::exponential: want_np = shape::n_exponential; break;
            case op::step: want_np = shape::n_step; break;
            case op::cyclic: want_np = shape::n_cyclic; break;
            case op::onecycle: want_np = shape::n_onecycle; break;
            case op::warm_restarts: want_np = shape::n_warm_restarts; break;
            case op::inverse_sqrt: want_np = shape::n_inverse_sqrt; break;
            case op::wsd: want_np = shape::n_wsd; break;
            case op::plateau: want_np = shape::n_plateau; break;
            case op::transformers: want_np = shape::n_transformers; break;
            case op::noise: want_np = shape::n_noise; want_nc = 1; break;
            case op::scale:
            case op::offset: want_np = 1; want_nc = 1; break;
            case op::product:
                want_np = 0;
                want_nc = nc == 0 ? 1 : nc;
                break;
            case op::join: want_np = np; want_nc = np + 1; break;
            case op::piecewise_constant:
            case op::piecewise_linear: {
                const bool lin = nd.op == static_cast<std::uint32_t>(op::piecewise_linear);
                if (np < 1 || !detail::integral(p[0]) || p[0] < (lin ? 1.0 : 0.0) || p[0] > 1e6)
                    return where + (lin ? "needs at least one point" : "bad number of boundaries");
                const std::uint32_t m = static_cast<std::uint32_t>(p[0]);
                want_np = lin ? 1 + 2 * m : 2 + 2 * m;
                break;
            }
        }
        if (np != want_np)
            return where + "expects " + std::to_string(want_np) + " parameters, got " + std::to_string(np);
        if (nc != want_nc)
            return where + "expects " + std::to_string(want_nc) + " children, got " + std::to_string(nc);
        for (std::uint32_t k = 0; k < nc; ++k) {
            const std::uint32_t c = prog.children[nd.first_child + k];
            if (c >= i) return where + "child " + std::to_string(c) + " must precede its parent";
            if (++parent_count[c] > 1) return "node " + std::to_string(c) + " has more than one parent";
        }
        std::string e = detail::check_params(nd.op, p, np);
        if (!e.empty()) return e;
    }
    for (std::size_t i = 0; i + 1 < n; ++i)
        if (parent_count[i] != 1) return "node " + std::to_string(i) + " is not reachable from the root";
    return {};
}

// ---- Vector loops for the block evaluator (host, x86-64 with GCC or Clang) -------------------------
//
// The cosine leaf is most of the work of a whole-curve table. Written per step (shape::cosine), it
// stays scalar: its tests of k_decay, the exponent and the mode sit inside the loop, and under the
// default -ftrapping-math GCC sinks each arm of cos_pi's selects into a branch and then will not
// if-convert the loop. Here the common case (k_decay == 1, exponent == 1, mode 0 or 1, T > 0) is
// tested once per block and runs in GCC vector extensions (two lanes on baseline x86-64, four with
// AVX2), operation for operation what shape::cosine and hd::cos_pi do: the same IEEE additions,
// multiplications and divisions (no FMA: -ffp-contract=off holds for vector code too), and selects
// where they select. So every value has the same bits as the scalar code (tests/test_core.py compares
// the two on each instruction set, through _core._table_isa). The block evaluator is built twice, for
// baseline x86-64 and for AVX2, and the AVX2 copy runs only where the CPU has AVX2 (checked at run
// time: the wheel is built for baseline x86-64).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__)
#define FASTLR_HOST_SIMD 1
#define FASTLR_TARGET_AVX2 __attribute__((target("avx2")))
#else
#define FASTLR_HOST_SIMD 0
#define FASTLR_TARGET_AVX2
#endif
#if defined(__GNUC__)
#define FASTLR_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FASTLR_ALWAYS_INLINE inline
#endif

namespace simd {

/// Instruction set of the vector loops: automatic (AVX2 where the CPU has it), or forced (tests).
enum class isa : int { automatic = 0, baseline = 1, avx2 = 2 };

inline std::atomic<int>& isa_override() {
    static std::atomic<int> v{static_cast<int>(isa::automatic)};
    return v;
}

/// Whether this CPU (and OS) runs AVX2 code.
inline bool cpu_has_avx2() {
#if FASTLR_HOST_SIMD
    static const bool has = __builtin_cpu_supports("avx2") != 0;
    return has;
#else
    return false;
#endif
}

/// The instruction set the vector loops use now.
inline isa active_isa() {
    const auto o = static_cast<isa>(isa_override().load(std::memory_order_relaxed));
    if (o == isa::baseline || !cpu_has_avx2()) return isa::baseline;
    return isa::avx2;
}

#if FASTLR_HOST_SIMD
typedef double v2d __attribute__((vector_size(16)));  // baseline x86-64: SSE2
typedef double v4d __attribute__((vector_size(32)));  // AVX2

// Vectors go in and out of the helpers by reference, never by value: a by-value 32-byte vector in a
// function built for baseline x86-64 would change the ABI (-Wpsabi). Everything is inlined anyway.

template <class V>
FASTLR_ALWAYS_INLINE void broadcast(V& v, double x) {
    for (std::size_t i = 0; i < sizeof(V) / sizeof(double); ++i) v[i] = x;
}

/// out[k] = hd::cos_pi(x[k]) on each lane of K vectors, the same operations in the same order (see
/// hdmath.hpp for the why). `m ? a : b` on vectors selects per lane, as the scalar code's `?:` does.
/// Each statement runs over the K vectors in turn: K independent chains, interleaved, so the CPU
/// overlaps them (one chain is long: the loop would wait on latency, not throughput).
template <class V, std::size_t K>
FASTLR_ALWAYS_INLINE void cos_pi(const V (&x_in)[K], V (&out)[K]) {
    V two52, zero, lim, one;
    broadcast(two52, 4503599627370496.0);
    broadcast(zero, 0.0);
    broadcast(lim, hd::two_pow_53);
    broadcast(one, 1.0);
    using mask = decltype(zero < one);
    V x[K], r[K], n[K], f[K], z[K], z2[K], z4[K], z8[K], c[K], s[K];
    mask small[K];
    for (std::size_t k = 0; k < K; ++k) x[k] = x_in[k] < zero ? -x_in[k] : x_in[k];
    for (std::size_t k = 0; k < K; ++k) small[k] = x[k] < lim;  // false where the scalar `huge` is true
    for (std::size_t k = 0; k < K; ++k) r[k] = small[k] ? x[k] : zero;
    for (std::size_t k = 0; k < K; ++k) r[k] = r[k] - 2.0 * ((0.5 * r[k] + two52) - two52);
    for (std::size_t k = 0; k < K; ++k) r[k] = r[k] < zero ? -r[k] : r[k];
    for (std::size_t k = 0; k < K; ++k) n[k] = (2.0 * r[k] + two52) - two52;  // q in hd::cos_pi
    for (std::size_t k = 0; k < K; ++k) f[k] = r[k] - 0.5 * n[k];
    for (std::size_t k = 0; k < K; ++k) z[k] = f[k] * f[k];
    for (std::size_t k = 0; k < K; ++k) z2[k] = z[k] * z[k];
    for (std::size_t k = 0; k < K; ++k) z4[k] = z2[k] * z2[k];
    for (std::size_t k = 0; k < K; ++k) z8[k] = z4[k] * z4[k];
    for (std::size_t k = 0; k < K; ++k) {
        const V c01 = 1.0 + (-4.934802200544679) * z[k], c23 = 4.0587121264167685 + (-1.3352627688545895) * z[k];
        const V c45 = 0.2353306303588932 + (-0.02580689139001406) * z[k];
        const V c67 = 0.0019295743094039231 + (-0.0001046381049248457) * z[k];
        c[k] = (c01 + c23 * z2[k]) + (c45 + c67 * z2[k]) * z4[k] + 4.303069587032947e-06 * z8[k];
    }
    for (std::size_t k = 0; k < K; ++k) {
        const V s01 = 3.141592653589793 + (-5.16771278004997) * z[k];
        const V s23 = 2.5501640398773455 + (-0.5992645293207921) * z[k];
        const V s45 = 0.08214588661112823 + (-0.0073704309457143504) * z[k];
        const V s67 = 0.00046630280576761255 + (-2.1915353447830217e-05) * z[k];
        s[k] = ((s01 + s23 * z2[k]) + (s45 + s67 * z2[k]) * z4[k] + 7.952054001475513e-07 * z8[k]) * f[k];
    }
    for (std::size_t k = 0; k < K; ++k) {
        const V v = n[k] == one ? s[k] : c[k];
        const V o = n[k] == zero ? v : -v;
        out[k] = small[k] ? o : (x[k] - x[k]) + 1.0;
    }
}

/// cosine_plain_body's loop, for one mode: K vectors of steps per iteration; the steps past the last
/// whole iteration go through shape::cosine itself.
template <class V, bool Clamp>
FASTLR_ALWAYS_INLINE void cosine_plain_loop(const double* __restrict p, const double* __restrict tt,
                                            double* __restrict vv, std::size_t m) {
    constexpr std::size_t lanes = sizeof(V) / sizeof(double);
    const double init = p[0], end = p[1], T = p[2], cycles = p[4];
    V vT, one, vend, span, cyc2;
    broadcast(vT, T);
    broadcast(one, 1.0);
    broadcast(vend, end);
    broadcast(span, init - end);
    broadcast(cyc2, 2.0 * cycles);
    constexpr std::size_t K = 4;  // vectors per iteration (see cos_pi)
    std::size_t j = 0;
    for (; j + K * lanes <= m; j += K * lanes) {
        V arg[K], c[K];
        for (std::size_t k = 0; k < K; ++k) {
            V t;
            std::memcpy(&t, tt + j + k * lanes, sizeof t);
            const V r = t / vT;
            V x = r;
            if (Clamp) x = one < r ? one : r;  // hd::min(r, 1.0)
            arg[k] = cyc2 * x;
        }
        cos_pi(arg, c);
        for (std::size_t k = 0; k < K; ++k) {
            const V v = vend + span * (0.5 * (1.0 + c[k]));
            std::memcpy(vv + j + k * lanes, &v, sizeof v);
        }
    }
    for (; j < m; ++j) vv[j] = shape::cosine(p, tt[j]);
}

/// shape::cosine for k_decay == 1, exponent == 1, mode 0 (clamp) or 1 (extrapolate) and T > 0:
/// v = end + (init - end) * (0.5 * (1 + cos_pi((2 cycles) * x))), x = t / T (min(x, 1) when clamped).
template <class V>
FASTLR_ALWAYS_INLINE void cosine_plain_body(const double* __restrict p, const double* __restrict tt,
                                            double* __restrict vv, std::size_t m) {
    if (p[5] == 1.0) cosine_plain_loop<V, false>(p, tt, vv, m);
    else cosine_plain_loop<V, true>(p, tt, vv, m);
}
#endif

/// Whether the cosine leaf with parameters p takes the vector loop (`cosine_plain_*`).
inline bool cosine_is_plain(const double* p) {
    return FASTLR_HOST_SIMD && p[2] > 0.0 && p[3] == 1.0 && p[6] == 1.0 && (p[5] == 0.0 || p[5] == 1.0);
}

/// vv[j] = shape::cosine(p, tt[j]) for j < m, bit for bit: the vector loop where it applies, four
/// lanes (the AVX2 build) or two (baseline SSE2).
template <bool Avx2>
FASTLR_ALWAYS_INLINE void cosine_leaf(const double* __restrict p, const double* __restrict tt, double* __restrict vv,
                                      std::size_t m) {
#if FASTLR_HOST_SIMD
    if (cosine_is_plain(p)) {
        if (Avx2) cosine_plain_body<v4d>(p, tt, vv, m);
        else cosine_plain_body<v2d>(p, tt, vv, m);
        return;
    }
#endif
    for (std::size_t j = 0; j < m; ++j) vv[j] = shape::cosine(p, tt[j]);
}

}  // namespace simd

/// Batched host evaluation of a validated program over many steps (same values as `eval`). Holds scratch that grows to
/// (nodes x block) on first use; reuse one evaluator for many calls.
class block_evaluator {
  public:
    static constexpr std::size_t block = 256;

    /// out[j] = eval(prog, t[j]) for j < n (a step below 0 is step 0); a float output is the double
    /// value rounded once to nearest.
    template <class Out>
    void run(const program& prog, const double* t, Out* out, std::size_t n) {
        for (std::size_t s = 0; s < n; s += block) {
            const std::size_t m = n - s < block ? n - s : block;
            prepare(prog);
            eval_block(prog, t + s, 0.0, out + s, m);
        }
    }

    /// out[j] = eval(prog, start + j) for j < n (integer steps, as a table).
    template <class Out>
    void run_range(const program& prog, double start, Out* out, std::size_t n) {
        for (std::size_t s = 0; s < n; s += block) {
            const std::size_t m = n - s < block ? n - s : block;
            prepare(prog);
            eval_block(prog, nullptr, start + static_cast<double>(s), out + s, m);
        }
    }

  private:
    std::vector<double> time_, val_;

    std::vector<unsigned char> mask_;
    std::vector<std::uint32_t> sel_;
    std::vector<unsigned char> any_;
    std::vector<unsigned char> full_;
    std::vector<std::uint32_t> uni_;
    const double* vp_[max_nodes] = {};
    static constexpr std::uint32_t no_child = 0xFFFFFFFFu;

    /// 0.0, 1.0, ..., block - 1.
    static const double* steps_0_to_block() {
        struct table {
            double v[block];
            table() {
                for (std::size_t j = 0; j < block; ++j) v[j] = static_cast<double>(j);
            }
        };
        static const table t;
        return t.v;
    }

    void prepare(const program& prog) {
        const std::size_t sz = static_cast<std::size_t>(prog.n_nodes) * block;
        if (time_.size() < sz) {
            time_.assign(sz, 0.0);
            val_.assign(sz, 0.0);
            mask_.assign(sz, 0);
            sel_.assign(sz, 0);
        }
        any_.assign(prog.n_nodes, 0);
        full_.assign(prog.n_nodes, 0);
        uni_.assign(prog.n_nodes, no_child);
    }

    // __restrict: the output never aliases the parameters, so their loads hoist out of the loop.
    template <double (*F)(const double*, double)>
    static void leaf_loop(const double* __restrict p, const double* __restrict tt, double* __restrict vv,
                          std::size_t m) {
        for (std::size_t j = 0; j < m; ++j) vv[j] = F(p, tt[j]);
    }

    /// Join selection for a block: a branch-free count for a few boundaries, else bisection.
    static FASTLR_ALWAYS_INLINE void select_block(const node& nd, const double* params,
                                                  const double* __restrict ti, std::uint32_t* __restrict si,
                                                  std::size_t m) {
        const double* b = params + nd.first_param;
        const std::uint32_t nb = nd.n_params;
        if (nb <= 8) {
            for (std::size_t j = 0; j < m; ++j) si[j] = 0;
            for (std::uint32_t k = 0; k < nb; ++k) {
                const double bk = b[k];
                for (std::size_t j = 0; j < m; ++j) si[j] += bk <= ti[j] ? 1u : 0u;
            }
        } else {
            for (std::size_t j = 0; j < m; ++j) si[j] = join_select(nd, params, ti[j]);
        }
    }

    /// tc[j] = child_time(nd, params, k, ti[j]) for j < m, with the node's kind tested once, not per
    /// step (a loop that GCC vectorises): the same shift and the same hd::max.
    static FASTLR_ALWAYS_INLINE void child_times(const node& nd, const double* params, std::uint32_t k,
                                                 const double* __restrict ti, double* __restrict tc, std::size_t m) {
        const double* p = params + nd.first_param;
        const bool is_join = nd.op == static_cast<std::uint32_t>(op::join);
        const bool shifted = (is_join && k > 0) || nd.op == static_cast<std::uint32_t>(op::offset);
        if (!shifted) {
            for (std::size_t j = 0; j < m; ++j) tc[j] = ti[j];
            return;
        }
        const double d = is_join ? p[k - 1] : p[0];
        for (std::size_t j = 0; j < m; ++j) tc[j] = hd::max(ti[j] - d, 0.0);
    }

    /// Evaluate one block of m steps: t[j] (clamped at 0), or t0 + j where t is null; the root's values
    /// go to out, converted to Out. The AVX2 build of the evaluator runs where the CPU has AVX2, else the
    /// baseline one: the same code (eval_block_body) compiled for two instruction sets, neither with FMA,
    /// so the values have the same bits.
    template <class Out>
    void eval_block(const program& prog, const double* t, double t0, Out* out, std::size_t m) {
        if (simd::active_isa() == simd::isa::avx2) eval_block_avx2(prog, t, t0, out, m);
        else eval_block_body<false>(prog, t, t0, out, m);
    }

    template <class Out>
    FASTLR_TARGET_AVX2 void eval_block_avx2(const program& prog, const double* t, double t0, Out* out,
                                            std::size_t m) {
        eval_block_body<true>(prog, t, t0, out, m);
    }

    template <bool Avx2, class Out>
    FASTLR_ALWAYS_INLINE void eval_block_body(const program& prog, const double* __restrict t, double t0,
                                              Out* __restrict out, std::size_t m) {
        const std::uint32_t n = prog.n_nodes;
        const std::uint32_t root = n - 1;
        double* root_t = time_.data() + root * block;
        if (t != nullptr) {
            for (std::size_t j = 0; j < m; ++j) root_t[j] = t[j] >= 0.0 ? t[j] : 0.0;
        } else {
            const double* iota = steps_0_to_block();  // static_cast<double>(j), in a table: a vector add
            for (std::size_t j = 0; j < m; ++j) root_t[j] = t0 + iota[j];
        }
        // Node states: any_ (some step of the block reads the node), full_ (every step does: its mask
        // is not written), uni_ (a join whose steps all select one child: that child's index).
        any_[root] = 1;
        full_[root] = 1;
        // Pass 1, root first: each active node's children get their local times and masks.
        for (std::uint32_t i = n; i-- > 0;) {
            if (!any_[i]) continue;
            const node& nd = prog.nodes[i];
            if (nd.n_children == 0) continue;
            const double* ti = time_.data() + i * block;
            const bool full = full_[i] != 0;
            const unsigned char* mi = mask_.data() + i * block;
            const std::uint32_t* ch = prog.children + nd.first_child;
            const bool is_join = nd.op == static_cast<std::uint32_t>(op::join);
            std::uint32_t uni = no_child;
            if (is_join) {
                std::uint32_t* si = sel_.data() + i * block;
                select_block(nd, prog.params, ti, si, m);
                std::uint32_t lo = si[0], hi = si[0];
                for (std::size_t j = 1; j < m; ++j) {
                    lo = si[j] < lo ? si[j] : lo;
                    hi = si[j] > hi ? si[j] : hi;
                }
                if (lo == hi) uni = lo;  // the whole block in one segment (the usual case)
            }
            uni_[i] = uni;
            for (std::uint32_t k = 0; k < nd.n_children; ++k) {
                const std::uint32_t c = ch[k];
                unsigned char* mc = mask_.data() + c * block;
                if (is_join && uni == no_child) {  // several segments: child k where the join selects it
                    const std::uint32_t* si = sel_.data() + i * block;
                    unsigned char any = 0;
                    for (std::size_t j = 0; j < m; ++j) {
                        const unsigned char on = full ? 1 : mi[j];
                        mc[j] = static_cast<unsigned char>(on & (si[j] == k ? 1 : 0));
                        any = static_cast<unsigned char>(any | mc[j]);
                    }
                    any_[c] = any;
                    full_[c] = 0;
                } else if (is_join && k != uni) {  // a segment that no step of the block is in
                    any_[c] = 0;
                } else {  // active wherever this node is
                    any_[c] = 1;
                    full_[c] = full ? 1 : 0;
                    if (!full)
                        for (std::size_t j = 0; j < m; ++j) mc[j] = mi[j];
                }
                if (!any_[c]) continue;  // no step of the block reads this child
                double* tc = time_.data() + c * block;
                child_times(nd, prog.params, k, ti, tc, m);
            }
        }
        // Pass 2, leaves first: values of every node that some step in the block reads. vp_[i] is where
        // node i's values are: its own row, or (a join within one segment, an offset) its child's.
        for (std::uint32_t i = 0; i < n; ++i) vp_[i] = val_.data() + i * block;
        for (std::uint32_t i = 0; i < n; ++i) {
            if (!any_[i]) continue;
            const node& nd = prog.nodes[i];
            const double* p = prog.params + nd.first_param;
            const std::uint32_t* ch = prog.children + nd.first_child;
            const double* ti = time_.data() + i * block;
            double* vi = val_.data() + i * block;
            switch (static_cast<op>(nd.op)) {
                case op::constant: leaf_loop<shape::constant>(p, ti, vi, m); break;
                case op::linear: leaf_loop<shape::linear>(p, ti, vi, m); break;
                case op::cosine: simd::cosine_leaf<Avx2>(p, ti, vi, m); break;
                case op::polynomial: leaf_loop<shape::polynomial>(p, ti, vi, m); break;
                case op::exponential: leaf_loop<shape::exponential>(p, ti, vi, m); break;
                case op::step: leaf_loop<shape::step>(p, ti, vi, m); break;
                case op::piecewise_constant: leaf_loop<shape::piecewise_constant>(p, ti, vi, m); break;
                case op::piecewise_linear: leaf_loop<shape::piecewise_linear>(p, ti, vi, m); break;
                case op::cyclic: leaf_loop<shape::cyclic>(p, ti, vi, m); break;
                case op::onecycle: leaf_loop<shape::onecycle>(p, ti, vi, m); break;
                case op::warm_restarts: leaf_loop<shape::warm_restarts>(p, ti, vi, m); break;
                case op::inverse_sqrt: leaf_loop<shape::inverse_sqrt>(p, ti, vi, m); break;
                case op::wsd: leaf_loop<shape::wsd>(p, ti, vi, m); break;
                case op::plateau: leaf_loop<shape::plateau>(p, ti, vi, m); break;
                case op::transformers: leaf_loop<shape::transformers>(p, ti, vi, m); break;
                case op::noise: {
                    const double* vc = vp_[ch[0]];
                    for (std::size_t j = 0; j < m; ++j) vi[j] = shape::noise(p, ti[j], vc[j]);
                    break;
                }
                case op::join: {
                    if (uni_[i] != no_child) {  // one segment: its values, not a copy
                        vp_[i] = vp_[ch[uni_[i]]];
                    } else {
                        const std::uint32_t* si = sel_.data() + i * block;
                        for (std::size_t j = 0; j < m; ++j) vi[j] = vp_[ch[si[j]]][j];
                    }
                    break;
                }
                case op::product: {
                    const double* v0 = vp_[ch[0]];
                    for (std::size_t j = 0; j < m; ++j) vi[j] = v0[j];
                    for (std::uint32_t k = 1; k < nd.n_children; ++k) {
                        const double* vk = vp_[ch[k]];
                        for (std::size_t j = 0; j < m; ++j) vi[j] = vi[j] * vk[j];
                    }
                    break;
                }
                case op::scale: {
                    const double* vc = vp_[ch[0]];
                    for (std::size_t j = 0; j < m; ++j) vi[j] = p[0] * vc[j];
                    break;
                }
                case op::offset: vp_[i] = vp_[ch[0]]; break;
            }
        }
        const double* vr = vp_[root];
        for (std::size_t j = 0; j < m; ++j) out[j] = static_cast<Out>(vr[j]);
    }
};

}  // namespace sched
}  // namespace fastlr
