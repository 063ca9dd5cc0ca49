#pragma once
// The classification pipeline the tools share: files -> decode + pre-process ->
// classify (threads, batches, an optional second backend to verify against) ->
// per-image results in input order -> the result schema (docs/cli.md and
// docs/evaluation.md, "Result schema"). busi-infer is a thin front end over it;
// busi-eval (evaluation.hpp) scores and writes with the same metrics JSON.
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "busi/classifier.hpp"
#include "busi/metrics.hpp"

namespace busi {

// The version of every JSON document the tools write (busi-infer --format json,
// busi-eval --json). Raised on each incompatible change; docs/evaluation.md
// lists what each version changed.
inline constexpr int result_schema_version = 3;

// "73.1%", or "n/a" for NaN (a rate with an empty denominator).
std::string percent_text(double rate);
// "73.1% (57/78, 95% CI 62.3-81.8%)": a rate with its counts and Wilson interval.
std::string rate_text(std::size_t successes, std::size_t trials);

// The accuracy lines of a screen summary. Without `unseen` (the package does not
// say what the model was trained on) the figure is said to possibly include
// training images; with it, how many of the labelled images the model was trained
// on, then accuracy, sensitivity and specificity over the others, or that there
// are none:
//   accuracy 93.3% (655/702, ...) over 702 labelled images, 624 of which the model was trained on
//   on the 78 it never saw: accuracy 73.1% (57/78, 95% CI ...), sensitivity ..., specificity ...
std::string accuracy_summary(const ConfusionMatrix& labelled, const std::optional<ConfusionMatrix>& unseen);

// A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a newline.
std::string csv_field(const std::string& text);

// The model a run of `backend` uses: the package at `path`, else the default
// package of the kind the backend runs. Throws model_error when it cannot be
// read or is not of that kind.
std::shared_ptr<const Model> load_model_for(const std::string& backend, const std::filesystem::path& path);

// What happened to one image.
struct ImageResult {
  std::filesystem::path file;
  int label = -1;                         // true class from the folder name; -1 when none
  std::optional<Prediction> prediction;   // absent when the image failed
  std::optional<Prediction> verify;       // the verifying backend's answer, when there is one
  std::string error;                      // why it failed
  double latency_ms = 0;                  // decode + pre-process + inference, per image of its batch
  // Whether the model was trained on it (Model::has_seen); absent when the
  // image failed to decode or the package does not record its training images.
  std::optional<bool> seen;
};

// Whether the verifying backend disagrees: another class, another verdict when
// both can decide (neither is unavailable), or, when both are integer backends
// with logits, other logits.
bool disagrees(const ImageResult& result);

struct FileRunOptions {
  int batch = 1;  // images per classify_batch call
  // Called with each result in input order, as soon as it and every one before
  // it are done, then with the number of images done so far (one lock for both).
  std::function<void(const ImageResult&)> on_result;
  std::function<void(std::size_t done)> on_progress;
};

// Decodes, pre-processes and classifies `files` on one thread per classifier,
// labelling each from its class folder (label_from_path). `verifiers` is empty
// or holds one classifier per thread that classifies the same inputs. An image
// that cannot be read is recorded with its error and never costs the others; a
// failed batch records its error for each of its images.
std::vector<ImageResult> classify_files(const std::vector<std::filesystem::path>& files,
                                        const std::vector<Classifier*>& classifiers,
                                        const std::vector<Classifier*>& verifiers, const FileRunOptions& options);

// A busi-infer run: the classifier's description, the results, and the process
// figures, written by infer_report_json.
struct InferReport {
  std::string backend, description;
  std::shared_ptr<const Model> model;
  std::vector<ImageResult> images;
  std::vector<std::string> path_errors;  // paths that were missing or held no image
  std::optional<std::string> verify_backend;
  int threads = 1;
  double seconds = 0;
  double peak_rss_mb = 0, anon_rss_mb_at_end = 0;  // NaN when unknown

  std::size_t classified() const;
  std::size_t disagreements() const;
  // The labelled, classified images (rows true, columns predicted).
  ConfusionMatrix confusion() const;
  // The classified images the model was trained on, and the confusion of the
  // labelled ones it was not; both absent when its package does not record them.
  std::optional<std::size_t> seen() const;
  std::optional<ConfusionMatrix> unseen_confusion() const;
};

// {"schema_version": 2, "images": [...], "summary": {...}} (docs/cli.md); the
// summary's metrics are the same object busi-eval writes for each run.
std::string infer_report_json(const InferReport& report);

}  // namespace busi
