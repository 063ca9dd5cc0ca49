// libFuzzer target: Vivado .hwh text through the XML reader and parse_hwh.
#include <cstdint>
#include <string>

#include "busi/error.hpp"
#include "hwh.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    const auto info = busi::fpga::parse_hwh(std::string(reinterpret_cast<const char*>(data), size), "fuzz.hwh");
    (void)info.fclk_mhz(0);
  } catch (const busi::error&) {
  } catch (const busi::device_error&) {
  }
  return 0;
}
