// XRT buffer objects (PYNQ >= 2.7, XRT's edge/zocl driver): cacheable BOs in
// memory group 0, synced explicitly. Compiled only when CMake finds XRT
// (BUSI_HAVE_XRT); otherwise make_xrt_allocator() reports that it is absent.
#include <cerrno>

#include "busi/error.hpp"
#include "dma_buffer.hpp"

#ifdef BUSI_HAVE_XRT
#include <xrt/xrt_bo.h>
#include <xrt/xrt_device.h>
#endif

namespace busi::fpga {

#ifdef BUSI_HAVE_XRT
namespace {

class xrt_buffer final : public dma_buffer {
 public:
  xrt_buffer(const xrt::device& device, std::size_t bytes)
      : bo_(device, bytes, xrt::bo::flags::cacheable, 0), data_(bo_.map<uint8_t*>()), size_(bytes) {}
  uint8_t* data() override { return data_; }
  std::size_t size() const override { return size_; }
  uint64_t device_address() const override { return bo_.address(); }
  void sync_for_device(std::size_t offset, std::size_t bytes) override {
    check_sync_range("xrt", offset, bytes, size_);
    bo_.sync(XCL_BO_SYNC_BO_TO_DEVICE, bytes, offset);
  }
  void sync_for_cpu(std::size_t offset, std::size_t bytes) override {
    check_sync_range("xrt", offset, bytes, size_);
    bo_.sync(XCL_BO_SYNC_BO_FROM_DEVICE, bytes, offset);
  }

 private:
  xrt::bo bo_;
  uint8_t* data_;
  std::size_t size_;
};

class xrt_allocator final : public dma_allocator {
 public:
  xrt_allocator() try : device_(0u) {
  } catch (const std::exception& e) {
    throw device_error(ENODEV, std::string("XRT device 0: ") + e.what());
  }
  std::unique_ptr<dma_buffer> allocate(std::size_t bytes) override {
    try {
      return std::make_unique<xrt_buffer>(device_, bytes);
    } catch (const std::exception& e) {
      throw device_error(ENOMEM, "xrt::bo of " + std::to_string(bytes) + " bytes: " + e.what());
    }
  }
  std::string name() const override { return "xrt"; }

 private:
  xrt::device device_;
};

}  // namespace

std::unique_ptr<dma_allocator> make_xrt_allocator() { return std::make_unique<xrt_allocator>(); }
#else
std::unique_ptr<dma_allocator> make_xrt_allocator() {
  throw device_error(ENOSYS, "this build has no XRT support (libxrt-dev was not found by CMake)");
}
#endif

}  // namespace busi::fpga
