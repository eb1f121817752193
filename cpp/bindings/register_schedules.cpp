// fastlr._core.Program: a validated schedule program (fastlr/program.hpp) and its evaluation for
// python/fastlr/schedules/. Tables and arrays of steps are computed with the GIL released.
#include "pybind11.hpp"

#include <pybind11/numpy.h>

#include <fastlr/program_host.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
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

    py::array_t<double> at(const py::array_t<double, py::array::c_style | py::array::forcecast>& steps) const {
        const double* t = steps.data();
        const auto n = static_cast<std::size_t>(steps.size());
        for (std::size_t j = 0; j < n; ++j) {
            if (!(t[j] >= 0.0 && t[j] <= fastlr::hd::two_pow_53)) {
                throw py::value_error("schedule steps must be finite numbers in [0, 2**53]; steps[" +
                                      std::to_string(j) + "] is " + py::repr(py::float_(t[j])).cast<std::string>());
            }
        }
        std::vector<py::ssize_t> shape(steps.shape(), steps.shape() + steps.ndim());
        py::array_t<double> out(shape);
        double* o = out.mutable_data();
        {
            py::gil_scoped_release release;
            fs::block_evaluator ev;
            ev.run(data_.view(), t, o, n);
        }
        return out;
    }

    py::array_t<double> table(py::ssize_t n, double start) const {
        if (n < 0) throw py::value_error("table length must be >= 0, got " + std::to_string(n));
        check_step(start);
        if (start + static_cast<double>(n) > fastlr::hd::two_pow_53)
            throw py::value_error("table steps must stay within 2**53");
        py::array_t<double> out(n);
        double* o = out.mutable_data();
        {
            py::gil_scoped_release release;
            fs::block_evaluator ev;
            ev.run_range(data_.view(), start, o, static_cast<std::size_t>(n));
        }
        return out;
    }

    std::vector<bool> active(double t) const {
        check_step(t);
        double time[fs::max_nodes];
        bool act[fs::max_nodes];
        fs::activate(data_.view(), t, time, act);
        return std::vector<bool>(act, act + data_.nodes.size());
    }

    void set_plateau(std::size_t index, double value) {
        if (index >= data_.nodes.size() || data_.nodes[index].op != static_cast<std::uint32_t>(fs::op::plateau))
            throw py::index_error("node " + std::to_string(index) + " is not a plateau node");
        if (!std::isfinite(value)) throw py::value_error("plateau value must be finite");
        data_.params[data_.nodes[index].first_param] = value;
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

}  // namespace

void register_schedules(py::module_& m) {
    static_assert(sizeof(fs::node) == 24, "the node layout is part of the program format");
    m.attr("SCHEDULE_MAX_NODES") = fs::max_nodes;
    py::class_<Program>(m, "Program",
                        "A validated schedule program: nodes (kind, parameters, children) in post-order, root last.")
        .def(py::init<const std::vector<node_spec>&>(), py::arg("nodes"))
        .def("__call__", &Program::call, py::arg("t"), "The value at step t.")
        .def("at", &Program::at, py::arg("steps"), "The values at an array of steps (GIL released).")
        .def("table", &Program::table, py::arg("n"), py::arg("start") = 0.0,
             "The values at steps start, start + 1, ..., start + n - 1 (GIL released).")
        .def("active", &Program::active, py::arg("t"), "Which nodes are evaluated at step t.")
        .def("set_plateau", &Program::set_plateau, py::arg("index"), py::arg("value"),
             "Write the current value of plateau node `index`.")
        .def_property_readonly("nodes", &Program::nodes)
        .def("buffers", &Program::buffers,
             "The raw (nodes, children, params) arrays as bytes, in the layout of fastlr/program.hpp.")
        .def("__len__", &Program::size);
    m.def("capturable_step", &capturable_step, py::arg("programs"), py::arg("dsts"), py::arg("counter"),
          py::arg("increment"),
          "One capturable step on CPU tensors: programs evaluated at *counter + increment into raw float32\n"
          "(dtype 0) or float64 (dtype 1) addresses, then the int64 counter at `counter` advanced.");
    m.def("schedule_eval_many", &eval_many, py::arg("programs"), py::arg("t"),
          "Evaluate each program at step t.");
}
