// The one way the bindings include pybind11 (and with it Python.h): always first in every .cpp here.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;
