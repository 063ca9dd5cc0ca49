#pragma once
// The JSON pieces every result document shares (evaluation.cpp, pipeline.cpp):
// one metrics object, one confusion-matrix object, NaN as null.
#include <cmath>
#include <optional>
#include <nlohmann/json.hpp>

#include "busi/classifier.hpp"
#include "busi/metrics.hpp"

namespace busi::report {

using json = nlohmann::json;

// JSON has no NaN: missing rates are null.
inline json number(double v) { return std::isnan(v) ? json(nullptr) : json(v); }
inline double number(const json& j) { return j.is_null() ? std::nan("") : j.get<double>(); }

// {"classes": [...], "rows_true_columns_predicted": [[...], ...]}
inline json confusion_json(const ConfusionMatrix& cm) {
  json matrix = json::array();
  for (std::size_t t = 0; t < cm.num_classes(); ++t) {
    json row = json::array();
    for (std::size_t p = 0; p < cm.num_classes(); ++p) row.push_back(cm.count(int(t), int(p)));
    matrix.push_back(row);
  }
  return {{"classes", cm.class_names()}, {"rows_true_columns_predicted", matrix}};
}

// [low, high] of Wilson's 95% interval; null ends when n = 0.
inline json interval_json(std::size_t k, std::size_t n) {
  const Interval ci = wilson_interval(k, n);
  return json::array({number(ci.low), number(ci.high)});
}

// Adds the metrics of `cm` to `out`: labelled, correct, accuracy, recall
// {class: rate}, confusion (confusion_json), sensitivity, specificity, and the
// 95% interval of each of the three rates (accuracy_ci95, ...).
inline void add_metrics(json& out, const ConfusionMatrix& cm) {
  const auto rates = cm.normal_vs_abnormal();
  out["labelled"] = cm.total();
  out["correct"] = cm.correct();
  out["accuracy"] = number(cm.accuracy());
  out["accuracy_ci95"] = interval_json(cm.correct(), cm.total());
  out["sensitivity_ci95"] = interval_json(rates.true_positive, rates.true_positive + rates.false_negative);
  out["specificity_ci95"] = interval_json(rates.true_negative, rates.true_negative + rates.false_positive);
  out["recall"] = json::object();
  for (std::size_t c = 0; c < cm.num_classes(); ++c) out["recall"][cm.class_names()[c]] = number(cm.recall(int(c)));
  out["confusion"] = confusion_json(cm);
  out["sensitivity"] = number(rates.sensitivity());
  out["specificity"] = number(rates.specificity());
}

// What the model was trained on: "seen_images" (how many of the images its
// package records, null when it records none) and "unseen" (add_metrics of the
// labelled images it was not trained on), docs/evaluation.md.
inline void add_seen(json& out, std::optional<std::size_t> seen, const std::optional<ConfusionMatrix>& unseen) {
  out["seen_images"] = seen ? json(*seen) : json(nullptr);
  if (unseen) add_metrics(out["unseen"] = json::object(), *unseen);
}

// Adds one image's decision (docs/evaluation.md, schema 3): verdict, reason,
// p_abnormal (null when unavailable), suspicious_malignancy, and, when the
// gate computed it, ood_score and ood_features.
inline void add_decision(json& out, const Prediction& p) {
  out["verdict"] = verdict_name(p.verdict);
  out["reason"] = p.reason;
  out["p_abnormal"] = number(p.p_abnormal);
  out["suspicious_malignancy"] = p.suspicious_malignancy;
  if (!std::isnan(p.ood_score)) out["ood_score"] = p.ood_score;
  if (!p.ood_features.empty()) out["ood_features"] = p.ood_features;
}

// The decision of an image that could not be read at all: unreadable, with the
// reading error as its reason.
inline void add_failure(json& out, const std::string& error) {
  out["verdict"] = verdict_name(Verdict::unreadable);
  out["reason"] = error;
  out["p_abnormal"] = nullptr;
  out["suspicious_malignancy"] = false;
}

}  // namespace busi::report
