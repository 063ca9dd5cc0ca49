#pragma once
// Physically contiguous DMA buffers for the accelerator's IODMAs, from one of
// three stacks: XRT buffer objects (PYNQ >= 2.7), libcma (PYNQ <= 2.6) or the
// u-dma-buf kernel module (plain Linux, and the emulated board).
//
// The Zynq-7000 HP ports are not cache coherent and the buffers are mapped
// cacheable, so the owner must call sync_for_device() after the CPU writes and
// before the accelerator reads, and sync_for_cpu() after the accelerator writes
// and before the CPU reads. Buffers are move-only handles owned by the caller;
// an allocator must outlive the buffers it made.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace busi::fpga {

class dma_buffer {
 public:
  virtual ~dma_buffer() = default;
  virtual uint8_t* data() = 0;
  virtual std::size_t size() const = 0;
  // The bus address the accelerator uses (physical address on the Zynq).
  virtual uint64_t device_address() const = 0;
  // Cache flush of [offset, offset + bytes): the accelerator sees CPU writes.
  virtual void sync_for_device(std::size_t offset, std::size_t bytes) = 0;
  // Cache invalidate of [offset, offset + bytes): the CPU sees accelerator writes.
  virtual void sync_for_cpu(std::size_t offset, std::size_t bytes) = 0;
};

class dma_allocator {
 public:
  virtual ~dma_allocator() = default;
  // Throws busi::device_error (ENOMEM) naming the stack and the sizes when the
  // request cannot be met.
  virtual std::unique_ptr<dma_buffer> allocate(std::size_t bytes) = 0;
  // "xrt", "cma" or "udmabuf0": which stack (and device) serves the buffers.
  virtual std::string name() const = 0;
  // Nanoseconds spent so far waiting for syncs to be acknowledged beyond the
  // first read-back. A driver syncs inside write(), so on a board this stays 0;
  // the emulated board acknowledges from another thread, and this is its
  // reaction time, which host-cost figures leave out.
  virtual uint64_t acknowledgement_wait_ns() const { return 0; }
};

struct allocator_options {
  std::string stack = "auto";               // auto | xrt | cma | udmabuf
  std::filesystem::path device_root = "/";  // prefix of /dev and /sys paths
  std::string udmabuf_name = "udmabuf0";
  // How long a u-dma-buf sync may take to be acknowledged (see udmabuf.cpp).
  std::chrono::milliseconds sync_timeout{1000};
};

// Opens the requested stack. "auto" tries XRT (when compiled in), then libcma,
// then u-dma-buf; XRT and libcma are skipped when device_root is not "/" (they
// cannot be redirected to an emulated board). Throws busi::device_error listing
// why each candidate failed.
std::unique_ptr<dma_allocator> make_dma_allocator(const allocator_options& options);

// The individual stacks (each throws busi::device_error when unavailable).
std::unique_ptr<dma_allocator> make_udmabuf_allocator(const allocator_options& options);
std::unique_ptr<dma_allocator> make_cma_allocator();
std::unique_ptr<dma_allocator> make_xrt_allocator();  // throws when built without XRT

// Bounds check shared by the stacks: throws busi::device_error when
// [offset, offset + bytes) is not inside a buffer of `size` bytes.
void check_sync_range(const std::string& owner, std::size_t offset, std::size_t bytes, std::size_t size);

}  // namespace busi::fpga
