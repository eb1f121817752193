// How the group memo learns that a group dict changed (see FASTLR_GROUP_MEMO in scheduler.hpp).
//
// CPython >= 3.12: one dict watcher (the public PyDict_AddWatcher/PyDict_Watch API) for the whole
// module. A group dict is watched when a memo entry is first made for it; from then on every
// modification of it (a key added, assigned or deleted, clear(), a merge into it) and its deallocation
// call `on_dict_event`, which gives its cell a new stamp. A step compares the stamp its memo entry
// recorded with the cell's: one load, as the PEP 509 tag was on older Pythons, and no lookup.
//
// Contract: the watcher never runs Python code, never allocates and never fails; a dict whose cell
// cannot be made (no watcher id, MemoryError) is simply not memoised.
#include "scheduler.hpp"

#include <cstdlib>
#include <cstring>
#include <deque>
#include <new>
#include <unordered_map>
#include <utility>
#include <vector>

namespace fastlr_py {

bool group_memo_enabled = FASTLR_GROUP_MEMO != 0;

#if FASTLR_MEMO_WATCH
namespace {

int watcher_id = -1;
std::uint64_t stamp_clock = 0;  // the last stamp given out; never repeats (2**64 events)
// Never destroyed (a dict may be deallocated, and call the watcher, during interpreter finalisation,
// after static destructors could have run): leaked on purpose, like the interned names.
std::unordered_map<PyObject*, dict_cell*>* cells = nullptr;
std::deque<dict_cell>* slab = nullptr;  // stable addresses: a memo entry may keep a pointer forever
dict_cell* free_cells = nullptr;

int on_dict_event(PyDict_WatchEvent event, PyObject* dict, PyObject*, PyObject*) {
    auto it = cells->find(dict);
    if (it == cells->end()) return 0;  // watched once, forgotten after a failed allocation: nothing to do
    dict_cell* c = it->second;
    c->version = ++stamp_clock;
    if (event == PyDict_EVENT_DEALLOCATED) {
        // Another dict may be made at this address: its memo entries must not match, and they cannot
        // (the stamp just moved on). The cell waits for another dict.
        cells->erase(it);
        c->dict = nullptr;
        c->next_free = free_cells;
        free_cells = c;
    }
    return 0;
}

}  // namespace

dict_cell* watch_dict(PyObject* d) {
    if (watcher_id < 0) return nullptr;
    auto it = cells->find(d);
    if (it != cells->end()) return it->second;
    try {
        dict_cell* c = free_cells;
        if (c) {
            free_cells = c->next_free;
        } else {
            slab->push_back(dict_cell{});
            c = &slab->back();
        }
        c->dict = d;
        c->version = ++stamp_clock;
        c->next_free = nullptr;
        try {
            cells->emplace(d, c);
        } catch (...) {
            c->dict = nullptr;
            c->next_free = free_cells;
            free_cells = c;
            throw;
        }
        if (PyDict_Watch(watcher_id, d) < 0) {  // (only for a non-dict, which callers never pass)
            PyErr_Clear();
            cells->erase(d);
            c->dict = nullptr;
            c->next_free = free_cells;
            free_cells = c;
            return nullptr;
        }
        return c;
    } catch (const std::bad_alloc&) {
        return nullptr;
    }
}
#endif

bool dict_stamp(PyObject* d, std::uint64_t& out) {
#if FASTLR_GROUP_MEMO
    if (!PyDict_CheckExact(d)) return false;
    group_memo e;
    memo_stamp(e, d);
    if (!e.dict) return false;
    out = e.version;
    return true;
#else
    (void)d, (void)out;
    return false;
#endif
}

GroupWatch::GroupWatch(PyObject* groups, std::vector<PyObject*> keys) : keys_(std::move(keys)) { take(groups); }

GroupWatch::~GroupWatch() { clear(); }

void GroupWatch::clear() {
    Py_CLEAR(list_);
    for (PyObject* o : held_) Py_XDECREF(o);
    held_.clear();
    entries_.clear();
}

/// The value under `key` of group g ("beta1": betas[0]); borrowed, or null.
static PyObject* watched_value(PyObject* g, PyObject* key) {
    static PyObject* beta1 = PyUnicode_InternFromString("beta1");
    if (key == beta1) {
        PyObject* betas = PyDict_GetItemWithError(g, names.betas);
        return betas && PyTuple_Check(betas) && PyTuple_GET_SIZE(betas) >= 1 ? PyTuple_GET_ITEM(betas, 0) : nullptr;
    }
    return PyDict_GetItemWithError(g, key);
}

void GroupWatch::take(PyObject* groups) {
    clear();
    if (!PyList_Check(groups)) return;
    Py_INCREF(groups);
    list_ = groups;
    n_ = PyList_GET_SIZE(groups);
    const std::size_t n = static_cast<std::size_t>(n_);
    // The dicts and the watched values themselves are held, so none of them can be freed and another
    // object made at its address while this watch compares addresses.
    held_.reserve(n * (1 + keys_.size()));
    entries_.assign(n, group_memo{});
    for (std::size_t i = 0; i < n; ++i) {
        PyObject* g = PyList_GET_ITEM(groups, static_cast<Py_ssize_t>(i));
        Py_INCREF(g);
        held_.push_back(g);
        for (PyObject* k : keys_) {
            PyObject* v = PyDict_Check(g) ? watched_value(g, k) : nullptr;
            PyErr_Clear();
            Py_XINCREF(v);
            held_.push_back(v);
        }
#if FASTLR_GROUP_MEMO
        if (group_memo_enabled && PyDict_CheckExact(g)) memo_stamp(entries_[i], g);
#endif
    }
}

bool GroupWatch::unchanged(PyObject* groups) const {
    if (groups != list_ || !list_ || PyList_GET_SIZE(groups) != n_) return false;
    const std::size_t stride = 1 + keys_.size();
    for (Py_ssize_t i = 0; i < n_; ++i) {
        PyObject* g = PyList_GET_ITEM(groups, i);
        const std::size_t si = static_cast<std::size_t>(i);
        if (g != held_[si * stride]) return false;
#if FASTLR_GROUP_MEMO
        // No key of the dict assigned since: its values are the ones held (one load per group).
        if (entries_[si].dict == g && memo_fresh(entries_[si], g)) continue;
#endif
        if (!PyDict_Check(g)) return false;
        for (std::size_t k = 0; k < keys_.size(); ++k) {
            PyObject* v = watched_value(g, keys_[k]);
            PyErr_Clear();
            if (v != held_[si * stride + 1 + k]) return false;
        }
    }
    return true;
}

bool set_group_memo(bool wanted) {
#if FASTLR_MEMO_WATCH
    if (wanted && watcher_id < 0) {
        if (!cells) {
            cells = new std::unordered_map<PyObject*, dict_cell*>();
            slab = new std::deque<dict_cell>();
        }
        watcher_id = PyDict_AddWatcher(on_dict_event);
        if (watcher_id < 0) PyErr_Clear();  // all of the interpreter's watcher ids are taken: no memo
    }
    // (Once registered the watcher stays: switching the memo off and on again keeps every stamp true.)
    group_memo_enabled = wanted && watcher_id >= 0;
#else
    group_memo_enabled = wanted && FASTLR_GROUP_MEMO != 0;
#endif
    return group_memo_enabled;
}

void init_group_memo() {
    const char* env = std::getenv("FASTLR_GROUP_MEMO");
    set_group_memo(!(env && std::strcmp(env, "0") == 0));
}

}  // namespace fastlr_py
