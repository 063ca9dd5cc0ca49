#pragma once
// A window of 32-bit device registers: one IP's AXI-lite address range mapped
// from /dev/mem (the physical address space).
//
// Ownership: the window owns its file descriptor and mapping (move-only).
// Accesses are volatile 32-bit loads/stores, bounds- and alignment-checked
// against the IP's range so a bad offset can never touch a neighbouring IP.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace busi::fpga {

class register_window {
 public:
  // Maps [base, base + size) of `mem_device` (normally /dev/mem; opened
  // O_RDWR | O_SYNC so the mapping is uncached device memory). `base` need not
  // be page-aligned; the mapping is widened to whole pages internally.
  // `name` (the IP instance, e.g. "odma0") appears in every error message.
  static register_window map_physical(const std::filesystem::path& mem_device, uint64_t base, std::size_t size,
                                      std::string name);


  register_window(register_window&& other) noexcept;
  register_window& operator=(register_window&& other) noexcept;
  register_window(const register_window&) = delete;
  register_window& operator=(const register_window&) = delete;
  ~register_window();

  // Throws busi::device_error when offset is unaligned or offset + 4 > size().
  uint32_t read32(std::size_t offset) const;
  void write32(std::size_t offset, uint32_t value);

  uint64_t base() const { return base_; }
  std::size_t size() const { return size_; }
  const std::string& name() const { return name_; }

 private:
  register_window(int fd, void* mapping, std::size_t mapping_size, volatile uint32_t* regs, uint64_t base,
                  std::size_t size, std::string name);
  void check(std::size_t offset, const char* what) const;
  void release() noexcept;

  int fd_ = -1;
  void* mapping_ = nullptr;
  std::size_t mapping_size_ = 0;
  volatile uint32_t* regs_ = nullptr;
  uint64_t base_ = 0;
  std::size_t size_ = 0;
  std::string name_;
};

// "0x40000000": the form every error message uses for addresses.
std::string hex(uint64_t value);

}  // namespace busi::fpga
