// The gate, calibrated scores and the referral decision (docs/safety.md): what
// make_prediction and the gate before inference decide, for every backend, and
// the shipped packages' calibration on real images and on negatives.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

#include "busi/area_shrink.hpp"
#include "busi/backend.hpp"
#include "busi/error.hpp"
#include "busi/limits.hpp"
#include "busi/random_model.hpp"
#include "test_support.hpp"

namespace busi {
namespace {

// A calibration that accepts everything the pre-inference rules let through
// (identity precision, a huge threshold), with a referral threshold of 0.5.
Calibration permissive_calibration(std::size_t classes) {
  Calibration c;
  c.fitted_on = "test";
  c.temperature = 2;
  c.gate.min_side = 128;
  c.gate.min_stddev = 4;
  c.gate.max_colour = 2;
  c.gate.ood_score = "image-logit-mahalanobis-v1";
  const std::size_t n = Calibration::Gate::image_statistics + classes;
  c.gate.mean.assign(n, 0.0);
  c.gate.precision.assign(n * n, 0.0);
  for (std::size_t i = 0; i < n; ++i) c.gate.precision[i * n + i] = 1;
  c.gate.ood_threshold = 1e9;
  c.gate.accepted_rate = 1;
  c.referral = {0.97, 0.5, 0.97, 0.5, {{0.1, 1.0, 0.1}, {0.5, 0.97, 0.5}, {0.9, 0.6, 0.9}}};
  c.suspicious = {0.9, 0.5, 0.9, 0.5, {{0.5, 0.9, 0.5}}};
  return c;
}

std::shared_ptr<const Model> calibrated_random_model(Calibration c) {
  Model m = random_model(paper_network_spec(2, 4), 3);
  m.calibration = std::move(c);
  return std::make_shared<const Model>(std::move(m));
}

std::unique_ptr<Classifier> cpu_int_on(std::shared_ptr<const Model> model) {
  ClassifierOptions o;
  o.model = std::move(model);
  return make_classifier("cpu_int", o);
}

cv::Mat noise(int height, int width, int type, uint64_t seed) {
  cv::Mat m(height, width, type);
  cv::RNG rng(seed);
  rng.fill(m, cv::RNG::UNIFORM, 0, 256);
  return m;
}

Prediction classify_mat(Classifier& c, const cv::Mat& m) {
  ImageView view{m.data, m.cols, m.rows, m.channels(), m.step[0], int(m.elemSize1())};
  return c.classify_pixels(view);
}

TEST(Gate, RefusesTooSmallColourAndBlankImagesSayingWhy) {
  auto classifier = cpu_int_on(calibrated_random_model(permissive_calibration(3)));
  const Prediction small = classify_mat(*classifier, noise(40, 40, CV_8UC1, 1));
  EXPECT_EQ(small.verdict, Verdict::unreadable);
  EXPECT_TRUE(std::isnan(small.p_abnormal));  // no decision on its scores
  EXPECT_FALSE(small.suspicious_malignancy);
  EXPECT_NE(small.reason.find("image 40x40 is smaller than 128 pixels on its shorter side"), std::string::npos)
      << small.reason;
  EXPECT_NE(small.reason.find("enlarged 6.4x"), std::string::npos) << small.reason;

  const Prediction colour = classify_mat(*classifier, noise(300, 300, CV_8UC4, 2));
  EXPECT_EQ(colour.verdict, Verdict::unreadable);
  EXPECT_NE(colour.reason.find("image is in colour"), std::string::npos) << colour.reason;

  cv::Mat blank(300, 400, CV_8UC1, cv::Scalar(120));
  const Prediction flat = classify_mat(*classifier, blank);
  EXPECT_EQ(flat.verdict, Verdict::unreadable);
  EXPECT_NE(flat.reason.find("blank or nearly constant (pixel standard deviation 0.00 < 4.0)"), std::string::npos)
      << flat.reason;
}

TEST(Gate, AGrayImageStoredAsColourIsNotColour) {
  auto classifier = cpu_int_on(calibrated_random_model(permissive_calibration(3)));
  cv::Mat gray = noise(300, 300, CV_8UC1, 3), bgr;
  cv::Mat planes[] = {gray, gray, gray};
  cv::merge(planes, 3, bgr);
  const Prediction p = classify_mat(*classifier, bgr);
  EXPECT_NE(p.verdict, Verdict::unreadable) << p.reason;
}

TEST(Gate, EachInputOfABatchGetsTheVerdictItGetsAlone) {
  auto classifier = cpu_int_on(calibrated_random_model(permissive_calibration(3)));
  const Model& model = classifier->model();
  std::vector<Tensor8> inputs;
  for (int i = 0; i < 4; ++i)
    inputs.push_back(preprocess(
        [&] {
          static std::vector<cv::Mat> keep;
          keep.push_back(i == 1 ? cv::Mat(300, 300, CV_8UC1, cv::Scalar(7)) : noise(300, 300, CV_8UC1, 10 + i));
          const cv::Mat& m = keep.back();
          return ImageView{m.data, m.cols, m.rows, 1, m.step[0], 1};
        }(),
        model.input.height, model.input.width));
  const auto got = classifier->classify_batch(inputs);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[1].verdict, Verdict::unreadable);
  for (int i : {0, 2, 3}) {
    const Prediction alone = classifier->classify(inputs[i]);
    EXPECT_EQ(got[i].logits, alone.logits) << i;
    EXPECT_EQ(got[i].verdict, alone.verdict) << i;
    EXPECT_EQ(got[i].reason, alone.reason) << i;
  }
}

TEST(Verdict, ReferralIsPAbnormalAgainstTheThresholdOfTheTemperatureScaledScores) {
  auto model = calibrated_random_model(permissive_calibration(3));
  const std::vector<int32_t> logits = {100, 40, -20};
  RawOutput raw;
  raw.logits = logits;
  Tensor8 input{model->input.height, model->input.width, random_pixels(model->input.size(), 5)};
  const Prediction p = make_prediction(*model, "cpu_int", input, std::move(raw));
  // softmax(logits * scale / 2) by hand.
  double e[3], sum = 0;
  for (int i = 0; i < 3; ++i) sum += e[i] = std::exp(logits[i] * double(model->logit_scale) / 2);
  EXPECT_NEAR(p.scores[0], e[0] / sum, 1e-6);
  EXPECT_NEAR(p.p_abnormal, (e[1] + e[2]) / sum, 1e-6);
  const bool refer = p.p_abnormal >= 0.5;
  EXPECT_EQ(p.verdict, refer ? Verdict::refer : Verdict::routine);
  char want[80];
  std::snprintf(want, sizeof want, "P(abnormal) %.2f %s 0.50 (97%% sensitivity)", p.p_abnormal, refer ? ">=" : "<");
  EXPECT_EQ(p.reason, want);
  EXPECT_EQ(p.suspicious_malignancy, e[2] / sum >= 0.5);
  EXPECT_EQ(p.ood_features.size(), Calibration::Gate::image_statistics + 3);
}

TEST(Verdict, AnOutOfDistributionScoreAboveTheThresholdIsUnreadable) {
  Calibration c = permissive_calibration(3);
  c.gate.ood_threshold = 0.5;  // every image is farther than that from a zero mean
  auto model = calibrated_random_model(c);
  RawOutput raw;
  raw.logits = {1, 2, 3};
  Tensor8 input{model->input.height, model->input.width, random_pixels(model->input.size(), 6)};
  const Prediction p = make_prediction(*model, "cpu_int", input, std::move(raw));
  EXPECT_EQ(p.verdict, Verdict::unreadable);
  EXPECT_NE(p.reason.find("out of distribution: score "), std::string::npos) << p.reason;
  EXPECT_NE(p.reason.find(" > 0.5 (image-logit-mahalanobis-v1)"), std::string::npos) << p.reason;
  EXPECT_GT(p.ood_score, 0.5);
}

TEST(Verdict, ATop1BackendOrAnUncalibratedPackageIsUnavailableSayingWhy) {
  auto model = calibrated_random_model(permissive_calibration(3));
  RawOutput top1;
  top1.top_class = 2;
  Tensor8 input{model->input.height, model->input.width, random_pixels(model->input.size(), 7)};
  const Prediction p = make_prediction(*model, "fpga", input, std::move(top1));
  EXPECT_EQ(p.verdict, Verdict::unavailable);
  EXPECT_EQ(p.class_index, 2);
  EXPECT_TRUE(std::isnan(p.p_abnormal));
  EXPECT_EQ(p.reason, "backend fpga reports only the top-1 class (a TopK overlay), so it has no scores to refer on");

  const Model bare = random_model(paper_network_spec(2, 4), 3);
  RawOutput raw;
  raw.logits = {1, 2, 3};
  const Prediction q = make_prediction(bare, "cpu_int", input, std::move(raw));
  EXPECT_EQ(q.verdict, Verdict::unavailable);
  EXPECT_NE(q.reason.find("has no calibration block"), std::string::npos) << q.reason;
}

TEST(Referral, ASensitivityIsChosenFromTheCurveOrRefusedSayingWhatItCovers) {
  auto classifier = cpu_int_on(calibrated_random_model(permissive_calibration(3)));
  const OperatingPoint p = classifier->model().referral_at(0.95);
  EXPECT_EQ(p.threshold, 0.5);  // the highest threshold with sensitivity >= 0.95
  EXPECT_EQ(classifier->model().referral_at(0.6).threshold, 0.9);
  EXPECT_EQ(classifier->model().referral_at(1.0).threshold, 0.1);
  const std::string low = test::error_of([&] { classifier->set_referral_sensitivity(0.5); });
  EXPECT_NE(low.find("sensitivity 0.5 cannot be chosen: the stored referral curve covers sensitivities 0.60 to 1.00"),
            std::string::npos)
      << low;
  const std::string high = test::error_of([&] { classifier->set_referral_sensitivity(1.5); });
  EXPECT_NE(high.find("is not in (0, 1]"), std::string::npos) << high;
  const auto bare = cpu_int_on(std::make_shared<const Model>(random_model(paper_network_spec(2, 4), 3)));
  const std::string none = test::error_of([&] { bare->set_referral_sensitivity(0.9); });
  EXPECT_NE(none.find("has no calibration block"), std::string::npos) << none;

  // The chosen threshold is the one the verdict uses.
  classifier->set_referral_sensitivity(1.0);
  const Prediction q = classifier->classify(
      Tensor8{255, 255, random_pixels(255 * 255, 9), 255, 255, 0});
  EXPECT_NE(q.reason.find(" 0.10 (100% sensitivity)"), std::string::npos) << q.reason;
}

// ---- the gate's statistics: each fast path against its slow definition ----

// Each statistic of input_statistics counted alone, pixel by pixel.
InputStatistics counted_alone(const Tensor8& t) {
  InputStatistics s;
  const int h = t.height, w = t.width;
  const auto at = [&](int y, int x) { return int(t.pixels[std::size_t(y) * w + x]); };
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      ++s.histogram[at(y, x)];
      const int right = x + 1 < w ? std::abs(at(y, x + 1) - at(y, x)) : 0;
      const int below = y + 1 < h ? std::abs(at(y + 1, x) - at(y, x)) : 0;
      s.across += right;
      s.down += below;
      if (x + 1 < w && y + 1 < h) ++s.edges[right + below];
      if (y < h / 3) s.top += at(y, x);
      if (y >= h - h / 3) s.bottom += at(y, x);
      if (x < w / 3 || x >= w - w / 3) s.sides += at(y, x);
    }
  return s;
}

// input_statistics and its standard deviation against counted_alone and
// cv::meanStdDev, and area_shrink at the features' scales (and every other
// shrink `shrinks` lists) against cv::resize of the pixels as floats, all bit
// for bit; `what` names the input in failures.
void expect_statistics_exact(const Tensor8& t, const std::string& what,
                             std::vector<std::pair<int, int>> shrinks = {}) {
  const InputStatistics fast = input_statistics(t), slow = counted_alone(t);
  EXPECT_TRUE(fast.histogram == slow.histogram) << what;
  EXPECT_TRUE(fast.edges == slow.edges) << what;
  EXPECT_EQ(fast.across, slow.across) << what;
  EXPECT_EQ(fast.down, slow.down) << what;
  EXPECT_EQ(fast.top, slow.top) << what;
  EXPECT_EQ(fast.bottom, slow.bottom) << what;
  EXPECT_EQ(fast.sides, slow.sides) << what;
  const cv::Mat pixels(t.height, t.width, CV_8U, const_cast<uint8_t*>(t.pixels.data()));
  cv::Scalar mean, stddev;
  cv::meanStdDev(pixels, mean, stddev);
  EXPECT_EQ(fast.pixel_stddev(), stddev[0]) << what;  // exactly: the blank rule's figure
  for (int k : {3, 9})
    if (t.height / k > 0 && t.width / k > 0) shrinks.push_back({t.height / k, t.width / k});
  cv::Mat floats;
  pixels.convertTo(floats, CV_32F);
  std::vector<float> got;
  for (const auto& [rows, cols] : shrinks) {
    cv::Mat want;
    cv::resize(floats, want, cv::Size(cols, rows), 0, 0, cv::INTER_AREA);
    area_shrink(t.pixels.data(), t.height, t.width, rows, cols, got);
    ASSERT_EQ(got.size(), std::size_t(rows) * cols);
    EXPECT_EQ(std::memcmp(got.data(), want.ptr<float>(), got.size() * sizeof(float)), 0)
        << what << " shrunk to " << cols << "x" << rows;
  }
}

Tensor8 tensor_of(const cv::Mat& gray) {
  Tensor8 t{gray.rows, gray.cols, {}, gray.rows, gray.cols, 0};
  for (int y = 0; y < gray.rows; ++y) t.pixels.insert(t.pixels.end(), gray.ptr(y), gray.ptr(y) + gray.cols);
  return t;
}

TEST(GateStatistics, OnePassAndAreaShrinksEqualTheirDefinitionsOnOddShapesAndRandomPixels) {
  std::mt19937 rng(17);
  for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{
           {1, 1}, {1, 7}, {7, 1}, {2, 2}, {3, 5}, {18, 18}, {37, 53}, {64, 97}, {255, 255}, {256, 300}, {301, 129}}) {
    const std::string size = std::to_string(cols) + "x" + std::to_string(rows);
    // A random shrink of each input besides its 1/3 and 1/9, and whole-number ones.
    std::vector<std::pair<int, int>> shrinks = {{rows, cols}, {1, 1}};
    shrinks.push_back({1 + int(rng() % rows), 1 + int(rng() % cols)});
    for (int k : {2, 4, 5})
      if (rows % k == 0 && cols % k == 0) shrinks.push_back({rows / k, cols / k});
    expect_statistics_exact(tensor_of(noise(rows, cols, CV_8UC1, rng())), "noise " + size, shrinks);
    expect_statistics_exact(tensor_of(cv::Mat(rows, cols, CV_8UC1, cv::Scalar(int(rng() % 256)))), "constant " + size,
                            shrinks);
    // Runs of black around a noisy middle (the border of a scan), and a gradient.
    cv::Mat framed = noise(rows, cols, CV_8UC1, rng()), gradient(rows, cols, CV_8UC1);
    framed.rowRange(0, rows / 4).setTo(0), framed.rowRange(rows - rows / 4, rows).setTo(0);
    framed.colRange(0, cols / 4).setTo(0), framed.colRange(cols - cols / 4, cols).setTo(0);
    for (int y = 0; y < rows; ++y)
      for (int x = 0; x < cols; ++x) gradient.at<uint8_t>(y, x) = uint8_t((3 * x + 5 * y) % 256);
    expect_statistics_exact(tensor_of(framed), "framed noise " + size, shrinks);
    expect_statistics_exact(tensor_of(gradient), "gradient " + size, shrinks);
  }
}

TEST(GateStatistics, TheColourOfEveryWidthAndChannelCountIsItsDefinition) {
  // Tensor8::source_colour: mean |B - G| + |G - R| of the decoded pixels,
  // whatever the width (the vector loop's steps and the scalar rest), the
  // channel count, the row padding and the way through pre-processing (the
  // fused shrink, the gray conversion alone, OpenCV's enlargement), on noise
  // and on gray stored as colour with a few coloured pixels.
  std::mt19937 rng(5);
  for (int channels : {3, 4})
    for (int width = 1; width <= 70; ++width) {
      const int height = 3 + int(rng() % 5);
      cv::Mat gray_as_colour;
      cv::cvtColor(noise(height, width + 3, CV_8UC1, rng()), gray_as_colour,
                   channels == 3 ? cv::COLOR_GRAY2BGR : cv::COLOR_GRAY2BGRA);
      gray_as_colour.at<uint8_t>(int(rng() % height), int(rng() % width) * channels + 1) ^= 7;
      for (const cv::Mat& padded : {noise(height, width + 3, CV_8UC(channels), rng()), gray_as_colour}) {
        const cv::Mat m = padded(cv::Rect(0, 0, width, height));
        uint64_t total = 0;
        for (int y = 0; y < height; ++y)
          for (int x = 0; x < width; ++x) {
            const uint8_t* px = m.ptr(y) + std::size_t(x) * channels;
            total += uint64_t(std::abs(px[0] - px[1]) + std::abs(px[1] - px[2]));
          }
        const ImageView view{m.data, m.cols, m.rows, channels, m.step[0], 1};
        for (const auto& [to_height, to_width] :
             {std::pair{20, 20}, std::pair{height, width}, std::pair{height - 1, std::max(width - 1, 1)}})
          EXPECT_EQ(preprocess(view, to_height, to_width).source_colour,
                    float(double(total) / (double(width) * height)))
              << width << "x" << height << "x" << channels << " to " << to_width << "x" << to_height;
      }
    }
}

// Every image of the folder (every 7th in unoptimised builds): its input's
// statistics and shrinks, and its colour, against their definitions.
std::size_t expect_folder_statistics_exact(const std::filesystem::path& folder) {
  std::size_t checked = 0;
  const auto files = collect_images(folder);
  for (std::size_t i = 0; i < files.size(); i += test::busi_image_stride, ++checked) {
    const Tensor8 input = load_image(files[i], 255, 255);
    expect_statistics_exact(input, files[i].string());
    std::string reason;
    const auto bytes = limits::read_file(files[i], limits::kImageFileBytes, reason);
    if (!bytes) {
      ADD_FAILURE() << reason;
      continue;
    }
    const DecodedImage decoded = decode_image(*bytes, files[i].string());
    if (decoded.channels < 3 || decoded.bytes_per_channel != 1) {
      EXPECT_EQ(input.source_colour, decoded.channels < 3 ? 0.f : input.source_colour) << files[i];
      continue;
    }
    uint64_t total = 0;
    for (std::size_t at = 0; at < decoded.pixels.size(); at += std::size_t(decoded.channels))
      total += uint64_t(std::abs(decoded.pixels[at] - decoded.pixels[at + 1]) +
                        std::abs(decoded.pixels[at + 1] - decoded.pixels[at + 2]));
    EXPECT_EQ(input.source_colour, float(double(total) / (double(decoded.width) * decoded.height))) << files[i];
  }
  return checked;
}

TEST(GateStatistics, EveryBusiAndBusBraImageGivesTheDefinitionsFigures) {
  BUSI_REQUIRE_DATA();
  EXPECT_EQ(expect_folder_statistics_exact(test::busi_data_dir()),
            (702 + test::busi_image_stride - 1) / test::busi_image_stride);
  const std::filesystem::path busbra = std::getenv("BUSBRA_DATA") ? std::getenv("BUSBRA_DATA") : BUSBRA_DATA_DIR;
  if (!std::filesystem::is_directory(busbra))
    GTEST_SKIP() << "BUS-BRA images not found at " << busbra << " (set BUSBRA_DATA to its images/ folder)";
  EXPECT_EQ(expect_folder_statistics_exact(busbra), (1350 + test::busi_image_stride - 1) / test::busi_image_stride);
}

TEST(ShippedCalibration, RefusesTheIssuesExamples) {
  auto classifier = cpu_int_on(std::make_shared<const Model>(Model::load(default_model_path(ModelKind::quantized))));
  ASSERT_TRUE(classifier->model().calibration) << "the shipped package has no calibration block";
  // The issue's examples: 300x300 noise, RGBA noise, a 1x1 image (the rates
  // on real images and on every kind of negative: tests/bad_input_test.py).
  for (const auto& [what, image] : {std::pair{"noise", noise(300, 300, CV_8UC1, 21)},
                                    std::pair{"RGBA noise", noise(300, 300, CV_8UC4, 22)},
                                    std::pair{"1x1", noise(1, 1, CV_8UC1, 23)}}) {
    const Prediction p = classify_mat(*classifier, image);
    EXPECT_EQ(p.verdict, Verdict::unreadable) << what << ": " << p.reason;
  }
}

}  // namespace
}  // namespace busi
