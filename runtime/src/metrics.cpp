#include "busi/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <numeric>
#include <sstream>

#include "busi/error.hpp"

namespace busi {
namespace {
constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();
constexpr double z95 = 1.959963984540054;  // the normal distribution's 97.5th percentile

double ratio(std::size_t numerator, std::size_t denominator) {
  return denominator == 0 ? not_a_number : double(numerator) / double(denominator);
}
}  // namespace

Interval wilson_interval(std::size_t successes, std::size_t trials) {
  if (successes > trials)
    throw error("wilson_interval: " + std::to_string(successes) + " successes out of " + std::to_string(trials) +
                " trials");
  if (trials == 0) return {not_a_number, not_a_number};
  constexpr double z = z95;
  const double n = double(trials), p = double(successes) / n, z2n = z * z / n;
  const double centre = (p + z2n / 2) / (1 + z2n);
  const double half = z / (1 + z2n) * std::sqrt(p * (1 - p) / n + z2n / (4 * n));
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

RocCurve roc_curve(const std::vector<double>& scores, const std::vector<bool>& positive) {
  if (scores.size() != positive.size())
    throw error("roc_curve: " + std::to_string(scores.size()) + " scores for " + std::to_string(positive.size()) +
                " labels");
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::size_t(0));
  for (double s : scores)
    if (std::isnan(s)) throw error("roc_curve: a score is NaN");
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  const std::size_t positives = std::size_t(std::count(positive.begin(), positive.end(), true));
  const std::size_t negatives = positive.size() - positives;
  RocCurve roc{{INFINITY}, {0.0}, {0.0}, not_a_number, {not_a_number, not_a_number}};
  if (positives == 0 || negatives == 0) return roc;
  std::size_t tp = 0, fp = 0;
  double area = 0;
  for (std::size_t i = 0; i < order.size();) {
    const double threshold = scores[order[i]];
    for (; i < order.size() && scores[order[i]] == threshold; ++i) ++(positive[order[i]] ? tp : fp);
    const double fpr = double(fp) / double(negatives), tpr = double(tp) / double(positives);
    area += (fpr - roc.false_positive_rate.back()) * (tpr + roc.true_positive_rate.back()) / 2;
    roc.thresholds.push_back(threshold);
    roc.false_positive_rate.push_back(fpr);
    roc.true_positive_rate.push_back(tpr);
  }
  roc.auc = area;
  // Hanley & McNeil (1982): the AUC's standard error from Q1 = A/(2-A), Q2 = 2A^2/(1+A).
  const double q1 = area / (2 - area), q2 = 2 * area * area / (1 + area), np = double(positives),
               nn = double(negatives);
  const double se = std::sqrt((area * (1 - area) + (np - 1) * (q1 - area * area) + (nn - 1) * (q2 - area * area)) /
                              (np * nn));
  roc.auc_interval = {std::max(0.0, area - z95 * se), std::min(1.0, area + z95 * se)};
  return roc;
}

double BinaryRates::sensitivity() const { return ratio(true_positive, true_positive + false_negative); }
double BinaryRates::specificity() const { return ratio(true_negative, true_negative + false_positive); }

ConfusionMatrix::ConfusionMatrix(std::vector<std::string> class_names) : names_(std::move(class_names)) {
  if (names_.empty()) throw error("confusion matrix: no classes");
  counts_.assign(names_.size() * names_.size(), 0);
}

int ConfusionMatrix::check_index(int index, const char* what) const {
  if (index < 0 || std::size_t(index) >= names_.size())
    throw error("confusion matrix: " + std::string(what) + " class index " + std::to_string(index) +
                " out of range (0.." + std::to_string(names_.size() - 1) + ")");
  return index;
}

void ConfusionMatrix::add(int true_class, int predicted_class) {
  const int t = check_index(true_class, "true"), p = check_index(predicted_class, "predicted");
  ++counts_[std::size_t(t) * names_.size() + std::size_t(p)];
}

std::size_t ConfusionMatrix::count(int true_class, int predicted_class) const {
  const int t = check_index(true_class, "true"), p = check_index(predicted_class, "predicted");
  return counts_[std::size_t(t) * names_.size() + std::size_t(p)];
}

std::size_t ConfusionMatrix::total() const { return std::accumulate(counts_.begin(), counts_.end(), std::size_t(0)); }

std::size_t ConfusionMatrix::correct() const {
  std::size_t sum = 0;
  for (std::size_t c = 0; c < names_.size(); ++c) sum += counts_[c * names_.size() + c];
  return sum;
}

std::size_t ConfusionMatrix::class_total(int true_class) const {
  const std::size_t t = std::size_t(check_index(true_class, "true"));
  return std::accumulate(counts_.begin() + long(t * names_.size()), counts_.begin() + long((t + 1) * names_.size()),
                         std::size_t(0));
}

double ConfusionMatrix::accuracy() const { return ratio(correct(), total()); }

double ConfusionMatrix::recall(int true_class) const {
  return ratio(count(true_class, true_class), class_total(true_class));
}

double ConfusionMatrix::precision(int predicted_class) const {
  std::size_t predicted = 0;
  for (std::size_t t = 0; t < names_.size(); ++t) predicted += count(int(t), predicted_class);
  return ratio(count(predicted_class, predicted_class), predicted);
}

std::vector<double> ConfusionMatrix::recalls() const {
  std::vector<double> result;
  for (std::size_t c = 0; c < names_.size(); ++c) result.push_back(recall(int(c)));
  return result;
}

BinaryRates ConfusionMatrix::normal_vs_abnormal(const std::string& negative) const {
  const auto it = std::find(names_.begin(), names_.end(), negative);
  if (it == names_.end()) throw error("confusion matrix: no class named '" + negative + "'");
  const int n = int(it - names_.begin());
  BinaryRates rates;
  for (int t = 0; t < int(names_.size()); ++t)
    for (int p = 0; p < int(names_.size()); ++p) {
      const std::size_t k = count(t, p);
      if (t == n)
        (p == n ? rates.true_negative : rates.false_positive) += k;
      else
        (p == n ? rates.false_negative : rates.true_positive) += k;
    }
  return rates;
}

std::string ConfusionMatrix::to_text() const {
  std::size_t width = 6;  // fits "recall" and counts up to 6 digits
  for (const auto& name : names_) width = std::max(width, name.size());
  const std::string corner = "true \\ pred";
  std::size_t first = corner.size();
  for (const auto& name : names_) first = std::max(first, name.size());
  std::ostringstream out;
  out << std::left << std::setw(int(first)) << corner << std::right;
  for (const auto& name : names_) out << "  " << std::setw(int(width)) << name;
  out << "  " << std::setw(int(width)) << "recall" << '\n';
  for (std::size_t t = 0; t < names_.size(); ++t) {
    out << std::left << std::setw(int(first)) << names_[t] << std::right;
    for (std::size_t p = 0; p < names_.size(); ++p) out << "  " << std::setw(int(width)) << count(int(t), int(p));
    const double r = recall(int(t));
    std::ostringstream cell;
    if (std::isnan(r))
      cell << "n/a";
    else
      cell << std::fixed << std::setprecision(1) << 100.0 * r << '%';
    out << "  " << std::setw(int(width)) << cell.str() << '\n';
  }
  return out.str();
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) throw error("percentile of an empty sample");
  if (!(p >= 0.0 && p <= 100.0)) throw error("percentile " + std::to_string(p) + " out of range [0, 100]");
  std::sort(values.begin(), values.end());
  const double rank = p / 100.0 * double(values.size() - 1);
  const std::size_t below = std::size_t(std::floor(rank));
  const std::size_t above = std::min(below + 1, values.size() - 1);
  return values[below] + (rank - double(below)) * (values[above] - values[below]);
}

LatencySummary summarize_latencies(const std::vector<double>& milliseconds) {
  if (milliseconds.empty()) throw error("latency summary of an empty sample");
  LatencySummary s;
  s.count = milliseconds.size();
  s.mean_ms = std::accumulate(milliseconds.begin(), milliseconds.end(), 0.0) / double(s.count);
  const auto [lo, hi] = std::minmax_element(milliseconds.begin(), milliseconds.end());
  s.min_ms = *lo;
  s.max_ms = *hi;
  s.p50_ms = percentile(milliseconds, 50);
  s.p90_ms = percentile(milliseconds, 90);
  s.p99_ms = percentile(milliseconds, 99);
  return s;
}

int label_from_path(const std::filesystem::path& image, const std::vector<std::string>& class_names) {
  for (auto dir = image.parent_path(); !dir.empty(); dir = dir.parent_path()) {
    const std::string name = dir.filename().string();
    const auto it = std::find(class_names.begin(), class_names.end(), name);
    if (it != class_names.end()) return int(it - class_names.begin());
    if (dir == dir.parent_path()) break;  // reached the root
  }
  return -1;
}

}  // namespace busi
