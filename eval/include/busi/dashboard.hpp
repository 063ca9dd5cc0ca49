#pragma once
// The dashboard: one self-contained HTML page (inline CSS, SVG and PNG, no script,
// no network) from one or more busi-eval reports: a summary table, bar charts
// of accuracy, latency and energy per image for every run (backend x bit width),
// the accuracy-versus-latency Pareto view, each run's confusion matrix, and,
// from per-image results, what a clinician reads: ROC curves with AUC,
// reliability, the referral operating point and a gallery of the mistakes and
// refusals (docs/evaluation.md, "Dashboard"). Rates carry Wilson 95% intervals.
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
