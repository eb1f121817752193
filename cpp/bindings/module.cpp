// fastlr._core: the compiled engine behind fastlr. Private; the package re-exports what users need.
#include "pybind11.hpp"

#include "register.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastlr's compiled core (private: use the fastlr package).";
    m.attr("__version__") = FASTLR_VERSION;
    register_scheduler(m);
    register_pymath(m);
    register_schedules(m);
}
