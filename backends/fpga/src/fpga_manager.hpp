#pragma once
// Loading a bitstream into the programmable logic through Linux's fpga_manager
// (as PYNQ >= 2.7 does): the Vivado .bit becomes a raw .bin (header stripped,
// 32-bit words byte-swapped), is placed in /lib/firmware, and its file name is
// written to /sys/class/fpga_manager/fpga0/firmware after flags = 0 (full
// reconfiguration). All paths are under a device root (normally "/").
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace busi::fpga {

struct bitstream_info {
  std::string design, part, date, time;
  std::vector<uint8_t> bin;  // the configuration data, byte-swapped per 32-bit word
};

// Parses a Xilinx .bit file (fields a..e). Throws busi::device_error naming
// `origin` when the header is malformed or the data is truncated.
bitstream_info bit_to_bin(const std::vector<uint8_t>& bit, const std::string& origin);

enum class program_mode { automatic, always, never };
program_mode parse_program_mode(const std::string& text);  // auto | always | never

// Programs `bitstream` unless mode is never, or mode is automatic and the same
// bitstream (name, size and content hash, recorded in run/busi-infer/bitstream
// under the root, which a reboot clears along with the fabric) is already
// loaded and fpga0 reports "operating". Returns true when it programmed.
// Throws busi::device_error naming the file and the reason.
bool program_bitstream(const std::filesystem::path& bitstream, const std::filesystem::path& device_root,
                       program_mode mode);

// The Zynq-7000 PL clock FCLK0, set through the SLCR (0xF8000000): FPGA0_CLK_CTRL
// (+0x170) divides the PLL chosen by SRCSEL; the PLL runs at ps_clk * FBDIV.
// Returns the frequency actually set (the closest DIV0 * DIV1 in 1..63 each).
double set_fclk0(const std::filesystem::path& device_root, double mhz, double ps_clk_mhz = 50.0);
double read_fclk0(const std::filesystem::path& device_root, double ps_clk_mhz = 50.0);

// SLCR register offsets, shared with the emulated board.
namespace slcr {
constexpr uint64_t base = 0xF8000000;
constexpr std::size_t size = 0x1000;
constexpr std::size_t unlock = 0x008;
constexpr uint32_t unlock_key = 0xDF0D;
constexpr std::size_t arm_pll_ctrl = 0x100, ddr_pll_ctrl = 0x104, io_pll_ctrl = 0x108;
constexpr std::size_t fpga0_clk_ctrl = 0x170;
}  // namespace slcr

}  // namespace busi::fpga
