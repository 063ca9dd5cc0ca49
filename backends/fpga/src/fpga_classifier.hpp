#pragma once
// The fpga backend's Classifier: a FINN accelerator behind FINN's IODMA
// protocol, on a PYNQ board or on the emulated board (device_root).
//
// Settings: overlay (folder with overlay.json; required), device_root ("/"),
// timeout_ms (per batch; 10000), buffer_stack (auto|xrt|cma|udmabuf),
// program (auto|always|never), fclk_mhz (default: the overlay's; 0 leaves the
// clock as it is), max_batch (images per accelerator run; 64), max_failures
// (after this many device failures in a row, every later run fails at once
// with "not attempted" and the last failure instead of waiting out its
// timeout; 3).
//
// One run: fill the output area with a marker, pack the inputs, flush both
// with one sync; start the output then the input DMA; wait for done;
// invalidate the output area; unpack. Output and input share one DMA buffer,
// output first, so both syncs start at offset 0 and a run costs two syncs. A marker that survives
// the run means the accelerator wrote nothing or the invalidate had no effect,
// which is reported instead of being returned as a class.
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>

#include "busi/backend.hpp"
#include "busi/classifier.hpp"
#include "dma_buffer.hpp"
#include "hwh.hpp"
#include "iodma.hpp"
#include "overlay.hpp"

namespace busi::fpga {

// Host-side time per phase, accumulated over every batch run (nanoseconds).
// `wait` is the accelerator's own time as the host sees it and `sync_wait` the
// time syncs waited to be acknowledged (0 on a board, see dma_allocator);
// flush and invalidate exclude it. Everything but the two waits is host cost.
struct phase_times {
  uint64_t pack = 0, flush = 0, start = 0, wait = 0, invalidate = 0, unpack = 0, sync_wait = 0;
  uint64_t batches = 0, images = 0, polls = 0;
  uint64_t host() const { return pack + flush + start + invalidate + unpack; }
};

class fpga_classifier final : public Classifier {
 public:
  // Made by make_classifier("fpga", ...), which checked the setting keys and the model kind.
  fpga_classifier(std::shared_ptr<const Model> model, const BackendSettings& settings);

  std::string backend() const override { return "fpga"; }
  std::string describe() const override { return description_; }
  const Model& model() const override { return *model_; }

  const phase_times& times() const { return times_; }
  void reset_times() { times_ = {}; }
  const overlay_description& overlay() const { return overlay_; }

 protected:
  // Runs the inputs in batches of at most max_batch images, one DMA run each.
  void infer(std::span<const Tensor8> inputs, std::span<RawOutput> outputs) override;

 private:
  void run_chunk(std::span<const Tensor8> inputs, std::span<RawOutput> out);
  void run_on_device(std::span<const Tensor8> inputs, std::span<RawOutput> out);
  void decode(const uint8_t* packed, std::size_t image, RawOutput& out) const;

  std::shared_ptr<const Model> model_;
  overlay_description overlay_;
  std::unique_ptr<iodma_pair> dma_;
  std::unique_ptr<dma_allocator> allocator_;
  std::unique_ptr<dma_buffer> io_;  // [output area][input area]
  std::size_t output_area_ = 0;     // bytes, rounded up to 4 KiB
  std::size_t max_batch_ = 64;
  int max_failures_ = 3;
  int consecutive_failures_ = 0;  // device failures since the last good run
  std::string last_failure_;
  std::vector<uint8_t> marker_;           // one image's packed output, as filled before a run
  mutable std::vector<int32_t> scratch_;  // one image's unpacked top-1 output
  std::string description_;
  phase_times times_;
};

}  // namespace busi::fpga
