#include "busi/evaluation.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "busi/error.hpp"
#include "busi/pipeline.hpp"
#include "busi_build_commit.hpp"  // generated: BUSI_BUILD_COMMIT
#include "report_json.hpp"

namespace busi {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

// ---- SHA-256 (FIPS 180-4), so reports identify a model file as sha256sum does.

class Sha256 {
 public:
  void update(const uint8_t* data, std::size_t size) {
    length_ += size;
    while (size > 0) {
      const std::size_t take = std::min(size, block_.size() - used_);
      std::memcpy(block_.data() + used_, data, take);
      used_ += take;
      data += take;
      size -= take;
      if (used_ == block_.size()) compress();
    }
  }
  std::string hex() {
    const uint64_t bits = length_ * 8;
    const uint8_t one = 0x80, zero = 0;
    update(&one, 1);
    while (used_ != 56) update(&zero, 1);
    for (int i = 7; i >= 0; --i) {
      const uint8_t b = uint8_t(bits >> (8 * i));
      update(&b, 1);
    }
    std::ostringstream out;
    for (uint32_t word : state_) out << std::hex << std::setw(8) << std::setfill('0') << word;
    return out.str();
  }

 private:
  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
  void compress() {
    static constexpr uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = uint32_t(block_[4 * i]) << 24 | uint32_t(block_[4 * i + 1]) << 16 | uint32_t(block_[4 * i + 2]) << 8 |
             uint32_t(block_[4 * i + 3]);
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    auto v = state_;
    for (int i = 0; i < 64; ++i) {
      const uint32_t s1 = rotr(v[4], 6) ^ rotr(v[4], 11) ^ rotr(v[4], 25);
      const uint32_t ch = (v[4] & v[5]) ^ (~v[4] & v[6]);
      const uint32_t t1 = v[7] + s1 + ch + k[i] + w[i];
      const uint32_t s0 = rotr(v[0], 2) ^ rotr(v[0], 13) ^ rotr(v[0], 22);
      const uint32_t maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
      v = {t1 + s0 + maj, v[0], v[1], v[2], v[3] + t1, v[4], v[5], v[6]};
    }
    for (int i = 0; i < 8; ++i) state_[i] += v[i];
    used_ = 0;
  }

  std::array<uint32_t, 8> state_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<uint8_t, 64> block_{};
  std::size_t used_ = 0;
  uint64_t length_ = 0;
};

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

using report::number;

std::string csv_number(double v) {
  if (std::isnan(v)) return "";
  std::ostringstream s;
  s << std::setprecision(8) << v;
  return s.str();
}

// Adds the counts of a [true][predicted] matrix read from a report.
void add_counts(ConfusionMatrix& cm, const json& matrix) {
  for (std::size_t t = 0; t < matrix.size(); ++t)
    for (std::size_t p = 0; p < matrix.at(t).size(); ++p)
      for (std::size_t k = matrix[t][p].get<std::size_t>(); k > 0; --k) cm.add(int(t), int(p));
}

}  // namespace

std::string sha256_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error("sha256: cannot open " + path.string());
  Sha256 sha;
  std::vector<char> buffer(1 << 16);
  while (in) {
    in.read(buffer.data(), std::streamsize(buffer.size()));
    sha.update(reinterpret_cast<const uint8_t*>(buffer.data()), std::size_t(in.gcount()));
  }
  if (in.bad()) throw error("sha256: read error on " + path.string());
  return sha.hex();
}

std::string build_commit() { return BUSI_BUILD_COMMIT; }

MachineInfo describe_machine() {
  MachineInfo info;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  // x86 and ARMv7 kernels say "model name"; older ARM kernels "Processor" or "Hardware".
  for (const char* key : {"model name", "Hardware", "Processor"}) {
    cpuinfo.clear();
    cpuinfo.seekg(0);
    while (info.cpu.empty() && std::getline(cpuinfo, line))
      if (line.rfind(key, 0) == 0 && line.find(':') != std::string::npos) {
        info.cpu = line.substr(line.find(':') + 1);
        info.cpu.erase(0, info.cpu.find_first_not_of(" \t"));
      }
    if (!info.cpu.empty()) break;
  }
  if (info.cpu.empty()) info.cpu = "unknown";
  info.cores = std::thread::hardware_concurrency();
  utsname u{};
  if (uname(&u) == 0) {
    info.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
    info.host = u.nodename;
  }
  return info;
}

std::string precision_label(const Model& model) {
  if (model.kind == ModelKind::floating) return "fp32";
  std::set<int> weights, acts;
  for (const auto& layer : model.layers) {
    if (layer.type == LayerType::maxpool) continue;
    weights.insert(layer.weight_bits);
    if (layer.act_bits) acts.insert(layer.act_bits);
  }
  const auto range = [](const std::set<int>& bits) {
    if (bits.empty()) return std::string("?");
    return bits.size() == 1 ? std::to_string(*bits.begin())
                            : std::to_string(*bits.begin()) + "-" + std::to_string(*bits.rbegin());
  };
  return "w" + range(weights) + "a" + range(acts);
}

LabelledImages load_labelled_images(const std::vector<fs::path>& paths, const std::vector<std::string>& class_names,
                                    int height, int width) {
  LabelledImages out;
  out.class_names = class_names;
  std::vector<fs::path> files;
  for (const auto& path : paths) {
    const auto found = collect_images(path);
    files.insert(files.end(), found.begin(), found.end());
  }
  for (const auto& file : files) {
    const int label = label_from_path(file, class_names);
    if (label < 0) {
      std::string names;
      for (const auto& c : class_names) names += (names.empty() ? "" : ", ") + c;
      throw error(file.string() + ": not inside a folder named after a class (" + names + ")");
    }
    try {
      out.inputs.push_back(load_image(file, height, width));
    } catch (const image_error& e) {
      out.unreadable.push_back(e.what());
      continue;
    }
    out.files.push_back(file);
    out.labels.push_back(label);
  }
  if (out.files.empty() && !out.unreadable.empty())
    throw error("none of the " + std::to_string(out.unreadable.size()) + " images could be read, e.g. " +
                out.unreadable.front());
  if (out.files.empty()) throw error("no images found under the given paths");
  return out;
}

double BackendRun::joules_per_image() const {
  const std::size_t n = confusion.total();
  return n == 0 || !energy.available() ? not_a_number : energy.joules / double(n);
}

std::vector<PlannedRun> plan_runs(const EvaluationOptions& options) {
  std::vector<std::shared_ptr<const Model>> given;
  for (const auto& path : options.models) given.push_back(std::make_shared<const Model>(Model::load(path)));
  std::map<ModelKind, std::shared_ptr<const Model>> defaults;
  std::vector<PlannedRun> plan;
  for (const auto& backend : options.backends) {
    const ModelKind kind = backend_model_kind(backend);
    std::size_t planned = plan.size();
    for (const auto& m : given)
      if (m->kind == kind) plan.push_back({backend, m});
    if (plan.size() == planned) {
      auto& fallback = defaults[kind];
      if (!fallback) fallback = std::make_shared<const Model>(Model::load(default_model_path(kind)));
      plan.push_back({backend, fallback});
    }
  }
  return plan;
}

EvaluationReport evaluate(const LabelledImages& images, const EvaluationOptions& options) {
  return evaluate(images, plan_runs(options), options);
}

EvaluationReport evaluate(const LabelledImages& images, const std::vector<PlannedRun>& plan,
                          const EvaluationOptions& options) {
  using clock = std::chrono::steady_clock;
  EvaluationReport report;
  report.machine = describe_machine();
  report.commit = build_commit();
  report.started_utc = utc_now();
  report.images = images.inputs.size();
  report.unreadable = images.unreadable;
  if (images.inputs.empty()) throw error("evaluate: no images");
  for (const auto& f : images.files) report.files.push_back(f.string());
  report.labels = images.labels;

  for (const auto& [backend, model] : plan) {
    const std::string what = backend + " with " + model->source.string();
    if (model->class_names != images.class_names)
      throw error(what + ": the model's classes differ from the labelled images' classes");
    if (model->input.height != images.inputs[0].height || model->input.width != images.inputs[0].width)
      throw error(what + ": model input " + std::to_string(model->input.height) + "x" +
                  std::to_string(model->input.width) + " differs from the pre-processed images");
    ClassifierOptions copts;
    copts.model = model;
    if (const auto it = options.settings.find(backend); it != options.settings.end()) copts.settings = it->second;
    auto classifier = make_classifier(backend, copts);
    if (options.referral_sensitivity) classifier->set_referral_sensitivity(*options.referral_sensitivity);

    const auto spec_it = options.backend_power.find(backend);
    auto meter = make_power_meter(spec_it == options.backend_power.end() ? options.power : spec_it->second,
                                  options.power_options);

    BackendRun run(images.class_names);
    run.backend = backend;
    run.description = classifier->describe();
    run.model_name = model->name;
    run.model_path = model->source.string();
    run.model_sha256 = model->source.empty() ? "" : sha256_file(model->source);
    run.precision = precision_label(*model);
    for (int i = 0; i < options.warmup; ++i) classifier->classify(images.inputs[0]);

    run.latencies_ms.reserve(images.inputs.size());
    meter->start();
    const auto begin = clock::now();
    for (std::size_t i = 0; i < images.inputs.size(); ++i) {
      const auto t0 = clock::now();
      const Prediction p = classifier->classify(images.inputs[i]);
      run.latencies_ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
      run.predictions.push_back(p.class_index);
      run.scores.push_back(p.scores);
      run.verdicts.push_back(verdict_name(p.verdict));
      run.reasons.push_back(p.reason);
      run.p_abnormal.push_back(p.p_abnormal);
      run.suspicious_malignancy.push_back(p.suspicious_malignancy);
    }
    run.seconds = std::chrono::duration<double>(clock::now() - begin).count();
    run.energy = meter->stop();
    for (std::size_t i = 0; i < images.inputs.size(); ++i) run.confusion.add(images.labels[i], run.predictions[i]);
    if (model->seen_images) {
      run.unseen.emplace(images.class_names);
      for (std::size_t i = 0; i < images.inputs.size(); ++i) {
        run.seen.push_back(model->has_seen(images.inputs[i]));
        if (!run.seen.back()) run.unseen->add(images.labels[i], run.predictions[i]);
      }
    }
    run.latency = summarize_latencies(run.latencies_ms);
    run.throughput = run.seconds > 0 ? double(images.inputs.size()) / run.seconds : not_a_number;
    report.runs.push_back(std::move(run));
  }
  return report;
}

std::string report_json(const EvaluationReport& report, bool per_image) {
  json j;
  j["schema_version"] = result_schema_version;
  j["tool"] = "busi-eval";
  j["commit"] = report.commit;
  j["started_utc"] = report.started_utc;
  j["machine"] = {{"cpu", report.machine.cpu},
                  {"cores", report.machine.cores},
                  {"kernel", report.machine.kernel},
                  {"host", report.machine.host}};
  j["inputs"] = report.inputs;
  j["images"] = report.images;
  j["unreadable"] = report.unreadable;
  if (per_image) {
    j["files"] = report.files;
    j["labels"] = report.labels;
  }
  j["runs"] = json::array();
  for (const auto& run : report.runs) {
    const auto& cm = run.confusion;
    json r;
    r["backend"] = run.backend;
    r["description"] = run.description;
    r["model"] = {{"name", run.model_name}, {"path", run.model_path}, {"sha256", run.model_sha256}};
    r["precision"] = run.precision;
    r["classes"] = cm.class_names();
    r["images"] = cm.total();
    report::add_metrics(r, cm);
    report::add_seen(r, run.unseen ? std::optional(std::size_t(std::count(run.seen.begin(), run.seen.end(), true)))
                                   : std::nullopt,
                     run.unseen);
    r["latency_ms"] = {{"p50", run.latency.p50_ms},   {"p90", run.latency.p90_ms}, {"p99", run.latency.p99_ms},
                       {"mean", run.latency.mean_ms}, {"min", run.latency.min_ms}, {"max", run.latency.max_ms}};
    r["seconds"] = run.seconds;
    r["throughput_ips"] = number(run.throughput);
    r["power"] = {{"source", run.energy.source},
                  {"estimate", run.energy.estimate},
                  {"watts", number(run.energy.watts)},
                  {"joules", number(run.energy.joules)},
                  {"joules_per_image", number(run.joules_per_image())},
                  {"note", run.energy.note}};
    json verdicts = {{"refer", 0}, {"routine", 0}, {"unreadable", 0}, {"unavailable", 0}};
    for (const auto& v : run.verdicts) verdicts[v] = verdicts[v].get<int>() + 1;
    if (!run.verdicts.empty()) r["verdicts"] = verdicts;
    if (per_image) {
      r["predictions"] = run.predictions;
      r["latencies_ms"] = run.latencies_ms;
      r["scores"] = run.scores;
      if (run.unseen) r["seen"] = run.seen;
      r["verdict"] = run.verdicts;
      r["reason"] = run.reasons;
      json p_abnormal = json::array();
      for (double p : run.p_abnormal) p_abnormal.push_back(number(p));
      r["p_abnormal"] = p_abnormal;
      r["suspicious_malignancy"] = run.suspicious_malignancy;
    }
    j["runs"].push_back(r);
  }
  return j.dump(2) + "\n";
}

std::string report_csv(const EvaluationReport& report) {
  std::ostringstream out;
  const std::vector<std::string> classes =
      report.runs.empty() ? std::vector<std::string>{} : report.runs.front().confusion.class_names();
  out << "backend,precision,model,model_sha256,commit,machine,cores,images,accuracy";
  for (const auto& c : classes) out << ",recall_" << c;
  out << ",sensitivity,specificity,latency_p50_ms,latency_p90_ms,latency_p99_ms,latency_mean_ms,throughput_ips,"
         "power_source,power_estimate,watts,joules,joules_per_image";
  for (const auto& t : classes)
    for (const auto& p : classes) out << ",c_" << t << "_" << p;
  out << ",seen_images,unseen_labelled,unseen_accuracy,unseen_sensitivity,unseen_specificity\n";
  for (const auto& run : report.runs) {
    const auto& cm = run.confusion;
    const auto rates = cm.normal_vs_abnormal();
    out << csv_field(run.backend) << ',' << run.precision << ',' << csv_field(run.model_name) << ',' << run.model_sha256
        << ',' << report.commit << ',' << csv_field(report.machine.cpu) << ',' << report.machine.cores << ','
        << cm.total() << ',' << csv_number(cm.accuracy());
    for (std::size_t c = 0; c < cm.num_classes(); ++c) out << ',' << csv_number(cm.recall(int(c)));
    out << ',' << csv_number(rates.sensitivity()) << ',' << csv_number(rates.specificity()) << ','
        << csv_number(run.latency.p50_ms) << ',' << csv_number(run.latency.p90_ms) << ','
        << csv_number(run.latency.p99_ms) << ',' << csv_number(run.latency.mean_ms) << ',' << csv_number(run.throughput)
        << ',' << csv_field(run.energy.source) << ',' << (run.energy.estimate ? "yes" : "no") << ','
        << csv_number(run.energy.watts) << ',' << csv_number(run.energy.joules) << ','
        << csv_number(run.joules_per_image());
    for (std::size_t t = 0; t < cm.num_classes(); ++t)
      for (std::size_t p = 0; p < cm.num_classes(); ++p) out << ',' << cm.count(int(t), int(p));
    if (run.unseen) {
      const auto unseen = run.unseen->normal_vs_abnormal();
      out << ',' << std::count(run.seen.begin(), run.seen.end(), true) << ',' << run.unseen->total() << ','
          << csv_number(run.unseen->accuracy()) << ',' << csv_number(unseen.sensitivity()) << ','
          << csv_number(unseen.specificity());
    } else {
      out << ",,,,,";
    }
    out << "\n";
  }
  return out.str();
}

EvaluationReport parse_report_json(const std::string& text, const std::string& origin) {
  try {
    const json j = json::parse(text);
    const int version = j.value("schema_version", 1);
    if (version > result_schema_version)
      throw error(origin + ": report schema version " + std::to_string(version) + " is newer than this build reads (" +
                  std::to_string(result_schema_version) + ")");
    EvaluationReport report;
    report.commit = j.value("commit", "");
    report.started_utc = j.value("started_utc", "");
    const json& m = j.at("machine");
    report.machine = {m.value("cpu", ""), m.value("cores", 0u), m.value("kernel", ""), m.value("host", "")};
    report.inputs = j.value("inputs", std::vector<std::string>{});
    report.images = j.value("images", std::size_t(0));
    report.files = j.value("files", std::vector<std::string>{});
    report.labels = j.value("labels", std::vector<int>{});
    report.unreadable = j.value("unreadable", std::vector<std::string>{});
    for (const json& r : j.at("runs")) {
      BackendRun run(r.at("classes").get<std::vector<std::string>>());
      run.backend = r.at("backend");
      run.description = r.value("description", "");
      run.model_name = r.at("model").value("name", "");
      run.model_path = r.at("model").value("path", "");
      run.model_sha256 = r.at("model").value("sha256", "");
      run.precision = r.value("precision", "");
      // Version 1 wrote the bare matrix; version 2 the confusion object.
      const json& confusion = r.at("confusion");
      const json& matrix = confusion.is_object() ? confusion.at("rows_true_columns_predicted") : confusion;
      add_counts(run.confusion, matrix);
      const json& lat = r.at("latency_ms");
      run.latency.count = run.confusion.total();
      run.latency.p50_ms = lat.at("p50");
      run.latency.p90_ms = lat.at("p90");
      run.latency.p99_ms = lat.at("p99");
      run.latency.mean_ms = lat.at("mean");
      run.latency.min_ms = lat.at("min");
      run.latency.max_ms = lat.at("max");
      run.seconds = r.value("seconds", 0.0);
      run.throughput = number(r.at("throughput_ips"));
      const json& power = r.at("power");
      run.energy.source = power.value("source", "n/a");
      run.energy.estimate = power.value("estimate", false);
      run.energy.watts = number(power.at("watts"));
      run.energy.joules = number(power.at("joules"));
      run.energy.note = power.value("note", "");
      run.energy.seconds = run.seconds;
      if (r.contains("predictions")) run.predictions = r["predictions"].get<std::vector<int>>();
      if (r.contains("latencies_ms")) run.latencies_ms = r["latencies_ms"].get<std::vector<double>>();
      if (r.contains("scores")) run.scores = r["scores"].get<std::vector<std::vector<float>>>();
      if (r.contains("seen")) run.seen = r["seen"].get<std::vector<bool>>();
      if (r.contains("unseen")) {
        run.unseen.emplace(run.confusion.class_names());
        add_counts(*run.unseen, r["unseen"].at("confusion").at("rows_true_columns_predicted"));
      }
      // Schema 3 (the referral): per-image verdicts and P(abnormal), null when unavailable.
      if (r.contains("verdict")) run.verdicts = r["verdict"].get<std::vector<std::string>>();
      if (r.contains("p_abnormal"))
        for (const json& v : r["p_abnormal"]) run.p_abnormal.push_back(number(v));
      report.runs.push_back(std::move(run));
    }
    return report;
  } catch (const json::exception& e) {
    throw error(origin + ": not a busi-eval report: " + e.what());
  }
}

}  // namespace busi
