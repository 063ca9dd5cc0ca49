#include "sysfs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "busi/error.hpp"

namespace busi::fpga {

sysfs_attribute::sysfs_attribute(const std::filesystem::path& path, int mode) : path_(path) {
  fd_ = ::open(path.c_str(), mode | O_CLOEXEC);
  if (fd_ < 0) {
    const int err = errno;
    throw device_error(err, "open " + path.string());
  }
}

sysfs_attribute::sysfs_attribute(sysfs_attribute&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

sysfs_attribute& sysfs_attribute::operator=(sysfs_attribute&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

sysfs_attribute::~sysfs_attribute() {
  if (fd_ >= 0) ::close(fd_);
}

std::string sysfs_attribute::read_text() const {
  char buffer[256];
  const ssize_t n = ::pread(fd_, buffer, sizeof buffer, 0);
  if (n < 0) {
    const int err = errno;
    throw device_error(err, "read " + path_.string());
  }
  std::string text(buffer, static_cast<std::size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\0')) text.pop_back();
  return text;
}

uint64_t sysfs_attribute::read_number() const { return parse_number(read_text(), path_.string()); }

void sysfs_attribute::write_text(const std::string& text) {
  const ssize_t n = ::pwrite(fd_, text.data(), text.size(), 0);
  if (n != static_cast<ssize_t>(text.size())) {
    const int err = n < 0 ? errno : EIO;
    throw device_error(err, "write '" + text + "' to " + path_.string());
  }
}

void sysfs_attribute::write_number(uint64_t value) {
  char text[24];
  const int n = std::snprintf(text, sizeof text, "0x%016llx\n", static_cast<unsigned long long>(value));
  write_text(std::string(text, static_cast<std::size_t>(n)));
}

std::string read_attribute(const std::filesystem::path& path) { return sysfs_attribute(path, O_RDONLY).read_text(); }

void write_attribute(const std::filesystem::path& path, const std::string& text) {
  sysfs_attribute(path, O_WRONLY).write_text(text);
}

uint64_t parse_number(const std::string& text, const std::string& origin) {
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(begin, &end, 0);
  while (end && (*end == '\n' || *end == ' ')) ++end;
  if (text.empty() || errno != 0 || !end || *end != '\0' || text[0] == '-')
    throw device_error(EINVAL, origin + ": '" + text + "' is not a number");
  return value;
}

}  // namespace busi::fpga
