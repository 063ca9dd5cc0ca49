// AVX-512 VNNI fast path: vpdpbusd multiplies 4 uint8 activations by 4 int8
// weights and adds the 4 products into an int32 lane, exactly (no int16
// intermediate), so it equals the reference for every bit width.
// 16 output channels per zmm; the activations' 4-byte group is broadcast.
#include <immintrin.h>

#include "engine_simd.hpp"

namespace busi::cpu_int {
namespace {

struct avx512vnni_kernel {
  static constexpr isa which = isa::avx512vnni;
  static constexpr int lanes = 16, max_nv = 4;
  using vec = __m512i;

  struct packed {
    std::vector<int8_t> weights;      // pack_groups layout
    std::vector<int32_t> thresholds;  // pack_thresholds layout
    int kh, groups, oc, oc_pad, per;
  };

  static packed pack(const conv_step& s) {
    packed p;
    p.weights = pack_groups(s, lanes, [](int8_t w) { return w; });
    if (!s.logits) p.thresholds = pack_thresholds(s, lanes);
    p.kh = s.kh;
    p.groups = s.groups;
    p.oc = s.oc;
    p.oc_pad = (s.oc + lanes - 1) / lanes * lanes;
    p.per = s.logits ? 0 : s.thresholds_per_channel();
    return p;
  }

  static __m512i broadcast_group(const uint8_t* a) {
    int32_t v;
    std::memcpy(&v, a, 4);
    return _mm512_set1_epi32(v);
  }

  template <int NV>
  static void dot(const packed& p, int v0, const uint8_t* const pos[4], std::size_t row, vec (&acc)[4][NV]) {
    for (int i = 0; i < 4; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_si512();
    const int8_t* w = p.weights.data() + std::size_t(v0) * lanes * 4;
    const std::size_t w_step = std::size_t(p.oc_pad) * 4;
    for (int ky = 0; ky < p.kh; ++ky) {
      const uint8_t* r0 = pos[0] + ky * row;
      const uint8_t* r1 = pos[1] + ky * row;
      const uint8_t* r2 = pos[2] + ky * row;
      const uint8_t* r3 = pos[3] + ky * row;
      for (int g = 0; g < p.groups; ++g, w += w_step) {
        const __m512i a0 = broadcast_group(r0 + 4 * g), a1 = broadcast_group(r1 + 4 * g);
        const __m512i a2 = broadcast_group(r2 + 4 * g), a3 = broadcast_group(r3 + 4 * g);
        for (int v = 0; v < NV; ++v) {
          const __m512i wv = _mm512_loadu_si512(w + v * lanes * 4);
          acc[0][v] = _mm512_dpbusd_epi32(acc[0][v], a0, wv);
          acc[1][v] = _mm512_dpbusd_epi32(acc[1][v], a1, wv);
          acc[2][v] = _mm512_dpbusd_epi32(acc[2][v], a2, wv);
          acc[3][v] = _mm512_dpbusd_epi32(acc[3][v], a3, wv);
        }
      }
    }
  }

  static vec max(vec a, vec b) { return _mm512_max_epi32(a, b); }

  static __mmask16 valid_lanes(const packed& p, int v) {
    const int n = std::min(lanes, p.oc - v * lanes);
    return __mmask16((1u << n) - 1);
  }

  static void store_levels(const packed& p, int v, vec acc, uint8_t* out) {
    // level = number of thresholds t with acc >= t.
    __m512i level = _mm512_setzero_si512();
    const __m512i one = _mm512_set1_epi32(1);
    const int32_t* t = p.thresholds.data() + v * lanes;
    for (int k = 0; k < p.per; ++k, t += p.oc_pad) {
      const __mmask16 reached = _mm512_cmpge_epi32_mask(acc, _mm512_loadu_si512(t));
      level = _mm512_mask_add_epi32(level, reached, level, one);
    }
    _mm_mask_storeu_epi8(out + v * lanes, valid_lanes(p, v), _mm512_cvtepi32_epi8(level));
  }

  static void store_logits(const packed& p, int v, vec acc, int32_t* logits, std::size_t pixel, std::size_t plane) {
    alignas(64) int32_t values[lanes];
    _mm512_store_si512(values, acc);
    const int n = std::min(lanes, p.oc - v * lanes);
    for (int l = 0; l < n; ++l) logits[std::size_t(v * lanes + l) * plane + pixel] = values[l];
  }
};

}  // namespace

std::unique_ptr<engine> make_avx512vnni_engine(const Model& model) {
  return std::make_unique<simd_engine<avx512vnni_kernel>>(model);
}

}  // namespace busi::cpu_int
