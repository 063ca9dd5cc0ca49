#pragma once
// The loop structure every SIMD engine shares, parameterized by an ISA kernel
// K. Included only by engine_<isa>.cpp, each compiled with its own ISA flags:
// everything here has internal linkage so no instantiation compiled for one
// ISA can be picked by the linker for another.
//
// K provides:
//   static constexpr isa which; static constexpr int lanes (output channels
//   per vector), max_nv (vectors of output channels held per pass);
//   vec (an int32 accumulator vector); struct packed (a step's packed
//   weights and thresholds) and static packed pack(const conv_step&);
//   template <int NV> static void dot(const packed&, int v0, const uint8_t* const pos[4],
//       std::size_t row_bytes, vec (&acc)[4][NV]): the accumulators of output-channel
//       vectors v0..v0+NV-1 at 4 output positions (pos: top-left input pixel);
//   static vec max(vec, vec);
//   static void store_levels(const packed&, int v, vec acc, uint8_t* out): the levels of
//       vector v's channels to out[v*lanes ...] (only the real channels);
//   static void store_logits(const packed&, int v, vec acc, int32_t* logits, std::size_t pixel,
//       std::size_t plane): logits[channel * plane + pixel] (CHW).
#include <algorithm>
#include <cstring>
#include <memory>

#include "engine.hpp"
#include "plan.hpp"

namespace busi::cpu_int {
namespace {

template <class K, int NV>
void run_block(const conv_step& s, const typename K::packed& p, int v0, const uint8_t* in, uint8_t* out,
               int32_t* logits) {
  using vec = typename K::vec;
  const std::size_t row = s.in_row_bytes();
  auto at = [&](int y, int x) { return in + y * row + std::size_t(x) * s.in_c; };
  vec acc[4][NV];
  const uint8_t* pos[4];
  if (s.pool > 1) {
    // One pooled output at a time: its pool*pool positions in chunks of 4
    // (the last chunk repeats a position; max ignores the repeat).
    const int window = s.pool * s.pool;
    for (int py = 0; py < s.pooled_h; ++py)
      for (int px = 0; px < s.pooled_w; ++px) {
        vec m[NV];
        for (int c = 0; c < window; c += 4) {
          for (int i = 0; i < 4; ++i) {
            const int j = std::min(c + i, window - 1);
            pos[i] = at(py * s.pool + j / s.pool, px * s.pool + j % s.pool);
          }
          K::template dot<NV>(p, v0, pos, row, acc);
          for (int v = 0; v < NV; ++v) {
            const vec chunk = K::max(K::max(acc[0][v], acc[1][v]), K::max(acc[2][v], acc[3][v]));
            m[v] = c == 0 ? chunk : K::max(m[v], chunk);
          }
        }
        uint8_t* dst = out + (std::size_t(py) * s.pooled_w + px) * s.oc;
        for (int v = 0; v < NV; ++v) K::store_levels(p, v0 + v, m[v], dst);
      }
    return;
  }
  // No pool: 4 consecutive outputs in row-major order at a time.
  const int n = s.out_h * s.out_w;
  for (int j = 0; j < n; j += 4) {
    for (int i = 0; i < 4; ++i) {
      const int k = std::min(j + i, n - 1);
      pos[i] = at(k / s.out_w, k % s.out_w);
    }
    K::template dot<NV>(p, v0, pos, row, acc);
    for (int i = 0; i < std::min(4, n - j); ++i)
      for (int v = 0; v < NV; ++v) {
        if (s.logits)
          K::store_logits(p, v0 + v, acc[i][v], logits, std::size_t(j + i), std::size_t(n));
        else
          K::store_levels(p, v0 + v, acc[i][v], out + std::size_t(j + i) * s.oc);
      }
  }
}

template <class K>
void run_step(const conv_step& s, const typename K::packed& p, const uint8_t* in, uint8_t* out, int32_t* logits) {
  const int vectors = (s.oc + K::lanes - 1) / K::lanes;
  for (int v0 = 0; v0 < vectors; v0 += K::max_nv) {
    switch (std::min(K::max_nv, vectors - v0)) {
      case 1:
        run_block<K, 1>(s, p, v0, in, out, logits);
        break;
      case 2:
        run_block<K, 2>(s, p, v0, in, out, logits);
        break;
      case 3:
        if constexpr (K::max_nv >= 3) run_block<K, 3>(s, p, v0, in, out, logits);
        break;
      case 4:
        if constexpr (K::max_nv >= 4) run_block<K, 4>(s, p, v0, in, out, logits);
        break;
    }
  }
}

template <class K>
class simd_engine final : public engine {
 public:
  explicit simd_engine(const Model& model) : plan_(make_plan(model)) {
    for (const conv_step& s : plan_.steps) packed_.push_back(K::pack(s));
    // Zeroed once: slack bytes are read (times zero weights), never written.
    for (std::size_t bytes : plan_.buffer_bytes) buffers_.emplace_back(bytes, 0);
  }

  void run(const uint8_t* pixels, int32_t* logits) override {
    // A copy, because the caller's pixels have no read slack after them.
    std::memcpy(buffers_[0].data(), pixels, buffers_[0].size() - buffer_slack);
    for (std::size_t i = 0; i < plan_.steps.size(); ++i) {
      uint8_t* out = i + 1 < buffers_.size() ? buffers_[i + 1].data() : nullptr;
      run_step<K>(plan_.steps[i], packed_[i], buffers_[i].data(), out, logits);
    }
  }

  isa kind() const override { return K::which; }

 private:
  plan plan_;
  std::vector<typename K::packed> packed_;
  std::vector<std::vector<uint8_t>> buffers_;
};

}  // namespace
}  // namespace busi::cpu_int
