#pragma once
// The image decoders behind busi::load_image and busi::decode_image. Both give
// cv::imdecode(IMREAD_UNCHANGED)'s layout: 8- or 16-bit, 1 (gray), 3 (BGR) or
// 4 (BGRA) channels. Both throw image_error naming the file and the reason.
#include <cstdint>
#include <opencv2/core.hpp>
#include <span>
#include <string>

namespace busi::detail {

// Images larger than this are refused (before their pixels are allocated, where
// the decoder reads the size first) so one file cannot exhaust the board's 512 MB.
constexpr double kMaxPixels = 100e6;

// cv::imdecode: every format this OpenCV reads. Only in builds with BUSI_DECODER_OPENCV.
cv::Mat decode_opencv(std::span<const uint8_t> bytes, const std::string& name);

// libpng and libjpeg directly: PNG and JPEG only. Only in builds with BUSI_DECODER_BUILTIN.
cv::Mat decode_builtin(std::span<const uint8_t> bytes, const std::string& name);

}  // namespace busi::detail
