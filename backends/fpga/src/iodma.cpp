#include "iodma.hpp"

#include <cerrno>
#include <thread>

#include "busi/error.hpp"

namespace busi::fpga {

iodma_pair::iodma_pair(register_window idma, register_window odma, std::chrono::milliseconds timeout)
    : idma_(std::move(idma)), odma_(std::move(odma)), timeout_(timeout) {}

void iodma_pair::check_idle() const {
  for (const auto* dma : {&odma_, &idma_}) {
    const uint32_t control = dma->read32(iodma_reg::control);
    if (control & iodma_reg::ap_idle) continue;
    if (control == 0)
      throw device_error(ENXIO, dma->name() + " at " + hex(dma->base()) +
                                    ": control register reads 0x0, not ap_idle: no IODMA answers there "
                                    "(wrong base address in the .hwh, or the bitstream is not loaded)");
    throw device_error(EBUSY, dma->name() + " at " + hex(dma->base()) + ": busy (control register " + hex(control) +
                                  "); a previous batch has not finished");
  }
}

void iodma_pair::start(uint64_t input_address, uint64_t output_address, uint32_t images) {
  for (auto [dma, address] : {std::pair{&odma_, output_address}, std::pair{&idma_, input_address}}) {
    dma->write32(iodma_reg::address_low, static_cast<uint32_t>(address));
    dma->write32(iodma_reg::address_high, static_cast<uint32_t>(address >> 32));
    dma->write32(iodma_reg::num_reps, images);
    dma->write32(iodma_reg::control, iodma_reg::ap_start);
  }
}

uint64_t iodma_pair::wait() const {
  // Spin briefly (a small batch on fast hardware finishes in microseconds),
  // then sleep in growing steps so a long batch does not burn a core.
  const auto begin = std::chrono::steady_clock::now();
  const auto deadline = begin + timeout_;
  auto pause = std::chrono::microseconds(0);
  for (uint64_t reads = 1;; ++reads) {
    const uint32_t control = odma_.read32(iodma_reg::control);
    // ap_done is clear-on-read, so the read that sees it is the one that counts;
    // ap_idle with ap_start gone also means the batch has drained.
    if ((control & iodma_reg::ap_done) || ((control & iodma_reg::ap_idle) && !(control & iodma_reg::ap_start)))
      return reads;
    const auto now = std::chrono::steady_clock::now();
    if (now > deadline)
      throw device_error(ETIMEDOUT, odma_.name() + " at " + hex(odma_.base()) +
                                        ": the accelerator did not finish within " + std::to_string(timeout_.count()) +
                                        " ms (control register " + hex(control) +
                                        "); is the bitstream loaded and FCLK0 running?");
    if (now - begin > std::chrono::microseconds(50)) {
      pause = std::min(std::chrono::microseconds(1000), pause + std::chrono::microseconds(20));
      std::this_thread::sleep_for(pause);
    }
  }
}

}  // namespace busi::fpga
