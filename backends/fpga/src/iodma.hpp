#pragma once
// FINN's IODMA protocol (Vitis HLS s_axilite "control" bundle), as FINN's
// driver_base.execute_on_buffers does it: check the DMAs are idle; for the
// output DMA, then the input DMA, write the buffer address (0x10 low, 0x14 high),
// numReps = images in the batch (0x1C) and ap_start (0x00 bit 0); then poll the
// output DMA's control word until the batch is done, with a bounded wait.
#include <chrono>
#include <cstdint>

#include "register_window.hpp"

namespace busi::fpga {

namespace iodma_reg {
constexpr std::size_t control = 0x00, address_low = 0x10, address_high = 0x14, num_reps = 0x1C;
constexpr uint32_t ap_start = 1u << 0, ap_done = 1u << 1, ap_idle = 1u << 2;
}  // namespace iodma_reg

class iodma_pair {
 public:
  iodma_pair(register_window idma, register_window odma, std::chrono::milliseconds timeout);

  // Throws busi::device_error when either DMA does not report ap_idle: a
  // window that reads all zeros points at nothing (wrong base address in the
  // .hwh, or no bitstream), one that reads busy is still running a batch.
  void check_idle() const;
  // Starts a batch: output DMA first, so it is ready to drain what the input produces.
  void start(uint64_t input_address, uint64_t output_address, uint32_t images);
  // Waits for the output DMA to finish; throws busi::device_error (ETIMEDOUT)
  // after the timeout. Returns the number of control-word reads it took.
  uint64_t wait() const;

  const register_window& idma() const { return idma_; }
  const register_window& odma() const { return odma_; }

 private:
  register_window idma_, odma_;
  std::chrono::milliseconds timeout_;
};

}  // namespace busi::fpga
