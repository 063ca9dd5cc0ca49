#include "pynq_emulator.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "busi/error.hpp"
#include "fpga_manager.hpp"
#include "hwh.hpp"
#include "iodma.hpp"
#include "register_window.hpp"
#include "sysfs.hpp"

namespace busi::fpga::emu {

// A MAP_SHARED view of part of a file (dev/mem pages or dev/udmabuf0).
struct pynq_emulator::mapping {
  int fd = -1;
  void* base = nullptr;
  std::size_t length = 0;
  uint8_t* data = nullptr;  // the requested offset inside the mapping

  mapping(const std::filesystem::path& file, uint64_t offset, std::size_t bytes) {
    fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) throw device_error(errno, "emulator: open " + file.string());
    const uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
    const uint64_t start = offset & ~(page - 1);
    length = std::size_t((offset - start + bytes + page - 1) & ~(page - 1));
    base = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(start));
    if (base == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw device_error(err, "emulator: mmap " + file.string() + " at " + hex(offset));
    }
    data = static_cast<uint8_t*>(base) + (offset - start);
  }
  ~mapping() {
    ::munmap(base, length);
    ::close(fd);
  }
  uint32_t load(std::size_t offset) const {
    return std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(data + offset)).load();
  }
  void store(std::size_t offset, uint32_t value) {
    std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(data + offset)).store(value);
  }
};

namespace {

constexpr uint64_t address_space = uint64_t{1} << 32;

void make_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) throw device_error(errno ? errno : EIO, "emulator: cannot write " + path.string());
}

std::string fixed_hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%016llx\n", static_cast<unsigned long long>(value));
  return text;
}

uint64_t read_number_file(const std::filesystem::path& path) {
  return parse_number(read_attribute(path), path.string());
}

}  // namespace

pynq_emulator::pynq_emulator(emulator_options options) : options_(std::move(options)) {
  if (!options_.model) throw error("emulator: no model given");
  overlay_ = overlay_description::load(options_.overlay_dir);
  overlay_.check_against(*options_.model);
  network_ = std::make_unique<dataflow_network>(*options_.model, load_folding(overlay_.folding));
  const hwh_info hwh = load_hwh(overlay_.hwh);
  idma_base_ = hwh.ip(overlay_.input.dma).base;
  odma_base_ = uint64_t(int64_t(hwh.ip(overlay_.output.dma).base) + options_.faults.odma_shift);

  namespace fs = std::filesystem;
  const fs::path& root = options_.root;
  for (const char* dir : {"dev", "sys/class/u-dma-buf/udmabuf0", "sys/class/fpga_manager/fpga0", "lib/firmware", "run"})
    fs::create_directories(root / dir);

  // The physical address space: sparse, so only touched pages cost anything.
  {
    const auto mem = root / "dev/mem";
    const int fd = ::open(mem.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || ::ftruncate(fd, off_t(address_space)) != 0) {
      const int err = errno;
      if (fd >= 0) ::close(fd);
      throw device_error(err, "emulator: cannot create " + mem.string() + " (a sparse 4 GiB file)");
    }
    ::close(fd);
  }
  dev_mem_idma_ = std::make_unique<mapping>(root / "dev/mem", idma_base_, 0x1000);
  dev_mem_odma_ = std::make_unique<mapping>(root / "dev/mem", odma_base_, 0x1000);
  dev_mem_slcr_ = std::make_unique<mapping>(root / "dev/mem", slcr::base, slcr::size);
  for (auto* m : {dev_mem_idma_.get(), dev_mem_odma_.get()}) {
    std::memset(m->data, 0, 0x20);
    m->store(iodma_reg::control, iodma_reg::ap_idle);
  }
  // PS_CLK 50 MHz; IO PLL x20 = 1000 MHz, ARM PLL x26, DDR PLL x21 (PYNQ-Z1's
  // settings); FCLK0 = IO PLL / 10 / 1 = 100 MHz.
  dev_mem_slcr_->store(slcr::io_pll_ctrl, 20u << 12);
  dev_mem_slcr_->store(slcr::arm_pll_ctrl, 26u << 12);
  dev_mem_slcr_->store(slcr::ddr_pll_ctrl, 21u << 12);
  dev_mem_slcr_->store(slcr::fpga0_clk_ctrl, (1u << 20) | (10u << 8));

  // u-dma-buf: the CPU's view of the DMA memory is the file, the device's a vector.
  {
    const auto buf = root / "dev/udmabuf0";
    const int fd = ::open(buf.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ::ftruncate(fd, off_t(options_.dma_bytes)) != 0) {
      const int err = errno;
      if (fd >= 0) ::close(fd);
      throw device_error(err, "emulator: cannot create " + buf.string());
    }
    ::close(fd);
  }
  dma_file_ = std::make_unique<mapping>(root / "dev/udmabuf0", 0, options_.dma_bytes);
  device_view_.assign(options_.dma_bytes, 0);
  sys_dir_ = root / "sys/class/u-dma-buf/udmabuf0";
  make_file(sys_dir_ / "phys_addr", fixed_hex(options_.dma_phys));
  make_file(sys_dir_ / "size", std::to_string(options_.dma_bytes) + "\n");
  for (const char* attribute : {"sync_offset", "sync_size", "sync_direction", "sync_for_cpu", "sync_for_device"})
    make_file(sys_dir_ / attribute, fixed_hex(0));
  make_file(sys_dir_ / "sync_mode", "1\n");
  make_file(sys_dir_ / "dma_coherent", "0\n");

  manager_dir_ = root / "sys/class/fpga_manager/fpga0";
  make_file(manager_dir_ / "flags", "0\n");
  make_file(manager_dir_ / "firmware", "");
  make_file(manager_dir_ / "state", "operating\n");
  make_file(manager_dir_ / "name", "Xilinx Zynq FPGA Manager (emulated)\n");
  sync_for_device_ = sysfs_attribute(sys_dir_ / "sync_for_device", O_RDWR);
  sync_for_cpu_ = sysfs_attribute(sys_dir_ / "sync_for_cpu", O_RDWR);
  firmware_ = sysfs_attribute(manager_dir_ / "firmware", O_RDONLY);
  std::error_code ec;
  fs::remove(root / "run/busi-infer/bitstream", ec);  // a fresh board has no record of a load
  stats_.fclk_mhz = 100.0;
}

pynq_emulator::~pynq_emulator() { stop(); }

void pynq_emulator::start() {
  if (running_.exchange(true)) return;
  thread_ = std::thread([this] { watch(); });
}

void pynq_emulator::stop() {
  if (!running_.exchange(false)) return;
  if (thread_.joinable()) thread_.join();
}

emulator_stats pynq_emulator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::vector<std::string> pynq_emulator::diagnostics() const {
  std::lock_guard lock(mutex_);
  return diagnostics_;
}

void pynq_emulator::note(const std::string& message) {
  std::lock_guard lock(mutex_);
  diagnostics_.push_back(message);
}

void pynq_emulator::watch() {
  int idle_rounds = 0;
  while (running_.load()) {
    bool active = false;
    try {
      active = poll_once();
    } catch (const std::exception& e) {
      note(std::string("emulator: ") + e.what());
    }
    if (options_.spin) continue;
    idle_rounds = active ? 0 : idle_rounds + 1;
    // Quick while the host is talking to it, slower when idle.
    std::this_thread::sleep_for(std::chrono::microseconds(idle_rounds < 200 ? 10 : 500));
  }
}

bool pynq_emulator::poll_once() {
  bool active = false;
  if (sync_for_device_.read_number() != 0) handle_sync(false), active = true;
  if (sync_for_cpu_.read_number() != 0) handle_sync(true), active = true;
  check_firmware();
  const uint32_t in_control = dev_mem_idma_->load(iodma_reg::control);
  const uint32_t out_control = dev_mem_odma_->load(iodma_reg::control);
  if (!stuck_ && (in_control & iodma_reg::ap_start) && (out_control & iodma_reg::ap_start)) {
    run_batch();
    active = true;
  }
  return active;
}

void pynq_emulator::handle_sync(bool for_cpu) {
  if (options_.faults.no_sync_ack) return;
  const uint64_t offset = read_number_file(sys_dir_ / "sync_offset");
  const uint64_t size = read_number_file(sys_dir_ / "sync_size");
  const char* trigger = for_cpu ? "sync_for_cpu" : "sync_for_device";
  sysfs_attribute& attribute = for_cpu ? sync_for_cpu_ : sync_for_device_;
  if (offset > options_.dma_bytes || size > options_.dma_bytes - offset) {
    note(std::string("udmabuf0: ") + trigger + " of " + std::to_string(size) + " bytes at " + hex(offset) +
         " is outside the buffer");
  } else if (for_cpu) {
    if (!options_.faults.drop_invalidate) std::memcpy(dma_file_->data + offset, device_view_.data() + offset, size);
    std::lock_guard lock(mutex_);
    ++stats_.invalidates;
  } else {
    if (!options_.faults.drop_flush) std::memcpy(device_view_.data() + offset, dma_file_->data + offset, size);
    std::lock_guard lock(mutex_);
    ++stats_.flushes;
  }
  attribute.write_number(0);
}

void pynq_emulator::check_firmware() {
  const std::string name = firmware_.read_text();
  if (name.empty() || name == last_firmware_) return;
  last_firmware_ = name;
  std::ifstream in(options_.root / "lib/firmware" / name, std::ios::binary);
  const std::vector<uint8_t> bin{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  // A .bin for fpga_manager holds the sync word AA995566 byte-swapped per 32-bit word.
  firmware_ok_ = false;
  for (std::size_t i = 0; i + 4 <= bin.size() && !firmware_ok_; i += 4)
    firmware_ok_ = bin[i] == 0x66 && bin[i + 1] == 0x55 && bin[i + 2] == 0x99 && bin[i + 3] == 0xAA;
  if (!firmware_ok_)
    note("fpga0: lib/firmware/" + name + " is not a byte-swapped .bin (no sync word); the fabric stays unconfigured");
}

void pynq_emulator::run_batch() {
  auto& idma = *dev_mem_idma_;
  auto& odma = *dev_mem_odma_;
  const uint64_t in_address = idma.load(iodma_reg::address_low) | (uint64_t(idma.load(iodma_reg::address_high)) << 32);
  const uint64_t out_address = odma.load(iodma_reg::address_low) | (uint64_t(odma.load(iodma_reg::address_high)) << 32);
  const uint32_t images = idma.load(iodma_reg::num_reps);
  // Accepted: ap_idle drops; ap_start reads 1 until the batch is done, and the
  // watcher ignores it from now on (a hung batch stays hung).
  stuck_ = true;
  idma.store(iodma_reg::control, iodma_reg::ap_start);
  odma.store(iodma_reg::control, iodma_reg::ap_start);
  if (!firmware_ok_) {
    note("ap_start while the fabric holds no valid bitstream; nothing runs");
    return;
  }
  if (odma.load(iodma_reg::num_reps) != images) {
    note("idma0 and odma0 numReps differ (" + std::to_string(images) + " vs " +
         std::to_string(odma.load(iodma_reg::num_reps)) + "); the stream stalls");
    return;
  }
  const std::size_t in_bytes = std::size_t(images) * overlay_.input.packed_bytes();
  const std::size_t out_bytes = std::size_t(images) * overlay_.output.packed_bytes();
  const auto inside = [&](uint64_t address, std::size_t bytes) {
    return address >= options_.dma_phys && address - options_.dma_phys <= options_.dma_bytes &&
           bytes <= options_.dma_bytes - (address - options_.dma_phys);
  };
  if (!inside(in_address, in_bytes) || !inside(out_address, out_bytes)) {
    note("DMA address outside the emulated memory (input " + hex(in_address) + ", output " + hex(out_address) +
         "); the AXI transactions fail and the batch never completes");
    return;
  }
  const std::size_t in_offset = in_address - options_.dma_phys, out_offset = out_address - options_.dma_phys;
  if (std::memcmp(device_view_.data() + in_offset, dma_file_->data + in_offset, in_bytes) != 0)
    note("idma0 read " + std::to_string(in_bytes) + " bytes at " + hex(in_address) +
         " that differ from what the CPU wrote there: missing flush (sync_for_device)?");

  if (options_.compute) {
    const io_port& in_port = overlay_.input;
    const io_port& out_port = overlay_.output;
    const bool top1 = overlay_.kind == output_kind::top1;
    std::vector<uint8_t> pixels(in_port.elements());
    std::vector<int32_t> values(out_port.elements());
    for (uint32_t i = 0; i < images; ++i) {
      unpack(device_view_.data() + in_offset + i * in_port.packed_bytes(), in_port.vectors(), in_port.inner(),
             in_port.datatype, pixels.data());
      network_->run(pixels.data(), top1, values.data());
      for (int32_t v : values)
        if (v < out_port.datatype.min() || v > out_port.datatype.max())
          note("output value " + std::to_string(v) + " does not fit " + out_port.datatype.name);
      pack(values.data(), out_port.vectors(), out_port.inner(), out_port.datatype,
           device_view_.data() + out_offset + i * out_port.packed_bytes());
    }
  } else {
    std::memset(device_view_.data() + out_offset, 0, out_bytes);
  }
  {
    std::lock_guard lock(mutex_);
    ++stats_.batches;
    stats_.images += images;
    const uint32_t clk = dev_mem_slcr_->load(slcr::fpga0_clk_ctrl);
    const uint32_t div = ((clk >> 8) & 0x3Fu) * ((clk >> 20) & 0x3Fu);
    stats_.fclk_mhz = div ? 1000.0 / div : 0.0;
    if (images > 0)
      stats_.estimated_cycles += network_->latency_cycles() + uint64_t(images - 1) * network_->interval_cycles();
  }
  if (options_.faults.never_finish) return;
  stuck_ = false;
  idma.store(iodma_reg::control, iodma_reg::ap_idle | iodma_reg::ap_done);
  odma.store(iodma_reg::control, iodma_reg::ap_idle | iodma_reg::ap_done);
}

void write_emulated_hardware(const overlay_description& overlay, uint64_t idma_base, uint64_t odma_base) {
  std::ofstream hwh(overlay.hwh, std::ios::trunc);
  // The layout of Vivado's hand-off, reduced to what readers of it use: the
  // runtime (the processing system's MEMRANGEs, its FCLK parameters) and PYNQ's
  // parser (pynqmetadata), which also needs EXTERNALPORTS, all four
  // PCW_FPGA_FCLK<i>_ENABLE, and the AXI bus interfaces the MEMRANGEs name (an
  // IP is in pynq's ip_dict only when its s_axi_control is an aximm target
  // that the PS's M_AXI_GP0 initiator reaches). Ports, port maps, the
  // interconnects and the register maps are left out; PYNQ does not need them.
  const auto range = [&](const std::string& instance, uint64_t base) {
    return "        <MEMRANGE ADDRESSBLOCK=\"Reg\" BASENAME=\"C_S_AXI_CONTROL_BASEADDR\" BASEVALUE=\"" + hex(base) +
           "\" HIGHNAME=\"C_S_AXI_CONTROL_HIGHADDR\" HIGHVALUE=\"" + hex(base + 0xFFFF) + "\" INSTANCE=\"" + instance +
           "\" IS_DATA=\"TRUE\" IS_INSTRUCTION=\"TRUE\" MASTERBUSINTERFACE=\"M_AXI_GP0\" MEMTYPE=\"REGISTER\" "
           "SLAVEBUSINTERFACE=\"s_axi_control\"/>\n";
  };
  const auto bus = [](const std::string& name, const char* type) {
    return "        <BUSINTERFACE BUSNAME=\"" + name + "\" NAME=\"" + name + "\" TYPE=\"" + type +
           "\" VLNV=\"xilinx.com:interface:aximm:1.0\"/>\n";
  };
  // Vivado writes a UTF-8 byte-order mark before the declaration; so does this.
  hwh << "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\" ?>\n"
      << "<!-- Written by busi-infer's emulated PYNQ-Z1 (not by Vivado): what the runtime and PYNQ read. -->\n"
      << "<EDKSYSTEM EDWVERSION=\"1.2\" VIVADOVERSION=\"2022.2\">\n"
      << "  <SYSTEMINFO ARCH=\"zynq\" DEVICE=\"7z020\" NAME=\"" << overlay.name
      << "\" PACKAGE=\"clg400\" SPEEDGRADE=\"-1\"/>\n"
      << "  <EXTERNALPORTS/>\n"
      << "  <EXTERNALINTERFACES/>\n"
      << "  <MODULES>\n"
      << "    <MODULE FULLNAME=\"/processing_system7_0\" INSTANCE=\"processing_system7_0\" "
         "MODTYPE=\"processing_system7\" VLNV=\"xilinx.com:ip:processing_system7:5.5\">\n"
      << "      <PARAMETERS>\n";
  for (int clock = 0; clock < 4; ++clock) {
    const std::string i = std::to_string(clock);
    hwh << "        <PARAMETER NAME=\"PCW_FPGA" << i << "_PERIPHERAL_FREQMHZ\" VALUE=\""
        << (clock == 0 ? overlay.fclk_mhz : 0.0) << "\"/>\n"
        << "        <PARAMETER NAME=\"PCW_FCLK" << i << "_PERIPHERAL_DIVISOR0\" VALUE=\"10\"/>\n"
        << "        <PARAMETER NAME=\"PCW_FCLK" << i << "_PERIPHERAL_DIVISOR1\" VALUE=\"1\"/>\n"
        << "        <PARAMETER NAME=\"PCW_FPGA_FCLK" << i << "_ENABLE\" VALUE=\"" << (clock == 0) << "\"/>\n";
  }
  hwh << "      </PARAMETERS>\n"
      << "      <BUSINTERFACES>\n"
      << bus("M_AXI_GP0", "MASTER") << bus("S_AXI_HP0", "SLAVE")
      << "      </BUSINTERFACES>\n"
      << "      <MEMORYMAP>\n"
      << range(overlay.input.dma, idma_base) << range(overlay.output.dma, odma_base)
      << "      </MEMORYMAP>\n"
      << "    </MODULE>\n";
  // Each IODMA: its control interface, and (as in Vivado's file) the DDR it
  // reaches through the PS's HP0 port in its own memory map.
  for (const auto& instance : {overlay.input.dma, overlay.output.dma})
    hwh << "    <MODULE FULLNAME=\"/" << instance << "\" INSTANCE=\"" << instance
        << "\" MODTYPE=\"StreamingDataflowPartition_IODMA\" VLNV=\"xilinx.com:hls:IODMA:1.0\">\n"
        << "      <BUSINTERFACES>\n"
        << bus("s_axi_control", "SLAVE") << bus("m_axi_gmem0", "MASTER")
        << "      </BUSINTERFACES>\n"
        << "      <MEMORYMAP>\n"
        << "        <MEMRANGE ADDRESSBLOCK=\"HP0_DDR_LOWOCM\" BASENAME=\"C_BASEADDR\" BASEVALUE=\"0x00000000\" "
           "HIGHNAME=\"C_HIGHADDR\" HIGHVALUE=\"0x1FFFFFFF\" INSTANCE=\"processing_system7_0\" IS_DATA=\"TRUE\" "
           "IS_INSTRUCTION=\"TRUE\" MASTERBUSINTERFACE=\"m_axi_gmem0\" MEMTYPE=\"MEMORY\" "
           "SLAVEBUSINTERFACE=\"S_AXI_HP0\"/>\n"
        << "      </MEMORYMAP>\n"
        << "    </MODULE>\n";
  hwh << "  </MODULES>\n</EDKSYSTEM>\n";
  if (!hwh) throw device_error(EIO, "emulator: cannot write " + overlay.hwh.string());

  // A .bit: header fields a..d, then e = configuration data (dummy words, bus
  // width detection, sync word, NOOPs), big-endian as Vivado writes it.
  std::vector<uint8_t> bit = {0x00, 0x09, 0x0f, 0xf0, 0x0f, 0xf0, 0x0f, 0xf0, 0x0f, 0xf0, 0x00, 0x00, 0x01};
  const auto field = [&](char key, const std::string& value) {
    bit.push_back(uint8_t(key));
    const std::size_t n = value.size() + 1;
    bit.push_back(uint8_t(n >> 8));
    bit.push_back(uint8_t(n));
    bit.insert(bit.end(), value.begin(), value.end());
    bit.push_back(0);
  };
  field('a', overlay.name + ";UserID=0XFFFFFFFF;Version=emulated");
  field('b', "7z020clg400");
  field('c', "2026/01/01");
  field('d', "00:00:00");
  std::vector<uint8_t> data(32, 0xFF);
  for (uint8_t b : {0x00, 0x00, 0x00, 0xBB, 0x11, 0x22, 0x00, 0x44, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                    0xFF, 0xFF, 0xAA, 0x99, 0x55, 0x66, 0x20, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00})
    data.push_back(b);
  bit.push_back('e');
  for (int shift = 24; shift >= 0; shift -= 8) bit.push_back(uint8_t(data.size() >> shift));
  bit.insert(bit.end(), data.begin(), data.end());
  std::ofstream out(overlay.bitstream, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bit.data()), std::streamsize(bit.size()));
  if (!out) throw device_error(EIO, "emulator: cannot write " + overlay.bitstream.string());
}

}  // namespace busi::fpga::emu
