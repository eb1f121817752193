// The classes that replace torch's step() protocol on the fast path: CosineAnnealingWarmRestarts
// (counter logic with fractional epochs), ReduceLROnPlateau (metric-driven state machine), and the
// composites SequentialLR and ChainedScheduler (members stepped without a Python loop over groups).
#include "scheduler.hpp"

#include <fastlr/cosine.hpp>
#include <fastlr/swa.hpp>

namespace fastlr_py {

// ------------------------------------------------------------------------------------------------
namespace {

/// CosineAnnealingWarmRestarts' attributes and counters, as the scheduler holds them.
bool read_warm_restarts(PyObject* d, fastlr::cosine_warm_restarts_params& p, fastlr::cosine_warm_restarts_state& s) {
    if (!dict_num(d, names.T_0, p.T_0) || !dict_num(d, names.T_mult, p.T_mult) || !dict_num(d, names.eta_min, p.eta_min) ||
        !dict_num(d, names.T_cur, s.T_cur) || !dict_num(d, names.T_i, s.T_i) ||
        !to_counter(PyDict_GetItemWithError(d, names.last_epoch), s.last_epoch)) {
        PyErr_Clear();
        return false;
    }
    // torch stores T_0 into T_i and the epoch into T_cur as the objects themselves: a bool stays a
    // bool there, while the engine would write back an int. Rare enough to leave to torch's code.
    auto is_bool = [d](PyObject* key) {
        PyObject* o = PyDict_GetItem(d, key);  // present: dict_num read it above
        return o && PyBool_Check(o);
    };
    return !(is_bool(names.T_0) || is_bool(names.T_i) || is_bool(names.T_cur));
}

/// The lrs at counters `s` (the closed form get_lr is), written like a step, then the counters.
fast commit_warm_restarts(Engine* eng, frame& f, const fastlr::cosine_warm_restarts_params& p,
                          const fastlr::cosine_warm_restarts_state& s) {
    PyObject* d = f.dict.get();
    update u;
    if (fastlr::cosine_warm_restarts_lr(p, s, u) != errc::ok) return fast::fallback;
    const Py_ssize_t n = f.n;
    if (!fit(eng, static_cast<std::size_t>(n))) return fast::error;
    if (!gather_list(eng, d, names.base_lrs, n, eng->x->data())) return fast::fallback;
    ref t_cur(from_num(s.T_cur)), t_i(from_num(s.T_i)), le(PyLong_FromLongLong(s.last_epoch));
    if (!t_cur || !t_i || !le) return fast::error;
    plan pl;
    pl.lr.u = u;
    pl.lr.x = eng->x->data();
    ref last;  // stays empty after a tensor step (materialised on demand)
    const fast r = execute(eng, f, pl, last);
    if (r != fast::handled) return r;
    if (PyDict_SetItem(d, names.T_cur, t_cur.get()) < 0 || PyDict_SetItem(d, names.T_i, t_i.get()) < 0 ||
        PyDict_SetItem(d, names.last_epoch, le.get()) < 0 || !set_within_step(d, Py_False) ||
        (last && PyDict_SetItem(d, names.last_lr, last.get()) < 0))
        return fast::error;
    return fast::handled;
}

}  // namespace

/// CosineAnnealingWarmRestarts.step(epoch=None).
fast cawr_step(Engine* eng, PyObject* self, PyObject* epoch) {
    frame f;
    fast r = open_groups(self, f, eng);
    if (r != fast::handled) return r;
    fastlr::cosine_warm_restarts_params p;
    fastlr::cosine_warm_restarts_state s;
    if (!read_warm_restarts(f.dict.get(), p, s)) return fast::fallback;
    pynum ep;
    const bool given = epoch != Py_None;
    if (given && (PyBool_Check(epoch) || !to_num(epoch, ep))) return fast::fallback;
    if (fastlr::cosine_warm_restarts_advance(p, s, given, ep) != errc::ok) return fast::fallback;
    return commit_warm_restarts(eng, f, p, s);
}

/// CosineAnnealingWarmRestarts: k plain steps of its counter logic, then one write (the lrs are a
/// closed form of the counters).
fast replay_warm_restarts(Engine* eng, PyObject* self, std::int64_t k, std::int64_t& done) {
    done = 0;
    frame f;
    fast r = open_groups(self, f, eng);
    if (r != fast::handled) return r;
    fastlr::cosine_warm_restarts_params p;
    fastlr::cosine_warm_restarts_state s;
    if (!read_warm_restarts(f.dict.get(), p, s) || k > fastlr::exact_int_limit - s.last_epoch) return fast::fallback;
    for (; done < k; ++done) {
        fastlr::cosine_warm_restarts_state next = s;
        if (fastlr::cosine_warm_restarts_advance(p, next, false, pynum{}) != errc::ok) break;
        s = next;
    }
    if (done == 0) return fast::fallback;
    r = commit_warm_restarts(eng, f, p, s);
    if (r != fast::handled) done = 0;
    return r;
}

// ------------------------------------------------------------------------------------------------
namespace {

/// `_last_lr = [group["lr"] for group in groups]`, into the previous list when nothing but the
/// instance holds it (nobody can tell it from a new one) and every lr is a Python float. False
/// otherwise; the caller then stores a new list, and the old one, possibly half rewritten, is freed
/// unseen. Only floats are released here (no finalizer runs).
bool refresh_last_lr(PyObject* d, PyObject* groups) {
#ifdef Py_GIL_DISABLED
    (void)d, (void)groups;
    return false;
#else
    PyObject* last = PyDict_GetItem(d, names.last_lr);
    const Py_ssize_t n = PyList_GET_SIZE(groups);
    if (!last || !PyList_CheckExact(last) || Py_REFCNT(last) != 1 || PyList_GET_SIZE(last) != n) return false;
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* g = PyList_GET_ITEM(groups, i);
        PyObject* v = PyDict_CheckExact(g) ? PyDict_GetItem(g, names.lr) : nullptr;
        if (!v || !PyFloat_CheckExact(v)) return false;
        PyObject* old = PyList_GET_ITEM(last, i);
        if (old == v) continue;
        if (!PyFloat_CheckExact(old)) return false;  // releasing it could run Python
        PyList_SetItem(last, i, ref::incref(v));
    }
    return true;
#endif
}

/// ReduceLROnPlateau._is_better's branch for (mode, threshold_mode), in torch's if/elif order.
bool plateau_rule(PyObject* mode, PyObject* tmode, fastlr::plateau_params::rule& out) {
    auto is = [](PyObject* o, PyObject* s) {
        return PyUnicode_CheckExact(o) && (o == s || PyUnicode_Compare(o, s) == 0);
    };
    if (!mode || !tmode) return false;
    // Which of two names `o` is: the interned names usually are the very objects torch stored, so
    // identity first, then by value.
    auto which = [&is](PyObject* o, PyObject* a, PyObject* b, bool& is_a, bool& is_b) {
        if (o == a || o == b) {
            is_a = o == a;
            is_b = !is_a;
        } else {
            is_a = is(o, a);
            is_b = is(o, b);
        }
    };
    bool mn, mx, rel, ab;
    which(mode, names.min, names.max, mn, mx);
    which(tmode, names.rel, names.abs, rel, ab);
    using rule = fastlr::plateau_params::rule;
    if (mn && rel) out = rule::min_rel;
    else if (mn && ab) out = rule::min_abs;
    else if (mx && rel) out = rule::max_rel;
    else out = rule::max_abs;
    return true;
}

}  // namespace

/// ReduceLROnPlateau.step(metrics) (no epoch: that one warns, in torch's code).
fast plateau_step(Engine* eng, PyObject* self, PyObject* metrics) {
    // current = float(metrics): runs the metric's __float__ (a tensor's item()) before anything is read,
    // exactly where torch does; an exception propagates with nothing changed, as in torch.
    ref current(PyNumber_Float(metrics));
    if (!current) return fast::error;
    frame f;
    fast r = open_groups(self, f, eng);
    if (r != fast::handled) return r;
    PyObject* d = f.dict.get();
    fastlr::plateau_params p;
    fastlr::plateau_state s;
    if (!to_counter(PyDict_GetItemWithError(d, names.last_epoch), s.last_epoch) || !dict_num(d, names.best, s.best) ||
        !dict_num(d, names.num_bad_epochs, s.num_bad_epochs) ||
        !dict_num(d, names.cooldown_counter, s.cooldown_counter) || !dict_num(d, names.patience, p.patience) ||
        !dict_num(d, names.cooldown, p.cooldown) || !dict_num(d, names.threshold, p.threshold) ||
        !plateau_rule(PyDict_GetItemWithError(d, names.mode), PyDict_GetItemWithError(d, names.threshold_mode),
                      p.is_better))
        return PyErr_Clear(), fast::fallback;
    // torch assigns `cooldown` itself to cooldown_counter and leaves an untouched cooldown_counter as
    // it is, so a bool there stays a bool; the engine writes counters back as ints. Left to torch.
    auto is_bool = [d](PyObject* key) {
        PyObject* o = PyDict_GetItem(d, key);  // present: dict_num read it above
        return o && PyBool_Check(o);
    };
    if (is_bool(names.cooldown) || is_bool(names.cooldown_counter)) return fast::fallback;
    if (!PyFloat_CheckExact(current.get())) return fast::fallback;  // a float subclass from __float__
    const double cur = PyFloat_AS_DOUBLE(current.get());
    bool improved = false, reduce = false;
    if (fastlr::plateau_observe(p, s, cur, improved, reduce) != errc::ok) return fast::fallback;

    const Py_ssize_t n = f.n;
    PyObject* groups = f.groups.get();
    // Per group, the object to store (owned, in the engine's `objs`), or null to leave the group
    // alone; no container is allocated (so neither the cyclic GC nor a finalizer can run).
    if (!fit(eng, static_cast<std::size_t>(n))) return fast::error;
    PyObject** new_lrs = eng->objs->data();
    struct release_objs {
        PyObject** objs;
        Py_ssize_t n;
        ~release_objs() {
            for (Py_ssize_t i = 0; i < n; ++i) Py_CLEAR(objs[i]);
        }
    } release{new_lrs, reduce ? n : 0};
    // Tensor lrs: the engine packed them, or the first group's lr is not a Python float.
    bool tensors = false;
    if (n > 0) {
        PyObject* g0 = PyList_GET_ITEM(groups, 0);
        PyObject* lr0 = PyDict_CheckExact(g0) ? PyDict_GetItem(g0, names.lr) : nullptr;
        tensors = eng->plr || (lr0 && !PyFloat_CheckExact(lr0));
    }
    bool tensor_step = false;
    if (reduce) {
        pynum factor, eps;
        PyObject* min_lrs = PyDict_GetItemWithError(d, names.min_lrs);
        if (!dict_num(d, names.factor, factor) || !dict_num(d, names.eps, eps) || !min_lrs ||
            !PyList_CheckExact(min_lrs) || PyList_GET_SIZE(min_lrs) != n)
            return PyErr_Clear(), fast::fallback;
        if (tensors) {
            // torch: old = float(group["lr"]); new = max(old * factor, min_lrs[i]); if old - new > eps:
            // group["lr"].fill_(new). Here on lrs packed in CPU memory, computed now and written after
            // the counters, as torch orders it (device buffers: torch's code, whose float() syncs).
            auto rule = [&](Py_ssize_t i, double old, bool& write, double& nv) {
                pynum mlr;
                bool takes_min;
                return to_num(PyList_GET_ITEM(min_lrs, i), mlr) &&
                       fastlr::plateau_reduce(old, factor, mlr, eps, write, nv, takes_min) == errc::ok;
            };
            const fast tr = packed_reduce_prepare(eng, f, rule);
            if (tr != fast::handled) return tr;
            tensor_step = true;
        }
        for (Py_ssize_t i = 0; i < n && !tensor_step; ++i) {
            PyObject* g = PyList_GET_ITEM(groups, i);
            double old = 0.0;
            pynum mlr;
            PyObject* mo = PyList_GET_ITEM(min_lrs, i);
            if (!PyDict_CheckExact(g) || !dict_float(g, names.lr, old) || !to_num(mo, mlr)) return fast::fallback;
            bool write, takes_min;
            double nv = 0.0;
            if (fastlr::plateau_reduce(old, factor, mlr, eps, write, nv, takes_min) != errc::ok) return fast::fallback;
            if (!write) continue;
            new_lrs[i] = takes_min ? ref::incref(mo) : PyFloat_FromDouble(nv);
            if (!new_lrs[i]) return fast::error;
        }
    }
    // Tensor lrs on a step that reduces nothing: no group is written, and `_last_lr` -- a fresh tensor
    // per group in torch -- is a snapshot of the packed buffers, built into a list when read.
    if (!reduce && tensors) {
        plan keep;
        keep.lr.u = update::keep();
        const fast tr = execute_tensors(eng, f, keep);
        if (tr != fast::handled) return tr;  // nothing written (the engine's snapshots aside)
        tensor_step = true;
    }
    ref le(PyLong_FromLongLong(s.last_epoch));
    ref nbe(from_num(s.num_bad_epochs)), cdc(from_num(s.cooldown_counter));
    if (!le || !nbe || !cdc) return fast::error;

    // Commit in torch's order: last_epoch, best / num_bad_epochs, cooldown_counter, lrs, _last_lr.
    if (PyDict_SetItem(d, names.last_epoch, le.get()) < 0) return fast::error;
    if (improved && PyDict_SetItem(d, names.best, current.get()) < 0) return fast::error;
    if (PyDict_SetItem(d, names.num_bad_epochs, nbe.get()) < 0) return fast::error;
    if (PyDict_SetItem(d, names.cooldown_counter, cdc.get()) < 0) return fast::error;
    if (reduce && tensor_step) packed_reduce_apply(eng, n);
    if (reduce && !tensor_step) {
        for (Py_ssize_t i = 0; i < n; ++i) {
            PyObject* v = new_lrs[i];
            if (v && PyDict_SetItem(PyList_GET_ITEM(groups, i), names.lr, v) < 0) return fast::error;
        }
    }
    if (tensor_step) return fast::handled;  // `_last_lr` is materialised on demand
    // `_last_lr = [group["lr"] for group in groups]`: into the previous list when only this holds it.
    if (refresh_last_lr(d, groups)) return fast::handled;
    ref opt(ref::incref(PyDict_GetItemWithError(d, names.optimizer)));
    ref last(current_lrs(opt.get(), groups, n));
    if (!last || PyDict_SetItem(d, names.last_lr, last.get()) < 0) return fast::error;
    return fast::handled;
}

// ------------------------------------------------------------------------------------------------
namespace {

/// Python's bisect.bisect_right(a, x) on a list or tuple of ints (the same probes, so unsorted
/// milestones give torch's answer too). False if an element is not an exact int.
bool bisect_right(PyObject* seq, std::int64_t x, Py_ssize_t& out) {
    Py_ssize_t lo = 0, hi = PySequence_Fast_GET_SIZE(seq);
    PyObject** items = PySequence_Fast_ITEMS(seq);
    while (lo < hi) {
        const Py_ssize_t mid = (lo + hi) / 2;
        std::int64_t v;
        if (!to_counter(items[mid], v)) return false;
        if (x < v) hi = mid;
        else lo = mid + 1;
    }
    out = lo;
    return true;
}

/// Whether `member.step()` will be the member's first step after construction (`_step_count == 1`),
/// where torch's LRScheduler.step may warn about the optimizer.step() order with stacklevel=2. In
/// torch that warning is attributed to the composite's frame in torch.optim.lr_scheduler (so filters
/// on that module apply); called from C it would land in the user's frame. Such a step is left to
/// torch's composite code. Objects without `_step_count` (composites, CAWR never reaches 1) step here.
bool first_step_may_warn(PyObject* member) {
    ref sc(PyObject_GetAttr(member, names.step_count));
    if (!sc) {
        PyErr_Clear();
        return false;
    }
    std::int64_t v;
    return !to_counter(sc.get(), v) || v == 1;
}

}  // namespace

namespace {

/// A composite's `_last_lr` after a member's tensor step: the groups' current lrs (torch: a fresh
/// tensor per tensor group), kept as the composite engine's own snapshot of the packed buffers and
/// built into a list when read, as for the members (no torch op per group). `dict`: the composite's
/// instance dict, whose `optimizer` must be `opt`. Fallback (nothing changed) when the groups do not
/// suit the tensor executor; the caller then builds the list now.
fast composite_tensor_last_lr(Engine* eng, PyObject* dict, PyObject* opt) {
    if (!eng || eng->capturable) return fast::fallback;
    PyObject* own = PyDict_GetItemWithError(dict, names.optimizer);
    if (!own || own != opt) return PyErr_Clear(), fast::fallback;
    frame f;
    f.dict.reset(ref::incref(dict));
    f.groups.reset(PyObject_GetAttr(opt, names.param_groups));
    if (!f.groups || !PyList_CheckExact(f.groups.get())) return PyErr_Clear(), fast::fallback;
    f.n = PyList_GET_SIZE(f.groups.get());
    plan keep;
    keep.lr.u = update::keep();
    return execute_tensors(eng, f, keep);
}

/// Whether `member`'s last step was a tensor step of the engine (its `_last_lr` awaits the list).
bool tensor_stepped(PyObject* member) {
    const Engine* e = engine_in_slot(member);
    return e && e->last_stale && !e->capturable;
}

}  // namespace

/// SequentialLR.step(): advance last_epoch, pick the member for it, and either restart that member
/// at a milestone (`_update_lr(0)`) or step it; `_last_lr` is the member's list (with tensor lrs, a
/// list of its own with the same values).
fast sequential_step(Engine* eng, PyObject* self) {
    ref d(PyObject_GenericGetDict(self, nullptr));
    if (!d) return PyErr_Clear(), fast::fallback;
    std::int64_t le;
    PyObject* ms = PyDict_GetItemWithError(d.get(), names.milestones_priv);
    PyObject* scheds = PyDict_GetItemWithError(d.get(), names.schedulers);
    if (!to_counter(PyDict_GetItemWithError(d.get(), names.last_epoch), le) || !ms || !scheds ||
        !(PyList_CheckExact(ms) || PyTuple_CheckExact(ms)) || !(PyList_CheckExact(scheds) || PyTuple_CheckExact(scheds)))
        return PyErr_Clear(), fast::fallback;
    ++le;
    Py_ssize_t idx;
    if (!bisect_right(ms, le, idx) || idx >= PySequence_Fast_GET_SIZE(scheds)) return fast::fallback;
    bool restart = false;
    if (idx > 0) {
        std::int64_t m;
        if (!to_counter(PySequence_Fast_ITEMS(ms)[idx - 1], m)) return fast::fallback;
        restart = m == le;
    }
    ref member(ref::incref(PySequence_Fast_ITEMS(scheds)[idx]));
    if (!restart && first_step_may_warn(member.get())) return fast::fallback;
    ref le_obj(PyLong_FromLongLong(le));
    if (!le_obj || PyDict_SetItem(d.get(), names.last_epoch, le_obj.get()) < 0) return fast::error;
    ref res;
    {
        // The member may update its `_last_lr` in place although this instance holds it too: it is
        // replaced by the member's list right below, with nothing run in between.
        lend_last_lr lend(d.get());
        if (restart) {
            static PyObject* zero = PyLong_FromLong(0);
            res.reset(PyObject_CallMethodOneArg(member.get(), names.update_lr, zero));
        } else {
            res.reset(PyObject_CallMethodNoArgs(member.get(), names.step));
        }
    }
    if (!res) return fast::error;
    if (tensor_stepped(member.get())) {
        // Tensor lrs: the member's `_last_lr` is the groups' lrs right after its step, built when
        // read; this one is too (equal values in a list of its own, not the member's very list).
        ref mopt(PyObject_GetAttr(member.get(), names.optimizer));
        if (!mopt) return fast::error;
        const fast r = composite_tensor_last_lr(eng, d.get(), mopt.get());
        if (r != fast::fallback) return r;
    }
    ref last(last_lr_of(member.get()));
    if (!last || PyDict_SetItem(d.get(), names.last_lr, last.get()) < 0) return fast::error;
    if (eng) clear_pending_last_lr(eng);  // an earlier step's pending list is superseded
    return fast::handled;
}

namespace {

/// Whether every member is a fastlr scheduler of a class whose C step runs no user Python (not the
/// lambda classes, not a composite), as its engine says (a member not yet stepped has none: no).
bool lendable_members(PyObject* scheds) {
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(scheds); ++i) {
        const Engine* e = engine_in_slot(PySequence_Fast_ITEMS(scheds)[i]);
        if (!e) return false;
        const kind k = static_cast<kind>(e->kind);
        const bool plain = (k >= kind::step_lr && k <= kind::cosine_warm_restarts) || k == kind::swalr;
        if (!plain || e->capturable) return false;
    }
    return true;
}

}  // namespace

/// ChainedScheduler.step(): step every member in order, then `_last_lr` from the last member's
/// optimizer, built here rather than by a Python comprehension over the groups.
fast chained_step(Engine* eng, PyObject* self) {
    ref d(PyObject_GenericGetDict(self, nullptr));
    if (!d) return PyErr_Clear(), fast::fallback;
    ref scheds(ref::incref(PyDict_GetItemWithError(d.get(), names.schedulers)));
    if (!scheds || !(PyList_CheckExact(scheds.get()) || PyTuple_CheckExact(scheds.get()))) return PyErr_Clear(), fast::fallback;
    if (PySequence_Fast_GET_SIZE(scheds.get()) < 1) return fast::fallback;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(scheds.get()); ++i) {
        ref member(ref::incref(PySequence_Fast_ITEMS(scheds.get())[i]));
        if (first_step_may_warn(member.get())) return fast::fallback;
    }
    // The members may count this instance's `_last_lr` (replaced below by the groups' lrs) as their
    // own holder of the groups' floats, so that they rewrite them in place; only when no member runs
    // Python that could read it meanwhile (the user's lambdas, a composite's members).
    const bool lend = lendable_members(scheds.get());
    // All members plain: their updates fused into one pass over the groups, where they allow it.
    const fast fused = lend ? chained_fused(eng, d.get(), scheds.get()) : fast::fallback;
    if (fused == fast::handled && eng) clear_pending_last_lr(eng);  // `_last_lr` was stored
    if (fused != fast::fallback) return fused;  // handled: `_last_lr` too
    // `for scheduler in self._schedulers`: a list may change while we iterate; index it as the
    // list iterator does.
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(scheds.get()); ++i) {
        ref member(ref::incref(PySequence_Fast_ITEMS(scheds.get())[i]));
        lend_last_lr scope(lend ? d.get() : lent_composite);
        ref res(PyObject_CallMethodNoArgs(member.get(), names.step));
        if (!res) return fast::error;
    }
    const Py_ssize_t k = PySequence_Fast_GET_SIZE(scheds.get());
    if (k < 1) {  // a member emptied the list: torch's self._schedulers[-1] raises
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return fast::error;
    }
    ref tail(ref::incref(PySequence_Fast_ITEMS(scheds.get())[k - 1]));
    ref opt(PyObject_GetAttr(tail.get(), names.optimizer));
    if (!opt) return fast::error;
    ref groups(PyObject_GetAttr(opt.get(), names.param_groups));
    if (!groups) return fast::error;
    // Tensor lrs: `_last_lr` (a fresh tensor per group in torch) is a snapshot, built when read.
    if (tensor_stepped(tail.get())) {
        const fast r = composite_tensor_last_lr(eng, d.get(), opt.get());
        if (r != fast::fallback) return r;
    }
    if (eng) clear_pending_last_lr(eng);  // an earlier step's pending list is superseded
    if (PyList_CheckExact(groups.get()) && refresh_last_lr(d.get(), groups.get())) return fast::handled;
    ref last;
    if (PyList_CheckExact(groups.get())) last.reset(current_lrs(opt.get(), groups.get(), PyList_GET_SIZE(groups.get())));
    else last.reset(PyObject_CallFunctionObjArgs(refs.val_list, opt.get(), names.lr, nullptr));
    if (!last || PyDict_SetItem(d.get(), names.last_lr, last.get()) < 0) return fast::error;
    return fast::handled;
}

}  // namespace fastlr_py
