// fastlr._core.Program: a validated schedule program (fastlr/program.hpp) and its evaluation for
// python/fastlr/schedules/. Tables and arrays of steps are computed with the GIL released, split over
// worker threads when long, into float64 or float32.
#include "pybind11.hpp"

#include <pybind11/numpy.h>

#include <fastlr/program_host.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include "register.hpp"

namespace {

namespace fs = fastlr::sched;

using node_spec = std::tuple<std::uint32_t, std::vector<double>, std::vector<std::uint32_t>>;

/// Steps must be finite, >= 0 and at most 2**53 (where doubles stop counting every integer).
void check_step(double t) {
    if (!(t >= 0.0 && t <= fastlr::hd::two_pow_53)) {
        throw py::value_error("schedule steps must be finite numbers in [0, 2**53], got " +
                              py::repr(py::float_(t)).cast<std::string>());
    }
}

inline bool bad_step(double t) { return !(t >= 0.0 && t <= fastlr::hd::two_pow_53); }

// ---- Whole tables and arrays: chunks of blocks, over worker threads ----------------------------------
//
// Every value is computed by the same block evaluator as before, on the same 256-step blocks with the
// same step values (a block's steps are `start + s + j` exactly as `run_range` forms them), so a value
// does not depend on the thread that computed it, nor on the output type: float32 output is the
// float64 value rounded once (static_cast, round to nearest even: numpy's float64 -> float32 cast).
// Metric-driven state (plateau values, switch boundaries) is written by Schedule._sync through
// set_state, under the GIL, before the call; the threads read a copy of the parameters taken then, so
// a metric observed on another Python thread while a table is computed cannot change it halfway.

constexpr std::size_t block = fs::block_evaluator::block;
/// Work unit that threads take from a shared counter (64 blocks): small enough to balance uneven
/// schedules and busy cores, large enough that the counter is touched rarely.
constexpr std::size_t chunk_steps = 64 * block;
/// Automatic threading gives each thread at least this many steps (below 2**16 steps: one thread).
constexpr std::size_t min_steps_per_thread = std::size_t{1} << 15;
/// Automatic threading uses at most this many threads (the page faults of a fresh output array and
/// the memory bandwidth stop scaling well before the cores run out).
constexpr unsigned max_auto_threads = 16;
/// The most threads one call may ask for.
constexpr long max_threads = 1024;

/// The default thread count: FASTLR_NUM_THREADS when set, else the hardware's (capped). Read under the GIL.
unsigned default_threads() {
    if (const char* env = std::getenv("FASTLR_NUM_THREADS")) {
        char* end = nullptr;
        const long v = std::strtol(env, &end, 10);
        if (end == env || *end != '\0' || v < 1 || v > max_threads)
            throw py::value_error("FASTLR_NUM_THREADS must be an integer in [1, " + std::to_string(max_threads) +
                                  "], got '" + std::string(env) + "'");
        return static_cast<unsigned>(v);
    }
    static const unsigned hw = std::thread::hardware_concurrency();  // a file read on Linux: once
    return std::min(hw == 0 ? 1u : hw, max_auto_threads);
}

/// Threads for n steps: `requested` (>= 1) as given, 0 for automatic (one per 2**15 steps, up to the
/// default); never more than there are chunks of work.
std::size_t thread_count(std::size_t n, long requested) {
    if (requested < 0 || requested > max_threads)
        throw py::value_error("threads must be in [1, " + std::to_string(max_threads) + "] (or 0 for automatic), got " +
                              std::to_string(requested));
    const std::size_t chunks = (n + chunk_steps - 1) / chunk_steps;
    const std::size_t wanted = requested > 0 ? static_cast<std::size_t>(requested) : n / min_steps_per_thread;
    if (wanted <= 1 || chunks <= 1) return 1;  // short work: the default is not even looked up
    const std::size_t t = requested > 0 ? wanted : std::min<std::size_t>(default_threads(), wanted);
    return std::min(t, chunks);
}

/// Run fill(ev, lo, hi) over [0, n) in chunks of `chunk_steps` (block-aligned), on `threads` threads
/// (the calling one included), each with its own evaluator. Call with the GIL released. `stop` set by
/// a fill ends the work early. The first exception of any thread is rethrown after all have joined.
template <class Fill>
void parallel_chunks(std::size_t n, std::size_t threads, std::atomic<bool>& stop, const Fill& fill) {
    if (threads <= 1) {  // one thread: no pool, no chunk counter (short tables are dominated by the call)
        fs::block_evaluator ev;
        fill(ev, 0, n);
        return;
    }
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    auto work = [&](std::exception_ptr& err) {
        try {
            fs::block_evaluator ev;
            for (;;) {
                if (stop.load(std::memory_order_relaxed) || failed.load(std::memory_order_relaxed)) return;
                const std::size_t lo = next.fetch_add(chunk_steps, std::memory_order_relaxed);
                if (lo >= n) return;
                fill(ev, lo, std::min(n, lo + chunk_steps));
            }
        } catch (...) {
            err = std::current_exception();
            failed.store(true);
        }
    };
    std::vector<std::exception_ptr> errors(threads);
    std::vector<std::thread> pool;
    pool.reserve(threads - 1);
    for (std::size_t i = 1; i < threads; ++i) {
        try {
            pool.emplace_back(work, std::ref(errors[i]));
        } catch (...) {
            break;  // no more threads to be had: the ones started (and this one) share the work
        }
    }
    work(errors[0]);
    for (auto& th : pool) th.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

/// Evaluate steps [lo, hi) into out[lo, hi), block by block: `steps(s, m, tb)` gives the m steps of the
/// block at s (in tb, or elsewhere), or nullptr where one is not a valid step; then this returns false.
template <class Out, class Steps>
bool fill_blocks(fs::block_evaluator& ev, const fs::program& prog, Out* out, std::size_t lo, std::size_t hi,
                 const Steps& steps) {
    alignas(64) double tb[block];
    for (std::size_t s = lo; s < hi; s += block) {
        const std::size_t m = std::min(block, hi - s);
        const double* t = steps(s, m, tb);
        if (t == nullptr) return false;
        ev.run(prog, t, out + s, m);  // float32: the float64 value rounded once, in the evaluator
    }
    return true;
}

class Program {
  public:
    explicit Program(const std::vector<node_spec>& specs) {
        for (const auto& s : specs) {
            const auto& p = std::get<1>(s);
            const auto& c = std::get<2>(s);
            const std::uint32_t k = std::get<0>(s);
            if (k < 1 || k > fs::op_max) throw py::value_error("unknown schedule node kind " + std::to_string(k));
            data_.add(static_cast<fs::op>(k), p.data(), p.size(), c.data(), c.size());
        }
        const std::string err = fs::validate(data_);
        if (!err.empty()) throw py::value_error(err);
    }

    double call(double t) const {
        check_step(t);
        return fs::eval(data_.view(), t);
    }

    /// Values at an array of steps (float64 or int64 read as they are; anything else cast to float64),
    /// as float64 or float32, in the shape of `steps`.
    py::array at(const py::object& steps, bool float32, long threads) const {
        // int64 (np.arange's type) is converted per block by the threads: no float64 copy first.
        if (py::isinstance<py::array_t<std::int64_t>>(steps)) {
            const auto a = py::reinterpret_borrow<py::array>(steps);
            if ((a.flags() & py::array::c_style) != 0) return at_typed<std::int64_t>(a, float32, threads);
        }
        const auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(steps);
        if (!a) throw py::type_error("steps must be an array of real numbers");
        return at_typed<double>(a, float32, threads);
    }

    /// Values at steps start, start + 1, ..., start + n - 1, as float64 or float32.
    py::array table(py::ssize_t n, double start, bool float32, long threads) const {
        if (n < 0) throw py::value_error("table length must be >= 0, got " + std::to_string(n));
        check_step(start);
        if (start + static_cast<double>(n) > fastlr::hd::two_pow_53)
            throw py::value_error("table steps must stay within 2**53");
        return float32 ? table_typed<float>(n, start, threads) : table_typed<double>(n, start, threads);
    }

    std::vector<bool> active(double t) const {
        check_step(t);
        double time[fs::max_nodes];
        bool act[fs::max_nodes];
        fs::activate(data_.view(), t, time, act);
        return std::vector<bool>(act, act + data_.nodes.size());
    }

    /// The state a metric-driven node writes into the program: a plateau's value, a switch's join
    /// boundary (a join with one boundary, >= 0) and its offset (the boundary, negated). Each write
    /// keeps the program valid.
    void set_state(std::size_t index, double value) {
        if (index >= data_.nodes.size()) throw py::index_error("node " + std::to_string(index) + " out of range");
        const fs::node& nd = data_.nodes[index];
        const auto k = static_cast<fs::op>(nd.op);
        const bool ok = k == fs::op::plateau || k == fs::op::offset || (k == fs::op::join && nd.n_params == 1);
        if (!ok) throw py::index_error("node " + std::to_string(index) + " holds no state (a plateau, offset or one-boundary join)");
        if (!std::isfinite(value)) throw py::value_error("state values must be finite");
        if (k == fs::op::join && !(value >= 0.0)) throw py::value_error("a join boundary must be >= 0");
        data_.params[nd.first_param] = value;
    }

    std::vector<node_spec> nodes() const {
        std::vector<node_spec> out;
        for (const auto& nd : data_.nodes) {
            const double* p = data_.params.data() + nd.first_param;
            const std::uint32_t* c = data_.children.data() + nd.first_child;
            out.emplace_back(nd.op, std::vector<double>(p, p + nd.n_params),
                             std::vector<std::uint32_t>(c, c + nd.n_children));
        }
        return out;
    }

    py::tuple buffers() const {
        auto bytes_of = [](const void* p, std::size_t n) {
            return py::bytes(static_cast<const char*>(p), static_cast<py::ssize_t>(n));
        };
        return py::make_tuple(bytes_of(data_.nodes.data(), data_.nodes.size() * sizeof(fs::node)),
                              bytes_of(data_.children.data(), data_.children.size() * sizeof(std::uint32_t)),
                              bytes_of(data_.params.data(), data_.params.size() * sizeof(double)));
    }

    std::size_t size() const { return data_.nodes.size(); }

    const fs::program_data& data() const { return data_; }

  private:
    fs::program_data data_;

    template <class Out>
    py::array table_typed(py::ssize_t n, double start, long threads) const {
        const auto count = static_cast<std::size_t>(n);
        const std::size_t nt = thread_count(count, threads);
        py::array_t<Out> out(n);
        Out* o = out.mutable_data();
        const std::vector<double> params(data_.params);  // under the GIL: the state as of this call
        fs::program prog = data_.view();
        prog.params = params.data();
        std::atomic<bool> stop{false};
        {
            py::gil_scoped_release release;
            parallel_chunks(count, nt, stop, [&](fs::block_evaluator& ev, std::size_t lo, std::size_t hi) {
                for (std::size_t s = lo; s < hi; s += block)  // run_range's step values: start + s + j
                    ev.run_range(prog, start + static_cast<double>(s), o + s, std::min(block, hi - s));
            });
        }
        return std::move(out);
    }

    template <class In>
    py::array at_typed(const py::array& steps, bool float32, long threads) const {
        return float32 ? at_out<In, float>(steps, threads) : at_out<In, double>(steps, threads);
    }

    template <class In, class Out>
    py::array at_out(const py::array& steps, long threads) const {
        const auto* t = static_cast<const In*>(steps.data());
        const auto n = static_cast<std::size_t>(steps.size());
        const std::size_t nt = thread_count(n, threads);
        std::vector<py::ssize_t> shape(steps.shape(), steps.shape() + steps.ndim());
        py::array_t<Out> out(shape);
        Out* o = out.mutable_data();
        const std::vector<double> params(data_.params);  // under the GIL: the state as of this call
        fs::program prog = data_.view();
        prog.params = params.data();
        std::atomic<bool> bad{false};
        {
            py::gil_scoped_release release;
            parallel_chunks(n, nt, bad, [&](fs::block_evaluator& ev, std::size_t lo, std::size_t hi) {
                // Each block is checked before it is evaluated; a bad step stops every thread.
                const bool ok = fill_blocks(ev, prog, o, lo, hi, [t](std::size_t s, std::size_t m, double* tb) {
                    const double* ts = tb;
                    if constexpr (std::is_same_v<In, double>) {
                        ts = t + s;
                    } else {
                        for (std::size_t j = 0; j < m; ++j) tb[j] = static_cast<double>(t[s + j]);
                    }
                    bool any_bad = false;
                    for (std::size_t j = 0; j < m; ++j) any_bad |= bad_step(ts[j]);
                    return any_bad ? nullptr : ts;
                });
                if (!ok) bad.store(true);
            });
        }
        if (bad.load()) {
            // The first bad step, found again in order (threads stop at the first they meet).
            for (std::size_t j = 0; j < n; ++j) {
                const double tj = static_cast<double>(t[j]);
                if (bad_step(tj))
                    throw py::value_error("schedule steps must be finite numbers in [0, 2**53]; steps[" +
                                          std::to_string(j) + "] is " + py::repr(py::float_(tj)).cast<std::string>());
            }
            throw std::runtime_error("the steps array changed while it was being evaluated");
        }
        return std::move(out);
    }
};

/// Each program at step t, in one call (one value per param group for ScheduledLR).
std::vector<double> eval_many(const std::vector<const Program*>& programs, double t) {
    check_step(t);
    std::vector<double> out;
    out.reserve(programs.size());
    for (const Program* p : programs) {
        if (p == nullptr) throw py::type_error("expected Program objects, got None");
        out.push_back(fs::eval(p->data().view(), t));
    }
    return out;
}

/// A capturable step on CPU tensors: t = *counter + increment, every program at t written into its
/// element (float32 or float64 CPU memory), then *counter = t. The same evaluator as the CUDA kernel;
/// no torch op, nothing allocated.
void capturable_step(const std::vector<const Program*>& programs, const std::vector<std::pair<std::uintptr_t, int>>& dsts,
                     std::uintptr_t counter, int increment) {
    if (programs.size() != dsts.size()) throw py::value_error("one destination per program");
    if (counter == 0) throw py::value_error("null counter");
    auto* c = reinterpret_cast<std::int64_t*>(counter);
    const std::int64_t t = *c + increment;
    const double td = static_cast<double>(t);
    check_step(td);
    for (std::size_t i = 0; i < programs.size(); ++i) {
        if (programs[i] == nullptr) throw py::type_error("expected Program objects, got None");
        if (dsts[i].first == 0) throw py::value_error("null destination");
    }
    for (std::size_t i = 0; i < programs.size(); ++i) {
        const double v = fs::eval(programs[i]->data().view(), td);
        if (dsts[i].second) *reinterpret_cast<double*>(dsts[i].first) = v;
        else *reinterpret_cast<float*>(dsts[i].first) = static_cast<float>(v);
    }
    *c = t;
}

/// Tests' switch between the block evaluator's two builds: "baseline" forces the baseline x86-64 one,
/// "auto" (or "avx2", where the CPU has it) lets the CPU check choose. Returns the build now in use.
/// Set it only while no table is being computed (tests do, on one thread).
std::string table_isa(const py::object& which) {
    namespace simd = fs::simd;
    if (!which.is_none()) {
        const auto w = which.cast<std::string>();
        if (w == "baseline") simd::isa_override().store(static_cast<int>(simd::isa::baseline));
        else if (w == "auto") simd::isa_override().store(static_cast<int>(simd::isa::automatic));
        else if (w == "avx2" && simd::cpu_has_avx2()) simd::isa_override().store(static_cast<int>(simd::isa::avx2));
        else if (w == "avx2") throw py::value_error("this CPU has no AVX2");
        else throw py::value_error("expected 'auto', 'baseline' or 'avx2', got '" + w + "'");
    }
    return simd::active_isa() == simd::isa::avx2 ? "avx2" : "baseline";
}

}  // namespace

void register_schedules(py::module_& m) {
    static_assert(sizeof(fs::node) == 24, "the node layout is part of the program format");
    m.attr("SCHEDULE_MAX_NODES") = fs::max_nodes;
    py::class_<Program>(m, "Program",
                        "A validated schedule program: nodes (kind, parameters, children) in post-order, root last.")
        .def(py::init<const std::vector<node_spec>&>(), py::arg("nodes"))
        .def("__call__", &Program::call, py::arg("t"), "The value at step t.")
        .def("at", &Program::at, py::arg("steps"), py::arg("float32") = false, py::arg("threads") = 0,
             "The values at an array of steps, float64 (or float32), in the shape of `steps` (GIL released;\n"
             "threads: 0 picks FASTLR_NUM_THREADS or the hardware's count for long arrays).")
        .def("table", &Program::table, py::arg("n"), py::arg("start") = 0.0, py::arg("float32") = false,
             py::arg("threads") = 0,
             "The values at steps start, start + 1, ..., start + n - 1, float64 (or float32) (GIL released;\n"
             "threads: 0 picks FASTLR_NUM_THREADS or the hardware's count for long tables).")
        .def("active", &Program::active, py::arg("t"), "Which nodes are evaluated at step t.")
        .def("set_state", &Program::set_state, py::arg("index"), py::arg("value"),
             "Write the state of node `index`: a plateau's value, a one-boundary join's boundary, an offset.")
        .def_property_readonly("nodes", &Program::nodes)
        .def("buffers", &Program::buffers,
             "The raw (nodes, children, params) arrays as bytes, in the layout of fastlr/program.hpp.")
        .def("__len__", &Program::size);
    m.def("capturable_step", &capturable_step, py::arg("programs"), py::arg("dsts"), py::arg("counter"),
          py::arg("increment"),
          "One capturable step on CPU tensors: programs evaluated at *counter + increment into raw float32\n"
          "(dtype 0) or float64 (dtype 1) addresses, then the int64 counter at `counter` advanced.");
    m.def("_table_isa", &table_isa, py::arg("which") = py::none(),
          "The instruction set of the table/at evaluator ('avx2' or 'baseline'); 'baseline' forces the\n"
          "baseline x86-64 build and 'auto' restores the CPU check (tests compare the two).");
    m.def("schedule_eval_many", &eval_many, py::arg("programs"), py::arg("t"),
          "Evaluate each program at step t.");
}
