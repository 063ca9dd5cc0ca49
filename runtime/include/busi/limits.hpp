#pragma once
// The limits every loader applies to what it reads from a file, sized so that
// one hostile or broken file cannot crash, hang or exhaust a 512 MB PYNQ-Z1
// (docs/limits.md lists them and why). Every size computed from a file goes
// through checked arithmetic (checked_mul below) before anything is allocated.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace busi::limits {

// Encoded image files (PNG, JPEG, ...): the largest BUSI image is ~600 KB.
constexpr std::uintmax_t kImageFileBytes = std::uintmax_t(32) << 20;
// Memory a decoder may use for one image, computed from its header before a
// pixel is decoded: width x height x channels x bytes per sample, plus the
// coefficient buffers of a progressive JPEG. 24 MiB holds a 3840x2160 colour
// frame; the pre-processing copies (8-bit, gray) add at most 0.63x more.
constexpr std::size_t kDecodeBytes = std::size_t(24) << 20;
// Model packages (.bqnn): the shipped models are 52-435 KB.
constexpr std::uintmax_t kModelFileBytes = std::uintmax_t(16) << 20;
// A model's weights, all layers together (the shipped ones: ~100,000), and
// the values of any one layer's output (the backends' activation buffers;
// the shipped first conv: 253x253x32).
constexpr std::size_t kModelWeights = std::size_t(1) << 22;
constexpr std::size_t kLayerOutputElements = std::size_t(1) << 23;
// JSON texts: a .bqnn header (the shipped ones: 5 KB) and overlay.json (1 KB).
// nlohmann::json takes ~16x a JSON text's size in memory at worst.
constexpr std::size_t kJsonBytes = std::size_t(1) << 20;
// Vivado .hwh files (a FINN design for the XC7Z020: 278 KB, 4,016 elements).
constexpr std::uintmax_t kHwhFileBytes = std::uintmax_t(4) << 20;
constexpr std::size_t kXmlElements = 100000;
// Bitstreams (.bit): the XC7Z020's is 4 MB.
constexpr std::uintmax_t kBitstreamFileBytes = std::uintmax_t(32) << 20;
// Nesting of JSON arrays/objects and of XML elements (real files: <= 10).
constexpr int kNestingDepth = 64;
// One image's elements at an overlay port, and the DMA buffer per batch.
constexpr std::size_t kPortElements = std::size_t(1) << 24;
constexpr std::size_t kDmaBufferBytes = std::size_t(64) << 20;

// a * b, or nullopt when it does not fit in size_t.
inline std::optional<std::size_t> checked_mul(std::size_t a, std::size_t b) {
  std::size_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// The deepest nesting of arrays and objects in a JSON text, counting no further
// than `stop_after` + 1 (brackets inside strings do not count). Run before a
// JSON parser so a document nested 100,000 deep is refused instead of making
// the recursive parts of a JSON library (dump, comparisons) overflow the stack.
int json_nesting_depth(std::string_view text, int stop_after = kNestingDepth);

// Reads a whole regular file of at most `max_bytes`. Non-regular files
// (character devices such as /dev/zero, FIFOs, sockets) are refused without
// blocking, and the size is checked before a byte is read. On failure returns
// nullopt and sets `reason` to what is wrong ("no such file", "is a directory",
// "is a character device, not a regular file", "file of N bytes is too large
// (limit M bytes)", "cannot open: Permission denied"); the caller prefixes the
// file name and throws its own error type.
std::optional<std::vector<uint8_t>> read_file(const std::filesystem::path& path, std::uintmax_t max_bytes,
                                              std::string& reason);
// The same into `bytes`, whose storage is reused (resized to the file's size):
// false with `reason` set on failure.
bool read_file_into(const std::filesystem::path& path, std::uintmax_t max_bytes, std::vector<uint8_t>& bytes,
                    std::string& reason);

}  // namespace busi::limits
