#pragma once
// Image loading and the one pre-processing method ("gray-area-v1"), defined in
// docs/preprocessing.md and mirrored by training/busi_train/data.py so a pixel
// seen in training is the pixel seen on the board.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace busi {

// A read-only view of pixels owned by the caller. Rows are `stride` bytes
// apart; pixels are interleaved 8-bit (channels 1 = gray, 3 = BGR, 4 = BGRA,
// OpenCV's order) or 16-bit when bytes_per_channel = 2.
struct ImageView {
  const uint8_t* data = nullptr;
  int width = 0, height = 0, channels = 1;
  std::size_t stride = 0;       // bytes per row; 0 = width * channels * bytes_per_channel
  int bytes_per_channel = 1;
};

// The network's input: height x width uint8 gray pixels, row-major, packed.
struct Tensor8 {
  int height = 0, width = 0;
  std::vector<uint8_t> pixels;
  // What pre-processing saw before it made the gray, resized pixels, for the
  // gate that refuses what is not a breast ultrasound (make_prediction):
  // the decoded size (0 x 0 when the tensor was built by hand) and the mean
  // per-pixel colour, |B - G| + |G - R| on the 8-bit pixels (0 for gray).
  int source_height = 0, source_width = 0;
  float source_colour = 0;
};

// gray-area-v1: 16-bit -> 8-bit (value / 257, rounded); BGR/BGRA -> gray with
// OpenCV's BT.601 weights (alpha ignored); then cv::resize to width x height
// with INTER_AREA. Throws image_error for empty or malformed views.
Tensor8 preprocess(const ImageView& image, int height, int width);

// Decoded, not yet pre-processed pixels: interleaved, rows packed.
struct DecodedImage {
  int width = 0, height = 0, channels = 0, bytes_per_channel = 1;
  std::vector<uint8_t> pixels;
};

// Decodes an encoded PNG or JPEG held in memory with libpng / libdeflate and
// libjpeg-turbo (docs/preprocessing.md), to the pixels cv::imdecode(bytes,
// IMREAD_UNCHANGED) gives; `name` labels errors. Throws image_error (empty,
// truncated, corrupt, another format, over the memory limits of
// docs/limits.md). With a target size (what load_image passes: the model
// input), a JPEG too large to decode whole within the limit is decoded
// DCT-scaled (1/2, 1/4 or 1/8, never below the target) instead of being refused.
DecodedImage decode_image(std::span<const uint8_t> bytes, const std::string& name, int target_height = 0,
                          int target_width = 0);

// Reads, decodes and pre-processes files one after another in buffers kept
// from the previous file (the file's bytes, the decoded pixels, the resize
// tables and rows), so a stream of images of one size allocates nothing after
// the first. Buffers grown past 4 MiB by a large image are freed after it.
// Not thread-safe: one per thread.
class ImageLoader {
 public:
  ImageLoader();
  ~ImageLoader();
  ImageLoader(const ImageLoader&) = delete;
  ImageLoader& operator=(const ImageLoader&) = delete;
  // load_image into `out`, reusing its pixels' storage.
  void load(const std::filesystem::path& path, int height, int width, Tensor8& out);

 private:
  struct Buffers;
  std::unique_ptr<Buffers> buffers_;
};

// Decodes a file and pre-processes it (ImageLoader::load with a loader kept
// per thread, so repeated calls reuse its buffers). Throws
// image_error naming the file and the reason (missing, empty, not an image,
// truncated/corrupt, too large).
Tensor8 load_image(const std::filesystem::path& path, int height, int width);

// The image files under `root`: the path itself when it is a file (whatever its
// extension), else every file with an image extension below it, recursively, in
// sorted order. Throws busi::error for a missing or unreadable path.
std::vector<std::filesystem::path> collect_images(const std::filesystem::path& root);

// True for the extensions collect_images picks up in folders (.png, .jpg, ...).
bool has_image_extension(const std::filesystem::path& path);

}  // namespace busi
