// Host-side cost per image of the fpga backend: packing, cache syncs, register
// writes, polling bookkeeping and unpacking, with the accelerator's own time
// excluded. The board is the emulated PYNQ-Z1 in "no compute" mode (it answers
// as soon as it sees ap_start). Two waits are reported apart and left out of
// the host cost: for ap_done (the accelerator's time), and for the emulator to
// acknowledge a u-dma-buf sync, which a real driver does inside the write()
// (the host's first read-back of the trigger, which a board also pays, stays in).
// One table for the shipped logits overlay, one for a top-1 overlay.
//
//   build/benchmarks/fpga_host_overhead_bench [seconds per batch size, default 2]
//
// Results: benchmarks/results/fpga.md.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "busi/random_model.hpp"
#include "fpga_classifier.hpp"
#include "pynq_emulator.hpp"

namespace {

namespace fs = std::filesystem;
using namespace busi;

// One table: the shipped overlay description (logits) or, with top1, the output
// FINN gives with its TopK kept, renamed to `model`, on an emulated board.
void measure(const std::shared_ptr<const Model>& model, bool top1, const std::vector<Tensor8>& images, double seconds,
             const fs::path& dir) {
  const fs::path overlay = dir / "overlay";
  fs::create_directories(overlay);
  const fs::path shipped = fs::path(BUSI_SOURCE_DIR) / "overlays/busi-w2a4";
  fs::copy(shipped / "folding_fast.json", overlay / "folding_fast.json");
  auto j = nlohmann::json::parse(std::ifstream(shipped / "overlay.json"));
  j["model"] = model->name;
  j["folding"] = "folding_fast.json";
  if (top1)
    j["output"] = {{"dma", "odma0"},          {"kind", "top1"},         {"datatype", "UINT8"},
                   {"shape_normal", {1, 1}}, {"shape_folded", {1, 1, 1}}, {"shape_packed", {1, 1, 1}}};
  std::ofstream(overlay / "overlay.json") << j.dump(2);
  fpga::emu::write_emulated_hardware(fpga::overlay_description::load(overlay));

  fpga::emu::emulator_options eo;
  eo.root = dir / "root";
  eo.overlay_dir = overlay;
  eo.model = model;
  eo.compute = false;
  fpga::emu::pynq_emulator board(eo);
  board.start();

  ClassifierOptions options;
  options.model = model;
  options.settings = {{"overlay", overlay.string()}, {"device_root", (dir / "root").string()}};
  const auto made = make_classifier("fpga", options);
  auto& classifier = dynamic_cast<fpga::fpga_classifier&>(*made);
  std::printf("%s overlay (%s)\n\n", top1 ? "top-1" : "logits (shipped)", classifier.describe().c_str());
  std::printf(
      "| batch | images | host us/image | pack | flush | start | invalidate | unpack | waits us/image: done, sync ack "
      "(excluded) | polls/batch |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  for (std::size_t batch : {1u, 7u, 64u}) {
    const std::vector<Tensor8> chunk(images.begin(), images.begin() + long(batch));
    for (int i = 0; i < 20; ++i) classifier.classify_batch(chunk);  // warm up
    classifier.reset_times();
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) classifier.classify_batch(chunk);
    const auto& t = classifier.times();
    const double n = double(t.images), us = 1e-3;
    std::printf("| %zu | %llu | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f, %.1f | %.1f |\n", batch,
                static_cast<unsigned long long>(t.images), double(t.host()) * us / n, double(t.pack) * us / n,
                double(t.flush) * us / n, double(t.start) * us / n, double(t.invalidate) * us / n,
                double(t.unpack) * us / n, double(t.wait) * us / n, double(t.sync_wait) * us / n,
                double(t.polls) / double(t.batches));
  }
  std::printf("\n");
  board.stop();
  std::error_code ec;
  fs::remove_all(overlay, ec);
  fs::remove_all(dir / "root", ec);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  char tmpl[] = "/dev/shm/busi-fpga-bench-XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  const fs::path dir = tmpl;  // on tmpfs: a board's /dev/udmabuf0 is memory, not a disk file
  auto model = std::make_shared<const Model>(random_model(paper_network_spec(2, 4), 1));
  std::vector<Tensor8> images(64);
  for (std::size_t i = 0; i < images.size(); ++i) images[i] = {255, 255, random_pixels(model->input.size(), 10 + i)};
  // Both output kinds in one run, in turn, so the machine's load hits both alike.
  for (bool top1 : {false, true}) measure(model, top1, images, seconds, dir);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}
