#include "busi/image.hpp"

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <sys/stat.h>

#include "busi/error.hpp"
#include "busi/limits.hpp"
#include "test_support.hpp"

namespace busi {
namespace {

using test::TempDir;

std::string load_error(const std::filesystem::path& path) {
  try {
    load_image(path, 255, 255);
  } catch (const image_error& e) {
    return e.what();
  }
  return "";
}

cv::Mat gradient(int w, int h, int type) {
  cv::Mat m(h, w, type);
  cv::randu(m, 0, type == CV_16UC1 || type == CV_16UC3 ? 65535 : 255);
  return m;
}

TEST(Image, GrayAtModelSizePassesThroughUnchanged) {
  TempDir dir;
  const cv::Mat gray = gradient(255, 255, CV_8UC1);
  cv::imwrite((dir / "g.png").string(), gray);
  const Tensor8 t = load_image(dir / "g.png", 255, 255);
  ASSERT_EQ(t.pixels.size(), 255u * 255u);
  EXPECT_EQ(0, std::memcmp(t.pixels.data(), gray.data, t.pixels.size()));
}

TEST(Image, ColorAlphaAndSixteenBitGiveTheSameGray) {
  TempDir dir;
  const cv::Mat bgr = gradient(300, 200, CV_8UC3);
  cv::Mat bgra, bgr16;
  cv::cvtColor(bgr, bgra, cv::COLOR_BGR2BGRA);
  bgr.convertTo(bgr16, CV_16U, 257.0);  // x*257 maps 0..255 onto 0..65535 exactly
  cv::imwrite((dir / "c.png").string(), bgr);
  cv::imwrite((dir / "a.png").string(), bgra);
  cv::imwrite((dir / "w.png").string(), bgr16);
  const auto c = load_image(dir / "c.png", 255, 255).pixels;
  EXPECT_EQ(load_image(dir / "a.png", 255, 255).pixels, c);
  EXPECT_EQ(load_image(dir / "w.png", 255, 255).pixels, c);
  // In-memory pixels take the same path as files.
  ImageView view{bgr.data, bgr.cols, bgr.rows, 3, bgr.step[0], 1};
  EXPECT_EQ(preprocess(view, 255, 255).pixels, c);
}

TEST(Image, OnePixelAndLargeImagesAreResized) {
  TempDir dir;
  cv::imwrite((dir / "one.png").string(), cv::Mat(1, 1, CV_8UC1, cv::Scalar(77)));
  const auto one = load_image(dir / "one.png", 255, 255).pixels;
  EXPECT_EQ(std::count(one.begin(), one.end(), 77), 255 * 255);
  // 2160x3840 BGR, 24.9 MB decoded: within limits::kDecodeBytes (25.2 MB).
  cv::imwrite((dir / "big.png").string(), cv::Mat(2160, 3840, CV_8UC3, cv::Scalar(10, 20, 30)));
  EXPECT_EQ(load_image(dir / "big.png", 255, 255).pixels.size(), 255u * 255u);
}

TEST(Image, BadFilesGetMessagesNamingFileAndReason) {
  TempDir dir;
  test::write_file(dir / "empty.png", {});
  test::write_file(dir / "text.png", {'h', 'e', 'l', 'l', 'o', '\n'});
  cv::imwrite((dir / "ok.png").string(), gradient(64, 64, CV_8UC3));
  auto png = test::read_file(dir / "ok.png");
  test::write_file(dir / "cut.png", {png.begin(), png.begin() + png.size() / 2});
  cv::imwrite((dir / "ok.jpg").string(), gradient(64, 64, CV_8UC3));
  auto jpg = test::read_file(dir / "ok.jpg");
  test::write_file(dir / "cut.jpg", {jpg.begin(), jpg.begin() + jpg.size() * 2 / 3});

  EXPECT_NE(load_error(dir / "missing.png").find("missing.png: no such file"), std::string::npos);
  EXPECT_NE(load_error(dir / "empty.png").find("empty.png: file is empty"), std::string::npos);
  EXPECT_NE(load_error(dir / "text.png").find("text.png: not a readable image"), std::string::npos);
  EXPECT_NE(load_error(dir / "cut.png").find("cut.png: not a readable image"), std::string::npos);
  EXPECT_NE(load_error(dir / "cut.jpg").find("cut.jpg: truncated JPEG"), std::string::npos);
  EXPECT_NE(load_error(dir.path()).find("is a directory"), std::string::npos);
  EXPECT_EQ(load_error(dir / "ok.jpg"), "");
}

// Red-team finding 3: /dev/zero as an image grew to gigabytes (the size cap
// skipped non-regular files), and a FIFO with no writer blocked forever.
TEST(Image, NonRegularAndOversizedFilesAreRefusedUnread) {
  TempDir dir;
  EXPECT_NE(load_error("/dev/zero").find("/dev/zero: is a character device, not a regular file"), std::string::npos);
  const auto fifo = dir / "fifo.png";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(load_error(fifo).find("fifo.png: is a FIFO (named pipe), not a regular file"), std::string::npos);
  const auto big = dir / "big.png";
  test::write_file(big, {0x89, 'P', 'N', 'G'});
  std::filesystem::resize_file(big, limits::kImageFileBytes + 1);  // sparse: no disk used
  EXPECT_NE(load_error(big).find("big.png: file of 33554433 bytes is too large (limit 33554432 bytes)"),
            std::string::npos)
      << load_error(big);
}

TEST(Image, BadViewsAreRejected) {
  uint8_t px[4] = {};
  EXPECT_THROW(preprocess(ImageView{nullptr, 2, 2, 1, 0, 1}, 255, 255), image_error);
  EXPECT_THROW(preprocess(ImageView{px, 2, 2, 2, 0, 1}, 255, 255), image_error);  // 2 channels
  EXPECT_THROW(preprocess(ImageView{px, 2, 2, 1, 1, 1}, 255, 255), image_error);  // stride < row
  EXPECT_THROW(preprocess(ImageView{px, 2, 2, 1, 0, 1}, 0, 255), image_error);    // no model size
  // Views are limited by bytes too: 3000x3000 BGRA16 is 72 MB (checked before a byte is read).
  const auto message = test::error_of([&] { preprocess(ImageView{px, 3000, 3000, 4, 0, 2}, 255, 255); });
  EXPECT_NE(message.find("image view: 3000x3000 pixels (72000000 bytes) is too large (limit 25165824 bytes)"),
            std::string::npos)
      << message;
}

TEST(Image, CollectsImagesRecursivelySorted) {
  TempDir dir;
  std::filesystem::create_directories(dir / "b/c");
  for (auto name : {"b/c/z.PNG", "b/a.jpg", "a.png", "notes.txt"}) test::write_file(dir / name, {1});
  const auto files = collect_images(dir.path());
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].filename(), "a.png");
  EXPECT_EQ(files[1].filename(), "a.jpg");
  EXPECT_EQ(files[2].filename(), "z.PNG");
  EXPECT_THROW(collect_images(dir / "nope"), error);
  EXPECT_EQ(collect_images(dir / "notes.txt").size(), 1u);  // an explicit file is always taken
}

TEST(Image, BusiImagesDecode) {
  BUSI_REQUIRE_DATA();
  const auto files = collect_images(test::busi_data_dir());
  EXPECT_EQ(files.size(), 702u);
  const Tensor8 t = load_image(files.front(), 255, 255);
  EXPECT_EQ(t.height, 255);
  EXPECT_EQ(t.width, 255);
}

}  // namespace
}  // namespace busi
