#include "dataflow.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "busi/error.hpp"

namespace busi::fpga::emu {

std::vector<mvau_folding> load_folding(const std::filesystem::path& path) {
  if (path.empty()) return {};
  std::ifstream in(path);
  if (!in) throw error("cannot open folding configuration " + path.string());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw error(path.string() + ": not valid JSON: " + e.what());
  }
  std::map<int, mvau_folding> by_index;
  for (const auto& [key, value] : j.items()) {
    if (key.rfind("MVAU", 0) != 0 && key.rfind("MatrixVectorActivation", 0) != 0) continue;
    const auto underscore = key.find_last_of('_');
    const std::string digits = key.substr(underscore + 1);
    if (underscore == std::string::npos || digits.empty() ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      throw error(path.string() + ": folding entry '" + key + "' has no trailing layer index");
    mvau_folding f;
    f.pe = value.value("PE", 1);
    f.simd = value.value("SIMD", 1);
    by_index[std::stoi(digits)] = f;
  }
  std::vector<mvau_folding> out;
  for (const auto& [index, f] : by_index) out.push_back(f);
  return out;
}

dataflow_network::dataflow_network(const Model& model, const std::vector<mvau_folding>& folding) {
  if (model.kind != ModelKind::quantized)
    throw error("emulated accelerator: model " + model.name + " is not quantized");
  classes_ = model.num_classes();
  // The stream entering each layer, as NHWC dimensions.
  int h = model.input.height, w = model.input.width, c = model.input.channels;
  std::size_t mvau_index = 0, largest = std::size_t(h) * w * c;
  int layer_number = 0;
  for (const Layer& layer : model.layers) {
    stage s;
    s.in_h = h, s.in_w = w, s.in_c = c;
    if (layer.type == LayerType::maxpool) {
      s.kind = stage::pooling;
      s.pool = layer.pool;
      s.out_h = h / layer.pool, s.out_w = w / layer.pool, s.out_c = c;
    } else {
      const bool dense = layer.type == LayerType::dense;
      // A dense layer after a feature map sees the whole map as one window.
      s.kernel = dense ? 1 : layer.kernel;
      s.dense = dense;
      const int k_h = dense ? 1 : layer.kernel;
      s.out_h = dense ? 1 : h - k_h + 1;
      s.out_w = dense ? 1 : w - k_h + 1;
      s.out_c = layer.out_channels;
      const int n = layer.out_channels;
      const int k = dense ? h * w * c : layer.kernel * layer.kernel * c;
      const mvau_folding f = mvau_index < folding.size() ? folding[mvau_index] : mvau_folding{};
      const std::string name = (dense ? "dense" : "conv") + std::to_string(layer_number);
      if (f.pe < 1 || f.simd < 1 || n % f.pe != 0 || k % f.simd != 0)
        throw error("folding of MVAU " + std::to_string(mvau_index) + " (" + name + ", " + std::to_string(k) + " x " +
                    std::to_string(n) + "): PE " + std::to_string(f.pe) + " must divide " + std::to_string(n) +
                    " and SIMD " + std::to_string(f.simd) + " must divide " + std::to_string(k));
      s.pe = f.pe, s.simd = f.simd;
      // The weight matrix in FINN's orientation: W[n][k], k over the window in
      // (kh, kw, channel) order -- for a dense layer after a map, (h, w, channel),
      // which is the transpose FINN's streamlining absorbs into the weights.
      std::vector<int8_t> matrix(std::size_t(n) * k);
      for (int o = 0; o < n; ++o)
        for (int ky = 0; ky < (dense ? h : k_h); ++ky)
          for (int kx = 0; kx < (dense ? w : k_h); ++kx)
            for (int ch = 0; ch < c; ++ch) {
              const std::size_t kk = (std::size_t(ky) * (dense ? w : k_h) + kx) * c + ch;
              const std::size_t src = dense ? std::size_t(o) * k + (std::size_t(ch) * h + ky) * w + kx
                                            : ((std::size_t(o) * c + ch) * k_h + ky) * k_h + kx;
              matrix[std::size_t(o) * k + kk] = layer.weights[src];
            }
      // Fold into the per-PE weight memories.
      const int nf = n / f.pe, sf = k / f.simd;
      s.wmem.resize(matrix.size());
      for (int pe = 0; pe < f.pe; ++pe)
        for (int t_n = 0; t_n < nf; ++t_n)
          for (int t_s = 0; t_s < sf; ++t_s)
            for (int lane = 0; lane < f.simd; ++lane) {
              const std::size_t row = std::size_t(t_n) * f.pe + pe, col = std::size_t(t_s) * f.simd + lane;
              s.wmem[((std::size_t(pe) * nf + t_n) * sf + t_s) * f.simd + lane] = matrix[row * k + col];
            }
      if (layer.act_bits > 0) {
        s.levels = layer.thresholds_per_channel();
        s.thresholds = layer.thresholds;
      }
      estimates_.push_back(
          {name, f.pe, f.simd, uint64_t(s.out_h) * s.out_w * uint64_t(k / f.simd) * uint64_t(n / f.pe)});
      ++mvau_index;
    }
    h = s.out_h, w = s.out_w, c = s.out_c;
    largest = std::max(largest, std::size_t(h) * w * c);
    stages_.push_back(std::move(s));
    ++layer_number;
  }
  buffer_a_.resize(largest);
  buffer_b_.resize(largest);
  accumulators_.resize(classes_);
}

uint64_t dataflow_network::interval_cycles() const {
  uint64_t slowest = 0;
  for (const auto& e : estimates_) slowest = std::max(slowest, e.cycles);
  return slowest;
}

uint64_t dataflow_network::latency_cycles() const {
  uint64_t sum = 0;
  for (const auto& e : estimates_) sum += e.cycles;
  return sum;
}

void dataflow_network::run_mvau(const stage& s, const uint8_t* in, uint8_t* out_levels, int32_t* out_acc) {
  const int kh = s.dense ? s.in_h : s.kernel, kw = s.dense ? s.in_w : s.kernel;
  const std::size_t k = std::size_t(kh) * kw * s.in_c;
  const int n = s.out_c, nf = n / s.pe;
  window_.resize(k);
  for (int oy = 0; oy < s.out_h; ++oy)
    for (int ox = 0; ox < s.out_w; ++ox) {
      // Sliding-window generator: the (kh, kw, channel) vector for this pixel.
      uint8_t* win = window_.data();
      for (int ky = 0; ky < kh; ++ky) {
        const uint8_t* row = in + (std::size_t(oy + ky) * s.in_w + ox) * s.in_c;
        std::copy(row, row + std::size_t(kw) * s.in_c, win);
        win += std::size_t(kw) * s.in_c;
      }
      const std::size_t pixel = std::size_t(oy) * s.out_w + ox;
      // Neuron fold by neuron fold, each PE walks its SF * SIMD weights of that
      // row, which sit contiguously in its memory.
      for (int t_n = 0; t_n < nf; ++t_n)
        for (int pe = 0; pe < s.pe; ++pe) {
          const int8_t* wrow = s.wmem.data() + (std::size_t(pe) * nf + t_n) * k;
          int32_t acc = 0;
          for (std::size_t i = 0; i < k; ++i) acc += int32_t(int16_t(wrow[i]) * int16_t(window_[i]));
          const int o = t_n * s.pe + pe;
          if (s.levels == 0) {
            out_acc[pixel * n + o] = acc;
          } else {
            const int32_t* t = s.thresholds.data() + std::size_t(o) * s.levels;
            int level = 0;
            while (level < s.levels && acc >= t[level]) ++level;
            out_levels[pixel * n + o] = uint8_t(level);
          }
        }
    }
}

void dataflow_network::run(const uint8_t* input, bool top1, int32_t* out) {
  const uint8_t* in = input;
  uint8_t* next = buffer_a_.data();
  for (const stage& s : stages_) {
    if (s.kind == stage::pooling) {
      for (int oy = 0; oy < s.out_h; ++oy)
        for (int ox = 0; ox < s.out_w; ++ox)
          for (int ch = 0; ch < s.out_c; ++ch) {
            uint8_t best = 0;
            for (int dy = 0; dy < s.pool; ++dy)
              for (int dx = 0; dx < s.pool; ++dx)
                best = std::max(best, in[((std::size_t(oy) * s.pool + dy) * s.in_w + ox * s.pool + dx) * s.in_c + ch]);
            next[(std::size_t(oy) * s.out_w + ox) * s.out_c + ch] = best;
          }
    } else if (s.levels == 0) {
      run_mvau(s, in, nullptr, accumulators_.data());
      break;  // the last layer: logits
    } else {
      run_mvau(s, in, next, nullptr);
    }
    in = next;
    next = next == buffer_a_.data() ? buffer_b_.data() : buffer_a_.data();
  }
  if (!top1) {
    std::copy(accumulators_.begin(), accumulators_.end(), out);
    return;
  }
  // LabelSelect: a later class replaces the best only when strictly greater.
  int best = 0;
  for (std::size_t i = 1; i < accumulators_.size(); ++i)
    if (accumulators_[i] > accumulators_[best]) best = int(i);
  out[0] = best;
}

}  // namespace busi::fpga::emu
