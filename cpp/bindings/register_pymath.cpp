// CPython-semantics helpers (fastlr/pymath.hpp) exposed for tests/test_core.py, which compares them
// with Python's own operators on random operands. Not used by the package at run time.
#include "pybind11.hpp"

#include <fastlr/pymath.hpp>

#include <string>

#include "register.hpp"

namespace {

fastlr::pynum to_pynum(py::handle o) {
    if (py::isinstance<py::float_>(o)) return fastlr::pynum::of_float(o.cast<double>());
    if (py::isinstance<py::int_>(o)) return fastlr::pynum::of_int(o.cast<std::int64_t>());
    throw py::type_error("expected an int or a float");
}

py::object from_pynum(fastlr::pynum v) {
    if (v.is_int) return py::int_(v.i);
    return py::float_(v.d);
}

[[noreturn]] void raise(PyObject* type, const char* msg) {
    PyErr_SetString(type, msg);
    throw py::error_already_set();
}

/// Map an errc to what CPython does: raise its exception, or name the non-float outcome.
py::object finish(fastlr::errc e, py::object value) {
    switch (e) {
        case fastlr::errc::ok: return value;
        case fastlr::errc::zero_division: raise(PyExc_ZeroDivisionError, "division by zero");
        case fastlr::errc::overflow: raise(PyExc_OverflowError, "numerical result out of range");
        case fastlr::errc::domain: raise(PyExc_ValueError, "math domain error");
        case fastlr::errc::complex_result: return py::str("complex");
        case fastlr::errc::out_of_range: return py::str("out_of_range");
    }
    return value;
}

py::object pymath(const std::string& op, py::handle a_obj, py::handle b_obj) {
    const fastlr::pynum a = to_pynum(a_obj);
    const fastlr::pynum b = b_obj.is_none() ? fastlr::pynum{} : to_pynum(b_obj);
    double d = 0.0;
    fastlr::pynum n;
    int c = 0;
    if (op == "pow") { auto e = fastlr::py_pow(a, b, d); return finish(e, py::float_(d)); }
    if (op == "truediv") { auto e = fastlr::py_truediv(a, b, d); return finish(e, py::float_(d)); }
    if (op == "mod") { auto e = fastlr::py_mod(a, b, n); return finish(e, from_pynum(n)); }
    if (op == "floordiv") { auto e = fastlr::py_floordiv(a, b, n); return finish(e, from_pynum(n)); }
    if (op == "add") { auto e = fastlr::py_add(a, b, n); return finish(e, from_pynum(n)); }
    if (op == "sub") { auto e = fastlr::py_sub(a, b, n); return finish(e, from_pynum(n)); }
    if (op == "mul") { auto e = fastlr::py_mul(a, b, n); return finish(e, from_pynum(n)); }
    if (op == "cmp") { auto e = fastlr::py_cmp(a, b, c); return finish(e, py::int_(c)); }
    if (op == "cos") { auto e = fastlr::py_cos(a.d, d); return finish(e, py::float_(d)); }
    throw py::value_error("unknown op " + op);
}

}  // namespace

void register_pymath(py::module_& m) {
    m.def("_pymath", &pymath, py::arg("op"), py::arg("a"), py::arg("b") = py::none(),
          "Evaluate one CPython operator with fastlr's emulation (test hook). Returns the value, raises\n"
          "CPython's exception, or returns 'complex' / 'out_of_range' where the engine defers to Python.");
}
