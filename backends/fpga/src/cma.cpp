// libcma (PYNQ <= 2.6, /usr/lib/libcma.so, header libxlnk_cma.h): contiguous
// memory from the xlnk driver. The library only exists on those boards, so it is
// loaded with dlopen and every symbol is checked before use.
#include <dlfcn.h>

#include <cerrno>

#include "busi/error.hpp"
#include "dma_buffer.hpp"
#include "register_window.hpp"

namespace busi::fpga {
namespace {

struct cma_library {
  void* handle = nullptr;
  void* (*alloc)(uint32_t len, uint32_t cacheable) = nullptr;
  unsigned long (*get_phy_addr)(void* buf) = nullptr;
  void (*free)(void* buf) = nullptr;
  void (*flush_cache)(void* buf, unsigned int phys_addr, int size) = nullptr;
  void (*invalidate_cache)(void* buf, unsigned int phys_addr, int size) = nullptr;

  cma_library() {
    for (const char* name : {"libcma.so", "/usr/lib/libcma.so"}) {
      handle = ::dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (handle) break;
    }
    if (!handle) throw device_error(ENOENT, std::string("dlopen libcma.so: ") + ::dlerror());
    load(alloc, "cma_alloc");
    load(get_phy_addr, "cma_get_phy_addr");
    load(free, "cma_free");
    load(flush_cache, "cma_flush_cache");
    load(invalidate_cache, "cma_invalidate_cache");
  }
  cma_library(const cma_library&) = delete;
  cma_library& operator=(const cma_library&) = delete;
  ~cma_library() { ::dlclose(handle); }

  template <typename F>
  void load(F& function, const char* symbol) {
    function = reinterpret_cast<F>(::dlsym(handle, symbol));
    if (!function) {
      ::dlclose(handle);
      throw device_error(ENOSYS, std::string("libcma.so has no ") + symbol);
    }
  }
};

class cma_buffer final : public dma_buffer {
 public:
  cma_buffer(std::shared_ptr<cma_library> lib, std::size_t bytes) : lib_(std::move(lib)), size_(bytes) {
    if (bytes > 0xffffffffu) throw device_error(ENOMEM, "cma: " + std::to_string(bytes) + " bytes is over 4 GiB");
    data_ = static_cast<uint8_t*>(lib_->alloc(static_cast<uint32_t>(bytes), 1));
    if (!data_)
      throw device_error(ENOMEM, "cma_alloc of " + std::to_string(bytes) + " bytes failed (CMA pool exhausted?)");
    phys_ = lib_->get_phy_addr(data_);
  }
  ~cma_buffer() override { lib_->free(data_); }
  uint8_t* data() override { return data_; }
  std::size_t size() const override { return size_; }
  uint64_t device_address() const override { return phys_; }
  void sync_for_device(std::size_t offset, std::size_t bytes) override {
    check_sync_range("cma", offset, bytes, size_);
    lib_->flush_cache(data_ + offset, static_cast<unsigned>(phys_ + offset), static_cast<int>(bytes));
  }
  void sync_for_cpu(std::size_t offset, std::size_t bytes) override {
    check_sync_range("cma", offset, bytes, size_);
    lib_->invalidate_cache(data_ + offset, static_cast<unsigned>(phys_ + offset), static_cast<int>(bytes));
  }

 private:
  std::shared_ptr<cma_library> lib_;
  uint8_t* data_ = nullptr;
  unsigned long phys_ = 0;
  std::size_t size_;
};

class cma_allocator final : public dma_allocator {
 public:
  cma_allocator() : lib_(std::make_shared<cma_library>()) {}
  std::unique_ptr<dma_buffer> allocate(std::size_t bytes) override { return std::make_unique<cma_buffer>(lib_, bytes); }
  std::string name() const override { return "cma"; }

 private:
  std::shared_ptr<cma_library> lib_;
};

}  // namespace

std::unique_ptr<dma_allocator> make_cma_allocator() { return std::make_unique<cma_allocator>(); }

}  // namespace busi::fpga
