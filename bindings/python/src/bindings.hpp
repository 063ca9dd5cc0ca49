#pragma once
// The parts of busi_infer._core defined outside core.cpp, one per area.
#include <pybind11/pybind11.h>

void bind_metrics(pybind11::module_& m);     // metrics.cpp
void bind_evaluation(pybind11::module_& m);  // evaluation.cpp
