#pragma once
// Classification and latency metrics shared by every tool that scores a
// labelled folder (busi-infer, busi-eval): one implementation, so the CLI and
// the evaluation harness can never disagree on what "sensitivity" means.
//
// Conventions:
// - Rows of a confusion matrix are the true class, columns the predicted class,
//   both in the model's class order (normal, benign, malignant).
// - Normal versus abnormal: "abnormal" is every class except the negative one
//   ("normal"). An abnormal image counts as detected when it is predicted as ANY
//   abnormal class (a malignant image called benign is still a referral), so
//   sensitivity = abnormal predicted abnormal / abnormal images and
//   specificity = normal predicted normal / normal images.
// - A rate with an empty denominator is NaN (never a made-up 0 or 1); JSON
//   writers print it as null.
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace busi {

// Counts of a two-class view (positive = abnormal).
struct BinaryRates {
  std::size_t true_positive = 0;   // abnormal predicted abnormal
  std::size_t false_negative = 0;  // abnormal predicted normal
  std::size_t true_negative = 0;   // normal predicted normal
  std::size_t false_positive = 0;  // normal predicted abnormal
  double sensitivity() const;      // TP / (TP + FN), NaN when no abnormal image
  double specificity() const;      // TN / (TN + FP), NaN when no normal image
};

class ConfusionMatrix {
 public:
  // Throws busi::error when class_names is empty.
  explicit ConfusionMatrix(std::vector<std::string> class_names);

  // Counts one image. Throws busi::error for a class index out of range.
  void add(int true_class, int predicted_class);

  const std::vector<std::string>& class_names() const { return names_; }
  std::size_t num_classes() const { return names_.size(); }
  std::size_t count(int true_class, int predicted_class) const;
  std::size_t total() const;
  std::size_t correct() const;
  std::size_t class_total(int true_class) const;  // images whose true class is this

  double accuracy() const;                      // correct / total, NaN when empty
  double recall(int true_class) const;          // NaN when the class has no image
  double precision(int predicted_class) const;  // NaN when never predicted
  std::vector<double> recalls() const;

  // The class named `negative` against all others. Throws busi::error when no
  // class has that name.
  BinaryRates normal_vs_abnormal(const std::string& negative = "normal") const;

  // A fixed-width table, rows true / columns predicted, with per-class recall:
  //   true \ pred   normal  benign  malignant  recall
  //   normal            10       2          0  83.3%
  std::string to_text() const;

 private:
  int check_index(int index, const char* what) const;
  std::vector<std::string> names_;
  std::vector<std::size_t> counts_;  // row-major [true][predicted]
};

// A 95% confidence interval; both ends NaN when there is nothing to estimate from.
struct Interval {
  double low, high;
};

// Wilson's score interval of the proportion successes / trials at 95% (z = 1.96):
// it stays inside [0, 1] and is not degenerate at 0 or `trials` successes, unlike
// the normal approximation. Every rate the tools print with an interval uses it.
// Throws busi::error when successes > trials.
Interval wilson_interval(std::size_t successes, std::size_t trials);

// The ROC curve of a score against a two-class truth (a higher score means
// "positive"), one point per distinct score from the strictest threshold down:
// point k is (false positive rate, true positive rate) when every image scoring
// >= thresholds[k] is called positive; the curve starts at (0, 0) (threshold
// +infinity). AUC is the area under it (trapezoids, so tied scores count one
// half: the Mann-Whitney statistic), with Hanley and McNeil's (1982) 95%
// interval. NaN when either class is absent. Throws busi::error when the sizes
// differ or a score is NaN.
struct RocCurve {
  std::vector<double> thresholds, false_positive_rate, true_positive_rate;
  double auc;
  Interval auc_interval;
};
RocCurve roc_curve(const std::vector<double>& scores, const std::vector<bool>& positive);

// Latency statistics in milliseconds. Percentiles interpolate linearly between
// the two nearest order statistics (numpy's default), so p50 of {1, 2} is 1.5.
struct LatencySummary {
  std::size_t count = 0;
  double mean_ms = 0, min_ms = 0, max_ms = 0;
  double p50_ms = 0, p90_ms = 0, p99_ms = 0;
};

// p in [0, 100]. Throws busi::error for an empty sample or p out of range.
double percentile(std::vector<double> values, double p);
// Throws busi::error for an empty sample.
LatencySummary summarize_latencies(const std::vector<double>& milliseconds);

// The label of an image in a labelled folder tree: the class whose name equals
// the nearest enclosing directory name (".../busi/benign/benign (3).png" ->
// index of "benign"); -1 when no enclosing directory names a class.
int label_from_path(const std::filesystem::path& image, const std::vector<std::string>& class_names);

}  // namespace busi
