// The OpenCV decoder: cv::imdecode with IMREAD_UNCHANGED (no EXIF rotation, no
// colour or depth conversion; gray-area-v1 does those itself), for the formats
// whose memory can be checked from their header first (decode.hpp).
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string_view>

#include "busi/error.hpp"
#include "decode.hpp"

namespace busi::detail {
namespace {

bool starts_with(std::span<const uint8_t> bytes, const char* magic, std::size_t n) {
  return bytes.size() >= n && std::memcmp(bytes.data(), magic, n) == 0;
}

uint32_t le32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint16_t le16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }

// BMP: the BITMAPINFOHEADER family (40+ bytes) or OS/2's 12-byte core header.
// OpenCV gives 8-bit gray, BGR or BGRA: budgeted as BGRA.
std::optional<image_header> bmp_header(std::span<const uint8_t> b) {
  if (!starts_with(b, "BM", 2) || b.size() < 26) return std::nullopt;
  const uint32_t dib = le32(&b[14]);
  int64_t width = 0, height = 0;
  if (dib == 12) {
    width = le16(&b[18]);
    height = le16(&b[20]);
  } else if (dib >= 40 && b.size() >= 26) {
    width = int32_t(le32(&b[18]));
    height = int32_t(le32(&b[22]));
  } else {
    return std::nullopt;
  }
  if (width <= 0 || height == 0) return std::nullopt;
  image_header h{"BMP", uint64_t(width), uint64_t(height < 0 ? -height : height), 4, 1, 0};
  h.work_bytes = h.width * h.height * 4;
  return h;
}

// PBM/PGM/PPM (P1-P6): magic, then width, height and (but for bitmaps) maxval
// as decimal numbers separated by whitespace and # comments.
std::optional<image_header> pnm_header(std::span<const uint8_t> b) {
  if (b.size() < 3 || b[0] != 'P' || b[1] < '1' || b[1] > '6' || !std::isspace(b[2])) return std::nullopt;
  const int kind = b[1] - '0';
  std::size_t pos = 2;
  auto number = [&]() -> std::optional<uint64_t> {
    for (;;) {
      while (pos < b.size() && std::isspace(b[pos])) ++pos;
      if (pos < b.size() && b[pos] == '#') {
        while (pos < b.size() && b[pos] != '\n' && b[pos] != '\r') ++pos;
        continue;
      }
      break;
    }
    uint64_t v = 0;
    const std::size_t begin = pos;
    while (pos < b.size() && std::isdigit(b[pos]) && pos - begin < 10) v = v * 10 + (b[pos++] - '0');
    if (pos == begin) return std::nullopt;
    return v;
  };
  const auto width = number(), height = number();
  if (!width || !height || *width == 0 || *height == 0) return std::nullopt;
  uint64_t maxval = 1;
  if (kind != 1 && kind != 4) {
    const auto m = number();
    if (!m || *m == 0 || *m > 65535) return std::nullopt;
    maxval = *m;
  }
  const int channels = kind == 3 || kind == 6 ? 3 : 1;
  image_header h{"PNM", *width, *height, channels, maxval > 255 ? 2 : 1, 0};
  h.work_bytes = h.width * h.height * uint64_t(channels) * uint64_t(h.bytes_per_sample);
  return h;
}

// Formats OpenCV would read but this runtime does not, named in the refusal.
const char* refused_format(std::span<const uint8_t> b) {
  if (starts_with(b, "II*\0", 4) || starts_with(b, "MM\0*", 4)) return "TIFF";
  if (starts_with(b, "RIFF", 4) && b.size() >= 12 && std::memcmp(&b[8], "WEBP", 4) == 0) return "WebP";
  if (starts_with(b, "\x76\x2f\x31\x01", 4)) return "OpenEXR";
  if (starts_with(b, "#?RADIANCE", 10) || starts_with(b, "#?RGBE", 6)) return "Radiance HDR";
  if (starts_with(b, "\x00\x00\x00\x0cjP  ", 8) || starts_with(b, "\xff\x4f\xff\x51", 4)) return "JPEG 2000";
  if (starts_with(b, "\x59\xa6\x6a\x95", 4)) return "Sun raster";
  if (starts_with(b, "PF", 2) || starts_with(b, "Pf", 2)) return "PFM";
  if (starts_with(b, "P7", 2)) return "PAM";
  if (starts_with(b, "GIF8", 4)) return "GIF";
  return nullptr;
}

}  // namespace

cv::Mat decode_opencv(std::span<const uint8_t> bytes, const std::string& name, target_size target) {
  static const bool quiet = [] {
    // OpenCV would print codec warnings for every bad file; our errors say it instead.
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
    return true;
  }();
  (void)quiet;
  std::optional<image_header> header = read_builtin_header(bytes, name);
  if (!header) header = bmp_header(bytes);
  if (!header) header = pnm_header(bytes);
  if (!header) {
    if (const char* format = refused_format(bytes))
      throw image_error(name + ": " + format +
                        " images are not accepted (PNG, JPEG, BMP and PBM/PGM/PPM only: the formats whose "
                        "memory is checked from the header before decoding)");
    throw image_error(name + ": not a readable image (unknown format; PNG, JPEG, BMP and PBM/PGM/PPM are read)");
  }
  // A JPEG too large to decode whole may be decoded DCT-scaled (decode.hpp):
  // libjpeg's scaling, as the built-in decoder asks for it, to gray or BGR.
  int flags = cv::IMREAD_UNCHANGED;
  if (std::string_view(header->format) == "JPEG") {
    const int denominator = jpeg_scale_denominator(*header, target);
    const bool gray = header->channels == 1;
    if (denominator == 2) flags = (gray ? cv::IMREAD_REDUCED_GRAYSCALE_2 : cv::IMREAD_REDUCED_COLOR_2) | cv::IMREAD_IGNORE_ORIENTATION;
    if (denominator == 4) flags = (gray ? cv::IMREAD_REDUCED_GRAYSCALE_4 : cv::IMREAD_REDUCED_COLOR_4) | cv::IMREAD_IGNORE_ORIENTATION;
    if (denominator == 8) flags = (gray ? cv::IMREAD_REDUCED_GRAYSCALE_8 : cv::IMREAD_REDUCED_COLOR_8) | cv::IMREAD_IGNORE_ORIENTATION;
    if (denominator == 0) check_decode_budget(*header, name);
  } else {
    check_decode_budget(*header, name);
  }
  cv::Mat decoded;
  try {
    // imdecode only reads through this header.
    const cv::Mat buffer(1, int(bytes.size()), CV_8UC1, const_cast<uint8_t*>(bytes.data()));
    decoded = cv::imdecode(buffer, flags);
  } catch (const cv::Exception& e) {
    throw image_error(name + ": cannot decode: " + e.err);
  }
  if (decoded.empty())
    throw image_error(name + ": not a readable image (corrupt or truncated " + std::string(header->format) + " data)");
  return decoded;
}

}  // namespace busi::detail
