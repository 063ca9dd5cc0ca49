#pragma once
// The network as FINN's hardware layers compute it, for the emulated board.
// Written apart from cpu_int (which works on CHW tensors layer by layer) so the
// two check each other: here activations stream in NHWC order; a convolution
// is a sliding-window generator feeding a matrix-vector-activation unit (MVAU)
// whose weight memory is laid out per processing element, folded by PE and
// SIMD exactly as FINN stores it ([PE][NF * SF][SIMD], row n = nf * PE + pe,
// column k = sf * SIMD + simd, window order (kh, kw, channel)); thresholds
// follow each MVAU; max-pool is a streaming NHWC pool; the head is FINN's
// LabelSelect (top-1, first index wins ties) or the raw accumulators.
//
// It also estimates the cycles each MVAU needs at its folding: per image,
// output pixels * (K / SIMD) * (N / PE). The pipeline's interval is the slowest
// layer; one image's latency is roughly the sum.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "busi/model.hpp"

namespace busi::fpga::emu {

struct mvau_folding {
  int pe = 1, simd = 1;
};

// FINN's folding configuration JSON ({"MVAU_hls_0": {"PE": 8, "SIMD": 1}, ...});
// entries whose name starts with MVAU or MatrixVectorActivation, in order of
// their trailing index. An empty path gives PE = SIMD = 1 everywhere.
std::vector<mvau_folding> load_folding(const std::filesystem::path& path);

struct layer_estimate {
  std::string name;  // conv0, dense6, ...
  int pe = 1, simd = 1;
  uint64_t cycles = 0;  // per image
};

class dataflow_network {
 public:
  // Throws busi::error when the folding does not fit a layer (PE must divide
  // the output channels, SIMD the window length, as FINN requires) or the model
  // is not quantized.
  dataflow_network(const Model& model, const std::vector<mvau_folding>& folding);

  // One image: input NHWC uint8; writes 1 value (top1) or num_classes logits.
  void run(const uint8_t* input, bool top1, int32_t* out);

  std::size_t num_classes() const { return classes_; }
  const std::vector<layer_estimate>& estimates() const { return estimates_; }
  uint64_t interval_cycles() const;  // slowest layer
  uint64_t latency_cycles() const;   // sum over layers

 private:
  struct stage {
    enum kind_type { mvau, pooling } kind = mvau;
    int in_h = 0, in_w = 0, in_c = 0, out_h = 0, out_w = 0, out_c = 0;
    int kernel = 1, pool = 2;
    bool dense = false;  // the whole input map is one window
    int pe = 1, simd = 1;
    std::vector<int8_t> wmem;         // [pe][nf * sf][simd]
    std::vector<int32_t> thresholds;  // [out][levels]; empty: no activation
    int levels = 0;
  };
  void run_mvau(const stage& s, const uint8_t* in, uint8_t* out_levels, int32_t* out_acc);

  std::vector<stage> stages_;
  std::vector<layer_estimate> estimates_;
  std::size_t classes_ = 0;
  std::vector<uint8_t> buffer_a_, buffer_b_;
  std::vector<uint8_t> window_;
  std::vector<int32_t> accumulators_;
};

}  // namespace busi::fpga::emu
