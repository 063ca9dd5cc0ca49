// u-dma-buf: one physically contiguous region per /dev/udmabufN, reserved by
// the kernel module at load time. The region is mapped once, cacheable (no
// O_SYNC), and buffers are carved out of it first-fit. Cache maintenance goes
// through the sysfs attributes sync_offset/sync_size/sync_direction followed by
// a write of 1 to sync_for_device (flush) or sync_for_cpu (invalidate).
//
// The driver performs the sync inside the write() and then resets the trigger
// attribute to 0; we read the trigger back and wait (bounded) until it reads 0.
// On a board that costs one pread; on the emulated board it is how the device
// side acknowledges that it applied the flush or invalidate.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <thread>

#include "busi/error.hpp"
#include "dma_buffer.hpp"
#include "register_window.hpp"
#include "sysfs.hpp"

namespace busi::fpga {
namespace {

constexpr uint64_t bidirectional = 0;  // sync_direction: 0 both, 1 to device, 2 from device

class udmabuf_region {
 public:
  explicit udmabuf_region(const allocator_options& options)
      : name_(options.udmabuf_name), timeout_(options.sync_timeout) {
    const auto dev = options.device_root / "dev" / name_;
    auto sys = options.device_root / "sys/class/u-dma-buf" / name_;
    if (!std::filesystem::exists(sys)) sys = options.device_root / "sys/class/udmabuf" / name_;  // before v2.0
    if (!std::filesystem::exists(dev))
      throw device_error(ENOENT, dev.string() + " not found (is the u-dma-buf module loaded?)");
    phys_addr_ = sysfs_attribute(sys / "phys_addr", O_RDONLY).read_number();
    size_ = static_cast<std::size_t>(sysfs_attribute(sys / "size", O_RDONLY).read_number());
    sync_offset_ = sysfs_attribute(sys / "sync_offset", O_RDWR);
    sync_size_ = sysfs_attribute(sys / "sync_size", O_RDWR);
    sync_direction_ = sysfs_attribute(sys / "sync_direction", O_RDWR);
    sync_for_cpu_ = sysfs_attribute(sys / "sync_for_cpu", O_RDWR);
    sync_for_device_ = sysfs_attribute(sys / "sync_for_device", O_RDWR);

    fd_ = ::open(dev.c_str(), O_RDWR | O_CLOEXEC);  // no O_SYNC: cacheable mapping
    if (fd_ < 0) {
      const int err = errno;
      throw device_error(err, "open " + dev.string());
    }
    void* mapping = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (mapping == MAP_FAILED) {
      const int err = errno;
      ::close(fd_);
      throw device_error(err, "mmap " + dev.string() + " size " + hex(size_));
    }
    data_ = static_cast<uint8_t*>(mapping);
  }
  udmabuf_region(const udmabuf_region&) = delete;
  udmabuf_region& operator=(const udmabuf_region&) = delete;
  ~udmabuf_region() {
    ::munmap(data_, size_);
    ::close(fd_);
  }

  // First fit, 4 KiB aligned (cache-line and page aligned for every stack).
  std::size_t reserve(std::size_t bytes) {
    constexpr std::size_t align = 4096;
    const std::size_t need = (bytes + align - 1) / align * align;
    std::lock_guard lock(mutex_);
    std::size_t cursor = 0;
    for (const auto& [offset, length] : used_) {
      if (offset - cursor >= need) break;
      cursor = offset + length;
    }
    if (cursor + need > size_) {
      std::size_t used = 0;
      for (const auto& entry : used_) used += entry.second;
      throw device_error(ENOMEM, name_ + ": cannot allocate " + std::to_string(bytes) +
                                     " bytes: " + std::to_string(size_ - used) + " of " + std::to_string(size_) +
                                     " bytes free (load u-dma-buf with a larger udmabuf0= size)");
    }
    used_[cursor] = need;
    return cursor;
  }
  void release(std::size_t offset) {
    std::lock_guard lock(mutex_);
    used_.erase(offset);
  }

  void sync(std::size_t offset, std::size_t bytes, bool for_cpu) {
    std::lock_guard lock(mutex_);
    if (offset != last_offset_) sync_offset_.write_number(last_offset_ = offset);
    if (bytes != last_size_) sync_size_.write_number(last_size_ = bytes);
    // Bidirectional for both: a flush then cleans and invalidates, an
    // invalidate invalidates, and the attribute is written only once.
    if (last_direction_ != bidirectional) sync_direction_.write_number(last_direction_ = bidirectional);
    sysfs_attribute& trigger = for_cpu ? sync_for_cpu_ : sync_for_device_;
    trigger.write_number(1);
    if (trigger.read_number() == 0) return;
    const auto begin = std::chrono::steady_clock::now();
    const auto deadline = begin + timeout_;
    while (trigger.read_number() != 0) {
      if (std::chrono::steady_clock::now() > deadline)
        throw device_error(ETIMEDOUT, trigger.path().string() + ": sync of " + std::to_string(bytes) +
                                          " bytes at offset " + hex(offset) + " not acknowledged within " +
                                          std::to_string(timeout_.count()) + " ms");
      std::this_thread::yield();
    }
    acknowledgement_wait_ns_ += uint64_t(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - begin).count());
  }
  uint64_t acknowledgement_wait_ns() const { return acknowledgement_wait_ns_.load(); }

  uint8_t* data() { return data_; }
  uint64_t phys_addr() const { return phys_addr_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  uint8_t* data_ = nullptr;
  uint64_t phys_addr_ = 0;
  std::size_t size_ = 0;
  sysfs_attribute sync_offset_, sync_size_, sync_direction_, sync_for_cpu_, sync_for_device_;
  // Last values written, so the steady state costs one write per sync.
  uint64_t last_offset_ = ~uint64_t{0}, last_size_ = ~uint64_t{0}, last_direction_ = ~uint64_t{0};
  std::mutex mutex_;
  std::map<std::size_t, std::size_t> used_;  // offset -> length
  std::atomic<uint64_t> acknowledgement_wait_ns_{0};
};

class udmabuf_buffer final : public dma_buffer {
 public:
  udmabuf_buffer(std::shared_ptr<udmabuf_region> region, std::size_t bytes)
      : region_(std::move(region)), offset_(region_->reserve(bytes)), size_(bytes) {}
  ~udmabuf_buffer() override { region_->release(offset_); }

  uint8_t* data() override { return region_->data() + offset_; }
  std::size_t size() const override { return size_; }
  uint64_t device_address() const override { return region_->phys_addr() + offset_; }
  void sync_for_device(std::size_t offset, std::size_t bytes) override {
    check_sync_range(region_->name(), offset, bytes, size_);
    region_->sync(offset_ + offset, bytes, false);
  }
  void sync_for_cpu(std::size_t offset, std::size_t bytes) override {
    check_sync_range(region_->name(), offset, bytes, size_);
    region_->sync(offset_ + offset, bytes, true);
  }

 private:
  std::shared_ptr<udmabuf_region> region_;
  std::size_t offset_, size_;
};

class udmabuf_allocator final : public dma_allocator {
 public:
  explicit udmabuf_allocator(const allocator_options& options) : region_(std::make_shared<udmabuf_region>(options)) {}
  std::unique_ptr<dma_buffer> allocate(std::size_t bytes) override {
    return std::make_unique<udmabuf_buffer>(region_, bytes);
  }
  std::string name() const override { return region_->name(); }
  uint64_t acknowledgement_wait_ns() const override { return region_->acknowledgement_wait_ns(); }

 private:
  std::shared_ptr<udmabuf_region> region_;
};

}  // namespace

std::unique_ptr<dma_allocator> make_udmabuf_allocator(const allocator_options& options) {
  return std::make_unique<udmabuf_allocator>(options);
}

}  // namespace busi::fpga
