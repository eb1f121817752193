// fastlr engine configuration. Header-only, no Python, no CUDA runtime headers.
#pragma once

#include <cstddef>
#include <cstdint>

// Math that the CUDA kernels also run is marked FASTLR_HD. nvcc defines __CUDACC__; every other
// compiler sees plain inline functions.
#if defined(__CUDACC__)
#define FASTLR_HD __host__ __device__
#else
#define FASTLR_HD
#endif

namespace fastlr {

/// Outcome of an exact (torch-order) computation. Anything but `ok` means CPython would have raised
/// or produced a non-float (complex) result at this point; the caller must not commit anything and
/// lets torch's own Python code run the step instead, which raises the exact same exception.
enum class errc : std::uint8_t {
    ok = 0,
    zero_division,   ///< `x / 0.0`, `x % 0`, `0.0 ** negative` (ZeroDivisionError)
    overflow,        ///< `float ** x` overflowing (OverflowError)
    domain,          ///< `math.cos(inf)`, `math.log(<=0)` (ValueError)
    complex_result,  ///< negative float to a fractional power (CPython returns a complex)
    out_of_range,    ///< an integer beyond 2**53, where double and Python int arithmetic part ways
};

/// Largest integer magnitude for which every int64 <-> double conversion and int arithmetic used by
/// the schedulers is exact, so that double arithmetic equals CPython's int/float mixed arithmetic.
inline constexpr std::int64_t exact_int_limit = std::int64_t{1} << 53;

}  // namespace fastlr
