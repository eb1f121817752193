// fastlr's CUDA kernels, over the same host/device headers as the CPU engine (fastlr/update.hpp).
// Built with --fmad=false: the per-group arithmetic is IEEE +, -, *, / only, so results are the
// host's bits. Never includes pybind11 or torch.
#include <cuda_runtime.h>

#include <fastlr/program.hpp>

#include "kernels.hpp"

namespace fastlr {
namespace cuda {
namespace {

template <class T>
__global__ void apply_kernel(update u, T* dst, double* shadow, T* snap, const double* x, const double* y,
                             std::int64_t n) {
    const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double cur = static_cast<double>(dst[i]);
    // A float32 lr still equal to its shadow's rounding has not been edited since the last write:
    // continue from the exact float64 value.
    if (shadow && static_cast<T>(shadow[i]) == dst[i]) cur = shadow[i];
    const double xi = x ? x[i] : cur;
    const double yi = y ? y[i] : 0.0;
    const double v = eval(u, xi, yi);
    dst[i] = static_cast<T>(v);
    if (shadow) shadow[i] = v;
    if (snap) snap[i] = static_cast<T>(v);  // get_last_lr()'s copy, in the same launch
}

/// One block: every thread reads the counter before the block synchronises, and only then does
/// thread 0 advance it, so all entries see the same step.
__global__ void programs_kernel(const sched::node* nodes, const std::uint32_t* children, const double* params,
                                const program_entry* entries, std::int64_t n, std::int64_t* counter, int increment) {
    const std::int64_t t = *counter + increment;
    const double td = static_cast<double>(t);
    for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const program_entry e = entries[i];
        const sched::program prog{nodes + e.node_offset, children + e.child_offset, params + e.param_offset, e.n_nodes};
        const double v = sched::eval(prog, td);
        if (e.f64) *reinterpret_cast<double*>(e.dst) = v;
        else *reinterpret_cast<float*>(e.dst) = static_cast<float>(v);
    }
    __syncthreads();
    if (threadIdx.x == 0) *counter = t;
}

}  // namespace

int launch_programs(const void* nodes, const std::uint32_t* children, const double* params,
                    const program_entry* entries, std::int64_t n, std::int64_t* counter, int increment,
                    std::uintptr_t stream) {
    cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
    programs_kernel<<<1, 256, 0, s>>>(static_cast<const sched::node*>(nodes), children, params, entries, n, counter,
                                      increment);
    return static_cast<int>(cudaGetLastError());
}

int launch_apply(const update& u, void* dst, dtype t, double* shadow, void* snap, const double* x, const double* y,
                 std::int64_t n, std::uintptr_t stream) {
    if (n <= 0) return cudaSuccess;
    const int threads = 256;
    const unsigned blocks = static_cast<unsigned>((n + threads - 1) / threads);
    cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
    if (t == dtype::f32)
        apply_kernel<float><<<blocks, threads, 0, s>>>(u, static_cast<float*>(dst), shadow, static_cast<float*>(snap), x,
                                                        y, n);
    else
        apply_kernel<double><<<blocks, threads, 0, s>>>(u, static_cast<double*>(dst), shadow, static_cast<double*>(snap),
                                                         x, y, n);
    return static_cast<int>(cudaGetLastError());  // the launch itself failed (bad config, no device, ...)
}

int copy_to_device(void* dst, const void* src, std::size_t bytes, std::uintptr_t stream) {
    return static_cast<int>(
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, reinterpret_cast<cudaStream_t>(stream)));
}

int device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no device" error
        return 0;
    }
    return n;
}

const char* error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // namespace cuda
}  // namespace fastlr
