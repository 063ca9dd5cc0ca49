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
//   static constexpr int positions(int nv): accumulator positions per dot() call
//       for nv vectors (enough independent chains to hide latency, few enough to
//       stay in registers);
//   template <int NP, int NV> static void dot(const conv_step&, const packed&, int v0,
//       const uint8_t* const* pos, vec (&acc)[NP][NV]): the accumulators of output-channel
//       vectors v0..v0+NV-1 at NP output positions (pos: top-left input pixel);
//   static vec max(vec, vec);
//   static void store_levels(const packed&, int v, vec acc, uint8_t* out): the levels of
//       vector v's channels to out[v*lanes ...] (only the real channels);
//   struct scratch (what a step's run writes besides its output; one per engine
//       and step, owned by the engine, which runs on one thread at a time) and
//       static scratch make_scratch(const conv_step&, const packed&);
//   static bool run_special(const conv_step&, const packed&, scratch&, const uint8_t* in, uint8_t* out):
//       runs the whole step with a kernel made for its shape, or returns false;
//   static void store_logits(const packed&, int v, vec acc, int32_t* logits, std::size_t pixel,
//       std::size_t plane): logits[channel * plane + pixel] (CHW).
// A Winograd kernel W (run_winograd<W>, called from a run_special) provides
// lanes, winograd_tiles (tiles per block), packed (with oc_pad) and scratch,
// winograd_inputs(s, p, w, in) (the transformed planes of the tile row whose
// input rows start at in), winograd_products<NV>(p, w, v0, tx0, n) and
// winograd_levels<NV>(s, p, w, v0, tx0, n, out_row) (the products, then the
// levels, of tiles tx0..tx0+n-1 for vectors v0..v0+NV-1).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>

#include "engine.hpp"
#include "plan.hpp"

namespace busi::cpu_int {
namespace {

// Pooled outputs of one step for output-channel vectors v0..v0+NV-1, NP
// accumulator positions per dot() call: whole windows of several pooled
// outputs when a window fits in NP, else one window in chunks of NP (a short
// last group repeats a position; max ignores the repeat).
template <class K, int NP, int NV>
void run_pooled(const conv_step& s, const typename K::packed& p, int v0, const uint8_t* in, uint8_t* out) {
  using vec = typename K::vec;
  const std::size_t row = s.in_row_bytes();
  const std::size_t step_x = std::size_t(s.pool) * s.in_c;  // one pooled output to the right
  const int window = int(s.window_offsets.size());
  const int per_call = window <= NP ? NP / window : 1;  // pooled outputs per dot() call
  // Position i of a call belongs to output unit[i] at window offset off[i].
  int unit[NP];
  std::size_t off[NP];
  for (int i = 0; i < NP; ++i) {
    unit[i] = window <= NP ? std::min(i / window, per_call - 1) : 0;
    off[i] = s.window_offsets[window <= NP ? (i < per_call * window ? i % window : window - 1) : 0];
  }
  vec acc[NP][NV], m[NP][NV];
  const uint8_t* pos[NP];
  for (int py = 0; py < s.pooled_h; ++py) {
    const uint8_t* row_in = in + std::size_t(py) * s.pool * row;
    uint8_t* row_out = out + std::size_t(py) * s.pooled_w * s.oc;
    for (int px = 0; px < s.pooled_w; px += per_call) {
      const int units = std::min(per_call, s.pooled_w - px);
      const uint8_t* base = row_in + std::size_t(px) * step_x;
      if (window <= NP) {
        for (int i = 0; i < NP; ++i) pos[i] = base + std::size_t(std::min(unit[i], units - 1)) * step_x + off[i];
        K::template dot<NP, NV>(s, p, v0, pos, acc);
        for (int u = 0; u < units; ++u)
          for (int v = 0; v < NV; ++v) {
            m[u][v] = acc[u * window][v];
            for (int k = 1; k < window; ++k) m[u][v] = K::max(m[u][v], acc[u * window + k][v]);
          }
      } else {
        for (int c = 0; c < window; c += NP) {
          for (int i = 0; i < NP; ++i) pos[i] = base + s.window_offsets[std::min(c + i, window - 1)];
          K::template dot<NP, NV>(s, p, v0, pos, acc);
          for (int i = 0; i < NP; ++i)
            for (int v = 0; v < NV; ++v) m[0][v] = c + i == 0 ? acc[0][v] : K::max(m[0][v], acc[i][v]);
        }
      }
      for (int u = 0; u < units; ++u)
        for (int v = 0; v < NV; ++v) K::store_levels(p, v0 + v, m[u][v], row_out + std::size_t(px + u) * s.oc);
    }
  }
}

// Unpooled outputs (levels or logits): NP consecutive positions of a row per call.
template <class K, int NP, int NV>
void run_unpooled(const conv_step& s, const typename K::packed& p, int v0, const uint8_t* in, uint8_t* out,
                  int32_t* logits) {
  using vec = typename K::vec;
  const std::size_t row = s.in_row_bytes();
  const std::size_t plane = std::size_t(s.out_h) * s.out_w;
  vec acc[NP][NV];
  const uint8_t* pos[NP];
  for (int y = 0; y < s.out_h; ++y)
    for (int x = 0; x < s.out_w; x += NP) {
      for (int i = 0; i < NP; ++i) pos[i] = in + y * row + std::size_t(std::min(x + i, s.out_w - 1)) * s.in_c;
      K::template dot<NP, NV>(s, p, v0, pos, acc);
      for (int i = 0; i < std::min(NP, s.out_w - x); ++i) {
        const std::size_t pixel = std::size_t(y) * s.out_w + x + i;
        for (int v = 0; v < NV; ++v) {
          if (s.logits)
            K::store_logits(p, v0 + v, acc[i][v], logits, pixel, plane);
          else
            K::store_levels(p, v0 + v, acc[i][v], out + pixel * s.oc);
        }
      }
    }
}

template <class K, int NV>
void run_block(const conv_step& s, const typename K::packed& p, int v0, const uint8_t* in, uint8_t* out,
               int32_t* logits) {
  constexpr int np = K::positions(NV);
  if (s.pool > 1)
    run_pooled<K, np, NV>(s, p, v0, in, out);
  else if (s.out_w == 1)  // dense: one position, nothing to share a call with
    run_unpooled<K, 1, NV>(s, p, v0, in, out, logits);
  else
    run_unpooled<K, np, NV>(s, p, v0, in, out, logits);
}

// A 3x3 conv with its 2x2 pool as Winograd F(2x2, 3x3) (plan.hpp): tile row by
// tile row, blocks of tiles, two vectors of output channels at a time.
template <class K>
void run_winograd(const conv_step& s, const typename K::packed& p, typename K::scratch& w, const uint8_t* in,
                  uint8_t* out) {
  const int vectors = p.oc_pad / K::lanes;
  for (int py = 0; py < s.pooled_h; ++py) {
    K::winograd_inputs(s, p, w, in + std::size_t(2 * py) * s.in_row_bytes());
    uint8_t* out_row = out + std::size_t(py) * s.pooled_w * s.oc;
    for (int tx0 = 0; tx0 < s.pooled_w; tx0 += K::winograd_tiles) {
      const int n = std::min(K::winograd_tiles, s.pooled_w - tx0);
      for (int v0 = 0; v0 < vectors; v0 += 2)
        if (vectors - v0 >= 2) {
          K::template winograd_products<2>(p, w, v0, tx0, n);
          K::template winograd_levels<2>(s, p, w, v0, tx0, n, out_row);
        } else {
          K::template winograd_products<1>(p, w, v0, tx0, n);
          K::template winograd_levels<1>(s, p, w, v0, tx0, n, out_row);
        }
    }
  }
}

template <class K>
void run_step(const conv_step& s, const typename K::packed& p, typename K::scratch& w, const uint8_t* in,
              uint8_t* out, int32_t* logits) {
  if (K::run_special(s, p, w, in, out)) return;
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
    for (const conv_step& s : plan_.steps) {
      packed_.push_back(K::pack(s));
      scratch_.push_back(K::make_scratch(s, packed_.back()));
    }
    // Zeroed once: slack bytes are read (times zero weights), never written.
    for (std::size_t bytes : plan_.buffer_bytes) buffers_.emplace_back(bytes, 0);
  }

  void run(const uint8_t* pixels, int32_t* logits) override { run_steps<false>(pixels, logits, nullptr); }
  void run_timed(const uint8_t* pixels, int32_t* logits, double* step_ns) override {
    run_steps<true>(pixels, logits, step_ns);
  }
  std::vector<std::string> steps() const override { return step_names(plan_); }

  isa kind() const override { return K::which; }

 private:
  template <bool Timed>
  void run_steps(const uint8_t* pixels, int32_t* logits, double* step_ns) {
    // A copy, because the caller's pixels have no read slack after them.
    std::memcpy(buffers_[0].data(), pixels, buffers_[0].size() - buffer_slack);
    for (std::size_t i = 0; i < plan_.steps.size(); ++i) {
      uint8_t* out = i + 1 < buffers_.size() ? buffers_[i + 1].data() : nullptr;
      [[maybe_unused]] const auto t0 = Timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
      run_step<K>(plan_.steps[i], packed_[i], scratch_[i], buffers_[i].data(), out, logits);
      if constexpr (Timed) step_ns[i] = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    }
  }

  plan plan_;
  std::vector<typename K::packed> packed_;
  std::vector<typename K::scratch> scratch_;  // this engine's, one per step: one thread at a time
  std::vector<std::vector<uint8_t>> buffers_;
};

}  // namespace
}  // namespace busi::cpu_int
