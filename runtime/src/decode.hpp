#pragma once
// The image decoders behind busi::load_image and busi::decode_image. Both give
// cv::imdecode(IMREAD_UNCHANGED)'s layout: 8- or 16-bit, 1 (gray), 3 (BGR) or
// 4 (BGRA) channels. Both throw image_error naming the file and the reason.
//
// Memory: before a pixel is decoded, the header is read and the memory the
// decode will take (image_header::work_bytes) is checked against
// limits::kDecodeBytes, on both paths, so a small file claiming a huge image
// is refused at the cost of its header.
#include <cstdint>
#include <opencv2/core.hpp>
#include <optional>
#include <span>
#include <string>

namespace busi::detail {

// What a header says about the image its decoder would produce.
struct image_header {
  const char* format = "";  // "PNG", "JPEG", "BMP", "PNM"
  uint64_t width = 0, height = 0;
  int channels = 0, bytes_per_sample = 1;  // as cv::imdecode(IMREAD_UNCHANGED) gives them
  uint64_t work_bytes = 0;  // the decoded pixels plus the decoder's own whole-image buffers
};

// Throws image_error naming `name`, the size and the limit when the header's
// work_bytes exceed limits::kDecodeBytes.
void check_decode_budget(const image_header& header, const std::string& name);

// cv::imdecode: PNG and JPEG (sized by read_builtin_header), BMP and PNM (sized
// here); every other format OpenCV could read (TIFF, WebP, OpenEXR, ...) is
// refused, because its memory cannot be checked before decoding. Only in
// builds with BUSI_DECODER_OPENCV.
cv::Mat decode_opencv(std::span<const uint8_t> bytes, const std::string& name);

// libpng and libjpeg directly: PNG and JPEG only. Only in builds with BUSI_DECODER_BUILTIN.
cv::Mat decode_builtin(std::span<const uint8_t> bytes, const std::string& name);

// The built-in decoder's header reading (libpng's png_read_info, libjpeg's
// jpeg_read_header) on its own: the header of a PNG or JPEG, nullopt for other
// formats. Throws image_error for a PNG or JPEG whose header is corrupt.
std::optional<image_header> read_builtin_header(std::span<const uint8_t> bytes, const std::string& name);

}  // namespace busi::detail
