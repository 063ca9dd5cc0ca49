#pragma once
// The one interface every backend implements: cpu_int (integer-exact, the
// reference), cpu_ref (oneDNN float baseline) and fpga (a FINN accelerator on a
// PYNQ-Z1, or the emulated board). Backend headers never appear here, so users
// of this header need neither OpenCV, oneDNN nor XRT.
//
// The contract lives here, once, for every backend: classify() and
// classify_batch() check the inputs, call the backend's infer() hook for raw
// logits, and turn each into a Prediction (classifier.cpp, make_prediction).
// A backend only runs the network.
//
// Thread safety: a Classifier instance keeps scratch buffers and is NOT safe to
// call from two threads at once; make one instance per thread (they may share a
// Model). Instances of the fpga backend share one device and serialize on it.
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "busi/image.hpp"
#include "busi/model.hpp"

namespace busi {

// What a clinic may do with an image (docs/safety.md):
//  refer       P(abnormal) reached the package's referral threshold
//  routine     it did not
//  unreadable  the gate refused the image: too small, blank, colour, or not
//              like the breast ultrasound the model was calibrated on
//  unavailable no decision can be made: the backend reports only the top-1
//              class, or the package has no calibration block
enum class Verdict { refer, routine, unreadable, unavailable };
// "refer", "routine", "unreadable", "unavailable".
const char* verdict_name(Verdict verdict);

struct Prediction {
  // The first index of the maximum logit (the top-1 class of backends that
  // report only that); an index into Model::class_names.
  int class_index = -1;
  std::string class_name;
  // Softmax of the real-valued logits (int32 logits times Model::logit_scale),
  // one per class; empty when the backend only reports the top-1 index (an
  // FPGA overlay ending in TopK).
  std::vector<float> scores;
  // The raw int32 logits of integer backends; empty otherwise.
  std::vector<int32_t> logits;

  // The decision, and one sentence saying why ("P(abnormal) 0.61 >= 0.42 (97%
  // sensitivity)", "image 40x40 is smaller than 128 pixels ..."). An image the
  // gate refused keeps its class and scores, but no decision is made on them.
  Verdict verdict = Verdict::unavailable;
  std::string reason;
  // P(abnormal) = 1 - P(normal) of the calibrated scores, when the verdict is
  // refer or routine; NaN otherwise.
  float p_abnormal = std::numeric_limits<float>::quiet_NaN();
  // P(malignant) reached the package's "suspicious" threshold.
  bool suspicious_malignancy = false;
  // The out-of-distribution score and its features (image statistics, then the
  // real logits); NaN / empty when not computed. calibrate.py fits on these.
  float ood_score = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> ood_features;
};

// What a backend is built from. `settings` holds backend-specific options
// ("isa" for cpu_int, "overlay" and "device_root" for fpga, ...); each backend
// rejects settings it does not know.
struct ClassifierOptions {
  std::filesystem::path model_path;          // empty: default_model_path(kind the backend runs)
  std::shared_ptr<const Model> model;        // overrides model_path when set
  std::map<std::string, std::string> settings;
};

// What a backend's infer() hook produces for one image: exactly one of the
// three is set.
struct RawOutput {
  std::vector<int32_t> logits;     // integer backends: model.num_classes() int32 logits
  std::vector<float> real_logits;  // float backends: model.num_classes() logits
  int top_class = -1;              // backends that report only the top-1 class
};

class Classifier {
 public:
  virtual ~Classifier() = default;

  virtual std::string backend() const = 0;
  // A one-line description of how it runs (ISA chosen, device, fclk, ...).
  virtual std::string describe() const = 0;
  virtual const Model& model() const = 0;

  // Refer at `sensitivity` from now on: the point Model::referral_at chooses
  // from the stored curve replaces the package's referral threshold. Throws
  // busi::error when the model has no calibration or the curve does not reach
  // `sensitivity` (the message says which sensitivities it covers).
  void set_referral_sensitivity(double sensitivity);

  // Classifies one pre-processed input. Throws image_error when its shape is
  // not model().input (height x width, height * width pixels), before any
  // inference: "<backend>: input is 5x4 (20 pixels); model <name> takes 255x255".
  Prediction classify(const Tensor8& input);
  // The same predictions as classify() on each input, in order. Every input is
  // checked first: one bad input throws (the message names its index) and
  // nothing runs. An empty batch returns no prediction. Backends that gain from
  // batching (fpga) run the inputs together.
  std::vector<Prediction> classify_batch(const std::vector<Tensor8>& inputs);

  // Convenience: decode + pre-process, then classify.
  Prediction classify_file(const std::filesystem::path& image);
  Prediction classify_pixels(const ImageView& image);

 protected:
  // The backend's one job: run the network on `inputs` (at least one, each
  // already checked against model().input) and fill outputs[i] for inputs[i].
  // Throws busi::error (device_error for a device fault) when it cannot.
  virtual void infer(std::span<const Tensor8> inputs, std::span<RawOutput> outputs) = 0;

 private:
  std::optional<OperatingPoint> referral_;  // set by set_referral_sensitivity
};

// The backends compiled into this build, in the order of the table.
std::vector<std::string> available_backends();

// Makes a classifier. Throws busi::error for an unknown backend name, listing
// the known ones: "unknown backend 'fgpa'; available: cpu_int, cpu_ref, fpga",
// and for a setting the backend does not take; model_error when the model is
// not of the kind the backend runs.
std::unique_ptr<Classifier> make_classifier(const std::string& backend,
                                            const ClassifierOptions& options = {});

// The model kind a backend runs (quantized for cpu_int and fpga, float for cpu_ref).
ModelKind backend_model_kind(const std::string& backend);

}  // namespace busi
