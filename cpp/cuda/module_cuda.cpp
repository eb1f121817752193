// fastlr._cuda: Python entry points for the CUDA kernels (kernels.cu). Takes raw device addresses
// (tensor.data_ptr()) and torch's current stream handle (torch.cuda.current_stream().cuda_stream);
// does not link against torch, and imports on a machine without a GPU (cudart is linked statically).
#include "../bindings/pybind11.hpp"

#include <cstdint>
#include <string>

#include "kernels.hpp"

namespace {

void check(int code, const char* what) {
    if (code != 0) throw std::runtime_error(std::string("fastlr._cuda: ") + what + " failed: " +
                                            fastlr::cuda::error_string(code));
}

fastlr::update make_update(int op, double a, double b) {
    if (op < 0 || op > static_cast<int>(fastlr::update::op::swa)) throw py::value_error("unknown update op");
    return fastlr::update{static_cast<fastlr::update::op>(op), a, b, false};
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "fastlr's CUDA kernels (private). Raw device addresses and stream handles only.";
    m.attr("__version__") = FASTLR_VERSION;
    m.def("device_count", &fastlr::cuda::device_count, "Visible CUDA devices (0 without a GPU).");
    m.def(
        "apply",
        [](int op, double a, double b, std::uintptr_t dst, int dtype, std::uintptr_t shadow, std::uintptr_t x,
           std::uintptr_t y, std::int64_t n, std::uintptr_t stream, std::uintptr_t snap) {
            if (dtype != 0 && dtype != 1) throw py::value_error("dtype must be 0 (float32) or 1 (float64)");
            if (n < 0) throw py::value_error("n must be >= 0");
            if (n > 0 && dst == 0) throw py::value_error("null destination");
            check(fastlr::cuda::launch_apply(make_update(op, a, b), reinterpret_cast<void*>(dst),
                                             static_cast<fastlr::cuda::dtype>(dtype), reinterpret_cast<double*>(shadow),
                                             reinterpret_cast<void*>(snap), reinterpret_cast<const double*>(x),
                                             reinterpret_cast<const double*>(y), n, stream),
                  "kernel launch");
        },
        py::arg("op"), py::arg("a"), py::arg("b"), py::arg("dst"), py::arg("dtype"), py::arg("shadow"), py::arg("x"),
        py::arg("y"), py::arg("n"), py::arg("stream"), py::arg("snap") = 0,
        "Launch the host-driven lr update on `stream` for n groups of a packed buffer (see kernels.hpp);\n"
        "`snap` (0: none) receives a copy of the new values, same dtype as `dst`.\n"
        "Raises RuntimeError if the launch fails.");
    m.def(
        "run_programs",
        [](std::uintptr_t nodes, std::uintptr_t children, std::uintptr_t params, std::uintptr_t entries, std::int64_t n,
           std::uintptr_t counter, int increment, std::uintptr_t stream) {
            if (n < 0) throw py::value_error("n must be >= 0");
            if (counter == 0 || (n > 0 && (nodes == 0 || entries == 0 || params == 0)))
                throw py::value_error("null device address");
            check(fastlr::cuda::launch_programs(reinterpret_cast<const void*>(nodes),
                                                reinterpret_cast<const std::uint32_t*>(children),
                                                reinterpret_cast<const double*>(params),
                                                reinterpret_cast<const fastlr::cuda::program_entry*>(entries), n,
                                                reinterpret_cast<std::int64_t*>(counter), increment, stream),
                  "kernel launch");
        },
        py::arg("nodes"), py::arg("children"), py::arg("params"), py::arg("entries"), py::arg("n"), py::arg("counter"),
        py::arg("increment"), py::arg("stream"),
        "Launch one capturable step on `stream` (see kernels.hpp: launch_programs). Raises RuntimeError if\n"
        "the launch fails.");
    m.attr("PROGRAM_ENTRY_SIZE") = sizeof(fastlr::cuda::program_entry);
    m.def(
        "copy_to_device",
        [](std::uintptr_t dst, std::uintptr_t src, std::size_t bytes, std::uintptr_t stream) {
            check(fastlr::cuda::copy_to_device(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), bytes,
                                               stream),
                  "host-to-device copy");
        },
        py::arg("dst"), py::arg("src"), py::arg("bytes"), py::arg("stream"));
}
