// fastlr::cuda: the device side of fastlr's tensor-lr paths. Plain C++ declarations (no CUDA, no
// pybind11): the kernels take raw device addresses and a stream handle, never torch types, so the
// module does not link against torch and imports on machines without a GPU.
#pragma once

#include <cstdint>

#include <fastlr/update.hpp>

namespace fastlr {
namespace cuda {

/// Element type of a packed lr buffer.
enum class dtype : int { f32 = 0, f64 = 1 };

/// One host-driven step for n groups whose lrs live in one packed device buffer `dst`: for each i,
/// x_i = x ? x[i] : the group's current lr, y_i = y ? y[i] : 0, and dst[i] = eval(u, x_i, y_i).
/// The current lr of a float32 group is its float64 shadow while dst[i] still holds the shadow's
/// rounding (no one edited it), else dst[i] itself; `shadow` (may be null for float64 buffers) is
/// updated with the exact value, so float32 lrs stay the rounding of the float64 recurrence.
/// Returns a cudaError_t (0: launched). The launch goes on `stream` (torch's current stream).
int launch_apply(const update& u, void* dst, dtype t, double* shadow, const double* x, const double* y,
                 std::int64_t n, std::uintptr_t stream);

/// Copy n bytes host -> device on `stream` (asynchronous when `src` is pinned).
int copy_to_device(void* dst, const void* src, std::size_t bytes, std::uintptr_t stream);

/// Number of visible CUDA devices (0 without a GPU or driver; never an error).
int device_count();

/// The CUDA runtime's message for an error code.
const char* error_string(int code);

}  // namespace cuda
}  // namespace fastlr
