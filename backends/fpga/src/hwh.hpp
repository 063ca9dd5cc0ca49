#pragma once
// What the runtime needs from Vivado's hardware hand-off file (.hwh): where each
// IP's AXI-lite window sits in the processing system's address map, and the PS
// clock settings. The address map comes from the MEMRANGE elements of the
// module whose MODTYPE is processing_system7 (Zynq-7000) or zynq_ultra_ps_e.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

namespace busi::fpga {

struct ip_window {
  uint64_t base = 0;
  uint64_t range = 0;           // HIGHVALUE - BASEVALUE + 1
  std::string slave_interface;  // e.g. s_axi_control
};

struct hwh_info {
  std::filesystem::path source;
  std::map<std::string, ip_window> ips;          // by INSTANCE name (idma0, odma0, ...)
  std::map<std::string, std::string> ps_params;  // the PS's PARAMETERs (PCW_*)

  // The IP's window; throws busi::device_error naming the file, the IP and the
  // instances that do exist when it is absent.
  const ip_window& ip(const std::string& instance) const;
  // FCLK<i> in MHz as configured in the block design (PCW_FPGA<i>_PERIPHERAL_FREQMHZ,
  // else 0 when absent).
  double fclk_mhz(int index) const;
};

hwh_info parse_hwh(const std::string& text, const std::filesystem::path& origin);
hwh_info load_hwh(const std::filesystem::path& path);

}  // namespace busi::fpga
