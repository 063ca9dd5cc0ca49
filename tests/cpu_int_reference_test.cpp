// The cpu_int oracle checked by hand: tiny networks whose every accumulator,
// level and logit is worked out in the comments. Plus the classifier factory.
#include <gtest/gtest.h>

#include "busi/backend.hpp"
#include "busi/classifier.hpp"
#include "busi/error.hpp"
#include "busi/random_model.hpp"
#include "engine.hpp"
#include "reference.hpp"

namespace busi::cpu_int {
namespace {

Layer conv_layer(int in, int out, int kernel, int weight_bits, std::vector<int8_t> weights, int act_bits,
                 std::vector<int32_t> thresholds) {
  Layer l;
  l.type = LayerType::conv;
  l.in_channels = in;
  l.out_channels = out;
  l.kernel = kernel;
  l.weight_bits = weight_bits;
  l.weights = std::move(weights);
  l.act_bits = act_bits;
  l.thresholds = std::move(thresholds);
  return l;
}

Layer dense_layer(int in, int out, int weight_bits, std::vector<int8_t> weights) {
  Layer l = conv_layer(in, out, 1, weight_bits, std::move(weights), 0, {});
  l.type = LayerType::dense;
  return l;
}

Layer pool_layer(int pool) {
  Layer l;
  l.type = LayerType::maxpool;
  l.pool = pool;
  return l;
}

Model tiny_model(int height, int width, std::vector<Layer> layers) {
  Model m;
  m.name = "tiny";
  m.class_names = {"normal", "benign", "malignant"};
  m.input = {1, height, width};
  m.preprocess = "gray-area-v1";
  m.layers = std::move(layers);
  m.validate("tiny");
  return m;
}

Tensor8 tensor(int height, int width, std::vector<uint8_t> pixels) { return {height, width, std::move(pixels)}; }

// 4x4 input 1..16; conv 2x2 -> 2 channels of 3x3; 2-bit levels; pool 2 (floor
// drops the last row and column); dense 2 -> 3.
Model conv_pool_dense() {
  return tiny_model(4, 4,
                    {conv_layer(1, 2, 2, 2,
                                {1, 0, 0, 1,    // oc0: in[y][x] + in[y+1][x+1]
                                 -1, 1, 0, 0},  // oc1: in[y][x+1] - in[y][x] = 1
                                2,
                                {8, 15, 26,  // oc0
                                 1, 1, 2}),  // oc1: equal thresholds both count
                     pool_layer(2), dense_layer(2, 3, 4, {1, 0, 0, 1, -1, 7})});
}
const Tensor8 one_to_16 = tensor(4, 4, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});

TEST(CpuIntReference, ConvThresholdPoolDenseByHand) {
  const Model m = conv_pool_dense();
  reference_engine engine(m);
  std::vector<int32_t> logits(3);
  engine.run(one_to_16.pixels.data(), logits.data());
  // oc0 accumulators 7 9 11 / 15 17 19 / 23 25 27 against thresholds 8, 15, 26;
  // oc1 accumulators are all 1 against 1, 1, 2 -> level 2.
  EXPECT_EQ(engine.levels(0), (std::vector<uint8_t>{0, 1, 1, 2, 2, 2, 2, 2, 3,  //
                                                    2, 2, 2, 2, 2, 2, 2, 2, 2}));
  // Pool over rows/cols 0-1 only: oc0 max(0,1,2,2) = 2 (the 3 at (2,2) is dropped).
  EXPECT_EQ(engine.levels(1), (std::vector<uint8_t>{2, 2}));
  // dense: [1 0; 0 1; -1 7] * [2 2] = 2, 2, 12.
  EXPECT_EQ(logits, (std::vector<int32_t>{2, 2, 12}));
  EXPECT_EQ(reference_logits(m, one_to_16), logits);
}

TEST(CpuIntReference, ExtremeWeightsAndThresholdsByHand) {
  // 8-bit weights at -127 over white pixels: acc = 9 * 255 * -127 = -291465,
  // exactly on the middle threshold (acc >= t counts, so the level is 2).
  const Model m = tiny_model(3, 3,
                             {conv_layer(1, 1, 3, 8, std::vector<int8_t>(9, -127), 2, {-291466, -291465, -291464}),
                              dense_layer(1, 3, 8, {127, -127, 0})});
  EXPECT_EQ(reference_logits(m, tensor(3, 3, std::vector<uint8_t>(9, 255))), (std::vector<int32_t>{254, -254, 0}));
  // All black: acc 0 reaches all three thresholds: level 3.
  EXPECT_EQ(reference_logits(m, tensor(3, 3, std::vector<uint8_t>(9, 0))), (std::vector<int32_t>{381, -381, 0}));
}

TEST(CpuIntReference, DenseFlattensChwOrder) {
  // conv 1x1 makes 2 channels of 1x2: ch0 = pixel, ch1 = -pixel. Levels (2-bit,
  // thresholds 1,2,3) of pixels [1 3]: ch0 = [1 3], ch1 = [0 0]. Dense weights
  // pick CHW element 1 (ch0, x=1) and element 2 (ch1, x=0).
  const Model m = tiny_model(1, 2,
                             {conv_layer(1, 2, 1, 2, {1, -1}, 2, {1, 2, 3, 1, 2, 3}), dense_layer(4, 3, 2,
                                                                                                  {0, 1, 0, 0,  //
                                                                                                   0, 0, 1, 0,  //
                                                                                                   1, -1, 0, 0})});
  EXPECT_EQ(reference_logits(m, tensor(1, 2, {1, 3})), (std::vector<int32_t>{3, 0, -2}));
}

TEST(CpuIntReference, FirstArgmaxTakesTheFirstOfTies) {
  const int32_t tie[] = {-5, -3, -3};
  EXPECT_EQ(first_argmax(tie, 3), 1);
  const int32_t all_equal[] = {7, 7, 7};
  EXPECT_EQ(first_argmax(all_equal, 3), 0);
}

TEST(CpuIntReference, RejectsWrongInputSizeAndFloatModels) {
  const Model m = conv_pool_dense();
  EXPECT_THROW(reference_logits(m, tensor(4, 3, std::vector<uint8_t>(12))), error);
  Model f = random_model(
      [] {
        RandomModelSpec s;
        s.kind = ModelKind::floating;
        s.input = {1, 8, 8};
        s.convs = {{2, 3, 0}};
        s.dense = {};
        return s;
      }(),
      1);
  EXPECT_THROW(reference_engine{f}, model_error);
}

TEST(CpuIntClassifier, ClassifiesWithEveryIsaAndDescribesIt) {
  auto model = std::make_shared<const Model>(conv_pool_dense());
  for (isa which : available_isas()) {
    ClassifierOptions options;
    options.model = model;
    options.settings["isa"] = isa_name(which);
    auto c = make_classifier("cpu_int", options);
    EXPECT_NE(c->describe().find(isa_name(which)), std::string::npos) << c->describe();
    const Prediction p = c->classify(one_to_16);
    EXPECT_EQ(p.logits, (std::vector<int32_t>{2, 2, 12}));
    EXPECT_EQ(p.class_index, 2);
    EXPECT_EQ(p.class_name, "malignant");
  }
  ClassifierOptions automatic;
  automatic.model = model;
  EXPECT_NE(make_classifier("cpu_int", automatic)->describe().find(isa_name(available_isas().front())),
            std::string::npos);
}

TEST(CpuIntClassifier, BadSettingsAndInputsAreNamed) {
  ClassifierOptions options;
  options.model = std::make_shared<const Model>(conv_pool_dense());
  auto message = [&](auto&& f) {
    try {
      f();
    } catch (const error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  options.settings["isa"] = "sse9";
  EXPECT_NE(message([&] { make_classifier("cpu_int", options); }).find("setting isa='sse9' is not one of auto, scalar, avx2, avx512vnni, neon"), std::string::npos);
  for (const char* name : {"avx2", "avx512vnni", "neon"})
    if (!isa_available(parse_isa(name))) {
      options.settings["isa"] = name;
      EXPECT_NE(message([&] { make_classifier("cpu_int", options); }).find(name), std::string::npos);
    }
  options.settings = {{"threads", "2"}};
  EXPECT_NE(message([&] { make_classifier("cpu_int", options); }).find("threads"), std::string::npos);
  options.settings.clear();
  auto c = make_classifier("cpu_int", options);
  EXPECT_NE(message([&] { c->classify(tensor(5, 4, std::vector<uint8_t>(20))); }).find("5x4"), std::string::npos);
}

TEST(CpuIntClassifier, RunsTheDefaultModel) {
  auto c = make_classifier("cpu_int", {});
  const Shape in = c->model().input;
  const Prediction p = c->classify(tensor(in.height, in.width, random_pixels(in.size(), 3)));
  EXPECT_EQ(p.logits.size(), c->model().num_classes());
  EXPECT_EQ(p.scores.size(), c->model().num_classes());
  EXPECT_EQ(p.class_index, first_argmax(p.logits.data(), p.logits.size()));
}

}  // namespace
}  // namespace busi::cpu_int
