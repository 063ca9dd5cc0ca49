// The classification contract, once for every backend: input checks, the
// batch semantics, and raw logits -> Prediction (make_prediction). Also the
// backend-writer helpers of busi/backend.hpp.
#include "busi/classifier.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

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

Prediction Classifier::classify(const Tensor8& input) {
  check_input(*this, input, -1);
  RawOutput raw;
  infer(std::span<const Tensor8>(&input, 1), std::span<RawOutput>(&raw, 1));
  return make_prediction(model(), backend(), std::move(raw));
}

std::vector<Prediction> Classifier::classify_batch(const std::vector<Tensor8>& inputs) {
  for (std::size_t i = 0; i < inputs.size(); ++i) check_input(*this, inputs[i], long(i));
  std::vector<Prediction> out;
  if (inputs.empty()) return out;
  std::vector<RawOutput> raw(inputs.size());
  infer(inputs, raw);
  out.reserve(inputs.size());
  for (auto& r : raw) out.push_back(make_prediction(model(), backend(), std::move(r)));
  return out;
}

Prediction Classifier::classify_file(const std::filesystem::path& image) {
  return classify(load_image(image, model().input.height, model().input.width));
}

Prediction Classifier::classify_pixels(const ImageView& image) {
  return classify(preprocess(image, model().input.height, model().input.width));
}

Prediction make_prediction(const Model& model, const std::string& backend, RawOutput&& raw) {
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
  if (!real.empty()) {
    // Softmax, shifted by the maximum for range.
    const float top = *std::max_element(real.begin(), real.end());
    double sum = 0;
    for (float v : real) sum += std::exp(double(v - top));
    p.scores.reserve(real.size());
    for (float v : real) p.scores.push_back(float(std::exp(double(v - top)) / sum));
  }
  p.logits = std::move(raw.logits);
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
