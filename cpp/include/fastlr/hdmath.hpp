// Host/device math for the closed-form schedules (FASTLR_HD): cos(pi x), a counter-based RNG and
// small helpers that compile unchanged for the host and under nvcc.
//
// Rules for this file and every FASTLR_HD function: no exceptions, no allocation, no std:: math
// (use the C functions in the global namespace, which CUDA provides for the device), no casts of
// values that may be out of range (those are undefined behaviour; every cast here is guarded).
#pragma once

#include <math.h>

#include <cstdint>

#include "config.hpp"

namespace fastlr {
namespace hd {

/// 2**53: every double at or above it is an even integer.
inline constexpr double two_pow_53 = 9007199254740992.0;

FASTLR_HD inline double min(double a, double b) { return b < a ? b : a; }
FASTLR_HD inline double max(double a, double b) { return a < b ? b : a; }

/// cos(pi * x), to within about 1 ulp, with the same bits on the host and the device.
///
/// Schedules spend most of their time in this one function, and glibc's cos is both slow (about 3x
/// this) and not what the device computes. Here the reduction is exact (x mod 2 and the quadrant
/// split are exact in binary floating point) and the kernels are Taylor polynomials on |f| <= 1/4,
/// whose first omitted terms are below 2**-60 relative. Selects only, no branches or integer
/// conversions. cos_pi(0) = 1, cos_pi(0.5) = 0 and cos_pi(1) = -1 exactly.
FASTLR_HD inline double cos_pi(double x) {
    // Rounding y to an integer by adding and subtracting 2**52 is exact for 0 <= y < 2**52 (and,
    // unlike a conversion to an integer type, has no undefined range).
    const double two52 = 4503599627370496.0;
    x = x < 0.0 ? -x : x;
    const bool huge = !(x < two_pow_53);  // every such double is an even integer; also inf and NaN
    double r = huge ? 0.0 : x;
    r = r - 2.0 * ((0.5 * r + two52) - two52);  // x mod 2, in [-1, 1], exact
    r = r < 0.0 ? -r : r;                        // cos is even: [0, 1]
    const double n = (2.0 * r + two52) - two52;  // nearest integer to 2r: 0, 1 or 2
    const double f = r - 0.5 * n;                // [-1/4, 1/4], exact
    const double q = n;
    const double z = f * f;
    // cos(pi f) = sum_k C_k z^k and sin(pi f) = f * sum_k S_k z^k (z = f^2, k = 0..8: Taylor
    // coefficients (-1)^k pi^(2k) / (2k)! and (-1)^k pi^(2k+1) / (2k+1)!), by Estrin's scheme: a short
    // dependency chain, so consecutive steps overlap in the pipeline.
    const double z2 = z * z, z4 = z2 * z2, z8 = z4 * z4;
    const double c01 = 1.0 + (-4.934802200544679) * z, c23 = 4.0587121264167685 + (-1.3352627688545895) * z;
    const double c45 = 0.2353306303588932 + (-0.02580689139001406) * z;
    const double c67 = 0.0019295743094039231 + (-0.0001046381049248457) * z;
    const double c = (c01 + c23 * z2) + (c45 + c67 * z2) * z4 + 4.303069587032947e-06 * z8;
    const double s01 = 3.141592653589793 + (-5.16771278004997) * z, s23 = 2.5501640398773455 + (-0.5992645293207921) * z;
    const double s45 = 0.08214588661112823 + (-0.0073704309457143504) * z;
    const double s67 = 0.00046630280576761255 + (-2.1915353447830217e-05) * z;
    const double s = ((s01 + s23 * z2) + (s45 + s67 * z2) * z4 + 7.952054001475513e-07 * z8) * f;
    // cos(pi (f + q/2)) for q = 0, 1, 2: c, -s, -c
    const double v = q == 1.0 ? s : c;
    const double out = q == 0.0 ? v : -v;
    return huge ? (x - x) + 1.0 : out;  // 1 for even integers; NaN for inf and NaN
}

/// splitmix64's finaliser: a bijective 64-bit mixer (Steele, Lea and Flood 2014).
FASTLR_HD inline std::uint64_t mix64(std::uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/// The k-th uniform draw in [0, 1) of stream (seed, step): a pure function of its arguments (a
/// counter-based generator), so a run resumed at any step draws exactly what it would have drawn.
FASTLR_HD inline double uniform(std::uint64_t seed, std::uint64_t step, std::uint64_t k) {
    const std::uint64_t h = mix64(mix64(mix64(seed) + step) + k);
    return static_cast<double>(h >> 11) * (1.0 / two_pow_53);
}

/// Standard normal z truncated to |z| < a (a > 0), from stream (seed, step). Exact rejection
/// sampling with a proposal chosen for a high acceptance rate (normal proposals when a >= 1,
/// uniform ones below); bounded at 64 rounds, after which it returns 0 (probability < 1e-25).
FASTLR_HD inline double truncated_normal(std::uint64_t seed, std::uint64_t step, double a) {
    for (std::uint64_t r = 0; r < 64; ++r) {
        const double u1 = uniform(seed, step, 2 * r);
        const double u2 = uniform(seed, step, 2 * r + 1);
        if (a >= 1.0) {
            // Box-Muller; 1 - u1 is in (0, 1], so the log is finite.
            const double z = ::sqrt(-2.0 * ::log(1.0 - u1)) * cos_pi(2.0 * u2);
            if (z < a && z > -a) return z;
        } else {
            const double z = (2.0 * u1 - 1.0) * a;
            if (z < a && z > -a && u2 < ::exp(-0.5 * (z * z))) return z;
        }
    }
    return 0.0;
}

}  // namespace hd
}  // namespace fastlr
