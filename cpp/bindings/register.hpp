// One register_<area> function per binding file; module.cpp calls them all.
#pragma once

#include "pybind11.hpp"

void register_scheduler(py::module_& m);  // register_scheduler.cpp: the drop-in schedulers' fast path
void register_pymath(py::module_& m);     // register_pymath.cpp: CPython-semantics helpers, for tests
void register_schedules(py::module_& m);  // register_schedules.cpp: schedule programs (fastlr.schedules)
