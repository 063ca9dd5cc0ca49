// libFuzzer target: overlay.json text through overlay_description::parse and
// check_against the shipped W2A4 model.
#include <cstdint>
#include <string_view>

#include "busi/error.hpp"
#include "busi/model.hpp"
#include "overlay.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static const busi::Model model = busi::Model::load(BUSI_SOURCE_DIR "/models/busi-w2a4.bqnn");
  try {
    const auto overlay =
        busi::fpga::overlay_description::parse(std::string_view(reinterpret_cast<const char*>(data), size), "/fuzz");
    overlay.check_against(model);
    (void)overlay.input.packed_bytes();
    (void)overlay.output.vectors();
  } catch (const busi::error&) {
  }
  return 0;
}
