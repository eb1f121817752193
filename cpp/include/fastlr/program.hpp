// Schedule programs: a composite schedule (a tree of shapes and combinators) as a flat, serialisable
// array of nodes, evaluated by one FASTLR_HD function on the host and, over the same header, in the
// CUDA kernels.
//
// Layout (everything is plain data; a program can be copied to the device as three arrays):
//
//   node      {op, first_param, n_params, first_child, n_children, reserved}   six uint32 (24 bytes)
//   params    double[]   each node's parameters, params[first_param .. first_param + n_params)
//   children  uint32[]   each node's child indices, children[first_child .. first_child + n_children)
//
// Nodes are in post-order: every child index is smaller than its parent's, and the root is the last
// node. Each node except the root is the child of exactly one node (a tree: the Python layer copies
// a sub-schedule that appears twice). Evaluation at a step t takes two passes over the array:
//
//   1. root first (descending index): each active node gives each child its local time (a join
//      shifts and selects, an offset shifts; the others pass t on) and marks the children it reads;
//   2. leaves first (ascending index): each active node computes its value from its parameters, its
//      local time and its children's values.
//
// No recursion, no allocation and no exceptions in the device function `eval`; scratch is two fixed
// arrays of max_nodes entries. `validate` (host only) checks a program once, when it is built, so
// that evaluation can trust it: indices in range, a well-formed tree, parameter counts and values.
// The host also has `block_evaluator` (program_host.hpp), which evaluates the same node functions
// for a block of steps with the loop over steps innermost, for tables of values.
//
// Host and device agreement: compile device code with `--fmad=false` (the host builds with
// -ffp-contract=off). Then cos(pi x) (hd::cos_pi, no libm), sqrt and fmod give the same bits on
// both; shapes that call pow/log/exp/tanh (polynomial with power != 1, exponential, step,
// k_decay != 1, a cosine exponent != 1, warm restarts with t_mult != 1 or the tanh shape, WSD's
// exponential and power decays and decaying stable phases, the normal noise) may differ by the
// device libm's last-ulp error.
//
// Plateau nodes hold their current value in params[first_param]; the host state machine rewrites it
// (Program.set_plateau), so a device copy of the params must be refreshed after a metric changes it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "shapes.hpp"

namespace fastlr {
namespace sched {

/// The most nodes a program may have (the device keeps per-node scratch in local memory).
inline constexpr std::uint32_t max_nodes = 64;

/// Node kinds. The numbers are part of the serialised program format (and of python/fastlr/schedules/_base.py, _OP).
enum class op : std::uint32_t {
    constant = 1,            ///< [value]
    linear = 2,              ///< [init, end, T, extrapolate]
    cosine = 3,              ///< [init, end, T, k_decay, cycles, mode (0 clamp, 1 extrapolate, 2 restarts), exponent]
    polynomial = 4,          ///< [init, end, T, power, k_decay]
    exponential = 5,         ///< [init, rate, T, staircase, end, has_end]
    step = 6,                ///< [init, gamma, size]
    piecewise_constant = 7,  ///< [n, b_1..b_n, v_0..v_n]
    piecewise_linear = 8,    ///< [n, t_1..t_n, v_1..v_n]
    cyclic = 9,              ///< [base, max, up, down, mode, gamma]
    onecycle = 10,           ///< [max, total, pct_start, div, final_div, three_phase, linear]
    warm_restarts = 11,      ///< [max, min, T0, t_mult, cycle_decay, cycle_limit, k_decay, shape, lb, ub]
    inverse_sqrt = 12,       ///< [init, timescale]
    wsd = 13,                ///< [init, peak, end, W, S, D, warmup_kind, decay_kind, stable_kind, timescale,
                             ///<  stable_power, decay_power, decay_ratio]
    plateau = 14,            ///< [value]  (written by the host's ReduceLROnPlateau state machine)
    noise = 15,              ///< [pct, std, seed, normal, start, end]; 1 child
    join = 16,               ///< [b_1..b_n]; n + 1 children: child k runs from b_k (b_0 = 0) at t - b_k
    product = 17,            ///< []; >= 1 children, all at t: the product of their values
    scale = 18,              ///< [a]; 1 child: a * v
    offset = 19,             ///< [d]; 1 child at max(t - d, 0)
    transformers = 20,       ///< [variant, W, T, a, b, c, d, e]  (shape::transformers)
};
inline constexpr std::uint32_t op_max = 20;

struct node {
    std::uint32_t op;
    std::uint32_t first_param;
    std::uint32_t n_params;
    std::uint32_t first_child;
    std::uint32_t n_children;
    std::uint32_t reserved;  ///< 0; keeps the struct at 24 bytes, 8-byte aligned
};

/// A view of a program's three arrays (host or device memory).
struct program {
    const node* nodes;
    const std::uint32_t* children;
    const double* params;
    std::uint32_t n_nodes;
};

/// Whether a node kind is a leaf (a shape with no children).
FASTLR_HD inline bool is_leaf(std::uint32_t k) {
    return (k >= 1 && k <= static_cast<std::uint32_t>(op::plateau)) || k == static_cast<std::uint32_t>(op::transformers);
}

/// Value of leaf node kind k with parameters p at local time t.
FASTLR_HD inline double leaf_value(std::uint32_t k, const double* p, double t) {
    switch (static_cast<op>(k)) {
        case op::constant: return shape::constant(p, t);
        case op::linear: return shape::linear(p, t);
        case op::cosine: return shape::cosine(p, t);
        case op::polynomial: return shape::polynomial(p, t);
        case op::exponential: return shape::exponential(p, t);
        case op::step: return shape::step(p, t);
        case op::piecewise_constant: return shape::piecewise_constant(p, t);
        case op::piecewise_linear: return shape::piecewise_linear(p, t);
        case op::cyclic: return shape::cyclic(p, t);
        case op::onecycle: return shape::onecycle(p, t);
        case op::warm_restarts: return shape::warm_restarts(p, t);
        case op::inverse_sqrt: return shape::inverse_sqrt(p, t);
        case op::wsd: return shape::wsd(p, t);
        case op::plateau: return shape::plateau(p, t);
        case op::transformers: return shape::transformers(p, t);
        default: return 0.0;
    }
}

/// The child of a join active at t: the number of boundaries <= t.
FASTLR_HD inline std::uint32_t join_select(const node& nd, const double* params, double t) {
    return shape::count_le(params + nd.first_param, nd.n_params, t);
}

/// Local time of child k of node nd at (the node's) time t: joins start child k at b_k, offsets
/// delay their child; never negative.
FASTLR_HD inline double child_time(const node& nd, const double* params, std::uint32_t k, double t) {
    const double* p = params + nd.first_param;
    if (nd.op == static_cast<std::uint32_t>(op::join)) return k == 0 ? t : hd::max(t - p[k - 1], 0.0);
    if (nd.op == static_cast<std::uint32_t>(op::offset)) return hd::max(t - p[0], 0.0);
    return t;
}

/// Pass 1 of `eval`: which nodes are active at step t, and their local times (arrays of n_nodes
/// entries; n_nodes <= max_nodes). Also tells the host which plateau nodes a metric reaches.
FASTLR_HD inline void activate(const program& prog, double t, double* time, bool* active) {
    const std::uint32_t n = prog.n_nodes;
    for (std::uint32_t i = 0; i < n; ++i) active[i] = false;
    if (n == 0) return;
    const std::uint32_t root = n - 1;
    time[root] = t >= 0.0 ? t : 0.0;
    active[root] = true;
    for (std::uint32_t i = n; i-- > 0;) {
        if (!active[i]) continue;
        const node& nd = prog.nodes[i];
        if (nd.n_children == 0) continue;
        const std::uint32_t* ch = prog.children + nd.first_child;
        if (nd.op == static_cast<std::uint32_t>(op::join)) {
            const std::uint32_t k = join_select(nd, prog.params, time[i]);
            time[ch[k]] = child_time(nd, prog.params, k, time[i]);
            active[ch[k]] = true;
        } else {
            for (std::uint32_t k = 0; k < nd.n_children; ++k) {
                time[ch[k]] = child_time(nd, prog.params, k, time[i]);
                active[ch[k]] = true;
            }
        }
    }
}

/// Evaluate program `prog` at step t (t >= 0). The one entry point for a single step, host or device.
/// A step t < 0 (or NaN) is evaluated as step 0. The program must have passed `validate` (host).
FASTLR_HD inline double eval(const program& prog, double t) {
    double time[max_nodes];
    double val[max_nodes];
    bool active[max_nodes];
    if (prog.n_nodes == 0 || prog.n_nodes > max_nodes) return 0.0;
    const std::uint32_t n = prog.n_nodes;
    // Pass 1, root first: local times and the children each active node reads.
    activate(prog, t, time, active);
    // Pass 2, leaves first: values.
    for (std::uint32_t i = 0; i < n; ++i) {
        if (!active[i]) continue;
        const node& nd = prog.nodes[i];
        const double* p = prog.params + nd.first_param;
        const std::uint32_t* ch = prog.children + nd.first_child;
        switch (static_cast<op>(nd.op)) {
            case op::noise: val[i] = shape::noise(p, time[i], val[ch[0]]); break;
            case op::join: val[i] = val[ch[join_select(nd, prog.params, time[i])]]; break;
            case op::product: {
                double v = val[ch[0]];
                for (std::uint32_t k = 1; k < nd.n_children; ++k) v = v * val[ch[k]];
                val[i] = v;
                break;
            }
            case op::scale: val[i] = p[0] * val[ch[0]]; break;
            case op::offset: val[i] = val[ch[0]]; break;
            default: val[i] = leaf_value(nd.op, p, time[i]); break;
        }
    }
    return val[n - 1];
}

}  // namespace sched
}  // namespace fastlr
