// The classification contract, once for every backend: input checks, the
// batch semantics, and raw logits -> Prediction (make_prediction). Also the
// backend-writer helpers of busi/backend.hpp.
#include "busi/classifier.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <iomanip>
#include <opencv2/core.hpp>
#include <sstream>

#include "busi/area_shrink.hpp"
#include "busi/backend.hpp"
#include "busi/error.hpp"

namespace busi {

namespace {

// Throws image_error unless `input` has the model's input shape. `index` names
// the input within a batch (-1 for a single one).
void check_input(const Classifier& classifier, const Tensor8& input, long index) {
  const Shape& want = classifier.model().input;
  if (input.height == want.height && input.width == want.width &&
      input.pixels.size() == std::size_t(want.height) * std::size_t(want.width))
    return;
  throw image_error(classifier.backend() + ": input " + (index >= 0 ? std::to_string(index) + " " : "") + "is " +
                    std::to_string(input.height) + "x" + std::to_string(input.width) + " (" +
                    std::to_string(input.pixels.size()) + " pixels); model " + classifier.model().name + " takes " +
                    std::to_string(want.height) + "x" + std::to_string(want.width));
}

}  // namespace

const char* verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::refer: return "refer";
    case Verdict::routine: return "routine";
    case Verdict::unreadable: return "unreadable";
    case Verdict::unavailable: return "unavailable";
  }
  return "?";
}

void Classifier::set_referral_sensitivity(double sensitivity) {
  referral_ = model().referral_at(sensitivity);
}

Prediction Classifier::classify(const Tensor8& input) {
  check_input(*this, input, -1);
  RawOutput raw;
  infer(std::span<const Tensor8>(&input, 1), std::span<RawOutput>(&raw, 1));
  return make_prediction(model(), backend(), input, std::move(raw), referral_ ? &*referral_ : nullptr);
}

std::vector<Prediction> Classifier::classify_batch(const std::vector<Tensor8>& inputs) {
  for (std::size_t i = 0; i < inputs.size(); ++i) check_input(*this, inputs[i], long(i));
  std::vector<Prediction> out;
  if (inputs.empty()) return out;
  std::vector<RawOutput> raw(inputs.size());
  infer(inputs, raw);
  out.reserve(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i)
    out.push_back(make_prediction(model(), backend(), inputs[i], std::move(raw[i]), referral_ ? &*referral_ : nullptr));
  return out;
}

Prediction Classifier::classify_file(const std::filesystem::path& image) {
  return classify(load_image(image, model().input.height, model().input.width));
}

Prediction Classifier::classify_pixels(const ImageView& image) {
  return classify(preprocess(image, model().input.height, model().input.width));
}

namespace {

std::string fixed(double value, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << value;
  return s.str();
}

// Mean absolute change between horizontal and between vertical neighbours of
// a coarser scale (cv::mean of cv::absdiff, as the gate was fitted with).
std::pair<double, double> mean_changes(std::vector<float>& scaled, int rows, int cols) {
  const cv::Mat m(rows, cols, CV_32F, scaled.data());
  cv::Mat dx, dy;
  cv::absdiff(m.colRange(1, m.cols), m.colRange(0, m.cols - 1), dx);
  cv::absdiff(m.rowRange(1, m.rows), m.rowRange(0, m.rows - 1), dy);
  return {cv::mean(dx)[0] + 1e-3, cv::mean(dy)[0] + 1e-3};
}

// The share of pixels whose change to the right plus the change below exceeds
// 4 times the median of that sum: the crisp edges of text, coins, bricks and
// drawings, which speckle, blurred by the probe, lacks. `edges` is the
// histogram of those sums (whole numbers in [0, 510]) over every pixel with a
// right and a lower neighbour: it gives the exact median and the count above
// it without sorting.
double strong_edge_share(const std::array<uint64_t, 511>& edges) {
  std::size_t count = 0;
  for (uint64_t n : edges) count += n;
  if (count == 0) return 0;
  // The median as numpy's: the mean of the two middle values of an even count.
  const auto order_statistic = [&](std::size_t k) {  // the k-th smallest, from 0
    std::size_t seen = 0;
    for (std::size_t v = 0; v < edges.size(); ++v)
      if ((seen += edges[v]) > k) return double(v);
    return 510.0;
  };
  const double median = count % 2 ? order_statistic(count / 2)
                                  : (order_statistic(count / 2 - 1) + order_statistic(count / 2)) / 2;
  std::size_t strong = 0;
  for (std::size_t v = 0; v < edges.size(); ++v)
    if (double(v) > 4 * median) strong += edges[v];
  return double(strong) / double(count);
}

}  // namespace

InputStatistics input_statistics(const Tensor8& input) {
  // Whole numbers only, so the order of the sums changes nothing: the loops
  // are split so that the compiler vectorises the sums, and the histograms
  // are counted in four interleaved tables (a run of equal values, such as
  // the black around a scan, would otherwise make each count wait for the
  // one before).
  InputStatistics st;
  const int h = input.height, w = input.width, third_rows = h / 3, third_cols = w / 3;
  const uint8_t* p = input.pixels.data();
  std::array<std::array<uint32_t, 256>, 4> histogram{};
  std::array<std::array<uint32_t, 511>, 4> edges{};
  std::vector<uint16_t> change(std::size_t(std::max(w, 1)));  // change to the right + change below
  for (int y = 0; y < h; ++y) {
    const uint8_t* row = p + std::size_t(y) * w;
    uint32_t row_sum = 0, across = 0, down = 0, sides = 0;
    for (int x = 0; x < w; ++x) row_sum += row[x];
    for (int x = 0; x + 1 < w; ++x) across += uint32_t(std::abs(row[x + 1] - row[x]));
    for (int x = 0; x < third_cols; ++x) sides += row[x] + row[w - third_cols + x];
    int i = 0;
    for (; i + 4 <= w; i += 4)
      ++histogram[0][row[i]], ++histogram[1][row[i + 1]], ++histogram[2][row[i + 2]], ++histogram[3][row[i + 3]];
    for (; i < w; ++i) ++histogram[0][row[i]];
    if (y + 1 < h) {
      const uint8_t* below = row + w;
      for (int x = 0; x < w; ++x) down += uint32_t(std::abs(below[x] - row[x]));
      for (int x = 0; x + 1 < w; ++x)
        change[x] = uint16_t(std::abs(row[x + 1] - row[x]) + std::abs(below[x] - row[x]));
      i = 0;
      for (; i + 4 < w; i += 4)
        ++edges[0][change[i]], ++edges[1][change[i + 1]], ++edges[2][change[i + 2]], ++edges[3][change[i + 3]];
      for (; i + 1 < w; ++i) ++edges[0][change[i]];
    }
    st.across += across;
    st.down += down;
    st.sides += sides;
    if (y < third_rows) st.top += row_sum;
    if (y >= h - third_rows) st.bottom += row_sum;
  }
  for (const auto& table : histogram)
    for (std::size_t v = 0; v < 256; ++v) st.histogram[v] += table[v];
  for (const auto& table : edges)
    for (std::size_t v = 0; v < 511; ++v) st.edges[v] += table[v];
  return st;
}

double InputStatistics::pixel_stddev() const {
  // cv::meanStdDev's arithmetic: whole-number sums of the values and their
  // squares (exact in double), times 1 / count.
  uint64_t count = 0, sum = 0, squares = 0;
  for (uint64_t v = 0; v < 256; ++v) count += histogram[v], sum += v * histogram[v], squares += v * v * histogram[v];
  const double scale = count ? 1. / double(count) : 0., mean = double(sum) * scale;
  return std::sqrt(std::max(double(squares) * scale - mean * mean, 0.));
}

std::string input_refusal(const Model& model, const Tensor8& input, const InputStatistics& statistics) {
  if (!model.calibration) return "";
  const Calibration::Gate& gate = model.calibration->gate;
  const int shorter = std::min(input.source_height, input.source_width);
  if (shorter > 0 && shorter < gate.min_side)
    return "image " + std::to_string(input.source_width) + "x" + std::to_string(input.source_height) +
           " is smaller than " + std::to_string(gate.min_side) + " pixels on its shorter side: it would be enlarged " +
           fixed(double(std::min(input.height, input.width)) / shorter, 1) + "x to the model's " +
           std::to_string(input.width) + "x" + std::to_string(input.height) +
           " input, which blurs away the speckle texture the model reads";
  if (input.source_colour > gate.max_colour)
    return "image is in colour (mean channel difference " + fixed(input.source_colour, 1) + " > " +
           fixed(gate.max_colour, 1) + "): ultrasound is grey-scale";
  const double stddev = statistics.pixel_stddev();
  if (stddev < gate.min_stddev)
    return "image is blank or nearly constant (pixel standard deviation " + fixed(stddev, 2) + " < " +
           fixed(gate.min_stddev, 1) + ")";
  return "";
}

std::vector<float> ood_features(const Tensor8& input, const InputStatistics& st,
                                const std::vector<float>& real_logits) {
  // The full-scale statistics from the pass over the pixels (a histogram for
  // the moments, whole-number sums for the rest); the two coarser scales are
  // area shrinks of the pixels as floats (cv::resize's, bit for bit).
  const int h = input.height, w = input.width, third_rows = h / 3, third_cols = w / 3;
  const auto& histogram = st.histogram;
  const double n = double(h) * w;
  double mean = 0;
  for (int v = 0; v < 256; ++v) mean += double(v) * double(histogram[v]);
  mean /= n;
  double second = 0, third = 0;
  uint64_t dark = 0, bright = 0;
  for (int v = 0; v < 256; ++v) {
    const double d = v - mean, count = double(histogram[v]);
    second += d * d * count;
    third += d * d * d * count;
    if (v < 16) dark += histogram[v];
    if (v > 239) bright += histogram[v];
  }
  const double stddev = std::sqrt(second / n);
  std::vector<double> f = {mean / 255, std::log(stddev + 1), double(dark) / n, double(bright) / n,
                           std::cbrt(third / n / std::pow(stddev + 1e-9, 3))};
  const auto add_changes = [&](double mean_across, double mean_down) {
    f.push_back(std::log(mean_across / (stddev + 1)));
    f.push_back(std::log(mean_down / mean_across));
  };
  add_changes(double(st.across) / (double(h) * (w - 1)) + 1e-3, double(st.down) / (double(h - 1) * w) + 1e-3);
  std::vector<float> scaled;
  for (int k : {3, 9}) {
    area_shrink(input.pixels.data(), h, w, h / k, w / k, scaled);
    const auto [a, d] = mean_changes(scaled, h / k, w / k);
    add_changes(a, d);
  }
  f.push_back((double(st.top) - double(st.bottom)) / (double(third_rows) * w) / 255);
  f.push_back(double(st.sides) / (2.0 * third_cols * h) / 255 - mean / 255);
  f.push_back(strong_edge_share(st.edges));
  std::vector<float> out(f.begin(), f.end());
  out.insert(out.end(), real_logits.begin(), real_logits.end());
  return out;
}

Prediction make_prediction(const Model& model, const std::string& backend, const Tensor8& input, RawOutput&& raw,
                           const OperatingPoint* referral) {
  const std::size_t classes = model.num_classes();
  const bool has_logits = !raw.logits.empty(), has_real = !raw.real_logits.empty();
  if ((has_logits && raw.logits.size() != classes) || (has_real && raw.real_logits.size() != classes))
    throw error(backend + ": " + std::to_string(has_logits ? raw.logits.size() : raw.real_logits.size()) +
                " logits for " + std::to_string(classes) + " classes");
  const int index = has_logits ? first_argmax(raw.logits.data(), classes)
                    : has_real ? first_argmax(raw.real_logits.data(), classes)
                               : raw.top_class;
  if (index < 0 || std::size_t(index) >= classes)
    throw error(backend + ": class index " + std::to_string(index) + " out of range for " + std::to_string(classes) +
                " classes");
  Prediction p;
  p.class_index = index;
  p.class_name = model.class_names[index];
  std::vector<float>& real = raw.real_logits;
  if (has_logits && !has_real)
    for (int32_t v : raw.logits) real.push_back(float(v) * model.logit_scale);
  p.logits = std::move(raw.logits);
  const Calibration* calibration = model.calibration ? &*model.calibration : nullptr;
  // The gate on the input first: it needs no scores, so it refuses for top-1
  // backends too. The class and scores stay for whoever wants to look, but no
  // decision is made on them.
  const InputStatistics statistics = input_statistics(input);
  if (std::string refusal = input_refusal(model, input, statistics); !refusal.empty()) {
    p.verdict = Verdict::unreadable;
    p.reason = std::move(refusal);
  }
  if (real.empty()) {
    if (p.verdict == Verdict::unreadable) return p;
    p.reason = "backend " + backend + " reports only the top-1 class (a TopK overlay), so it has no scores to refer on";
    return p;
  }
  // Softmax of logits / temperature, shifted by the maximum for range.
  const double temperature = calibration ? calibration->temperature : 1.0;
  const float top = *std::max_element(real.begin(), real.end());
  double sum = 0;
  for (float v : real) sum += std::exp(double(v - top) / temperature);
  p.scores.reserve(real.size());
  for (float v : real) p.scores.push_back(float(std::exp(double(v - top) / temperature) / sum));
  // Computed without a calibration too: calibrate.py fits the gate on them.
  // (Networks smaller than the statistics' coarsest scale cannot carry a gate.)
  if (std::min(input.height, input.width) >= Calibration::Gate::min_input_side)
    p.ood_features = ood_features(input, statistics, real);
  if (p.verdict == Verdict::unreadable) return p;
  if (!calibration) {
    p.reason = "model " + model.name +
               " has no calibration block, so it has no referral threshold (training/busi_train/calibrate.py fits one)";
    return p;
  }

  const Calibration::Gate& gate = calibration->gate;
  double distance = 0;
  const std::size_t n = p.ood_features.size();
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j)
      distance += (p.ood_features[i] - gate.mean[i]) * gate.precision[i * n + j] * (p.ood_features[j] - gate.mean[j]);
  p.ood_score = float(std::sqrt(std::max(distance, 0.0)));
  const auto class_of = [&](const char* name) {
    return std::size_t(std::find(model.class_names.begin(), model.class_names.end(), name) - model.class_names.begin());
  };
  if (!(p.ood_score <= gate.ood_threshold)) {
    p.verdict = Verdict::unreadable;
    p.reason = "out of distribution: score " + fixed(p.ood_score, 1) + " > " + fixed(gate.ood_threshold, 1) + " (" +
               gate.ood_score + "); not like the breast ultrasound the model was calibrated on";
    return p;
  }
  p.p_abnormal = 1 - p.scores[class_of("normal")];
  const OperatingPoint& point = referral ? *referral : calibration->referral;
  const bool refer = p.p_abnormal >= point.threshold;
  p.verdict = refer ? Verdict::refer : Verdict::routine;
  p.reason = "P(abnormal) " + fixed(p.p_abnormal, 2) + (refer ? " >= " : " < ") + fixed(point.threshold, 2) + " (" +
             fixed(100 * point.target_sensitivity, 0) + "% sensitivity)";
  p.suspicious_malignancy = p.scores[class_of("malignant")] >= calibration->suspicious.threshold;
  return p;
}

// ---- backend-writer helpers (busi/backend.hpp) --------------------------------

BackendSettings::BackendSettings(std::string backend, std::map<std::string, std::string> values,
                                 const std::vector<std::string>& known)
    : backend_(std::move(backend)), values_(std::move(values)) {
  for (const auto& [key, value] : values_) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw error("backend " + backend_ + " has no setting '" + key + "'" +
                (known.empty() ? std::string(" (it takes none)") : "; known: " + list));
  }
}

std::string BackendSettings::text(const std::string& key, const std::string& fallback) const {
  const auto it = values_.find(key);
  return it == values_.end() ? fallback : it->second;
}

long long BackendSettings::whole_number(const std::string& key, long long fallback, long long low,
                                        long long high) const {
  const auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  const std::string& text = it->second;
  // Decimal digits with an optional minus, nothing else (no spaces, no '+', no exponent).
  long long value = 0;
  const auto [end, failure] = std::from_chars(text.data(), text.data() + text.size(), value);
  const bool whole = failure == std::errc() && end == text.data() + text.size();
  if (text.empty() || !whole || value < low || value > high)
    throw error("backend " + backend_ + ": setting " + key + "='" + text + "' is not a whole number in [" +
                std::to_string(low) + ", " + std::to_string(high) + "]");
  return value;
}

std::string BackendSettings::one_of(const std::string& key, const std::string& fallback,
                                    const std::vector<std::string>& allowed) const {
  const auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  if (std::find(allowed.begin(), allowed.end(), it->second) != allowed.end()) return it->second;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  throw error("backend " + backend_ + ": setting " + key + "='" + it->second + "' is not one of " + list);
}

std::shared_ptr<const Model> resolve_model(const ClassifierOptions& options, ModelKind kind,
                                           const std::string& backend) {
  std::shared_ptr<const Model> model = options.model;
  if (!model)
    model = std::make_shared<const Model>(
        Model::load(options.model_path.empty() ? default_model_path(kind) : options.model_path));
  if (model->kind != kind) {
    const auto name = [](ModelKind k) { return k == ModelKind::floating ? "float" : "quantized"; };
    throw model_error(model->source.string() + ": backend " + backend + " runs " + name(kind) +
                      " models, but this one is " + name(model->kind));
  }
  return model;
}

}  // namespace busi
