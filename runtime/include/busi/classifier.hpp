#pragma once
// The one interface every backend implements: cpu_int (integer-exact, the
// reference), cpu_ref (oneDNN float baseline) and fpga (a FINN accelerator on a
// PYNQ-Z1, or the emulated board). Backend headers never appear here, so users
// of this header need neither OpenCV, oneDNN nor XRT.
//
// Thread safety: a Classifier instance keeps scratch buffers and is NOT safe to
// call from two threads at once; make one instance per thread (they may share a
// Model). Instances of the fpga backend share one device and serialize on it.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "busi/image.hpp"
#include "busi/model.hpp"

namespace busi {

struct Prediction {
  int class_index = -1;
  std::string class_name;
  // Softmax of the real-valued logits, one per class; empty when the backend
  // only reports the top-1 index (an FPGA overlay ending in TopK).
  std::vector<float> scores;
  // The raw int32 logits of integer backends; empty otherwise.
  std::vector<int32_t> logits;
};

// What a backend is built from. `settings` holds backend-specific options
// ("isa" for cpu_int, "overlay" and "device_root" for fpga, ...); each backend
// rejects settings it does not know.
struct ClassifierOptions {
  std::filesystem::path model_path;          // empty: default_model_path(kind the backend runs)
  std::shared_ptr<const Model> model;        // overrides model_path when set
  std::map<std::string, std::string> settings;
};

class Classifier {
 public:
  virtual ~Classifier() = default;

  virtual std::string backend() const = 0;
  // A one-line description of how it runs (ISA chosen, device, fclk, ...).
  virtual std::string describe() const = 0;
  virtual const Model& model() const = 0;

  // Classifies one pre-processed input of model().input size.
  virtual Prediction classify(const Tensor8& input) = 0;
  // Classifies a batch; backends that gain from batching (fpga) override it.
  virtual std::vector<Prediction> classify_batch(const std::vector<Tensor8>& inputs);

  // Convenience: decode + pre-process, then classify.
  Prediction classify_file(const std::filesystem::path& image);
  Prediction classify_pixels(const ImageView& image);

  // Shared helper for backends: fills class_name (and scores from logits).
  Prediction make_prediction(int class_index, std::vector<int32_t> logits = {},
                             std::vector<float> real_logits = {}) const;
};

// The backends compiled into this build, in the order of the table.
std::vector<std::string> available_backends();

// Makes a classifier. Throws busi::error for an unknown backend name, listing
// the known ones: "unknown backend 'fgpa'; available: cpu_int, cpu_ref, fpga".
std::unique_ptr<Classifier> make_classifier(const std::string& backend,
                                            const ClassifierOptions& options = {});

// Helpers for backend factories.
// The model a backend should run: options.model, else options.model_path, else
// default_model_path(kind). Throws model_error when its kind is not `kind`.
std::shared_ptr<const Model> resolve_model(const ClassifierOptions& options, ModelKind kind,
                                           const std::string& backend);
// Throws busi::error for a setting the backend does not know, listing the known ones.
void check_settings(const ClassifierOptions& options, const std::string& backend,
                    const std::vector<std::string>& known);

// The model kind a backend runs (quantized for cpu_int and fpga, float for cpu_ref).
ModelKind backend_model_kind(const std::string& backend);

}  // namespace busi
