#pragma once
// The image decoder behind busi::load_image and busi::decode_image: PNG
// through libdeflate (the common 8-bit kinds) or libpng (every other kind),
// JPEG through libjpeg-turbo. It gives the pixels of cv::imdecode(bytes,
// IMREAD_UNCHANGED): 8- or 16-bit, 1 (gray), 3 or 4 channels, in OpenCV's
// BGR(A) order unless Pixels::rgb_order says the PNG's own RGB(A) order was
// kept. It throws image_error naming the file and the reason.
//
// Memory: before a pixel is decoded, the header is read and the memory the
// decode will take (image_header::work_bytes) is checked against
// limits::kDecodeBytes, so a small file claiming a huge image is refused at
// the cost of its header.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "busi/image.hpp"

struct libdeflate_decompressor;

namespace busi::detail {

// What a header says about the image its decoder would produce.
struct image_header {
  const char* format = "";  // "PNG", "JPEG"
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

// Decoded pixels in DecodeBuffers; valid until the next decode with them.
struct Pixels {
  ImageView view;
  bool rgb_order = false;  // 3 or 4 channels in R, G, B(, A) order rather than OpenCV's B, G, R(, A)
};

// The decoder's storage, kept from one image to the next (busi::ImageLoader).
struct DecodeBuffers {
  DecodeBuffers();
  ~DecodeBuffers();
  DecodeBuffers(const DecodeBuffers&) = delete;
  DecodeBuffers& operator=(const DecodeBuffers&) = delete;
  std::vector<uint8_t> pixels;    // the decoded image (libpng, libjpeg, expanded gray+alpha)
  std::vector<uint8_t> inflated;  // PNG fast path: the image's rows, filter byte first, unfiltered in place
  std::vector<uint8_t> joined;    // PNG fast path: the IDAT chunks' data, when there are several
  std::vector<void*> rows;        // libpng's and libjpeg's row pointers
  libdeflate_decompressor* inflater = nullptr;
  // Frees what a large image grew beyond `keep_bytes`.
  void trim(std::size_t keep_bytes);
};

// Decodes a PNG or JPEG (anything else is refused by name) into `buffers`.
Pixels decode_builtin(std::span<const uint8_t> bytes, const std::string& name, target_size target,
                      DecodeBuffers& buffers);

}  // namespace busi::detail
