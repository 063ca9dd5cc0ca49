#include "busi/limits.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace busi::limits {
namespace {

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "is a directory";
  if (S_ISCHR(mode)) return "is a character device, not a regular file";
  if (S_ISBLK(mode)) return "is a block device, not a regular file";
  if (S_ISFIFO(mode)) return "is a FIFO (named pipe), not a regular file";
  if (S_ISSOCK(mode)) return "is a socket, not a regular file";
  return "is not a regular file";
}

struct fd_closer {
  int fd;
  ~fd_closer() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

int json_nesting_depth(std::string_view text, int stop_after) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped character, whatever it is
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > stop_after) return deepest;
    } else if (c == ']' || c == '}') {
      depth = std::max(0, depth - 1);
    }
  }
  return deepest;
}

std::optional<std::vector<uint8_t>> read_file(const std::filesystem::path& path, std::uintmax_t max_bytes,
                                              std::string& reason) {
  std::vector<uint8_t> bytes;
  if (!read_file_into(path, max_bytes, bytes, reason)) return std::nullopt;
  return bytes;
}

bool read_file_into(const std::filesystem::path& path, std::uintmax_t max_bytes, std::vector<uint8_t>& bytes,
                    std::string& reason) {
  // O_NONBLOCK: opening a FIFO with no writer must not wait for one. The type
  // is then read from the open descriptor, so the file checked is the file read.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    reason = err == ENOENT ? "no such file" : std::string("cannot open: ") + std::strerror(err);
    return false;
  }
  fd_closer closer{fd};
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    reason = std::string("cannot stat: ") + std::strerror(errno);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    reason = kind_of(st.st_mode);
    return false;
  }
  if (st.st_size < 0 || std::uintmax_t(st.st_size) > max_bytes) {
    reason = "file of " + std::to_string(st.st_size) + " bytes is too large (limit " + std::to_string(max_bytes) +
             " bytes)";
    return false;
  }
  // Read what stat promised, and one byte more to notice a file still growing.
  bytes.resize(std::size_t(st.st_size) + 1);
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      reason = std::string("read failed: ") + std::strerror(errno);
      return false;
    }
    if (n == 0) break;
    got += std::size_t(n);
  }
  if (got > std::size_t(st.st_size)) {
    reason = "file grew while it was read (limit " + std::to_string(max_bytes) + " bytes)";
    return false;
  }
  bytes.resize(got);
  return true;
}

}  // namespace busi::limits
