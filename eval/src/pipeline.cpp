#include "busi/pipeline.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iomanip>
#include <mutex>
#include <sstream>
#include <thread>

#include "busi/backend.hpp"
#include "busi/error.hpp"
#include "report_json.hpp"

namespace busi {

std::string percent_text(double rate) {
  if (std::isnan(rate)) return "n/a";
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << 100 * rate << "%";
  return s.str();
}

std::string rate_text(std::size_t successes, std::size_t trials) {
  if (trials == 0) return "n/a (no image)";
  const Interval ci = wilson_interval(successes, trials);
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << percent_text(double(successes) / double(trials)) << " (" << successes
    << "/" << trials << ", 95% CI " << 100 * ci.low << "-" << 100 * ci.high << "%)";
  return s.str();
}

std::string accuracy_summary(const ConfusionMatrix& labelled, const std::optional<ConfusionMatrix>& unseen) {
  std::ostringstream s;
  s << "accuracy " << rate_text(labelled.correct(), labelled.total()) << " over " << labelled.total()
    << " labelled images";
  if (!unseen) {
    s << "; the model package does not record which images it was trained on, so these may include them\n";
    return s.str();
  }
  const std::size_t seen = labelled.total() - unseen->total();
  s << ", " << seen << " of which the model was trained on\n";
  if (unseen->total() == 0) {
    s << "it was trained on every one of them: these figures say nothing about images it has not seen\n";
    return s.str();
  }
  const auto rates = unseen->normal_vs_abnormal();
  s << "on the " << unseen->total() << " it never saw: accuracy " << rate_text(unseen->correct(), unseen->total())
    << ", sensitivity " << rate_text(rates.true_positive, rates.true_positive + rates.false_negative)
    << ", specificity " << rate_text(rates.true_negative, rates.true_negative + rates.false_positive) << "\n";
  return s.str();
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::shared_ptr<const Model> load_model_for(const std::string& backend, const std::filesystem::path& path) {
  ClassifierOptions options;
  options.model_path = path;
  return resolve_model(options, backend_model_kind(backend), backend);
}

bool disagrees(const ImageResult& r) {
  if (!r.prediction || !r.verify) return false;
  if (r.prediction->class_index != r.verify->class_index) return true;
  // A backend that cannot decide (a TopK overlay: unavailable) does not disagree on the verdict.
  const bool both_decide = r.prediction->verdict != Verdict::unavailable && r.verify->verdict != Verdict::unavailable;
  if (both_decide && r.prediction->verdict != r.verify->verdict) return true;
  // Both integer backends with logits: they must agree exactly.
  return !r.prediction->logits.empty() && !r.verify->logits.empty() && r.prediction->logits != r.verify->logits;
}

std::vector<ImageResult> classify_files(const std::vector<std::filesystem::path>& files,
                                        const std::vector<Classifier*>& classifiers,
                                        const std::vector<Classifier*>& verifiers, const FileRunOptions& options) {
  if (classifiers.empty()) throw error("classify_files: no classifier");
  if (!verifiers.empty() && verifiers.size() != classifiers.size())
    throw error("classify_files: one verifier per classifier, or none");
  if (options.batch < 1) throw error("classify_files: batch must be at least 1");
  const Model& model = classifiers.front()->model();
  std::vector<ImageResult> results(files.size());
  for (std::size_t i = 0; i < files.size(); ++i) {
    results[i].file = files[i];
    results[i].label = label_from_path(files[i], model.class_names);
  }

  std::mutex mutex;
  std::vector<bool> done(files.size(), false);
  std::size_t next_to_report = 0, finished = 0;
  std::atomic<std::size_t> next_batch{0};
  const std::size_t batch = std::size_t(options.batch);

  auto worker = [&](std::size_t t) {
    Classifier& classifier = *classifiers[t];
    const int h = model.input.height, w = model.input.width;
    // Kept from batch to batch: the reader's buffers and the inputs' pixels.
    ImageLoader loader;
    std::vector<Tensor8> inputs;
    std::vector<std::size_t> index;
    for (;;) {
      const std::size_t first = next_batch.fetch_add(batch);
      if (first >= results.size()) break;
      const std::size_t last = std::min(results.size(), first + batch);
      const auto t0 = std::chrono::steady_clock::now();
      index.clear();
      for (std::size_t i = first; i < last; ++i) {
        if (inputs.size() <= index.size()) inputs.emplace_back();
        try {
          // This image's slot (not inputs.back(): the slots after it may still hold the last batch's pixels).
          Tensor8& input = inputs[index.size()];
          loader.load(results[i].file, h, w, input);
          index.push_back(i);
          if (model.seen_images) results[i].seen = model.has_seen(input);
        } catch (const std::exception& e) {
          results[i].error = e.what();
        }
      }
      inputs.resize(index.size());
      if (!inputs.empty()) {
        try {
          auto predictions = classifier.classify_batch(inputs);
          std::optional<std::vector<Prediction>> checks;
          if (!verifiers.empty()) checks = verifiers[t]->classify_batch(inputs);
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
        done[i] = true;
      }
      finished += last - first;
      // Report in input order as soon as the next results are complete.
      while (next_to_report < results.size() && done[next_to_report])
        if (options.on_result) options.on_result(results[next_to_report++]);
        else ++next_to_report;
      if (options.on_progress) options.on_progress(finished);
    }
  };
  std::vector<std::thread> threads;
  for (std::size_t t = 1; t < classifiers.size(); ++t) threads.emplace_back(worker, t);
  worker(0);
  for (auto& th : threads) th.join();
  return results;
}

std::size_t InferReport::classified() const {
  return std::size_t(std::count_if(images.begin(), images.end(), [](const ImageResult& r) { return r.prediction; }));
}

std::size_t InferReport::disagreements() const {
  return std::size_t(std::count_if(images.begin(), images.end(), disagrees));
}

ConfusionMatrix InferReport::confusion() const {
  ConfusionMatrix cm(model->class_names);
  for (const auto& r : images)
    if (r.prediction && r.label >= 0) cm.add(r.label, r.prediction->class_index);
  return cm;
}

std::optional<std::size_t> InferReport::seen() const {
  if (!model->seen_images) return std::nullopt;
  return std::size_t(
      std::count_if(images.begin(), images.end(), [](const ImageResult& r) { return r.prediction && r.seen == true; }));
}

std::optional<ConfusionMatrix> InferReport::unseen_confusion() const {
  if (!model->seen_images) return std::nullopt;
  ConfusionMatrix cm(model->class_names);
  for (const auto& r : images)
    if (r.prediction && r.label >= 0 && r.seen == false) cm.add(r.label, r.prediction->class_index);
  return cm;
}

std::string infer_report_json(const InferReport& report) {
  using report::json;
  using report::number;
  json images = json::array();
  for (const auto& r : report.images) {
    json j = {{"file", r.file.string()}};
    if (r.prediction) {
      j["class"] = r.prediction->class_name;
      j["class_index"] = r.prediction->class_index;
      if (!r.prediction->scores.empty()) j["scores"] = r.prediction->scores;
      if (!r.prediction->logits.empty()) j["logits"] = r.prediction->logits;
      report::add_decision(j, *r.prediction);
      if (r.verify)
        j["verify"] = {{"class", r.verify->class_name},
                       {"verdict", verdict_name(r.verify->verdict)},
                       {"agrees", !disagrees(r)}};
    } else {
      j["error"] = r.error;
      report::add_failure(j, r.error);
    }
    if (r.label >= 0) j["label"] = report.model->class_names[r.label];
    if (r.seen) j["seen"] = *r.seen;
    images.push_back(std::move(j));
  }
  const std::size_t classified = report.classified();
  json summary = {{"backend", report.backend},
                  {"describe", report.description},
                  {"model", report.model->name},
                  {"model_path", report.model->source.string()},
                  {"classes", report.model->class_names},
                  {"images", report.images.size()},
                  {"classified", classified},
                  {"failed", report.images.size() - classified},
                  {"path_errors", report.path_errors},
                  {"seconds", report.seconds},
                  {"images_per_second", report.seconds > 0 ? json(double(classified) / report.seconds) : json(nullptr)},
                  {"threads", report.threads},
                  {"peak_rss_mb", number(report.peak_rss_mb)},
                  {"anon_rss_mb_at_end", number(report.anon_rss_mb_at_end)}};
  json verdicts = {{"refer", 0}, {"routine", 0}, {"unreadable", 0}, {"unavailable", 0}};
  for (const auto& r : report.images) {
    json& count = verdicts[r.prediction ? verdict_name(r.prediction->verdict) : "unreadable"];
    count = count.get<int>() + 1;
  }
  summary["verdicts"] = verdicts;
  if (report.verify_backend)
    summary["verify"] = {{"backend", *report.verify_backend}, {"disagreements", report.disagreements()}};
  const ConfusionMatrix cm = report.confusion();
  if (cm.total() > 0) report::add_metrics(summary, cm);
  report::add_seen(summary, report.seen(), report.unseen_confusion());
  return json{{"schema_version", result_schema_version}, {"tool", "busi-infer"}, {"images", images},
              {"summary", summary}}
             .dump(2) +
         "\n";
}

}  // namespace busi
