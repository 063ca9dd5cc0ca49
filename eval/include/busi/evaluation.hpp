#pragma once
// The evaluation harness: a labelled image folder, pre-processed once, fed as the
// SAME Tensor8 inputs to every backend (and every model of the backend's kind),
// scored with busi/metrics.hpp, timed per image, with energy from a PowerMeter
// over each run's window. Reports carry the machine, backend, model (name and
// SHA-256 of its file) and the git commit, as JSON and CSV.
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "busi/classifier.hpp"
#include "busi/metrics.hpp"
#include "busi/power.hpp"

namespace busi {

// Pre-processed labelled images: labels from the enclosing folder names.
struct LabelledImages {
  std::vector<std::string> class_names;
  std::vector<std::filesystem::path> files;
  std::vector<int> labels;
  std::vector<Tensor8> inputs;
  // Images that could not be decoded, "<file>: <reason>": skipped, so one bad
  // file never costs the others' results.
  std::vector<std::string> unreadable;
};

// Collects images under `paths` (busi::collect_images), labels each from its
// folder (busi::label_from_path) and pre-processes it once to height x width.
// Throws busi::error naming a file that is under no class folder; an image
// that cannot be decoded is listed in `unreadable` and skipped (busi::error when
// none could be read).
LabelledImages load_labelled_images(const std::vector<std::filesystem::path>& paths,
                                    const std::vector<std::string>& class_names, int height, int width);

struct MachineInfo {
  std::string cpu;     // /proc/cpuinfo "model name" (or "Hardware"/"Processor" on ARM)
  unsigned cores = 0;  // std::thread::hardware_concurrency()
  std::string kernel;  // uname -sr -m
  std::string host;    // uname -n
};
MachineInfo describe_machine();

// The commit this binary was built from ("<sha>[-dirty]", or "unknown").
std::string build_commit();

// Lower-case hex SHA-256 of a file (what `sha256sum` prints). Throws busi::error.
std::string sha256_file(const std::filesystem::path& path);

// "w2a4" for a quantized model (weight bits / hidden activation bits; "w2-8a4"
// when layers differ), "fp32" for a float one.
std::string precision_label(const Model& model);

struct EvaluationOptions {
  std::vector<std::string> backends;
  // Models to run; each backend runs every one of its kind (quantized for
  // cpu_int/fpga, float for cpu_ref). A kind with none: default_model_path(kind).
  std::vector<std::filesystem::path> models;
  // Backend settings, as ClassifierOptions::settings ("fpga" -> {"overlay": ...}).
  std::map<std::string, std::map<std::string, std::string>> settings;
  // Power source spec per backend (power.hpp); backends not listed use `power`.
  std::string power = "auto";
  std::map<std::string, std::string> backend_power;
  PowerOptions power_options;
  int warmup = 1;  // untimed classifications of the first image before each run
  // Refer at this sensitivity, re-chosen from each model's stored referral
  // curve (Classifier::set_referral_sensitivity) instead of its threshold.
  std::optional<double> referral_sensitivity;
};

struct BackendRun {
  std::string backend, description;
  std::string model_name, model_path, model_sha256, precision;
  ConfusionMatrix confusion;
  std::vector<int> predictions;      // per image, in LabelledImages order
  std::vector<double> latencies_ms;  // per image, classify() wall time
  std::vector<std::vector<float>> scores;  // per image, Prediction::scores (empty for a top-1 backend)
  // Per image, whether the model was trained on it (Model::has_seen), and the
  // confusion of the images it was not; empty / absent when its package does not
  // record its training images.
  std::vector<bool> seen;
  std::optional<ConfusionMatrix> unseen;
  // Per image (docs/evaluation.md, schema 3): the referral verdict (verdict_name),
  // its reason, P(abnormal) (NaN when unavailable) and the malignancy flag; empty
  // when read from a report written before them.
  std::vector<std::string> verdicts, reasons;
  std::vector<double> p_abnormal;
  std::vector<bool> suspicious_malignancy;
  LatencySummary latency;
  double seconds = 0;     // the run's window (all images)
  double throughput = 0;  // images / seconds
  EnergyReading energy;
  double joules_per_image() const;  // NaN without an energy reading
  explicit BackendRun(std::vector<std::string> classes) : confusion(std::move(classes)) {}
};

struct EvaluationReport {
  MachineInfo machine;
  std::string commit;
  std::string started_utc;          // ISO 8601
  std::vector<std::string> inputs;  // the folders/files given
  std::size_t images = 0;
  // Per image (written with per-image results): file and true class index.
  std::vector<std::string> files;
  std::vector<int> labels;
  std::vector<std::string> unreadable;  // LabelledImages::unreadable: could not be decoded, skipped
  std::vector<BackendRun> runs;
};

// One (backend, model) pair to run.
struct PlannedRun {
  std::string backend;
  std::shared_ptr<const Model> model;
};

// The runs `options` asks for, models loaded (each file once), in backend order.
// Throws before any image is touched: unknown backend, missing or bad model.
std::vector<PlannedRun> plan_runs(const EvaluationOptions& options);

// Runs the planned pairs over the images, one at a time, in order. Throws
// busi::error when a model disagrees with the images' class names or input size.
EvaluationReport evaluate(const LabelledImages& images, const std::vector<PlannedRun>& runs,
                          const EvaluationOptions& options);
// plan_runs(options), then the above.
EvaluationReport evaluate(const LabelledImages& images, const EvaluationOptions& options);

// JSON: {"machine":{...},"commit":...,"runs":[{backend, model, precision,
// accuracy, recall:{class:...}, confusion:[[...]], sensitivity, specificity,
// latency_ms:{p50,p90,p99,mean,min,max}, throughput_ips, power:{source,
// estimate, watts, joules, joules_per_image, note}}]}. NaN prints as null.
std::string report_json(const EvaluationReport& report, bool per_image = false);
// CSV: a header row, then one row per run, flat (confusion as c_<true>_<pred>).
std::string report_csv(const EvaluationReport& report);
// Reads report_json's output back (for busi-dashboard). Throws busi::error.
EvaluationReport parse_report_json(const std::string& json, const std::string& origin);

}  // namespace busi
