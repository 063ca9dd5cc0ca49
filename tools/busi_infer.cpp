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

#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "busi/classifier.hpp"
#include "busi/error.hpp"
#include "busi/metrics.hpp"
#include "busi/pipeline.hpp"
#include "cli.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string backend = "cpu_int";
  std::string model;  // strings, not fs::path: program_options would split paths at spaces
  std::string format = "table";
  int threads = 1;
  int batch = 1;
  std::optional<std::string> verify;
  std::map<std::string, std::string> settings;
  bool progress = true;
  std::optional<double> referral_sensitivity;
  std::vector<std::string> inputs;
};

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
      ("referral-sensitivity", po::value<double>(),
       "refer at this sensitivity (e.g. 0.95), re-chosen from the model's stored referral curve "
       "instead of the package's threshold")
      ("verify", po::value<std::string>(),
       "also run every image on this backend (e.g. cpu_int) and report any disagreement")
      ("no-progress", "no progress bar (it is shown only when stderr is a terminal anyway)");
  po::variables_map vm;
  if (!busi::cli::parse_command_line(argc, argv, visible, o.inputs, vm,
                                     "\nExamples:\n"
                                     "  busi-infer ../shared/busi\n"
                                     "  busi-infer --backend fpga --overlay overlays/busi-w2a4 --verify cpu_int images/\n"
                                     "  busi-infer --format json --threads 2 scan.png > result.json\n"))
    return std::nullopt;
  if (vm.count("verify")) o.verify = vm["verify"].as<std::string>();
  if (vm.count("referral-sensitivity")) o.referral_sensitivity = vm["referral-sensitivity"].as<double>();
  o.progress = !vm.count("no-progress") && isatty(STDERR_FILENO);
  if (o.inputs.empty()) throw busi::cli::usage_error("no image or folder given (see --help)");
  if (o.format != "table" && o.format != "csv" && o.format != "json")
    throw busi::cli::usage_error("--format must be table, csv or json, not '" + o.format + "'");
  if (o.threads < 1 || o.threads > 256) throw busi::cli::usage_error("--threads must be between 1 and 256");
  if (o.batch < 1 || o.batch > 4096) throw busi::cli::usage_error("--batch must be between 1 and 4096");
  for (const auto& s : sets) {
    const auto [key, value] = busi::cli::key_value(s, "--set");
    o.settings[key] = value;
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

class Printer {
 public:
  Printer(const Options& o, const busi::Model& model) : o_(o), model_(model) {}

  void header() {
    if (o_.format != "csv") return;
    std::cout << "file,class";
    for (const auto& c : model_.class_names) std::cout << ",score_" << c;
    std::cout << ",verdict,p_abnormal,suspicious_malignancy,reason";
    if (o_.verify) std::cout << ",verify_class";
    if (model_.seen_images) std::cout << ",seen";
    std::cout << ",error\n";
  }

  void line(const busi::ImageResult& r) {
    if (o_.format == "json") return;  // printed whole at the end
    if (o_.format == "csv") {
      std::cout << busi::csv_field(r.file.string()) << "," << (r.prediction ? r.prediction->class_name : "");
      for (std::size_t c = 0; c < model_.num_classes(); ++c) {
        std::cout << ",";
        if (r.prediction && c < r.prediction->scores.size()) std::cout << r.prediction->scores[c];
      }
      // A file that could not be read is unreadable too, its error the reason.
      const busi::Verdict verdict = r.prediction ? r.prediction->verdict : busi::Verdict::unreadable;
      std::cout << "," << busi::verdict_name(verdict) << ",";
      if (r.prediction && !std::isnan(r.prediction->p_abnormal)) std::cout << r.prediction->p_abnormal;
      std::cout << "," << (r.prediction && r.prediction->suspicious_malignancy ? "true" : "false") << ","
                << busi::csv_field(r.prediction ? r.prediction->reason : r.error);
      if (o_.verify) std::cout << "," << (r.verify ? r.verify->class_name : "");
      if (model_.seen_images) std::cout << "," << (r.seen ? (*r.seen ? "yes" : "no") : "");
      std::cout << "," << busi::csv_field(r.error) << "\n";
      return;
    }
    std::cout << r.file.string() << "\t";
    if (!r.prediction) {
      std::cout << "ERROR\t" << r.error << "\n";
      return;
    }
    const busi::Prediction& p = *r.prediction;
    std::cout << std::left << std::setw(12) << busi::verdict_name(p.verdict) << std::setw(10)
              << p.class_name << std::right;
    for (std::size_t c = 0; c < p.scores.size(); ++c)
      std::cout << "  " << model_.class_names[c] << " " << std::fixed << std::setprecision(3) << p.scores[c];
    if (p.suspicious_malignancy) std::cout << "  SUSPICIOUS FOR MALIGNANCY";
    if (r.seen == true) std::cout << "  (trained on)";
    std::cout << "\t" << p.reason;
    if (r.verify && busi::disagrees(r)) std::cout << "\tDISAGREES: " << *o_.verify << " says " << r.verify->class_name;
    std::cout << "\n";
  }

 private:
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
  busi::InferReport report;
  report.backend = o.backend;
  report.verify_backend = o.verify;
  report.threads = o.threads;
  report.model = busi::load_model_for(o.backend, o.model);
  std::vector<std::unique_ptr<busi::Classifier>> workers, twins;
  for (int t = 0; t < o.threads; ++t) {
    workers.push_back(busi::make_classifier(o.backend, options_for(o.backend, o, report.model)));
    if (o.verify) twins.push_back(busi::make_classifier(*o.verify, options_for(*o.verify, o, report.model)));
  }
  report.description = workers.front()->describe();
  if (o.referral_sensitivity) try {
      for (auto* set : {&workers, &twins})
        for (auto& classifier : *set) classifier->set_referral_sensitivity(*o.referral_sensitivity);
    } catch (const busi::error& e) {
      throw busi::cli::usage_error(std::string("--referral-sensitivity: ") + e.what());
    }

  // Gather the images; a missing path or an empty folder is reported, not fatal.
  std::vector<fs::path> files;
  for (const auto& input : o.inputs) {
    try {
      const auto found = busi::collect_images(input);
      if (found.empty()) report.path_errors.push_back(input + ": no images found (folder is empty)");
      files.insert(files.end(), found.begin(), found.end());
    } catch (const busi::error& e) {
      report.path_errors.push_back(e.what());
    }
  }
  for (const auto& e : report.path_errors) std::cerr << "busi-infer: " << e << "\n";

  const busi::Model& model = *report.model;
  Printer printer(o, model);
  printer.header();
  Progress progress(o.progress, files.size());
  const auto start = std::chrono::steady_clock::now();
  auto seconds_since_start = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  busi::FileRunOptions run_options;
  run_options.batch = o.batch;
  run_options.on_result = [&](const busi::ImageResult& r) { printer.line(r); };
  run_options.on_progress = [&](std::size_t done) {
    std::cout.flush();
    progress.update(done, seconds_since_start());
  };
  std::vector<busi::Classifier*> classifiers, verifiers;
  for (auto& w : workers) classifiers.push_back(w.get());
  for (auto& w : twins) verifiers.push_back(w.get());
  report.images = busi::classify_files(files, classifiers, verifiers, run_options);
  report.seconds = seconds_since_start();
  report.peak_rss_mb = peak_rss_mb();
  report.anon_rss_mb_at_end = anon_rss_mb();

  const std::size_t classified = report.classified(), failed = report.images.size() - classified;
  const std::size_t disagreements = report.disagreements();
  if (o.format == "json") {
    std::cout << busi::infer_report_json(report);
  } else {
    // The table summary goes to stdout after the lines; for csv it goes to stderr
    // so stdout stays one clean table.
    std::ostream& out = o.format == "csv" ? std::cerr : std::cout;
    const double seconds = report.seconds;
    out << "\n" << classified << " of " << report.images.size() << " images classified";
    if (failed) out << ", " << failed << " failed";
    out << " in " << std::fixed << std::setprecision(2) << seconds << " s (" << std::setprecision(1)
        << classified / seconds << " images/s, " << o.threads << " thread" << (o.threads > 1 ? "s" : "")
        << "), peak memory " << report.peak_rss_mb << " MB\n"
        << report.description << "; model " << model.name << "\n";
    std::size_t verdicts[4] = {};
    for (const auto& r : report.images)
      ++verdicts[std::size_t(r.prediction ? r.prediction->verdict : busi::Verdict::unreadable)];
    out << "verdicts: " << verdicts[0] << " refer, " << verdicts[1] << " routine, " << verdicts[2] << " unreadable, "
        << verdicts[3] << " unavailable\n";
    if (o.verify)
      out << "verify against " << *o.verify << ": " << disagreements << " disagreement"
          << (disagreements == 1 ? "" : "s") << "\n";
    const busi::ConfusionMatrix confusion = report.confusion();
    if (confusion.total() > 0) {
      const auto binary = confusion.normal_vs_abnormal();
      out << busi::accuracy_summary(confusion, report.unseen_confusion()) << "all " << confusion.total()
          << " labelled by folder name, trained-on included:\n"
          << confusion.to_text() << "normal vs abnormal: sensitivity " << busi::percent_text(binary.sensitivity())
          << " (" << binary.true_positive << "/" << binary.true_positive + binary.false_negative << "), specificity "
          << busi::percent_text(binary.specificity()) << " (" << binary.true_negative << "/"
          << binary.true_negative + binary.false_positive << ")\n";
    }
    if (failed) {
      out << failed << " image" << (failed == 1 ? "" : "s") << " failed:\n";
      for (const auto& r : report.images)
        if (!r.prediction) out << "  " << r.error << "\n";
    }
  }
  if (failed || !report.path_errors.empty()) return busi::cli::exit_some_failed;
  if (disagreements) return busi::cli::exit_disagreement;
  return busi::cli::exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  return busi::cli::guarded_main("busi-infer", [&] {
    std::optional<Options> options = parse_command_line(argc, argv);
    return options ? run(*options) : int(busi::cli::exit_ok);
  });
}
