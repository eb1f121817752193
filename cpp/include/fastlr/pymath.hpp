// CPython's numeric semantics for the int/float arithmetic that torch's schedulers do in Python.
//
// torch evaluates its schedules as Python expressions on Python ints and floats. For bit-exact
// results the engine performs the same IEEE-754 double operations in the same order, and where
// CPython would raise (ZeroDivisionError, OverflowError, math domain errors) or leave the float
// domain (complex results, huge ints), these helpers return an errc instead of a value. The caller
// then commits nothing and lets torch's Python code run, which raises exactly as torch does.
//
// Host only: the device uses the closed forms in closed_form.hpp, which need no error emulation.
#pragma once

#include <cmath>
#include <cstdint>

#include "config.hpp"

namespace fastlr {

/// Evaluate `expr` (an errc-returning call) and return its error, if any, from the enclosing function.
#define FASTLR_TRY(expr)                   \
    do {                                          \
        const ::fastlr::errc fastlr_e_ = (expr);  \
        if (fastlr_e_ != ::fastlr::errc::ok) return fastlr_e_; \
    } while (0)

/// A Python `int` (that fits int64) or `float`, as read from a scheduler attribute.
struct pynum {
    double d = 0.0;      // the value as a double (exact for ints within 2**53)
    std::int64_t i = 0;  // the value when is_int
    bool is_int = false;

    static constexpr pynum of_int(std::int64_t v) { return pynum{static_cast<double>(v), v, true}; }
    static constexpr pynum of_float(double v) { return pynum{v, 0, false}; }
};

namespace detail {

inline bool int_is_exact(std::int64_t v) { return v <= exact_int_limit && v >= -exact_int_limit; }

// CPython's DOUBLE_IS_ODD_INTEGER.
inline bool is_odd_integer(double x) { return std::fmod(std::fabs(x), 2.0) == 1.0; }

}  // namespace detail

/// `float ** float` exactly as CPython's float_pow (Objects/floatobject.c), special cases first.
inline errc py_float_pow(double iv, double iw, double& out) {
    if (iw == 0.0) { out = 1.0; return errc::ok; }                 // v**0 is 1, even 0**0
    if (std::isnan(iv)) { out = iv; return errc::ok; }              // nan**w = nan
    if (std::isnan(iw)) { out = iv == 1.0 ? 1.0 : iw; return errc::ok; }
    if (std::isinf(iw)) {
        const double av = std::fabs(iv);
        if (av == 1.0) out = 1.0;
        else if ((iw > 0.0) == (av > 1.0)) out = std::fabs(iw);
        else out = 0.0;
        return errc::ok;
    }
    if (std::isinf(iv)) {
        const bool odd = detail::is_odd_integer(iw);
        if (iw > 0.0) out = odd ? iv : std::fabs(iv);
        else out = odd ? std::copysign(0.0, iv) : 0.0;
        return errc::ok;
    }
    if (iv == 0.0) {
        if (iw < 0.0) return errc::zero_division;  // "0.0 cannot be raised to a negative power"
        out = detail::is_odd_integer(iw) ? iv : 0.0;
        return errc::ok;
    }
    bool negate = false;
    if (iv < 0.0) {
        if (iw != std::floor(iw)) return errc::complex_result;
        iv = -iv;
        negate = detail::is_odd_integer(iw);
    }
    if (iv == 1.0) { out = negate ? -1.0 : 1.0; return errc::ok; }
    double ix = std::pow(iv, iw);
    // iv, iw finite here, so an infinite result is the ERANGE overflow CPython reports; underflow
    // to zero is not an error.
    if (std::isinf(ix)) return errc::overflow;
    out = negate ? -ix : ix;
    return errc::ok;
}

/// Python `a ** b` for int/float operands, as a float. `int ** non-negative int` is an exact big-int
/// power in Python; it is computed exactly in int64 here (out_of_range beyond), then rounded once.
inline errc py_pow(pynum a, pynum b, double& out) {
    if (a.is_int && b.is_int && b.i >= 0) {
        std::int64_t result = 1, base = a.i, e = b.i;
        while (e > 0) {
            if ((e & 1) && __builtin_mul_overflow(result, base, &result)) return errc::out_of_range;
            e >>= 1;
            if (e > 0 && __builtin_mul_overflow(base, base, &base)) return errc::out_of_range;
        }
        out = static_cast<double>(result);  // round-to-nearest, as float(int)
        return errc::ok;
    }
    return py_float_pow(a.d, b.d, out);  // int ** negative int is float ** float in CPython too
}

/// Python `a ** b` keeping Python's result type: an exact int for `int ** non-negative int`, else a float.
inline errc py_pow_num(pynum a, pynum b, pynum& out) {
    double d = 0.0;
    const errc e = py_pow(a, b, d);
    if (e != errc::ok) return e;
    if (a.is_int && b.is_int && b.i >= 0) {
        // py_pow computed the power exactly in int64 before rounding; redo it to keep the int.
        std::int64_t result = 1, base = a.i, k = b.i;
        while (k > 0) {
            if (k & 1) result *= base;
            k >>= 1;
            if (k > 0) base *= base;
        }
        out = pynum::of_int(result);
        return errc::ok;
    }
    out = pynum::of_float(d);
    return errc::ok;
}

/// Python true division `a / b`.
inline errc py_truediv(pynum a, pynum b, double& out) {
    if (b.d == 0.0) return errc::zero_division;
    if (a.is_int && b.is_int && !(detail::int_is_exact(a.i) && detail::int_is_exact(b.i)))
        return errc::out_of_range;  // CPython divides the exact ints; one double rounding differs
    out = a.d / b.d;
    return errc::ok;
}

/// Python float `a % b` (float_rem): the result takes the sign of the divisor.
inline errc py_float_mod(double vx, double wx, double& out) {
    if (wx == 0.0) return errc::zero_division;
    double mod = std::fmod(vx, wx);
    if (mod != 0.0) {
        if ((wx < 0) != (mod < 0)) mod += wx;
    } else {
        mod = std::copysign(0.0, wx);
    }
    out = mod;
    return errc::ok;
}

/// Python float `a // b` (float_floor_div via _float_div_mod), including its quotient snapping.
inline errc py_float_floordiv(double vx, double wx, double& out) {
    if (wx == 0.0) return errc::zero_division;
    double mod = std::fmod(vx, wx);
    double div = (vx - mod) / wx;
    if (mod != 0.0 && ((wx < 0) != (mod < 0))) div -= 1.0;
    double floordiv = 0.0;
    if (div != 0.0) {
        floordiv = std::floor(div);
        if (div - floordiv > 0.5) floordiv += 1.0;
    } else {
        floordiv = std::copysign(0.0, vx / wx);
    }
    out = floordiv;
    return errc::ok;
}

/// Python `a % b` for int/float operands.
inline errc py_mod(pynum a, pynum b, pynum& out) {
    if (a.is_int && b.is_int) {
        if (b.i == 0) return errc::zero_division;
        if (b.i == -1) { out = pynum::of_int(0); return errc::ok; }  // avoids INT64_MIN % -1
        std::int64_t r = a.i % b.i;
        if (r != 0 && ((r < 0) != (b.i < 0))) r += b.i;
        out = pynum::of_int(r);
        return errc::ok;
    }
    // (No read of r on the error path: clang treats that as undefined behaviour and, with it, dropped
    // the zero-divisor check of the inlined call; found by the test suite on a clang build.)
    double r = 0.0;
    const errc e = py_float_mod(a.d, b.d, r);
    if (e != errc::ok) return e;
    out = pynum::of_float(r);
    return errc::ok;
}

/// Python `a // b` for int/float operands.
inline errc py_floordiv(pynum a, pynum b, pynum& out) {
    if (a.is_int && b.is_int) {
        if (b.i == 0) return errc::zero_division;
        if (b.i == -1) {
            if (a.i == INT64_MIN) return errc::out_of_range;
            out = pynum::of_int(-a.i);
            return errc::ok;
        }
        std::int64_t q = a.i / b.i;
        if ((a.i % b.i != 0) && ((a.i < 0) != (b.i < 0))) --q;
        out = pynum::of_int(q);
        return errc::ok;
    }
    // (No read of r on the error path: clang treats that as undefined behaviour and, with it, dropped
    // the zero-divisor check of the inlined call; found by the test suite on a clang build.)
    double r = 0.0;
    const errc e = py_float_floordiv(a.d, b.d, r);
    if (e != errc::ok) return e;
    out = pynum::of_float(r);
    return errc::ok;
}

/// Python `a + b`, `a - b`, `a * b` (int results stay exact ints; overflow leaves the fast path).
inline errc py_add(pynum a, pynum b, pynum& out) {
    if (a.is_int && b.is_int) {
        std::int64_t r;
        if (__builtin_add_overflow(a.i, b.i, &r)) return errc::out_of_range;
        out = pynum::of_int(r);
    } else {
        out = pynum::of_float(a.d + b.d);
    }
    return errc::ok;
}
inline errc py_sub(pynum a, pynum b, pynum& out) {
    if (a.is_int && b.is_int) {
        std::int64_t r;
        if (__builtin_sub_overflow(a.i, b.i, &r)) return errc::out_of_range;
        out = pynum::of_int(r);
    } else {
        out = pynum::of_float(a.d - b.d);
    }
    return errc::ok;
}
inline errc py_mul(pynum a, pynum b, pynum& out) {
    if (a.is_int && b.is_int) {
        std::int64_t r;
        if (__builtin_mul_overflow(a.i, b.i, &r)) return errc::out_of_range;
        out = pynum::of_int(r);
    } else {
        out = pynum::of_float(a.d * b.d);
    }
    return errc::ok;
}

/// Three-way Python comparison of int/float values: -1, 0, +1, or 2 if unordered (NaN).
/// Mixed int/float comparisons are exact in Python; they are exact here while the int is within 2**53.
inline errc py_cmp(pynum a, pynum b, int& out) {
    if (a.is_int && b.is_int) {
        out = (a.i > b.i) - (a.i < b.i);
        return errc::ok;
    }
    if ((a.is_int && !detail::int_is_exact(a.i)) || (b.is_int && !detail::int_is_exact(b.i)))
        return errc::out_of_range;
    if (std::isnan(a.d) || std::isnan(b.d)) { out = 2; return errc::ok; }
    out = (a.d > b.d) - (a.d < b.d);
    return errc::ok;
}

/// `math.cos(x)`: ValueError for infinite x.
inline errc py_cos(double x, double& out) {
    if (std::isinf(x)) return errc::domain;
    out = std::cos(x);
    return errc::ok;
}

/// CPython's math.log helper for one argument (m_log with its domain errors).
inline errc py_log1(pynum x, double& out) {
    if (x.is_int) {
        if (x.i <= 0) return errc::domain;
        out = std::log(x.d);
        return errc::ok;
    }
    const double v = x.d;
    if (std::isfinite(v)) {
        if (v > 0.0) { out = std::log(v); return errc::ok; }
        return errc::domain;  // log(0) and log(negative) raise "math domain error"
    }
    if (std::isnan(v) || v > 0.0) { out = v; return errc::ok; }  // log(nan) = nan, log(inf) = inf
    return errc::domain;
}

/// `math.log(x, base)`, which CPython computes as log(x) / log(base).
inline errc py_log(pynum x, pynum base, double& out) {
    double num, den;
    FASTLR_TRY(py_log1(x, num));
    FASTLR_TRY(py_log1(base, den));
    if (den == 0.0) return errc::zero_division;
    out = num / den;
    return errc::ok;
}

/// `int(x)` for a float: truncation; ValueError for NaN, OverflowError for infinities, and leaves the
/// fast path beyond int64.
inline errc py_int_of_float(double x, std::int64_t& out) {
    if (std::isnan(x)) return errc::domain;
    if (std::isinf(x)) return errc::overflow;
    const double t = std::trunc(x);
    if (!(t >= -9223372036854775808.0 && t < 9223372036854775808.0)) return errc::out_of_range;
    out = static_cast<std::int64_t>(t);
    return errc::ok;
}

/// `math.floor(x)` for an int or float, as a Python int.
inline errc py_floor(pynum x, std::int64_t& out) {
    if (x.is_int) { out = x.i; return errc::ok; }
    if (std::isnan(x.d)) return errc::domain;
    if (std::isinf(x.d)) return errc::overflow;
    return py_int_of_float(std::floor(x.d), out);
}

/// Python's `math.pi`.
inline constexpr double py_pi = 3.141592653589793;

}  // namespace fastlr
