// gray-area-v1 (runtime/src/image.cpp) against what it stands for, OpenCV's
// cv::cvtColor to gray then cv::resize(INTER_AREA) on cv::imdecode's pixels
// (docs/preprocessing.md; the training code's calls): byte for byte on every
// BUSI and BUS-BRA image, and on random images of random and odd sizes, with
// every channel count, row padding and the size changes OpenCV computes in
// other ways (enlarging, shrinking by a whole number).
#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

#include "busi/image.hpp"
#include "test_support.hpp"

namespace busi {
namespace {

// The reference: the OpenCV calls gray-area-v1 is defined by.
std::vector<uint8_t> opencv_gray_area(const cv::Mat& decoded, int height, int width) {
  cv::Mat eight = decoded;
  if (decoded.depth() == CV_16U) decoded.convertTo(eight, CV_8U, 1.0 / 257.0);
  cv::Mat gray = eight;
  if (eight.channels() == 3) cv::cvtColor(eight, gray, cv::COLOR_BGR2GRAY);
  if (eight.channels() == 4) cv::cvtColor(eight, gray, cv::COLOR_BGRA2GRAY);
  cv::Mat sized = gray;
  if (gray.rows != height || gray.cols != width) cv::resize(gray, sized, cv::Size(width, height), 0, 0, cv::INTER_AREA);
  std::vector<uint8_t> out(std::size_t(height) * width);
  for (int y = 0; y < height; ++y) std::memcpy(out.data() + std::size_t(y) * width, sized.ptr(y), std::size_t(width));
  return out;
}

std::vector<uint8_t> ours(const cv::Mat& m, int height, int width) {
  const ImageView view{m.data, m.cols, m.rows, m.channels(), m.step[0], int(m.elemSize1())};
  return preprocess(view, height, width).pixels;
}

// The first differing pixel, for the failure message.
std::string first_difference(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want, int width) {
  for (std::size_t i = 0; i < std::min(got.size(), want.size()); ++i)
    if (got[i] != want[i])
      return "pixel (" + std::to_string(i % width) + ", " + std::to_string(i / width) + "): " +
             std::to_string(got[i]) + " instead of " + std::to_string(want[i]);
  return got.size() == want.size() ? "" : "sizes differ";
}

// Every image of the folder, decoded and pre-processed by load_image, against
// OpenCV on cv::imread's pixels; returns how many were compared.
std::size_t expect_folder_matches_opencv(const std::filesystem::path& folder) {
  const auto files = collect_images(folder);
  std::size_t compared = 0;
  for (std::size_t i = 0; i < files.size(); i += test::busi_image_stride) {
    const cv::Mat decoded = cv::imread(files[i].string(), cv::IMREAD_UNCHANGED);
    const auto want = opencv_gray_area(decoded, 255, 255);
    const auto got = load_image(files[i], 255, 255).pixels;
    EXPECT_TRUE(got == want) << files[i] << " (" << decoded.cols << "x" << decoded.rows << "x" << decoded.channels()
                             << "): " << first_difference(got, want, 255);
    ++compared;
  }
  return compared;
}

TEST(Preprocess, EveryBusiImageGivesOpenCvsPixels) {
  BUSI_REQUIRE_DATA();
  EXPECT_EQ(expect_folder_matches_opencv(test::busi_data_dir()), (702 + test::busi_image_stride - 1) / test::busi_image_stride);
}

TEST(Preprocess, EveryBusBraImageGivesOpenCvsPixels) {
  const std::filesystem::path folder = std::getenv("BUSBRA_DATA") ? std::getenv("BUSBRA_DATA") : BUSBRA_DATA_DIR;
  if (!std::filesystem::is_directory(folder))
    GTEST_SKIP() << "BUS-BRA images not found at " << folder << " (set BUSBRA_DATA to its images/ folder)";
  EXPECT_EQ(expect_folder_matches_opencv(folder), (1350 + test::busi_image_stride - 1) / test::busi_image_stride);
}

cv::Mat random_image(int width, int height, int type, std::mt19937& rng) {
  cv::Mat m(height, width, type);
  cv::theRNG().state = rng();
  cv::randu(m, 0, CV_MAT_DEPTH(type) == CV_16U ? 65536 : 256);
  return m;
}

// Shrinks by scales that are not whole numbers (the fused pass), same sizes
// (gray only), whole-number shrinks and enlargements (OpenCV's own paths),
// to the model's 255x255 and to other sizes, from 1, 3 and 4 channels of 8
// and 16 bits.
TEST(Preprocess, RandomAndOddSizesGiveOpenCvsPixels) {
  std::mt19937 rng(17);
  struct Case {
    int width, height, to_width, to_height;
  };
  std::vector<Case> cases = {{256, 256, 255, 255}, {255, 255, 255, 255}, {256, 255, 255, 255}, {255, 256, 255, 255},
                             {257, 1000, 255, 255}, {2000, 256, 255, 255}, {510, 510, 255, 255}, {765, 510, 255, 255},
                             {511, 509, 255, 255}, {254, 254, 255, 255}, {1, 1, 255, 255},     {300, 200, 255, 255},
                             {200, 300, 255, 255}, {3, 700, 1, 255},     {700, 3, 255, 1},     {999, 998, 7, 5},
                             {256, 256, 128, 128}, {256, 256, 100, 37},  {33, 17, 32, 16},     {1280, 720, 255, 255}};
  std::uniform_int_distribution<int> size(2, 1400), target(1, 400);
  // A fifth of the random ones under qemu (ARM builds), where all of them take ~28 s.
  const int random_cases = test::busi_image_stride == 1 ? 40 : 8;
  for (int i = 0; i < random_cases; ++i) cases.push_back({size(rng), size(rng), 255, 255});
  for (int i = 0; i < random_cases / 2; ++i) cases.push_back({size(rng), size(rng), target(rng), target(rng)});
  for (const Case& c : cases) {
    for (int type : {CV_8UC1, CV_8UC3, CV_8UC4, CV_16UC1, CV_16UC3}) {
      const cv::Mat image = random_image(c.width, c.height, type, rng);
      const auto want = opencv_gray_area(image, c.to_height, c.to_width);
      EXPECT_TRUE(ours(image, c.to_height, c.to_width) == want)
          << c.width << "x" << c.height << " type " << type << " to " << c.to_width << "x" << c.to_height << ": "
          << first_difference(ours(image, c.to_height, c.to_width), want, c.to_width);
    }
  }
}

// Files through load_image, whose PNG path keeps RGB order: every channel
// count and depth on every way through (fused shrink, same size, enlarging,
// whole-number shrink), against OpenCV on cv::imread.
TEST(Preprocess, PngFilesOfEveryKindAndPathGiveOpenCvsPixels) {
  std::mt19937 rng(23);
  test::TempDir dir;
  const std::pair<int, int> sizes[] = {{256, 256}, {255, 255}, {300, 200}, {200, 300}, {510, 510}, {257, 999}};
  for (const auto& [width, height] : sizes) {
    for (int type : {CV_8UC1, CV_8UC3, CV_8UC4, CV_16UC1, CV_16UC3}) {
      const auto file = dir / ("i" + std::to_string(width) + "x" + std::to_string(height) + "t" + std::to_string(type) + ".png");
      ASSERT_TRUE(cv::imwrite(file.string(), random_image(width, height, type, rng)));
      const auto want = opencv_gray_area(cv::imread(file.string(), cv::IMREAD_UNCHANGED), 255, 255);
      const auto got = load_image(file, 255, 255).pixels;
      EXPECT_TRUE(got == want) << file << ": " << first_difference(got, want, 255);
    }
  }
}

// The gray conversion alone (images of the model's size are not resized):
// all 2^24 colours, 255x255 at a time, in BGR and BGRA.
TEST(Preprocess, EveryColourGivesOpenCvsGray) {
  cv::Mat bgr(255, 255, CV_8UC3), bgra;
  const uint32_t tile = 255 * 255;
  for (uint32_t first = 0; first < (1u << 24); first += tile) {
    for (uint32_t i = 0; i < tile; ++i) {
      const uint32_t colour = (first + i) & 0xffffff;
      bgr.at<cv::Vec3b>(int(i / 255), int(i % 255)) = {uint8_t(colour), uint8_t(colour >> 8), uint8_t(colour >> 16)};
    }
    const auto want = opencv_gray_area(bgr, 255, 255);
    ASSERT_TRUE(ours(bgr, 255, 255) == want) << "colours from " << first;
    if (first % (64 * tile) == 0) {  // BGRA every 64th tile: the alpha is skipped the same way
      cv::cvtColor(bgr, bgra, cv::COLOR_BGR2BGRA);
      ASSERT_TRUE(ours(bgra, 255, 255) == want) << "colours from " << first << ", BGRA";
    }
  }
}

// Gray stored as colour, as every BUSI image is, with coloured pixels here and
// there (a mark, a single channel off by one): the steps whose pixels are all
// gray are copied, the others weighted; every width around the steps' size,
// 3 and 4 channels, through the same-size and the fused paths.
TEST(Preprocess, GrayStoredAsColourWithAFewColouredPixelsGivesOpenCvsPixels) {
  std::mt19937 rng(29);
  for (int channels : {3, 4})
    for (int width = 1; width <= 80; ++width) {
      const int height = 1 + int(rng() % 5);
      const cv::Mat gray = random_image(width, height, CV_8UC1, rng);
      cv::Mat image;
      cv::cvtColor(gray, image, channels == 3 ? cv::COLOR_GRAY2BGR : cv::COLOR_GRAY2BGRA);
      for (int k = int(rng() % 4); k > 0; --k) {  // nudge one channel of a few pixels
        uint8_t& channel = image.ptr(int(rng() % height))[(rng() % width) * channels + rng() % 3];
        channel = uint8_t(channel ^ (1 + rng() % 2));
      }
      for (const auto& [to_width, to_height] : {std::pair{width, height}, std::pair{(width + 1) * 2 / 3, height}}) {
        const auto want = opencv_gray_area(image, to_height, to_width);
        EXPECT_TRUE(ours(image, to_height, to_width) == want)
            << width << "x" << height << "x" << channels << " to " << to_width << "x" << to_height << ": "
            << first_difference(ours(image, to_height, to_width), want, to_width);
      }
    }
  for (int width : {300, 301, 317}) {  // the fused path's usual shrink to 255x255
    cv::Mat image;
    cv::cvtColor(random_image(width, 280, CV_8UC1, rng), image, cv::COLOR_GRAY2BGR);
    image.at<cv::Vec3b>(int(rng() % 280), int(rng() % width))[1] ^= 1;
    EXPECT_TRUE(ours(image, 255, 255) == opencv_gray_area(image, 255, 255)) << width;
  }
}

// Rows with padding after them (a view into a larger image) and smooth images,
// whose sums land near the rounding boundaries more often than noise does.
TEST(Preprocess, PaddedRowsAndGradientsGiveOpenCvsPixels) {
  std::mt19937 rng(5);
  const cv::Mat big = random_image(700, 500, CV_8UC3, rng);
  const cv::Mat inner = big(cv::Rect(13, 7, 600, 400));
  ASSERT_GT(inner.step[0], std::size_t(600 * 3));
  EXPECT_TRUE(ours(inner, 255, 255) == opencv_gray_area(inner, 255, 255));
  for (int width : {256, 257, 383, 512, 600}) {
    cv::Mat ramp(width, width, CV_8UC1);
    for (int y = 0; y < width; ++y)
      for (int x = 0; x < width; ++x) ramp.at<uint8_t>(y, x) = uint8_t((x + y) * 255 / (2 * width - 2));
    EXPECT_TRUE(ours(ramp, 255, 255) == opencv_gray_area(ramp, 255, 255)) << width;
    const cv::Mat flat(width, width + 1, CV_8UC1, cv::Scalar(255));
    EXPECT_TRUE(ours(flat, 255, 255) == opencv_gray_area(flat, 255, 255)) << width;
  }
}

}  // namespace
}  // namespace busi
