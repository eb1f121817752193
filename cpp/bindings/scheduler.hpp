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
#include <functional>
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
    scheduled_lr = 17,  // fastlr.lr_scheduler.ScheduledLR (sched_scheduled.cpp)
    last_ = scheduled_lr,
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
    void reset(PyObject* p = nullptr) {
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
    PyObject* pack_groups;        // fastlr._tensor_lrs.pack_groups
    PyObject* describe;           // fastlr._tensor_lrs.describe
    PyObject* get_last_lr;        // torch.optim.lr_scheduler.LRScheduler.get_last_lr
    Py_ssize_t capture_offset;    // fastlr's LRScheduler `_fastlr_capture` slot
    PyObject* device_apply;       // fastlr._tensor_lrs.device_apply
};
extern refs_t refs;

/// C++ view of a Python `fastlr._tensor_lrs.Packed` (read once, when groups are packed): which groups
/// hold their value under one key as an element of a packed buffer, and where the buffers live.
struct packed_view {
    struct buffer {
        void* data = nullptr;      // float32 or float64 elements
        bool f64 = false;
        bool cpu = true;           // CPU memory the engine writes directly; else a device executor runs
        double* shadow = nullptr;  // float64 shadow of a float32 buffer (same device), or null
        void* snap = nullptr;      // this engine's snapshot: the values at its last step (get_last_lr())
        PyObject* snap_py = nullptr;  // the snapshot tensor (borrowed from `snaps`)
        std::int64_t n = 0;
        PyObject* py = nullptr;    // the Python Buffer (borrowed from owner)
    };
    ref owner;                        // the Python Packed object (shared by the optimizer's schedulers)
    ref snaps;                        // this engine's snapshot tensors, one per buffer
    std::vector<int> buf;             // per group: buffer index, -1 (a Python float), -2 (foreign tensor)
    std::vector<std::int64_t> off;    // per group: element in its buffer
    std::vector<PyObject*> tensor;    // per group: the packed tensor object (borrowed from owner)
    std::vector<buffer> bufs;
    bool foreign = false;             // a group holds a tensor another optimizer packed: torch's code steps
    bool aliased = false;             // two groups hold one tensor (one element)
    bool all_cpu = false;             // every group is packed, in a CPU buffer
    bool identity = false;            // and in one buffer, group i at element i
};


// What the fast path relies on in CPython's objects, decided at build time:
// - FASTLR_GROUP_MEMO: the group memo can learn, without a lookup, that a group dict is unchanged since
//   the last step. How (FASTLR_MEMO_WATCH):
//   - 0, CPython <= 3.11: the dict's PEP 509 version tag (`ma_version_tag`), changed by every assignment;
//   - 1, CPython >= 3.12: the public dict-watcher API (PyDict_AddWatcher/PyDict_Watch). The tag is
//     deprecated there and gone in 3.14 (PEP 699); a watched dict's every modification calls fastlr's
//     watcher, which gives the dict a new stamp (dict_cell). One code path for 3.12, 3.13 and 3.14.
//   Without it (free-threaded builds, FASTLR_FORCE_PY314_PATH on CPython <= 3.11) every step looks
//   the keys up; at run time the memo is also off where no watcher id is free, or with the
//   environment variable FASTLR_GROUP_MEMO=0 (group_memo_enabled).
// - FASTLR_TUPLE_IN_PLACE: a betas tuple only its group holds may have beta1 rewritten in place (CPython
//   3.14 caches a tuple's hash, gh-131529, which a rewrite would leave stale).
// The CMake option FASTLR_AS_PY314=ON (defines FASTLR_FORCE_PY314_PATH) builds CPython 3.14's rules on
// an older Python (no version tags, no tuple rewritten in place), so the whole test suite runs them
// where 3.14 is not installed. The free-threaded build has neither (reference counts prove no
// exclusivity there).
#if defined(Py_GIL_DISABLED) || PY_VERSION_HEX >= 0x030E0000 || defined(FASTLR_FORCE_PY314_PATH)
#define FASTLR_TUPLE_IN_PLACE 0
#else
#define FASTLR_TUPLE_IN_PLACE 1
#endif

#if defined(Py_GIL_DISABLED)
#define FASTLR_GROUP_MEMO 0
#define FASTLR_MEMO_WATCH 0
#elif PY_VERSION_HEX >= 0x030C0000
#define FASTLR_GROUP_MEMO 1
#define FASTLR_MEMO_WATCH 1
#elif defined(FASTLR_FORCE_PY314_PATH)
#define FASTLR_GROUP_MEMO 0
#define FASTLR_MEMO_WATCH 0
#else
#define FASTLR_GROUP_MEMO 1
#define FASTLR_MEMO_WATCH 0
#endif

/// Whether memo_for hands out the group memo (set at import: false where no dict watcher could be
/// registered, or FASTLR_GROUP_MEMO=0; tests switch it through _core._group_memo).
extern bool group_memo_enabled;
/// Switch the memo on (registering the dict watcher where that is how it works) or off; returns
/// whether it is on now.
bool set_group_memo(bool wanted);
/// At import: on unless FASTLR_GROUP_MEMO=0 is set in the environment.
void init_group_memo();

#if FASTLR_MEMO_WATCH
/// A watched dict's stamp (CPython >= 3.12): fastlr's dict watcher sets `version` to a new value of one
/// interpreter-wide clock whenever the dict is modified, and when it is deallocated (the cell then goes
/// back to a free list, for another dict). Cells are never freed, so a memo entry's pointer to one is
/// always readable; since the clock never repeats, a stamp once seen is never seen again.
struct dict_cell {
    PyObject* dict;        // the dict (identity only), or null while the cell is free
    std::uint64_t version;
    dict_cell* next_free;
};
/// The cell of dict `d`, watching it first if needed; null (no exception set) if it cannot be watched.
dict_cell* watch_dict(PyObject* d);
#endif

/// What a group dict held at a scheduler's last step: its lr and momentum float objects and the
/// values of its operand keys (OneCycleLR's start/end keys). While the dict's stamp is the one
/// recorded, no key of it has been assigned, so all of these still hold: a step reuses them instead
/// of looking the keys up again. Stamps are unique over the whole interpreter, so a different dict
/// at the same address never matches. Off where FASTLR_GROUP_MEMO is 0.
struct group_memo {
    PyObject* dict = nullptr;  // borrowed: identity only
    std::uint64_t version = 0;
#if FASTLR_MEMO_WATCH
    dict_cell* cell = nullptr;  // the dict's cell (set whenever `dict` is)
#endif
    PyObject* lr = nullptr;   // borrowed: the dict holds it while the version is unchanged
    PyObject* mom = nullptr;  // likewise (null when momentum is not cycled)
    double x = 0.0, y = 0.0, mx = 0.0, my = 0.0;  // operand values read from the group's keys
    // Tensor executor entries: x..my came from Python floats (a 0-d tensor operand is read again on
    // every step: its value can change in place without the dict knowing).
    bool keys = false;
};

#if FASTLR_GROUP_MEMO && !FASTLR_MEMO_WATCH
/// A dict's PEP 509 version tag: changes whenever any key is assigned or deleted.
inline std::uint64_t dict_version(PyObject* d) {
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    return reinterpret_cast<PyDictObject*>(d)->ma_version_tag;
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}
#endif

#if FASTLR_GROUP_MEMO
/// Whether memo entry `e` still describes group dict `g`: the same dict, with no key assigned since.
inline bool memo_fresh(const group_memo& e, PyObject* g) {
#if FASTLR_MEMO_WATCH
    return e.dict == g && e.cell->version == e.version;
#else
    // (g may be any object now at the recorded dict's address: read a tag only from a dict.)
    return e.dict == g && PyDict_CheckExact(g) && dict_version(g) == e.version;
#endif
}

/// Make `e` describe `g` as it is now (the caller fills in what it holds). Where `g` cannot be watched
/// the entry stays empty (`dict` null): the group is looked up on every step.
inline void memo_stamp(group_memo& e, PyObject* g) {
#if FASTLR_MEMO_WATCH
    dict_cell* c = e.cell && e.cell->dict == g ? e.cell : watch_dict(g);
    if (!c) {
        e.dict = nullptr;
        return;
    }
    e.cell = c;
    e.version = c->version;
#else
    e.version = dict_version(g);
#endif
    e.dict = g;
}
#endif

/// Whether an optimizer's param groups still hold what they held when it was taken: the same list
/// object and length, the same group dicts, and under each watched key the same object (capturable
/// mode's check, on every step, that its packed view is not stale). A group dict with no key assigned
/// since is known unchanged from its stamp (one load); others are looked up.
class GroupWatch {
  public:
    GroupWatch(PyObject* groups, std::vector<PyObject*> keys);
    ~GroupWatch();
    GroupWatch(const GroupWatch&) = delete;
    GroupWatch& operator=(const GroupWatch&) = delete;
    void take(PyObject* groups);  // watch `groups` as they are now
    bool unchanged(PyObject* groups) const;

  private:
    void clear();
    std::vector<PyObject*> keys_;   // interned keys (immortal or held by the module)
    PyObject* list_ = nullptr;      // owned
    Py_ssize_t n_ = 0;
    std::vector<PyObject*> held_;   // per group: the dict, then each key's value (owned; may be null)
    std::vector<group_memo> entries_;
};

/// The stamp memo_fresh compares for dict `d` (watching it first where needed), or false where the
/// memo cannot follow it. For tests (_core._dict_stamp).
bool dict_stamp(PyObject* d, std::uint64_t& out);

/// The per-scheduler object in the `_fastlr_engine` slot: the kind, reusable scratch arrays
/// (struct-of-arrays over groups), and per-kind caches. A step allocates nothing but the Python
/// objects it stores once the arrays have grown to the group count.
struct Engine {
    PyObject_HEAD
    int kind;
    bool busy;  // a user callable is running inside this engine's step: re-entrant calls fall back
    bool capturable;  // step() runs the Python capturable step (fastlr/_capturable.py)
    PyObject* dict;               // the instance dict of the current call (owned; set by engine_of)
    unsigned int type_tag;        // the class's tp_version_tag when `kind` was last decided
    Py_ssize_t dict_size;         // and the instance dict's size then (an attribute added may be a hook)
    // A 0-d tensor operand was read during this call for the lr side (base_lrs, max_lrs, a group key
    // such as swa_lr or max_lr) or the momentum side (base/max momentum bounds). torch's arithmetic
    // then yields tensors, which it assigns into groups holding Python floats (that lr or momentum
    // becomes a tensor): a step that would write a Python float there is left to torch.
    bool tensor_operand;
    bool tensor_operand_mom;
    // The same per group: tgen[2 i] (lr side) and tgen[2 i + 1] (momentum side) hold the `call` in
    // which a tensor operand was read for group i (`call` advances on every call).
    unsigned call;
    std::vector<unsigned>* tgen;
    unsigned long long handled;   // calls done here
    unsigned long long deferred;  // calls left to torch's Python code
    std::vector<double>* x;
    std::vector<double>* y;
    std::vector<double>* mx;
    std::vector<double>* my;
    std::vector<double>* out;
    std::vector<double>* v1;             // tensor executor: the lr side's values
    std::vector<double>* v2;             // tensor executor: the momentum side's values
    std::vector<std::uint8_t>* holders;  // tensor executor: how each group holds lr / momentum (2n)
    std::vector<PyObject*>* objs;  // owned per-group values that need Python arithmetic
    struct tensor_ref {
        PyObject* obj = nullptr;        // the element (owned, so its address cannot be reused)
        const void* ptr = nullptr;      // CPU memory of its value
        std::uint8_t code = 0;          // 0 float32 CPU, 1 float64 CPU, 2/3 float64/float32 value read once
        double value = 0.0;
    };
    /// Per key (a list attribute such as base_lrs, or a group key such as max_momentum) and position.
    std::vector<std::pair<PyObject*, std::vector<tensor_ref>>>* tcache;
    /// gather_list's last list of Python floats per key: the float objects (owned, so none of them can
    /// be freed and another made at its address) and their values. A list holding exactly these
    /// objects again holds these values (floats are immutable; the engine only ever rewrites a float
    /// in place that nothing but its group and `_last_lr` hold): one pointer comparison, no reads.
    struct float_list {
        std::vector<PyObject*> items;
        std::vector<double> values;
    };
    std::vector<std::pair<PyObject*, float_list>>* fcache;
    // CyclicLR: the last `_scale_fn_ref` seen and what it decoded to.
    PyObject* scale_ref;
    int scale_kind;
    pynum scale_gamma;
    // Tensor values (sched_tensor.cpp): packed lrs, packed momentum/beta1, and the `_last_lr` of the
    // last tensor step, materialised on demand (floats in `last_pending`, None for packed groups).
    packed_view* plr;
    packed_view* pmom;
    PyObject* last_pending;  // Py_None: every group's lr was packed (the list is the snapshots' values)
    PyObject* spare_pending;  // the list before it, reused by the next tensor step (owned; may be null)
    bool last_stale;
    bool last_settled;  // last_pending is a whole list built before the views changed (no None in it)
    /// Per group, what this engine's last step found there (see group_memo): the float paths, the
    /// lambda classes, the fused chain and the tensor executor (its packed tensor); an entry is
    /// valid while the group dict's version is unchanged.
    std::vector<group_memo>* memo;
    PyObject* memo_keys[4];  // the operand keys the memo's values were read under (owned; may be null)
    // ChainedScheduler's fused step (sched_standard.cpp): per member and group, the values and the
    // new floats made before anything is written (null between steps).
    std::vector<double>* chain_vals;
    std::vector<PyObject*>* chain_objs;
    // LambdaLR/MultiplicativeLR with tensor lrs, during a step: per group the operand torch multiplies
    // (owned) and whether the lambda returned an int (its value is in y), so that the values can be made
    // with torch's own arithmetic if the groups changed under the lambdas (empty between steps).
    std::vector<std::pair<PyObject*, bool>>* lam_ops;
    // ScheduledLR: its schedules' programs, copied from the lr _Track the scheduler holds (null until
    // its first step; sched_scheduled.cpp).
    struct scheduled_view* sched;
};

/// ScheduledLR's cached programs (sched_scheduled.cpp): released with the engine.
void free_scheduled_view(struct scheduled_view* v);
/// ScheduledLR's C step(metrics=None, epoch=None) (sched_scheduled.cpp), installed by _install_step
/// with protocol 4.
extern PyMethodDef scheduled_step_def;

/// Whether a tensor operand was read in this call for group i's lr (mom false) or momentum (mom true).
inline bool tensor_operand_at(const Engine* eng, Py_ssize_t i, bool mom) {
    const std::size_t k = 2 * static_cast<std::size_t>(i) + (mom ? 1 : 0);
    return k < eng->tgen->size() && (*eng->tgen)[k] == eng->call;
}

/// Grow the scratch arrays to n (never shrinks). False with MemoryError set on failure.
bool fit(Engine* e, std::size_t n);

// Readers: false means "outside what the fast path reproduces" (no Python error left set).
bool to_num(PyObject* o, pynum& out);                    // exact int (int64), bool, exact float
bool to_counter(PyObject* o, std::int64_t& out);         // exact int within +-2**53
bool dict_num(PyObject* d, PyObject* key, pynum& out);   // d[key] as to_num
bool dict_float(PyObject* d, PyObject* key, double& out);  // d[key] exact float
PyObject* from_num(pynum v);                             // new reference: int or float as Python holds it
/// Value `o` at position i of a list (or group i's value) under `key`: a Python float, or a 0-d float
/// tensor read through the engine's cache (see gather_list).
bool value_of(Engine* eng, PyObject* key, Py_ssize_t i, PyObject* o, double& out);
/// Group g's value under `key` (value_of on g[key]).
bool group_value(Engine* eng, PyObject* g, PyObject* key, Py_ssize_t i, double& out);
/// Whether d[key] is Py_True / Py_False; false if absent or any other object.
bool dict_bool(PyObject* d, PyObject* key, bool& out);
/// d[key], a list of n values, into out: Python floats, or 0-d float tensors (base_lrs with tensor lrs).
/// A tensor element is described once (cached on the engine while it is the same object): a CPU tensor
/// is read from its memory on every call; another device's value is read once, when first met (an
/// in-place edit of such a tensor is not seen; replacing the element or the list is).
bool gather_list(Engine* eng, PyObject* d, PyObject* key, Py_ssize_t n, double* out);

/// The instance dict and the optimizer's group list of a scheduler.
struct frame {
    ref dict;
    ref groups;
    Py_ssize_t n = 0;
    PyObject* self = nullptr;  // the scheduler (borrowed: the caller holds it for the call)
};
/// Open `frame` for `self` (the instance dict engine_of fetched for this call, when `eng` is given).
fast open_groups(PyObject* self, frame& f, Engine* eng = nullptr);
/// A new `_last_lr` list: the groups' current lr objects (tensors cloned by torch's helper if any).
PyObject* current_lrs(PyObject* optimizer, PyObject* groups, Py_ssize_t n);
/// The Engine in a fastlr scheduler's `_fastlr_engine` slot (borrowed), or null (none yet, or not fastlr's).
Engine* engine_in_slot(PyObject* obj);
/// member.get_last_lr() (new reference), read from the member's __dict__ where that is what it returns.
PyObject* last_lr_of(PyObject* member);
/// Ensure `_get_lr_called_within_step` is `value` (torch's context manager leaves it False).
bool set_within_step(PyObject* d, PyObject* value);

/// The instance dict of a composite (SequentialLR, ChainedScheduler) while it steps a member from C,
/// else null (set by `lend_last_lr`). Right after the member's step the composite replaces its own
/// `_last_lr` (SequentialLR: with the member's list; ChainedScheduler: with the groups' lrs), so the
/// member may count the composite's references to its list and floats as its own.
extern PyObject* lent_composite;

/// Sets `lent_composite` for a scope (restoring the previous one: composites nest).
struct lend_last_lr {
    PyObject* saved;
    explicit lend_last_lr(PyObject* composite_dict) : saved(lent_composite) { lent_composite = composite_dict; }
    ~lend_last_lr() { lent_composite = saved; }
    lend_last_lr(const lend_last_lr&) = delete;
    lend_last_lr& operator=(const lend_last_lr&) = delete;
};

/// Who holds a scheduler's previous `_last_lr` (`prev`, read from its dict) and the floats in it,
/// decided once per step before any write (no Python runs between this and the writes):
/// - `in_place`: nothing but the scheduler's dict (and a lending composite's dict, for SequentialLR,
///   which shares the list) holds `prev`, so it may be updated in place;
/// - `co`: a lending composite's own list (ChainedScheduler), held by nothing but the composite's
///   dict; its references to the groups' floats count as the scheduler's (`extra`).
struct last_lr_holders {
    bool in_place = false;
    PyObject* co = nullptr;
    Py_ssize_t n = 0;
    /// 1 if the composite's list holds `v` at i (one more reference that is known), else 0.
    Py_ssize_t extra(PyObject* v, Py_ssize_t i) const {
        return co && i < n && PyList_GET_ITEM(co, i) == v ? 1 : 0;
    }
};
last_lr_holders holders_of(PyObject* prev, Py_ssize_t n);

/// Where a single-pass step finds its per-group operands.
struct operands {
    const double* x = nullptr;  // null: x is the group's current lr
    const double* y = nullptr;  // or:
    PyObject* y_key = nullptr;  // y is group[y_key] (an exact float)
};

/// One pass over the groups: read each exact-float lr, evaluate `u`, store the new float in the group
/// and in `last`. On `fallback` nothing has changed (sched_standard.cpp). `h.in_place`: `last` is
/// the previous `_last_lr`, updated in place (else a new list of n). `memo` (may be null): the
/// engine's group memo for this plan (see group_memo).
fast write_single(Engine* eng, PyObject* groups, Py_ssize_t n, const update& u, const operands& src, PyObject* last,
                  const last_lr_holders& h, group_memo* memo);

/// One side of a step (the lr, or momentum/beta1): the per-group expression and where its operands
/// come from. x is the group's current value unless `x` (an array in group order) or `x_key` (a group
/// key) is set; y is read from `y` or `y_key` when the op reads it.
struct side {
    update u;
    const double* x = nullptr;
    PyObject* x_key = nullptr;
    const double* y = nullptr;
    PyObject* y_key = nullptr;
    bool x_current() const { return !x && !x_key; }
};

/// A whole step: the lr side, and optionally the momentum side (written to group["momentum"], or as
/// beta1 of group["betas"]).
struct plan {
    side lr;
    bool momentum = false;
    side mom;
    bool beta1 = false;
};

/// The engine's group memo (see group_memo), sized to n groups, for a step of plan `p`; null where dict
/// versions are not available or the memo cannot grow. A plan that reads other operand keys than
/// those the memo was filled under (OneCycleLR's next phase) clears it. The tensor executor uses the
/// same memo (its entries hold the packed tensor; the float paths only take entries holding floats).
group_memo* memo_for(Engine* eng, const plan& p, Py_ssize_t n);

/// Run `p` over the groups of `f`, whatever holds the values (Python floats, packed tensors), and
/// produce the new `_last_lr` in `last` -- or leave `last` empty after a tensor step, whose list is
/// materialised on demand (the engine is marked stale). Nothing is written on `fallback`.
fast execute(Engine* eng, frame& f, const plan& p, ref& last);

/// After a tensor step: `_last_lr` awaits its list, `pending` (the floats of Python-float groups,
/// None for packed ones; owned) or, when null, every lr was packed (the list is the snapshots'
/// values). The list before is kept for reuse by the next step.
void set_pending_last_lr(Engine* eng, PyObject* pending);
/// `_last_lr` was stored in the instance dict: nothing is pending any more.
inline void clear_pending_last_lr(Engine* eng) {
    eng->last_stale = false;
    eng->last_settled = false;
    Py_CLEAR(eng->last_pending);
}

/// The tensor executor behind `execute` (sched_tensor.cpp), and the packing of the groups' tensors.
fast execute_tensors(Engine* eng, frame& f, const plan& p);
/// Pack the groups' 0-d float tensors (lr, and momentum/beta1 if `momentum`); false if there is none.
/// May run Python (torch ops); returns fast::error with an exception set on failure.
fast pack(Engine* eng, frame& f, bool momentum, bool beta1, bool& packed_any);
/// ReduceLROnPlateau's reducing step on lrs packed in CPU memory, in two parts (the caller commits its
/// counters in between, with no Python run): `packed_reduce_prepare` checks that every group holds its
/// packed lr tensor (packing the groups if needed) and asks `rule(i, old, write, new)` for each group's
/// new value (false: outside the fast path); nothing is written (`fallback`: not this path).
/// `packed_reduce_apply` writes the values and the snapshots, and leaves `_last_lr` to be built.
fast packed_reduce_prepare(Engine* eng, frame& f, const std::function<bool(Py_ssize_t, double, bool&, double&)>& rule);
void packed_reduce_apply(Engine* eng, Py_ssize_t n);
/// Whether every group holds its lr as a Python float or as its registered packed tensor (`any_float`,
/// when given, is set if some group holds a float).
bool tensor_groups_ok(Engine* eng, const frame& f, bool* any_float = nullptr);
/// Group i's lr now, when `t` is group i's packed lr tensor in CPU memory (the exact float64 value behind
/// a float32 one, as a step reads it); false otherwise.
bool packed_lr_value(Engine* eng, Py_ssize_t i, PyObject* t, double& out);
/// Engine.take_last_lr(): the `_last_lr` list of the last tensor step (new reference).
PyObject* take_last_lr(Engine* eng);
/// Drop the engine's packed views (the groups' tensors stay where they are).
void unpack(Engine* eng);
/// Before the views change (packing again): a pending `_last_lr` is built from the views it belongs to.
bool settle_pending_last_lr(Engine* eng);

// The protocols (sched_standard.cpp, sched_events.cpp).
fast standard_update(Engine* eng, PyObject* self, bool from_step, PyObject* epoch);
/// ChainedScheduler.step() fused (`eng` and `d`: the composite's): when every member is a decay or
/// CosineAnnealingLR stepping the same float param groups through fastlr's C step, all members'
/// updates are applied in one pass over the groups, each member's `_last_lr` gets its own
/// intermediate values, and the counters are committed member by member. `fallback`: nothing changed.
fast chained_fused(Engine* eng, PyObject* d, PyObject* scheds);
/// engine_of() for a call made from C (not through step()); release it with release_call().
Engine* engine_for_call(PyObject* self);
void release_call(Engine* eng);
/// Whether obj's class steps through fastlr's C step() (no subclass overrides it).
bool has_c_step(PyObject* obj);
fast cawr_step(Engine* eng, PyObject* self, PyObject* epoch);
fast plateau_step(Engine* eng, PyObject* self, PyObject* metrics);
fast sequential_step(Engine* eng, PyObject* self);
/// seek(): k plain steps replayed in C++ (decays, CosineAnnealingLR, SWALR with float lrs; and
/// CosineAnnealingWarmRestarts' counters). `done` counts the steps done and committed; fewer than k
/// means the next one must run through step() (torch raises there, or values are unusual).
fast replay_standard(Engine* eng, PyObject* self, std::int64_t k, std::int64_t& done);
fast replay_warm_restarts(Engine* eng, PyObject* self, std::int64_t k, std::int64_t& done);
fast chained_step(Engine* eng, PyObject* self);

}  // namespace fastlr_py
