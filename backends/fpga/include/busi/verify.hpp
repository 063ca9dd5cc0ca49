#pragma once
// Hardware bring-up: run every input through a primary backend (the fpga) and
// through its integer twin (cpu_int) and record where they disagree. Both must
// run the same model; the prediction returned is the primary's.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "busi/classifier.hpp"

namespace busi {

struct Disagreement {
  std::size_t index = 0;  // 0-based count of inputs classified through this wrapper
  Prediction primary, twin;
};

class VerifyingClassifier final : public Classifier {
 public:
  // Throws busi::error when the two do not run the same model (name, classes, input).
  VerifyingClassifier(std::unique_ptr<Classifier> primary, std::unique_ptr<Classifier> twin);

  std::string backend() const override;   // the primary's
  std::string describe() const override;  // both
  const Model& model() const override { return primary_->model(); }
  Prediction classify(const Tensor8& input) override;
  std::vector<Prediction> classify_batch(const std::vector<Tensor8>& inputs) override;

  // Disagree when the classes differ, or when both report logits and these differ.
  const std::vector<Disagreement>& disagreements() const { return disagreements_; }
  std::size_t checked() const { return checked_; }
  bool last_agreed() const { return last_agreed_; }
  // "verify cpu_int: 702 images, 0 disagreements" plus one line per disagreement
  // (index, both classes, both logits), at most `max_lines` of them.
  std::string summary(std::size_t max_lines = 20) const;

 private:
  void compare(const Prediction& primary, const Prediction& twin);

  std::unique_ptr<Classifier> primary_, twin_;
  std::vector<Disagreement> disagreements_;
  std::size_t checked_ = 0;
  bool last_agreed_ = true;
};

}  // namespace busi
