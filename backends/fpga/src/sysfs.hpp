#pragma once
// One sysfs attribute file held open (move-only), read and written with
// pread/pwrite at offset 0 as sysfs expects. Numbers are written as fixed-width
// hex ("0x%016llx\n") so that a regular file standing in for the attribute (the
// emulated board) never keeps a stale tail from a longer earlier value.
#include <cstdint>
#include <filesystem>
#include <string>

namespace busi::fpga {

class sysfs_attribute {
 public:
  sysfs_attribute() = default;
  // mode: O_RDONLY, O_WRONLY or O_RDWR. Throws busi::device_error naming the path.
  sysfs_attribute(const std::filesystem::path& path, int mode);
  sysfs_attribute(sysfs_attribute&& other) noexcept;
  sysfs_attribute& operator=(sysfs_attribute&& other) noexcept;
  sysfs_attribute(const sysfs_attribute&) = delete;
  sysfs_attribute& operator=(const sysfs_attribute&) = delete;
  ~sysfs_attribute();

  std::string read_text() const;  // whole value, trailing whitespace removed
  uint64_t read_number() const;   // decimal or 0x-prefixed hex
  void write_text(const std::string& text);
  void write_number(uint64_t value);
  const std::filesystem::path& path() const { return path_; }

 private:
  int fd_ = -1;
  std::filesystem::path path_;
};

// One-shot helpers for attributes read or written once.
std::string read_attribute(const std::filesystem::path& path);
void write_attribute(const std::filesystem::path& path, const std::string& text);

// Parses "123", "0x1f000000" or "0x1F000000\n"; throws busi::device_error naming
// `origin` when the text is not a number.
uint64_t parse_number(const std::string& text, const std::string& origin);

}  // namespace busi::fpga
