// busi-infer: classify breast ultrasound images with any backend.
//
//   busi-infer [--backend NAME] [--model PATH] [options] PATH...
//
// Files and folders (recursively) are classified one line per image; a summary
// follows. When images sit in folders named after the model's classes (as BUSI
// does) it also scores them. One bad image is reported and skipped: it never
// costs the results of the others.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "busi/classifier.hpp"
#include "busi/error.hpp"
#include "busi/metrics.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Exit codes (documented in --help and docs/cli.md).
enum Exit : int {
  kOk = 0,               // every image classified
  kSomeImagesFailed = 1, // at least one image could not be read; the others are reported
  kUsage = 2,            // bad command line
  kFatal = 3,            // no results at all: bad model, unknown backend, device failure
  kDisagreement = 4,     // --verify found an image the two backends classify differently
};

const char* kExitCodes =
    "Exit codes:\n"
    "  0  every image was classified\n"
    "  1  some images (or paths) could not be read; the others were classified and reported\n"
    "  2  bad command line\n"
    "  3  nothing could be classified: bad model, unknown backend, device failure\n"
    "  4  --verify: the two backends disagreed on at least one image\n";

struct Options {
  std::string backend = "cpu_int";
  std::string model;  // strings, not fs::path: program_options would split paths at spaces
  std::string format = "table";
  int threads = 1;
  int batch = 1;
  std::optional<std::string> verify;
  std::map<std::string, std::string> settings;
  bool progress = true;
  std::vector<std::string> inputs;
};

// What happened to one image.
struct Result {
  fs::path file;
  std::optional<busi::Prediction> prediction;
  std::string error;               // set when the image failed
  int label = -1;                  // true class from the folder name, -1 if none
  std::optional<busi::Prediction> verify;  // the --verify backend's answer
  double latency_ms = 0;           // decode + pre-process + inference
  bool done = false;
};

bool disagrees(const Result& r) {
  if (!r.prediction || !r.verify) return false;
  if (r.prediction->class_index != r.verify->class_index) return true;
  // Both integer backends with logits: they must agree exactly.
  return !r.prediction->logits.empty() && !r.verify->logits.empty() && r.prediction->logits != r.verify->logits;
}

std::optional<Options> parse_command_line(int argc, char** argv) {
  Options o;
  std::vector<std::string> sets;
  std::string overlay, device_root, isa;
  po::options_description visible(
      "Usage: busi-infer [options] PATH...\n\n"
      "Classifies breast ultrasound images (files, or folders searched recursively for\n"
      ".png .jpg .jpeg .bmp .tif .tiff .pgm .ppm .pnm .webp) as normal, benign or\n"
      "malignant. When images sit in folders named after the classes (BUSI's layout),\n"
      "it also reports accuracy, per-class recall, the confusion matrix and the\n"
      "normal-versus-abnormal sensitivity and specificity.\n\nOptions");
  visible.add_options()
      ("help,h", "show this help and exit")
      ("backend,b", po::value(&o.backend)->default_value(o.backend),
       ("backend to run; compiled in: " + [] {
          std::string s;
          for (const auto& n : busi::available_backends()) s += (s.empty() ? "" : ", ") + n;
          return s;
        }()).c_str())
      ("model,m", po::value(&o.model),
       "model package (.bqnn); default: the shipped W2A4 model (float model for cpu_ref)")
      ("format,f", po::value(&o.format)->default_value(o.format), "output: table, csv or json")
      ("threads,j", po::value(&o.threads)->default_value(o.threads),
       "worker threads, each with its own classifier (decode, pre-process and infer in parallel)")
      ("batch", po::value(&o.batch)->default_value(o.batch),
       "images per classify_batch call (the fpga backend sends a batch in one DMA transfer)")
      ("overlay", po::value(&overlay), "fpga: overlay folder (overlay.json, bitstream, .hwh)")
      ("device-root", po::value(&device_root),
       "fpga: prefix for /dev and /sys paths (an emulated board's root); default /")
      ("isa", po::value(&isa), "cpu_int: auto, scalar, avx2, avx512vnni or neon")
      ("set", po::value(&sets)->composing(), "backend setting KEY=VALUE (repeatable)")
      ("verify", po::value<std::string>(),
       "also run every image on this backend (e.g. cpu_int) and report any disagreement")
      ("no-progress", "no progress bar (it is shown only when stderr is a terminal anyway)");
  po::options_description hidden;
  hidden.add_options()("input", po::value(&o.inputs)->composing());
  po::options_description all;
  all.add(visible).add(hidden);
  po::positional_options_description positional;
  positional.add("input", -1);

  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
  if (vm.count("help")) {
    std::cout << visible << "\n" << kExitCodes
              << "\nExamples:\n"
                 "  busi-infer ../shared/busi\n"
                 "  busi-infer --backend fpga --overlay overlays/busi-w2a4 --verify cpu_int images/\n"
                 "  busi-infer --format json --threads 2 scan.png > result.json\n";
    return std::nullopt;
  }
  po::notify(vm);
  if (vm.count("verify")) o.verify = vm["verify"].as<std::string>();
  o.progress = !vm.count("no-progress") && isatty(STDERR_FILENO);
  if (o.inputs.empty()) throw po::error("no image or folder given (see --help)");
  if (o.format != "table" && o.format != "csv" && o.format != "json")
    throw po::error("--format must be table, csv or json, not '" + o.format + "'");
  if (o.threads < 1 || o.threads > 256) throw po::error("--threads must be between 1 and 256");
  if (o.batch < 1 || o.batch > 4096) throw po::error("--batch must be between 1 and 4096");
  for (const auto& s : sets) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) throw po::error("--set takes KEY=VALUE, not '" + s + "'");
    o.settings[s.substr(0, eq)] = s.substr(eq + 1);
  }
  if (!overlay.empty()) o.settings["overlay"] = overlay;
  if (!device_root.empty()) o.settings["device_root"] = device_root;
  if (!isa.empty()) o.settings["isa"] = isa;
  return o;
}

// Settings meant for one backend must not be handed to the --verify twin.
busi::ClassifierOptions options_for(const std::string& backend, const Options& o,
                                    std::shared_ptr<const busi::Model> model) {
  busi::ClassifierOptions options;
  if (busi::backend_model_kind(backend) == model->kind) options.model = std::move(model);
  if (backend == o.backend) options.settings = o.settings;
  return options;
}

std::string percent(double v) {
  if (std::isnan(v)) return "n/a";
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << 100 * v << "%";
  return s.str();
}

json rate(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

class Printer {
 public:
  Printer(const Options& o, const busi::Model& model) : o_(o), model_(model) {}

  void header() {
    if (o_.format != "csv") return;
    std::cout << "file,class";
    for (const auto& c : model_.class_names) std::cout << ",score_" << c;
    if (o_.verify) std::cout << ",verify_class";
    std::cout << ",error\n";
  }

  void line(const Result& r) {
    if (o_.format == "json") return;  // printed whole at the end
    if (o_.format == "csv") {
      std::cout << csv_quote(r.file.string()) << "," << (r.prediction ? r.prediction->class_name : "");
      for (std::size_t c = 0; c < model_.num_classes(); ++c) {
        std::cout << ",";
        if (r.prediction && c < r.prediction->scores.size()) std::cout << r.prediction->scores[c];
      }
      if (o_.verify) std::cout << "," << (r.verify ? r.verify->class_name : "");
      std::cout << "," << csv_quote(r.error) << "\n";
      return;
    }
    std::cout << r.file.string() << "\t";
    if (!r.prediction) {
      std::cout << "ERROR\t" << r.error << "\n";
      return;
    }
    std::cout << std::left << std::setw(10) << r.prediction->class_name << std::right;
    for (std::size_t c = 0; c < r.prediction->scores.size(); ++c)
      std::cout << "  " << model_.class_names[c] << " " << std::fixed << std::setprecision(3) << r.prediction->scores[c];
    if (r.verify && disagrees(r)) std::cout << "\tDISAGREES: " << *o_.verify << " says " << r.verify->class_name;
    std::cout << "\n";
  }

 private:
  static std::string csv_quote(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  }
  const Options& o_;
  const busi::Model& model_;
};

// A progress bar on stderr, redrawn at most 10 times a second.
class Progress {
 public:
  Progress(bool enabled, std::size_t total) : enabled_(enabled), total_(total) {}
  void update(std::size_t done, double seconds) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (done != total_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const int width = 30, filled = total_ ? int(width * done / total_) : width;
    std::fprintf(stderr, "\r[%s%s] %zu/%zu  %.0f img/s ", std::string(filled, '=').c_str(),
                 std::string(width - filled, ' ').c_str(), done, total_, seconds > 0 ? done / seconds : 0.0);
    if (done == total_) std::fprintf(stderr, "\r%*s\r", width + 40, "");
  }

 private:
  bool enabled_;
  std::size_t total_;
  std::chrono::steady_clock::time_point last_{};
};

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // Linux reports kilobytes
}

// Resident anonymous memory now (heap, stacks, buffers): what the process itself
// allocated, without the shared libraries it maps (Debian's OpenCV alone pulls
// in ~45 MB of them: GDAL, GDCM, poppler...). NaN where /proc is unavailable.
double anon_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string key;
  double kb;
  while (status >> key)
    if (key == "RssAnon:" && status >> kb) return kb / 1024.0;
  return std::nan("");
}

int run(const Options& o) {
  // The model and one classifier per thread are made before any image is read,
  // so a bad model or a missing device fails at once with no partial output.
  const busi::ModelKind kind = busi::backend_model_kind(o.backend);
  auto model = std::make_shared<const busi::Model>(
      busi::Model::load(o.model.empty() ? busi::default_model_path(kind) : fs::path(o.model)));
  std::vector<std::unique_ptr<busi::Classifier>> workers, twins;
  for (int t = 0; t < o.threads; ++t) {
    workers.push_back(busi::make_classifier(o.backend, options_for(o.backend, o, model)));
    if (o.verify) twins.push_back(busi::make_classifier(*o.verify, options_for(*o.verify, o, model)));
  }

  // Gather the images; a missing path or an empty folder is reported, not fatal.
  std::vector<Result> results;
  std::vector<std::string> path_errors;
  for (const auto& input : o.inputs) {
    try {
      const auto files = busi::collect_images(input);
      if (files.empty()) path_errors.push_back(input + ": no images found (folder is empty)");
      for (const auto& f : files) results.push_back({f});
    } catch (const busi::error& e) {
      path_errors.push_back(e.what());
    }
  }
  for (const auto& e : path_errors) std::cerr << "busi-infer: " << e << "\n";
  for (auto& r : results) r.label = busi::label_from_path(r.file, model->class_names);

  Printer printer(o, *model);
  printer.header();
  Progress progress(o.progress, results.size());
  std::mutex mutex;
  std::size_t next_to_print = 0, finished = 0;
  std::atomic<std::size_t> next_batch{0};
  const auto start = std::chrono::steady_clock::now();
  auto seconds_since_start = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  auto worker = [&](int t) {
    busi::Classifier& classifier = *workers[t];
    const int h = model->input.height, w = model->input.width;
    for (;;) {
      const std::size_t first = next_batch.fetch_add(o.batch);
      if (first >= results.size()) break;
      const std::size_t last = std::min(results.size(), first + o.batch);
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<busi::Tensor8> inputs;
      std::vector<std::size_t> index;
      for (std::size_t i = first; i < last; ++i) {
        try {
          inputs.push_back(busi::load_image(results[i].file, h, w));
          index.push_back(i);
        } catch (const std::exception& e) {
          results[i].error = e.what();
        }
      }
      if (!inputs.empty()) {
        try {
          auto predictions = classifier.classify_batch(inputs);
          std::optional<std::vector<busi::Prediction>> checks;
          if (o.verify) checks = twins[t]->classify_batch(inputs);
          for (std::size_t k = 0; k < index.size(); ++k) {
            results[index[k]].prediction = std::move(predictions[k]);
            if (checks) results[index[k]].verify = std::move((*checks)[k]);
          }
        } catch (const std::exception& e) {
          for (auto i : index) results[i].error = e.what();
        }
      }
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      std::lock_guard lock(mutex);
      for (std::size_t i = first; i < last; ++i) {
        results[i].latency_ms = ms / double(last - first);
        results[i].done = true;
      }
      finished += last - first;
      // Print in input order as soon as the next results are complete.
      while (next_to_print < results.size() && results[next_to_print].done) printer.line(results[next_to_print++]);
      std::cout.flush();
      progress.update(finished, seconds_since_start());
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < o.threads; ++t) threads.emplace_back(worker, t);
  worker(0);
  for (auto& th : threads) th.join();
  const double seconds = seconds_since_start();

  // Summary.
  busi::ConfusionMatrix confusion(model->class_names);
  std::size_t failed = 0, labelled = 0, disagreements = 0;
  std::vector<double> latencies;
  for (const auto& r : results) {
    if (!r.prediction) {
      ++failed;
      continue;
    }
    latencies.push_back(r.latency_ms);
    if (disagrees(r)) ++disagreements;
    if (r.label >= 0) {
      confusion.add(r.label, r.prediction->class_index);
      ++labelled;
    }
  }
  const std::size_t classified = results.size() - failed;
  const std::string describe = workers.front()->describe();

  if (o.format == "json") {
    json images = json::array();
    for (const auto& r : results) {
      json j = {{"file", r.file.string()}};
      if (r.prediction) {
        j["class"] = r.prediction->class_name;
        j["class_index"] = r.prediction->class_index;
        if (!r.prediction->scores.empty()) j["scores"] = r.prediction->scores;
        if (!r.prediction->logits.empty()) j["logits"] = r.prediction->logits;
        if (r.verify) j["verify"] = {{"class", r.verify->class_name}, {"agrees", !disagrees(r)}};
      } else {
        j["error"] = r.error;
      }
      if (r.label >= 0) j["label"] = model->class_names[r.label];
      images.push_back(std::move(j));
    }
    json summary = {{"backend", o.backend},        {"describe", describe},
                    {"model", model->name},        {"model_path", model->source.string()},
                    {"images", results.size()},    {"classified", classified},
                    {"failed", failed},            {"path_errors", path_errors},
                    {"seconds", seconds},          {"images_per_second", classified / seconds},
                    {"threads", o.threads},        {"peak_rss_mb", peak_rss_mb()},
                    {"anon_rss_mb_at_end", rate(anon_rss_mb())}};
    if (o.verify) summary["verify"] = {{"backend", *o.verify}, {"disagreements", disagreements}};
    if (labelled) {
      const auto binary = confusion.normal_vs_abnormal();
      json matrix = json::array();
      for (std::size_t t = 0; t < model->num_classes(); ++t) {
        json row = json::array();
        for (std::size_t p = 0; p < model->num_classes(); ++p) row.push_back(confusion.count(int(t), int(p)));
        matrix.push_back(row);
      }
      json recall;
      for (std::size_t c = 0; c < model->num_classes(); ++c) recall[model->class_names[c]] = rate(confusion.recall(int(c)));
      summary["labelled"] = labelled;
      summary["accuracy"] = rate(confusion.accuracy());
      summary["recall"] = recall;
      summary["confusion"] = {{"classes", model->class_names}, {"rows_true_columns_predicted", matrix}};
      summary["normal_vs_abnormal"] = {{"sensitivity", rate(binary.sensitivity())},
                                       {"specificity", rate(binary.specificity())}};
    }
    std::cout << json{{"images", images}, {"summary", summary}}.dump(2) << "\n";
  } else {
    // The table summary goes to stdout after the lines; for csv it goes to stderr
    // so stdout stays one clean table.
    std::ostream& out = o.format == "csv" ? std::cerr : std::cout;
    out << "\n" << classified << " of " << results.size() << " images classified";
    if (failed) out << ", " << failed << " failed";
    out << " in " << std::fixed << std::setprecision(2) << seconds << " s (" << std::setprecision(1)
        << classified / seconds << " images/s, " << o.threads << " thread" << (o.threads > 1 ? "s" : "")
        << "), peak memory " << peak_rss_mb() << " MB\n"
        << describe << "; model " << model->name << "\n";
    if (o.verify)
      out << "verify against " << *o.verify << ": " << disagreements << " disagreement"
          << (disagreements == 1 ? "" : "s") << "\n";
    if (labelled) {
      const auto binary = confusion.normal_vs_abnormal();
      out << "accuracy " << percent(confusion.accuracy()) << " (" << confusion.correct() << "/" << labelled
          << " labelled by folder name)\n"
          << confusion.to_text() << "normal vs abnormal: sensitivity " << percent(binary.sensitivity()) << " ("
          << binary.true_positive << "/" << binary.true_positive + binary.false_negative << "), specificity "
          << percent(binary.specificity()) << " (" << binary.true_negative << "/"
          << binary.true_negative + binary.false_positive << ")\n";
    }
    if (failed) {
      out << failed << " image" << (failed == 1 ? "" : "s") << " failed:\n";
      for (const auto& r : results)
        if (!r.prediction) out << "  " << r.error << "\n";
    }
  }
  if (failed || !path_errors.empty()) return kSomeImagesFailed;
  if (disagreements) return kDisagreement;
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<Options> options;
  try {
    options = parse_command_line(argc, argv);
    if (!options) return kOk;
  } catch (const std::exception& e) {
    std::cerr << "busi-infer: error: " << e.what() << "\n";
    return kUsage;
  }
  try {
    return run(*options);
  } catch (const std::exception& e) {
    std::cerr << "busi-infer: error: " << e.what() << "\n";
    return kFatal;
  }
}
