// libFuzzer target: encoded image bytes through the decoder (decode_image),
// as load_image would see them. Any busi::error is an accepted outcome; a
// crash, a sanitizer report, a hang or more than -rss_limit_mb is a finding.
#include <cstdint>
#include <span>
#include <string>

#include "busi/error.hpp"
#include "busi/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    const auto image = busi::decode_image(std::span<const uint8_t>(data, size), "fuzz");
    const busi::ImageView view{image.pixels.data(), image.width, image.height, image.channels, 0,
                               image.bytes_per_channel};
    busi::preprocess(view, 255, 255);
  } catch (const busi::error&) {
  }
  return 0;
}
