// fastlr's CUDA kernels, over the same host/device headers as the CPU engine (fastlr/update.hpp).
// Built with --fmad=false: the per-group arithmetic is IEEE +, -, *, / only, so results are the
// host's bits. Never includes pybind11 or torch.
#include <cuda_runtime.h>

#include "kernels.hpp"

namespace fastlr {
namespace cuda {
namespace {

template <class T>
__global__ void apply_kernel(update u, T* dst, double* shadow, const double* x, const double* y, std::int64_t n) {
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
}

}  // namespace

int launch_apply(const update& u, void* dst, dtype t, double* shadow, const double* x, const double* y,
                 std::int64_t n, std::uintptr_t stream) {
    if (n <= 0) return cudaSuccess;
    const int threads = 256;
    const unsigned blocks = static_cast<unsigned>((n + threads - 1) / threads);
    cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
    if (t == dtype::f32)
        apply_kernel<float><<<blocks, threads, 0, s>>>(u, static_cast<float*>(dst), shadow, x, y, n);
    else
        apply_kernel<double><<<blocks, threads, 0, s>>>(u, static_cast<double*>(dst), shadow, x, y, n);
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
