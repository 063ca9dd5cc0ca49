// The image decoder (libdeflate/libpng + libjpeg) against the oracle,
// cv::imdecode: the same pixels, layout and depth for every BUSI image and for
// every PNG colour type, bit depth, transparency and interlacing (the fast
// libdeflate path and libpng alike), and gray, colour and progressive JPEG;
// and an error, never a crash, for bad bytes and for headers that claim more
// pixels than the board's memory holds.
#include <gtest/gtest.h>
#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <random>

#include "busi/error.hpp"
#include "busi/image.hpp"
#include "test_support.hpp"

namespace busi {
namespace {

// What the training code and the old PC build decoded with.
DecodedImage opencv_decode(const std::vector<uint8_t>& bytes, int flags = cv::IMREAD_UNCHANGED) {
  const cv::Mat m = cv::imdecode(bytes, flags);
  DecodedImage out{m.cols, m.rows, m.channels(), int(m.elemSize1()), {}};
  const std::size_t row = std::size_t(m.cols) * m.elemSize();
  out.pixels.resize(row * m.rows);
  for (int y = 0; y < m.rows; ++y) std::memcpy(out.pixels.data() + row * y, m.ptr(y), row);
  return out;
}

void expect_same_decoding(const std::vector<uint8_t>& bytes, const std::string& name) {
  const DecodedImage want = opencv_decode(bytes);
  const DecodedImage got = decode_image(bytes, name);
  EXPECT_EQ(got.width, want.width) << name;
  EXPECT_EQ(got.height, want.height) << name;
  EXPECT_EQ(got.channels, want.channels) << name;
  EXPECT_EQ(got.bytes_per_channel, want.bytes_per_channel) << name;
  EXPECT_TRUE(got.pixels == want.pixels) << name << ": pixels differ";
}

std::string decode_error(const std::vector<uint8_t>& bytes) {
  try {
    decode_image(bytes, "x.img");
  } catch (const image_error& e) {
    return e.what();
  }
  return "";
}

// A PNG of any colour type and depth through libpng's writer (cv::imwrite
// covers only 8/16-bit gray, BGR and BGRA), random samples, optional tRNS.
// `filter`: one of libpng's PNG_FILTER_* for every row (0: libpng's choice);
// `idat_bytes`: the most data per IDAT chunk (0: libpng's 8 KiB).
std::vector<uint8_t> write_png(int width, int height, int color_type, int bit_depth, bool trns, bool interlaced,
                               uint32_t seed, int filter = 0, std::size_t idat_bytes = 0) {
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    ADD_FAILURE() << "libpng could not write the test image";
    return {};
  }
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, png_size_t n) {
        auto* o = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
        o->insert(o->end(), data, data + n);
      },
      nullptr);
  if (filter) png_set_filter(png, PNG_FILTER_TYPE_BASE, filter);
  if (idat_bytes) png_set_compression_buffer_size(png, idat_bytes);
  png_set_IHDR(png, info, width, height, bit_depth, color_type,
               interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  std::mt19937 rng(seed);
  const int max_sample = (1 << bit_depth) - 1;
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    std::vector<png_color> palette(std::size_t(1) << bit_depth);
    for (auto& c : palette) c = {png_byte(rng()), png_byte(rng()), png_byte(rng())};
    png_set_PLTE(png, info, palette.data(), int(palette.size()));
    if (trns) {
      std::vector<png_byte> alpha(palette.size());
      for (auto& a : alpha) a = png_byte(rng());
      png_set_tRNS(png, info, alpha.data(), int(alpha.size()), nullptr);
    }
  } else if (trns) {
    png_color_16 key{};
    key.gray = key.red = png_uint_16(rng() % (max_sample + 1));
    key.green = png_uint_16(rng() % (max_sample + 1));
    key.blue = png_uint_16(rng() % (max_sample + 1));
    png_set_tRNS(png, info, nullptr, 0, &key);
  }
  png_write_info(png, info);
  const png_size_t row_bytes = png_get_rowbytes(png, info);
  std::vector<uint8_t> pixels(row_bytes * height);
  for (auto& b : pixels) b = uint8_t(rng());
  std::vector<png_bytep> rows(height);
  for (int y = 0; y < height; ++y) rows[y] = pixels.data() + row_bytes * y;
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

TEST(ImageDecode, EveryPngKindGivesOpenCvsPixels) {
  struct Kind {
    int color_type;
    std::vector<int> depths;
  };
  const Kind kinds[] = {{PNG_COLOR_TYPE_GRAY, {1, 2, 4, 8, 16}},
                        {PNG_COLOR_TYPE_GRAY_ALPHA, {8, 16}},
                        {PNG_COLOR_TYPE_RGB, {8, 16}},
                        {PNG_COLOR_TYPE_RGB_ALPHA, {8, 16}},
                        {PNG_COLOR_TYPE_PALETTE, {1, 2, 4, 8}}};
  uint32_t seed = 1;
  int checked = 0;
  for (const Kind& kind : kinds) {
    for (int depth : kind.depths) {
      const bool can_trns = !(kind.color_type & PNG_COLOR_MASK_ALPHA);
      for (bool trns : {false, true}) {
        if (trns && !can_trns) continue;
        for (bool interlaced : {false, true}) {
          // Odd sizes: rows that end mid-byte at low depths, partial Adam7 passes.
          const auto png = write_png(37, 23, kind.color_type, depth, trns, interlaced, seed++);
          expect_same_decoding(png, "type " + std::to_string(kind.color_type) + " depth " + std::to_string(depth) +
                                        (trns ? " tRNS" : "") + (interlaced ? " Adam7" : ""));
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 52);
}

// The libdeflate path takes 8-bit gray, gray+alpha, RGB and RGBA PNGs and
// unfilters their rows itself: each of PNG's five filters on every row, and
// image data split over many IDAT chunks, against libpng under cv::imdecode.
TEST(ImageDecode, EveryPngFilterAndSplitIdatGiveOpenCvsPixels) {
  const int filters[] = {PNG_FILTER_NONE, PNG_FILTER_SUB, PNG_FILTER_UP, PNG_FILTER_AVG, PNG_FILTER_PAETH};
  uint32_t seed = 100;
  for (int color_type : {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA})
    for (int filter : filters)
      for (std::size_t idat_bytes : {std::size_t(0), std::size_t(97)})
        expect_same_decoding(write_png(41, 19, color_type, 8, false, false, seed++, filter, idat_bytes),
                             "type " + std::to_string(color_type) + " filter " + std::to_string(filter) +
                                 " IDAT " + std::to_string(idat_bytes));
}

TEST(ImageDecode, JpegGrayColourAndProgressiveGiveOpenCvsPixels) {
  cv::Mat bgr(61, 83, CV_8UC3), gray(61, 83, CV_8UC1);
  cv::randu(bgr, 0, 256);
  cv::randu(gray, 0, 256);
  for (bool progressive : {false, true}) {
    for (int quality : {50, 95}) {
      for (const cv::Mat* image : {&bgr, &gray}) {
        std::vector<uint8_t> jpg;
        cv::imencode(".jpg", *image, jpg,
                     {cv::IMWRITE_JPEG_QUALITY, quality, cv::IMWRITE_JPEG_PROGRESSIVE, progressive ? 1 : 0});
        expect_same_decoding(jpg, std::string(image == &bgr ? "colour" : "gray") + " q" + std::to_string(quality) +
                                      (progressive ? " progressive" : ""));
      }
    }
  }
}

TEST(ImageDecode, EveryBusiImageGivesOpenCvsPixels) {
  BUSI_REQUIRE_DATA();
  const auto files = collect_images(test::busi_data_dir());
  ASSERT_EQ(files.size(), 702u);
  for (std::size_t i = 0; i < files.size(); i += test::busi_image_stride)
    expect_same_decoding(test::read_file(files[i]), files[i].string());
}

TEST(ImageDecode, BadBytesGiveErrorsNamingTheReason) {
  EXPECT_NE(decode_error({}).find("x.img: file is empty"), std::string::npos);
  EXPECT_NE(decode_error({'h', 'i', '\n'}).find("x.img: not a readable image"), std::string::npos);
  auto png = write_png(40, 30, PNG_COLOR_TYPE_RGB, 8, false, false, 7);
  const std::vector<uint8_t> cut(png.begin(), png.begin() + png.size() / 2);
  EXPECT_NE(decode_error(cut).find("x.img: not a readable image"), std::string::npos);
  png[png.size() / 2] ^= 0xff;  // inside IDAT: its CRC no longer matches
  EXPECT_NE(decode_error(png).find("x.img: not a readable image"), std::string::npos);
  std::vector<uint8_t> jpg;
  cv::imencode(".jpg", cv::Mat(16, 16, CV_8UC1, cv::Scalar(9)), jpg);
  const std::vector<uint8_t> headless(jpg.begin(), jpg.begin() + 3);
  EXPECT_NE(decode_error(headless).find("x.img: truncated JPEG"), std::string::npos);
  jpg[3] ^= 0xff;  // the first marker after SOI is no longer a marker
  EXPECT_NE(decode_error(jpg), "");
}

// Fuzzing finding: a chunk claiming more bytes than the file holds made
// libpng allocate them (990 MB for a 339-byte file) before finding the file
// short. Refused from the chunk header, naming it.
TEST(ImageDecode, ChunkLongerThanTheFileIsRefusedUnallocated) {
  auto png = write_png(9, 7, PNG_COLOR_TYPE_RGB, 8, false, false, 11);
  const std::vector<uint8_t> claim = {0x3b, 0x00, 0x00, 0x03, 't', 'E', 'X', 't', 'k', 0, 'v'};
  png.insert(png.begin() + 8 + 25, claim.begin(), claim.end());  // after the signature and IHDR
  EXPECT_NE(decode_error(png).find("x.img: not a readable image (truncated PNG: chunk tEXt claims 989855747 bytes"),
            std::string::npos)
      << decode_error(png);
}

// A few hundred bytes that claim 30000x30000 pixels (900 MB of gray): refused
// from the header, before the decoder allocates them (the board has 512 MB).
TEST(ImageDecode, HugeDimensionsAreRefusedFromTheHeader) {
  const auto be32 = [](std::vector<uint8_t>& v, uint32_t x) {
    for (int shift = 24; shift >= 0; shift -= 8) v.push_back(uint8_t(x >> shift));
  };
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr = {'I', 'H', 'D', 'R'};
  be32(ihdr, 30000);
  be32(ihdr, 30000);
  ihdr.insert(ihdr.end(), {8, 0, 0, 0, 0});  // 8-bit gray, deflate, no filter, no interlace
  const auto chunk = [&](const std::vector<uint8_t>& type_and_data) {
    be32(png, uint32_t(type_and_data.size() - 4));
    png.insert(png.end(), type_and_data.begin(), type_and_data.end());
    be32(png, uint32_t(crc32(0, type_and_data.data(), uInt(type_and_data.size()))));
  };
  chunk(ihdr);
  chunk({'I', 'D', 'A', 'T'});  // the header is read up to the first IDAT
  chunk({'I', 'E', 'N', 'D'});
  EXPECT_NE(decode_error(png).find("x.img: PNG image of 30000x30000 pixels (1 channel of 8 bits) needs " +
                                   std::to_string(900000000 + 30000 * sizeof(void*)) +  // + row pointers
                                   " bytes to decode, over the limit of 25165824 bytes"),
            std::string::npos)
      << decode_error(png);

  std::vector<uint8_t> jpg;
  cv::imencode(".jpg", cv::Mat(16, 16, CV_8UC1, cv::Scalar(9)), jpg);
  const uint8_t sof0[] = {0xff, 0xc0};
  const auto sof = std::search(jpg.begin(), jpg.end(), std::begin(sof0), std::end(sof0));
  ASSERT_NE(sof, jpg.end());
  // SOF0: marker, length (2), precision (1), height (2), width (2)
  sof[5] = sof[7] = 0x75;  // 0x7530 = 30000
  sof[6] = sof[8] = 0x30;
  EXPECT_NE(decode_error(jpg).find("x.img: JPEG image of 30000x30000 pixels (1 channel of 8 bits) needs "
                                   "900000000 bytes"),
            std::string::npos)
      << decode_error(jpg);
}

// Red-team finding 3: the limit counted pixels, not bytes, and the OpenCV path
// decoded before it checked: a 10000x10000 RGBA16 PNG was classified at 1.33 GB
// RSS and a 20000x20000 PNG cost 454 MB before it was refused. Now both paths
// refuse by decoded bytes, from the header, before decoding.
TEST(ImageDecode, RefusedByDecodedBytesNotPixelsOnEveryPath) {
  // 1800x1800 BGRA16: 3.2 M pixels (far under the old 100 M pixel limit) but 25.9 MB
  // (and a row pointer per row).
  std::vector<uint8_t> rgba16, gray8;
  cv::imencode(".png", cv::Mat(1800, 1800, CV_16UC4, cv::Scalar(1000, 2000, 3000, 65535)), rgba16);
  // The same pixel count in 8-bit gray: 3.2 MB, accepted.
  cv::imencode(".png", cv::Mat(1800, 1800, CV_8UC1, cv::Scalar(7)), gray8);
  EXPECT_NE(decode_error(rgba16).find("x.img: PNG image of 1800x1800 pixels (4 channels of 16 bits) needs " +
                                      std::to_string(25920000 + 1800 * sizeof(void*)) + " bytes to decode"),
            std::string::npos)
      << decode_error(rgba16);
  EXPECT_EQ(decode_error(gray8), "");
}

// A progressive JPEG keeps every coefficient of the image while it decodes
// (2 bytes per sample): counted, so one that fits as a baseline JPEG is refused.
TEST(ImageDecode, ProgressiveJpegCountsItsCoefficientBuffers) {
  // 10 MB of pixels, and 500 x 313 blocks of 64 2-byte coefficients: 30,032,000 bytes.
  const cv::Mat gray(2500, 4000, CV_8UC1, cv::Scalar(90));
  std::vector<uint8_t> baseline, progressive;
  cv::imencode(".jpg", gray, baseline);
  cv::imencode(".jpg", gray, progressive, {cv::IMWRITE_JPEG_PROGRESSIVE, 1});
  EXPECT_EQ(decode_error(baseline), "");
  EXPECT_NE(decode_error(progressive).find("x.img: JPEG image of 4000x2500 pixels (1 channel of 8 bits) "
                                           "needs 30032000 bytes"),
            std::string::npos)
      << decode_error(progressive);
}

// A JPEG too large to decode whole is decoded DCT-scaled to no less than the
// model's size instead of being refused (load_image passes the model size),
// as OpenCV's IMREAD_REDUCED_* flags decode it; without a target size it is refused.
TEST(ImageDecode, LargeJpegIsDecodedScaledToTheModelSize) {
  cv::Mat colour(4000, 8000, CV_8UC3);  // 96 MB decoded whole; 24.0 MB at 1/2
  cv::randu(colour, 0, 255);
  cv::Mat gray(7000, 7000, CV_8UC1);    // 49 MB whole; 12.25 MB at 1/2
  cv::randu(gray, 0, 255);
  for (const cv::Mat& image : {colour, gray}) {
    std::vector<uint8_t> jpg;
    cv::imencode(".jpg", image, jpg, {cv::IMWRITE_JPEG_QUALITY, 60});
    EXPECT_NE(decode_error(jpg).find("over the limit"), std::string::npos);
    const DecodedImage want = opencv_decode(jpg, (image.channels() == 1 ? cv::IMREAD_REDUCED_GRAYSCALE_2
                                                                        : cv::IMREAD_REDUCED_COLOR_2) |
                                                     cv::IMREAD_IGNORE_ORIENTATION);
    const DecodedImage got = decode_image(jpg, "x.jpg", 255, 255);
    const int denominator = 2;  // the first scale within 24 MiB
    EXPECT_EQ(got.width, image.cols / denominator);
    EXPECT_EQ(got.height, image.rows / denominator);
    EXPECT_EQ(got.channels, image.channels());
    EXPECT_EQ(want.width, got.width);
    EXPECT_EQ(want.channels, got.channels);
    EXPECT_TRUE(want.pixels == got.pixels) << "OpenCV scales differently";
  }
  // Never below the model's size: a target as large as the image leaves nothing to scale to.
  std::vector<uint8_t> jpg;
  cv::imencode(".jpg", gray, jpg, {cv::IMWRITE_JPEG_QUALITY, 20});  // under the 32 MiB file limit
  test::TempDir dir;  // load_image asks for the model's size
  test::write_file(dir / "big.jpg", jpg);
  EXPECT_EQ(load_image(dir / "big.jpg", 255, 255).pixels.size(), 255u * 255u);
  EXPECT_NE(decode_error(jpg).find("over the limit"), std::string::npos);
  EXPECT_THROW(decode_image(jpg, "x.jpg", 7000, 7000), image_error);
}

// OpenCV would decode OpenEXR (asking for 1.09 GB on 20-45 bytes and writing
// temporary files), TIFF, WebP, BMP, PNM, ...: none of them is decoded here,
// each is refused by name without a byte of it decoded.
TEST(ImageDecode, OtherFormatsAreRefused) {
  const std::vector<uint8_t> exr = {0x76, 0x2f, 0x31, 0x01, 2, 0, 0, 0, 'c', 'h', 'a', 'n', 'n', 'e', 'l', 's', 0};
  std::vector<uint8_t> tiff, bmp, pgm;
  cv::imencode(".tiff", cv::Mat(8, 8, CV_8UC1, cv::Scalar(3)), tiff);
  cv::imencode(".bmp", cv::Mat(8, 8, CV_8UC3, cv::Scalar(3, 4, 5)), bmp);
  cv::imencode(".pgm", cv::Mat(8, 8, CV_16UC1, cv::Scalar(3000)), pgm);
  for (const std::vector<uint8_t>* bytes : std::initializer_list<const std::vector<uint8_t>*>{&exr, &tiff, &bmp, &pgm})
    EXPECT_NE(decode_error(*bytes).find("x.img: not a readable image (this build decodes PNG and JPEG only)"),
              std::string::npos)
        << decode_error(*bytes);
}

}  // namespace
}  // namespace busi
