#pragma once
// The model package: one quantized or float network of this project's family,
// loaded and fully validated from a .bqnn file (format: docs/model-format.md).
// A Model is immutable after load and safe to share between threads and
// Classifier instances (hold it by std::shared_ptr<const Model>).
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace busi {

struct Tensor8;

enum class ModelKind { quantized, floating };
enum class LayerType { conv, maxpool, dense };

// A CHW tensor shape.
struct Shape {
  int channels = 0, height = 0, width = 0;
  std::size_t size() const { return std::size_t(channels) * height * width; }
  bool operator==(const Shape&) const = default;
};

struct Layer {
  LayerType type = LayerType::conv;
  Shape input, output;  // derived by the loader from the model input

  // conv and dense (dense: kernel = 1, in/out = features)
  int in_channels = 0, out_channels = 0, kernel = 0;

  // quantized: weight_bits in {2,4,8}; weights unpacked to one int8 per element.
  // float: weight_bits = 32; float_weights (and float_bias) are used instead.
  // Layout OIHW for conv, [out][in] for dense (in = C,H,W flatten order).
  int weight_bits = 0;
  std::vector<int8_t> weights;
  std::vector<float> float_weights, float_bias;

  // Activation: act_bits = 0 on the last layer (logits). Quantized hidden layers
  // carry (2^act_bits - 1) non-decreasing int32 thresholds per output channel,
  // row-major [out][threshold]. Float hidden layers apply ReLU (act_bits = 32).
  int act_bits = 0;
  std::vector<int32_t> thresholds;

  // maxpool: window = stride = pool, floor.
  int pool = 0;

  int thresholds_per_channel() const { return act_bits > 0 && act_bits < 32 ? (1 << act_bits) - 1 : 0; }
  const int32_t* channel_thresholds(int oc) const {
    return thresholds.data() + std::size_t(oc) * thresholds_per_channel();
  }
  // Bits of this layer's input elements: 8 (pixels) for the first layer,
  // the previous layer's act_bits otherwise. Set by the loader.
  int input_bits = 8;
};

// One operating point of a decision on a score (P(abnormal) for referral,
// P(malignant) for "suspicious for malignancy"): the threshold chosen on
// validation images for a target sensitivity, what it gave there, and the
// curve it was chosen from, so another sensitivity can be chosen later
// (Model::Calibration::choose).
struct OperatingPoint {
  double target_sensitivity = 0, threshold = 0, sensitivity = 0, specificity = 0;
  // (threshold, sensitivity, specificity), thresholds ascending.
  std::vector<std::array<double, 3>> curve;
  // The point of `curve` with the highest threshold whose sensitivity is at
  // least `target`. Throws busi::error when the curve never reaches it or
  // `target` is not in (0, 1], saying which sensitivities it covers.
  OperatingPoint choose(double target) const;
};

// The "calibration" block of a package (docs/model-format.md): fitted by
// training/busi_train/calibrate.py on validation images the model never
// trained on. Read by make_prediction (runtime/internal/busi/backend.hpp).
struct Calibration {
  std::string fitted_on;
  double temperature = 1;  // scores = softmax(real logits / temperature)
  // The gate that marks an image unreadable instead of classifying it.
  struct Gate {
    int min_side = 0;         // refuse a decoded image whose shorter side is smaller
    double min_stddev = 0;    // refuse a blank or nearly constant input (pixel standard deviation)
    double max_colour = 0;    // refuse a colour image (Tensor8::source_colour above it)
    // "image-logit-mahalanobis-v1": the Mahalanobis distance of
    // ood_features() (image_statistics statistics of the input, then the real
    // logits) from their mean on real ultrasound.
    std::string ood_score;
    static constexpr std::size_t image_statistics = 14;
    // Its coarsest scale is the input area-resized by 9, which needs two pixels a side.
    static constexpr int min_input_side = 18;
    std::vector<double> mean; // of the score's features on real ultrasound
    std::vector<double> precision;  // inverse covariance, row-major, features x features
    double ood_threshold = 0; // refuse when the score is above it
    double accepted_rate = 0; // share of the fitting images it accepts
  } gate;
  OperatingPoint referral, suspicious;
};

struct Model {
  std::string name;
  ModelKind kind = ModelKind::quantized;
  std::vector<std::string> class_names;
  Shape input;                // channels = 1, 255x255 for the shipped models
  std::string preprocess;     // e.g. "gray-area-v1" (docs/preprocessing.md)
  std::vector<Layer> layers;
  float logit_scale = 1.0f;   // quantized: real logit = int32 logit * logit_scale
  std::string provenance_json;  // the header's "provenance" object, as JSON text
  std::optional<Calibration> calibration;  // the header's "calibration", when present
  std::filesystem::path source; // where it was loaded from ("" when built in memory)
  // The input_hash (busi/seen_images.hpp) of every image the model was trained
  // on, sorted and distinct; absent when the package does not record them
  // ("seen_images", docs/model-format.md).
  std::optional<std::vector<uint64_t>> seen_images;

  std::size_t num_classes() const { return class_names.size(); }
  // Whether `input` (pre-processed) is one of seen_images; false when they are not recorded.
  bool has_seen(const Tensor8& input) const;

  // The referral point for `sensitivity`, chosen from the stored curve
  // (OperatingPoint::choose). Throws busi::error when the package has no
  // calibration block or its curve does not reach `sensitivity`.
  OperatingPoint referral_at(double sensitivity) const;

  // Reads, checks (magic, version, CRC, shapes, bit widths, threshold order,
  // int32 accumulator range) and unpacks a package. Throws model_error naming
  // the file and the problem.
  static Model load(const std::filesystem::path& path);
  // Same from bytes in memory; `origin` names them in error messages.
  static Model parse(const std::vector<uint8_t>& bytes, const std::string& origin);

  // Serializes to the .bqnn format (used by tests and tools that build models in C++).
  std::vector<uint8_t> serialize() const;

  // Re-derives every layer's shapes and input_bits from `input` and checks the
  // layer chain (called by load/parse; call it after building a Model by hand).
  void validate(const std::string& origin = "model");
};

// The package the CLI uses when --model is not given, for a model kind
// (searched next to the executable, in the install prefix, then the source tree).
std::filesystem::path default_model_path(ModelKind kind);

}  // namespace busi
