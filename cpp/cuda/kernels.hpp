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
/// updated with the exact value, so float32 lrs stay the rounding of the float64 recurrence. `snap`
/// (may be null; same element type as dst) receives a copy of the new dst[i]: the scheduler's snapshot
/// for get_last_lr(), written by the same launch instead of a second one.
/// Returns a cudaError_t (0: launched). The launch goes on `stream` (torch's current stream).
int launch_apply(const update& u, void* dst, dtype t, double* shadow, void* snap, const double* x, const double* y,
                 std::int64_t n, std::uintptr_t stream);

/// One entry of a capturable step: program `k` (its arrays at the given offsets into the shared node,
/// child and parameter arrays) evaluated into one element of a packed buffer.
struct program_entry {
    std::uint32_t node_offset;
    std::uint32_t child_offset;
    std::uint32_t param_offset;
    std::uint32_t n_nodes;
    std::uint64_t dst;   ///< device address of the element written
    std::uint32_t f64;   ///< 1: float64 element, 0: float32
    std::uint32_t pad;
};

/// A capturable step on the device, for n entries: t = *counter + increment; each entry's program at
/// t is written to its element; then *counter = t. One launch, nothing read back to the host, no host
/// value baked in: a captured graph advances the schedule at every replay.
int launch_programs(const void* nodes, const std::uint32_t* children, const double* params,
                    const program_entry* entries, std::int64_t n, std::int64_t* counter, int increment,
                    std::uintptr_t stream);

/// Copy n bytes host -> device on `stream` (asynchronous when `src` is pinned).
int copy_to_device(void* dst, const void* src, std::size_t bytes, std::uintptr_t stream);

/// Number of visible CUDA devices (0 without a GPU or driver; never an error).
int device_count();

/// The CUDA runtime's message for an error code.
const char* error_string(int code);

}  // namespace cuda
}  // namespace fastlr
