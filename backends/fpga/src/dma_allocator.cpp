#include <cerrno>

#include "busi/error.hpp"
#include "dma_buffer.hpp"
#include "register_window.hpp"

namespace busi::fpga {

void check_sync_range(const std::string& owner, std::size_t offset, std::size_t bytes, std::size_t size) {
  if (offset > size || bytes > size - offset)
    throw device_error(EINVAL, owner + ": sync of " + hex(bytes) + " bytes at offset " + hex(offset) +
                                   " is outside the buffer of " + hex(size) + " bytes");
}

std::unique_ptr<dma_allocator> make_dma_allocator(const allocator_options& options) {
  const std::string& stack = options.stack;
  if (stack == "xrt") return make_xrt_allocator();
  if (stack == "cma") return make_cma_allocator();
  if (stack == "udmabuf") return make_udmabuf_allocator(options);
  if (stack != "auto")
    throw device_error(EINVAL, "unknown DMA buffer stack '" + stack + "'; known: auto, xrt, cma, udmabuf");

  std::string reasons;
  if (options.device_root == "/") {
    try {
      return make_xrt_allocator();
    } catch (const std::exception& e) {
      reasons += std::string("\n  xrt: ") + e.what();
    }
    try {
      return make_cma_allocator();
    } catch (const std::exception& e) {
      reasons += std::string("\n  cma: ") + e.what();
    }
  } else {
    reasons += "\n  xrt, cma: skipped (device_root " + options.device_root.string() + " is not /)";
  }
  try {
    return make_udmabuf_allocator(options);
  } catch (const std::exception& e) {
    reasons += std::string("\n  udmabuf: ") + e.what();
  }
  throw device_error(ENODEV, "no DMA buffer stack available:" + reasons);
}

}  // namespace busi::fpga
