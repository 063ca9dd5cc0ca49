// The backend conformance suite: every backend in available_backends() (fpga
// on the emulated board) runs the same inputs and must keep the same contract:
// the reference's predictions (integer backends: the scalar reference's int32
// logits exactly; the float one: a plain float reference within a tolerance),
// the same errors for bad inputs and settings, and the same batch semantics.
// A new backend gets it by appearing in the backend table.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "busi/backend.hpp"
#include "busi/classifier.hpp"
#include "busi/error.hpp"
#include "busi/random_model.hpp"
#include "float_reference.hpp"
#include "reference.hpp"
#include "test_support.hpp"
#ifdef BUSI_TEST_HAS_FPGA
#include "emulated_board.hpp"
#endif

namespace busi {
namespace {

using test::error_of;

// A random model of the paper's network, of the kind `backend` runs.
std::shared_ptr<const Model> model_for(const std::string& backend) {
  RandomModelSpec spec = paper_network_spec(2, 4);
  spec.kind = backend_model_kind(backend);
  return std::make_shared<const Model>(random_model(spec, 1234));
}

std::vector<Tensor8> random_images(const Model& model, std::size_t count, uint64_t seed) {
  std::vector<Tensor8> images(count);
  for (std::size_t i = 0; i < count; ++i)
    images[i] = {model.input.height, model.input.width, random_pixels(model.input.size(), seed + i)};
  return images;
}

// ARM test runs are under qemu: fewer images there.
#if defined(__arm__) || defined(__aarch64__)
constexpr std::size_t image_count = 3;
#else
constexpr std::size_t image_count = 5;
#endif

class Conformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    model_ = model_for(GetParam());
#ifdef BUSI_TEST_HAS_FPGA
    if (GetParam() == "fpga") board_ = std::make_unique<fpga::board>(fpga::board_setup{model_});
#endif
  }

  // What make_classifier needs for this backend (the emulated board for fpga).
  ClassifierOptions options(std::map<std::string, std::string> extra = {}) const {
    ClassifierOptions o;
#ifdef BUSI_TEST_HAS_FPGA
    if (board_) o = board_->options();
#endif
    o.model = model_;
    for (auto& [key, value] : extra) o.settings[key] = value;
    return o;
  }
  std::unique_ptr<Classifier> make() const { return make_classifier(GetParam(), options()); }
  bool integer() const { return model_->kind == ModelKind::quantized; }

  // Checks one prediction against the reference of the model's kind.
  void expect_reference(const Prediction& got, const Tensor8& input, const std::string& what) const {
    const std::size_t classes = model_->num_classes();
    ASSERT_EQ(got.scores.size(), classes) << what;
    double sum = 0;
    for (float s : got.scores) sum += s;
    EXPECT_NEAR(sum, 1.0, 1e-5) << what;
    EXPECT_EQ(got.class_name, model_->class_names.at(got.class_index)) << what;
    if (integer()) {
      const auto expected = cpu_int::reference_logits(*model_, input);
      EXPECT_EQ(got.logits, expected) << what;  // bit for bit
      EXPECT_EQ(got.class_index, first_argmax(expected.data(), expected.size())) << what;
      return;
    }
    EXPECT_TRUE(got.logits.empty()) << what;
    const auto expected = test::float_reference_logits(*model_, input.pixels);
    // Scores are a softmax, so log-score differences are logit differences.
    for (std::size_t c = 1; c < classes; ++c)
      EXPECT_NEAR(std::log(got.scores[c]) - std::log(got.scores[0]), expected[c] - expected[0],
                  1e-3 * (1 + std::abs(expected[c] - expected[0])))
          << what << " class " << c;
    auto sorted = expected;
    std::sort(sorted.rbegin(), sorted.rend());
    if (sorted[0] - sorted[1] > 1e-3) EXPECT_EQ(got.class_index, first_argmax(expected.data(), classes)) << what;
  }

  std::shared_ptr<const Model> model_;
#ifdef BUSI_TEST_HAS_FPGA
  std::unique_ptr<fpga::board> board_;
#endif
};

TEST_P(Conformance, DescribesItselfAndRunsItsModel) {
  auto classifier = make();
  EXPECT_EQ(classifier->backend(), GetParam());
  EXPECT_FALSE(classifier->describe().empty());
  EXPECT_EQ(&classifier->model(), model_.get());
}

TEST_P(Conformance, MatchesTheReference) {
  auto classifier = make();
  const auto images = random_images(*model_, image_count, 100);
  for (std::size_t i = 0; i < images.size(); ++i)
    expect_reference(classifier->classify(images[i]), images[i], "image " + std::to_string(i));
}

TEST_P(Conformance, BatchGivesWhatSingleImagesGive) {
  auto classifier = make();
  const auto images = random_images(*model_, image_count, 200);
  const auto batch = classifier->classify_batch(images);
  ASSERT_EQ(batch.size(), images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    const Prediction one = classifier->classify(images[i]);
    EXPECT_EQ(batch[i].class_index, one.class_index) << i;
    EXPECT_EQ(batch[i].class_name, one.class_name) << i;
    EXPECT_EQ(batch[i].logits, one.logits) << i;
    EXPECT_EQ(batch[i].scores, one.scores) << i;  // same logits, same arithmetic
  }
  EXPECT_TRUE(classifier->classify_batch({}).empty());
}

TEST_P(Conformance, BadInputShapesAreTheSameImageError) {
  auto classifier = make();
  const std::string prefix = GetParam() + ": input ";
  const std::string model_part = "; model " + model_->name + " takes 255x255";
  const Tensor8 small{5, 4, std::vector<uint8_t>(20)};
  EXPECT_THROW(classifier->classify(small), image_error);
  EXPECT_EQ(error_of([&] { classifier->classify(small); }), prefix + "is 5x4 (20 pixels)" + model_part);
  const Tensor8 short_pixels{255, 255, std::vector<uint8_t>(100)};
  EXPECT_EQ(error_of([&] { classifier->classify(short_pixels); }), prefix + "is 255x255 (100 pixels)" + model_part);

  // One bad input in a batch: the error names it, and the good ones still classify after.
  auto images = random_images(*model_, 3, 300);
  images.insert(images.begin() + 2, small);
  EXPECT_THROW(classifier->classify_batch(images), image_error);
  EXPECT_EQ(error_of([&] { classifier->classify_batch(images); }), prefix + "2 is 5x4 (20 pixels)" + model_part);
  images.erase(images.begin() + 2);
  EXPECT_EQ(classifier->classify_batch(images).size(), 3u);
}

TEST_P(Conformance, UnknownSettingsAndWrongModelKindsAreRejected) {
  const std::string message = error_of([&] { make_classifier(GetParam(), options({{"bogus", "1"}})); });
  EXPECT_EQ(message.rfind("backend " + GetParam() + " has no setting 'bogus'", 0), 0u) << message;

  RandomModelSpec spec = paper_network_spec(2, 4);
  spec.kind = integer() ? ModelKind::floating : ModelKind::quantized;
  ClassifierOptions wrong = options();
  wrong.model = std::make_shared<const Model>(random_model(spec, 1));
  EXPECT_THROW(make_classifier(GetParam(), wrong), model_error);
}

// The typed settings reader every backend reads its settings through.
TEST(BackendSettings, ErrorsNameTheKeyTheValueAndWhatIsAllowed) {
  const std::vector<std::string> known = {"timeout_ms", "program", "overlay"};
  EXPECT_EQ(error_of([&] { BackendSettings("fpga", {{"fclk", "1"}}, known); }),
            "backend fpga has no setting 'fclk'; known: timeout_ms, program, overlay");
  EXPECT_EQ(error_of([&] { BackendSettings("cpu_ref", {{"isa", "avx2"}}, {}); }),
            "backend cpu_ref has no setting 'isa' (it takes none)");
  const BackendSettings settings("fpga", {{"timeout_ms", "250"}, {"program", "never"}}, known);
  EXPECT_EQ(settings.whole_number("timeout_ms", 10000, 1, 3600000), 250);
  EXPECT_EQ(settings.whole_number("max", 64, 1, 65536), 64);  // absent: the fallback
  EXPECT_EQ(settings.one_of("program", "auto", {"auto", "always", "never"}), "never");
  EXPECT_EQ(settings.text("overlay", "none"), "none");
  for (const char* bad : {"0", "3600001", "12ms", "", " 5", "1e3"})
    EXPECT_EQ(error_of([&] { BackendSettings("fpga", {{"timeout_ms", bad}}, known).whole_number("timeout_ms", 1, 1, 3600000); }),
              std::string("backend fpga: setting timeout_ms='") + bad + "' is not a whole number in [1, 3600000]");
  EXPECT_EQ(error_of([&] { BackendSettings("fpga", {{"program", "maybe"}}, known).one_of("program", "auto", {"auto", "always", "never"}); }),
            "backend fpga: setting program='maybe' is not one of auto, always, never");
}

INSTANTIATE_TEST_SUITE_P(EveryBackend, Conformance, ::testing::ValuesIn(available_backends()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace busi
