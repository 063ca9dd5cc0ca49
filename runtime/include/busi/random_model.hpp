#pragma once
// Deterministic random models of any shape: the test oracle's inputs (odd shapes,
// extreme values), benchmark workloads, and the placeholder model. The same seed
// gives the same model on every platform (std::mt19937 with explicit
// distributions written here, not std::*_distribution, whose output varies
// between standard libraries).
#include <cstdint>
#include <vector>

#include "busi/model.hpp"

namespace busi {

struct RandomModelSpec {
  Shape input{1, 255, 255};
  // One entry per conv layer: out channels, kernel, and whether a max-pool follows.
  struct Conv {
    int out_channels = 8, kernel = 3;
    int pool = 2;  // 0: none
  };
  std::vector<Conv> convs{{8, 3, 2}, {16, 3, 2}, {32, 3, 2}, {32, 3, 2}, {32, 3, 2}, {32, 3, 0}};
  std::vector<int> dense{128, 64};  // hidden dense widths; a final dense gives the logits
  int num_classes = 3;
  int weight_bits = 2, act_bits = 4;
  ModelKind kind = ModelKind::quantized;
};

// The paper's network (six convs 8,16,32,32,32,32; dense 512->128->64->3) at the given bit widths.
RandomModelSpec paper_network_spec(int weight_bits, int act_bits);

// Weights uniform over the full narrow range; thresholds placed around the
// spread of each channel's accumulator so levels are neither all 0 nor all max
// (float models: He-scaled weights, small biases).
Model random_model(const RandomModelSpec& spec, uint64_t seed);

// Uniform random input pixels.
std::vector<uint8_t> random_pixels(std::size_t count, uint64_t seed);

}  // namespace busi
