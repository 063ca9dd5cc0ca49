#pragma once
// Errors raised by busi-infer. Every message names the thing that is wrong
// (a file, a device path, a layer) and why, so the CLI can print it as is.
#include <stdexcept>
#include <string>
#include <system_error>

namespace busi {

// Base of every error the runtime throws on purpose.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A model package that cannot be used: truncated, corrupt, wrong version, bad shapes.
class model_error : public error {
 public:
  using error::error;
};

// An image that cannot be decoded or pre-processed.
class image_error : public error {
 public:
  using error::error;
};

// A device, driver or OS resource failed (open, mmap, ioctl, timeout); carries errno.
class device_error : public std::system_error {
 public:
  device_error(int errno_value, const std::string& what)
      : std::system_error(errno_value, std::generic_category(), what) {}
  explicit device_error(const std::string& what)
      : std::system_error(std::error_code(), what) {}
};

}  // namespace busi
