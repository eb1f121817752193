// The drop-in schedulers' hot path: one C call reads the scheduler's attributes and every group's
// lr, evaluates torch's formula for all groups (fastlr/decay.hpp, fastlr/cosine.hpp), and writes the
// new floats back, with the CPython API directly (pybind11's dispatch costs more than a whole step).
//
// Contract with python/fastlr/lr_scheduler.py:
// - Scheduler state stays where torch keeps it, in the instance __dict__, and is read on every call, so
//   user edits, load_state_dict() and torch's own code paths always see and produce one state.
// - The fast path either completes the step exactly as torch's Python would, or returns `fallback`
//   having changed nothing; then torch's own code runs the step (odd types, tensor lrs, and every
//   case where Python raises: the exception is torch's own).
// - Python callables (LambdaLR, MultiplicativeLR) are called exactly when and as torch calls them.
#include "pybind11.hpp"

#include <fastlr/cosine.hpp>
#include <fastlr/decay.hpp>

#include <structmember.h>

#include <cstring>
#include <new>
#include <vector>

#include "register.hpp"

namespace {

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
    last_ = cosine_annealing_lr,
};

bool has_closed_form(kind k) { return k >= kind::step_lr && k <= kind::cosine_annealing_lr; }

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
        Py_XDECREF(p_);
        p_ = p;
    }
    explicit operator bool() const { return p_ != nullptr; }

  private:
    PyObject* p_ = nullptr;
};

// Interned attribute and key names, created once at import.
struct names_t {
    PyObject* lr;
    PyObject* last_epoch;
    PyObject* step_count;
    PyObject* is_initial;
    PyObject* within_step;
    PyObject* last_lr;
    PyObject* optimizer;
    PyObject* param_groups;
    PyObject* base_lrs;
    PyObject* lr_lambdas;
    PyObject* gamma;
    PyObject* step_size;
    PyObject* milestones;
    PyObject* factor;
    PyObject* total_iters;
    PyObject* start_factor;
    PyObject* end_factor;
    PyObject* power;
    PyObject* T_max;
    PyObject* eta_min;
    PyObject* step;
    PyObject* epoch;
} names;

PyObject* intern(const char* s) {
    PyObject* o = PyUnicode_InternFromString(s);
    if (!o) throw py::error_already_set();
    return o;
}

// Installed by _install(): the fastlr.LRScheduler type, the offset of its `_fastlr_engine` slot, and
// torch's helpers for the rare value types the fast path leaves to torch.
PyTypeObject* base_type = nullptr;
Py_ssize_t engine_offset = 0;
PyObject* counter_type = nullptr;        // collections.Counter
PyObject* torch_update_group = nullptr;  // torch.optim.lr_scheduler._update_param_group_val
PyObject* torch_val_list = nullptr;      // torch.optim.lr_scheduler._param_groups_val_list

// ------------------------------------------------------------------------------------------------
// Engine: the per-scheduler object in the `_fastlr_engine` slot. It holds the kind and reusable
// scratch arrays (struct-of-arrays over groups), so a step allocates nothing but the Python floats it
// stores once the arrays have grown to the group count.
struct Engine {
    PyObject_HEAD
    int kind;
    bool busy;  // a user callable is running inside this engine's step: re-entrant calls fall back
    std::vector<double>* lr;
    std::vector<double>* base;
    std::vector<double>* each;
    std::vector<double>* out;
    std::vector<PyObject*>* objs;  // owned per-group values that need Python arithmetic
    unsigned long long handled;    // steps done here
    unsigned long long deferred;   // steps left to torch's Python code
};

PyObject* engine_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
    int k = 0;
    static const char* kwlist[] = {"kind", nullptr};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i:Engine", const_cast<char**>(kwlist), &k)) return nullptr;
    if (k < 0 || k > static_cast<int>(kind::last_)) {
        PyErr_Format(PyExc_ValueError, "unknown scheduler kind %d", k);
        return nullptr;
    }
    auto* self = reinterpret_cast<Engine*>(type->tp_alloc(type, 0));
    if (!self) return nullptr;
    self->kind = k;
    self->busy = false;
    self->handled = 0;
    self->deferred = 0;
    try {
        self->lr = new std::vector<double>();
        self->base = new std::vector<double>();
        self->each = new std::vector<double>();
        self->out = new std::vector<double>();
        self->objs = new std::vector<PyObject*>();
    } catch (const std::bad_alloc&) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return reinterpret_cast<PyObject*>(self);
}

void engine_dealloc(PyObject* o) {
    auto* self = reinterpret_cast<Engine*>(o);
    delete self->lr;
    delete self->base;
    delete self->each;
    delete self->out;
    delete self->objs;
    PyTypeObject* tp = Py_TYPE(o);
    tp->tp_free(o);
    Py_DECREF(tp);
}

PyObject* engine_kind(PyObject* o, void*) { return PyLong_FromLong(reinterpret_cast<Engine*>(o)->kind); }

PyObject* engine_handled(PyObject* o, void*) {
    return PyLong_FromUnsignedLongLong(reinterpret_cast<Engine*>(o)->handled);
}
PyObject* engine_deferred(PyObject* o, void*) {
    return PyLong_FromUnsignedLongLong(reinterpret_cast<Engine*>(o)->deferred);
}

PyGetSetDef engine_getset[] = {
    {"kind", engine_kind, nullptr, "The scheduler kind this engine steps (0: none, Python path only).", nullptr},
    {"handled", engine_handled, nullptr, "Updates computed by the engine.", nullptr},
    {"deferred", engine_deferred, nullptr, "Updates left to torch's Python code (odd types, raising cases).", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot engine_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(engine_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(engine_dealloc)},
    {Py_tp_getset, engine_getset},
    {Py_tp_doc, const_cast<char*>("Engine(kind)\n--\n\nPer-scheduler state of fastlr's C++ fast path.")},
    {0, nullptr},
};

PyType_Spec engine_spec = {"fastlr._core.Engine", sizeof(Engine), 0, Py_TPFLAGS_DEFAULT, engine_slots};
PyTypeObject* engine_type = nullptr;

struct scratch_guard {  // grows the scratch arrays to n once; never shrinks
    static bool fit(Engine* e, std::size_t n) {
        try {
            if (e->lr->size() < n) {
                e->lr->resize(n);
                e->base->resize(n);
                e->each->resize(n);
                e->out->resize(n);
                e->objs->resize(n, nullptr);
            }
        } catch (const std::bad_alloc&) {
            PyErr_NoMemory();
            return false;
        }
        return true;
    }
};

// ------------------------------------------------------------------------------------------------
// Reading attributes. Each returns false when the value is outside what the fast path reproduces
// bit for bit (then torch's code runs instead); no Python error is left set.

/// Exact int (within int64), bool, or exact float.
bool to_num(PyObject* o, pynum& out) {
    if (PyFloat_CheckExact(o)) {
        out = pynum::of_float(PyFloat_AS_DOUBLE(o));
        return true;
    }
    if (PyLong_CheckExact(o) || PyBool_Check(o)) {
        int overflow = 0;
        const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return false;
        }
        out = pynum::of_int(static_cast<std::int64_t>(v));
        return true;
    }
    return false;
}

/// An exact int within +-2**53 (counters and epochs).
bool to_counter(PyObject* o, std::int64_t& out) {
    if (!o || !PyLong_CheckExact(o)) return false;
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return false;
    }
    if (v > fastlr::exact_int_limit || v < -fastlr::exact_int_limit) return false;
    out = static_cast<std::int64_t>(v);
    return true;
}

bool dict_num(PyObject* d, PyObject* key, pynum& out) {
    PyObject* o = PyDict_GetItemWithError(d, key);
    if (!o) {
        PyErr_Clear();
        return false;
    }
    return to_num(o, out);
}

enum class fast {
    handled,    // the step is done
    fallback,   // nothing changed; torch's Python code must do this step
    via_torch,  // nothing changed; torch's step() must run first (its warnings), then _update_lr returns here
    error,      // a Python exception is set (raised where torch raises at the same point)
};

/// Compute the step's update for the non-lambda kinds. `le_obj` is the new last_epoch as a Python int
/// (MultiStepLR looks it up in its Counter).
fast compute_update(kind k, PyObject* d, const fastlr::step_state& st, bool closed, PyObject* le_obj, update& u) {
    errc e = errc::ok;
    switch (k) {
        case kind::step_lr: {
            fastlr::step_lr_params p;
            if (!dict_num(d, names.step_size, p.step_size) || !dict_num(d, names.gamma, p.gamma))
                return fast::fallback;
            e = closed ? fastlr::step_lr_closed(p, st, u) : fastlr::step_lr_chainable(p, st, u);
            break;
        }
        case kind::multistep_lr: {
            fastlr::multistep_lr_params p;
            if (!dict_num(d, names.gamma, p.gamma)) return fast::fallback;
            PyObject* ms = PyDict_GetItemWithError(d, names.milestones);
            if (!ms) {
                PyErr_Clear();
                return fast::fallback;
            }
            // A plain dict or collections.Counter (its __contains__/__getitem__ are dict's for present keys).
            if (!PyDict_CheckExact(ms) && reinterpret_cast<PyObject*>(Py_TYPE(ms)) != counter_type)
                return fast::fallback;
            if (!closed) {
                PyObject* cnt = PyDict_GetItemWithError(ms, le_obj);
                if (!cnt && PyErr_Occurred()) {
                    PyErr_Clear();
                    return fast::fallback;
                }
                pynum count;
                if (cnt && !to_num(cnt, count)) return fast::fallback;
                e = fastlr::multistep_lr_chainable(p, cnt != nullptr, count, u);
            } else {
                // torch calls milestones.elements(): a plain dict has none (AttributeError in torch).
                if (reinterpret_cast<PyObject*>(Py_TYPE(ms)) != counter_type) return fast::fallback;
                // bisect_right(sorted(milestones.elements()), le): the elements <= le, counted.
                std::int64_t passed = 0;
                Py_ssize_t pos = 0;
                PyObject *key, *val;
                while (PyDict_Next(ms, &pos, &key, &val)) {
                    pynum kv, cv;
                    if (!to_num(key, kv) || !to_num(val, cv) || !cv.is_int) return fast::fallback;
                    if (!kv.is_int && kv.d != kv.d) return fast::fallback;  // NaN milestones: sorted() order
                    if (cv.i <= 0) continue;                                 // elements() skips them
                    int c;
                    if (fastlr::py_cmp(kv, st.le(), c) != errc::ok) return fast::fallback;
                    if (c <= 0 && __builtin_add_overflow(passed, cv.i, &passed)) return fast::fallback;
                }
                e = fastlr::multistep_lr_closed(p, passed, u);
            }
            break;
        }
        case kind::constant_lr: {
            fastlr::constant_lr_params p;
            if (!dict_num(d, names.factor, p.factor) || !dict_num(d, names.total_iters, p.total_iters))
                return fast::fallback;
            e = closed ? fastlr::constant_lr_closed(p, st, u) : fastlr::constant_lr_chainable(p, st, u);
            break;
        }
        case kind::linear_lr: {
            fastlr::linear_lr_params p;
            if (!dict_num(d, names.start_factor, p.start_factor) || !dict_num(d, names.end_factor, p.end_factor) ||
                !dict_num(d, names.total_iters, p.total_iters))
                return fast::fallback;
            e = closed ? fastlr::linear_lr_closed(p, st, u) : fastlr::linear_lr_chainable(p, st, u);
            break;
        }
        case kind::exponential_lr: {
            fastlr::exponential_lr_params p;
            if (!dict_num(d, names.gamma, p.gamma)) return fast::fallback;
            e = closed ? fastlr::exponential_lr_closed(p, st, u) : fastlr::exponential_lr_chainable(p, st, u);
            break;
        }
        case kind::polynomial_lr: {
            fastlr::polynomial_lr_params p;
            if (!dict_num(d, names.total_iters, p.total_iters) || !dict_num(d, names.power, p.power))
                return fast::fallback;
            e = closed ? fastlr::polynomial_lr_closed(p, st, u) : fastlr::polynomial_lr_chainable(p, st, u);
            break;
        }
        case kind::cosine_annealing_lr: {
            fastlr::cosine_annealing_lr_params p;
            if (!dict_num(d, names.T_max, p.T_max) || !dict_num(d, names.eta_min, p.eta_min)) return fast::fallback;
            e = closed ? fastlr::cosine_annealing_lr_closed(p, st, u)
                       : fastlr::cosine_annealing_lr_chainable(p, st, u);
            break;
        }
        default:
            return fast::fallback;
    }
    return e == errc::ok ? fast::handled : fast::fallback;
}

/// The groups' lrs as doubles; every group must be an exact dict holding an exact float "lr".
bool gather_lrs(PyObject* groups, Py_ssize_t n, double* lr) {
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* g = PyList_GET_ITEM(groups, i);
        if (!PyDict_CheckExact(g)) return false;
        PyObject* v = PyDict_GetItemWithError(g, names.lr);
        if (!v || !PyFloat_CheckExact(v)) {
            PyErr_Clear();
            return false;
        }
        lr[i] = PyFloat_AS_DOUBLE(v);
    }
    return true;
}

/// `base_lrs` as doubles; it must be an exact list of n exact floats (torch zips it strictly).
bool gather_base(PyObject* d, Py_ssize_t n, double* base) {
    PyObject* bl = PyDict_GetItemWithError(d, names.base_lrs);
    if (!bl || !PyList_CheckExact(bl) || PyList_GET_SIZE(bl) != n) {
        PyErr_Clear();
        return false;
    }
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* v = PyList_GET_ITEM(bl, i);
        if (!PyFloat_CheckExact(v)) return false;
        base[i] = PyFloat_AS_DOUBLE(v);
    }
    return true;
}

/// What every fast step shares: the instance dict, counters and the optimizer's group list.
struct step_frame {
    ref dict;
    ref groups;
    Py_ssize_t n = 0;
    std::int64_t step_count = 0;
    std::int64_t last_epoch = 0;
    bool is_initial = false;
};

fast open_frame(PyObject* self, bool from_step, step_frame& f) {
    f.dict.reset(PyObject_GenericGetDict(self, nullptr));
    if (!f.dict) {
        PyErr_Clear();
        return fast::fallback;
    }
    PyObject* d = f.dict.get();
    if (!to_counter(PyDict_GetItemWithError(d, names.step_count), f.step_count)) return PyErr_Clear(), fast::fallback;
    if (from_step && f.step_count == 1) return fast::via_torch;  // the order warnings live in torch's step()
    if (!to_counter(PyDict_GetItemWithError(d, names.last_epoch), f.last_epoch)) return PyErr_Clear(), fast::fallback;
    PyObject* ini = PyDict_GetItemWithError(d, names.is_initial);
    if (ini != Py_True && ini != Py_False) return PyErr_Clear(), fast::fallback;
    f.is_initial = ini == Py_True;
    PyObject* opt = PyDict_GetItemWithError(d, names.optimizer);
    if (!opt) return PyErr_Clear(), fast::fallback;
    f.groups.reset(PyObject_GetAttr(opt, names.param_groups));  // may be a property (wrapped optimizers)
    if (!f.groups) return PyErr_Clear(), fast::fallback;
    if (!PyList_CheckExact(f.groups.get())) return fast::fallback;
    f.n = PyList_GET_SIZE(f.groups.get());
    return fast::handled;
}

/// Store counters as torch's step()/_update_lr() leave them (and in torch's key order).
bool commit_counters(PyObject* d, bool from_step, std::int64_t step_count, PyObject* le_obj) {
    if (from_step) {
        ref sc(PyLong_FromLongLong(step_count + 1));
        if (!sc || PyDict_SetItem(d, names.step_count, sc.get()) < 0) return false;
    }
    return PyDict_SetItem(d, names.last_epoch, le_obj) == 0;
}

bool set_within_step(PyObject* d, PyObject* value) {
    PyObject* cur = PyDict_GetItemWithError(d, names.within_step);
    if (cur == value) return true;
    PyErr_Clear();
    return PyDict_SetItem(d, names.within_step, value) == 0;
}

/// Restore groups [0, upto) to the lr values saved in `old` (a failed one-pass write). The restored
/// floats are equal in value to the originals (float identity is not observable through torch).
void rollback_groups(PyObject* groups, const double* old, Py_ssize_t upto) {
    for (Py_ssize_t i = 0; i < upto; ++i) {
        ref v(PyFloat_FromDouble(old[i]));
        if (!v || PyDict_SetItem(PyList_GET_ITEM(groups, i), names.lr, v.get()) < 0) PyErr_Clear();
    }
}

/// One pass over the groups: read each exact-float lr, evaluate `u`, store the new float in the group
/// and in `last` (the new `_last_lr`). Each group dict is visited once, which is what makes a step
/// cost about as much as a bare assignment loop at thousands of groups. If a group is not an exact
/// dict holding an exact float "lr", the groups already written are restored: nothing has changed.
fast write_groups(Engine* eng, PyObject* groups, Py_ssize_t n, const update& u, const double* base, PyObject* last) {
    double* old = eng->lr->data();
    PyObject* prev = nullptr;  // the float made for the previous group (borrowed from `last`)
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* g = PyList_GET_ITEM(groups, i);
        PyObject* v = PyDict_CheckExact(g) ? PyDict_GetItemWithError(g, names.lr) : nullptr;
        if (!v || !PyFloat_CheckExact(v)) {
            PyErr_Clear();
            rollback_groups(groups, old, i);
            return fast::fallback;
        }
        const double x = PyFloat_AS_DOUBLE(v);
        // Saved for every group, keep steps included: a rollback restores all groups before the
        // first non-float one, and must not write back a stale value from an earlier step.
        old[i] = x;
        if (u.kind == update::op::keep) {  // torch re-assigns the same value: nothing to write
            Py_INCREF(v);
            PyList_SET_ITEM(last, i, v);
            continue;
        }
        const double y = fastlr::eval(u, x, base ? base[i] : 0.0, 0.0);
        // Groups often share an lr: reuse the previous group's float when the bits are equal (torch
        // would store equal floats; only their identity differs, which nothing can rely on).
        PyObject* nv;
        if (prev && std::memcmp(&PyFloat_AS_DOUBLE(prev), &y, sizeof y) == 0) {
            nv = prev;
            Py_INCREF(nv);
        } else {
            nv = PyFloat_FromDouble(y);
        }
        if (!nv || PyDict_SetItem(g, names.lr, nv) < 0) {
            Py_XDECREF(nv);
            rollback_groups(groups, old, i);
            return fast::error;
        }
        PyList_SET_ITEM(last, i, nv);
        prev = nv;
    }
    return fast::handled;
}

/// The fast path for the formula kinds (everything but the lambda classes).
fast formula_update(Engine* eng, PyObject* self, bool from_step, PyObject* epoch) {
    const kind k = static_cast<kind>(eng->kind);
    step_frame f;
    fast r = open_frame(self, from_step, f);
    if (r != fast::handled) return r;
    PyObject* d = f.dict.get();

    ref le_obj;
    std::int64_t le;
    if (epoch == Py_None) {
        le = f.last_epoch + 1;
        le_obj.reset(PyLong_FromLongLong(le));
        if (!le_obj) return fast::error;
    } else {
        if (!to_counter(epoch, le)) return fast::fallback;
        Py_INCREF(epoch);
        le_obj.reset(epoch);  // torch stores the caller's int object itself
    }
    const bool closed = epoch != Py_None && has_closed_form(k);
    const fastlr::step_state st{le, f.is_initial, f.step_count + (from_step ? 1 : 0)};
    update u;
    r = compute_update(k, d, st, closed, le_obj.get(), u);
    if (r != fast::handled) return r;

    const Py_ssize_t n = f.n;
    if (!scratch_guard::fit(eng, static_cast<std::size_t>(n))) return fast::error;
    double* base = nullptr;
    if (u.needs_base()) {
        base = eng->base->data();
        if (!gather_base(d, n, base)) return fast::fallback;
    }
    // Allocate everything before touching the groups: a container allocation may run the cyclic GC
    // (and finalizers); from here on no Python code runs until the step is committed.
    ref last(PyList_New(n));
    if (!last) return fast::error;
    ref sc_obj;
    if (from_step) {
        sc_obj.reset(PyLong_FromLongLong(f.step_count + 1));
        if (!sc_obj) return fast::error;
    }
    r = write_groups(eng, f.groups.get(), n, u, base, last.get());
    if (r != fast::handled) return r;
    // Counters in the order torch's step()/_update_lr() assign them (key order of a fresh __dict__).
    if (from_step && PyDict_SetItem(d, names.step_count, sc_obj.get()) < 0) return fast::error;
    if (PyDict_SetItem(d, names.last_epoch, le_obj.get()) < 0) return fast::error;
    if (!set_within_step(d, Py_False)) return fast::error;
    if (PyDict_SetItem(d, names.last_lr, last.get()) < 0) return fast::error;
    return fast::handled;
}

/// Release the per-group Python values a lambda step produced.
void clear_objs(Engine* eng, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; ++i) Py_CLEAR((*eng->objs)[static_cast<std::size_t>(i)]);
}

/// LambdaLR (`base_lr * lmbda(le)`) and MultiplicativeLR (`group["lr"] * lmbda(le)`): the user's
/// callables run in torch's order with `_get_lr_called_within_step` set, as torch's context does; the
/// arithmetic and the writes are done here.
fast lambda_update(Engine* eng, PyObject* self, bool from_step, PyObject* epoch) {
    const bool multiplicative = static_cast<kind>(eng->kind) == kind::multiplicative_lr;
    step_frame f;
    fast r = open_frame(self, from_step, f);
    if (r != fast::handled) return r;
    PyObject* d = f.dict.get();
    const Py_ssize_t n = f.n;

    ref le_obj;
    if (epoch == Py_None) {
        le_obj.reset(PyLong_FromLongLong(f.last_epoch + 1));
        if (!le_obj) return fast::error;
    } else {
        std::int64_t le;
        if (!to_counter(epoch, le)) return fast::fallback;
        Py_INCREF(epoch);
        le_obj.reset(epoch);
    }
    if (multiplicative && f.is_initial) {
        // torch returns the current lrs: an ordinary keep step.
        PyObject* groups = f.groups.get();
        if (!scratch_guard::fit(eng, static_cast<std::size_t>(n))) return fast::error;
        ref last(PyList_New(n));
        if (!last) return fast::error;
        if (!gather_lrs(groups, n, eng->lr->data())) return fast::fallback;
        for (Py_ssize_t i = 0; i < n; ++i) {
            PyObject* v = PyDict_GetItem(PyList_GET_ITEM(groups, i), names.lr);
            Py_INCREF(v);
            PyList_SET_ITEM(last.get(), i, v);
        }
        if (!commit_counters(d, from_step, f.step_count, le_obj.get())) return fast::error;
        if (!set_within_step(d, Py_False)) return fast::error;
        return PyDict_SetItem(d, names.last_lr, last.get()) < 0 ? fast::error : fast::handled;
    }

    // Validate everything torch would trip over before any user code runs, so that a fallback never
    // calls a lambda twice.
    PyObject* lambdas = PyDict_GetItemWithError(d, names.lr_lambdas);
    if (!lambdas || !PyList_CheckExact(lambdas) || PyList_GET_SIZE(lambdas) != n) return PyErr_Clear(), fast::fallback;
    if (!scratch_guard::fit(eng, static_cast<std::size_t>(n))) return fast::error;
    double* lr = eng->lr->data();
    double* base = eng->base->data();
    double* each = eng->each->data();
    double* out = eng->out->data();
    if (!gather_lrs(f.groups.get(), n, lr)) return fast::fallback;
    ref base_list;
    if (!multiplicative) {
        if (!gather_base(d, n, base)) return fast::fallback;
        base_list.reset(PyDict_GetItem(d, names.base_lrs));
        Py_INCREF(base_list.get());
    }
    ref lambda_list(lambdas);
    Py_INCREF(lambdas);

    if (!commit_counters(d, from_step, f.step_count, le_obj.get())) return fast::error;
    if (!set_within_step(d, Py_True)) return fast::error;

    eng->busy = true;
    bool exotic = false;  // some value needed Python arithmetic (numpy scalars, tensors, ...)
    bool ok = true;
    for (Py_ssize_t i = 0; i < n && ok; ++i) {
        // Re-read per item, as torch's comprehension does: the callables may change things.
        if (PyList_GET_SIZE(lambda_list.get()) <= i) { ok = false; PyErr_SetString(PyExc_RuntimeError, "lr_lambdas changed size during step()"); break; }
        ref fn(PyList_GET_ITEM(lambda_list.get(), i));
        Py_INCREF(fn.get());
        ref operand;  // group["lr"] (multiplicative) or base_lrs[i]
        if (multiplicative) {
            PyObject* groups = f.groups.get();
            if (PyList_GET_SIZE(groups) <= i) { ok = false; PyErr_SetString(PyExc_RuntimeError, "param_groups changed size during step()"); break; }
            PyObject* v = PyDict_GetItemWithError(PyList_GET_ITEM(groups, i), names.lr);
            if (!v) { ok = false; if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, names.lr); break; }
            operand.reset(v);
        } else {
            if (PyList_GET_SIZE(base_list.get()) <= i) { ok = false; PyErr_SetString(PyExc_RuntimeError, "base_lrs changed size during step()"); break; }
            operand.reset(PyList_GET_ITEM(base_list.get(), i));
        }
        Py_INCREF(operand.get());
        ref val(PyObject_CallOneArg(fn.get(), le_obj.get()));
        if (!val) { ok = false; break; }
        pynum num;
        if (PyFloat_CheckExact(operand.get()) && (PyFloat_CheckExact(val.get()) || PyLong_CheckExact(val.get())) &&
            to_num(val.get(), num)) {
            (multiplicative ? lr : base)[i] = PyFloat_AS_DOUBLE(operand.get());
            each[i] = num.d;
        } else {
            PyObject* prod = PyNumber_Multiply(operand.get(), val.get());
            if (!prod) { ok = false; break; }
            (*eng->objs)[static_cast<std::size_t>(i)] = prod;
            exotic = true;
        }
    }
    eng->busy = false;
    // torch's context manager resets the flag whether or not a lambda raised. set_within_step() may
    // clear the error indicator, so the lambda's exception is set aside while it runs.
#if PY_VERSION_HEX >= 0x030C0000
    PyObject* pending = PyErr_GetRaisedException();
    bool reset = set_within_step(d, Py_False);
    if (pending) {
        if (!reset) PyErr_Clear();
        PyErr_SetRaisedException(pending);
        reset = true;
    }
#else
    PyObject *exc_type = nullptr, *exc_value = nullptr, *exc_tb = nullptr;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    bool reset = set_within_step(d, Py_False);
    if (exc_type) {
        if (!reset) PyErr_Clear();
        PyErr_Restore(exc_type, exc_value, exc_tb);
        reset = true;
    }
#endif
    if (!reset || !ok) {
        clear_objs(eng, n);
        return fast::error;
    }

    // torch: for group, lr in zip(self.optimizer.param_groups, values, strict=True): ...
    PyObject* opt = PyDict_GetItemWithError(d, names.optimizer);
    ref groups(opt ? PyObject_GetAttr(opt, names.param_groups) : nullptr);
    if (!groups || !PyList_CheckExact(groups.get()) || PyList_GET_SIZE(groups.get()) != n) {
        clear_objs(eng, n);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "param_groups changed length during step(): zip() arguments differ");
        return fast::error;
    }
    fastlr::apply(update{multiplicative ? update::op::scale_each : update::op::base_scale_each, 0.0, 0.0}, lr, base,
                  each, out, static_cast<std::size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject*& slot = (*eng->objs)[static_cast<std::size_t>(i)];
        ref v(slot ? slot : PyFloat_FromDouble(out[i]));
        slot = nullptr;
        if (!v) { clear_objs(eng, n); return fast::error; }
        PyObject* g = PyList_GET_ITEM(groups.get(), i);
        PyObject* cur = PyDict_CheckExact(g) ? PyDict_GetItemWithError(g, names.lr) : nullptr;
        int rc;
        if (cur && PyFloat_CheckExact(cur)) {
            rc = PyDict_SetItem(g, names.lr, v.get());
        } else {  // a tensor lr (or stranger) appeared: torch's own helper decides
            PyErr_Clear();
            ref res(PyObject_CallFunctionObjArgs(torch_update_group, g, names.lr, v.get(), nullptr));
            rc = res ? 0 : -1;
            exotic = true;
        }
        if (rc < 0) { clear_objs(eng, n); return fast::error; }
    }
    ref last;
    if (exotic) {
        last.reset(PyObject_CallFunctionObjArgs(torch_val_list, opt, names.lr, nullptr));
    } else {
        last.reset(PyList_New(n));
        if (last) {
            for (Py_ssize_t i = 0; i < n; ++i) {
                PyObject* v = PyDict_GetItem(PyList_GET_ITEM(groups.get(), i), names.lr);
                Py_INCREF(v);
                PyList_SET_ITEM(last.get(), i, v);
            }
        }
    }
    if (!last || PyDict_SetItem(d, names.last_lr, last.get()) < 0) return fast::error;
    return fast::handled;
}

Engine* engine_of(PyObject* self) {
    if (!base_type || !PyObject_TypeCheck(self, base_type)) return nullptr;
    PyObject* e = *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(self) + engine_offset);
    if (!e || Py_TYPE(e) != engine_type) return nullptr;
    auto* eng = reinterpret_cast<Engine*>(e);
    if (eng->kind == static_cast<int>(kind::none) || eng->busy) return nullptr;
    return eng;
}

/// One torch `_update_lr(epoch)` (from_step: the whole `step()`), or fallback.
fast fast_update(PyObject* self, bool from_step, PyObject* epoch) {
    Engine* eng = engine_of(self);
    if (!eng) return fast::fallback;
    Py_INCREF(self);
    ref keep_self(self);
    const kind k = static_cast<kind>(eng->kind);
    const fast r = (k == kind::lambda_lr || k == kind::multiplicative_lr) ? lambda_update(eng, self, from_step, epoch)
                                                                          : formula_update(eng, self, from_step, epoch);
    if (r == fast::handled) ++eng->handled;
    // A step() that falls back runs torch's step(), whose _update_lr() comes back here (from_step
    // false) and counts the deferred update there: count it once, not twice.
    else if (r == fast::fallback && !from_step) ++eng->deferred;
    return r;
}

// ------------------------------------------------------------------------------------------------
// fastlr.LRScheduler.step: a C method, so a plain `scheduler.step()` costs one C call.

PyObject* scheduler_step(PyObject* self, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
    const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    // Only a plain step (no epoch) has a fast path; step(epoch) takes torch's route for its warning.
    bool plain = nargs + nkw == 0;
    if (nargs + nkw == 1 && args[0] == Py_None)
        plain = nkw == 0 || PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, 0), names.epoch) == 0;
    if (plain) {
        const fast r = fast_update(self, true, Py_None);
        if (r == fast::handled) Py_RETURN_NONE;
        if (r == fast::error) return nullptr;
    }
    // Everything else is torch's step(): its warnings (stacklevel=2 lands in the caller's frame, as
    // this C frame is invisible), counters, and then _update_lr, which comes back to the fast path.
    ref sup(PyObject_CallFunctionObjArgs(reinterpret_cast<PyObject*>(&PySuper_Type), base_type, self, nullptr));
    if (!sup) return nullptr;
    ref meth(PyObject_GetAttr(sup.get(), names.step));
    if (!meth) return nullptr;
    return PyObject_Vectorcall(meth.get(), args, nargsf, kwnames);
}

PyMethodDef step_def = {
    "step", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(scheduler_step)),
    METH_FASTCALL | METH_KEYWORDS,
    "step($self, /, epoch=None)\n--\n\n"
    "Advance the schedule by one step and write the new learning rates into the optimizer.\n\n"
    "Computed by fastlr's C++ engine for all param groups in one call, bit for bit as torch's\n"
    "scheduler computes them. ``epoch`` is deprecated in torch; when given, ``last_epoch`` is set\n"
    "to it and the closed form is used where the class has one, as in torch.\n"};

}  // namespace

void register_scheduler(py::module_& m) {
    names = names_t{intern("lr"),          intern("last_epoch"), intern("_step_count"), intern("_is_initial"),
                    intern("_get_lr_called_within_step"), intern("_last_lr"), intern("optimizer"),
                    intern("param_groups"), intern("base_lrs"), intern("lr_lambdas"), intern("gamma"),
                    intern("step_size"), intern("milestones"), intern("factor"), intern("total_iters"),
                    intern("start_factor"), intern("end_factor"), intern("power"), intern("T_max"),
                    intern("eta_min"), intern("step"), intern("epoch")};

    engine_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&engine_spec));
    if (!engine_type) throw py::error_already_set();
    m.add_object("Engine", py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(engine_type)));

    m.def(
        "_install",
        [](py::object cls, py::object slot_descr, py::object counter, py::object update_group, py::object val_list) {
            if (!PyType_Check(cls.ptr())) throw py::type_error("_install expects the LRScheduler class");
            if (Py_TYPE(slot_descr.ptr()) != &PyMemberDescr_Type)
                throw py::type_error("_install expects the _fastlr_engine slot descriptor");
            PyMemberDef* md = reinterpret_cast<PyMemberDescrObject*>(slot_descr.ptr())->d_member;
            if (md->type != T_OBJECT_EX) throw py::type_error("unexpected slot type");
            base_type = reinterpret_cast<PyTypeObject*>(cls.release().ptr());
            engine_offset = md->offset;
            counter_type = counter.release().ptr();
            torch_update_group = update_group.release().ptr();
            torch_val_list = val_list.release().ptr();
            PyObject* descr = PyDescr_NewMethod(base_type, &step_def);
            if (!descr) throw py::error_already_set();
            const int rc = PyObject_SetAttrString(reinterpret_cast<PyObject*>(base_type), "step", descr);
            Py_DECREF(descr);
            if (rc < 0) throw py::error_already_set();
        },
        "Wire the fast path into fastlr.lr_scheduler.LRScheduler (called once by that module).");

    m.def(
        "update",
        [](py::handle self, py::handle epoch) -> bool {
            const fast r = fast_update(self.ptr(), false, epoch.ptr());
            if (r == fast::error) throw py::error_already_set();
            return r == fast::handled;
        },
        py::arg("scheduler"), py::arg("epoch") = py::none(),
        "torch's LRScheduler._update_lr(epoch) on the fast path. Returns False, having changed nothing,\n"
        "when torch's Python code must run this step instead.");
}
