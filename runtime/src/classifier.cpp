// What every backend shares: batch fallback, file and pixel entry points,
// turning logits into a Prediction, and choosing the model to run.
#include "busi/classifier.hpp"

#include <algorithm>
#include <cmath>

#include "busi/error.hpp"

namespace busi {

std::vector<Prediction> Classifier::classify_batch(const std::vector<Tensor8>& inputs) {
  std::vector<Prediction> out;
  out.reserve(inputs.size());
  for (const auto& input : inputs) out.push_back(classify(input));
  return out;
}

Prediction Classifier::classify_file(const std::filesystem::path& image) {
  return classify(load_image(image, model().input.height, model().input.width));
}

Prediction Classifier::classify_pixels(const ImageView& image) {
  return classify(preprocess(image, model().input.height, model().input.width));
}

Prediction Classifier::make_prediction(int class_index, std::vector<int32_t> logits,
                                       std::vector<float> real_logits) const {
  const Model& m = model();
  if (class_index < 0 || std::size_t(class_index) >= m.num_classes())
    throw error(backend() + ": class index " + std::to_string(class_index) + " out of range for " +
                std::to_string(m.num_classes()) + " classes");
  Prediction p;
  p.class_index = class_index;
  p.class_name = m.class_names[class_index];
  if (real_logits.empty())
    for (int32_t v : logits) real_logits.push_back(float(v) * m.logit_scale);
  if (!real_logits.empty()) {
    // Softmax, shifted by the maximum for range.
    const float top = *std::max_element(real_logits.begin(), real_logits.end());
    double sum = 0;
    for (float v : real_logits) sum += std::exp(double(v - top));
    for (float v : real_logits) p.scores.push_back(float(std::exp(double(v - top)) / sum));
  }
  p.logits = std::move(logits);
  return p;
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

void check_settings(const ClassifierOptions& options, const std::string& backend,
                    const std::vector<std::string>& known) {
  for (const auto& [key, value] : options.settings) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw error("backend " + backend + " has no setting '" + key + "'" +
                (known.empty() ? std::string(" (it takes none)") : "; known: " + list));
  }
}

}  // namespace busi
