#pragma once
// An emulated PYNQ-Z1 running an overlay for a given model (pynq-emu in this
// process), for the suites that drive the fpga backend: fpga_emulator_test and
// the backend conformance suite.
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "busi/classifier.hpp"
#include "overlay.hpp"
#include "pynq_emulator.hpp"
#include "test_support.hpp"

namespace busi::fpga {

struct board_setup {
  std::shared_ptr<const Model> model;
  // The shipped overlays return the int32 logits; top1 = true builds the
  // description FINN writes for the model with its TopK kept (build.py --output top1).
  bool top1 = false;
  std::string overlay = "busi-w2a4";  // the folder under overlays/ whose description is used
  std::string folding = "folding_fast.json";
  emu::fault_options faults;
  std::size_t dma_bytes = 16u << 20;
};

// An overlay folder (the shipped description, renamed to the model under
// test, with emulated .hwh/.bit) and a running emulated board.
class board {
 public:
  explicit board(const board_setup& setup) : model_(setup.model) {
    namespace fs = std::filesystem;
    overlay_ = dir_ / "overlay";
    fs::create_directories(overlay_);
    const fs::path shipped = fs::path(BUSI_SOURCE_DIR) / "overlays" / setup.overlay;
    for (const char* f : {"folding_3fps.json", "folding_fast.json"}) fs::copy(shipped / f, overlay_ / f);
    nlohmann::json j = nlohmann::json::parse(std::ifstream(shipped / "overlay.json"));
    j["model"] = model_->name;
    j["folding"] = setup.folding;
    if (setup.top1)  // FINN with the TopK: one UINT8 class index per image.
      j["output"] = {{"dma", "odma0"},          {"kind", "top1"},         {"datatype", "UINT8"},
                     {"shape_normal", {1, 1}}, {"shape_folded", {1, 1, 1}}, {"shape_packed", {1, 1, 1}}};
    std::ofstream(overlay_ / "overlay.json") << j.dump(2);
    emu::write_emulated_hardware(overlay_description::load(overlay_));
    root_ = dir_ / "root";
    emu::emulator_options options;
    options.root = root_;
    options.overlay_dir = overlay_;
    options.model = model_;
    options.dma_bytes = setup.dma_bytes;
    options.faults = setup.faults;
    emulator_ = std::make_unique<emu::pynq_emulator>(options);
    emulator_->start();
  }

  ClassifierOptions options(std::map<std::string, std::string> extra = {}) const {
    ClassifierOptions o;
    o.model = model_;
    o.settings = {{"overlay", overlay_.string()}, {"device_root", root_.string()}};
#if defined(__arm__) || defined(__aarch64__)
    // ARM builds run their tests under qemu (scripts/test-armhf.sh), where the
    // emulated accelerator computes a 64-image batch for longer than the
    // backend's default 10 s wait.
    o.settings["timeout_ms"] = "600000";
#endif
    for (auto& [k, v] : extra) o.settings[k] = v;
    return o;
  }
  std::unique_ptr<Classifier> fpga(std::map<std::string, std::string> extra = {}) const {
    return make_classifier("fpga", options(std::move(extra)));
  }
  std::unique_ptr<Classifier> cpu_int() const {
    ClassifierOptions o;
    o.model = model_;
    return make_classifier("cpu_int", o);
  }
  emu::pynq_emulator& emulator() { return *emulator_; }
  const std::filesystem::path& overlay() const { return overlay_; }
  const std::filesystem::path& root() const { return root_; }

 private:
  test::TempDir dir_;
  std::shared_ptr<const Model> model_;
  std::filesystem::path overlay_, root_;
  std::unique_ptr<emu::pynq_emulator> emulator_;
};

}  // namespace busi::fpga
