#pragma once
// An emulated PYNQ-Z1 running a FINN accelerator, so the fpga backend's real
// code paths (mmap of /dev/mem, u-dma-buf's device file and sysfs attributes,
// fpga_manager) run unchanged on any Linux host. Everything lives under a root
// folder laid out like the board's / :
//
//   dev/mem                     sparse 4 GiB file: the physical address space;
//                               the IODMAs' AXI-lite windows (from the .hwh)
//                               and the SLCR clock registers live in it
//   dev/udmabuf0                the DMA memory as the CPU sees it (its cache)
//   sys/class/u-dma-buf/udmabuf0/{phys_addr,size,sync_*}
//   sys/class/fpga_manager/fpga0/{flags,firmware,state}, lib/firmware/
//
// The host side and the emulator both map dev/mem MAP_SHARED. A watcher
// thread polls the IODMAs' control words for ap_start and the u-dma-buf sync
// triggers. The HP port is modelled as not coherent: the device works on its
// own copy of the DMA memory, updated from dev/udmabuf0 only by a flush
// (sync_for_device) and copied back only by an invalidate (sync_for_cpu); each
// trigger is reset to 0 once applied, as the driver does.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "busi/model.hpp"
#include "dataflow.hpp"
#include "overlay.hpp"
#include "sysfs.hpp"

namespace busi::fpga::emu {

struct fault_options {
  bool never_finish = false;     // accept ap_start, never raise ap_done
  bool drop_flush = false;       // acknowledge sync_for_device without applying it
  bool drop_invalidate = false;  // acknowledge sync_for_cpu without applying it
  int64_t odma_shift = 0;        // place the output DMA this far from where the .hwh says
  bool no_sync_ack = false;      // never acknowledge a sync (a wedged driver)
};

struct emulator_options {
  std::filesystem::path root;          // created if missing
  std::filesystem::path overlay_dir;   // overlay.json (+ .hwh, folding)
  std::shared_ptr<const Model> model;  // the network the "bitstream" holds
  std::size_t dma_bytes = 16u << 20;   // size of udmabuf0
  uint64_t dma_phys = 0x16000000;      // its physical address
  bool compute = true;                 // false: answer at once with class 0 / zero logits (host-cost benchmarks)
  bool spin = false;                   // poll without sleeping (lowest latency, burns a core)
  fault_options faults;
};

struct emulator_stats {
  uint64_t batches = 0, images = 0, flushes = 0, invalidates = 0;
  double fclk_mhz = 0;
  uint64_t estimated_cycles = 0;  // all batches so far, at the overlay's folding
};

class pynq_emulator {
 public:
  // Lays out the root and checks the overlay against the model; the board is
  // then ready for the host to open. Throws busi::error on bad input.
  explicit pynq_emulator(emulator_options options);
  ~pynq_emulator();
  pynq_emulator(const pynq_emulator&) = delete;
  pynq_emulator& operator=(const pynq_emulator&) = delete;

  void start();  // the watcher thread
  void stop();

  emulator_stats stats() const;
  // Things the device noticed that a real board would silently get wrong
  // (input changed by the CPU but never flushed, addresses outside the DMA
  // memory, a bitstream that is not a valid .bin, ...).
  std::vector<std::string> diagnostics() const;
  const dataflow_network& network() const { return *network_; }

 private:
  void watch();
  bool poll_once();
  void handle_sync(bool for_cpu);
  void check_firmware();
  void run_batch();
  void note(const std::string& message);

  emulator_options options_;
  overlay_description overlay_;
  std::unique_ptr<dataflow_network> network_;
  uint64_t idma_base_ = 0, odma_base_ = 0;
  bool firmware_ok_ = true;  // the board boots with the overlay loaded
  bool stuck_ = false;       // a batch was accepted and never completed

  struct mapping;
  std::unique_ptr<mapping> dev_mem_idma_, dev_mem_odma_, dev_mem_slcr_, dma_file_;
  std::vector<uint8_t> device_view_;
  std::filesystem::path sys_dir_, manager_dir_;
  sysfs_attribute sync_for_device_, sync_for_cpu_, firmware_;  // polled: kept open
  std::string last_firmware_;

  std::atomic<bool> running_{false};
  std::thread thread_;
  mutable std::mutex mutex_;
  emulator_stats stats_;
  std::vector<std::string> diagnostics_;
};

// Writes the hardware files an overlay's description points at (its .hwh, with
// the IODMAs at the given bases, and a small .bit with a valid header) so the
// emulated board can be used without Vivado. Real overlays get both from FINN.
void write_emulated_hardware(const overlay_description& overlay, uint64_t idma_base = 0x43C00000,
                             uint64_t odma_base = 0x43C10000);

}  // namespace busi::fpga::emu
