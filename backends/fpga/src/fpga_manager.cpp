#include "fpga_manager.hpp"

#include <cerrno>
#include <cmath>
#include <fstream>
#include <iterator>

#include "busi/error.hpp"
#include "busi/limits.hpp"
#include "register_window.hpp"
#include "sysfs.hpp"

namespace busi::fpga {

bitstream_info bit_to_bin(const std::vector<uint8_t>& bit, const std::string& origin) {
  std::size_t pos = 0;
  auto fail = [&](const std::string& what) -> void {
    throw device_error(EINVAL, origin + ": not a Xilinx .bit file: " + what);
  };
  auto u16 = [&]() {
    if (pos + 2 > bit.size()) fail("truncated header");
    const unsigned v = (unsigned{bit[pos]} << 8) | bit[pos + 1];
    pos += 2;
    return v;
  };
  // Field 0: a 2-byte length (9) and that many bytes of magic; then a 2-byte length (1).
  if (bit.size() < 13 || bit[0] != 0x00 || bit[1] != 0x09) fail("bad magic");
  pos = 2 + u16();
  u16();
  bitstream_info info;
  for (;;) {
    if (pos >= bit.size()) fail("truncated header");
    const char key = static_cast<char>(bit[pos++]);
    if (key == 'e') {
      if (pos + 4 > bit.size()) fail("truncated length of the configuration data");
      const std::size_t length = (std::size_t{bit[pos]} << 24) | (std::size_t{bit[pos + 1]} << 16) |
                                 (std::size_t{bit[pos + 2]} << 8) | bit[pos + 3];
      pos += 4;
      if (length % 4 != 0) fail("configuration data of " + std::to_string(length) + " bytes is not whole 32-bit words");
      if (pos + length > bit.size())
        fail("configuration data truncated: header says " + std::to_string(length) + " bytes, file has " +
             std::to_string(bit.size() - pos));
      info.bin.resize(length);
      for (std::size_t i = 0; i < length; i += 4)
        for (int b = 0; b < 4; ++b) info.bin[i + b] = bit[pos + i + 3 - b];
      return info;
    }
    if (key < 'a' || key > 'd') fail("unexpected field '" + std::string(1, key) + "'");
    const unsigned length = u16();
    if (pos + length > bit.size()) fail("truncated field '" + std::string(1, key) + "'");
    std::string value(bit.begin() + static_cast<std::ptrdiff_t>(pos),
                      bit.begin() + static_cast<std::ptrdiff_t>(pos + length));
    while (!value.empty() && value.back() == '\0') value.pop_back();
    pos += length;
    (key == 'a' ? info.design : key == 'b' ? info.part : key == 'c' ? info.date : info.time) = value;
  }
}

program_mode parse_program_mode(const std::string& text) {
  if (text == "auto") return program_mode::automatic;
  if (text == "always") return program_mode::always;
  if (text == "never") return program_mode::never;
  throw error("program mode '" + text + "' unknown; known: auto, always, never");
}

namespace {

std::vector<uint8_t> read_bitstream(const std::filesystem::path& path) {
  std::string reason;
  auto bytes = limits::read_file(path, limits::kBitstreamFileBytes, reason);
  if (!bytes)
    throw device_error(reason == "no such file" ? ENOENT : EINVAL, "cannot read bitstream " + path.string() + ": " + reason);
  return std::move(*bytes);
}

// FNV-1a: identifies the bitstream in the marker file; not a security measure.
uint64_t fnv1a(const std::vector<uint8_t>& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : bytes) h = (h ^ b) * 1099511628211ull;
  return h;
}

}  // namespace

bool program_bitstream(const std::filesystem::path& bitstream, const std::filesystem::path& device_root,
                       program_mode mode) {
  if (mode == program_mode::never) return false;
  const auto bit = read_bitstream(bitstream);
  const auto manager = device_root / "sys/class/fpga_manager/fpga0";
  if (!std::filesystem::exists(manager))
    throw device_error(ENODEV, manager.string() + " not found: this kernel has no FPGA manager for the fabric");
  const std::string identity =
      bitstream.filename().string() + " " + std::to_string(bit.size()) + " " + std::to_string(fnv1a(bit));
  const auto marker = device_root / "run/busi-infer/bitstream";
  if (mode == program_mode::automatic) {
    std::ifstream in(marker);
    std::string recorded;
    std::getline(in, recorded);
    if (recorded == identity && read_attribute(manager / "state") == "operating") return false;
  }
  const auto info = bit_to_bin(bit, bitstream.string());
  const std::string bin_name = bitstream.stem().string() + ".bin";
  const auto firmware_dir = device_root / "lib/firmware";
  std::error_code ec;
  std::filesystem::create_directories(firmware_dir, ec);
  {
    const auto bin_path = firmware_dir / bin_name;
    std::ofstream out(bin_path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(info.bin.data()), static_cast<std::streamsize>(info.bin.size()));
    if (!out) throw device_error(errno ? errno : EIO, "cannot write " + bin_path.string());
  }
  write_attribute(manager / "flags", "0");
  write_attribute(manager / "firmware", bin_name);
  const auto state = read_attribute(manager / "state");
  if (state != "operating")
    throw device_error(EIO,
                       manager.string() + ": state is '" + state + "' after loading " + bin_name + ", not 'operating'");
  std::filesystem::create_directories(marker.parent_path(), ec);
  std::ofstream(marker, std::ios::trunc) << identity << "\n";
  return true;
}

namespace {

double pll_mhz(const register_window& regs, uint32_t clk_ctrl, double ps_clk_mhz) {
  const uint32_t srcsel = (clk_ctrl >> 4) & 3u;
  const std::size_t pll = srcsel == 2 ? slcr::arm_pll_ctrl : srcsel == 3 ? slcr::ddr_pll_ctrl : slcr::io_pll_ctrl;
  const uint32_t fbdiv = (regs.read32(pll) >> 12) & 0x7Fu;
  if (fbdiv == 0) throw device_error(EIO, "SLCR: PLL feedback divider reads 0 at " + hex(slcr::base + pll));
  return ps_clk_mhz * fbdiv;
}

double divided(double source, uint32_t clk_ctrl) {
  const uint32_t div0 = (clk_ctrl >> 8) & 0x3Fu, div1 = (clk_ctrl >> 20) & 0x3Fu;
  return div0 && div1 ? source / (div0 * div1) : 0.0;
}

}  // namespace

double read_fclk0(const std::filesystem::path& device_root, double ps_clk_mhz) {
  const auto regs = register_window::map_physical(device_root / "dev/mem", slcr::base, slcr::size, "SLCR");
  const uint32_t ctrl = regs.read32(slcr::fpga0_clk_ctrl);
  return divided(pll_mhz(regs, ctrl, ps_clk_mhz), ctrl);
}

double set_fclk0(const std::filesystem::path& device_root, double mhz, double ps_clk_mhz) {
  if (!(mhz > 0)) throw device_error(EINVAL, "FCLK0 of " + std::to_string(mhz) + " MHz requested");
  auto regs = register_window::map_physical(device_root / "dev/mem", slcr::base, slcr::size, "SLCR");
  const uint32_t ctrl = regs.read32(slcr::fpga0_clk_ctrl);
  const double source = pll_mhz(regs, ctrl, ps_clk_mhz);
  uint32_t best0 = 1, best1 = 1;
  double best_error = INFINITY;
  for (uint32_t d0 = 1; d0 < 64; ++d0)
    for (uint32_t d1 = 1; d1 < 64; ++d1) {
      const double err = std::fabs(source / (d0 * d1) - mhz);
      if (err < best_error - 1e-9) best_error = err, best0 = d0, best1 = d1;
    }
  regs.write32(slcr::unlock, slcr::unlock_key);
  const uint32_t updated = (ctrl & ~((0x3Fu << 20) | (0x3Fu << 8))) | (best1 << 20) | (best0 << 8);
  regs.write32(slcr::fpga0_clk_ctrl, updated);
  return divided(source, updated);
}

}  // namespace busi::fpga
