// Decoding and the gray-area-v1 pre-processing (docs/preprocessing.md). The
// training code makes the same OpenCV calls in the same order.
#include "busi/image.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "busi/error.hpp"
#include "busi/limits.hpp"
#include "decode.hpp"

namespace busi {

namespace detail {
void check_decode_budget(const image_header& h, const std::string& name) {
  if (h.work_bytes <= limits::kDecodeBytes) return;
  throw image_error(name + ": " + h.format + " image of " + std::to_string(h.width) + "x" + std::to_string(h.height) +
                    " pixels (" + std::to_string(h.channels) + " channel" + (h.channels == 1 ? "" : "s") + " of " +
                    std::to_string(8 * h.bytes_per_sample) + " bits) needs " + std::to_string(h.work_bytes) +
                    " bytes to decode, over the limit of " + std::to_string(limits::kDecodeBytes) +
                    " bytes; refused before decoding");
}

int jpeg_scale_denominator(const image_header& h, target_size target) {
  if (h.work_bytes <= limits::kDecodeBytes) return 1;
  if (target.height <= 0 || target.width <= 0) return 0;
  for (int d : {2, 4, 8}) {
    const uint64_t w = (h.width + d - 1) / d, ht = (h.height + d - 1) / d;
    if (w < uint64_t(target.width) || ht < uint64_t(target.height)) return 0;
    if (w * ht * uint64_t(h.channels) + h.coefficient_bytes <= limits::kDecodeBytes) return d;
  }
  return 0;
}
}  // namespace detail

namespace {

namespace fs = std::filesystem;

// Mean of |B - G| + |G - R| over the pixels of an 8-bit BGR(A) image: 0 for a
// gray image stored as colour (every BUSI and BUS-BRA file), large for a photo.
float mean_colour(const cv::Mat& bgr) {
  std::vector<cv::Mat> planes;
  cv::split(bgr, planes);
  cv::Mat bg, gr;
  cv::absdiff(planes[0], planes[1], bg);
  cv::absdiff(planes[1], planes[2], gr);
  return float(cv::mean(bg)[0] + cv::mean(gr)[0]);
}

Tensor8 to_model_input(const cv::Mat& decoded, int height, int width, const std::string& name) {
  if (decoded.empty()) throw image_error(name + ": image is empty (0x0)");
  if (height <= 0 || width <= 0 || height > 8192 || width > 8192)
    throw image_error(name + ": model input size " + std::to_string(width) + "x" + std::to_string(height) +
                      " out of range (1 to 8192)");
  // Decoded files were checked from their header; this catches pixels handed
  // in directly (preprocess), whose 8-bit and gray copies are made below.
  const uint64_t bytes = uint64_t(decoded.cols) * uint64_t(decoded.rows) * uint64_t(decoded.elemSize());
  if (bytes > limits::kDecodeBytes)
    throw image_error(name + ": image of " + std::to_string(decoded.cols) + "x" + std::to_string(decoded.rows) +
                      " pixels (" + std::to_string(bytes) + " bytes) is too large (limit " +
                      std::to_string(limits::kDecodeBytes) + " bytes)");
  cv::Mat eight = decoded;
  if (decoded.depth() == CV_16U) {
    decoded.convertTo(eight, CV_8U, 1.0 / 257.0);
  } else if (decoded.depth() != CV_8U) {
    throw image_error(name + ": pixel depth not supported (8-bit or 16-bit unsigned integers only)");
  }
  cv::Mat gray;
  float colour = 0;
  switch (eight.channels()) {
    case 1: gray = eight; break;
    case 3: cv::cvtColor(eight, gray, cv::COLOR_BGR2GRAY); colour = mean_colour(eight); break;
    case 4: cv::cvtColor(eight, gray, cv::COLOR_BGRA2GRAY); colour = mean_colour(eight); break;
    default:
      throw image_error(name + ": " + std::to_string(eight.channels()) + " channels not supported (1, 3 or 4)");
  }
  cv::Mat sized = gray;
  if (gray.rows != height || gray.cols != width) cv::resize(gray, sized, cv::Size(width, height), 0, 0, cv::INTER_AREA);

  Tensor8 out{height, width, std::vector<uint8_t>(std::size_t(height) * width), decoded.rows, decoded.cols, colour};
  for (int y = 0; y < height; ++y) std::memcpy(out.pixels.data() + std::size_t(y) * width, sized.ptr(y), width);
  return out;
}

// JPEG decoders fill a truncated file with gray and only warn; refuse it instead.
bool is_truncated_jpeg(std::span<const uint8_t> bytes) {
  if (bytes.size() < 3 || bytes[0] != 0xFF || bytes[1] != 0xD8 || bytes[2] != 0xFF) return false;
  // The end-of-image marker may be followed by padding; look at the last bytes.
  const std::size_t from = bytes.size() > 64 ? bytes.size() - 64 : 0;
  for (std::size_t i = bytes.size() - 1; i > from; --i)
    if (bytes[i - 1] == 0xFF && bytes[i] == 0xD9) return false;
  return true;
}

}  // namespace

Tensor8 preprocess(const ImageView& image, int height, int width) {
  if (!image.data || image.width <= 0 || image.height <= 0) throw image_error("image view is empty");
  if (image.bytes_per_channel != 1 && image.bytes_per_channel != 2)
    throw image_error("image view: " + std::to_string(image.bytes_per_channel) + " bytes per channel not supported (1 or 2)");
  if (image.channels != 1 && image.channels != 3 && image.channels != 4)
    throw image_error("image view: " + std::to_string(image.channels) + " channels not supported (1, 3 or 4)");
  const uint64_t row = uint64_t(image.width) * uint64_t(image.channels) * uint64_t(image.bytes_per_channel);
  if (row * uint64_t(image.height) > limits::kDecodeBytes)
    throw image_error("image view: " + std::to_string(image.width) + "x" + std::to_string(image.height) + " pixels (" +
                      std::to_string(row * uint64_t(image.height)) + " bytes) is too large (limit " +
                      std::to_string(limits::kDecodeBytes) + " bytes)");
  const std::size_t stride = image.stride ? image.stride : std::size_t(row);
  if (stride < row) throw image_error("image view: row stride " + std::to_string(stride) + " is shorter than a row (" + std::to_string(row) + " bytes)");
  const int type = CV_MAKETYPE(image.bytes_per_channel == 2 ? CV_16U : CV_8U, image.channels);
  // cv::Mat only reads through this header; the caller keeps ownership.
  const cv::Mat view(image.height, image.width, type, const_cast<uint8_t*>(image.data), stride);
  return to_model_input(view, height, width, "image view");
}

bool has_decoder(ImageDecoder decoder) {
  switch (decoder) {
    case ImageDecoder::opencv: return BUSI_DECODER_OPENCV;
    case ImageDecoder::builtin: return BUSI_DECODER_BUILTIN;
  }
  return false;
}

ImageDecoder default_decoder() { return ImageDecoder::BUSI_DEFAULT_DECODER; }

namespace {

cv::Mat decode(std::span<const uint8_t> bytes, const std::string& name, ImageDecoder decoder,
              detail::target_size target = {}) {
  if (bytes.empty()) throw image_error(name + ": file is empty (0 bytes)");
  if (is_truncated_jpeg(bytes)) throw image_error(name + ": truncated JPEG (no end-of-image marker)");
  switch (decoder) {
#if BUSI_DECODER_OPENCV
    case ImageDecoder::opencv: return detail::decode_opencv(bytes, name, target);
#endif
#if BUSI_DECODER_BUILTIN
    case ImageDecoder::builtin: return detail::decode_builtin(bytes, name, target);
#endif
    default: break;
  }
  throw error(std::string("the ") + (decoder == ImageDecoder::opencv ? "opencv" : "builtin") +
              " image decoder is not part of this build");
}

}  // namespace

DecodedImage decode_image(std::span<const uint8_t> bytes, const std::string& name, ImageDecoder decoder,
                          int target_height, int target_width) {
  const cv::Mat m = decode(bytes, name, decoder, {target_height, target_width});
  DecodedImage out{m.cols, m.rows, m.channels(), int(m.elemSize1()), {}};
  const std::size_t row = std::size_t(m.cols) * m.elemSize();
  out.pixels.resize(row * m.rows);
  for (int y = 0; y < m.rows; ++y) std::memcpy(out.pixels.data() + row * y, m.ptr(y), row);
  return out;
}

Tensor8 load_image(const fs::path& path, int height, int width) {
  const std::string name = path.string();
  cv::Mat decoded;
  {  // the encoded bytes are freed before pre-processing makes its copies
    std::string reason;
    const auto bytes = limits::read_file(path, limits::kImageFileBytes, reason);
    if (!bytes) throw image_error(name + ": " + reason);
    decoded = decode(*bytes, name, default_decoder(), {height, width});
  }
  return to_model_input(decoded, height, width, name);
}

bool has_image_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  static const char* known[] = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".pnm", ".webp"};
  return std::any_of(std::begin(known), std::end(known), [&](const char* k) { return ext == k; });
}

std::vector<fs::path> collect_images(const fs::path& root) {
  std::error_code ec;
  const auto status = fs::status(root, ec);
  if (!fs::exists(status)) throw error(root.string() + ": no such file or directory");
  if (!fs::is_directory(status)) return {root};
  std::vector<fs::path> files;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
  if (ec) throw error(root.string() + ": cannot list: " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw error(root.string() + ": cannot list: " + ec.message());
    if (it->is_regular_file(ec) && has_image_extension(it->path())) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace busi
