// NEON fast path for the board's Cortex-A9 (ARMv7-A; also builds for AArch64).
// Activations are widened to int16 and multiplied by int16 weights with
// vmlal_lane_s16 into int32 lanes: every product and sum is exact for every
// bit width (uint8 x int8 would not fit NEON's signed 8-bit multiplies).
// 4 output channels per q register; a 4-byte group of activations is one d
// register whose lanes are the scalars of 4 multiply-accumulates.
#include <arm_neon.h>

#include "engine_simd.hpp"

namespace busi::cpu_int {
namespace {

struct neon_kernel {
  static constexpr isa which = isa::neon;
  static constexpr int lanes = 4, max_nv = 2;
  using vec = int32x4_t;

  struct packed {
    std::vector<int16_t> weights;     // [ky][group][t][oc_pad]: weight of group byte t
    std::vector<int32_t> thresholds;  // pack_thresholds layout
    int oc, oc_pad, per;
  };

  static packed pack(const conv_step& s) {
    packed p;
    p.oc = s.oc;
    p.oc_pad = (s.oc + lanes - 1) / lanes * lanes;
    p.per = s.logits ? 0 : s.thresholds_per_channel();
    p.weights.assign(std::size_t(s.kh) * s.groups * 4 * p.oc_pad, 0);
    std::size_t i = 0;
    for (int ky = 0; ky < s.kh; ++ky)
      for (int g = 0; g < s.groups; ++g)
        for (int t = 0; t < 4; ++t, i += p.oc_pad)
          for (int o = 0; o < s.oc; ++o) p.weights[i + o] = s.weight(ky, 4 * g + t, o);
    if (!s.logits) p.thresholds = pack_thresholds(s, lanes);
    return p;
  }

  // The 4 activations of a group as int16 lanes.
  static int16x4_t load_group(const uint8_t* a) {
    uint32_t v;
    std::memcpy(&v, a, 4);
    return vreinterpret_s16_u16(vget_low_u16(vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(v)))));
  }

  // 16 q registers: 4 positions x 2 vectors of accumulators plus operands.
  static constexpr int positions(int) { return 4; }

  template <int NP, int NV>
  static void dot(const conv_step& s, const packed& p, int v0, const uint8_t* const* pos, vec (&acc)[NP][NV]) {
    for (int i = 0; i < NP; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = vdupq_n_s32(0);
    const int16_t* w = p.weights.data() + std::size_t(v0) * lanes;
    const std::size_t w_step = std::size_t(p.oc_pad) * 4;
    for (const uint32_t offset : s.group_offsets) {
      int16x4_t wt[4][NV];
      for (int t = 0; t < 4; ++t)
        for (int v = 0; v < NV; ++v) wt[t][v] = vld1_s16(w + t * p.oc_pad + v * lanes);
      for (int i = 0; i < NP; ++i) {
        const int16x4_t a = load_group(pos[i] + offset);
        for (int v = 0; v < NV; ++v) {
          acc[i][v] = vmlal_lane_s16(acc[i][v], wt[0][v], a, 0);
          acc[i][v] = vmlal_lane_s16(acc[i][v], wt[1][v], a, 1);
          acc[i][v] = vmlal_lane_s16(acc[i][v], wt[2][v], a, 2);
          acc[i][v] = vmlal_lane_s16(acc[i][v], wt[3][v], a, 3);
        }
      }
      w += w_step;
    }
  }

  static vec max(vec a, vec b) { return vmaxq_s32(a, b); }

  static bool run_special(const conv_step&, const packed&, const uint8_t*, uint8_t*) { return false; }

  static void store_levels(const packed& p, int v, vec acc, uint8_t* out) {
    // level = number of thresholds t with acc >= t; a true compare is all ones (-1).
    int32x4_t level = vdupq_n_s32(0);
    const int32_t* t = p.thresholds.data() + v * lanes;
    for (int k = 0; k < p.per; ++k, t += p.oc_pad)
      level = vsubq_s32(level, vreinterpretq_s32_u32(vcgeq_s32(acc, vld1q_s32(t))));
    int32_t values[lanes];
    vst1q_s32(values, level);
    const int n = std::min(lanes, p.oc - v * lanes);
    for (int l = 0; l < n; ++l) out[v * lanes + l] = uint8_t(values[l]);
  }

  static void store_logits(const packed& p, int v, vec acc, int32_t* logits, std::size_t pixel, std::size_t plane) {
    int32_t values[lanes];
    vst1q_s32(values, acc);
    const int n = std::min(lanes, p.oc - v * lanes);
    for (int l = 0; l < n; ++l) logits[std::size_t(v * lanes + l) * plane + pixel] = values[l];
  }
};

}  // namespace

std::unique_ptr<engine> make_neon_engine(const Model& model) {
  return std::make_unique<simd_engine<neon_kernel>>(model);
}

}  // namespace busi::cpu_int
