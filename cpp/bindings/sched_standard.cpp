// torch's standard scheduler protocol on the fast path: LRScheduler.step() -> _update_lr(epoch) ->
// get_lr() / _get_closed_form_lr(), for every class that does not override step(): the decays,
// CosineAnnealingLR, the lambda classes, CyclicLR, OneCycleLR and SWALR.
#include "scheduler.hpp"

#include <fastlr/cosine.hpp>
#include <fastlr/cyclic.hpp>
#include <fastlr/decay.hpp>
#include <fastlr/swa.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace fastlr_py {
group_memo* memo_for(Engine* eng, const plan& p, Py_ssize_t n) {
#if FASTLR_GROUP_MEMO
    if (!group_memo_enabled) return nullptr;
    PyObject* keys[4] = {p.lr.x_key, p.lr.y_key, p.momentum ? p.mom.x_key : nullptr, p.momentum ? p.mom.y_key : nullptr};
    auto& memo = *eng->memo;
    bool same = true;
    for (int k = 0; k < 4; ++k) same = same && keys[k] == eng->memo_keys[k];
    try {
        if (!same) {
            memo.assign(static_cast<std::size_t>(n), group_memo{});
            for (int k = 0; k < 4; ++k) {
                Py_XINCREF(keys[k]);
                Py_XSETREF(eng->memo_keys[k], keys[k]);
            }
        } else if (memo.size() < static_cast<std::size_t>(n)) {
            memo.resize(static_cast<std::size_t>(n));
        }
    } catch (const std::bad_alloc&) {
        return nullptr;
    }
    return memo.data();
#else
    (void)eng, (void)p, (void)n;
    return nullptr;
#endif
}

namespace {

bool has_closed_form(kind k) { return k >= kind::step_lr && k <= kind::cosine_annealing_lr; }

/// The items of a `_last_lr` list updated in place that a pass replaced, kept (owned, in the engine's
/// `objs`, null outside a pass) until the pass is over: a failed pass puts them back, so that the list
/// is exactly what it was, as torch's would be (its new list is only stored once the step succeeded;
/// an old item is not necessarily the group's old lr, e.g. after torch's own step failed midway).
struct list_stash {
    PyObject* list;     // null: nothing to keep (a new list)
    PyObject** slot;    // n slots
    Py_ssize_t hi = 0;  // slots [0, hi) may be set
    list_stash(PyObject* l, Engine* eng) : list(l), slot(eng->objs->data()) {}
    list_stash(const list_stash&) = delete;
    list_stash& operator=(const list_stash&) = delete;
    /// list[i] = item (a new reference, stolen); the old item is kept.
    void replace(Py_ssize_t i, PyObject* item) {
        PyObject* old = PyList_GET_ITEM(list, i);
        PyList_SET_ITEM(list, i, item);
        if (slot[i]) Py_DECREF(old);  // replaced twice in one pass: the first original is kept
        else slot[i] = old;
        if (i + 1 > hi) hi = i + 1;
    }
    /// Put back every replaced item.
    void restore() {
        for (Py_ssize_t i = 0; i < hi; ++i) {
            if (!slot[i]) continue;
            PyObject* cur = PyList_GET_ITEM(list, i);
            PyList_SET_ITEM(list, i, slot[i]);
            slot[i] = nullptr;
            Py_DECREF(cur);
        }
        hi = 0;
    }
    /// The pass is over (committed or restored): release what is kept.
    ~list_stash() {
        for (Py_ssize_t i = 0; i < hi; ++i) Py_CLEAR(slot[i]);
    }
};

/// What every standard step shares: the instance dict, counters and the optimizer's group list.
struct std_frame : frame {
    std::int64_t step_count = 0;
    std::int64_t last_epoch = 0;
    bool is_initial = false;
    ref le_obj;            // the new last_epoch as the Python int torch stores
    std::int64_t le = 0;   // its value
    ref sc_obj;            // the new _step_count (from step()), allocated up front
};

fast open_standard(Engine* eng, PyObject* self, bool from_step, PyObject* epoch, std_frame& f) {
    fast r = open_groups(self, f, eng);
    if (r != fast::handled) return r;
    PyObject* d = f.dict.get();
    if (!to_counter(PyDict_GetItemWithError(d, names.step_count), f.step_count)) return PyErr_Clear(), fast::fallback;
    if (from_step && f.step_count == 1) return fast::via_torch;  // the order warnings live in torch's step()
    if (!to_counter(PyDict_GetItemWithError(d, names.last_epoch), f.last_epoch)) return PyErr_Clear(), fast::fallback;
    if (!dict_bool(d, names.is_initial, f.is_initial)) return fast::fallback;
    if (epoch == Py_None) {
        f.le = f.last_epoch + 1;
        f.le_obj.reset(PyLong_FromLongLong(f.le));
        if (!f.le_obj) return fast::error;
    } else {
        if (!to_counter(epoch, f.le)) return fast::fallback;
        f.le_obj.reset(ref::incref(epoch));  // torch stores the caller's int object itself
    }
    if (from_step) {
        f.sc_obj.reset(PyLong_FromLongLong(f.step_count + 1));
        if (!f.sc_obj) return fast::error;
    }
    return fast::handled;
}

fastlr::step_state state_of(const std_frame& f, bool from_step) {
    return fastlr::step_state{f.le, f.is_initial, f.step_count + (from_step ? 1 : 0)};
}

/// Store counters as torch's step()/_update_lr() leave them (and in torch's key order), then the new
/// `_last_lr` (none after a tensor step: the engine materialises it on demand). Only MemoryError can
/// fail here.
fast commit(PyObject* d, const std_frame& f, PyObject* last) {
    if (f.sc_obj && PyDict_SetItem(d, names.step_count, f.sc_obj.get()) < 0) return fast::error;
    if (PyDict_SetItem(d, names.last_epoch, f.le_obj.get()) < 0) return fast::error;
    if (!set_within_step(d, Py_False)) return fast::error;
    if (last && PyDict_SetItem(d, names.last_lr, last) < 0) return fast::error;
    return fast::handled;
}

/// Execute `p` and commit the step.
fast run(Engine* eng, std_frame& f, const plan& p) {
    ref last;
    const fast r = execute(eng, f, p, last);
    if (r != fast::handled) return r;
    return commit(f.dict.get(), f, last.get());
}

/// The plan of the decays, CosineAnnealingLR and SWALR: one update of the current lr, reading the
/// base lrs where the op does (torch zips base_lrs with the groups strictly wherever it reads them).
fast single_plan(Engine* eng, const std_frame& f, const update& u, plan& p) {
    p.lr.u = u;
    if (u.x_is_base || u.kind == update::op::cos_add) {
        if (!fit(eng, static_cast<std::size_t>(f.n))) return fast::error;
        double* arr = u.x_is_base ? eng->x->data() : eng->y->data();
        if (!gather_list(eng, f.dict.get(), names.base_lrs, f.n, arr)) return fast::fallback;
        (u.x_is_base ? p.lr.x : p.lr.y) = arr;
    }
    return fast::handled;
}

// ------------------------------------------------------------------------------------------------
// The decays and CosineAnnealingLR: scalars from the attributes, then one pass.

/// A decay class's attributes, read once: a step reads them on every call, a replay (seek) once for
/// all its steps.
struct decay_stepper {
    kind k = kind::none;
    fastlr::step_lr_params step;
    fastlr::multistep_lr_params multi;
    fastlr::constant_lr_params constant;
    fastlr::linear_lr_params linear;
    fastlr::exponential_lr_params exponential;
    fastlr::polynomial_lr_params polynomial;
    fastlr::cosine_annealing_lr_params cosine;
    PyObject* milestones = nullptr;                          // MultiStepLR's dict or Counter (borrowed)
    std::vector<std::pair<std::int64_t, pynum>> int_milestones;  // sorted, for a replay

    fast read(kind kk, PyObject* d) {
        k = kk;
        bool ok = false;
        switch (k) {
            case kind::step_lr: ok = dict_num(d, names.step_size, step.step_size) && dict_num(d, names.gamma, step.gamma); break;
            case kind::multistep_lr: {
                ok = dict_num(d, names.gamma, multi.gamma);
                milestones = PyDict_GetItemWithError(d, names.milestones);
                // A plain dict or collections.Counter (its __contains__/__getitem__ are dict's for present keys).
                ok = ok && milestones &&
                     (PyDict_CheckExact(milestones) || reinterpret_cast<PyObject*>(Py_TYPE(milestones)) == refs.counter_type);
                break;
            }
            case kind::constant_lr:
                ok = dict_num(d, names.factor, constant.factor) && dict_num(d, names.total_iters, constant.total_iters);
                break;
            case kind::linear_lr:
                ok = dict_num(d, names.start_factor, linear.start_factor) && dict_num(d, names.end_factor, linear.end_factor) &&
                     dict_num(d, names.total_iters, linear.total_iters);
                break;
            case kind::exponential_lr: ok = dict_num(d, names.gamma, exponential.gamma); break;
            case kind::polynomial_lr:
                ok = dict_num(d, names.total_iters, polynomial.total_iters) && dict_num(d, names.power, polynomial.power);
                break;
            case kind::cosine_annealing_lr:
                ok = dict_num(d, names.T_max, cosine.T_max) && dict_num(d, names.eta_min, cosine.eta_min);
                break;
            default: break;
        }
        if (!ok) PyErr_Clear();
        return ok ? fast::handled : fast::fallback;
    }

    /// For a replay: MultiStepLR's milestones as sorted (int, count) pairs; false if a key is not an int.
    bool index_milestones() {
        if (k != kind::multistep_lr) return true;
        Py_ssize_t pos = 0;
        PyObject *key, *val;
        try {
            int_milestones.clear();
            while (PyDict_Next(milestones, &pos, &key, &val)) {
                std::int64_t m;
                pynum c;
                if (!to_counter(key, m) || !to_num(val, c)) return false;
                int_milestones.emplace_back(m, c);
            }
        } catch (const std::bad_alloc&) {
            return false;
        }
        std::sort(int_milestones.begin(), int_milestones.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        return true;
    }

    /// get_lr (chainable) at st; `le_obj` is the new last_epoch as a Python int (null in a replay).
    errc chainable(const fastlr::step_state& st, PyObject* le_obj, update& u) const {
        switch (k) {
            case kind::step_lr: return fastlr::step_lr_chainable(step, st, u);
            case kind::multistep_lr: {
                if (!le_obj) {
                    auto it = std::lower_bound(int_milestones.begin(), int_milestones.end(), st.last_epoch,
                                               [](const auto& a, std::int64_t v) { return a.first < v; });
                    const bool hit = it != int_milestones.end() && it->first == st.last_epoch;
                    return fastlr::multistep_lr_chainable(multi, hit, hit ? it->second : pynum{}, u);
                }
                PyObject* cnt = PyDict_GetItemWithError(milestones, le_obj);
                if (!cnt && PyErr_Occurred()) return PyErr_Clear(), errc::out_of_range;
                pynum c;
                if (cnt && !to_num(cnt, c)) return errc::out_of_range;
                return fastlr::multistep_lr_chainable(multi, cnt != nullptr, c, u);
            }
            case kind::constant_lr: return fastlr::constant_lr_chainable(constant, st, u);
            case kind::linear_lr: return fastlr::linear_lr_chainable(linear, st, u);
            case kind::exponential_lr: return fastlr::exponential_lr_chainable(exponential, st, u);
            case kind::polynomial_lr: return fastlr::polynomial_lr_chainable(polynomial, st, u);
            case kind::cosine_annealing_lr: return fastlr::cosine_annealing_lr_chainable(cosine, st, u);
            default: return errc::out_of_range;
        }
    }

    /// _get_closed_form_lr at st.
    errc closed(const fastlr::step_state& st, update& u) const {
        switch (k) {
            case kind::step_lr: return fastlr::step_lr_closed(step, st, u);
            case kind::multistep_lr: {
                // torch calls milestones.elements(): a plain dict has none (AttributeError in torch).
                if (reinterpret_cast<PyObject*>(Py_TYPE(milestones)) != refs.counter_type) return errc::out_of_range;
                // bisect_right(sorted(milestones.elements()), le): the elements <= le, counted.
                std::int64_t passed = 0;
                Py_ssize_t pos = 0;
                PyObject *key, *val;
                while (PyDict_Next(milestones, &pos, &key, &val)) {
                    pynum kv, cv;
                    if (!to_num(key, kv) || !to_num(val, cv) || !cv.is_int) return errc::out_of_range;
                    if (!kv.is_int && kv.d != kv.d) return errc::out_of_range;  // NaN milestones: sorted() order
                    if (cv.i <= 0) continue;                                      // elements() skips them
                    int c;
                    FASTLR_TRY(fastlr::py_cmp(kv, st.le(), c));
                    if (c <= 0 && __builtin_add_overflow(passed, cv.i, &passed)) return errc::out_of_range;
                }
                return fastlr::multistep_lr_closed(multi, passed, u);
            }
            case kind::constant_lr: return fastlr::constant_lr_closed(constant, st, u);
            case kind::linear_lr: return fastlr::linear_lr_closed(linear, st, u);
            case kind::exponential_lr: return fastlr::exponential_lr_closed(exponential, st, u);
            case kind::polynomial_lr: return fastlr::polynomial_lr_closed(polynomial, st, u);
            case kind::cosine_annealing_lr: return fastlr::cosine_annealing_lr_closed(cosine, st, u);
            default: return errc::out_of_range;
        }
    }
};

fast decay_update(kind k, PyObject* d, const fastlr::step_state& st, bool closed, PyObject* le_obj, update& u) {
    decay_stepper s;
    const fast r = s.read(k, d);
    if (r != fast::handled) return r;
    const errc e = closed ? s.closed(st, u) : s.chainable(st, le_obj, u);
    return e == errc::ok ? fast::handled : fast::fallback;
}

// ------------------------------------------------------------------------------------------------
// SWALR: scalars from _step_count; per group x = lr, y = group["swa_lr"].

fast swalr_update(PyObject* d, const fastlr::step_state& st, update& u) {
    fastlr::swalr_params p;
    if (!dict_num(d, names.anneal_epochs, p.anneal_epochs)) return fast::fallback;
    PyObject* fn = PyDict_GetItemWithError(d, names.anneal_func);
    if (fn == refs.swa_cos) p.cosine = true;
    else if (fn == refs.swa_linear) p.cosine = false;
    else return PyErr_Clear(), fast::fallback;  // a custom anneal function: torch's code calls it
    return fastlr::swalr_scalars(p, st.step_count, u) == errc::ok ? fast::handled : fast::fallback;
}

// ------------------------------------------------------------------------------------------------
// CyclicLR and OneCycleLR: closed forms that also write momentum or beta1.

/// CyclicLR's `_scale_fn_ref`, decoded (and cached on the engine while the object stays the same).
bool decode_cyclic_scale(Engine* eng, PyObject* fn, fastlr::cyclic_lr_params& p) {
    if (fn != eng->scale_ref) {
        int k;
        pynum gamma;
        if (fn == refs.triangular) {
            k = static_cast<int>(fastlr::cyclic_scale::triangular);
        } else if (fn == refs.triangular2) {
            k = static_cast<int>(fastlr::cyclic_scale::triangular2);
        } else if (reinterpret_cast<PyObject*>(Py_TYPE(fn)) == refs.partial_type) {
            // functools.partial(CyclicLR._exp_range_scale_fn, gamma): immutable once made.
            ref func(PyObject_GetAttr(fn, names.func));
            ref args(PyObject_GetAttr(fn, names.args));
            ref kw(PyObject_GetAttr(fn, names.keywords));
            if (!func || !args || !kw) return PyErr_Clear(), false;
            if (func.get() != refs.exp_range || !PyTuple_CheckExact(args.get()) || PyTuple_GET_SIZE(args.get()) != 1 ||
                !PyDict_Check(kw.get()) || PyDict_GET_SIZE(kw.get()) != 0 || !to_num(PyTuple_GET_ITEM(args.get(), 0), gamma))
                return false;
            k = static_cast<int>(fastlr::cyclic_scale::exp_range);
        } else {
            return false;
        }
        Py_INCREF(fn);
        Py_XSETREF(eng->scale_ref, fn);
        eng->scale_kind = k;
        eng->scale_gamma = gamma;
    }
    p.fn = static_cast<fastlr::cyclic_scale>(eng->scale_kind);
    p.gamma = eng->scale_gamma;
    return true;
}

fast cyclic_plan(Engine* eng, const std_frame& f, plan& pl) {
    PyObject* d = f.dict.get();
    const Py_ssize_t n = f.n;
    PyObject* custom = PyDict_GetItemWithError(d, names.scale_fn_custom);
    if (custom != Py_None) return PyErr_Clear(), fast::fallback;  // a user scale_fn: torch's code calls it
    fastlr::cyclic_lr_params p;
    if (!dict_num(d, names.total_size, p.total_size) || !dict_num(d, names.step_ratio, p.step_ratio))
        return fast::fallback;
    PyObject* fn = PyDict_GetItemWithError(d, names.scale_fn_ref);
    if (!fn || !decode_cyclic_scale(eng, fn, p)) return PyErr_Clear(), fast::fallback;
    PyObject* mode = PyDict_GetItemWithError(d, names.scale_mode);
    if (!mode || !PyUnicode_Check(mode)) return PyErr_Clear(), fast::fallback;
    p.by_cycle = mode == names.cycle || PyUnicode_Compare(mode, names.cycle) == 0;
    double sf, scale;
    if (fastlr::cyclic_lr_scalars(p, pynum::of_int(f.le), sf, scale) != errc::ok) return fast::fallback;
    if (!dict_bool(d, names.cycle_momentum, pl.momentum) || (pl.momentum && !dict_bool(d, names.use_beta1, pl.beta1)))
        return fast::fallback;
    if (!fit(eng, static_cast<std::size_t>(n))) return fast::error;
    if (!gather_list(eng, d, names.base_lrs, n, eng->x->data()) || !gather_list(eng, d, names.max_lrs, n, eng->y->data()))
        return fast::fallback;
    pl.lr.u = update{update::op::cyclic_rise, sf, scale, false};
    pl.lr.x = eng->x->data();
    pl.lr.y = eng->y->data();
    if (pl.momentum) {
        if (!gather_list(eng, d, names.base_momentums, n, eng->mx->data()) ||
            !gather_list(eng, d, names.max_momentums, n, eng->my->data()))
            return fast::fallback;
        pl.mom.u = update{update::op::cyclic_fall, sf, scale, false};
        pl.mom.x = eng->mx->data();
        pl.mom.y = eng->my->data();
    }
    return fast::handled;
}

/// OneCycleLR's plan. The phase's key names (borrowed from `_schedule_phases`, which nothing changes
/// before the writes) select the group keys each side reads.
fast onecycle_plan(const std_frame& f, plan& pl) {
    PyObject* d = f.dict.get();
    pynum total;
    if (!dict_num(d, names.total_steps, total)) return fast::fallback;
    PyObject* kind_obj = PyDict_GetItemWithError(d, names.anneal_func_type);
    bool cosine;
    if (kind_obj && PyUnicode_Check(kind_obj) && PyUnicode_Compare(kind_obj, names.cos) == 0) cosine = true;
    else if (kind_obj && PyUnicode_Check(kind_obj) && PyUnicode_Compare(kind_obj, names.linear) == 0) cosine = false;
    else return PyErr_Clear(), fast::fallback;  // legacy `anneal_func` or an unknown type: torch's code
    PyObject* phases = PyDict_GetItemWithError(d, names.schedule_phases);
    if (!phases || !PyList_CheckExact(phases)) return PyErr_Clear(), fast::fallback;
    const Py_ssize_t np = PyList_GET_SIZE(phases);
    if (np < 1 || np > 8) return fast::fallback;
    fastlr::onecycle_phase ph[8];
    for (Py_ssize_t i = 0; i < np; ++i) {
        PyObject* phase = PyList_GET_ITEM(phases, i);
        if (!PyDict_Check(phase) || !dict_num(phase, names.end_step, ph[i].end_step)) return PyErr_Clear(), fast::fallback;
    }
    std::size_t idx;
    double pct = 0.0;
    if (fastlr::onecycle_locate(ph, static_cast<std::size_t>(np), pynum::of_int(f.le), total, idx, pct) != errc::ok)
        return fast::fallback;
    update u;
    if (fastlr::onecycle_anneal(cosine, pct, u) != errc::ok) return fast::fallback;
    PyObject* phase = PyList_GET_ITEM(phases, static_cast<Py_ssize_t>(idx));
    auto key = [&](PyObject* name) {
        PyObject* k = PyDict_GetItemWithError(phase, name);
        return k && PyUnicode_CheckExact(k) ? k : nullptr;
    };
    pl.lr.u = u;
    pl.lr.x_key = key(names.start_lr);
    pl.lr.y_key = key(names.end_lr);
    if (!pl.lr.x_key || !pl.lr.y_key) return PyErr_Clear(), fast::fallback;
    if (!dict_bool(d, names.cycle_momentum, pl.momentum) || (pl.momentum && !dict_bool(d, names.use_beta1, pl.beta1)))
        return fast::fallback;
    if (pl.momentum) {
        pl.mom.u = u;
        pl.mom.x_key = key(names.start_momentum);
        pl.mom.y_key = key(names.end_momentum);
        if (!pl.mom.x_key || !pl.mom.y_key) return PyErr_Clear(), fast::fallback;
    }
    return fast::handled;
}

// ------------------------------------------------------------------------------------------------
// LambdaLR (`base_lr * lmbda(le)`) and MultiplicativeLR (`group["lr"] * lmbda(le)`): the user's
// callables run in torch's order with `_get_lr_called_within_step` set, as torch's context does; the
// arithmetic and the writes are done here.

void clear_objs(Engine* eng, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; ++i) Py_CLEAR((*eng->objs)[static_cast<std::size_t>(i)]);
}

/// The list a float step writes as `_last_lr`: the previous one (read from the instance dict `d`),
/// updated in place, when only the scheduler (and a lending composite) holds it, else a new list of n.
/// `last` is empty on MemoryError. Allocate it before reading the groups: a container allocation may
/// run the cyclic GC (and finalizers); after it no Python code runs until the step is committed.
last_lr_holders next_last_lr(PyObject* d, Py_ssize_t n, ref& last) {
    PyObject* prev = PyDict_GetItemWithError(d, names.last_lr);
    PyErr_Clear();
    const last_lr_holders h = holders_of(prev, n);
    last.reset(h.in_place ? ref::incref(prev) : PyList_New(n));
    return h;
}

/// Group i's lr float as the memo has it, if the group dict `g` is unchanged since; else null.
PyObject* memo_lr(const group_memo* memo, Py_ssize_t i, PyObject* g) {
#if FASTLR_GROUP_MEMO
    if (memo && memo_fresh(memo[i], g) && PyFloat_CheckExact(memo[i].lr))
        return memo[i].lr;
#else
    (void)memo, (void)i, (void)g;
#endif
    return nullptr;
}

/// Record that group dict `g` (an exact dict) holds lr float `lr` now, with no momentum.
void memo_note(group_memo* memo, Py_ssize_t i, PyObject* g, PyObject* lr) {
#if FASTLR_GROUP_MEMO
    if (!memo) return;
    memo_stamp(memo[i], g);
    memo[i].lr = lr;
    memo[i].mom = nullptr;
#else
    (void)memo, (void)i, (void)g, (void)lr;
#endif
}

/// Whether every group is an exact dict holding an exact float "lr" (known from the memo for a group
/// unchanged since the last step).
bool all_float_lrs(PyObject* groups, Py_ssize_t n, const group_memo* memo) {
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* g = PyList_GET_ITEM(groups, i);
        double lr = 0.0;
        if (memo_lr(memo, i, g)) continue;
        if (!PyDict_CheckExact(g) || !dict_float(g, names.lr, lr)) return false;
    }
    return true;
}

fast lambda_update(Engine* eng, std_frame& f, bool multiplicative) {
    PyObject* d = f.dict.get();
    const Py_ssize_t n = f.n;
    if (multiplicative && f.is_initial) {  // torch returns the current lrs
        plan p;
        p.lr.u = update::keep();
        return run(eng, f, p);
    }

    // Validate everything torch would trip over before any user code runs, so that a fallback never
    // calls a lambda twice: the lambdas, the base lrs, and how each group holds its lr.
    PyObject* lambdas = PyDict_GetItemWithError(d, names.lr_lambdas);
    if (!lambdas || !PyList_CheckExact(lambdas) || PyList_GET_SIZE(lambdas) != n) return PyErr_Clear(), fast::fallback;
    if (!fit(eng, static_cast<std::size_t>(n))) return fast::error;
    double* x = eng->x->data();
    double* y = eng->y->data();
    double* out = eng->out->data();
    bool tensors = eng->plr != nullptr;
    group_memo* memo = tensors ? nullptr : memo_for(eng, plan{}, n);
    if (!tensors && !all_float_lrs(f.groups.get(), n, memo)) {
        bool packed_any = false;
        const fast r = pack(eng, f, false, false, packed_any);
        if (r != fast::handled) return r;
        if (!packed_any) return fast::fallback;
        tensors = true;
    }
    bool float_groups = false;  // with tensor lrs: some group holds a Python float
    if (tensors && !tensor_groups_ok(eng, f, &float_groups)) {
        // A group's lr tensor was replaced since the groups were packed (optimizer.load_state_dict puts
        // the loaded tensors in): pack again, before any lambda runs (else every later step was torch's).
        bool packed_any = false;
        const fast r = pack(eng, f, false, false, packed_any);
        if (r != fast::handled) return r;
        float_groups = false;
        if (!packed_any || !tensor_groups_ok(eng, f, &float_groups)) return fast::fallback;
    }
    ref base_list;
    if (!multiplicative) {
        if (!gather_list(eng, d, names.base_lrs, n, x)) return fast::fallback;
        base_list.reset(ref::incref(PyDict_GetItem(d, names.base_lrs)));
        // A group holding a Python float whose base lr is a tensor: torch's product is a tensor, which
        // it assigns into the group (the group then holds a new tensor). torch's code does that step,
        // decided before any lambda runs.
        if (tensors && float_groups && eng->tensor_operand) {
            for (Py_ssize_t i = 0; i < n; ++i) {
                if (!tensor_operand_at(eng, i, false)) continue;
                PyObject* v = PyDict_GetItem(PyList_GET_ITEM(f.groups.get(), i), names.lr);
                if (v && PyFloat_Check(v)) return fast::fallback;
            }
        }
    }
    ref lambda_list(ref::incref(lambdas));
    // The second list torch's get_lr zips with the lambdas (strict): base_lrs, or the groups.
    PyObject* second = multiplicative ? f.groups.get() : base_list.get();
    // With tensor lrs, each value's operand is kept (owned; the lambda's result is in y) until the write:
    // if the groups are no longer what the executor can write (a lambda changed them), the values are
    // made with torch's own arithmetic from them, and written as torch writes them. (The results are
    // not kept as objects: thousands of floats held to the end of the step cost more than they save.)
    std::vector<std::pair<PyObject*, bool>>& kept = *eng->lam_ops;
    struct release_kept {
        std::vector<std::pair<PyObject*, bool>>& k;
        ~release_kept() {
            for (auto& pr : k) Py_XDECREF(pr.first);
            k.clear();
        }
    } release{kept};
    if (tensors) {
        try {
            kept.reserve(static_cast<std::size_t>(n));
        } catch (const std::bad_alloc&) {
            PyErr_NoMemory();
            return fast::error;
        }
    }

    // torch: _step_count += 1, then last_epoch += 1 inside the get_lr context.
    if (f.sc_obj && PyDict_SetItem(d, names.step_count, f.sc_obj.get()) < 0) return fast::error;
    if (PyDict_SetItem(d, names.last_epoch, f.le_obj.get()) < 0) return fast::error;
    if (!set_within_step(d, Py_True)) return fast::error;

    // The epoch each lambda gets: torch reads self.last_epoch at every call, and a lambda may step this
    // scheduler again or set last_epoch. One lookup per lambda: the object the dict holds is compared
    // with the one passed last (watching the instance dict instead would make each of the step's own
    // writes to it call the dict watcher, which costs more at one group than this).
    // (Where CPython has version tags, an unchanged tag saves the lookup.)
    ref epoch_obj(ref::incref(f.le_obj.get()));
#if FASTLR_GROUP_MEMO && !FASTLR_MEMO_WATCH
    std::uint64_t seen_tag = dict_version(d);
#endif
    auto refresh_epoch = [&]() -> bool {
#if FASTLR_GROUP_MEMO && !FASTLR_MEMO_WATCH
        if (dict_version(d) == seen_tag) return true;
        seen_tag = dict_version(d);
#endif
        PyObject* le = PyDict_GetItemWithError(d, names.last_epoch);
        if (le == epoch_obj.get()) return true;
        ref got(le ? ref::incref(le) : PyObject_GetAttr(f.self, names.last_epoch));  // torch's AttributeError
        if (!got) return false;
        epoch_obj.reset(got.release());
        return true;
    };

    eng->busy = true;
    bool ok = true, exotic = false;
    bool x_complete = true;  // MultiplicativeLR with tensor lrs: x holds every group's lr at its lambda
    Py_ssize_t count = 0;  // values computed (torch's list of values): n unless the lists changed size
    for (Py_ssize_t i = 0; ok; ++i) {
        // zip(self.lr_lambdas, <second>, strict=True), read lazily as torch's comprehension reads it.
        if (i >= PyList_GET_SIZE(lambda_list.get())) {
            if (i < PyList_GET_SIZE(second)) {
                PyErr_SetString(PyExc_ValueError, "zip() argument 2 is longer than argument 1");
                ok = false;
            }
            count = i;
            break;
        }
        if (i >= PyList_GET_SIZE(second)) {
            PyErr_SetString(PyExc_ValueError, "zip() argument 2 is shorter than argument 1");
            ok = false;
            break;
        }
        ref fn(ref::incref(PyList_GET_ITEM(lambda_list.get(), i)));
        ref operand;  // group["lr"] (multiplicative) or base_lrs[i]
        if (multiplicative) {
            PyObject* g = PyList_GET_ITEM(second, i);
            PyObject* v = i < n ? memo_lr(memo, i, g) : nullptr;
            if (!v) {
                // torch: group["lr"] (a KeyError, or a TypeError for a group that is not a dict)
                v = PyObject_GetItem(g, names.lr);
                if (!v) {
                    ok = false;
                    break;
                }
                operand.reset(v);
            } else {
                operand.reset(ref::incref(v));
            }
        } else {
            operand.reset(ref::incref(PyList_GET_ITEM(second, i)));
        }
        if (i > 0 && !refresh_epoch()) {  // (before the first lambda no Python ran since the commit)
            ok = false;
            break;
        }
        ref val(PyObject_CallOneArg(fn.get(), epoch_obj.get()));
        if (!val) {
            ok = false;
            break;
        }
        if (i >= n) {
            // More lambdas and operands than groups at the start (a lambda appended to both lists):
            // torch computes the value, and its write then raises after the first groups. Kept aside.
            ref prod(PyNumber_Multiply(operand.get(), val.get()));
            if (!prod) {
                ok = false;
                break;
            }
            continue;
        }
        // (An int result beyond 2**53 has no exact double: that product is made now, as an exotic one.)
        const bool int_val = PyLong_CheckExact(val.get());
        if (tensors) kept.emplace_back(ref::incref(operand.get()), int_val);
        // MultiplicativeLR multiplies the group's lr as it is now, right after its lambda (a later lambda
        // may step the scheduler again and move it): a packed tensor's value is read here.
        if (multiplicative && tensors && !PyFloat_CheckExact(operand.get()) &&
            !packed_lr_value(eng, i, operand.get(), x[i]))
            x_complete = false;
        pynum num;
        // In tensor mode a tensor operand's value is known: the base lr was gathered into x, and the
        // current lr (MultiplicativeLR) is read by the tensor executor.
        const bool plain_operand = PyFloat_CheckExact(operand.get()) || tensors;
        if (plain_operand && (PyFloat_CheckExact(val.get()) || int_val) && to_num(val.get(), num) &&
            !(int_val && tensors && !(std::fabs(num.d) < 9007199254740992.0))) {
            // x: the base lr (LambdaLR) or the current float lr (MultiplicativeLR); a packed tensor's
            // current value is read by the tensor executor.
            if (PyFloat_CheckExact(operand.get())) x[i] = PyFloat_AS_DOUBLE(operand.get());
            y[i] = num.d;
        } else {
            PyObject* prod = PyNumber_Multiply(operand.get(), val.get());
            if (!prod) {
                ok = false;
                break;
            }
            (*eng->objs)[static_cast<std::size_t>(i)] = prod;
            y[i] = 0.0;
            exotic = true;
        }
    }
    eng->busy = false;
    // torch's context manager resets the flag whether or not a lambda raised; the lambda's exception
    // is set aside meanwhile (found by the parity tests: it used to be cleared).
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
    if (!groups) {
        clear_objs(eng, n);
        return fast::error;
    }
    // Group i's value as torch computed it (a new reference), for the writes made as torch makes them.
    auto value_at = [&](Py_ssize_t i) -> PyObject* {
        PyObject* o = (*eng->objs)[static_cast<std::size_t>(i)];
        if (o) return ref::incref(o);
        if (tensors) {
            const auto& pr = kept[static_cast<std::size_t>(i)];
            if (multiplicative && x_complete && !PyFloat_CheckExact(pr.first)) {
                // torch made this product right after the group's lambda, from the tensor's value then
                // (read into x there): a later lambda may have moved the tensor since.
                return PyObject_CallMethod(pr.first, "new_tensor", "d", x[i] * y[i]);
            }
            ref val(pr.second ? PyLong_FromDouble(y[i]) : PyFloat_FromDouble(y[i]));
            return val ? PyNumber_Multiply(pr.first, val.get()) : nullptr;
        }
        return PyFloat_FromDouble(x[i] * y[i]);
    };
    // The groups are not what the executors write (a lambda changed their number, replaced the list,
    // or made a group hold something else): torch's loop over zip(param_groups, values, strict=True)
    // with its helper, its error after the groups it wrote, and `_last_lr` as it builds it.
    auto torch_write = [&]() -> fast {
        ref it(PyObject_GetIter(groups.get()));
        if (!it) return clear_objs(eng, n), fast::error;
        Py_ssize_t i = 0;
        for (;; ++i) {
            ref g(PyIter_Next(it.get()));
            if (!g) {
                if (PyErr_Occurred()) return clear_objs(eng, n), fast::error;
                if (i < count) {
                    PyErr_SetString(PyExc_ValueError, "zip() argument 2 is longer than argument 1");
                    return clear_objs(eng, n), fast::error;
                }
                break;
            }
            if (i >= count) {
                PyErr_SetString(PyExc_ValueError, "zip() argument 2 is shorter than argument 1");
                return clear_objs(eng, n), fast::error;
            }
            ref v(value_at(i));
            if (!v) return clear_objs(eng, n), fast::error;
            ref res(PyObject_CallFunctionObjArgs(refs.update_group, g.get(), names.lr, v.get(), nullptr));
            if (!res) return clear_objs(eng, n), fast::error;
        }
        clear_objs(eng, n);
        if (tensors) clear_pending_last_lr(eng);
        ref last(PyObject_CallFunctionObjArgs(refs.val_list, opt, names.lr, nullptr));
        if (!last || PyDict_SetItem(d, names.last_lr, last.get()) < 0) return fast::error;
        return fast::handled;
    };
    if (!PyList_CheckExact(groups.get()) || PyList_GET_SIZE(groups.get()) != n || count != n) return torch_write();
    // MultiplicativeLR with tensor lrs: torch multiplied the lr each group held before its lambda ran,
    // and writes into what the group holds at the end. The executor writes what it finds then, so it
    // is right only if no lambda replaced a group's lr meanwhile (stepped the scheduler again, assigned
    // an lr): else torch's arithmetic and helper. One load per group whose dict is unchanged (the
    // executor's memo), a lookup for the others.
    if (multiplicative && tensors) {
        group_memo* tm = memo_for(eng, plan{}, n);
        for (Py_ssize_t i = 0; i < n; ++i) {
            PyObject* g = PyList_GET_ITEM(groups.get(), i);
            PyObject* was = kept[static_cast<std::size_t>(i)].first;
#if FASTLR_GROUP_MEMO
            if (tm && memo_fresh(tm[i], g) && tm[i].lr == was) continue;
#else
            (void)tm;
#endif
            PyObject* cur = PyDict_Check(g) ? PyDict_GetItemWithError(g, names.lr) : nullptr;
            if (cur != was) {
                PyErr_Clear();
                return torch_write();
            }
        }
    }
    f.groups.reset(groups.release());
    groups.reset(ref::incref(f.groups.get()));
    if (tensors) {
        plan p;
        p.lr.u = update{update::op::scale_each, 0.0, 0.0, false};
        p.lr.x = multiplicative && !x_complete ? nullptr : x;
        p.lr.y = y;
        const fast r = execute_tensors(eng, f, p);
        if (r == fast::error) {
            clear_objs(eng, n);
            return r;
        }
        if (r != fast::handled) return torch_write();  // nothing written by the executor
    } else {
        fastlr::apply(update{update::op::scale_each, 0.0, 0.0, false}, x, y, out, static_cast<std::size_t>(n));
    }
    // Values only Python arithmetic could make (numpy scalars, tensors, ...), and every value of a
    // float-lr step, are written like torch writes them; a float step's `_last_lr` is built from the
    // values as they are stored (torch reads them back: the same objects).
    // As in write_single: the previous `_last_lr`, held by nothing but the instance, is updated in
    // place, and so is a float only it and its group hold.
    ref last;
    const last_lr_holders h = tensors ? last_lr_holders{} : next_last_lr(d, n, last);
    const bool in_place = h.in_place;
    if (!tensors && !last) {
        clear_objs(eng, n);
        return fast::error;
    }
    bool stored_as_is = true;  // every group holds exactly the object written (no tensor helper)
    // The items of `last` replaced (their slots in `objs` are free by then: each value is taken first).
    list_stash stash(in_place ? last.get() : nullptr, eng);
    double* old_vals = eng->v1->data();            // in place: a rewritten float's previous value
    std::uint8_t* rewritten = eng->holders->data();  // and whether group i's float was rewritten
    // A failed write (a tensor helper raising, MemoryError): as in torch, the groups written so far keep
    // their new lrs, and `_last_lr` stays as it was, items and values.
    auto fail = [&](Py_ssize_t upto) {
        if (in_place) {
            stash.restore();
            for (Py_ssize_t j = 0; j < upto; ++j) {
                if (!rewritten[j]) continue;
                PyObject* shared = PyList_GET_ITEM(last.get(), j);  // the group's float too
                ref nv(PyFloat_FromDouble(out[j]));
                if (!nv || PyDict_SetItem(PyList_GET_ITEM(f.groups.get(), j), names.lr, nv.get()) < 0) PyErr_Clear();
                reinterpret_cast<PyFloatObject*>(shared)->ob_fval = old_vals[j];
            }
        }
        clear_objs(eng, n);
        return fast::error;
    };
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject*& slot = (*eng->objs)[static_cast<std::size_t>(i)];
        if (tensors && !slot) continue;
        rewritten[i] = 0;
        if (in_place && !slot) {
            PyObject* g = PyList_GET_ITEM(f.groups.get(), i);
            PyObject* known = memo_lr(memo, i, g);
            PyObject* cur = known ? known : PyDict_CheckExact(g) ? PyDict_GetItem(g, names.lr) : nullptr;
            if (cur && PyFloat_CheckExact(cur) && PyList_GET_ITEM(last.get(), i) == cur &&
                Py_REFCNT(cur) == 2 + h.extra(cur, i)) {
                old_vals[i] = PyFloat_AS_DOUBLE(cur);
                rewritten[i] = 1;
                reinterpret_cast<PyFloatObject*>(cur)->ob_fval = out[i];
                if (!known) memo_note(memo, i, g, cur);
                continue;
            }
        }
        ref v(slot ? slot : PyFloat_FromDouble(out[i]));
        slot = nullptr;
        if (!v) return fail(i);
        PyObject* g = PyList_GET_ITEM(f.groups.get(), i);
        PyObject* cur = PyDict_CheckExact(g) ? PyDict_GetItemWithError(g, names.lr) : nullptr;
        int rc;
        if (cur && PyFloat_CheckExact(cur)) {
            rc = PyDict_SetItem(g, names.lr, v.get());
            if (last && rc == 0) {
                if (in_place) stash.replace(i, ref::incref(v.get()));
                else PyList_SET_ITEM(last.get(), i, ref::incref(v.get()));
            }
            if (rc == 0 && PyFloat_CheckExact(v.get())) memo_note(memo, i, g, v.get());
            else if (memo) memo[i].dict = nullptr;
        } else {  // a tensor lr: torch's own helper (fill_) decides
            PyErr_Clear();
            ref res(PyObject_CallFunctionObjArgs(refs.update_group, g, names.lr, v.get(), nullptr));
            rc = res ? 0 : -1;
            stored_as_is = false;
        }
        if (rc < 0) return fail(i);
    }
    if (tensors && !exotic) return fast::handled;  // `_last_lr` is materialised on demand
    if (!last || !stored_as_is) last.reset(current_lrs(opt, f.groups.get(), n));
    if (!last || PyDict_SetItem(d, names.last_lr, last.get()) < 0) return fast::error;
    if (tensors) clear_pending_last_lr(eng);  // an exotic value went through torch's helper: built now
    return fast::handled;
}

}  // namespace

/// Restore groups [0, upto) to the lr values saved in `old` (a failed one-pass write). The restored
/// floats are equal in value to the originals (float identity is not observable through torch).
static void rollback_groups(PyObject* groups, const double* old, Py_ssize_t upto) {
    for (Py_ssize_t i = 0; i < upto; ++i) {
        ref v(PyFloat_FromDouble(old[i]));
        if (!v || PyDict_SetItem(PyList_GET_ITEM(groups, i), names.lr, v.get()) < 0) PyErr_Clear();
    }
}

/// One pass over the groups: read each exact-float lr, evaluate `u`, store the new float in the group
/// and in `last` (the new `_last_lr`). Each group dict is visited once, which is what makes a step
/// cost about as much as a bare assignment loop at thousands of groups. If a group is not an exact
/// dict holding an exact float "lr" (or y_key), the groups already written are restored and nothing
/// has changed.
fast write_single(Engine* eng, PyObject* groups, Py_ssize_t n, const update& u, const operands& src, PyObject* last,
                  const last_lr_holders& h, group_memo* memo) {
    if (eng->tensor_operand || eng->tensor_operand_mom) return fast::fallback;  // torch's results: tensors
    const bool in_place = h.in_place;
    double* old = eng->out->data();
    double* old_recycled = eng->v1->data();  // the recycled float's previous value (mutated[i] == 2)
    // In place: 1 the group's float was rewritten; 2 the previous `_last_lr` float took the new value
    // and was stored in the group; 0 a new float was stored.
    std::uint8_t* mutated = eng->holders->data();
    PyObject* prev = nullptr;  // the float made for the previous group (borrowed from `last`)
    if (in_place && !fit(eng, static_cast<std::size_t>(n))) return fast::error;
    list_stash stash(in_place ? last : nullptr, eng);
    auto undo = [&](Py_ssize_t upto) {
        if (!in_place) return rollback_groups(groups, old, upto);
        stash.restore();  // the list's items as they were (the floats below get their old values)
        for (Py_ssize_t j = 0; j < upto; ++j) {
            if (memo) memo[j].dict = nullptr;
            PyObject* lj = PyList_GET_ITEM(last, j);
            if (mutated[j] == 1) {
                reinterpret_cast<PyFloatObject*>(lj)->ob_fval = old[j];
            } else if (mutated[j] == 2) {  // the list keeps its float (old value); the group a new one
                reinterpret_cast<PyFloatObject*>(lj)->ob_fval = old_recycled[j];
                ref v(PyFloat_FromDouble(old[j]));
                if (!v || PyDict_SetItem(PyList_GET_ITEM(groups, j), names.lr, v.get()) < 0) PyErr_Clear();
            } else {  // a new float replaced the group's: the old value back in the group
                ref v(PyFloat_FromDouble(old[j]));
                if (!v || PyDict_SetItem(PyList_GET_ITEM(groups, j), names.lr, v.get()) < 0) PyErr_Clear();
            }
        }
    };
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* g = PyList_GET_ITEM(groups, i);
        group_memo* gm = memo ? &memo[i] : nullptr;
        PyObject* v = nullptr;
        double y = 0.0;
        bool hit = false;  // the group dict is unchanged since the last step: no lookups
#if FASTLR_GROUP_MEMO
        if (gm && memo_fresh(*gm, g) && PyFloat_CheckExact(gm->lr)) {
            v = gm->lr;
            y = gm->y;
            hit = true;
        }
#endif
        if (!hit) {
            v = PyDict_CheckExact(g) ? PyDict_GetItemWithError(g, names.lr) : nullptr;
            bool ok = v && PyFloat_CheckExact(v);
            if (ok && src.y_key) ok = group_value(eng, g, src.y_key, i, y) && !eng->tensor_operand;
            if (!ok) {
                PyErr_Clear();
                if (gm) gm->dict = nullptr;
                undo(i);
                return fast::fallback;
            }
        }
        // What the group holds after this step, for the memo (an entry is refreshed where the dict
        // was assigned to, or was not known).
        auto note = [&](PyObject* now, bool assigned) {
#if FASTLR_GROUP_MEMO
            if (!gm || (hit && !assigned)) return;
            memo_stamp(*gm, g);
            gm->lr = now;
            gm->mom = nullptr;
            gm->y = src.y_key ? y : 0.0;
#else
            (void)now, (void)assigned;
#endif
        };
        const double cur = PyFloat_AS_DOUBLE(v);
        // Saved for every group, keep steps included: a rollback restores all groups before the
        // first unsupported one and must not write back a stale value from an earlier step.
        old[i] = cur;
        mutated[i] = 0;
        if (u.kind == update::op::keep) {  // torch re-assigns the same value: nothing to write
            if (!in_place) PyList_SET_ITEM(last, i, ref::incref(v));
            else if (PyList_GET_ITEM(last, i) != v) stash.replace(i, ref::incref(v));
            note(v, false);
            continue;
        }
        if (src.y) y = src.y[i];
        const double value = fastlr::eval(u, src.x ? src.x[i] : cur, y);
        // The previous step's float, seen only by this group and the previous `_last_lr` (which
        // nothing else holds either), can take the new value itself: no float to allocate, none to
        // free, no dict write. Nobody can observe the difference from storing a new float.
        if (in_place) {
            PyObject* prev_float = PyList_GET_ITEM(last, i);
            if (prev_float == v && Py_REFCNT(v) == 2 + h.extra(v, i)) {
                reinterpret_cast<PyFloatObject*>(v)->ob_fval = value;
                mutated[i] = 1;
                note(v, false);
                continue;
            }
            // The group's float is held elsewhere too (a composite's members share the groups), but
            // the previous `_last_lr` float is ours alone: it takes the new value and goes to the
            // group (one dict write, no float made or freed).
            if (prev_float != v && PyFloat_CheckExact(prev_float) &&
                Py_REFCNT(prev_float) == 1 + h.extra(prev_float, i)) {
                old_recycled[i] = PyFloat_AS_DOUBLE(prev_float);
                reinterpret_cast<PyFloatObject*>(prev_float)->ob_fval = value;
                if (PyDict_SetItem(g, names.lr, prev_float) < 0) {
                    reinterpret_cast<PyFloatObject*>(prev_float)->ob_fval = old_recycled[i];
                    undo(i);
                    return fast::error;
                }
                mutated[i] = 2;
                prev = prev_float;
                note(prev_float, true);
                continue;
            }
        }
        // Groups often share an lr: reuse the previous group's float when the bits are equal (torch
        // would store equal floats; only their identity differs, which nothing can rely on).
        PyObject* nv;
        // (PyFloat_AS_DOUBLE is an inline function from 3.12 on: copy its value, its result has no address.)
        const double prev_value = prev ? PyFloat_AS_DOUBLE(prev) : 0.0;
        if (prev && std::memcmp(&prev_value, &value, sizeof value) == 0) {
            nv = ref::incref(prev);
        } else {
            nv = PyFloat_FromDouble(value);
        }
        if (!nv || PyDict_SetItem(g, names.lr, nv) < 0) {
            Py_XDECREF(nv);
            undo(i);
            return fast::error;
        }
        if (in_place) stash.replace(i, nv);  // the old item is released when the pass is over
        else PyList_SET_ITEM(last, i, nv);
        prev = nv;
        note(nv, true);
    }
    return fast::handled;
}

namespace {

/// A side's operands for group i (float executor): from the arrays or the group's keys.
bool read_operands(Engine* eng, PyObject* g, const side& sd, Py_ssize_t i, double cur, double& x, double& y) {
    if (sd.x) x = sd.x[i];
    else if (sd.x_key) {
        if (!group_value(eng, g, sd.x_key, i, x)) return false;
    } else x = cur;
    if (!sd.u.needs_y()) {
        y = 0.0;
        return true;
    }
    if (sd.y) {
        y = sd.y[i];
        return true;
    }
    return sd.y_key && group_value(eng, g, sd.y_key, i, y);
}

/// The float executor for CyclicLR and OneCycleLR without betas (momentum a float, or not cycled), in
/// one pass: each group dict is visited once (its lr and operands read, momentum and lr written),
/// which at thousands of groups is what keeps a step near the cost of a bare assignment loop. A group
/// whose dict has not been assigned to since the last step (its version tag unchanged) is not even
/// looked up: its lr and momentum objects and operand values come from the memo. Nothing here runs
/// Python or the cyclic GC: floats are not GC-tracked and both keys already exist, so no dict resizes.
/// If a group is outside the fast path, or an allocation fails, the groups already written are
/// restored (values; float identity is not observable through torch) and the step falls back or fails.
fast execute_pairs_one_pass(Engine* eng, frame& f, const plan& p, ref& last, bool& two_pass) {
    two_pass = false;
    PyObject* groups = f.groups.get();
    const Py_ssize_t n = f.n;
    if (!fit(eng, static_cast<std::size_t>(n))) return fast::error;
    double* old_lr = eng->v1->data();
    double* old_m = eng->v2->data();
    std::uint8_t* how = eng->holders->data();  // per group: bit 0 lr float rewritten, bit 1 momentum's
    group_memo* memo = memo_for(eng, p, n);
    const last_lr_holders h = next_last_lr(f.dict.get(), n, last);
    if (!last) return fast::error;
    const bool in_place = h.in_place;
    PyObject* lst = last.get();
    list_stash stash(in_place ? lst : nullptr, eng);
    auto restore = [](PyObject* g, PyObject* key, PyObject* cur, bool rewritten, double value) {
        if (rewritten) {
            reinterpret_cast<PyFloatObject*>(cur)->ob_fval = value;
            return;
        }
        ref v(PyFloat_FromDouble(value));
        if (!v || PyDict_SetItem(g, key, v.get()) < 0) PyErr_Clear();
    };
    // Undo groups [0, upto): momentum first, then the lr (and `_last_lr` where it was updated in place).
    // Their memo entries are dropped (a float rewritten back in place leaves the version as it was).
    auto undo = [&](Py_ssize_t upto) {
        if (in_place) stash.restore();
        for (Py_ssize_t j = 0; j < upto; ++j) {
            PyObject* g = PyList_GET_ITEM(groups, j);
            if (memo) memo[j].dict = nullptr;
            if (p.momentum && p.beta1) {  // beta1 is only ever rewritten in place
                PyObject* bt = PyDict_GetItem(g, names.betas);
                if (how[j] & 2) reinterpret_cast<PyFloatObject*>(PyTuple_GET_ITEM(bt, 0))->ob_fval = old_m[j];
            } else if (p.momentum) {
                restore(g, names.momentum, PyDict_GetItem(g, names.momentum), how[j] & 2, old_m[j]);
            }
            PyObject* cur = PyDict_GetItem(g, names.lr);
            restore(g, names.lr, cur, how[j] & 1, old_lr[j]);
        }
    };
    // A side's operands: from the plan's arrays, the memo (keys) or the group's current value.
    auto memo_operands = [](const side& sd, Py_ssize_t i, double cur, double kx, double ky, double& x, double& y) {
        x = sd.x ? sd.x[i] : sd.x_key ? kx : cur;
        y = sd.y ? sd.y[i] : ky;
    };
    (void)memo_operands;
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* g = PyList_GET_ITEM(groups, i);
        PyObject* v;
        PyObject* mo = nullptr;
        double x, y, lr_new = 0.0, m_new = 0.0;
        group_memo* gm = memo ? &memo[i] : nullptr;
#if FASTLR_GROUP_MEMO
        // (An entry the tensor executor made holds a tensor: not for this path.)
        if (gm && memo_fresh(*gm, g) && PyFloat_CheckExact(gm->lr) &&
            (!p.momentum || (gm->mom && (p.beta1 ? PyTuple_CheckExact(gm->mom) : PyFloat_CheckExact(gm->mom))))) {
            v = gm->lr;
            memo_operands(p.lr, i, PyFloat_AS_DOUBLE(v), gm->x, gm->y, x, y);
            lr_new = fastlr::eval(p.lr.u, x, y);
            if (p.momentum) {
                double mx, my;
                mo = gm->mom;
                memo_operands(p.mom, i, 0.0, gm->mx, gm->my, mx, my);
                m_new = fastlr::eval(p.mom.u, mx, my);
            }
        } else
#endif
        {
            v = PyDict_CheckExact(g) ? PyDict_GetItemWithError(g, names.lr) : nullptr;
            bool ok = v && PyFloat_CheckExact(v) &&
                      read_operands(eng, g, p.lr, i, PyFloat_AS_DOUBLE(v), x, y) && !eng->tensor_operand;
            if (ok) lr_new = fastlr::eval(p.lr.u, x, y);
            double mx = 0.0, my = 0.0;
            if (ok && p.momentum) {
                mo = PyDict_GetItemWithError(g, p.beta1 ? names.betas : names.momentum);
                ok = mo && (p.beta1 ? PyTuple_CheckExact(mo) : PyFloat_CheckExact(mo)) &&
                     read_operands(eng, g, p.mom, i, 0.0, mx, my) && !eng->tensor_operand_mom;
                if (ok) m_new = fastlr::eval(p.mom.u, mx, my);
            }
            if (!ok) {
                PyErr_Clear();
                if (gm) gm->dict = nullptr;
                undo(i);
                return fast::fallback;
            }
            if (gm) {  // the key operands' values (only read from keys: every one is a Python float here)
                gm->dict = nullptr;  // filled in after the writes
                gm->x = p.lr.x_key ? x : 0.0;
                gm->y = p.lr.y_key ? y : 0.0;
                gm->mx = p.momentum && p.mom.x_key ? mx : 0.0;
                gm->my = p.momentum && p.mom.y_key ? my : 0.0;
            }
        }
        old_lr[i] = PyFloat_AS_DOUBLE(v);
        how[i] = 0;
        bool assigned = false;  // a key of the dict was assigned (its version changed)
        // torch writes the momentum inside get_lr, then the lrs in _update_lr.
        if (p.momentum && p.beta1) {
            // torch stores a new tuple (momentum, *betas[1:]). A tuple only its group holds, whose
            // beta1 float only it holds, takes the new value in place: nobody can tell. Any other
            // tuple needs a new one, an allocation that may run the cyclic GC: the two-pass path.
            PyObject* b1 = PyTuple_GET_SIZE(mo) >= 1 ? PyTuple_GET_ITEM(mo, 0) : nullptr;
            if (!b1 || !PyFloat_CheckExact(b1) || Py_REFCNT(mo) != 1 || Py_REFCNT(b1) != 1) {
                if (gm) gm->dict = nullptr;
                undo(i);
                two_pass = true;
                return fast::fallback;
            }
            old_m[i] = PyFloat_AS_DOUBLE(b1);
            reinterpret_cast<PyFloatObject*>(b1)->ob_fval = m_new;
            how[i] |= 2;
        } else if (p.momentum) {
            old_m[i] = PyFloat_AS_DOUBLE(mo);
#ifndef Py_GIL_DISABLED
            if (Py_REFCNT(mo) == 1) {  // only its group holds it
                reinterpret_cast<PyFloatObject*>(mo)->ob_fval = m_new;
                how[i] |= 2;
            } else
#endif
            {
                PyObject* m = PyFloat_FromDouble(m_new);
                if (!m || PyDict_SetItem(g, names.momentum, m) < 0) {
                    Py_XDECREF(m);
                    if (gm) gm->dict = nullptr;
                    undo(i);
                    return fast::error;
                }
                Py_DECREF(m);  // the group holds it
                mo = m;
                assigned = true;
            }
        }
        if (in_place && PyList_GET_ITEM(lst, i) == v && Py_REFCNT(v) == 2 + h.extra(v, i)) {
            reinterpret_cast<PyFloatObject*>(v)->ob_fval = lr_new;
            how[i] |= 1;
        } else {
            PyObject* nv = PyFloat_FromDouble(lr_new);
            if (!nv || PyDict_SetItem(g, names.lr, nv) < 0) {
                Py_XDECREF(nv);
                if (gm) gm->dict = nullptr;
                undo(i + 1);  // group i's momentum too; its lr is unchanged (restored to the same value)
                return fast::error;
            }
            if (in_place) stash.replace(i, nv);
            else PyList_SET_ITEM(lst, i, nv);
            v = nv;
            assigned = true;
        }
#if FASTLR_GROUP_MEMO
        if (gm && (assigned || gm->dict != g)) {
            memo_stamp(*gm, g);
            gm->lr = v;
            gm->mom = mo;
        }
#else
        (void)assigned;
#endif
    }
    return fast::handled;
}

/// The float executor for plans with momentum or key operands (CyclicLR, OneCycleLR): a first pass
/// reads and computes everything, a second one writes, so a fallback never leaves a group half-written.
fast execute_pairs(Engine* eng, frame& f, const plan& p, ref& last) {
    if (eng->tensor_operand || eng->tensor_operand_mom) return fast::fallback;  // torch's results: tensors
    constexpr bool betas_in_place = FASTLR_TUPLE_IN_PLACE;  // (3.14 caches a tuple's hash)
    if (!p.beta1 || betas_in_place) {
        bool two_pass = false;
        const fast r = execute_pairs_one_pass(eng, f, p, last, two_pass);
        if (!two_pass) return r;
        last.reset();  // a betas tuple that others hold: new tuples, made before any write
    }
    PyObject* groups = f.groups.get();
    const Py_ssize_t n = f.n;
    if (!fit(eng, static_cast<std::size_t>(n))) return fast::error;
    double* lr_val = eng->v1->data();
    double* m_val = eng->v2->data();
    // As in write_single: the previous `_last_lr`, held by nothing but the instance, is updated in
    // place, and so are floats only it and their group hold.
    const last_lr_holders h = next_last_lr(f.dict.get(), n, last);
    if (!last) return fast::error;
    const bool in_place = h.in_place;
    // Betas tuples are rebuilt (a tuple allocation may run the cyclic GC, so they are made here, before
    // any write); a float momentum needs no container.
    ref tuples(p.momentum && p.beta1 ? PyList_New(n) : nullptr);
    if (p.momentum && p.beta1 && !tuples) return fast::error;
    // Pass 1: read and compute everything; nothing is written.
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* g = PyList_GET_ITEM(groups, i);
        double x, y, cur;
        if (!PyDict_CheckExact(g) || !dict_float(g, names.lr, cur) || !read_operands(eng, g, p.lr, i, cur, x, y) ||
            eng->tensor_operand || eng->tensor_operand_mom)
            return fast::fallback;
        lr_val[i] = fastlr::eval(p.lr.u, x, y);
        if (!p.momentum) continue;
        double mx, my;
        if (!read_operands(eng, g, p.mom, i, 0.0, mx, my) || eng->tensor_operand_mom) return fast::fallback;
        m_val[i] = fastlr::eval(p.mom.u, mx, my);
        if (p.beta1) {  // group["betas"] = (momentum, *group["betas"][1:])
            PyObject* betas = PyDict_GetItemWithError(g, names.betas);
            if (!betas || !PyTuple_CheckExact(betas) || PyTuple_GET_SIZE(betas) < 1 ||
                !PyFloat_CheckExact(PyTuple_GET_ITEM(betas, 0)))  // a tensor beta1 is packed instead
                return PyErr_Clear(), fast::fallback;
            const Py_ssize_t nb = PyTuple_GET_SIZE(betas);
            ref m(PyFloat_FromDouble(m_val[i]));
            PyObject* t = m ? PyTuple_New(nb) : nullptr;
            if (!t) return fast::error;
            PyTuple_SET_ITEM(t, 0, m.release());
            for (Py_ssize_t j = 1; j < nb; ++j) PyTuple_SET_ITEM(t, j, ref::incref(PyTuple_GET_ITEM(betas, j)));
            PyList_SET_ITEM(tuples.get(), i, t);
        } else {
            PyObject* old = PyDict_GetItemWithError(g, names.momentum);
            if (old && !PyFloat_CheckExact(old)) return fast::fallback;  // a tensor momentum is packed instead
            PyErr_Clear();
        }
    }
    // The tuple allocations above may have run the cyclic GC: re-check what the writes rely on.
    if (PyList_GET_SIZE(groups) != n) return fast::fallback;
    for (Py_ssize_t i = 0; i < n; ++i)
        if (!PyDict_CheckExact(PyList_GET_ITEM(groups, i))) return fast::fallback;
    // Pass 2: torch writes the momentum inside get_lr, then the lrs in _update_lr. Only float
    // allocations from here on (they never run the GC).
    if (p.momentum) {
        for (Py_ssize_t i = 0; i < n; ++i) {
            PyObject* g = PyList_GET_ITEM(groups, i);
            if (p.beta1) {
                if (PyDict_SetItem(g, names.betas, PyList_GET_ITEM(tuples.get(), i)) < 0) return fast::error;
                continue;
            }
            PyObject* old = PyDict_GetItem(g, names.momentum);
#ifndef Py_GIL_DISABLED
            if (old && PyFloat_CheckExact(old) && Py_REFCNT(old) == 1) {  // only its group holds it
                reinterpret_cast<PyFloatObject*>(old)->ob_fval = m_val[i];
                continue;
            }
#endif
            ref m(PyFloat_FromDouble(m_val[i]));
            if (!m || PyDict_SetItem(g, names.momentum, m.get()) < 0) return fast::error;
        }
    }
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* g = PyList_GET_ITEM(groups, i);
        PyObject* v = PyDict_GetItem(g, names.lr);
        if (in_place && v && PyFloat_CheckExact(v) && PyList_GET_ITEM(last.get(), i) == v &&
            Py_REFCNT(v) == 2 + h.extra(v, i)) {
            reinterpret_cast<PyFloatObject*>(v)->ob_fval = lr_val[i];
            continue;
        }
        PyObject* nv = PyFloat_FromDouble(lr_val[i]);
        if (!nv || PyDict_SetItem(g, names.lr, nv) < 0) {
            Py_XDECREF(nv);
            return fast::error;
        }
        if (in_place) PyList_SetItem(last.get(), i, nv);
        else PyList_SET_ITEM(last.get(), i, nv);
    }
    return fast::handled;
}

}  // namespace

fast execute(Engine* eng, frame& f, const plan& p, ref& last) {
    if (!eng->plr && !eng->pmom) {
        fast r;
        if (!p.momentum && !p.lr.x_key) {
            if (!fit(eng, static_cast<std::size_t>(f.n))) return fast::error;
            // The new `_last_lr` is the previous one, updated in place, when nothing but the instance
            // holds it (then nobody can tell it from a fresh list); else a new list.
            const last_lr_holders h = next_last_lr(f.dict.get(), f.n, last);
            if (!last) return fast::error;
            operands src;
            src.x = p.lr.x;
            src.y = p.lr.y;
            src.y_key = p.lr.y_key;
            r = write_single(eng, f.groups.get(), f.n, p.lr.u, src, last.get(), h, memo_for(eng, p, f.n));
        } else {
            r = execute_pairs(eng, f, p, last);
        }
        if (r != fast::fallback) return r;
        // A value that is not a float: 0-d tensors get packed and the tensor executor takes over.
        last.reset();
        bool packed_any = false;
        r = pack(eng, f, p.momentum, p.beta1, packed_any);
        if (r != fast::handled) return r;
        if (!packed_any) return fast::fallback;
    }
    return execute_tensors(eng, f, p);
}

fast replay_standard(Engine* eng, PyObject* self, std::int64_t k, std::int64_t& done) {
    done = 0;
    const kind kd = static_cast<kind>(eng->kind);
    const bool swalr = kd == kind::swalr;
    if (!swalr && !(kd >= kind::step_lr && kd <= kind::cosine_annealing_lr)) return fast::fallback;
    frame f;
    fast r = open_groups(self, f, eng);
    if (r != fast::handled) return r;
    PyObject* d = f.dict.get();
    std::int64_t sc, le;
    bool is_initial;
    if (!to_counter(PyDict_GetItemWithError(d, names.step_count), sc) ||
        !to_counter(PyDict_GetItemWithError(d, names.last_epoch), le) || !dict_bool(d, names.is_initial, is_initial) ||
        is_initial || k > fastlr::exact_int_limit - le || k > fastlr::exact_int_limit - sc)
        return PyErr_Clear(), fast::fallback;
    decay_stepper stepper;
    fastlr::swalr_params sw;
    if (swalr) {
        if (!dict_num(d, names.anneal_epochs, sw.anneal_epochs)) return fast::fallback;
        PyObject* fn = PyDict_GetItemWithError(d, names.anneal_func);
        if (fn == refs.swa_cos) sw.cosine = true;
        else if (fn == refs.swa_linear) sw.cosine = false;
        else return PyErr_Clear(), fast::fallback;
    } else {
        r = stepper.read(kd, d);
        if (r != fast::handled) return r;
        if (!stepper.index_milestones()) return fast::fallback;
    }
    const Py_ssize_t n = f.n;
    if (!fit(eng, static_cast<std::size_t>(n))) return fast::error;
    double* lr = eng->x->data();
    double* y = eng->y->data();  // base lrs (CosineAnnealingLR) or swa_lr (SWALR)
    PyObject* groups = f.groups.get();
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* g = PyList_GET_ITEM(groups, i);
        if (!PyDict_CheckExact(g) || !dict_float(g, names.lr, lr[i])) return fast::fallback;
        if (swalr && !group_value(eng, g, names.swa_lr, i, y[i])) return fast::fallback;
    }
    if (kd == kind::cosine_annealing_lr && !gather_list(eng, d, names.base_lrs, n, y)) return fast::fallback;
    if (eng->tensor_operand) return fast::fallback;  // float groups with tensor operands: torch makes tensors
    // The replay: torch's step() k times, each evaluated exactly as a single step is.
    for (; done < k; ++done) {
        const fastlr::step_state st{le + 1, false, sc + 1};
        update u;
        const errc e = swalr ? fastlr::swalr_scalars(sw, st.step_count, u) : stepper.chainable(st, nullptr, u);
        if (e != errc::ok) break;  // this step raises (or needs Python) in torch: the caller steps on
        ++le;
        ++sc;
        if (u.kind == update::op::keep) continue;
        fastlr::apply(u, lr, y, lr, static_cast<std::size_t>(n));
    }
    if (done == 0) return fast::fallback;
    ref last(PyList_New(n)), le_obj(PyLong_FromLongLong(le)), sc_obj(PyLong_FromLongLong(sc));
    if (!last || !le_obj || !sc_obj) return fast::error;
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* v = PyFloat_FromDouble(lr[i]);
        if (!v) return fast::error;
        PyList_SET_ITEM(last.get(), i, v);
    }
    if (PyList_GET_SIZE(groups) != n) return fast::fallback;
    for (Py_ssize_t i = 0; i < n; ++i)
        if (!PyDict_CheckExact(PyList_GET_ITEM(groups, i))) return fast::fallback;
    for (Py_ssize_t i = 0; i < n; ++i)
        if (PyDict_SetItem(PyList_GET_ITEM(groups, i), names.lr, PyList_GET_ITEM(last.get(), i)) < 0) return fast::error;
    if (PyDict_SetItem(d, names.step_count, sc_obj.get()) < 0 || PyDict_SetItem(d, names.last_epoch, le_obj.get()) < 0 ||
        !set_within_step(d, Py_False) || PyDict_SetItem(d, names.last_lr, last.get()) < 0)
        return fast::error;
    return fast::handled;
}

fast standard_update(Engine* eng, PyObject* self, bool from_step, PyObject* epoch) {
    const kind k = static_cast<kind>(eng->kind);
    std_frame f;
    fast r = open_standard(eng, self, from_step, epoch, f);
    if (r != fast::handled) return r;
    const fastlr::step_state st = state_of(f, from_step);
    plan p;
    switch (k) {
        case kind::lambda_lr: return lambda_update(eng, f, false);
        case kind::multiplicative_lr: return lambda_update(eng, f, true);
        case kind::cyclic_lr: r = cyclic_plan(eng, f, p); break;
        case kind::one_cycle_lr: r = onecycle_plan(f, p); break;
        case kind::swalr: {
            update u;
            r = swalr_update(f.dict.get(), st, u);
            if (r == fast::handled) r = single_plan(eng, f, u, p);
            p.lr.y_key = names.swa_lr;
            break;
        }
        default: {
            update u;
            const bool closed = epoch != Py_None && has_closed_form(k);
            r = decay_update(k, f.dict.get(), st, closed, f.le_obj.get(), u);
            if (r == fast::handled) r = single_plan(eng, f, u, p);
            break;
        }
    }
    if (r != fast::handled) return r;
    return run(eng, f, p);
}

}  // namespace fastlr_py

namespace fastlr_py {

namespace {

/// One member of a fused ChainedScheduler step: its engine (lent for the call), frame and plan.
struct chain_member {
    PyObject* obj = nullptr;  // borrowed from the composite's list (kept alive by `keep`)
    ref keep;
    Engine* eng = nullptr;
    std_frame f;
    plan p;
    PyObject* prev = nullptr;  // its `_last_lr` (borrowed from its dict)
    bool in_place = false;     // `prev` is updated in place
    ref fresh;                 // else its new `_last_lr`
    ~chain_member() { release_call(eng); }
};

constexpr Py_ssize_t max_chain = 8;

}  // namespace

fast chained_fused(Engine* eng, PyObject* d, PyObject* scheds) {
    const Py_ssize_t k = PySequence_Fast_GET_SIZE(scheds);
    if (k < 2 || k > max_chain) return fast::fallback;
    chain_member m[max_chain];
    Py_ssize_t n = 0;
    PyObject* groups = nullptr;
    // Every member's plan, as its own step() would make it; nothing is written yet.
    for (Py_ssize_t j = 0; j < k; ++j) {
        chain_member& c = m[j];
        c.obj = PySequence_Fast_ITEMS(scheds)[j];
        c.keep.reset(ref::incref(c.obj));
        if (!has_c_step(c.obj)) return fast::fallback;
        for (Py_ssize_t q = 0; q < j; ++q)
            if (m[q].obj == c.obj) return fast::fallback;  // one scheduler twice: it steps twice
        c.eng = engine_for_call(c.obj);
        if (!c.eng) return fast::fallback;
        const kind kd = static_cast<kind>(c.eng->kind);
        if (!has_closed_form(kd) || c.eng->capturable || c.eng->plr || c.eng->pmom || c.eng->last_stale)
            return fast::fallback;
        fast r = open_standard(c.eng, c.obj, true, Py_None, c.f);
        if (r == fast::handled) {
            update u;
            r = decay_update(kd, c.f.dict.get(), state_of(c.f, true), false, c.f.le_obj.get(), u);
            if (r == fast::handled) r = single_plan(c.eng, c.f, u, c.p);
        }
        if (r != fast::handled || c.eng->tensor_operand || c.p.lr.x_key || c.p.lr.y_key) return PyErr_Clear(), fast::fallback;
        if (j == 0) {
            groups = c.f.groups.get();
            n = c.f.n;
        } else if (c.f.groups.get() != groups || c.f.n != n) {
            return fast::fallback;  // members on different optimizers: one at a time
        }
    }
    // Containers first (their allocation may run the cyclic GC, and with it Python code): a new
    // `_last_lr` for each member whose previous one something else holds too.
    PyObject* co = PyDict_GetItemWithError(d, names.last_lr);
    PyErr_Clear();
    const bool co_ok =
#ifdef Py_GIL_DISABLED
        false;
#else
        co && PyList_CheckExact(co) && Py_REFCNT(co) == 1 && PyList_GET_SIZE(co) == n;
#endif
    for (Py_ssize_t j = 0; j < k; ++j) {
        chain_member& c = m[j];
        c.prev = PyDict_GetItemWithError(c.f.dict.get(), names.last_lr);
        PyErr_Clear();
#ifndef Py_GIL_DISABLED
        c.in_place = c.prev && PyList_CheckExact(c.prev) && Py_REFCNT(c.prev) == 1 && PyList_GET_SIZE(c.prev) == n;
        for (Py_ssize_t q = 0; q < j && c.in_place; ++q) c.in_place = m[q].prev != c.prev;
#endif
        if (!c.in_place) {
            c.fresh.reset(PyList_New(n));
            if (!c.fresh) return fast::error;
        }
    }
    // The allocations may have run Python: the groups must still be what the plans were made for.
    if (PyList_GET_SIZE(groups) != n) return fast::fallback;
    try {
        if (eng->chain_vals->size() < static_cast<std::size_t>(k * n)) eng->chain_vals->resize(static_cast<std::size_t>(k * n));
        if (eng->chain_objs->size() < static_cast<std::size_t>(k * n))
            eng->chain_objs->resize(static_cast<std::size_t>(k * n), nullptr);
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
        return fast::error;
    }
    if (!fit(eng, static_cast<std::size_t>(n))) return fast::error;
    PyObject** lr_objs = eng->objs->data();     // group i's lr float (borrowed; nulled in pass 2)
    double* vals = eng->chain_vals->data();    // vals[j * n + i]: member j's value for group i
    PyObject** objs = eng->chain_objs->data();  // objs[j * n + i]: a new float for it, or null (in place)
    auto drop_objs = [&](Py_ssize_t upto) {  // the new floats made for groups [0, upto), every member
        for (Py_ssize_t j = 0; j < k; ++j)
            for (Py_ssize_t i = 0; i < upto; ++i) Py_CLEAR(objs[static_cast<std::size_t>(j * n + i)]);
    };
    const std::size_t sn = static_cast<std::size_t>(n);
    group_memo* memo = memo_for(eng, plan{}, n);  // the composite's own: the groups' lr floats
    // Pass 1: read every group's lr, evaluate the members in order, decide for each value whether an
    // existing float (only ours) takes it or a new one is made now. Only floats are allocated.
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* g = PyList_GET_ITEM(groups, i);
        PyObject* v = memo_lr(memo, i, g);
        if (!v) v = PyDict_CheckExact(g) ? PyDict_GetItemWithError(g, names.lr) : nullptr;
        if (!v || !PyFloat_CheckExact(v)) {
            PyErr_Clear();
            drop_objs(i);
            std::fill(lr_objs, lr_objs + i, nullptr);
            return fast::fallback;
        }
        lr_objs[i] = v;
        double cur = PyFloat_AS_DOUBLE(v);
        for (Py_ssize_t j = 0; j < k; ++j) {
            const side& sd = m[j].p.lr;
            const double x = sd.x ? sd.x[i] : cur;
            const double y = sd.y ? sd.y[i] : 0.0;
            cur = sd.u.kind == update::op::keep ? cur : fastlr::eval(sd.u, x, y);
            vals[static_cast<std::size_t>(j) * sn + static_cast<std::size_t>(i)] = cur;
        }
        for (Py_ssize_t j = 0; j < k; ++j) {
            const chain_member& c = m[j];
            PyObject* target;  // the float that takes member j's value in place, if any
            if (j < k - 1) {   // an intermediate value: the member's own float, held by its list alone
                target = c.in_place ? PyList_GET_ITEM(c.prev, i) : nullptr;
                if (target && (target == v || !PyFloat_CheckExact(target) || Py_REFCNT(target) != 1)) target = nullptr;
            } else {  // the final value: the group's float, held by the group, this list and the composite's
                const Py_ssize_t extra = co_ok && PyList_GET_ITEM(co, i) == v ? 1 : 0;
                target = c.in_place && PyList_GET_ITEM(c.prev, i) == v && Py_REFCNT(v) == 2 + extra ? v : nullptr;
            }
            PyObject*& o = objs[static_cast<std::size_t>(j) * sn + static_cast<std::size_t>(i)];
            if (target) continue;  // (o is null: every slot is emptied by pass 2 or by drop_objs)
            o = PyFloat_FromDouble(vals[static_cast<std::size_t>(j) * sn + static_cast<std::size_t>(i)]);
            if (!o) {
                drop_objs(i + 1);
                std::fill(lr_objs, lr_objs + i + 1, nullptr);
                return fast::error;
            }
        }
    }
    // Pass 2: the writes. Nothing here can fail or run Python: list items are replaced, floats
    // rewritten, and `lr` is replaced in dicts that already hold it.
    // The composite's own `_last_lr` (torch: the groups' lrs after the last member) is refreshed in
    // the same pass when nothing but the composite holds it.
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* g = PyList_GET_ITEM(groups, i);
        PyObject* final_obj = lr_objs[i];
        lr_objs[i] = nullptr;
        for (Py_ssize_t j = 0; j < k; ++j) {
            chain_member& c = m[j];
            const std::size_t at = static_cast<std::size_t>(j) * sn + static_cast<std::size_t>(i);
            PyObject* o = objs[at];
            objs[at] = nullptr;
            if (!o) {  // in place
                PyObject* target = j < k - 1 ? PyList_GET_ITEM(c.prev, i) : final_obj;
                reinterpret_cast<PyFloatObject*>(target)->ob_fval = vals[at];
                continue;
            }
            if (j == k - 1) {
                PyDict_SetItem(g, names.lr, o);  // an existing key: cannot fail
                final_obj = o;
            }
            if (c.in_place) PyList_SetItem(c.prev, i, o);
            else PyList_SET_ITEM(c.fresh.get(), i, o);
        }
        if (co_ok && PyList_GET_ITEM(co, i) != final_obj) PyList_SetItem(co, i, ref::incref(final_obj));
        if (!memo_lr(memo, i, g)) memo_note(memo, i, g, final_obj);
    }
    // Each member's counters and `_last_lr`, in the members' order (as their own steps leave them).
    for (Py_ssize_t j = 0; j < k; ++j) {
        chain_member& c = m[j];
        if (commit(c.f.dict.get(), c.f, c.in_place ? c.prev : c.fresh.get()) != fast::handled) return fast::error;
        ++c.eng->handled;
    }
    if (co_ok) return fast::handled;
    // A new list for the composite (after the commit: torch builds it last, too).
    ref opt(ref::incref(PyDict_GetItem(m[k - 1].f.dict.get(), names.optimizer)));
    if (!opt) {  // only a finalizer run by the list allocation could have removed it
        PyErr_SetString(PyExc_AttributeError, "ChainedScheduler: the last scheduler has no 'optimizer'");
        return fast::error;
    }
    ref last(current_lrs(opt.get(), groups, PyList_GET_SIZE(groups)));
    if (!last || PyDict_SetItem(d, names.last_lr, last.get()) < 0) return fast::error;
    return fast::handled;
}

}  // namespace fastlr_py
