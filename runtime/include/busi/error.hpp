#pragma once
// Errors raised by busi-infer: one hierarchy rooted at busi::error, so a caller
// that catches busi::error catches every error the runtime throws on purpose.
// Every message names the thing that is wrong (a file, a device path, a layer,
// a setting) and why, so the CLI can print it as is.
//
//   busi::error            bad argument, unknown backend or setting, bad input shape
//   ├─ busi::model_error   a model package that cannot be used
//   ├─ busi::image_error   an image that cannot be decoded or pre-processed
//   └─ busi::device_error  a device, driver or OS resource failed; carries errno
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

// An image that cannot be decoded or pre-processed, or an input tensor whose
// shape the model does not take.
class image_error : public error {
 public:
  using error::error;
};

// A device, driver or OS resource failed (open, mmap, ioctl, timeout, a meter
// command). Always carries an errno value (never 0) naming the condition; what()
// is "<what>: <strerror(errno)>", e.g. "cannot open /dev/mem: Permission denied".
class device_error : public error {
 public:
  // errno_value 0 is replaced by EIO: a device error always has a condition.
  device_error(int errno_value, const std::string& what);
  // The errno value as a std::error_code of the generic category.
  const std::error_code& code() const noexcept { return code_; }

 private:
  std::error_code code_;
};

}  // namespace busi
