// Internals shared by the drop-in schedulers' fast path (register_scheduler.cpp, sched_*.cpp).
//
// Contract with python/fastlr/lr_scheduler.py:
// - Scheduler state stays where torch keeps it, in the instance __dict__, and is read on every call, so
//   user edits, load_state_dict() and torch's own code paths always see and produce one state.
// - A fast path either completes the call exactly as torch's Python would, or returns `fallback`
//   having changed nothing; then torch's own code runs it (odd types, tensor lrs, and every case where
//   Python raises: the exception is torch's own).
// - Python callables (LambdaLR, MultiplicativeLR) are called exactly when and as torch calls them.
// - No Python code runs between reading the state and committing it (allocations that may trigger
//   the cyclic GC happen before the groups are read), except the user's callables, after which
//   everything read is re-checked.
#pragma once

#include "pybind11.hpp"

#include <fastlr/pymath.hpp>
#include <fastlr/update.hpp>

#include <cstdint>
#include <vector>

namespace fastlr_py {

using fastlr::errc;
using fastlr::pynum;
using fastlr::update;

/// Which torch class an Engine steps. Numbers are part of the Python side's contract (lr_scheduler.py).
enum class kind : int {
    none = 0,
    lambda_lr = 1,
    multiplicative_lr = 2,
    step_lr = 3,
    multistep_lr = 4,
    constant_lr = 5,
    linear_lr = 6,
    exponential_lr = 7,
    polynomial_lr = 8,
    cosine_annealing_lr = 9,
    cyclic_lr = 10,
    one_cycle_lr = 11,
    cosine_warm_restarts = 12,
    reduce_on_plateau = 13,
    sequential_lr = 14,
    chained_scheduler = 15,
    swalr = 16,
    last_ = swalr,
};

enum class fast {
    handled,    // done, exactly as torch would have done it
    fallback,   // nothing changed; torch's Python code must do this call
    via_torch,  // nothing changed; torch's step() must run first (its warnings), then _update_lr returns here
    error,      // a Python exception is set (raised where torch raises at the same point)
};

/// Owning reference (Py_XDECREF on scope exit).
class ref {
  public:
    ref() = default;
    explicit ref(PyObject* p) : p_(p) {}
    ref(const ref&) = delete;
    ref& operator=(const ref&) = delete;
    ~ref() { Py_XDECREF(p_); }
    PyObject* get() const { return p_; }
    PyObject* release() {
        PyObject* p = p_;
        p_ = nullptr;
        return p;
    }
    void reset(PyObject* p) {
        PyObject* old = p_;
        p_ = p;
        Py_XDECREF(old);
    }
    /// Take a new reference to a borrowed object.
    static PyObject* incref(PyObject* p) {
        Py_XINCREF(p);
        return p;
    }
    explicit operator bool() const { return p_ != nullptr; }

  private:
    PyObject* p_ = nullptr;
};

/// Interned attribute and key names, created once at import.
struct names_t {
    PyObject *lr, *last_epoch, *step_count, *is_initial, *within_step, *last_lr, *optimizer, *param_groups,
        *base_lrs, *lr_lambdas, *gamma, *step_size, *milestones, *factor, *total_iters, *start_factor,
        *end_factor, *power, *T_max, *eta_min, *step, *epoch, *update_lr, *get_last_lr, *max_lrs, *total_size,
        *step_ratio, *scale_fn_ref, *scale_fn_custom, *scale_mode, *cycle, *cycle_momentum, *use_beta1,
        *base_momentums, *max_momentums, *betas, *momentum, *total_steps, *schedule_phases, *anneal_func_type,
        *end_step, *start_lr, *end_lr, *start_momentum, *end_momentum, *cos, *linear, *T_0, *T_i, *T_mult,
        *T_cur, *swa_lr, *anneal_epochs, *anneal_func, *best, *num_bad_epochs, *cooldown_counter, *patience,
        *cooldown, *threshold, *threshold_mode, *mode, *min_lrs, *eps, *min, *max, *rel, *abs, *schedulers,
        *milestones_priv, *func, *args, *keywords;
};
extern names_t names;

/// Python objects the fast path compares against, set by _install().
struct refs_t {
    PyTypeObject* base_type;      // fastlr.lr_scheduler.LRScheduler
    Py_ssize_t engine_offset;     // its `_fastlr_engine` slot
    PyObject* counter_type;       // collections.Counter
    PyObject* partial_type;       // functools.partial
    PyObject* update_group;       // torch.optim.lr_scheduler._update_param_group_val
    PyObject* val_list;           // torch.optim.lr_scheduler._param_groups_val_list
    PyObject* triangular;         // CyclicLR._triangular_scale_fn (the plain function)
    PyObject* triangular2;        // CyclicLR._triangular2_scale_fn
    PyObject* exp_range;          // CyclicLR._exp_range_scale_fn
    PyObject* swa_cos;            // SWALR._cosine_anneal
    PyObject* swa_linear;         // SWALR._linear_anneal
};
extern refs_t refs;

/// The per-scheduler object in the `_fastlr_engine` slot: the kind, reusable scratch arrays
/// (struct-of-arrays over groups), and per-kind caches. A step allocates nothing but the Python
/// objects it stores once the arrays have grown to the group count.
struct Engine {
    PyObject_HEAD
    int kind;
    bool busy;  // a user callable is running inside this engine's step: re-entrant calls fall back
    unsigned long long handled;   // calls done here
    unsigned long long deferred;  // calls left to torch's Python code
    std::vector<double>* x;
    std::vector<double>* y;
    std::vector<double>* mx;
    std::vector<double>* my;
    std::vector<double>* out;
    std::vector<PyObject*>* objs;  // owned per-group values that need Python arithmetic
    // CyclicLR: the last `_scale_fn_ref` seen and what it decoded to.
    PyObject* scale_ref;
    int scale_kind;
    pynum scale_gamma;
};

/// Grow the scratch arrays to n (never shrinks). False with MemoryError set on failure.
bool fit(Engine* e, std::size_t n);

// Readers: false means "outside what the fast path reproduces" (no Python error left set).
bool to_num(PyObject* o, pynum& out);                    // exact int (int64), bool, exact float
bool to_counter(PyObject* o, std::int64_t& out);         // exact int within +-2**53
bool dict_num(PyObject* d, PyObject* key, pynum& out);   // d[key] as to_num
bool dict_float(PyObject* d, PyObject* key, double& out);  // d[key] exact float
PyObject* from_num(pynum v);                             // new reference: int or float as Python holds it
/// Whether d[key] is Py_True / Py_False; false if absent or any other object.
bool dict_bool(PyObject* d, PyObject* key, bool& out);
/// A list of n exact floats (d[key]) into out.
bool gather_list(PyObject* d, PyObject* key, Py_ssize_t n, double* out);

/// The instance dict and the optimizer's group list of a scheduler.
struct frame {
    ref dict;
    ref groups;
    Py_ssize_t n = 0;
};
/// Open `frame` for `self`, with `optimizer_owner` the dict holding "optimizer" (the scheduler's).
fast open_groups(PyObject* self, frame& f);
/// A new `_last_lr` list: the groups' current lr objects (tensors cloned by torch's helper if any).
PyObject* current_lrs(PyObject* optimizer, PyObject* groups, Py_ssize_t n);
/// Ensure `_get_lr_called_within_step` is `value` (torch's context manager leaves it False).
bool set_within_step(PyObject* d, PyObject* value);

/// Where a single-pass step finds its per-group operands.
struct operands {
    const double* x = nullptr;  // null: x is the group's current lr
    const double* y = nullptr;  // or:
    PyObject* y_key = nullptr;  // y is group[y_key] (an exact float)
};

/// One pass over the groups: read each exact-float lr, evaluate `u`, store the new float in the group
/// and in `last` (a new list of n). On `fallback` nothing has changed (sched_standard.cpp).
fast write_single(Engine* eng, PyObject* groups, Py_ssize_t n, const update& u, const operands& src, PyObject* last);

// The protocols (sched_standard.cpp, sched_events.cpp).
fast standard_update(Engine* eng, PyObject* self, bool from_step, PyObject* epoch);
fast cawr_step(Engine* eng, PyObject* self, PyObject* epoch);
fast plateau_step(Engine* eng, PyObject* self, PyObject* metrics);
fast sequential_step(Engine* eng, PyObject* self);
fast chained_step(Engine* eng, PyObject* self);

}  // namespace fastlr_py
