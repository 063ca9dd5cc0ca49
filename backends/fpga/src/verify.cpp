#include "busi/verify.hpp"

#include <sstream>

#include "busi/error.hpp"

namespace busi {

VerifyingClassifier::VerifyingClassifier(std::unique_ptr<Classifier> primary, std::unique_ptr<Classifier> twin)
    : primary_(std::move(primary)), twin_(std::move(twin)) {
  const Model& a = primary_->model();
  const Model& b = twin_->model();
  if (a.name != b.name || a.class_names != b.class_names || !(a.input == b.input))
    throw error("verify: " + primary_->backend() + " runs model '" + a.name + "' but " + twin_->backend() +
                " runs '" + b.name + "'; both must run the same model");
}

std::string VerifyingClassifier::backend() const { return primary_->backend(); }

std::string VerifyingClassifier::describe() const {
  return primary_->describe() + "; verified against " + twin_->describe();
}

void VerifyingClassifier::compare(const Prediction& primary, const Prediction& twin) {
  const bool same = primary.class_index == twin.class_index &&
                    (primary.logits.empty() || twin.logits.empty() || primary.logits == twin.logits);
  last_agreed_ = same;
  if (!same) disagreements_.push_back({checked_, primary, twin});
  ++checked_;
}

Prediction VerifyingClassifier::classify(const Tensor8& input) {
  Prediction p = primary_->classify(input);
  compare(p, twin_->classify(input));
  return p;
}

std::vector<Prediction> VerifyingClassifier::classify_batch(const std::vector<Tensor8>& inputs) {
  auto primary = primary_->classify_batch(inputs);
  const auto twin = twin_->classify_batch(inputs);
  for (std::size_t i = 0; i < primary.size(); ++i) compare(primary[i], twin[i]);
  return primary;
}

std::string VerifyingClassifier::summary(std::size_t max_lines) const {
  std::ostringstream out;
  out << "verify " << twin_->backend() << ": " << checked_ << " inputs, " << disagreements_.size()
      << " disagreement" << (disagreements_.size() == 1 ? "" : "s");
  const auto logits = [](const Prediction& p) {
    std::string s;
    for (auto v : p.logits) s += (s.empty() ? "" : ",") + std::to_string(v);
    return s.empty() ? std::string() : " [" + s + "]";
  };
  for (std::size_t i = 0; i < disagreements_.size() && i < max_lines; ++i) {
    const auto& d = disagreements_[i];
    out << "\n  input " << d.index << ": " << primary_->backend() << " " << d.primary.class_name << logits(d.primary)
        << ", " << twin_->backend() << " " << d.twin.class_name << logits(d.twin);
  }
  return out.str();
}

}  // namespace busi
