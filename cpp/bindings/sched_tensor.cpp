// The tensor executor: a standard step for optimizers whose groups hold 0-d tensor lrs (fused and
// capturable optimizers, torch.compile), possibly beside Python-float groups.
//
// The groups' tensors are packed once (python/fastlr/_tensor_lrs.py): each becomes a 0-d view of one
// buffer per (dtype, device), its object identity kept. Then every step writes whole buffers:
// - CPU buffers here, directly in their memory (no torch op);
// - other devices by one call into Python's device executor per buffer (one `_cuda` kernel launch,
//   or a fixed sequence of in-place torch ops), never reading a value back to the host.
// float32 buffers carry a float64 shadow: the engine continues from the exact value while the float32
// element still holds its rounding, so a float32 lr is always the rounding of torch's float64 result.
#include "scheduler.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

namespace fastlr_py {
namespace {

// The phases with a per-group loop are functions of their own: inlined into one, the loops shared
// its registers and spilled (about 10% more instructions per group, callgrind).
#if defined(__GNUC__)
#define FASTLR_NOINLINE __attribute__((noinline))
#else
#define FASTLR_NOINLINE
#endif

double read_value(const packed_view::buffer& b, std::int64_t j) {
    if (b.f64) return static_cast<const double*>(b.data)[j];
    const float v = static_cast<const float*>(b.data)[j];
    // Unchanged since the engine wrote it: continue from the exact value.
    if (b.shadow && static_cast<float>(b.shadow[j]) == v) return b.shadow[j];
    return static_cast<double>(v);
}

void write_value(packed_view::buffer& b, std::int64_t j, double v) {
    if (b.f64) {
        static_cast<double*>(b.data)[j] = v;
    } else {
        static_cast<float*>(b.data)[j] = static_cast<float>(v);
        if (b.shadow) b.shadow[j] = v;
    }
}

void snapshot(packed_view::buffer& b) {
    std::memcpy(b.snap, b.data, static_cast<std::size_t>(b.n) * (b.f64 ? sizeof(double) : sizeof(float)));
}

/// Build the C++ view of a Python Packed (its engine_layout()).
packed_view* make_view(PyObject* packed) {
    ref layout(PyObject_CallMethod(packed, "engine_layout", nullptr));
    if (!layout) return nullptr;
    PyObject* groups = PyTuple_Check(layout.get()) && PyTuple_GET_SIZE(layout.get()) == 3 ? PyTuple_GET_ITEM(layout.get(), 0) : nullptr;
    PyObject* bufs = groups ? PyTuple_GET_ITEM(layout.get(), 1) : nullptr;
    PyObject* snaps = groups ? PyTuple_GET_ITEM(layout.get(), 2) : nullptr;
    ref tensors(PyObject_GetAttrString(packed, "tensors"));
    ref pybufs(PyObject_GetAttrString(packed, "buffers"));
    if (!groups || !PyList_Check(groups) || !bufs || !PyList_Check(bufs) || !tensors || !PyList_Check(tensors.get()) ||
        !pybufs || !PyList_Check(pybufs.get()) || PyList_GET_SIZE(tensors.get()) != PyList_GET_SIZE(groups) ||
        PyList_GET_SIZE(pybufs.get()) != PyList_GET_SIZE(bufs) || !PyList_Check(snaps) ||
        PyList_GET_SIZE(snaps) != PyList_GET_SIZE(bufs)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "fastlr: malformed packed layout");
        return nullptr;
    }
    auto* v = new (std::nothrow) packed_view();
    if (!v) {
        PyErr_NoMemory();
        return nullptr;
    }
    try {
        const Py_ssize_t n = PyList_GET_SIZE(groups);
        v->owner.reset(ref::incref(packed));
        v->snaps.reset(ref::incref(snaps));
        v->buf.resize(static_cast<std::size_t>(n));
        v->off.resize(static_cast<std::size_t>(n));
        v->tensor.resize(static_cast<std::size_t>(n));
        for (Py_ssize_t i = 0; i < n; ++i) {
            long long b = -1, j = -1;
            if (!PyArg_ParseTuple(PyList_GET_ITEM(groups, i), "LL", &b, &j)) throw std::bad_alloc();
            v->buf[static_cast<std::size_t>(i)] = static_cast<int>(b);
            if (b == -2) v->foreign = true;
            v->off[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(j);
            // The packed tensor (the owner keeps it), or null for a group left unpacked: its slot in
            // `tensors` is None, which a group's lr set to None must never be taken for.
            v->tensor[static_cast<std::size_t>(i)] = b >= 0 ? PyList_GET_ITEM(tensors.get(), i) : nullptr;
        }
        const Py_ssize_t nb = PyList_GET_SIZE(bufs);
        v->bufs.resize(static_cast<std::size_t>(nb));
        for (Py_ssize_t k = 0; k < nb; ++k) {
            unsigned long long data = 0, shadow = 0, snap = 0;
            int f64 = 0, cpu = 0;
            long long size = 0;
            if (!PyArg_ParseTuple(PyList_GET_ITEM(bufs, k), "KipKKL", &data, &f64, &cpu, &shadow, &snap, &size))
                throw std::bad_alloc();
            packed_view::buffer& b = v->bufs[static_cast<std::size_t>(k)];
            b.data = reinterpret_cast<void*>(static_cast<std::uintptr_t>(data));
            b.f64 = f64 != 0;
            b.cpu = cpu != 0;
            b.shadow = reinterpret_cast<double*>(static_cast<std::uintptr_t>(shadow));
            b.snap = reinterpret_cast<void*>(static_cast<std::uintptr_t>(snap));
            b.n = size;
            b.py = PyList_GET_ITEM(pybufs.get(), k);
            b.snap_py = PyList_GET_ITEM(snaps, k);
        }
    } catch (const std::bad_alloc&) {
        delete v;
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return nullptr;
    }
    v->all_cpu = true;
    v->identity = v->bufs.size() == 1;
    try {
        std::vector<std::pair<int, std::int64_t>> at;
        for (std::size_t i = 0; i < v->buf.size(); ++i)
            if (v->buf[i] >= 0) at.emplace_back(v->buf[i], v->off[i]);
        std::sort(at.begin(), at.end());
        v->aliased = std::adjacent_find(at.begin(), at.end()) != at.end();
    } catch (const std::bad_alloc&) {
        delete v;
        PyErr_NoMemory();
        return nullptr;
    }
    for (std::size_t i = 0; i < v->buf.size(); ++i) {
        v->all_cpu = v->all_cpu && v->buf[i] >= 0 && v->bufs[static_cast<std::size_t>(v->buf[i])].cpu;
        v->identity = v->identity && v->buf[i] == 0 && v->off[i] == static_cast<std::int64_t>(i);
    }
    v->identity = v->identity && v->all_cpu && v->bufs[0].n == static_cast<std::int64_t>(v->buf.size());
    return v;
}

/// How group i holds one side's value this step.
enum class holder : std::uint8_t { py_float, packed, in_place };

/// The value holder of group g for a packed view: a Python float, or the view's registered tensor.
/// `repack`: a tensor that is not registered (replaced since packing).
bool classify(const packed_view* v, Py_ssize_t i, PyObject* value, holder& h, bool& repack) {
    if (value && PyFloat_CheckExact(value)) {
        h = holder::py_float;
        return true;
    }
    if (v && value && value == v->tensor[static_cast<std::size_t>(i)] && v->buf[static_cast<std::size_t>(i)] >= 0) {
        h = holder::packed;
        return true;
    }
    repack = value != nullptr && !PyFloat_Check(value) && !PyLong_Check(value);
    return false;
}

PyObject* momentum_value(PyObject* g, bool beta1) {
    if (!beta1) return PyDict_GetItemWithError(g, names.momentum);
    PyObject* betas = PyDict_GetItemWithError(g, names.betas);
    if (!betas || !PyTuple_CheckExact(betas) || PyTuple_GET_SIZE(betas) < 1) return nullptr;
    return PyTuple_GET_ITEM(betas, 0);
}

/// Operand of a side for group i: array, group key, or `cur` (the current value). `floats` is cleared
/// when a key's value is not a Python float (a 0-d tensor: read again on every step).
bool operand(Engine* eng, PyObject* g, const double* arr, PyObject* key, Py_ssize_t i, double cur, double& out,
             bool* floats = nullptr) {
    if (arr) {
        out = arr[i];
    } else if (key) {
        PyObject* o = PyDict_GetItemWithError(g, key);
        if (!o) return PyErr_Clear(), false;
        if (floats && !PyFloat_CheckExact(o)) *floats = false;
        return value_of(eng, key, i, o, out);
    } else {
        out = cur;
    }
    return true;
}

/// Run Python's device executor for one non-CPU buffer: `device_apply(buffer, op, a, b, x, y)` with
/// x/y the operands in the buffer's element order (bytes of float64), or None for "the current value".
bool device_step(const packed_view& v, const packed_view::buffer& b, std::size_t bi, const update& u,
                 const double* x_group, bool x_current, const double* y_group, bool needs_y) {
    ref xb, yb;
    const std::size_t n = static_cast<std::size_t>(b.n);
    std::vector<double> tmp;
    auto build = [&](const double* src) -> PyObject* {
        try {
            tmp.assign(n, 0.0);
        } catch (const std::bad_alloc&) {
            return PyErr_NoMemory();
        }
        for (std::size_t i = 0; i < v.buf.size(); ++i)
            if (v.buf[i] == static_cast<int>(bi)) tmp[static_cast<std::size_t>(v.off[i])] = src[i];
        return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(tmp.data()),
                                         static_cast<Py_ssize_t>(n * sizeof(double)));
    };
    if (!x_current) {
        xb.reset(build(x_group));
        if (!xb) return false;
    }
    if (needs_y) {
        yb.reset(build(y_group));
        if (!yb) return false;
    }
    ref r(PyObject_CallFunction(refs.device_apply, "OOiddOO", b.py, b.snap_py, static_cast<int>(u.kind), u.a, u.b,
                                xb ? xb.get() : Py_None, yb ? yb.get() : Py_None));
    return static_cast<bool>(r);
}

/// Whether the engine's views are the optimizer's current packings (`optimizer._fastlr_packed`, shared
/// by all schedulers of the optimizer): another scheduler may have packed the groups again.
bool current_packing(Engine* eng, const frame& f, const plan& p) {
    static PyObject* registry_name = PyUnicode_InternFromString("_fastlr_packed");
    static PyObject* beta1_key = PyUnicode_InternFromString("beta1");
    PyObject* opt = PyDict_GetItemWithError(f.dict.get(), names.optimizer);
    if (!opt) return PyErr_Clear(), false;
    ref od(PyObject_GenericGetDict(opt, nullptr));
    PyObject* reg = od ? PyDict_GetItemWithError(od.get(), registry_name) : nullptr;
    if (!reg || !PyDict_Check(reg)) return PyErr_Clear(), false;
    auto same = [&](PyObject* key, const packed_view* v) {
        PyObject* cur = PyDict_GetItemWithError(reg, key);
        if (!cur) {
            PyErr_Clear();
            cur = Py_None;
        }
        return v ? cur == v->owner.get() : cur == Py_None;
    };
    if (!same(names.lr, eng->plr)) return false;
    if (p.momentum && !same(p.beta1 ? beta1_key : names.momentum, eng->pmom)) return false;
    return true;
}

/// Whether the engine's views are the optimizer's current packings, over the frame's n groups.
bool views_current(Engine* eng, const frame& f, const plan& p) {
    auto fits = [&f](const packed_view* v) { return !v || static_cast<Py_ssize_t>(v->buf.size()) == f.n; };
    return fits(eng->plr) && fits(eng->pmom) && current_packing(eng, f, p);
}

/// Pack the groups again for plan `p` (its lr, and its momentum side if any).
fast pack_again(Engine* eng, frame& f, const plan& p) {
    bool any;
    return pack(eng, f, p.momentum, p.beta1, any);
}

}  // namespace

void set_pending_last_lr(Engine* eng, PyObject* pending) {
    PyObject* prev = eng->last_pending;
    eng->last_pending = pending ? pending : ref::incref(Py_None);
    if (eng->spare_pending == eng->last_pending) Py_CLEAR(eng->spare_pending);  // the step reused it
    // The last step's list (if it was one, of floats and None) is kept for the step after this one.
    if (prev && PyList_CheckExact(prev) && !eng->last_settled) Py_XSETREF(eng->spare_pending, prev);
    else Py_XDECREF(prev);
    eng->last_stale = true;
    eng->last_settled = false;
}

bool settle_pending_last_lr(Engine* eng) {
    if (!eng->last_stale || !eng->last_pending || !eng->plr) return true;
    // The pending list's None entries are read from the current views' snapshots: build the list now,
    // from the views the step that left it wrote (a later step that fails may have packed again,
    // and torch's `_last_lr` is still the last successful step's).
    PyObject* full = take_last_lr(eng);
    if (!full) return false;
    Py_XSETREF(eng->last_pending, full);  // no None left: take_last_lr() hands it over as it is
    eng->last_stale = true;
    eng->last_settled = true;
    return true;
}

void unpack(Engine* eng) {
    delete eng->plr;
    delete eng->pmom;
    eng->plr = nullptr;
    eng->pmom = nullptr;
}

fast pack(Engine* eng, frame& f, bool momentum, bool beta1, bool& packed_any) {
    packed_any = false;
    PyObject* opt = PyDict_GetItemWithError(f.dict.get(), names.optimizer);
    if (!opt) return PyErr_Clear(), fast::fallback;
    ref keep_opt(ref::incref(opt));
    eng->busy = true;  // packing runs torch ops; a re-entrant step meanwhile goes to torch's code
    static PyObject* lr_key = PyUnicode_InternFromString("lr");
    static PyObject* beta1_key = PyUnicode_InternFromString("beta1");
    ref plr(PyObject_CallFunctionObjArgs(refs.pack_groups, opt, lr_key, nullptr));
    ref pmom;
    if (plr && momentum) pmom.reset(PyObject_CallFunctionObjArgs(refs.pack_groups, opt, beta1 ? beta1_key : names.momentum, nullptr));
    eng->busy = false;
    if (!plr || (momentum && !pmom)) return fast::error;
    packed_view* vl = plr.get() == Py_None ? nullptr : make_view(plr.get());
    if (plr.get() != Py_None && !vl) return fast::error;
    packed_view* vm = pmom && pmom.get() != Py_None ? make_view(pmom.get()) : nullptr;
    if ((pmom && pmom.get() != Py_None && !vm) || !settle_pending_last_lr(eng)) {
        delete vl;
        delete vm;
        return fast::error;
    }
    unpack(eng);
    eng->plr = vl;
    eng->pmom = vm;
    packed_any = vl || vm;
    // The groups' list may have been rebuilt meanwhile (it is re-read on the next pass).
    return fast::handled;
}

bool packed_lr_value(Engine* eng, Py_ssize_t i, PyObject* t, double& out) {
    const packed_view* v = eng->plr;
    if (!v || i < 0 || static_cast<std::size_t>(i) >= v->buf.size()) return false;
    const std::size_t si = static_cast<std::size_t>(i);
    if (v->buf[si] < 0 || v->tensor[si] != t) return false;
    const packed_view::buffer& b = v->bufs[static_cast<std::size_t>(v->buf[si])];
    if (!b.cpu) return false;
    out = read_value(b, v->off[si]);
    return true;
}

bool tensor_groups_ok(Engine* eng, const frame& f, bool* any_float) {
    for (Py_ssize_t i = 0; i < f.n; ++i) {
        PyObject* g = PyList_GET_ITEM(f.groups.get(), i);
        if (!PyDict_CheckExact(g)) return false;
        PyObject* v = PyDict_GetItemWithError(g, names.lr);
        holder h;
        bool repack = false;
        if (!classify(eng->plr, i, v, h, repack)) return PyErr_Clear(), false;
        if (any_float && h == holder::py_float) *any_float = true;
    }
    return true;
}

namespace {

/// The common case of a tensor step, in two tight loops: every group packed in a CPU buffer, one side
/// (no momentum), operands from arrays or the current value, and every group dict unchanged since
/// the last step (its memo entry holds its packed tensor). The first loop only proves that (one
/// version read per group); the second computes and writes the buffers. False, with nothing
/// written, when any of it does not hold (the general executor then runs).
bool packed_fast_lane(Engine* eng, frame& f, const plan& p, group_memo* memo) {
#if FASTLR_GROUP_MEMO
    packed_view* vl = eng->plr;
    // (Groups sharing a tensor: every value is computed before any is written, as torch's get_lr does,
    // which the element-by-element loop below does not; the general executor's two passes do.)
    if (!memo || !vl || !vl->all_cpu || vl->aliased || p.momentum || p.lr.x_key || p.lr.y_key) return false;
    PyObject** items = reinterpret_cast<PyListObject*>(f.groups.get())->ob_item;
    const Py_ssize_t n = f.n;
    PyObject* const* tensors = vl->tensor.data();
    for (Py_ssize_t i = 0; i < n; ++i) {
#if defined(__GNUC__)
        if (i + 8 < n) __builtin_prefetch(items[i + 8]);
#endif
        const group_memo& e = memo[i];
        PyObject* g = items[i];
        if (e.lr != tensors[i] || !memo_fresh(e, g)) return false;
    }
    if (p.lr.u.kind != update::op::keep && vl->identity) {
        // One buffer, group i at element i: array loops (the current values, the update, the stores).
        packed_view::buffer& b = vl->bufs[0];
        const std::size_t un = static_cast<std::size_t>(n);
        double* cur = eng->out->data();
        double* out = eng->v1->data();
        if (b.f64) {
            const double* d = static_cast<const double*>(b.data);
            std::memcpy(cur, d, un * sizeof(double));
        } else {
            const float* d = static_cast<const float*>(b.data);
            const double* sh = b.shadow;
            // Unchanged since the engine wrote it: continue from the exact value (see read_value).
            for (std::size_t j = 0; j < un; ++j) cur[j] = sh && static_cast<float>(sh[j]) == d[j] ? sh[j] : static_cast<double>(d[j]);
        }
        fastlr::apply(p.lr.u, p.lr.x ? p.lr.x : cur, p.lr.y, out, un);
        if (b.f64) {
            std::memcpy(b.data, out, un * sizeof(double));
        } else {
            float* d = static_cast<float*>(b.data);
            for (std::size_t j = 0; j < un; ++j) d[j] = static_cast<float>(out[j]);
            if (b.shadow) std::memcpy(b.shadow, out, un * sizeof(double));
        }
    } else if (p.lr.u.kind != update::op::keep) {
        const int* bi = vl->buf.data();
        const std::int64_t* off = vl->off.data();
        const bool needs_y = p.lr.u.needs_y();
        for (Py_ssize_t i = 0; i < n; ++i) {
            packed_view::buffer& b = vl->bufs[static_cast<std::size_t>(bi[i])];
            const double cur = read_value(b, off[i]);
            const double x = p.lr.x ? p.lr.x[i] : cur;
            const double y = needs_y && p.lr.y ? p.lr.y[i] : 0.0;
            write_value(b, off[i], fastlr::eval(p.lr.u, x, y));
        }
    }
    for (auto& b : vl->bufs) snapshot(b);
    set_pending_last_lr(eng, nullptr);
    return true;
#else
    (void)eng, (void)f, (void)p, (void)memo;
    return false;
#endif
}

}  // namespace

namespace {

/// One step of the general tensor executor, in named phases. execute_tensors runs them in order:
///
///   compute()                   read every group and compute every value (lr side, momentum side);
///   tensor_into_float()         a step torch would make assign a tensor into a float group;
///   allocate()                  every new Python object the writes need (may run the cyclic GC);
///   write_devices()             non-CPU buffers, through Python's device executor (may raise), from
///                               the operands compute() gathered (no group is read again);
///   recheck_in_place()          floats rewritten in place are still exclusively their group's;
///   write_host()                CPU buffers, in-place floats, snapshots, then new objects into the
///                               groups (momentum before lr, as torch writes them).
///
/// Invariants:
/// - Nothing Python can observe changes before write_devices(): a phase that fails before it leaves
///   the groups, the buffers and the engine's `_last_lr` exactly as they were (torch's code may then
///   run the step from scratch). write_devices() is all-or-nothing per buffer, and runs first among
///   the writes so that its error leaves the host untouched.
/// - After compute() succeeds, lr_h[i] (and m_h[i] when p.momentum) say how group i holds each side,
///   and lr_out/m_out hold its new values; cur[i] is its current lr where it lives on the host.
///   m_h is scratch shared with other paths: it is read only when p.momentum.
/// - A memo entry describes its group only while memo_fresh() holds for it; compute() stamps an entry
///   only for a group whose lr is packed and whose momentum keeps its object this step.
/// - Phases that ran Python (allocate(), write_devices()) are followed by a check of what they could
///   have changed (the group list, the in-place floats' reference counts) before memory is written.
class tensor_step {
public:
    enum class read { ok, repack, fallback };

    tensor_step(Engine* eng, frame& f, const plan& p, group_memo* memo)
        : eng_(eng), p_(p), groups_(f.groups.get()), n_(f.n), vl_(eng->plr), vm_(eng->pmom),
          memo_(memo), cur_(*eng->out), lr_out_(*eng->v1), m_out_(*eng->v2),
          lr_h_(reinterpret_cast<holder*>(eng->holders->data())), m_h_(lr_h_ + n_) {}

    /// Phase 1: read and compute everything; nothing is written. `repack`: a group holds a tensor
    /// that was not packed (replaced since): packing again may let the step run.
    ///
    /// Its state lives in locals, its per-group steps in lambdas: as member functions reading members,
    /// every store through the holder bytes (which may alias anything) reloaded them, and the loop ran
    /// 12-25% slower at 4096 groups (CyclicLR, OneCycleLR; measured).
    FASTLR_NOINLINE read compute() {
        Engine* const eng = eng_;
        const plan& p = p_;
        PyObject* const groups = groups_;
        const Py_ssize_t n = n_;
        packed_view* const vl = vl_;
        packed_view* const vm = vm_;
        group_memo* const memo = memo_;
        double* const cur = cur_.data();
        double* const lr_out = lr_out_.data();
        double* const m_out = m_out_.data();
        double* const mxs = eng->mx->data();
        double* const mys = eng->my->data();
        holder* const lr_h = lr_h_;
        holder* const m_h = m_h_;
        [[maybe_unused]] const bool key_ops = p.lr.x_key || p.lr.y_key || (p.momentum && (p.mom.x_key || p.mom.y_key));
        bool need_repack = false, lr_float = false, mom_alloc = false, mom_inplace = false;
        // How a group holds a Python-float momentum: torch assigns a new float (or a new betas
        // tuple); a float only its group holds (in a tuple only its group holds) takes the value in
        // place instead, which nobody can tell. In place needs the memo (it keeps the object for the
        // write).
        auto float_momentum = [&](std::size_t si, group_memo* gm, PyObject* obj) {
            bool in_place = false;
#if FASTLR_GROUP_MEMO  // (no memo entry without them; beta1 in place also needs FASTLR_TUPLE_IN_PLACE)
            if (gm && obj) {
                if (!p.beta1) {
                    in_place = PyFloat_CheckExact(obj) && Py_REFCNT(obj) == 1;
                } else if (FASTLR_TUPLE_IN_PLACE) {  // obj: the betas tuple
                    PyObject* b1 = PyTuple_GET_SIZE(obj) >= 1 ? PyTuple_GET_ITEM(obj, 0) : nullptr;
                    in_place = Py_REFCNT(obj) == 1 && b1 && PyFloat_CheckExact(b1) && Py_REFCNT(b1) == 1;
                }
            }
#else
            (void)gm, (void)obj;
#endif
            m_h[si] = in_place ? holder::in_place : holder::py_float;
            (in_place ? mom_inplace : mom_alloc) = true;
        };
        // Gathered momentum key operands are kept in group order for the device executor (in the
        // engine's momentum scratch, which an array operand of the side never is when it reads a key).
        bool gather = false;  // (only a device buffer needs them)
        if (p.momentum && vm && (p.mom.x_key || p.mom.y_key))
            for (const auto& b : vm->bufs) gather = gather || !b.cpu;
        auto keep_mom_keys = [&](std::size_t si, double mx, double my) {
            if (!gather) return;
            if (p.mom.x_key) mxs[si] = mx;
            if (p.mom.y_key) mys[si] = my;
        };
        // Group i from its memo entry, while the dict is unchanged and holds the packed lr tensor and
        // the momentum object the memo has (and the key operands' values): nothing to look up. 1
        // computed, 0 not applicable (look up), -1 failed. (This repeats the lookup's operand reads on
        // purpose: one body for both, tried, made CyclicLR/OneCycleLR steps about 10% slower at 4096
        // groups.)
        auto from_memo = [&](Py_ssize_t i, PyObject* g, group_memo* gm) -> int {
#if FASTLR_GROUP_MEMO
            const std::size_t si = static_cast<std::size_t>(i);
            // The memo's momentum object: 1 the packed tensor, 2 a float (a betas tuple whose beta1
            // is a float), 0 neither (the packing changed since: look up).
            auto memo_mom = [&](const group_memo* e) {
                PyObject* o = e->mom;
                if (!o) return 0;
                if (vm && o == vm->tensor[si]) return 1;
                if (!p.beta1) return PyFloat_CheckExact(o) ? 2 : 0;
                return PyTuple_CheckExact(o) && PyTuple_GET_SIZE(o) >= 1 && PyFloat_CheckExact(PyTuple_GET_ITEM(o, 0)) ? 2 : 0;
            };
            int mk = 0;
            if (!gm || !memo_fresh(*gm, g) || gm->lr != vl->tensor[si] || (p.momentum && (mk = memo_mom(gm)) == 0))
                return 0;
            lr_h[si] = holder::packed;
            if (mk == 1) {
                m_h[si] = holder::packed;
            } else if (mk == 2) {
                float_momentum(si, gm, gm->mom);
                if (m_h[si] == holder::py_float) gm->dict = nullptr;  // it gets a new object
            }
            const packed_view::buffer& lb = vl->bufs[static_cast<std::size_t>(vl->buf[si])];
            cur[si] = lb.cpu ? read_value(lb, vl->off[si]) : 0.0;
            double x, y = 0.0;
            if (key_ops && !gm->keys) {
                if (!operand(eng, g, p.lr.x, p.lr.x_key, i, cur[si], x) ||
                    (p.lr.u.needs_y() && !operand(eng, g, p.lr.y, p.lr.y_key, i, 0.0, y)))
                    return -1;
            } else {
                x = p.lr.x ? p.lr.x[i] : p.lr.x_key ? gm->x : cur[si];
                y = p.lr.y ? p.lr.y[i] : gm->y;
            }
            if (p.lr.x_key) (*eng->x)[si] = x;
            if (p.lr.y_key) (*eng->y)[si] = y;
            lr_out[si] = fastlr::eval(p.lr.u, x, y);
            if (!p.momentum) return 1;
            double mx, my = 0.0;
            if (key_ops && !gm->keys) {
                if (!operand(eng, g, p.mom.x, p.mom.x_key, i, 0.0, mx) ||
                    (p.mom.u.needs_y() && !operand(eng, g, p.mom.y, p.mom.y_key, i, 0.0, my)))
                    return -1;
            } else {
                mx = p.mom.x ? p.mom.x[i] : gm->mx;
                my = p.mom.y ? p.mom.y[i] : gm->my;
            }
            keep_mom_keys(si, mx, my);
            m_out[si] = fastlr::eval(p.mom.u, mx, my);
            return 1;
#else
            (void)i, (void)g, (void)gm;
            return 0;
#endif
        };
        // Group i by looking its keys up; stamps its memo entry when the memo can describe it.
        auto by_lookup = [&](Py_ssize_t i, PyObject* g, group_memo* gm) -> bool {
            const std::size_t si = static_cast<std::size_t>(i);
            PyObject* v = PyDict_GetItemWithError(g, names.lr);
            if (!classify(vl, i, v, lr_h[si], need_repack)) return false;
            if (lr_h[si] == holder::py_float) {
                cur[si] = PyFloat_AS_DOUBLE(v);
                lr_float = true;
            } else {
                const packed_view::buffer& lb = vl->bufs[static_cast<std::size_t>(vl->buf[si])];
                cur[si] = lb.cpu ? read_value(lb, vl->off[si]) : 0.0;  // (else computed on the device)
            }
            double x, y = 0.0;
            bool key_floats = true;
            if (!operand(eng, g, p.lr.x, p.lr.x_key, i, cur[si], x, &key_floats) ||
                (p.lr.u.needs_y() && !operand(eng, g, p.lr.y, p.lr.y_key, i, 0.0, y, &key_floats)))
                return false;
            // Gathered key operands are kept in group order for the device executor.
            if (p.lr.x_key) (*eng->x)[si] = x;
            if (p.lr.y_key) (*eng->y)[si] = y;
            lr_out[si] = fastlr::eval(p.lr.u, x, y);
            PyObject* mobj = nullptr;  // what the memo keeps: the packed tensor, the float or the tuple
            double mx = 0.0, my = 0.0;
            // The memo keeps groups whose lr is packed (the float paths keep the others).
            const bool keep = gm && lr_h[si] == holder::packed;
            if (p.momentum) {
                PyObject* mv = momentum_value(g, p.beta1);
                if (!classify(vm, i, mv, m_h[si], need_repack)) return false;
                if (m_h[si] == holder::packed) {
                    mobj = mv;
                } else {
                    mobj = p.beta1 ? PyDict_GetItem(g, names.betas) : mv;
                    float_momentum(si, keep ? gm : nullptr, mobj);
                }
                if (!operand(eng, g, p.mom.x, p.mom.x_key, i, 0.0, mx, &key_floats) ||
                    (p.mom.u.needs_y() && !operand(eng, g, p.mom.y, p.mom.y_key, i, 0.0, my, &key_floats)))
                    return false;
                keep_mom_keys(si, mx, my);
                m_out[si] = fastlr::eval(p.mom.u, mx, my);
            }
#if FASTLR_GROUP_MEMO
            if (gm) {
                gm->dict = nullptr;
                // Not a group whose momentum gets a new object (its dict changes).
                if (keep && (!p.momentum || m_h[si] != holder::py_float)) {
                    memo_stamp(*gm, g);
                    gm->lr = v;
                    gm->mom = mobj;
                    gm->x = p.lr.x_key ? x : 0.0;
                    gm->y = p.lr.y_key ? y : 0.0;
                    gm->mx = p.momentum && p.mom.x_key ? mx : 0.0;
                    gm->my = p.momentum && p.mom.y_key ? my : 0.0;
                    gm->keys = key_floats;
                }
            }
#else
            (void)keep;
#endif
            return true;
        };
        bool ok = true;
        for (Py_ssize_t i = 0; i < n && ok; ++i) {
            PyObject* g = PyList_GET_ITEM(groups, i);
#if defined(__GNUC__)
            // The dicts are scattered over the heap: fetch the ones a few groups ahead meanwhile.
            if (i + 8 < n) __builtin_prefetch(PyList_GET_ITEM(groups, i + 8));
#endif
            if (!PyDict_CheckExact(g)) {
                ok = false;
                break;
            }
            group_memo* gm = memo && vl ? &memo[static_cast<std::size_t>(i)] : nullptr;
            const int r = from_memo(i, g, gm);
            ok = r == 0 ? by_lookup(i, g, gm) : r > 0;
        }
        need_repack_ = need_repack;
        lr_float_ = lr_float;
        mom_alloc_ = mom_alloc;
        mom_inplace_ = mom_inplace;
        if (ok) return read::ok;
        PyErr_Clear();
        return need_repack ? read::repack : read::fallback;
    }

    /// Phase 2: a tensor operand makes torch's value a tensor, which torch assigns into a group that
    /// held a Python float (the group's lr or momentum becomes a tensor): such a step is torch's.
    bool tensor_into_float() const {
        if (!(lr_float_ || mom_alloc_ || mom_inplace_) || !(eng_->tensor_operand || eng_->tensor_operand_mom)) return false;
        for (Py_ssize_t i = 0; i < n_; ++i) {
            const std::size_t si = static_cast<std::size_t>(i);
            if ((lr_h_[si] == holder::py_float && tensor_operand_at(eng_, i, false)) ||
                (p_.momentum && m_h_[si] != holder::packed && tensor_operand_at(eng_, i, true)))
                return true;
        }
        return false;
    }

    /// Phase 3: groups holding Python floats get new objects: allocate everything the writes need
    /// (may run the cyclic GC), then check the groups again. The list of pending values is the one
    /// before the last step's when nothing else holds it (the last step's must stay as it is until
    /// this one succeeds: get_last_lr() may still need it). When every lr is packed there is nothing
    /// to allocate for the lrs: `_last_lr` is the snapshots' values.
    fast allocate() {
        if (!lr_float_ && !mom_alloc_) return fast::handled;
        if (lr_float_ && !allocate_lrs()) return fast::error;
        if (mom_alloc_ && !allocate_momenta()) return fast::error;
        if (PyList_GET_SIZE(groups_) != n_) return fast::fallback;
        for (Py_ssize_t i = 0; i < n_; ++i) {
            PyObject* g = PyList_GET_ITEM(groups_, i);
            if (!PyDict_CheckExact(g)) return fast::fallback;
#if FASTLR_GROUP_MEMO
            // A float to rewrite in place must still be where it was, held by its group only.
            if (mom_inplace_ && m_h_[static_cast<std::size_t>(i)] == holder::in_place && !in_place_intact(i, g))
                return fast::fallback;
#endif
        }
        return fast::handled;
    }

    /// Phase 4: device buffers (their executor may raise; then nothing else is written).
    bool write_devices() {
        const bool lr_keep = p_.lr.u.kind == update::op::keep;
        if (!device_side(vl_, p_.lr, lr_keep, eng_->x->data(), eng_->y->data())) return false;
        if (!p_.momentum || !vm_) return true;
        return device_side(vm_, p_.mom, false, eng_->mx->data(), eng_->my->data());
    }

    /// Phase 5: the device executor (Python) may have run since the in-place floats were checked (the
    /// allocations re-checked them already when there were any): check them again. A float someone
    /// took a reference to meanwhile gets torch's new object instead.
    bool recheck_in_place() {
#if FASTLR_GROUP_MEMO
        bool ran_python = false;
        for (packed_view* v : {vl_, vm_})
            if (v)
                for (const auto& b : v->bufs) ran_python = ran_python || !b.cpu;
        if (!mom_inplace_ || !ran_python || lr_float_ || mom_alloc_) return true;
        for (Py_ssize_t i = 0; i < n_; ++i) {
            const std::size_t si = static_cast<std::size_t>(i);
            if (m_h_[si] != holder::in_place) continue;
            group_memo& gm = memo_[si];
            PyObject* g = PyList_GET_SIZE(groups_) == n_ ? PyList_GET_ITEM(groups_, i) : nullptr;
            if (!g || !PyDict_CheckExact(g) || !memo_fresh(gm, g)) {
                PyErr_SetString(PyExc_RuntimeError, "fastlr: the optimizer's param groups changed while the "
                                                    "device lr update ran");
                return false;
            }
            PyObject* b1 = p_.beta1 ? PyTuple_GET_ITEM(gm.mom, 0) : gm.mom;
            if (Py_REFCNT(gm.mom) == 1 && Py_REFCNT(b1) == 1) continue;
            // (A float allocates nothing the cyclic GC tracks, so no Python runs; a betas tuple would.)
            if (p_.beta1) {
                PyErr_SetString(PyExc_RuntimeError, "fastlr: a betas tuple was taken while the device lr update ran");
                return false;
            }
            ref nf(PyFloat_FromDouble(m_out_[si]));
            if (!nf || PyDict_SetItem(g, names.momentum, nf.get()) < 0) return false;
            m_h_[si] = holder::py_float;  // written
            gm.dict = nullptr;
        }
#endif
        return true;
    }

    /// Phase 6: CPU memory directly (buffers, floats in place), the snapshots for get_last_lr(), then
    /// the new objects into the Python-float groups, momentum then lr, as torch writes them.
    FASTLR_NOINLINE fast write_host() {
        // (Locals, for the loop: see compute().)
        const plan& p = p_;
        const Py_ssize_t n = n_;
        packed_view* const vl = vl_;
        packed_view* const vm = vm_;
        const holder* const lr_h = lr_h_;
        const holder* const m_h = m_h_;
        const double* const lr_out = lr_out_.data();
        const double* const m_out = m_out_.data();
        const bool lr_write = p.lr.u.kind != update::op::keep;
        const bool momentum = p.momentum;
        [[maybe_unused]] const bool mom_inplace = mom_inplace_;
        [[maybe_unused]] group_memo* const memo = memo_;
        for (Py_ssize_t i = 0; i < n; ++i) {
            const std::size_t si = static_cast<std::size_t>(i);
            if (lr_write && lr_h[si] == holder::packed) {
                packed_view::buffer& b = vl->bufs[static_cast<std::size_t>(vl->buf[si])];
                if (b.cpu) write_value(b, vl->off[si], lr_out[si]);
            }
            if (momentum && m_h[si] == holder::packed) {
                packed_view::buffer& b = vm->bufs[static_cast<std::size_t>(vm->buf[si])];
                if (b.cpu) write_value(b, vm->off[si], m_out[si]);
            }
#if FASTLR_GROUP_MEMO
            if (mom_inplace && m_h[si] == holder::in_place) {  // the group's float, or beta1 in its tuple
                PyObject* o = memo[si].mom;
                if (p.beta1) o = PyTuple_GET_ITEM(o, 0);
                reinterpret_cast<PyFloatObject*>(o)->ob_fval = m_out[si];
            }
#endif
        }
        if (vl)
            for (auto& b : vl->bufs)
                if (b.cpu) snapshot(b);
        for (Py_ssize_t i = 0; mom_alloc_ && i < n_; ++i) {
            if (m_h_[static_cast<std::size_t>(i)] == holder::py_float &&
                PyDict_SetItem(PyList_GET_ITEM(groups_, i), p_.beta1 ? names.betas : names.momentum,
                               PyList_GET_ITEM(moms_.get(), i)) < 0)
                return fast::error;
        }
        if (lr_write && lr_float_) {
            for (Py_ssize_t i = 0; i < n_; ++i) {
                PyObject* o = PyList_GET_ITEM(pending_.get(), i);
                if (o != Py_None && PyDict_SetItem(PyList_GET_ITEM(groups_, i), names.lr, o) < 0) return fast::error;
            }
        }
        set_pending_last_lr(eng_, lr_float_ ? pending_.release() : nullptr);
        return fast::handled;
    }

private:
    /// The pending `_last_lr` list: new floats for Python-float groups, None for packed ones.
    bool allocate_lrs() {
        PyObject* spare = eng_->spare_pending;
        const bool reuse = spare && PyList_CheckExact(spare) && Py_REFCNT(spare) == 1 && PyList_GET_SIZE(spare) == n_;
        pending_.reset(reuse ? ref::incref(spare) : PyList_New(n_));
        if (!pending_) return false;
        for (Py_ssize_t i = 0; i < n_; ++i) {
            const std::size_t si = static_cast<std::size_t>(i);
            PyObject* o;
            if (lr_h_[si] == holder::packed) o = ref::incref(Py_None);
            else if (p_.lr.u.kind == update::op::keep) o = ref::incref(PyDict_GetItem(PyList_GET_ITEM(groups_, i), names.lr));
            else o = PyFloat_FromDouble(lr_out_[si]);
            if (!o) return false;
            if (reuse) {  // the old item is None or a float: releasing it runs no Python
                PyObject* old = PyList_GET_ITEM(pending_.get(), i);
                PyList_SET_ITEM(pending_.get(), i, o);
                Py_DECREF(old);
            } else {
                PyList_SET_ITEM(pending_.get(), i, o);
            }
        }
        return true;
    }

    /// The new momentum objects: a float, or for beta1 `(momentum, *group["betas"][1:])`.
    bool allocate_momenta() {
        moms_.reset(PyList_New(n_));
        if (!moms_) return false;
        for (Py_ssize_t i = 0; i < n_; ++i) {
            const std::size_t si = static_cast<std::size_t>(i);
            PyObject* m;
            if (m_h_[si] != holder::py_float) {
                m = ref::incref(Py_None);
            } else {
                ref mf(PyFloat_FromDouble(m_out_[si]));
                if (!mf) return false;
                if (p_.beta1) {
                    PyObject* betas = PyDict_GetItem(PyList_GET_ITEM(groups_, i), names.betas);
                    const Py_ssize_t nb = PyTuple_GET_SIZE(betas);
                    m = PyTuple_New(nb);
                    if (!m) return false;
                    PyTuple_SET_ITEM(m, 0, mf.release());
                    for (Py_ssize_t j = 1; j < nb; ++j) PyTuple_SET_ITEM(m, j, ref::incref(PyTuple_GET_ITEM(betas, j)));
                } else {
                    m = mf.release();
                }
            }
            PyList_SET_ITEM(moms_.get(), i, m);
        }
        return true;
    }

#if FASTLR_GROUP_MEMO
    bool in_place_intact(Py_ssize_t i, PyObject* g) const {
        const group_memo& gm = memo_[static_cast<std::size_t>(i)];
        PyObject* b1 = p_.beta1 ? PyTuple_GET_ITEM(gm.mom, 0) : gm.mom;
        return memo_fresh(gm, g) && Py_REFCNT(gm.mom) == 1 && Py_REFCNT(b1) == 1;
    }
#endif

    /// One side's non-CPU buffers, each by one call into the device executor. `xk`/`yk`: the side's
    /// key operands, gathered in group order by compute().
    bool device_side(packed_view* v, const side& sd, bool keep, const double* xk, const double* yk) {
        if (!v) return true;
        for (std::size_t bi = 0; bi < v->bufs.size(); ++bi) {
            const packed_view::buffer& b = v->bufs[bi];
            if (b.cpu) continue;
            if (keep) {  // values unchanged: only the snapshot for get_last_lr()
                if (!device_step(*v, b, bi, update::keep(), nullptr, true, nullptr, false)) return false;
                continue;
            }
            const double* xs = sd.x ? sd.x : (sd.x_key ? xk : nullptr);
            const double* ys = sd.y ? sd.y : (sd.y_key ? yk : nullptr);
            if (!device_step(*v, b, bi, sd.u, xs, sd.x_current(), ys, sd.u.needs_y())) return false;
        }
        return true;
    }

    Engine* eng_;
    const plan& p_;
    PyObject* groups_;
    const Py_ssize_t n_;
    packed_view* vl_;
    packed_view* vm_;
    group_memo* memo_;
    std::vector<double>& cur_;     // the lr side's current values (its x when current)
    std::vector<double>& lr_out_;  // the lr side's new values
    std::vector<double>& m_out_;   // the momentum side's new values
    holder* lr_h_;
    holder* m_h_;
    bool need_repack_ = false;
    bool lr_float_ = false;     // a group holds its lr as a Python float (new floats, `_last_lr` list)
    bool mom_alloc_ = false;    // a group's momentum (beta1) float needs a new object (tuple)
    bool mom_inplace_ = false;  // a group's momentum (beta1) float is rewritten in place
    ref pending_, moms_;        // allocate()'s objects
};

}  // namespace

fast execute_tensors(Engine* eng, frame& f, const plan& p) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        const Py_ssize_t n = f.n;
        if (PyList_GET_SIZE(f.groups.get()) != n) return fast::fallback;
        // The engine's views must be the optimizer's current packings (another scheduler, or a
        // replaced tensor, may have packed the groups again): else pack again, once.
        if (!views_current(eng, f, p)) {
            if (attempt) return fast::fallback;
            const fast r = pack_again(eng, f, p);
            if (r != fast::handled) return r;
            continue;
        }
        // A tensor shared with another optimizer, which packed it: torch's code writes it (fill_), as
        // torch would, whatever order the two optimizers' schedulers step in.
        if ((eng->plr && eng->plr->foreign) || (eng->pmom && eng->pmom->foreign)) return fast::fallback;
        if (!fit(eng, static_cast<std::size_t>(n))) return fast::error;
        group_memo* memo = memo_for(eng, p, n);
        if (packed_fast_lane(eng, f, p, memo)) return fast::handled;
        tensor_step step(eng, f, p, memo);
        switch (step.compute()) {
            case tensor_step::read::ok:
                break;
            case tensor_step::read::repack:
                if (attempt == 0) {
                    const fast r = pack_again(eng, f, p);
                    if (r != fast::handled) return r;
                    continue;
                }
                return fast::fallback;
            case tensor_step::read::fallback:
                return fast::fallback;
        }
        if (step.tensor_into_float()) return fast::fallback;
        if (const fast r = step.allocate(); r != fast::handled) return r;
        if (!step.write_devices() || !step.recheck_in_place()) return fast::error;
        return step.write_host();
    }
    return fast::fallback;
}

fast packed_reduce_prepare(Engine* eng, frame& f, const std::function<bool(Py_ssize_t, double, bool&, double&)>& rule) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        PyObject* groups = f.groups.get();
        const Py_ssize_t n = f.n;
        if (PyList_GET_SIZE(groups) != n) return fast::fallback;
        packed_view* vl = eng->plr;
        if (!vl || !views_current(eng, f, plan{})) {
            if (attempt) return fast::fallback;
            const fast r = pack_again(eng, f, plan{});
            if (r != fast::handled) return r;
            continue;
        }
        // Device values: reading them would synchronise. Groups sharing one tensor: torch reduces it once
        // per group, each from the value the group before left (a read-modify-write per group).
        if (!vl->all_cpu || vl->foreign || vl->aliased) return fast::fallback;
        if (!fit(eng, static_cast<std::size_t>(n))) return fast::error;
        double* vals = eng->v1->data();
        std::uint8_t* write = eng->holders->data();
        bool replaced = false, ok = true;
        for (Py_ssize_t i = 0; i < n && ok; ++i) {
            PyObject* g = PyList_GET_ITEM(groups, i);
            PyObject* v = PyDict_CheckExact(g) ? PyDict_GetItemWithError(g, names.lr) : nullptr;
            const std::size_t si = static_cast<std::size_t>(i);
            if (!v || v != vl->tensor[si]) {
                replaced = v && !PyFloat_Check(v) && !PyLong_Check(v);
                ok = false;
                break;
            }
            const packed_view::buffer& b = vl->bufs[static_cast<std::size_t>(vl->buf[si])];
            // torch's float(group["lr"]): the element's own value (float32 widened, not the shadow).
            const std::int64_t j = vl->off[si];
            const double old = b.f64 ? static_cast<const double*>(b.data)[j] : static_cast<double>(static_cast<const float*>(b.data)[j]);
            bool w = false;
            ok = rule(i, old, w, vals[si]);
            write[si] = w ? 1 : 0;
        }
        if (ok) return fast::handled;
        PyErr_Clear();
        if (!replaced || attempt) return fast::fallback;
        const fast r = pack_again(eng, f, plan{});
        if (r != fast::handled) return r;
    }
    return fast::fallback;
}

void packed_reduce_apply(Engine* eng, Py_ssize_t n) {
    packed_view* vl = eng->plr;
    const double* vals = eng->v1->data();
    const std::uint8_t* write = eng->holders->data();
    for (Py_ssize_t i = 0; i < n; ++i) {
        const std::size_t si = static_cast<std::size_t>(i);
        if (write[si]) write_value(vl->bufs[static_cast<std::size_t>(vl->buf[si])], vl->off[si], vals[si]);
    }
    for (auto& b : vl->bufs) snapshot(b);
    set_pending_last_lr(eng, nullptr);
}

/// Engine.take_last_lr(): the `_last_lr` of the last tensor step, as torch builds it (floats, and a
/// fresh tensor per packed group), from the pending floats and the buffers' snapshots.
PyObject* take_last_lr(Engine* eng) {
    if (!eng->last_stale || !eng->last_pending) {
        PyErr_SetString(PyExc_RuntimeError, "no pending _last_lr");
        return nullptr;
    }
    if (eng->last_settled) {  // built before the views changed (settle_pending_last_lr)
        PyObject* out = eng->last_pending;
        eng->last_pending = nullptr;
        eng->last_stale = eng->last_settled = false;
        return out;
    }
    ref values;
    if (eng->plr) {
        values.reset(PyObject_CallMethod(eng->plr->owner.get(), "last_values", "O", eng->plr->snaps.get()));
        if (!values) return nullptr;
    }
    if (eng->last_pending == Py_None) {  // every group packed: the snapshots' values are the list
        if (!values || !PyList_CheckExact(values.get())) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "fastlr: no packed lrs for _last_lr");
            return nullptr;
        }
        clear_pending_last_lr(eng);
        return values.release();
    }
    ref pending(ref::incref(eng->last_pending));
    const Py_ssize_t n = PyList_GET_SIZE(pending.get());
    ref out(PyList_New(n));
    if (!out) return nullptr;
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* o = PyList_GET_ITEM(pending.get(), i);
        if (o == Py_None && values && PyList_Check(values.get()) && i < PyList_GET_SIZE(values.get()))
            o = PyList_GET_ITEM(values.get(), i);
        PyList_SET_ITEM(out.get(), i, ref::incref(o));
    }
    eng->last_stale = false;
    Py_XSETREF(eng->spare_pending, eng->last_pending);  // reused by the next step
    eng->last_pending = nullptr;
    return out.release();
}

}  // namespace fastlr_py
