// AVX2 fast path: vpmaddubsw (uint8 x int8, adjacent pairs summed into
// SATURATING int16) then vpmaddwd by ones (pairs into int32). Exact only while
// no pair sum can leave int16: 2 * input_max * max|w| <= 32767. Layers that
// could (8-bit pixels times 8-bit weights) are run with each weight split as
// w = 16*hi + lo, lo in [-8, 7], hi in [-8, 8]: both halves keep pair sums
// within 2*255*8, and vpmaddwd by 16 rebuilds 16*hi in int32.
// 8 output channels per ymm; the activations' 4-byte group is broadcast.
#include <immintrin.h>

#include "engine_simd.hpp"

namespace busi::cpu_int {
namespace {

int8_t split_hi(int8_t w) { return int8_t((w + 8) >> 4); }
int8_t split_lo(int8_t w) { return int8_t(w - 16 * split_hi(w)); }

struct avx2_kernel {
  static constexpr isa which = isa::avx2;
  static constexpr int lanes = 8, max_nv = 2;
  using vec = __m256i;

  struct packed {
    std::vector<int8_t> weights;      // pack_groups layout (the low halves when split)
    std::vector<int8_t> high;         // split layers: the high halves, same layout
    std::vector<int32_t> thresholds;  // pack_thresholds layout
    int oc, oc_pad, per;
    bool split;
  };

  static packed pack(const conv_step& s) {
    packed p;
    p.split = 2 * s.input_max * s.max_abs_weight() > 32767;
    if (p.split) {
      p.weights = pack_groups(s, lanes, split_lo);
      p.high = pack_groups(s, lanes, split_hi);
    } else {
      p.weights = pack_groups(s, lanes, [](int8_t w) { return w; });
    }
    if (!s.logits) p.thresholds = pack_thresholds(s, lanes);
    p.oc = s.oc;
    p.oc_pad = (s.oc + lanes - 1) / lanes * lanes;
    p.per = s.logits ? 0 : s.thresholds_per_channel();
    return p;
  }

  static __m256i broadcast_group(const uint8_t* a) {
    int32_t v;
    std::memcpy(&v, a, 4);
    return _mm256_set1_epi32(v);
  }

  template <int NP, int NV, bool Split>
  static void dot_impl(const conv_step& s, const packed& p, int v0, const uint8_t* const* pos, vec (&acc)[NP][NV]) {
    const __m256i ones = _mm256_set1_epi16(1), sixteens = _mm256_set1_epi16(16);
    for (int i = 0; i < NP; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_si256();
    const std::size_t first = std::size_t(v0) * lanes * 4;
    const int8_t* w = p.weights.data() + first;
    const int8_t* h = Split ? p.high.data() + first : nullptr;
    const std::size_t w_step = std::size_t(p.oc_pad) * 4;
    for (const uint32_t offset : s.group_offsets) {
      __m256i a[NP];
      for (int i = 0; i < NP; ++i) a[i] = broadcast_group(pos[i] + offset);
      for (int v = 0; v < NV; ++v) {
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + v * lanes * 4));
        for (int i = 0; i < NP; ++i)
          acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_madd_epi16(_mm256_maddubs_epi16(a[i], wv), ones));
        if constexpr (Split) {
          const __m256i hv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + v * lanes * 4));
          for (int i = 0; i < NP; ++i)
            acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_madd_epi16(_mm256_maddubs_epi16(a[i], hv), sixteens));
        }
      }
      w += w_step;
      if constexpr (Split) h += w_step;
    }
  }

  // 16 ymm registers: 4 positions x 2 vectors of accumulators, plus operands.
  static constexpr int positions(int) { return 4; }

  template <int NP, int NV>
  static void dot(const conv_step& s, const packed& p, int v0, const uint8_t* const* pos, vec (&acc)[NP][NV]) {
    if (p.split)
      dot_impl<NP, NV, true>(s, p, v0, pos, acc);
    else
      dot_impl<NP, NV, false>(s, p, v0, pos, acc);
  }

  static vec max(vec a, vec b) { return _mm256_max_epi32(a, b); }

  struct scratch {};
  static scratch make_scratch(const conv_step&, const packed&) { return {}; }
  static bool run_special(const conv_step&, const packed&, scratch&, const uint8_t*, uint8_t*) { return false; }

  static void store_levels(const packed& p, int v, vec acc, uint8_t* out) {
    // level = per - (number of thresholds t with t > acc); cmpgt gives -1.
    __m256i level = _mm256_set1_epi32(p.per);
    const int32_t* t = p.thresholds.data() + v * lanes;
    for (int k = 0; k < p.per; ++k, t += p.oc_pad)
      level = _mm256_add_epi32(level, _mm256_cmpgt_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t)), acc));
    alignas(32) int32_t values[lanes];
    _mm256_store_si256(reinterpret_cast<__m256i*>(values), level);
    const int n = std::min(lanes, p.oc - v * lanes);
    for (int l = 0; l < n; ++l) out[v * lanes + l] = uint8_t(values[l]);
  }

  static void store_logits(const packed& p, int v, vec acc, int32_t* logits, std::size_t pixel, std::size_t plane) {
    alignas(32) int32_t values[lanes];
    _mm256_store_si256(reinterpret_cast<__m256i*>(values), acc);
    const int n = std::min(lanes, p.oc - v * lanes);
    for (int l = 0; l < n; ++l) logits[std::size_t(v * lanes + l) * plane + pixel] = values[l];
  }
};

}  // namespace

std::unique_ptr<engine> make_avx2_engine(const Model& model) {
  return std::make_unique<simd_engine<avx2_kernel>>(model);
}

}  // namespace busi::cpu_int
