// ScheduledLR's step on the engine (python/fastlr/_scheduled.py): a plain `scheduler.step()` is one C
// call that evaluates each distinct schedule program once at the new step, multiplies by the base lrs
// (mode "multiplier") and writes every group and the counters, exactly as the class's Python step does
// (`_step_count += 1`, `last_epoch += 1`, `group["lr"] = base * s(t)`, `_last_lr` = the groups' lrs).
//
// The programs are copies of the `fastlr._core.Program` objects of the scheduler's lr `_Track` (an
// immutable object: the copy stays valid while the scheduler holds the same one), evaluated with the
// same `fastlr::sched::eval` as `Program.__call__` and `schedule_eval_many`, so the values are the
// same bits. The writes go through the standard executor (`execute`): Python floats, or the packed
// tensors of the tensor path.
//
// Anything else runs the Python step (`_fastlr_step_py`), having changed nothing here: the first step
// (torch's order warnings), step(metrics) / step(epoch=...), momentum or weight-decay schedules,
// plateau nodes (their value lives in the Program objects and changes with the metrics), capturable
// mode, and values whose arithmetic is Python's or torch's to decide (ints, a Python-float group whose
// base lr is a tensor: torch's product is a tensor, assigned into the group).
#include "scheduler.hpp"

#include <fastlr/program_host.hpp>

#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace fastlr_py {

namespace fs = fastlr::sched;

/// The programs of one lr `_Track`, and the per-step scratch of a ScheduledLR step.
struct scheduled_view {
    PyObject* track = nullptr;              // the _Track these were copied from (owned: identity)
    bool usable = false;                    // false: this track steps in Python (plateaus, odd objects)
    std::vector<fs::program_data> programs;  // the track's distinct programs, validated
    std::vector<std::uint32_t> index;        // per group: its program
    std::vector<double> values;              // per program: its value at this step
    std::vector<double> base;                // per group: its base lr (mode "multiplier")
    std::vector<double> lrs;                 // per group: its new lr
    ~scheduled_view() { Py_XDECREF(track); }
};

void free_scheduled_view(scheduled_view* v) { delete v; }

namespace {

PyObject* interned(const char* s) {
    PyObject* o = PyUnicode_InternFromString(s);
    if (!o) PyErr_Clear();
    return o;
}

struct scheduled_names {
    PyObject *track = interned("_fastlr_lr"), *momentum = interned("_fastlr_momentum"), *wd = interned("_fastlr_wd"),
             *mode = interned("mode"), *multiplier = interned("multiplier"), *absolute = interned("absolute"),
             *metrics = interned("metrics"), *programs = interned("programs"), *index = interned("index"),
             *stateful = interned("stateful"), *buffers = interned("buffers"), *step_py = interned("_fastlr_step_py");
    bool ok() const {
        return track && momentum && wd && mode && multiplier && absolute && metrics && programs && index && stateful &&
               buffers && step_py;
    }
};

const scheduled_names& sn() {
    static const scheduled_names n;
    return n;
}

/// Copy `bytes` (a bytes object of whole T elements) into `out`; false otherwise.
template <class T>
bool copy_bytes(PyObject* bytes, std::vector<T>& out) {
    if (!PyBytes_CheckExact(bytes)) return false;
    const auto size = static_cast<std::size_t>(PyBytes_GET_SIZE(bytes));
    if (size % sizeof(T) != 0) return false;
    out.resize(size / sizeof(T));
    if (size) std::memcpy(out.data(), PyBytes_AS_STRING(bytes), size);
    return true;
}

/// `out` := a copy of program `p` (a fastlr._core.Program, read through its `buffers()`: the arrays of
/// fastlr/program.hpp), validated as `Program` validates. False (no error set) if `p` is not such an
/// object or its arrays do not form a valid program. Runs Python (the method call).
bool copy_program(PyObject* p, fs::program_data& out) {
    ref b(PyObject_CallMethodNoArgs(p, sn().buffers));
    if (!b || !PyTuple_CheckExact(b.get()) || PyTuple_GET_SIZE(b.get()) != 3) return PyErr_Clear(), false;
    try {
        if (!copy_bytes(PyTuple_GET_ITEM(b.get(), 0), out.nodes) || !copy_bytes(PyTuple_GET_ITEM(b.get(), 1), out.children) ||
            !copy_bytes(PyTuple_GET_ITEM(b.get(), 2), out.params))
            return false;
        return fs::validate(out).empty();
    } catch (const std::bad_alloc&) {
        return false;
    }
}

/// Fill `v` from lr `_Track` object `track`: its programs and per-group index. False (no error set)
/// where the track must step in Python: plateau nodes (`stateful`), or anything not as _Track makes it.
bool read_track(scheduled_view& v, PyObject* track) {
    ref stateful(PyObject_GetAttr(track, sn().stateful));
    ref programs(PyObject_GetAttr(track, sn().programs));
    ref index(PyObject_GetAttr(track, sn().index));
    if (!stateful || stateful.get() != Py_False || !programs || !PyTuple_CheckExact(programs.get()) || !index ||
        !PyTuple_CheckExact(index.get()))
        return PyErr_Clear(), false;
    const Py_ssize_t np = PyTuple_GET_SIZE(programs.get()), ng = PyTuple_GET_SIZE(index.get());
    if (np < 1) return false;
    try {
        v.programs.assign(static_cast<std::size_t>(np), fs::program_data{});
        v.values.assign(static_cast<std::size_t>(np), 0.0);
        v.index.assign(static_cast<std::size_t>(ng), 0);
        v.base.assign(static_cast<std::size_t>(ng), 0.0);
        v.lrs.assign(static_cast<std::size_t>(ng), 0.0);
    } catch (const std::bad_alloc&) {
        return false;
    }
    for (Py_ssize_t k = 0; k < np; ++k)
        if (!copy_program(PyTuple_GET_ITEM(programs.get(), k), v.programs[static_cast<std::size_t>(k)])) return false;
    for (Py_ssize_t i = 0; i < ng; ++i) {
        PyObject* o = PyTuple_GET_ITEM(index.get(), i);
        const long k = PyLong_CheckExact(o) ? PyLong_AsLong(o) : -1;
        if (k < 0 || k >= np) return PyErr_Clear(), false;
        v.index[static_cast<std::size_t>(i)] = static_cast<std::uint32_t>(k);
    }
    return true;
}

/// The engine's view of lr track `track`, read again when the scheduler holds another track object
/// (load_state_dict); null where this track steps in Python. May run Python (reading a new track).
scheduled_view* view_of(Engine* eng, PyObject* track) {
    scheduled_view* v = eng->sched;
    if (v && v->track == track) return v->usable ? v : nullptr;
    if (!v) {
        v = new (std::nothrow) scheduled_view();
        if (!v) return nullptr;
        eng->sched = v;
    }
    Py_INCREF(track);
    Py_XSETREF(v->track, track);
    v->usable = read_track(*v, track);
    return v->usable ? v : nullptr;
}

/// Whether group i's base lr, gathered from `base_lrs` in this call, is a float32 tensor: torch's
/// `base * v` is then float32 arithmetic, the float32 rounding of `base * float32(v)`.
bool float32_base(const Engine* eng, Py_ssize_t i) {
    if (!tensor_operand_at(eng, i, false)) return false;
    for (const auto& kv : *eng->tcache) {
        if (kv.first != names.base_lrs) continue;
        const auto si = static_cast<std::size_t>(i);
        // code 0: a float32 CPU tensor; 3: a float32 tensor elsewhere (fastlr._tensor_lrs.describe)
        return si < kv.second.size() && (kv.second[si].code == 0 || kv.second[si].code == 3);
    }
    return false;
}

/// ScheduledLR's step (see the top of this file). `handled`: done and committed; `fallback` or
/// `via_torch`: nothing changed, the Python step must run; `error`: an exception is set (MemoryError).
fast scheduled_update(Engine* eng, PyObject* self) {
    // Phase 1, the scheduler's own state (may run Python: reading a new track, `describe` of a new
    // tensor base lr); the groups are read only after it.
    PyObject* d = eng->dict;
    if (!d || !sn().ok()) return PyErr_Clear(), fast::fallback;
    std::int64_t sc = 0, le0 = 0;
    if (!to_counter(PyDict_GetItemWithError(d, names.step_count), sc)) return PyErr_Clear(), fast::fallback;
    if (sc == 1) return fast::via_torch;  // the order warnings live in torch's step()
    if (!to_counter(PyDict_GetItemWithError(d, names.last_epoch), le0)) return PyErr_Clear(), fast::fallback;
    const std::int64_t le = le0 + 1;  // |le0| <= 2**53: no overflow
    const double t = static_cast<double>(le);  // float(last_epoch): round to nearest, as Python's
    if (!(t >= 0.0 && t <= fastlr::hd::two_pow_53)) return fast::fallback;  // the Python step raises
    // The lr only: momentum and weight-decay schedules write other keys (the Python step).
    if (PyDict_GetItemWithError(d, sn().momentum) != Py_None || PyDict_GetItemWithError(d, sn().wd) != Py_None)
        return PyErr_Clear(), fast::fallback;
    PyObject* mode = PyDict_GetItemWithError(d, sn().mode);
    PyObject* track = PyDict_GetItemWithError(d, sn().track);
    if (!mode || !track || !PyUnicode_CheckExact(mode)) return PyErr_Clear(), fast::fallback;
    // `if self.mode == "multiplier"` (anything else is absolute)
    const bool multiplier = mode == sn().multiplier || (mode != sn().absolute && PyUnicode_Compare(mode, sn().multiplier) == 0);
    if (PyErr_Occurred()) return PyErr_Clear(), fast::fallback;
    ref keep_track(ref::incref(track));
    scheduled_view* v = view_of(eng, track);
    if (!v) return fast::fallback;

    // Phase 2, values: each program once at t, then per group lr = base * value (or the value).
    frame f;
    fast r = open_groups(self, f, eng);
    if (r != fast::handled) return r;
    const Py_ssize_t n = f.n;
    // zip(base_lrs, values) and zip(param_groups, values) stop at the shortest: groups added or
    // removed since construction are the Python step's (it writes the first len(values) groups).
    if (static_cast<std::size_t>(n) != v->index.size() || n == 0) return fast::fallback;
    if (!fit(eng, static_cast<std::size_t>(n))) return fast::error;
    for (std::size_t k = 0; k < v->programs.size(); ++k) v->values[k] = fs::eval(v->programs[k].view(), t);
    double* lrs = v->lrs.data();
    const std::uint32_t* idx = v->index.data();
    const double* vals = v->values.data();
    if (multiplier) {
        double* base = v->base.data();
        if (!gather_list(eng, d, names.base_lrs, n, base)) return fast::fallback;
        if (PyList_GET_SIZE(f.groups.get()) != n) return fast::fallback;  // (describe ran Python)
        if (!eng->tensor_operand) {
            for (Py_ssize_t i = 0; i < n; ++i) lrs[i] = base[i] * vals[idx[i]];
        } else {
            for (Py_ssize_t i = 0; i < n; ++i) {
                const double val = vals[idx[i]];
                // A float32 tensor times a Python float: float32(base * float32(v)) (the product of two
                // floats is exact in double, then rounded once, as float32 multiplication rounds it).
                lrs[i] = float32_base(eng, i)
                             ? static_cast<double>(static_cast<float>(base[i] * static_cast<double>(static_cast<float>(val))))
                             : base[i] * val;
            }
        }
    } else {
        for (Py_ssize_t i = 0; i < n; ++i) lrs[i] = vals[idx[i]];
    }

    // Phase 3, the writes (Python floats or packed tensors) and the counters, as the Python step
    // leaves them: `_step_count`, `last_epoch`, then `_last_lr`.
    ref sc_obj(PyLong_FromLongLong(sc + 1)), le_obj(PyLong_FromLongLong(le));
    if (!sc_obj || !le_obj) return fast::error;
    plan p;
    p.lr.u = update::scale(1.0);  // x * 1.0 == x: the lrs computed above, as they are
    p.lr.x = lrs;
    ref last;
    r = execute(eng, f, p, last);
    if (r != fast::handled) return r;
    if (PyDict_SetItem(d, names.step_count, sc_obj.get()) < 0 || PyDict_SetItem(d, names.last_epoch, le_obj.get()) < 0)
        return fast::error;
    if (last) {  // (after a tensor step `_last_lr` is built when read)
        if (PyDict_SetItem(d, names.last_lr, last.get()) < 0) return fast::error;
        clear_pending_last_lr(eng);
    }
    return fast::handled;
}

/// Whether a step(metrics=None, epoch=None) call passes nothing but Nones, to the parameters by name.
bool plain_call(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    if (nargs > 2) return false;
    bool bound[2] = {false, false};
    for (Py_ssize_t i = 0; i < nargs; ++i) {
        if (args[i] != Py_None) return false;
        bound[i] = true;
    }
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; ++k) {
        PyObject* name = PyTuple_GET_ITEM(kwnames, k);
        int j = name == sn().metrics ? 0 : name == names.epoch ? 1 : -1;
        if (j < 0) {
            j = PyUnicode_Compare(name, sn().metrics) == 0 ? 0 : PyUnicode_Compare(name, names.epoch) == 0 ? 1 : -1;
            if (PyErr_Occurred()) return PyErr_Clear(), false;
        }
        if (j < 0 || bound[j] || args[nargs + k] != Py_None) return false;
        bound[j] = true;
    }
    return true;
}

PyObject* scheduled_step(PyObject* self, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
    const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    const Engine* slot = engine_in_slot(self);
    if (plain_call(args, nargs, kwnames) && !(slot && slot->capturable)) {
        ref keep_alive(ref::incref(self));
        Engine* eng = engine_for_call(self);
        if (eng) {
            const fast r = scheduled_update(eng, self);
            release_call(eng);
            if (r == fast::handled) {
                ++eng->handled;
                Py_RETURN_NONE;
            }
            if (r == fast::error) return nullptr;
            ++eng->deferred;
        } else {
            PyErr_Clear();
        }
    }
    // Everything else: the Python step (its warnings name the caller's line: this C frame is invisible).
    ref meth(PyObject_GetAttr(self, sn().step_py));
    if (!meth) return nullptr;
    return PyObject_Vectorcall(meth.get(), args, nargsf, kwnames);
}

}  // namespace

PyMethodDef scheduled_step_def = {
    "step", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(scheduled_step)), METH_FASTCALL | METH_KEYWORDS,
    "step($self, /, metrics=None, epoch=None)\n--\n\n"
    "Advance one step (or to ``epoch``) and write every group's lr from its schedule.\n\n"
    "``metrics`` (a number or a 0-d tensor) is first fed to the plateau nodes active at the current\n"
    "step, as ``ReduceLROnPlateau.step(metrics)``. A plain ``step()`` is one call into fastlr's C++\n"
    "engine for all param groups (see ``uses_fast_path``); the values are the same either way."};

}  // namespace fastlr_py
