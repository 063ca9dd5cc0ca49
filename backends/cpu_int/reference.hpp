#pragma once
// The scalar reference of the integer network: the obvious loops over CHW
// tensors, written to be read, not to be fast. It is the oracle every fast path
// (engine_avx2.cpp, engine_avx512vnni.cpp, engine_neon.cpp) and the fpga
// backend on the emulated board (whose dataflow model is written apart from it,
// backends/fpga/emulator/dataflow.hpp) are checked against, and what
// isa=scalar runs.
//
// Semantics (docs/model-format.md, FINN's streamlined network): uint8 pixels in;
// each conv/dense layer is an integer dot product into an int32 accumulator;
// a hidden layer's output level is the number of its channel's ascending
// thresholds t with acc >= t; max-pool works on levels; the last layer's
// accumulators are the logits.
#include <cstdint>
#include <vector>

#include "busi/image.hpp"
#include "busi/model.hpp"
#include "engine.hpp"

namespace busi::cpu_int {

// Runs a quantized Model. Buffers are allocated once at construction, so run()
// does not allocate. The Model must outlive it.
class reference_engine final : public engine {
 public:
  // Throws model_error when the model is not a quantized one this engine runs.
  explicit reference_engine(const Model& model);

  void run(const uint8_t* pixels, int32_t* logits) override;
  isa kind() const override { return isa::scalar; }

  // After run(): the output of layer i (i < layers - 1) as CHW uint8 levels of
  // layer.output's shape (the tests check hand-computed levels with it).
  const std::vector<uint8_t>& levels(std::size_t layer) const { return levels_.at(layer); }

 private:
  const Model& model_;
  std::vector<std::vector<uint8_t>> levels_;  // one per layer but the last
  std::vector<int32_t> acc_;                  // accumulators of the widest layer
};

// Logits of one input (input.height x input.width must equal model.input).
std::vector<int32_t> reference_logits(const Model& model, const Tensor8& input);

}  // namespace busi::cpu_int
