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
  uint64_t coefficient_bytes = 0;  // of work_bytes: a progressive JPEG's DCT coefficients (not scaled)
};

// The size pre-processing will resize to; {0, 0} when the caller wants the
// image as it is (decode_image).
struct target_size {
  int height = 0, width = 0;
};

// For a JPEG whose whole decode exceeds limits::kDecodeBytes: the smallest DCT
// scaling (2, 4 or 8: libjpeg decodes at 1/2, 1/4, 1/8 of the size, faster and
// smaller) that fits the limit and is still at least `target` in both
// dimensions; 1 when the whole image fits; 0 when nothing does (refuse).
int jpeg_scale_denominator(const image_header& header, target_size target);

// Throws image_error naming `name`, the size and the limit when the header's
// work_bytes exceed limits::kDecodeBytes.
void check_decode_budget(const image_header& header, const std::string& name);

// cv::imdecode: PNG and JPEG (sized by read_builtin_header), BMP and PNM (sized
// here); every other format OpenCV could read (TIFF, WebP, OpenEXR, ...) is
// refused, because its memory cannot be checked before decoding. Only in
// builds with BUSI_DECODER_OPENCV.
cv::Mat decode_opencv(std::span<const uint8_t> bytes, const std::string& name, target_size target = {});

// libpng and libjpeg directly: PNG and JPEG only. Only in builds with BUSI_DECODER_BUILTIN.
cv::Mat decode_builtin(std::span<const uint8_t> bytes, const std::string& name, target_size target = {});

// The built-in decoder's header reading (libpng's png_read_info, libjpeg's
// jpeg_read_header) on its own: the header of a PNG or JPEG, nullopt for other
// formats. Throws image_error for a PNG or JPEG whose header is corrupt.
std::optional<image_header> read_builtin_header(std::span<const uint8_t> bytes, const std::string& name);

}  // namespace busi::detail
