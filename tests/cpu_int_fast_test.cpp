// Every fast path this CPU runs against the scalar reference, bit for bit on
// the int32 logits: random models with odd shapes, every bit width, extreme
// weights and thresholds, and the 702 BUSI images with the shipped model.
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <random>

#include "busi/image.hpp"
#include "busi/random_model.hpp"
#include "engine.hpp"
#include "plan.hpp"
#include "reference.hpp"
#include "test_support.hpp"

namespace busi::cpu_int {
namespace {

std::vector<isa> fast_isas() {
  std::vector<isa> out;
  for (isa which : available_isas())
    if (which != isa::scalar) out.push_back(which);
  return out;
}

#define REQUIRE_FAST_PATH()                                                                     \
  do {                                                                                          \
    if (fast_isas().empty()) GTEST_SKIP() << "this CPU runs no fast path, only the scalar one"; \
  } while (0)

// Inputs that reach the corners: random, all black, all white, a ramp.
std::vector<std::vector<uint8_t>> test_inputs(const Model& m, uint64_t seed) {
  const std::size_t n = m.input.size();
  std::vector<uint8_t> ramp(n);
  for (std::size_t i = 0; i < n; ++i) ramp[i] = uint8_t(i * 7);
  return {random_pixels(n, seed), random_pixels(n, seed + 1), std::vector<uint8_t>(n, 0), std::vector<uint8_t>(n, 255),
          ramp};
}

// Runs `m` on every input with the reference and with each fast path.
void expect_fast_paths_match(const Model& m, uint64_t seed, const std::string& what) {
  reference_engine reference(m);
  std::vector<std::unique_ptr<engine>> fast;
  for (isa which : fast_isas()) fast.push_back(make_engine(m, which));
  const std::size_t count = m.layers.back().output.size();
  std::vector<int32_t> expected(count), actual(count);
  for (const auto& input : test_inputs(m, seed)) {
    reference.run(input.data(), expected.data());
    for (auto& e : fast) {
      std::fill(actual.begin(), actual.end(), INT32_MIN);
      e->run(input.data(), actual.data());
      ASSERT_EQ(actual, expected) << what << " on " << isa_name(e->kind());
    }
  }
}

RandomModelSpec spec(Shape input, std::vector<RandomModelSpec::Conv> convs, std::vector<int> dense, int classes,
                     int weight_bits, int act_bits) {
  RandomModelSpec s;
  s.input = input;
  s.convs = std::move(convs);
  s.dense = std::move(dense);
  s.num_classes = classes;
  s.weight_bits = weight_bits;
  s.act_bits = act_bits;
  return s;
}

// Odd channel counts, odd and non-square inputs, kernels 1..5, pools 2 and 3,
// more output channels than one pass of registers holds, every bit width.
std::vector<RandomModelSpec> odd_specs(int w, int a) {
  return {
      spec({1, 37, 41}, {{3, 3, 2}, {5, 3, 0}, {13, 2, 2}}, {17}, 3, w, a),
      spec({1, 23, 19}, {{17, 5, 3}, {33, 1, 0}, {1, 3, 0}}, {}, 5, w, a),
      spec({1, 13, 11}, {{70, 3, 2}, {7, 2, 0}}, {130, 9}, 3, w, a),
      spec({1, 9, 8}, {{1, 4, 0}, {2, 1, 2}}, {1}, 2, w, a),
      spec({1, 1, 1}, {}, {3}, 3, w, a),
      // 4 and 8 input channels with a 2x2 pool (the AVX-512 columns kernel), 5 outputs, wide kernels.
      spec({1, 29, 35}, {{4, 3, 2}, {8, 3, 2}, {5, 2, 2}}, {7}, 3, w, a),
      spec({1, 40, 37}, {{8, 5, 2}, {16, 7, 2}}, {}, 3, w, a),
      // Rows of more blocks (8 pooled outputs x 8 channels) than the columns
      // kernel's two passes take at once (16), a short last pass, a last
      // block of 1 output and of 4 channels: 1 input channel (57 blocks a
      // row) and 8 (18 blocks).
      spec({1, 7, 293}, {{20, 3, 2}}, {}, 3, w, a),
      spec({1, 10, 200}, {{8, 3, 2}, {20, 3, 2}}, {}, 3, w, a),
      // 3x3 convs with a 2x2 pool after the first (AVX-512 Winograd): 4, 16,
      // 32 and 64 input channels; rows of 37, 17, 7 tiles (blocks of 16 and
      // a short one, odd counts); one, two and three vectors of 16 outputs,
      // the last one partial.
      spec({1, 46, 157}, {{4, 3, 2}, {16, 3, 2}, {32, 3, 2}, {33, 3, 2}}, {}, 3, w, a),
      spec({1, 30, 99}, {{4, 3, 2}, {33, 3, 2}}, {5}, 3, w, a),
      spec({1, 20, 40}, {{64, 3, 2}, {40, 3, 2}}, {}, 3, w, a),
      spec({1, 22, 43}, {{16, 3, 2}, {13, 3, 2}}, {}, 3, w, a),
  };
}

TEST(CpuIntFastPaths, OddShapesEveryBitWidth) {
  REQUIRE_FAST_PATH();
  uint64_t seed = 100;
  for (int w : {2, 4, 8})
    for (int a : {2, 4, 8}) {
      int index = 0;
      for (const auto& s : odd_specs(w, a)) {
        ++seed;
        expect_fast_paths_match(
            random_model(s, seed), seed,
            "odd spec " + std::to_string(index++) + " w" + std::to_string(w) + "a" + std::to_string(a));
      }
    }
}

TEST(CpuIntFastPaths, NestedPoolsAndConvLogits) {
  REQUIRE_FAST_PATH();
  // conv -> pool 2 -> pool 2 (a 4x4 window) -> conv giving 4 channels of 2x3 logits.
  Model m = random_model(spec({1, 31, 45}, {{6, 3, 2}, {4, 3, 0}}, {}, 3, 4, 4), 5);
  Layer extra_pool = m.layers[1];
  m.layers.insert(m.layers.begin() + 2, extra_pool);
  m.layers.pop_back();  // the final dense: the last conv gives the logits
  Layer& last = m.layers.back();
  last.act_bits = 0;
  last.thresholds.clear();
  m.class_names = {"a", "b", "c", "d"};
  m.validate("nested");
  ASSERT_EQ(last.output, (Shape{4, 5, 8}));
  expect_fast_paths_match(m, 7, "nested pools, conv logits");
}

TEST(CpuIntFastPaths, ExtremeWeightsAndThresholds) {
  REQUIRE_FAST_PATH();
  // The second has a 3x3 conv with a 2x2 pool after the first (AVX-512 Winograd).
  for (const auto& convs : {std::vector<RandomModelSpec::Conv>{{5, 3, 2}, {11, 3, 0}},
                            std::vector<RandomModelSpec::Conv>{{4, 3, 2}, {11, 3, 2}}})
    for (int w : {2, 4, 8})
      for (int a : {2, 4, 8}) {
        Model m = random_model(spec({1, 21, 26}, convs, {19}, 3, w, a), 40 + w + a);
        const int wmax = (1 << (w - 1)) - 1;
        int n = 0;
        for (Layer& layer : m.layers) {
          // Every weight at +-max (8-bit pixels times 127 is where vpmaddubsw would saturate).
          for (auto& v : layer.weights) v = int8_t((n++ % 3) ? -wmax : wmax);
          const int per = layer.thresholds_per_channel();
          for (int oc = 0; oc < layer.out_channels && per; ++oc) {
            int32_t* t = layer.thresholds.data() + std::size_t(oc) * per;
            switch (oc % 4) {
              case 0:
                std::fill(t, t + per, INT32_MIN);
                break;  // always the top level
              case 1:
                std::fill(t, t + per, INT32_MAX);
                break;  // always level 0
              case 2:
                std::fill(t, t + per, 0);
                break;  // 0 or the top level
              default:
                break;  // the random ascending ones
            }
          }
        }
        m.validate("extreme");
        expect_fast_paths_match(m, 50 + w + a, "extreme w" + std::to_string(w) + "a" + std::to_string(a));
      }
}

// Accumulators at the bound the int16 paths clamp thresholds to (every
// weight +max, a white image, every earlier level at its top): a threshold
// just above the bound gives level 0 there, one at it the top level. Those
// levels feed the logits directly (the dense layer after the last conv), so
// one off by one shows. One conv (1 input channel: the AVX-512 columns
// kernel, NEON Winograd) or two (4 input channels into the second: Winograd
// on bytes).
TEST(CpuIntFastPaths, AccumulatorsAtTheirBound) {
  REQUIRE_FAST_PATH();
  for (const auto& convs : {std::vector<RandomModelSpec::Conv>{{6, 3, 2}},
                            std::vector<RandomModelSpec::Conv>{{4, 3, 2}, {6, 3, 2}}})
    for (int w : {2, 4, 8})
      for (int a : {2, 4, 8}) {
        Model m = random_model(spec({1, 14, 18}, convs, {}, 3, w, a), 80 + w + a);
        const int wmax = (1 << (w - 1)) - 1;
        for (Layer& layer : m.layers) std::fill(layer.weights.begin(), layer.weights.end(), int8_t(wmax));
        const std::size_t last_conv = m.layers.size() - 3;  // then its pool, then the dense logits
        for (std::size_t i = 0; i <= last_conv; ++i) {
          Layer& conv = m.layers[i];
          if (conv.type != LayerType::conv) continue;
          const int32_t bound = ((1 << conv.input_bits) - 1) * conv.in_channels * 9 * wmax;
          const int per = conv.thresholds_per_channel();
          for (int oc = 0; oc < conv.out_channels; ++oc) {
            int32_t* t = conv.thresholds.data() + std::size_t(oc) * per;
            if (i < last_conv) {
              std::fill(t, t + per, INT32_MIN);
              continue;
            }
            std::fill(t, t + per, oc % 2 ? bound + 1 : bound);
            if (oc % 3 == 2) t[0] = bound - 1;
          }
        }
        m.validate("at the bound");
        expect_fast_paths_match(m, 85 + w + a,
                                "accumulators at the bound, " + std::to_string(convs.size()) + " convs, w" +
                                    std::to_string(w) + "a" + std::to_string(a));
      }
}

// 4-bit activations in, 8-bit out: a layer whose level count no fast-path
// template is made for (the AVX-512 Winograd kernel's generic count).
TEST(CpuIntFastPaths, EightBitOutputFromFourBitInput) {
  REQUIRE_FAST_PATH();
  Model m = random_model(spec({1, 30, 36}, {{8, 3, 2}, {40, 3, 2}, {8, 3, 0}}, {}, 3, 2, 4), 90);
  Layer& second = m.layers[2];
  ASSERT_EQ(second.type, LayerType::conv);
  ASSERT_EQ(second.thresholds_per_channel(), 15);
  std::vector<int32_t> thresholds;
  for (int oc = 0; oc < second.out_channels; ++oc) {
    // 255 ascending thresholds over the span of the channel's 15.
    const int32_t* t = second.channel_thresholds(oc);
    for (int k = 0; k < 255; ++k) thresholds.push_back(int32_t(t[0] + int64_t(t[14] - t[0] + 1) * k / 255));
  }
  second.act_bits = 8;
  second.thresholds = thresholds;
  m.validate("eight-bit output");
  ASSERT_EQ(m.layers[4].input_bits, 8);
  expect_fast_paths_match(m, 91, "8-bit levels from 4-bit inputs");
}

TEST(CpuIntFastPaths, PaperNetworkEveryBitWidth) {
  REQUIRE_FAST_PATH();
  for (auto [w, a] : {std::pair{2, 4}, {4, 4}, {8, 8}, {2, 2}})
    expect_fast_paths_match(random_model(paper_network_spec(w, a), 60 + w), 70 + a,
                            "paper network w" + std::to_string(w) + "a" + std::to_string(a));
}

// The count of thresholds[0 .. per) <= acc, written out.
int threshold_count(const int32_t* thresholds, int per, int64_t acc) {
  int count = 0;
  for (int j = 0; j < per; ++j) count += thresholds[j] <= acc;
  return count;
}

// Whether `f` gives threshold_count at every acc in [lo, hi].
bool level_arithmetic_matches(const level_arithmetic& f, const std::vector<int32_t>& t, int scale, int64_t lo,
                              int64_t hi) {
  for (int64_t acc = lo; acc <= hi; ++acc)
    if (f.level(int32_t(scale * acc), int(t.size())) != threshold_count(t.data(), int(t.size()), acc)) return false;
  return true;
}

// BatchNorm folded into uniform levels: threshold j = ceil(first + j * step).
std::vector<int32_t> arithmetic_thresholds(double first, double step, int per = 15) {
  std::vector<int32_t> t;
  for (int j = 0; j < per; ++j) t.push_back(int32_t(std::ceil(first + j * step)));
  return t;
}

TEST(CpuIntLevelArithmetic, FindsExactFormsOfArithmeticThresholds) {
  struct Case {
    double first, step;
    int scale;
    int64_t lo, hi;
  };
  // Steps from 1.5 to 143 accumulator units, offsets at every fraction,
  // scale 1 (conv1's pooled accumulators) and 4 (Winograd's 4 * acc), ranges
  // that cut off the first or last thresholds, and constant levels.
  const std::vector<Case> cases = {
      {95.2, 43.07, 1, -1785, 1785}, {7.4, 11.05, 1, -1530, 1530},  {3.1, 4.53, 4, -720, 720},
      {8.3, 5.79, 4, -720, 720},     {-11.6, 6.61, 4, -1215, 1215}, {-0.01, 1.5, 4, -100, 250},
      {591.0, 143.3, 1, -8000, 8000}, {-42.7, 11.81, 4, -60, 2415}, {-300.5, 40.2, 4, -250, 1000},
      {2000.0, 10.0, 4, -1000, 1000}, {-5000.0, 3.0, 4, -1000, 1000}};
  for (const Case& c : cases) {
    const std::vector<int32_t> t = arithmetic_thresholds(c.first, c.step);
    level_arithmetic f;
    ASSERT_TRUE(find_level_arithmetic(t.data(), 15, c.scale, c.lo, c.hi, f))
        << "first " << c.first << " step " << c.step << " scale " << c.scale;
    EXPECT_TRUE(level_arithmetic_matches(f, t, c.scale, c.lo, c.hi)) << "first " << c.first << " step " << c.step;
  }
}

TEST(CpuIntLevelArithmetic, RejectsWhatNoFormMatches) {
  level_arithmetic f;
  // 14 thresholds 1 apart, then a gap of 1000: no one step fits both.
  std::vector<int32_t> gap = arithmetic_thresholds(0, 1);
  gap[14] = 1000;
  EXPECT_FALSE(find_level_arithmetic(gap.data(), 15, 1, -2000, 2000, f));
  // Two equal thresholds (a jump of 2 levels) among steps of ~6.
  std::vector<int32_t> jump = arithmetic_thresholds(3.1, 6.2);
  jump[8] = jump[7];
  EXPECT_FALSE(find_level_arithmetic(jump.data(), 15, 4, -720, 720, f));
  // Uniform random thresholds, as random_model draws them.
  std::mt19937_64 rng(7);
  std::vector<int32_t> random(15);
  for (auto& v : random) v = int32_t(rng() % 1001) - 300;
  std::sort(random.begin(), random.end());
  EXPECT_FALSE(find_level_arithmetic(random.data(), 15, 4, -3000, 3000, f));
  // Arithmetic, but scale * acc does not fit int16, or more than 15 thresholds.
  const std::vector<int32_t> wide = arithmetic_thresholds(10, 300);
  EXPECT_FALSE(find_level_arithmetic(wide.data(), 15, 4, -9000, 9000, f));
  const std::vector<int32_t> many = arithmetic_thresholds(10, 3, 255);
  EXPECT_FALSE(find_level_arithmetic(many.data(), 255, 1, -1000, 1000, f));
}

// The shipped models' thresholds (trained, BatchNorm folded) all have forms,
// so the 702-image test below runs its conv1 and Winograd layers on them:
// on the x86 paths' numbers (conv1's pooled acc, Winograd's 4 * acc) and on
// the NEON path's (acc: scale 1 for every layer).
TEST(CpuIntLevelArithmetic, TheShippedModelsHaveAFormForEveryChannel) {
  const auto dir = default_model_path(ModelKind::quantized).parent_path();
  for (const char* file : {"busi-w2a4.bqnn", "busi-w2a4-2site.bqnn"}) {
    const Model m = Model::load(dir / file);
    const plan p = make_plan(m);
    std::vector<level_arithmetic> forms;
    EXPECT_TRUE(step_level_arithmetic(p.steps[0], 1, forms)) << file << " conv1";
    for (int i = 1; i <= 4; ++i) {
      EXPECT_TRUE(step_level_arithmetic(p.steps[i], 4, forms)) << file << " conv" << i + 1;
      EXPECT_TRUE(step_level_arithmetic(p.steps[i], 1, forms)) << file << " conv" << i + 1 << " on acc";
    }
  }
}

// Replaces every hidden layer's thresholds by arithmetic ones (a random step
// and offset per channel around its typical accumulators; every 7th channel
// one level over its whole range) and checks the fast paths on them, and again
// with one channel of each layer a repeated threshold (no form: the layer
// keeps its search on x86; on NEON the block of 8 channels holding it does).
TEST(CpuIntFastPaths, ArithmeticThresholdsOddShapes) {
  REQUIRE_FAST_PATH();
  std::mt19937_64 rng(11);
  auto uniform = [&](double lo, double hi) { return lo + (hi - lo) * double(rng() >> 11) / 9007199254740992.0; };
  // conv1 of the shipped models' shape (1 -> 8 channels: the AVX-512
  // single_channel kernel) or 1 -> 4 (the columns kernel, searching), then
  // Winograd layers of 4, 8, 16 and 64 inputs and 4, 16, 33, 40 and 64
  // outputs (one to four vectors, the last partial; pairs and a single one)
  // on rows of 17 and 7 tiles; a last conv without pool (direct). On NEON
  // every 3x3 conv with a pool is Winograd, on int16 lanes (the forms) where
  // 4 * |acc| fits: 8 channels at a time, the last 4 alone when their count
  // is odd (33 and 4 outputs).
  const std::vector<std::vector<RandomModelSpec::Conv>> shapes = {{{8, 3, 2}, {16, 3, 2}, {33, 3, 2}},
                                                                  {{8, 3, 2}, {4, 3, 2}, {13, 3, 0}},
                                                                  {{4, 3, 2}, {64, 3, 2}, {40, 3, 2}}};
  int index = 0, neon_narrow_form_steps = 0, neon_wide_form_steps = 0;
  for (const auto& convs : shapes)
    for (int w : {2, 4})
      for (bool one_without_form : {false, true}) {
        Model m = random_model(spec({1, 39, 75}, convs, {5}, 3, w, 4), 300 + index);
        for (Layer& layer : m.layers) {
          const int per = layer.thresholds_per_channel();
          if (per == 0) continue;  // pools and the logits
          const double fan_in = double(layer.weights.size()) / layer.out_channels;
          const double spread = std::sqrt(fan_in) * ((1 << (w - 1)) - 1) * ((1 << layer.input_bits) - 1) * 0.5 + 1;
          layer.thresholds.clear();
          for (int o = 0; o < layer.out_channels; ++o) {
            const double first = o % 7 == 6 ? (o % 2 ? 1e6 : -1e6) : uniform(-spread, spread / 2);
            const auto t = arithmetic_thresholds(first, uniform(1.5, spread / 6), per);
            layer.thresholds.insert(layer.thresholds.end(), t.begin(), t.end());
          }
          if (one_without_form) layer.thresholds[8] = layer.thresholds[7];  // channel 0's
        }
        m.validate("arithmetic thresholds");
        // Where the arithmetic kernels run (int16 accumulators), no layer has
        // forms with the repeated threshold; without it, every 2-bit-weight
        // layer has them. (Not always with 4-bit weights: conv1's range of
        // ~+-6000 leaves k * v + c an offset resolution of 1/5 of an
        // accumulator step, too coarse for some offsets.)
        const plan p = make_plan(m);
        for (std::size_t i = 0; i < p.steps.size(); ++i) {
          const conv_step& s = p.steps[i];
          const bool single_channel = s.in_c == 1 && s.oc == 8, winograd = winograd_shape(s) && s.in_c % 4 == 0;
          const int scale = single_channel ? 1 : 4;
          if (s.logits || !(single_channel || winograd) || scale * s.input_max * s.max_abs_channel_sum() > 32767)
            continue;
          std::vector<level_arithmetic> forms;
          const bool found = step_level_arithmetic(s, scale, forms);
          if (one_without_form || w == 2)
            EXPECT_EQ(found, !one_without_form) << "shape " << index << " step " << i << " w" << w;
        }
        // The NEON path's Winograd layers (forms on acc, per block of 8
        // channels): channel 0 has no form with the repeated threshold; with
        // 2-bit weights every other one has. Counted: the layers with a block
        // on forms, on int16 lanes (4 * |acc| fits) and on int32.
        for (std::size_t i = 0; i < p.steps.size(); ++i) {
          const conv_step& s = p.steps[i];
          if (!winograd_shape(s)) continue;
          std::vector<bool> block_has_forms((s.oc + 7) / 8, true);
          for (int o = 0; o < s.oc; ++o) {
            level_arithmetic f;
            const bool found = channel_level_arithmetic(s, o, 1, f);
            if (!found) block_has_forms[o / 8] = false;
            if (o == 0 && one_without_form)
              EXPECT_FALSE(found) << "shape " << index << " step " << i << " w" << w;
            else if (w == 2)
              EXPECT_TRUE(found) << "shape " << index << " step " << i << " channel " << o;
          }
          if (std::find(block_has_forms.begin(), block_has_forms.end(), true) != block_has_forms.end())
            ++(4 * s.input_max * s.max_abs_channel_sum() <= 32767 ? neon_narrow_form_steps : neon_wide_form_steps);
        }
        const std::string what = "arithmetic thresholds, shape " + std::to_string(index) + " w" + std::to_string(w);
        expect_fast_paths_match(m, 400 + index, what + (one_without_form ? ", one without form" : ""));
        ++index;
      }
  // 17 and 4 of the 12 models' 32 Winograd layers (the seeds are fixed).
  EXPECT_GE(neon_narrow_form_steps, 12) << "int16 Winograd layers the NEON path runs on forms";
  EXPECT_GE(neon_wide_form_steps, 2) << "int32 Winograd layers the NEON path runs on forms";
}

TEST(CpuIntFastPaths, AllBusiImagesWithTheShippedModel) {
  REQUIRE_FAST_PATH();
  BUSI_REQUIRE_DATA();
  const Model m = Model::load(default_model_path(ModelKind::quantized));
  reference_engine reference(m);
  std::vector<std::unique_ptr<engine>> fast;
  for (isa which : fast_isas()) fast.push_back(make_engine(m, which));
  const std::size_t count = m.layers.back().output.size();
  std::vector<int32_t> expected(count), actual(count);
  std::size_t images = 0, checked = 0;
  for (const char* label : {"normal", "benign", "malignant"})
    for (const auto& path : collect_images(test::busi_data_dir() / label)) {
      if (images++ % test::busi_image_stride) continue;
      const Tensor8 input = load_image(path, m.input.height, m.input.width);
      reference.run(input.pixels.data(), expected.data());
      for (auto& e : fast) {
        e->run(input.pixels.data(), actual.data());
        ASSERT_EQ(actual, expected) << path << " on " << isa_name(e->kind());
      }
      ++checked;
    }
  EXPECT_EQ(images, 702u) << "BUSI images under " << test::busi_data_dir();
  EXPECT_EQ(checked, (702 + test::busi_image_stride - 1) / test::busi_image_stride);
}

}  // namespace
}  // namespace busi::cpu_int
