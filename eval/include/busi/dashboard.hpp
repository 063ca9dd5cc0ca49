#pragma once
// The dashboard: one self-contained HTML page (inline CSS and SVG, no script,
// no network) from one or more busi-eval reports: a summary table, bar charts
// of accuracy, latency and energy per image for every run (backend x bit width),
// the accuracy-versus-latency Pareto view, and each run's confusion matrix.
// Energy figures show their source; estimates are marked "estimate", and runs
// without a power source show "n/a".
#include <string>
#include <vector>

#include "busi/evaluation.hpp"

namespace busi {

// Several reports (e.g. one from the board, one from a PC) share the charts;
// runs are then labelled with their machine as well.
std::string render_dashboard(const std::vector<EvaluationReport>& reports,
                             const std::string& title = "busi-infer evaluation");

}  // namespace busi
