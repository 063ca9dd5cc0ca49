#include "busi/error.hpp"

#include <cerrno>

namespace busi {

namespace {
int condition(int errno_value) { return errno_value != 0 ? errno_value : EIO; }
}  // namespace

device_error::device_error(int errno_value, const std::string& what)
    : error(what + ": " + std::generic_category().message(condition(errno_value))),
      code_(condition(errno_value), std::generic_category()) {}

}  // namespace busi
