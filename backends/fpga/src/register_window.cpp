#include "register_window.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <utility>

#include "busi/error.hpp"

namespace busi::fpga {

std::string hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

namespace {
[[noreturn]] void fail(int err, const std::string& what) { throw device_error(err, what); }
}  // namespace

register_window register_window::map_physical(const std::filesystem::path& mem_device, uint64_t base, std::size_t size,
                                              std::string name) {
  if (size == 0 || size % 4 != 0)
    throw device_error(EINVAL, name + ": register window size " + hex(size) + " is not a positive multiple of 4");
  const int fd = ::open(mem_device.c_str(), O_RDWR | O_SYNC | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    fail(err, "open " + mem_device.string() + " for " + name + " registers at " + hex(base) +
                  (err == EACCES || err == EPERM ? ": permission denied (run as root)" : ""));
  }
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t map_base = base & ~(page - 1);
  const std::size_t lead = static_cast<std::size_t>(base - map_base);
  const std::size_t map_size = (lead + size + page - 1) & ~(page - 1);
  // A regular file standing in for /dev/mem (an emulated board) that ends
  // inside the window would map, then raise SIGBUS on the first access past
  // its end: refuse it now. The real /dev/mem is a character device, not checked.
  struct stat st{};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      (st.st_size < 0 || uint64_t(st.st_size) < map_base + map_size)) {
    ::close(fd);
    fail(ENXIO, mem_device.string() + " is a file of " + std::to_string(st.st_size) + " bytes, too short for " + name +
                    " registers at " + hex(base) + " size " + hex(size) + " (it must reach " +
                    hex(map_base + map_size) + ")");
  }
  void* mapping = ::mmap(nullptr, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(map_base));
  if (mapping == MAP_FAILED) {
    const int err = errno;
    ::close(fd);
    fail(err, "mmap " + mem_device.string() + " at " + hex(base) + " size " + hex(size) + " for " + name);
  }
  auto* regs = reinterpret_cast<volatile uint32_t*>(static_cast<char*>(mapping) + lead);
  return register_window(fd, mapping, map_size, regs, base, size, std::move(name));
}

register_window::register_window(int fd, void* mapping, std::size_t mapping_size, volatile uint32_t* regs,
                                 uint64_t base, std::size_t size, std::string name)
    : fd_(fd),
      mapping_(mapping),
      mapping_size_(mapping_size),
      regs_(regs),
      base_(base),
      size_(size),
      name_(std::move(name)) {}

register_window::register_window(register_window&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      mapping_(std::exchange(other.mapping_, nullptr)),
      mapping_size_(std::exchange(other.mapping_size_, 0)),
      regs_(std::exchange(other.regs_, nullptr)),
      base_(other.base_),
      size_(std::exchange(other.size_, 0)),
      name_(std::move(other.name_)) {}

register_window& register_window::operator=(register_window&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
    mapping_ = std::exchange(other.mapping_, nullptr);
    mapping_size_ = std::exchange(other.mapping_size_, 0);
    regs_ = std::exchange(other.regs_, nullptr);
    base_ = other.base_;
    size_ = std::exchange(other.size_, 0);
    name_ = std::move(other.name_);
  }
  return *this;
}

register_window::~register_window() { release(); }

void register_window::release() noexcept {
  if (mapping_) ::munmap(mapping_, mapping_size_);
  if (fd_ >= 0) ::close(fd_);
  mapping_ = nullptr;
  fd_ = -1;
}

void register_window::check(std::size_t offset, const char* what) const {
  if (offset % 4 != 0 || offset + 4 > size_ || !regs_)
    throw device_error(EINVAL, std::string(what) + " " + name_ + " register " + hex(offset) +
                                   ": outside the window of size " + hex(size_) + " or not 32-bit aligned");
}

uint32_t register_window::read32(std::size_t offset) const {
  check(offset, "read");
  return regs_[offset / 4];
}

void register_window::write32(std::size_t offset, uint32_t value) {
  check(offset, "write");
  regs_[offset / 4] = value;
}

}  // namespace busi::fpga
