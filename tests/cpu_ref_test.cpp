// cpu_ref (oneDNN float) against a plain scalar float reference written here,
// on odd shapes and on the paper's network, with random weights and pixels.
#include <gtest/gtest.h>
#include <algorithm>
#include <cmath>

#include "busi/classifier.hpp"
#include "busi/error.hpp"
#include "busi/random_model.hpp"
#include "float_reference.hpp"
#include "test_support.hpp"

namespace {

void expect_agrees(busi::Classifier& classifier, const busi::Model& model, uint64_t seed) {
  busi::Tensor8 input{model.input.height, model.input.width, busi::random_pixels(model.input.size(), seed)};
  const auto expected = busi::test::float_reference_logits(model, input.pixels);
  const auto got = classifier.classify(input);
  ASSERT_EQ(got.scores.size(), expected.size());
  EXPECT_TRUE(got.logits.empty());
  // Scores are a softmax, so log-score differences are logit differences.
  for (std::size_t c = 1; c < expected.size(); ++c)
    EXPECT_NEAR(std::log(got.scores[c]) - std::log(got.scores[0]), expected[c] - expected[0],
                1e-3 * (1 + std::abs(expected[c] - expected[0])))
        << "class " << c << " seed " << seed;
  const int best = int(std::max_element(expected.begin(), expected.end()) - expected.begin());
  auto sorted = expected;
  std::sort(sorted.rbegin(), sorted.rend());
  if (sorted[0] - sorted[1] > 1e-3) EXPECT_EQ(got.class_index, best) << "seed " << seed;
  EXPECT_EQ(got.class_name, model.class_names[got.class_index]);
}

busi::Model random_float(busi::RandomModelSpec spec, uint64_t seed) {
  spec.kind = busi::ModelKind::floating;
  return busi::random_model(spec, seed);
}

TEST(CpuRef, OddShapesMatchTheScalarReference) {
  busi::RandomModelSpec spec;
  spec.input = {1, 23, 19};
  spec.convs = {{3, 3, 2}, {5, 2, 0}, {7, 3, 0}};  // kernel 2 and a conv without pool
  spec.dense = {11};
  spec.num_classes = 4;
  // Through the package format, as a float export reaches the backend.
  const auto original = random_float(spec, 7);
  auto model = std::make_shared<const busi::Model>(busi::Model::parse(original.serialize(), "odd float model"));
  auto classifier = busi::make_classifier("cpu_ref", busi::ClassifierOptions{.model = model});
  EXPECT_EQ(classifier->backend(), "cpu_ref");
  EXPECT_NE(classifier->describe().find("oneDNN"), std::string::npos);
  for (uint64_t seed = 1; seed <= 5; ++seed) expect_agrees(*classifier, *model, seed);
}

TEST(CpuRef, OddPoolDropsTheTrailingRowAndColumn) {
  busi::RandomModelSpec spec;
  spec.input = {1, 16, 13};
  spec.convs = {{4, 3, 3}};  // 14x11 -> pool 3 -> 4x3, dropping 2 rows and 2 columns
  spec.dense = {};
  auto model = std::make_shared<const busi::Model>(random_float(spec, 3));
  auto classifier = busi::make_classifier("cpu_ref", busi::ClassifierOptions{.model = model});
  for (uint64_t seed = 10; seed < 14; ++seed) expect_agrees(*classifier, *model, seed);
}

TEST(CpuRef, PaperNetworkMatchesTheScalarReference) {
  auto spec = busi::paper_network_spec(32, 32);
  auto model = std::make_shared<const busi::Model>(random_float(spec, 11));
  auto classifier = busi::make_classifier("cpu_ref", busi::ClassifierOptions{.model = model});
  for (uint64_t seed = 100; seed < 103; ++seed) expect_agrees(*classifier, *model, seed);
}

TEST(CpuRef, BadInputsAreClearErrors) {
  auto spec = busi::paper_network_spec(2, 4);
  auto quantized = std::make_shared<const busi::Model>(busi::random_model(spec, 1));
  EXPECT_THROW(busi::make_classifier("cpu_ref", busi::ClassifierOptions{.model = quantized}), busi::model_error);

  spec.kind = busi::ModelKind::floating;
  auto model = std::make_shared<const busi::Model>(busi::random_model(spec, 1));
  EXPECT_THROW(busi::make_classifier("cpu_ref", busi::ClassifierOptions{.model = model, .settings = {{"isa", "avx2"}}}), busi::error);
  auto classifier = busi::make_classifier("cpu_ref", busi::ClassifierOptions{.model = model});
  busi::Tensor8 small{254, 255, std::vector<uint8_t>(254 * 255)};
  try {
    classifier->classify(small);
    FAIL() << "expected busi::error";
  } catch (const busi::error& e) {
    EXPECT_NE(std::string(e.what()).find("254x255"), std::string::npos) << e.what();
  }
}

}  // namespace
