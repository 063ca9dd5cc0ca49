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

double ratio(std::size_t numerator, std::size_t denominator) {
  return denominator == 0 ? not_a_number : double(numerator) / double(denominator);
}
}  // namespace

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
