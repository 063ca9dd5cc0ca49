// pynq-emu: an emulated PYNQ-Z1 running a FINN accelerator, as a process.
//   pynq-emu --root DIR --overlay DIR [--model FILE] [--make-hardware]
//            [--fault never-finish|drop-flush|drop-invalidate|wrong-base|no-sync-ack] [--no-compute]
// Then run the host against it:  busi-infer --backend fpga --overlay DIR --device-root DIR images/
#include <csignal>
#include <cstring>
#include <iostream>
#include <thread>

#include "busi/error.hpp"
#include "pynq_emulator.hpp"

namespace {
volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

int usage(const char* message) {
  std::cerr << "pynq-emu: " << message << "\n"
            << "usage: pynq-emu --root DIR --overlay DIR [--model FILE.bqnn] [--make-hardware]\n"
            << "                [--fault never-finish|drop-flush|drop-invalidate|wrong-base|no-sync-ack]\n"
            << "                [--no-compute] [--dma-mib N]\n";
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace busi::fpga;
  emu::emulator_options options;
  std::filesystem::path model_path;
  bool make_hardware = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw busi::error(arg + " needs a value");
      return argv[++i];
    };
    try {
      if (arg == "--root")
        options.root = value();
      else if (arg == "--overlay")
        options.overlay_dir = value();
      else if (arg == "--model")
        model_path = value();
      else if (arg == "--make-hardware")
        make_hardware = true;
      else if (arg == "--no-compute")
        options.compute = false;
      else if (arg == "--dma-mib")
        options.dma_bytes = std::stoul(value()) << 20;
      else if (arg == "--fault") {
        const std::string f = value();
        if (f == "never-finish")
          options.faults.never_finish = true;
        else if (f == "drop-flush")
          options.faults.drop_flush = true;
        else if (f == "drop-invalidate")
          options.faults.drop_invalidate = true;
        else if (f == "wrong-base")
          options.faults.odma_shift = 0x10000;
        else if (f == "no-sync-ack")
          options.faults.no_sync_ack = true;
        else
          return usage(("unknown fault '" + f + "'").c_str());
      } else if (arg == "--help" || arg == "-h") {
        usage("an emulated PYNQ-Z1 for the fpga backend");
        return 0;
      } else {
        return usage(("unknown argument '" + arg + "'").c_str());
      }
    } catch (const std::exception& e) {
      return usage(e.what());
    }
  }
  if (options.root.empty() || options.overlay_dir.empty()) return usage("--root and --overlay are required");
  try {
    options.model = std::make_shared<const busi::Model>(
        busi::Model::load(model_path.empty() ? busi::default_model_path(busi::ModelKind::quantized) : model_path));
    if (make_hardware) emu::write_emulated_hardware(overlay_description::load(options.overlay_dir));
    emu::pynq_emulator board(options);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    board.start();
    const auto& net = board.network();
    std::cout << "pynq-emu: board ready under " << options.root.string() << " (model " << options.model->name
              << "; estimated " << net.latency_cycles() << " cycles latency, " << net.interval_cycles()
              << " cycles interval per image)" << std::endl;
    std::size_t reported = 0;
    while (!stop_requested) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const auto notes = board.diagnostics();
      for (; reported < notes.size(); ++reported) std::cerr << "pynq-emu: " << notes[reported] << std::endl;
    }
    board.stop();
    const auto s = board.stats();
    std::cout << "pynq-emu: " << s.batches << " batches, " << s.images << " images, estimated "
              << (s.fclk_mhz > 0 ? double(s.estimated_cycles) / s.fclk_mhz / 1000.0 : 0.0)
              << " ms of accelerator time at " << s.fclk_mhz << " MHz" << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "pynq-emu: error: " << e.what() << std::endl;
    return 1;
  }
}
