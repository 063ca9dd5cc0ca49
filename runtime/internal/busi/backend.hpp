#pragma once
// For backend writers only (not installed): what the backend table, the
// backends and the Classifier base share. Users see busi/classifier.hpp.
//
// A backend is a Classifier subclass implementing backend(), describe(),
// model() and the infer() hook, plus one factory in the table of
// runtime/registry/registry.cpp: {name, model kind, setting keys, factory}.
// make_classifier() checks the setting keys and resolves the model (of the
// table's kind) before the factory runs, so a factory only reads its settings
// through BackendSettings and builds.
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "busi/classifier.hpp"

namespace busi {

// A backend's settings (ClassifierOptions::settings), read by type. Every
// error names the backend, the key, the value given and what is allowed:
//   backend fpga: setting timeout_ms='0' is not a whole number in [1, 3600000]
class BackendSettings {
 public:
  // Throws busi::error for a key not in `known`:
  //   backend cpu_int has no setting 'threads'; known: isa
  BackendSettings(std::string backend, std::map<std::string, std::string> values,
                  const std::vector<std::string>& known);

  const std::string& backend() const { return backend_; }
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  // The value as given, or `fallback` when absent.
  std::string text(const std::string& key, const std::string& fallback) const;
  // A whole number in [low, high] (decimal, no trailing characters), or `fallback`.
  long long whole_number(const std::string& key, long long fallback, long long low, long long high) const;
  // One of `allowed`, or `fallback`.
  std::string one_of(const std::string& key, const std::string& fallback,
                     const std::vector<std::string>& allowed) const;

 private:
  std::string backend_;
  std::map<std::string, std::string> values_;
};

// The model a backend should run: options.model, else options.model_path, else
// default_model_path(kind). Throws model_error when its kind is not `kind`.
std::shared_ptr<const Model> resolve_model(const ClassifierOptions& options, ModelKind kind,
                                           const std::string& backend);

// The prediction rule: the first index of the maximum. -1 when count is 0.
template <typename T>
int first_argmax(const T* values, std::size_t count) {
  if (count == 0) return -1;
  std::size_t best = 0;
  for (std::size_t i = 1; i < count; ++i)
    if (values[i] > values[best]) best = i;
  return static_cast<int>(best);
}

// What the gate reads of an input's pixels at full scale, from one pass over
// them (input_statistics): the histogram of the values, the histogram of each
// pixel's change to the right plus its change below (pixels with both
// neighbours), the sums of the absolute changes across and down, and the sums
// of the top and bottom thirds' rows and of the left and right thirds' columns.
struct InputStatistics {
  std::array<uint64_t, 256> histogram{};
  std::array<uint64_t, 511> edges{};
  uint64_t across = 0, down = 0, top = 0, bottom = 0, sides = 0;
  // The pixels' standard deviation as cv::meanStdDev computes it.
  double pixel_stddev() const;
};
InputStatistics input_statistics(const Tensor8& input);

// The gate's checks of the input alone (docs/safety.md), run by make_prediction
// before it looks at the scores: the reason `input` is unreadable
// (its decoded image is smaller than the package's min_side, it is in colour,
// or its pixels are blank or nearly constant), or "" when it may be
// classified. Always "" for a package without a calibration block.
// `statistics` are input_statistics(input).
std::string input_refusal(const Model& model, const Tensor8& input, const InputStatistics& statistics);

// The features of the "image-logit-mahalanobis-v1" out-of-distribution score:
// Calibration::Gate::image_statistics statistics of the input's pixels
// (brightness, contrast, dark and saturated shares, skew, the size and
// direction of pixel-to-pixel changes at three scales, where the brightness
// lies, the share of crisp edges), then the real logits. Ultrasound speckle is smeared sideways, so its
// changes run up and down far more than across; photographs, text and noise
// do not look like that. `statistics` are input_statistics(input); the input
// is at least Calibration::Gate::min_input_side on each side.
std::vector<float> ood_features(const Tensor8& input, const InputStatistics& statistics,
                                const std::vector<float>& real_logits);

// The one place a backend's raw output becomes a Prediction, for every backend:
// class index (first_argmax of the logits, or the backend's top-1), class name,
// scores (softmax of the real-valued logits, int32 logits times
// model.logit_scale, divided by the calibration's temperature), and with a
// calibration block the gate (input_refusal, then the out-of-distribution
// score), P(abnormal), the verdict
// (against `referral`, or the package's referral point when null) and
// "suspicious for malignancy". `input` is what the backend ran. Throws
// busi::error naming the backend when the output has the wrong number of
// logits or a class index out of range.
Prediction make_prediction(const Model& model, const std::string& backend, const Tensor8& input, RawOutput&& raw,
                           const OperatingPoint* referral = nullptr);

}  // namespace busi
