// The OpenCV decoder: cv::imdecode with IMREAD_UNCHANGED (no EXIF rotation, no
// colour or depth conversion; gray-area-v1 does those itself).
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>

#include "busi/error.hpp"
#include "decode.hpp"

namespace busi::detail {

cv::Mat decode_opencv(std::span<const uint8_t> bytes, const std::string& name) {
  static const bool quiet = [] {
    // OpenCV would print codec warnings for every bad file; our errors say it instead.
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
    return true;
  }();
  (void)quiet;
  cv::Mat decoded;
  try {
    // imdecode only reads through this header.
    const cv::Mat buffer(1, int(bytes.size()), CV_8UC1, const_cast<uint8_t*>(bytes.data()));
    decoded = cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw image_error(name + ": cannot decode: " + e.err);
  }
  if (decoded.empty())
    throw image_error(name + ": not a readable image (unknown format, or corrupt/truncated data)");
  return decoded;
}

}  // namespace busi::detail
