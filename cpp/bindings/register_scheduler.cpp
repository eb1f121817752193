// The drop-in schedulers' hot path: the Engine type, the C implementation of `step()` that
// fastlr.lr_scheduler installs on its classes, and the shared readers. The per-class protocols are in
// sched_standard.cpp (torch's LRScheduler.step/_update_lr/get_lr) and sched_events.cpp
// (CosineAnnealingWarmRestarts, ReduceLROnPlateau, SequentialLR, ChainedScheduler).
//
// Everything on the hot path uses the CPython API directly: pybind11's dispatch costs more than a
// whole step at one param group. See scheduler.hpp for the contract with the Python side.
#include "scheduler.hpp"

#include <structmember.h>

#include <algorithm>
#include <new>

#include "register.hpp"

#include <cstring>

namespace fastlr_py {

names_t names;
refs_t refs;

namespace {

PyObject* intern(const char* s) {
    PyObject* o = PyUnicode_InternFromString(s);
    if (!o) throw py::error_already_set();
    return o;
}

void init_names() {
    names_t& n = names;
    n.lr = intern("lr");
    n.last_epoch = intern("last_epoch");
    n.step_count = intern("_step_count");
    n.is_initial = intern("_is_initial");
    n.within_step = intern("_get_lr_called_within_step");
    n.last_lr = intern("_last_lr");
    n.optimizer = intern("optimizer");
    n.param_groups = intern("param_groups");
    n.base_lrs = intern("base_lrs");
    n.lr_lambdas = intern("lr_lambdas");
    n.gamma = intern("gamma");
    n.step_size = intern("step_size");
    n.milestones = intern("milestones");
    n.factor = intern("factor");
    n.total_iters = intern("total_iters");
    n.start_factor = intern("start_factor");
    n.end_factor = intern("end_factor");
    n.power = intern("power");
    n.T_max = intern("T_max");
    n.eta_min = intern("eta_min");
    n.step = intern("step");
    n.epoch = intern("epoch");
    n.update_lr = intern("_update_lr");
    n.get_last_lr = intern("get_last_lr");
    n.max_lrs = intern("max_lrs");
    n.total_size = intern("total_size");
    n.step_ratio = intern("step_ratio");
    n.scale_fn_ref = intern("_scale_fn_ref");
    n.scale_fn_custom = intern("_scale_fn_custom");
    n.scale_mode = intern("scale_mode");
    n.cycle = intern("cycle");
    n.cycle_momentum = intern("cycle_momentum");
    n.use_beta1 = intern("use_beta1");
    n.base_momentums = intern("base_momentums");
    n.max_momentums = intern("max_momentums");
    n.betas = intern("betas");
    n.momentum = intern("momentum");
    n.total_steps = intern("total_steps");
    n.schedule_phases = intern("_schedule_phases");
    n.anneal_func_type = intern("_anneal_func_type");
    n.end_step = intern("end_step");
    n.start_lr = intern("start_lr");
    n.end_lr = intern("end_lr");
    n.start_momentum = intern("start_momentum");
    n.end_momentum = intern("end_momentum");
    n.cos = intern("cos");
    n.linear = intern("linear");
    n.T_0 = intern("T_0");
    n.T_i = intern("T_i");
    n.T_mult = intern("T_mult");
    n.T_cur = intern("T_cur");
    n.swa_lr = intern("swa_lr");
    n.anneal_epochs = intern("anneal_epochs");
    n.anneal_func = intern("anneal_func");
    n.best = intern("best");
    n.num_bad_epochs = intern("num_bad_epochs");
    n.cooldown_counter = intern("cooldown_counter");
    n.patience = intern("patience");
    n.cooldown = intern("cooldown");
    n.threshold = intern("threshold");
    n.threshold_mode = intern("threshold_mode");
    n.mode = intern("mode");
    n.min_lrs = intern("min_lrs");
    n.eps = intern("eps");
    n.min = intern("min");
    n.max = intern("max");
    n.rel = intern("rel");
    n.abs = intern("abs");
    n.schedulers = intern("_schedulers");
    n.milestones_priv = intern("_milestones");
    n.func = intern("func");
    n.args = intern("args");
    n.keywords = intern("keywords");
}

// ------------------------------------------------------------------------------------------------
// Engine type

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
    self->kind = k;  // tp_alloc zeroed everything else
    try {
        self->x = new std::vector<double>();
        self->y = new std::vector<double>();
        self->mx = new std::vector<double>();
        self->my = new std::vector<double>();
        self->out = new std::vector<double>();
        self->v1 = new std::vector<double>();
        self->v2 = new std::vector<double>();
        self->holders = new std::vector<std::uint8_t>();
        self->objs = new std::vector<PyObject*>();
        self->tcache = new std::vector<std::pair<PyObject*, std::vector<Engine::tensor_ref>>>();
        self->fcache = new std::vector<std::pair<PyObject*, Engine::float_list>>();
        self->tgen = new std::vector<unsigned>();
        self->memo = new std::vector<group_memo>();
        self->chain_vals = new std::vector<double>();
        self->chain_objs = new std::vector<PyObject*>();
        self->lam_ops = new std::vector<std::pair<PyObject*, bool>>();
    } catch (const std::bad_alloc&) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return reinterpret_cast<PyObject*>(self);
}

void engine_dealloc(PyObject* o) {
    auto* self = reinterpret_cast<Engine*>(o);
    delete self->x;
    delete self->y;
    delete self->mx;
    delete self->my;
    delete self->out;
    delete self->v1;
    delete self->v2;
    delete self->holders;
    delete self->objs;
    for (auto& per_key : *self->tcache)
        for (auto& t : per_key.second) Py_CLEAR(t.obj);
    delete self->tcache;
    if (self->fcache)
        for (auto& per_key : *self->fcache) {
            for (PyObject*& item : per_key.second.items) Py_CLEAR(item);
            Py_CLEAR(per_key.first);
        }
    delete self->fcache;
    delete self->tgen;
    delete self->memo;
    delete self->chain_vals;
    for (PyObject*& item : *self->chain_objs) Py_CLEAR(item);
    delete self->chain_objs;
    if (self->lam_ops)
        for (auto& pr : *self->lam_ops) Py_CLEAR(pr.first);
    delete self->lam_ops;
    free_scheduled_view(self->sched);
    for (PyObject*& k : self->memo_keys) Py_CLEAR(k);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->scale_ref);
    unpack(self);
    Py_CLEAR(self->last_pending);
    Py_CLEAR(self->spare_pending);
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

PyObject* engine_last_stale(PyObject* o, void*) { return PyBool_FromLong(reinterpret_cast<Engine*>(o)->last_stale); }

PyObject* engine_take_last_lr(PyObject* o, PyObject*) { return take_last_lr(reinterpret_cast<Engine*>(o)); }

PyObject* engine_clear_last_lr(PyObject* o, PyObject*) {
    clear_pending_last_lr(reinterpret_cast<Engine*>(o));
    Py_RETURN_NONE;
}

PyObject* engine_set_capturable(PyObject* o, PyObject* arg) {
    const int v = PyObject_IsTrue(arg);
    if (v < 0) return nullptr;
    reinterpret_cast<Engine*>(o)->capturable = v != 0;
    Py_RETURN_NONE;
}

PyObject* engine_unpack(PyObject* o, PyObject*) {
    if (!settle_pending_last_lr(reinterpret_cast<Engine*>(o))) return nullptr;
    unpack(reinterpret_cast<Engine*>(o));
    Py_RETURN_NONE;
}

PyObject* engine_packed(PyObject* o, void*) {
    auto* e = reinterpret_cast<Engine*>(o);
    return PyTuple_Pack(2, e->plr ? e->plr->owner.get() : Py_None, e->pmom ? e->pmom->owner.get() : Py_None);
}

PyMethodDef engine_methods[] = {
    {"take_last_lr", engine_take_last_lr, METH_NOARGS,
     "The `_last_lr` list of the last tensor step (fresh tensors from the step's snapshot)."},
    {"clear_last_lr", engine_clear_last_lr, METH_NOARGS, "Forget the pending `_last_lr` (it was replaced)."},
    {"unpack", engine_unpack, METH_NOARGS, "Forget the packed tensors (they are packed again when met)."},
    {"set_capturable", engine_set_capturable, METH_O, "Route step() to the scheduler's capturable step."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef engine_getset[] = {
    {"last_lr_stale", engine_last_stale, nullptr, "Whether `_last_lr` awaits materialisation from a tensor step.", nullptr},
    {"packed", engine_packed, nullptr, "The Packed objects (lr, momentum) of the tensor executor, or None.", nullptr},
    {"kind", engine_kind, nullptr, "The scheduler kind this engine steps (0: none, torch's Python only).", nullptr},
    {"handled", engine_handled, nullptr, "Calls computed by the engine.", nullptr},
    {"deferred", engine_deferred, nullptr, "Calls left to torch's Python code (odd types, raising cases).", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot engine_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(engine_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(engine_dealloc)},
    {Py_tp_getset, engine_getset},
    {Py_tp_methods, engine_methods},
    {Py_tp_doc, const_cast<char*>("Engine(kind)\n--\n\nPer-scheduler state of fastlr's C++ fast path.")},
    {0, nullptr},
};

PyType_Spec engine_spec = {"fastlr._core.Engine", sizeof(Engine), 0, Py_TPFLAGS_DEFAULT, engine_slots};
PyTypeObject* engine_type = nullptr;

/// The scheduler's engine, created on first use from the class's `_fastlr_active_kind` (computed by
/// LRScheduler.__init_subclass__: 0 when a subclass overrides a method the engine replaces).
Engine* engine_of(PyObject* self) {
    if (!refs.base_type || !PyObject_TypeCheck(self, refs.base_type)) return nullptr;
    PyObject** slot = reinterpret_cast<PyObject**>(reinterpret_cast<char*>(self) + refs.engine_offset);
    if (!*slot || *slot == Py_None) {  // None (LRScheduler.__new__) or unset: make the engine now
        static PyObject* attr = PyUnicode_InternFromString("_fastlr_active_kind");
        ref k(PyObject_GetAttr(reinterpret_cast<PyObject*>(Py_TYPE(self)), attr));
        if (!k) {
            PyErr_Clear();
            return nullptr;
        }
        ref eng(PyObject_CallOneArg(reinterpret_cast<PyObject*>(engine_type), k.get()));
        if (!eng) {
            PyErr_Clear();
            return nullptr;
        }
        Py_XSETREF(*slot, eng.release());
    }
    PyObject* e = *slot;
    if (Py_TYPE(e) != engine_type) return nullptr;
    auto* eng = reinterpret_cast<Engine*>(e);
    if (eng->busy) return nullptr;
    // Whether the engine may do the class's work is decided again whenever the class (or a base)
    // changed since -- its version tag moves when an attribute is set, as mock.patch.object(cls,
    // "get_lr", ...) does -- or the instance gained attributes (`sched.get_lr = ...`).
    PyTypeObject* tp = Py_TYPE(self);
    ref d(PyObject_GenericGetDict(self, nullptr));
    if (!d) return PyErr_Clear(), nullptr;
    if (tp->tp_version_tag == 0 || tp->tp_version_tag != eng->type_tag || PyDict_GET_SIZE(d.get()) != eng->dict_size) {
        static PyObject* check = PyUnicode_InternFromString("_fastlr_kind_now");
        ref k(PyObject_CallMethodNoArgs(self, check));
        const long kv = k ? PyLong_AsLong(k.get()) : -1;
        if (kv < 0 || kv > static_cast<long>(kind::last_)) return PyErr_Clear(), nullptr;
        eng->kind = static_cast<int>(kv);
        eng->type_tag = tp->tp_version_tag;
        eng->dict_size = PyDict_GET_SIZE(d.get());
    }
    if (eng->kind == static_cast<int>(kind::none)) return nullptr;
    // Lent to this call (the protocols read it from here: one lookup per call); call_scope releases it.
    Py_XSETREF(eng->dict, d.release());
    eng->tensor_operand = eng->tensor_operand_mom = false;  // per call (see Engine::tensor_operand)
    if (++eng->call == 0) {  // wrapped: forget every earlier call's marks
        std::fill(eng->tgen->begin(), eng->tgen->end(), 0u);
        eng->call = 1;
    }
    return eng;
}

/// Releases the instance dict engine_of lent to the current call: an engine keeps no reference to
/// it between calls (the engine is not GC-tracked, so holding it would hide reference cycles through
/// the scheduler, say a lambda that refers to its scheduler, from the collector).
struct call_scope {
    Engine* eng;
    ~call_scope() {
        if (eng) Py_CLEAR(eng->dict);
    }
};

fast count(Engine* eng, fast r) {
    if (r == fast::handled) ++eng->handled;
    else if (r == fast::fallback) ++eng->deferred;
    return r;
}

// ------------------------------------------------------------------------------------------------
// step(): one C method installed on every fastlr class, with the signature of that class's step.

enum class protocol { standard, warm_restarts, plateau, composite, scheduled };

protocol protocol_of(kind k) {
    switch (k) {
        case kind::cosine_warm_restarts: return protocol::warm_restarts;
        case kind::reduce_on_plateau: return protocol::plateau;
        case kind::sequential_lr:
        case kind::chained_scheduler: return protocol::composite;
        case kind::scheduled_lr: return protocol::scheduled;
        default: return protocol::standard;
    }
}

/// Match vectorcall arguments to parameters `params` (positional-or-keyword); false on anything else.
bool bind_args(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames, PyObject* const* params, int n_params,
               PyObject** out) {
    for (int i = 0; i < n_params; ++i) out[i] = nullptr;
    if (nargs > n_params) return false;
    for (Py_ssize_t i = 0; i < nargs; ++i) out[i] = args[i];
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; ++k) {
        PyObject* name = PyTuple_GET_ITEM(kwnames, k);
        int j = 0;
        while (j < n_params && PyUnicode_Compare(name, params[j]) != 0) ++j;
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return false;
        }
        if (j == n_params || out[j]) return false;
        out[j] = args[nargs + k];
    }
    return true;
}

fast try_fast_step(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    ref keep_alive(ref::incref(self));
    Engine* eng = engine_of(self);
    if (!eng) return fast::fallback;
    const call_scope scope{eng};
    PyObject* bound[2];
    switch (protocol_of(static_cast<kind>(eng->kind))) {
        case protocol::standard: {
            // Only a plain step has a fast path; step(epoch) takes torch's route for its warning.
            if (!bind_args(args, nargs, kwnames, &names.epoch, 1, bound)) return fast::fallback;
            if (bound[0] && bound[0] != Py_None) return fast::fallback;
            // A fallback here runs torch's step(), whose _update_lr() comes back to the engine and
            // counts the deferred update there: count it once, not twice.
            const fast r = standard_update(eng, self, true, Py_None);
            return r == fast::fallback ? r : count(eng, r);
        }
        case protocol::warm_restarts: {
            if (!bind_args(args, nargs, kwnames, &names.epoch, 1, bound)) return fast::fallback;
            return count(eng, cawr_step(eng, self, bound[0] ? bound[0] : Py_None));
        }
        case protocol::plateau: {
            static PyObject* metrics = PyUnicode_InternFromString("metrics");
            PyObject* params[2] = {metrics, names.epoch};
            if (!bind_args(args, nargs, kwnames, params, 2, bound) || !bound[0]) return fast::fallback;
            if (bound[1] && bound[1] != Py_None) return fast::fallback;  // the deprecation warning
            return count(eng, plateau_step(eng, self, bound[0]));
        }
        case protocol::composite: {
            if (nargs != 0 || (kwnames && PyTuple_GET_SIZE(kwnames) != 0)) return fast::fallback;
            const bool seq = static_cast<kind>(eng->kind) == kind::sequential_lr;
            return count(eng, seq ? sequential_step(eng, self) : chained_step(eng, self));
        }
        case protocol::scheduled:  // its own C step (scheduled_step_def); here only through super()
            return fast::fallback;
    }
    return fast::fallback;
}

PyObject* scheduler_step(PyObject* self, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
    const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (refs.base_type && PyObject_TypeCheck(self, refs.base_type)) {
        PyObject* e = *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(self) + refs.engine_offset);
        if (e && Py_TYPE(e) == engine_type && reinterpret_cast<Engine*>(e)->capturable) {
            // Capturable mode: the device-side step (python/fastlr/_capturable.py) takes the call.
            static PyObject* name = PyUnicode_InternFromString("_fastlr_capturable_step");
            ref meth(PyObject_GetAttr(self, name));
            if (!meth) return nullptr;
            return PyObject_Vectorcall(meth.get(), args, nargsf, kwnames);
        }
    }
    const fast r = try_fast_step(self, args, nargs, kwnames);
    if (r == fast::handled) Py_RETURN_NONE;
    if (r == fast::error) return nullptr;
    // Everything else is torch's step() (the class after fastlr's LRScheduler in the MRO): its
    // warnings (stacklevel=2 lands in the caller's frame, as this C frame is invisible), counters,
    // and, for the standard protocol, _update_lr, which comes back to the fast path.
    ref sup(PyObject_CallFunctionObjArgs(reinterpret_cast<PyObject*>(&PySuper_Type), refs.base_type, self, nullptr));
    if (!sup) return nullptr;
    ref meth(PyObject_GetAttr(sup.get(), names.step));
    if (!meth) return nullptr;
    return PyObject_Vectorcall(meth.get(), args, nargsf, kwnames);
}

PyMethodDef step_defs[] = {
    {"step", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(scheduler_step)),
     METH_FASTCALL | METH_KEYWORDS,
     "step($self, /, epoch=None)\n--\n\n"
     "Advance the schedule by one step and write the new learning rates into the optimizer.\n\n"
     "Computed by fastlr's C++ engine for all param groups in one call, bit for bit as torch's\n"
     "scheduler computes them. ``epoch`` is deprecated in torch; when given, ``last_epoch`` is set\n"
     "to it and the closed form is used where the class has one, as in torch."},
    {"step", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(scheduler_step)),
     METH_FASTCALL | METH_KEYWORDS,
     "step($self, /, epoch=None)\n--\n\n"
     "Advance the schedule (``epoch=None``) or set it to ``epoch`` (an int or a fractional epoch),\n"
     "exactly as torch's CosineAnnealingWarmRestarts.step, and write the new learning rates."},
    {"step", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(scheduler_step)),
     METH_FASTCALL | METH_KEYWORDS,
     "step($self, /, metrics, epoch=None)\n--\n\n"
     "Record ``metrics`` (a float or a 0-d tensor) and reduce the learning rates after ``patience``\n"
     "epochs without improvement, exactly as torch's ReduceLROnPlateau.step."},
    {"step", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(scheduler_step)),
     METH_FASTCALL | METH_KEYWORDS,
     "step($self, /)\n--\n\n"
     "Step the member schedulers exactly as torch's composite does, without a Python loop over the\n"
     "param groups."},
};

}  // namespace

// ------------------------------------------------------------------------------------------------
// Readers shared by the protocols.

bool fit(Engine* e, std::size_t n) {
    try {
        if (e->x->size() < n) {
            e->v1->resize(n);
            e->v2->resize(n);
            e->holders->resize(2 * n);
            e->x->resize(n);
            e->y->resize(n);
            e->mx->resize(n);
            e->my->resize(n);
            e->out->resize(n);
            e->objs->resize(n, nullptr);
        }
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
        return false;
    }
    return true;
}

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

bool dict_float(PyObject* d, PyObject* key, double& out) {
    PyObject* o = PyDict_GetItemWithError(d, key);
    if (!o || !PyFloat_CheckExact(o)) {
        PyErr_Clear();
        return false;
    }
    out = PyFloat_AS_DOUBLE(o);
    return true;
}

bool dict_bool(PyObject* d, PyObject* key, bool& out) {
    PyObject* o = PyDict_GetItemWithError(d, key);
    if (o != Py_True && o != Py_False) {
        PyErr_Clear();
        return false;
    }
    out = o == Py_True;
    return true;
}

PyObject* from_num(pynum v) { return v.is_int ? PyLong_FromLongLong(v.i) : PyFloat_FromDouble(v.d); }

namespace {

/// Whether values under `key` bound the momentum side (torch's base/max momentum lists and keys).
bool momentum_key(PyObject* key) {
    static PyObject* max_m = PyUnicode_InternFromString("max_momentum");
    static PyObject* base_m = PyUnicode_InternFromString("base_momentum");
    if (key == names.base_momentums || key == names.max_momentums || key == max_m || key == base_m) return true;
    return PyUnicode_CompareWithASCIIString(key, "max_momentum") == 0 ||
           PyUnicode_CompareWithASCIIString(key, "base_momentum") == 0;
}

/// The value of tensor element `o` at position i under `key`, through the engine's cache.
bool tensor_element(Engine* eng, PyObject* key, Py_ssize_t i, PyObject* o, double& out) {
    if (!refs.describe) return false;
    auto& cache = *eng->tcache;
    const std::size_t si = static_cast<std::size_t>(i);
    std::vector<Engine::tensor_ref>* per_key = nullptr;
    for (auto& kv : cache)
        if (kv.first == key) per_key = &kv.second;
    try {
        if (!per_key) {
            cache.emplace_back(key, std::vector<Engine::tensor_ref>());
            per_key = &cache.back().second;
        }
        if (per_key->size() <= si) per_key->resize(si + 1);
    } catch (const std::bad_alloc&) {
        return false;
    }
    Engine::tensor_ref& t = (*per_key)[si];
    if (t.obj != o) {
        ref d(PyObject_CallOneArg(refs.describe, o));  // (pointer, code, value) or None
        unsigned long long ptr = 0;
        int code = 0;
        double value = 0.0;
        if (!d || d.get() == Py_None || !PyArg_ParseTuple(d.get(), "Kid", &ptr, &code, &value)) {
            PyErr_Clear();
            return false;
        }
        Py_INCREF(o);
        Py_XSETREF(t.obj, o);
        t.ptr = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(ptr));
        t.code = static_cast<std::uint8_t>(code);
        t.value = value;
    }
    const bool mom = momentum_key(key);
    (mom ? eng->tensor_operand_mom : eng->tensor_operand) = true;
    try {
        const std::size_t k = 2 * si + (mom ? 1 : 0);
        if (eng->tgen->size() <= k) eng->tgen->resize(k + 1, 0u);
        (*eng->tgen)[k] = eng->call;
    } catch (const std::bad_alloc&) {
        return false;
    }
    if (t.code == 0) out = static_cast<double>(*static_cast<const float*>(t.ptr));
    else if (t.code == 1) out = *static_cast<const double*>(t.ptr);
    else out = t.value;
    return true;
}

}  // namespace

bool value_of(Engine* eng, PyObject* key, Py_ssize_t i, PyObject* o, double& out) {
    if (PyFloat_CheckExact(o)) {
        out = PyFloat_AS_DOUBLE(o);
        return true;
    }
    return tensor_element(eng, key, i, o, out);
}

bool group_value(Engine* eng, PyObject* g, PyObject* key, Py_ssize_t i, double& out) {
    PyObject* o = PyDict_GetItemWithError(g, key);
    if (!o) {
        PyErr_Clear();
        return false;
    }
    return value_of(eng, key, i, o, out);
}

bool gather_list(Engine* eng, PyObject* d, PyObject* key, Py_ssize_t n, double* out) {
    PyObject* l = PyDict_GetItemWithError(d, key);
    if (!l || !PyList_CheckExact(l) || PyList_GET_SIZE(l) != n) {
        PyErr_Clear();
        return false;
    }
    PyObject** items = reinterpret_cast<PyListObject*>(l)->ob_item;
    const std::size_t un = static_cast<std::size_t>(n);
    // The same float objects as last time: the same values (see Engine::float_list).
    Engine::float_list* fl = nullptr;
    for (auto& kv : *eng->fcache)
        if (kv.first == key) fl = &kv.second;
    if (fl && fl->items.size() == un && std::memcmp(fl->items.data(), items, un * sizeof(PyObject*)) == 0) {
        std::memcpy(out, fl->values.data(), un * sizeof(double));
        return true;
    }
    // The key's cached tensor elements, looked up once (tensor lrs make base_lrs a list of tensors).
    const std::vector<Engine::tensor_ref>* per_key = nullptr;
    for (const auto& kv : *eng->tcache)
        if (kv.first == key) per_key = &kv.second;
    const bool mom = momentum_key(key);
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* o = items[i];
        if (PyFloat_CheckExact(o)) {
            out[i] = PyFloat_AS_DOUBLE(o);
            continue;
        }
        const std::size_t si = static_cast<std::size_t>(i);
        const std::size_t k = 2 * si + (mom ? 1 : 0);
        if (per_key && si < per_key->size() && (*per_key)[si].obj == o && k < eng->tgen->size()) {
            // Described before (the same object): read its value, and mark the call as tensor_element does.
            const Engine::tensor_ref& t = (*per_key)[si];
            (mom ? eng->tensor_operand_mom : eng->tensor_operand) = true;
            (*eng->tgen)[k] = eng->call;
            if (t.code == 0) out[i] = static_cast<double>(*static_cast<const float*>(t.ptr));
            else if (t.code == 1) out[i] = *static_cast<const double*>(t.ptr);
            else out[i] = t.value;
            continue;
        }
        if (!tensor_element(eng, key, i, o, out[i])) return false;
        per_key = nullptr;  // the cache may have grown (moved): look it up again
        for (const auto& kv : *eng->tcache)
            if (kv.first == key) per_key = &kv.second;
    }
    // A list of floats only (tensors are read again on every call): remember its objects.
    for (Py_ssize_t i = 0; i < n; ++i)
        if (!PyFloat_CheckExact(items[i])) return true;
    try {
        std::vector<PyObject*> fresh(items, items + n);  // allocated before anything changes
        std::vector<double> values(out, out + n);
        if (!fl) {
            eng->fcache->emplace_back(key, Engine::float_list{});
            fl = &eng->fcache->back().second;
            Py_INCREF(key);  // owned by the cache from here (released with the engine)
        }
        for (PyObject* o : fresh) Py_INCREF(o);
        fl->items.swap(fresh);
        fl->values.swap(values);
        for (PyObject* o : fresh) Py_DECREF(o);  // the previous floats: releasing them runs no Python
    } catch (const std::bad_alloc&) {
        // Not remembered: the next call reads the list again.
    }
    return true;
}

fast open_groups(PyObject* self, frame& f, Engine* eng) {
    f.self = self;
    f.dict.reset(eng && eng->dict ? ref::incref(eng->dict) : PyObject_GenericGetDict(self, nullptr));
    if (!f.dict) {
        PyErr_Clear();
        return fast::fallback;
    }
    PyObject* opt = PyDict_GetItemWithError(f.dict.get(), names.optimizer);
    if (!opt) return PyErr_Clear(), fast::fallback;
    f.groups.reset(PyObject_GetAttr(opt, names.param_groups));  // may be a property (wrapped optimizers)
    if (!f.groups) return PyErr_Clear(), fast::fallback;
    if (!PyList_CheckExact(f.groups.get())) return fast::fallback;
    f.n = PyList_GET_SIZE(f.groups.get());
    return fast::handled;
}

PyObject* current_lrs(PyObject* optimizer, PyObject* groups, Py_ssize_t n) {
    ref last(PyList_New(n));
    if (!last) return nullptr;
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* g = PyList_GET_ITEM(groups, i);
        PyObject* v = PyDict_CheckExact(g) ? PyDict_GetItemWithError(g, names.lr) : nullptr;
        if (!v || !PyFloat_CheckExact(v)) {  // tensors are cloned, missing keys raise: torch's helper
            PyErr_Clear();
            return PyObject_CallFunctionObjArgs(refs.val_list, optimizer, names.lr, nullptr);
        }
        Py_INCREF(v);
        PyList_SET_ITEM(last.get(), i, v);
    }
    return last.release();
}

Engine* engine_for_call(PyObject* self) { return engine_of(self); }

bool has_c_step(PyObject* obj) {
    PyObject* s = _PyType_Lookup(Py_TYPE(obj), names.step);  // borrowed
    if (!s || Py_TYPE(s) != &PyMethodDescr_Type) return false;
    return reinterpret_cast<PyMethodDescrObject*>(s)->d_method->ml_meth ==
           reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(scheduler_step));
}
void release_call(Engine* eng) {
    if (eng) Py_CLEAR(eng->dict);
}

Engine* engine_in_slot(PyObject* obj) {
    if (!refs.base_type || !PyObject_TypeCheck(obj, refs.base_type)) return nullptr;
    PyObject* e = *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(obj) + refs.engine_offset);
    return e && Py_TYPE(e) == engine_type ? reinterpret_cast<Engine*>(e) : nullptr;
}

PyObject* last_lr_of(PyObject* member) {
    // A fastlr member whose `_last_lr` is current in its __dict__ (no tensor step pending, not
    // capturable) and whose get_last_lr() is torch's: read it without running Python.
    if (refs.base_type && PyObject_TypeCheck(member, refs.base_type)) {
        auto slot = [member](Py_ssize_t off) { return *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(member) + off); };
        PyObject* e = slot(refs.engine_offset);
        PyObject* cap = slot(refs.capture_offset);
        const bool stale = e && Py_TYPE(e) == engine_type && reinterpret_cast<Engine*>(e)->last_stale;
        if (!stale && (!cap || cap == Py_None)) {
            ref fn(PyObject_GetAttr(reinterpret_cast<PyObject*>(Py_TYPE(member)), names.get_last_lr));
            if (fn && fn.get() == refs.get_last_lr) {
                ref d(PyObject_GenericGetDict(member, nullptr));
                PyObject* last = d ? PyDict_GetItemWithError(d.get(), names.last_lr) : nullptr;
                if (last) return ref::incref(last);
            }
            PyErr_Clear();
        }
    }
    return PyObject_CallMethodNoArgs(member, names.get_last_lr);
}

PyObject* lent_composite = nullptr;

last_lr_holders holders_of(PyObject* prev, Py_ssize_t n) {
    last_lr_holders h;
#ifndef Py_GIL_DISABLED  // reference counts are no proof of exclusivity there
    if (!prev || !PyList_CheckExact(prev) || PyList_GET_SIZE(prev) != n) return h;
    PyObject* co = lent_composite ? PyDict_GetItem(lent_composite, names.last_lr) : nullptr;
    if (co == prev) {  // SequentialLR shares the member's list
        h.in_place = Py_REFCNT(prev) == 2;
        return h;
    }
    h.in_place = Py_REFCNT(prev) == 1;
    if (h.in_place && co && PyList_CheckExact(co) && Py_REFCNT(co) == 1 && PyList_GET_SIZE(co) == n) {
        h.co = co;
        h.n = n;
    }
#else
    (void)prev, (void)n;
#endif
    return h;
}

bool set_within_step(PyObject* d, PyObject* value) {
    PyObject* cur = PyDict_GetItemWithError(d, names.within_step);
    if (cur == value) return true;
    PyErr_Clear();
    return PyDict_SetItem(d, names.within_step, value) == 0;
}

}  // namespace fastlr_py

using namespace fastlr_py;

void register_scheduler(py::module_& m) {
    init_names();
    engine_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&engine_spec));
    if (!engine_type) throw py::error_already_set();
    m.add_object("Engine", py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(engine_type)));
    // Which of CPython's object internals this build relies on (see scheduler.hpp), for tests and
    // `python -m fastlr bench`: a build for CPython 3.14's code path reports both False.
    py::dict build;
    build["group_memo"] = py::str(!FASTLR_GROUP_MEMO ? "off" : FASTLR_MEMO_WATCH ? "dict watchers" : "version tags");
    build["tuple_in_place"] = py::bool_(FASTLR_TUPLE_IN_PLACE != 0);
#ifdef FASTLR_FORCE_PY314_PATH
    build["as_py314"] = py::bool_(true);
#else
    build["as_py314"] = py::bool_(false);
#endif
    m.attr("BUILD") = build;
    init_group_memo();
    m.def(
        "_group_memo", [](py::object enabled) {
            if (!enabled.is_none()) set_group_memo(enabled.cast<bool>());
            return group_memo_enabled;
        },
        py::arg("enabled") = py::none(),
        "Whether the group memo is on (tests; `enabled` switches it). Off: every step looks the keys up.");
    py::class_<GroupWatch>(m, "GroupWatch",
                           "Whether an optimizer's param groups still hold the objects they held when "
                           "watched (capturable mode's per-step staleness check).")
        .def(py::init([](py::list groups, std::vector<std::string> keys) {
                 std::vector<PyObject*> ks;
                 for (const auto& k : keys) {
                     PyObject* o = PyUnicode_InternFromString(k.c_str());
                     if (!o) throw py::error_already_set();
                     ks.push_back(o);  // interned strings live as long as the interpreter here
                 }
                 return new GroupWatch(groups.ptr(), std::move(ks));
             }),
             py::arg("groups"), py::arg("keys"))
        .def("take", [](GroupWatch& w, py::object groups) { w.take(groups.ptr()); }, py::arg("groups"),
             "Watch `groups` as they are now.")
        .def("unchanged", [](const GroupWatch& w, py::object groups) { return w.unchanged(groups.ptr()); },
             py::arg("groups"), "Same list, same dicts, same objects under the keys since the last take().");
    m.def(
        "_dict_stamp", [](py::object d) -> py::object {
            std::uint64_t v = 0;
            if (!dict_stamp(d.ptr(), v)) return py::none();
            return py::int_(v);
        },
        "The stamp the group memo compares for dict `d` (None where it cannot follow d). Tests.");

    m.def(
        "_install",
        [](py::object cls, py::object slot_descr, py::dict r) {
            if (!PyType_Check(cls.ptr())) throw py::type_error("_install expects the LRScheduler class");
            if (Py_TYPE(slot_descr.ptr()) != &PyMemberDescr_Type)
                throw py::type_error("_install expects the _fastlr_engine slot descriptor");
            PyMemberDef* md = reinterpret_cast<PyMemberDescrObject*>(slot_descr.ptr())->d_member;
            if (md->type != T_OBJECT_EX) throw py::type_error("unexpected slot type");
            auto take = [&](const char* key) { return py::object(r[key]).release().ptr(); };
            refs.base_type = reinterpret_cast<PyTypeObject*>(cls.release().ptr());
            refs.engine_offset = md->offset;
            refs.counter_type = take("Counter");
            refs.partial_type = take("partial");
            refs.update_group = take("update_group");
            refs.val_list = take("val_list");
            refs.triangular = take("triangular");
            refs.triangular2 = take("triangular2");
            refs.exp_range = take("exp_range");
            refs.swa_cos = take("swa_cos");
            refs.swa_linear = take("swa_linear");
            refs.pack_groups = take("pack_groups");
            refs.describe = take("describe");
            refs.get_last_lr = take("get_last_lr");
            PyObject* cap = r["capture_slot"].ptr();
            if (Py_TYPE(cap) != &PyMemberDescr_Type) throw py::type_error("expected the _fastlr_capture slot");
            refs.capture_offset = reinterpret_cast<PyMemberDescrObject*>(cap)->d_member->offset;
            refs.device_apply = take("device_apply");
        },
        py::arg("base"), py::arg("slot"), py::arg("refs"),
        "Wire the fast path into fastlr.lr_scheduler.LRScheduler (called once by that module).");

    m.def(
        "_install_step",
        [](py::object cls, int proto) {
            if (!PyType_Check(cls.ptr()) || !refs.base_type ||
                !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(cls.ptr()), refs.base_type))
                throw py::type_error("_install_step expects a subclass of fastlr's LRScheduler");
            if (proto < 0 || proto > 4) throw py::value_error("unknown step protocol");
            PyMethodDef* def = proto == 4 ? &scheduled_step_def : &step_defs[proto];
            PyObject* descr = PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls.ptr()), def);
            if (!descr) throw py::error_already_set();
            const int rc = PyObject_SetAttrString(cls.ptr(), "step", descr);
            Py_DECREF(descr);
            if (rc < 0) throw py::error_already_set();
        },
        py::arg("cls"), py::arg("protocol"),
        "Install the C step() on `cls` with protocol 0 (LRScheduler), 1 (warm restarts), 2 (plateau),\n"
        "3 (composites) or 4 (ScheduledLR: its own step, whose fallback is its Python step); for 0-3 the\n"
        "protocol only selects the signature shown, the engine kind selects the work.");

    m.def(
        "replay",
        [](py::handle self, std::int64_t k) -> std::int64_t {
            if (k < 0) throw py::value_error("replay needs k >= 0");
            ref keep_alive(ref::incref(self.ptr()));
            Engine* eng = engine_of(self.ptr());
            const call_scope scope{eng};
            if (!eng || k == 0) return 0;
            std::int64_t done = 0;
            const kind kd = static_cast<kind>(eng->kind);
            const fast r = kd == kind::cosine_warm_restarts ? replay_warm_restarts(eng, self.ptr(), k, done)
                                                             : replay_standard(eng, self.ptr(), k, done);
            if (r == fast::error) throw py::error_already_set();
            return done;
        },
        py::arg("scheduler"), py::arg("k"),
        "Replay k plain steps in C++ (seek). Returns how many were done; the rest must be stepped.");

    m.def(
        "step_n",
        [](py::handle self, std::int64_t k) {
            // k calls of self.step(), without a Python loop (composites, lambda classes).
            ref meth(PyObject_GetAttr(self.ptr(), names.step));
            if (!meth) throw py::error_already_set();
            for (std::int64_t i = 0; i < k; ++i) {
                ref r(PyObject_CallNoArgs(meth.get()));
                if (!r) throw py::error_already_set();
            }
        },
        py::arg("scheduler"), py::arg("k"), "Call scheduler.step() k times.");

    m.def(
        "update",
        [](py::handle self, py::handle epoch) -> bool {
            ref keep_alive(ref::incref(self.ptr()));
            Engine* eng = engine_of(self.ptr());
            const call_scope scope{eng};
            if (!eng || protocol_of(static_cast<kind>(eng->kind)) != protocol::standard) return false;
            const fast r = count(eng, standard_update(eng, self.ptr(), false, epoch.ptr()));
            if (r == fast::error) throw py::error_already_set();
            return r == fast::handled;
        },
        py::arg("scheduler"), py::arg("epoch") = py::none(),
        "torch's LRScheduler._update_lr(epoch) on the fast path. Returns False, having changed nothing,\n"
        "when torch's Python code must run this update instead.");
}
