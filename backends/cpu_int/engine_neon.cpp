// NEON fast path for the board's Cortex-A9 (ARMv7-A; also builds for AArch64).
// Activations are widened to int16 and multiplied by int16 weights with
// vmlal_lane_s16 into int32 lanes: every product and sum is exact for every
// bit width (uint8 x int8 would not fit NEON's signed 8-bit multiplies).
// 4 output channels per q register; a 4-byte group of activations is one d
// register whose lanes are the scalars of 4 multiply-accumulates.
#include <arm_neon.h>

#include <climits>
#include <type_traits>

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
    // Winograd F(2x2, 3x3) for 3x3 convs with a 2x2 pool (see winograd()):
    // transformed weights G' g G'^T as int16 [xi][ic_pad][oc_pad]; input
    // channels padded to 4 (1 stays 1).
    bool winograd = false;
    int wg_ic_pad = 0;
    std::vector<int16_t> wg_weights;
    std::size_t wg_row = 0, wg_plane = 0;  // int16 values per row, per plane
    // Narrow Winograd, when 4 * |acc| fits int16: products summed mod 2^16 in
    // int16 lanes (vmla(q)_lane_s16: 8 channels per multiply where vmlal
    // gives 4), thresholds as int16 [t][oc_pad] clamped to [-bound, bound + 1]
    // (the same counts for every reachable acc).
    bool narrow = false;
    std::vector<int16_t> thresholds16;
    // Winograd, at most 15 levels: the level_arithmetic (plan.hpp) of each
    // channel on acc (scale 1), as [k, c, m, -(s + 1)][oc_pad] int16, and per
    // block of 8 channels (the pair of vectors run_winograd runs together;
    // the last 4 alone when their count is odd) whether every channel has one:
    // its levels then come from the forms, 5 NEON instructions for 8 channels
    // where counting 15 thresholds takes 45, else from the count. A form
    // exists only where every reachable acc of its channel fits int16, so the
    // wide kernel's int32 acc narrows exactly. A block's search stops at its
    // first channel without a form (each failed search costs up to ~1 ms at
    // model load). The direct kernels' layers (few outputs per channel)
    // keep the count: their forms would cost more to find than they save.
    std::vector<int16_t> forms;
    std::vector<uint8_t> block_has_forms;  // not vector<bool>: its out-of-line members would be weak symbols here
  };
  // A Winograd step's scratch, one per engine and step (an engine runs one
  // image at a time, on one thread): the 4 rows of the vertical transform, the
  // 16 transformed planes of a tile row [xi][tile][ic_pad], and the products
  // of a block of tiles [xi][tile][oc_pad].
  struct scratch {
    std::vector<int16_t> rows, planes;
    std::vector<int32_t> products;    // wide: [xi][tile][oc_pad] int32
    std::vector<int16_t> products16;  // narrow: the same, int16
  };

  static constexpr int winograd_tiles = 8;  // tiles per block: 16 KB of products at 32 channels

  static packed pack(const conv_step& s) {
    packed p;
    p.oc = s.oc;
    p.oc_pad = (s.oc + lanes - 1) / lanes * lanes;
    p.per = s.logits ? 0 : s.thresholds_per_channel();
    if (!s.logits) p.thresholds = pack_thresholds(s, lanes);
    pack_winograd(s, p);
    if (p.winograd) return p;
    p.weights.assign(std::size_t(s.kh) * s.groups * 4 * p.oc_pad, 0);
    std::size_t i = 0;
    for (int ky = 0; ky < s.kh; ++ky)
      for (int g = 0; g < s.groups; ++g)
        for (int t = 0; t < 4; ++t, i += p.oc_pad)
          for (int o = 0; o < s.oc; ++o) p.weights[i + o] = s.weight(ky, 4 * g + t, o);
    return p;
  }

  // Winograd F(2x2, 3x3) (plan.hpp). Here every value is int16 (the
  // transformed inputs lie in [-2m, 4m] with m <= 255, the transformed weights
  // within 9 * 127) and the products int32, summed mod 2^32: exact when
  // 4 * |acc| fits int32.
  static void pack_winograd(const conv_step& s, packed& p) {
    if (!winograd_shape(s) || 4 * int64_t(s.input_max) * s.max_abs_channel_sum() > INT32_MAX) return;
    p.winograd = true;
    p.wg_ic_pad = s.in_c == 1 ? 1 : (s.in_c + 3) / 4 * 4;
    p.wg_weights.assign(std::size_t(16) * p.wg_ic_pad * p.oc_pad, 0);
    for (int o = 0; o < s.oc; ++o)
      for (int ic = 0; ic < s.in_c; ++ic)
        for (int xi = 0; xi < 16; ++xi)
          p.wg_weights[(std::size_t(xi) * p.wg_ic_pad + ic) * p.oc_pad + o] = int16_t(winograd_weight(s, xi, ic, o));
    p.wg_row = s.in_row_bytes();
    p.wg_plane = std::size_t(s.pooled_w) * p.wg_ic_pad;
    const int64_t bound = int64_t(s.input_max) * s.max_abs_channel_sum();
    p.narrow = 4 * bound <= 32767;
    if (p.narrow)
      for (int32_t t : p.thresholds) p.thresholds16.push_back(int16_t(std::clamp<int64_t>(t, -bound, bound + 1)));
    if (p.per <= 15) pack_forms(s, p);
  }

  static void pack_forms(const conv_step& s, packed& p) {
    p.forms.assign(std::size_t(4) * p.oc_pad, 0);
    p.block_has_forms.assign((p.oc_pad + 2 * lanes - 1) / (2 * lanes), 1);
    for (int o = 0; o < s.oc; ++o) {
      const int block = o / (2 * lanes);
      if (!p.block_has_forms[block]) continue;
      level_arithmetic f;
      if (!channel_level_arithmetic(s, o, 1, f)) {
        p.block_has_forms[block] = 0;
        continue;
      }
      const int16_t params[4] = {f.k, f.c, f.m, int16_t(-(f.s + 1))};
      for (int i = 0; i < 4; ++i) p.forms[std::size_t(i) * p.oc_pad + o] = params[i];
    }
  }

  static scratch make_scratch(const conv_step&, const packed& p) {
    scratch w;
    if (!p.winograd) return w;
    w.rows.assign(4 * p.wg_row, 0);
    w.planes.assign(16 * p.wg_plane + 4, 0);  // padding channels stay 0; 4 values of read slack
    if (p.narrow)
      w.products16.assign(std::size_t(16) * winograd_tiles * p.oc_pad, 0);
    else
      w.products.assign(std::size_t(16) * winograd_tiles * p.oc_pad, 0);
    return w;
  }

  // Input rows 2py..2py+3 (from `in`) into the 16 planes B^T d B of a tile
  // row: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3, then the same of columns
  // 2tx..2tx+3.
  static void winograd_inputs(const conv_step& s, const packed& p, scratch& w, const uint8_t* in) {
    const std::size_t row = s.in_row_bytes();
    int16_t* t = w.rows.data();
    const uint8_t *r0 = in, *r1 = in + row, *r2 = in + 2 * row, *r3 = in + 3 * row;
    std::size_t x = 0;
    for (; x + 8 <= row; x += 8) {  // differences of uint8 as uint16 wrap to the right int16
      const uint8x8_t a = vld1_u8(r0 + x), b = vld1_u8(r1 + x), c = vld1_u8(r2 + x), d = vld1_u8(r3 + x);
      vst1q_s16(t + x, vreinterpretq_s16_u16(vsubl_u8(a, c)));
      vst1q_s16(t + p.wg_row + x, vreinterpretq_s16_u16(vaddl_u8(b, c)));
      vst1q_s16(t + 2 * p.wg_row + x, vreinterpretq_s16_u16(vsubl_u8(c, b)));
      vst1q_s16(t + 3 * p.wg_row + x, vreinterpretq_s16_u16(vsubl_u8(b, d)));
    }
    for (; x < row; ++x) {
      t[x] = int16_t(r0[x] - r2[x]);
      t[p.wg_row + x] = int16_t(r1[x] + r2[x]);
      t[2 * p.wg_row + x] = int16_t(r2[x] - r1[x]);
      t[3 * p.wg_row + x] = int16_t(r1[x] - r3[x]);
    }
    const int c = s.in_c, cp = p.wg_ic_pad, pw = s.pooled_w;
    for (int i = 0; i < 4; ++i) {
      const int16_t* ti = t + i * p.wg_row;
      int16_t* out = w.planes.data() + std::size_t(4 * i) * p.wg_plane;
      int16_t *h0 = out, *h1 = out + p.wg_plane, *h2 = out + 2 * p.wg_plane, *h3 = out + 3 * p.wg_plane;
      int tx = 0;
      if (c == 1) {  // 8 tiles at a time: even and odd pixels by de-interleaving loads
        for (; tx + 8 <= pw; tx += 8) {
          const int16x8x2_t a01 = vld2q_s16(ti + 2 * tx), a23 = vld2q_s16(ti + 2 * tx + 2);
          vst1q_s16(h0 + tx, vsubq_s16(a01.val[0], a23.val[0]));
          vst1q_s16(h1 + tx, vaddq_s16(a01.val[1], a23.val[0]));
          vst1q_s16(h2 + tx, vsubq_s16(a23.val[0], a01.val[1]));
          vst1q_s16(h3 + tx, vsubq_s16(a01.val[1], a23.val[1]));
        }
      } else if (c % 4 == 0) {  // 4 channels at a time
        for (; tx < pw; ++tx)
          for (int ic = 0; ic < c; ic += 4) {
            const int16_t* a = ti + std::size_t(2 * tx) * c + ic;
            const int16x4_t a0 = vld1_s16(a), a1 = vld1_s16(a + c), a2 = vld1_s16(a + 2 * c), a3 = vld1_s16(a + 3 * c);
            const std::size_t o = std::size_t(tx) * cp + ic;
            vst1_s16(h0 + o, vsub_s16(a0, a2));
            vst1_s16(h1 + o, vadd_s16(a1, a2));
            vst1_s16(h2 + o, vsub_s16(a2, a1));
            vst1_s16(h3 + o, vsub_s16(a1, a3));
          }
      }
      for (; tx < pw; ++tx)  // what the vector loops left
        for (int ic = 0; ic < c; ++ic) {
          const int16_t* a = ti + std::size_t(2 * tx) * c + ic;
          const std::size_t o = std::size_t(tx) * cp + ic;
          h0[o] = int16_t(a[0] - a[2 * c]);
          h1[o] = int16_t(a[c] + a[2 * c]);
          h2[o] = int16_t(a[2 * c] - a[c]);
          h3[o] = int16_t(a[c] - a[3 * c]);
        }
    }
  }

  // The 16 transformed products of tiles tx0..tx0+n-1 (n <= winograd_tiles)
  // for vectors v0..v0+NV-1, 4 tiles per pass (a short last pass repeats a
  // tile into an unused slot): [xi][tile][oc_pad]. With one input channel the
  // 4 tiles' values are one load, each the scalar of a by-lane multiply.
  template <int NV>
  static void winograd_products(const packed& p, scratch& w, int v0, int tx0, int n) {
    if (p.narrow)
      winograd_products_narrow<NV>(p, w, v0, tx0, n);
    else
      winograd_products_wide<NV>(p, w, v0, tx0, n);
  }

  // Narrow: NV vectors of 4 channels are one int16 register (d for 4, q for 8).
  template <int NV>
  using narrow_vec = std::conditional_t<NV == 2, int16x8_t, int16x4_t>;
  template <int NV>
  static narrow_vec<NV> load16(const int16_t* a) {
    if constexpr (NV == 2) return vld1q_s16(a); else return vld1_s16(a);
  }
  template <int NV>
  static void store16(int16_t* a, narrow_vec<NV> v) {
    if constexpr (NV == 2) vst1q_s16(a, v); else vst1_s16(a, v);
  }
  template <int NV, int Lane>
  static narrow_vec<NV> mla16(narrow_vec<NV> acc, narrow_vec<NV> w, int16x4_t a) {
    if constexpr (NV == 2) return vmlaq_lane_s16(acc, w, a, Lane); else return vmla_lane_s16(acc, w, a, Lane);
  }

  template <int NV, int Lane>
  static narrow_vec<NV> mul16(narrow_vec<NV> w, int16x4_t a) {
    if constexpr (NV == 2) return vmulq_lane_s16(w, a, Lane); else return vmul_lane_s16(w, a, Lane);
  }

  template <int NV>
  static void winograd_products_narrow(const packed& p, scratch& w, int v0, int tx0, int n) {
    using vec16 = narrow_vec<NV>;
    const int cp = p.wg_ic_pad;
    const std::size_t u_xi = std::size_t(cp) * p.oc_pad, m_xi = std::size_t(winograd_tiles) * p.oc_pad;
    const int16_t* u0 = p.wg_weights.data() + v0 * lanes;
    for (int t0 = 0; t0 < n; t0 += 4) {
      const int16_t* tile[4];
      for (int t = 0; t < 4; ++t) tile[t] = w.planes.data() + std::size_t(tx0 + std::min(t0 + t, n - 1)) * cp;
      int16_t* products = w.products16.data() + std::size_t(t0) * p.oc_pad + v0 * lanes;
      for (int xi = 0; xi < 16; ++xi) {
        const std::size_t plane = xi * p.wg_plane;
        const int16_t* u = u0 + xi * u_xi;
        vec16 acc[4];
        if (cp == 1) {
          const int16x4_t a = vld1_s16(tile[0] + plane);  // tiles t0..t0+3 (scratch planes have the slack)
          const vec16 wv = load16<NV>(u);
          acc[0] = mul16<NV, 0>(wv, a);
          acc[1] = mul16<NV, 1>(wv, a);
          acc[2] = mul16<NV, 2>(wv, a);
          acc[3] = mul16<NV, 3>(wv, a);
        } else {
          for (int t = 0; t < 4; ++t) acc[t] = vec16{};
          for (int g = 0; g < cp; g += 4) {
            vec16 wk[4];
            for (int k = 0; k < 4; ++k) wk[k] = load16<NV>(u + std::size_t(g + k) * p.oc_pad);
            for (int t = 0; t < 4; ++t) {
              const int16x4_t a = vld1_s16(tile[t] + plane + g);
              acc[t] = mla16<NV, 0>(acc[t], wk[0], a);
              acc[t] = mla16<NV, 1>(acc[t], wk[1], a);
              acc[t] = mla16<NV, 2>(acc[t], wk[2], a);
              acc[t] = mla16<NV, 3>(acc[t], wk[3], a);
            }
          }
        }
        for (int t = 0; t < 4; ++t) store16<NV>(products + xi * m_xi + std::size_t(t) * p.oc_pad, acc[t]);
      }
    }
  }

  template <int NV>
  static void winograd_products_wide(const packed& p, scratch& w, int v0, int tx0, int n) {
    const int cp = p.wg_ic_pad;
    const std::size_t u_xi = std::size_t(cp) * p.oc_pad, m_xi = std::size_t(winograd_tiles) * p.oc_pad;
    const int16_t* u0 = p.wg_weights.data() + v0 * lanes;
    for (int t0 = 0; t0 < n; t0 += 4) {
      const int16_t* tile[4];
      for (int t = 0; t < 4; ++t) tile[t] = w.planes.data() + std::size_t(tx0 + std::min(t0 + t, n - 1)) * cp;
      int32_t* products = w.products.data() + std::size_t(t0) * p.oc_pad + v0 * lanes;
      for (int xi = 0; xi < 16; ++xi) {
        const std::size_t plane = xi * p.wg_plane;
        const int16_t* u = u0 + xi * u_xi;
        int32x4_t acc[4][NV];
        for (int t = 0; t < 4; ++t)
          for (int v = 0; v < NV; ++v) acc[t][v] = vdupq_n_s32(0);
        if (cp == 1) {
          const int16x4_t a = vld1_s16(tile[0] + plane);  // tiles t0..t0+3 (scratch planes have the slack)
          for (int v = 0; v < NV; ++v) {
            const int16x4_t w = vld1_s16(u + v * lanes);
            acc[0][v] = vmull_lane_s16(w, a, 0);
            acc[1][v] = vmull_lane_s16(w, a, 1);
            acc[2][v] = vmull_lane_s16(w, a, 2);
            acc[3][v] = vmull_lane_s16(w, a, 3);
          }
        } else {
          for (int g = 0; g < cp; g += 4) {
            int16x4_t w[4][NV];
            for (int k = 0; k < 4; ++k)
              for (int v = 0; v < NV; ++v) w[k][v] = vld1_s16(u + std::size_t(g + k) * p.oc_pad + v * lanes);
            for (int t = 0; t < 4; ++t) {
              const int16x4_t a = vld1_s16(tile[t] + plane + g);
              for (int v = 0; v < NV; ++v) {
                acc[t][v] = vmlal_lane_s16(acc[t][v], w[0][v], a, 0);
                acc[t][v] = vmlal_lane_s16(acc[t][v], w[1][v], a, 1);
                acc[t][v] = vmlal_lane_s16(acc[t][v], w[2][v], a, 2);
                acc[t][v] = vmlal_lane_s16(acc[t][v], w[3][v], a, 3);
              }
            }
          }
        }
        for (int t = 0; t < 4; ++t)
          for (int v = 0; v < NV; ++v)
            vst1q_s32(products + xi * m_xi + std::size_t(t) * p.oc_pad + v * lanes, acc[t][v]);
      }
    }
  }

  // Per tile and vector of channels v0..v0+NV-1: the output transform A^T M A
  // (4 * acc of the 2x2 outputs), pooled, divided by 4 (exact), then the levels.
  template <int NV>
  static void winograd_levels(const conv_step& s, const packed& p, scratch& w, int v0, int tx0, int n,
                              uint8_t* out_row) {
    if (p.narrow)
      winograd_levels_narrow<NV>(s, p, w, v0, tx0, n, out_row);
    else
      winograd_levels_wide<NV>(s, p, w, v0, tx0, n, out_row);
  }

  // The levels of NV vectors of channels, as bytes (NV == 1: the first 4):
  // the count of their thresholds <= acc ...
  template <int NV>
  struct threshold_count {
    const int16_t* thresholds;  // p.thresholds16 at vector v0
    int per, oc_pad;
    uint8x8_t operator()(narrow_vec<NV> acc) const {  // a true compare is all ones (-1)
      if constexpr (NV == 2) {
        uint16x8_t level = vdupq_n_u16(0);
        for (int k = 0; k < per; ++k) level = vsubq_u16(level, vcgeq_s16(acc, vld1q_s16(thresholds + k * oc_pad)));
        return vmovn_u16(level);
      } else {
        uint16x4_t level = vdup_n_u16(0);
        for (int k = 0; k < per; ++k) level = vsub_u16(level, vcge_s16(acc, vld1_s16(thresholds + k * oc_pad)));
        return vmovn_u16(vcombine_u16(level, level));
      }
    }
  };
  // Whether vector v's block runs on forms.
  static bool has_forms(const packed& p, int v) { return !p.block_has_forms.empty() && p.block_has_forms[v / 2]; }

  // ... or their level_arithmetic::level(acc, per): x = k * acc + c mod
  // 2^16 (vmla), then ((x * m) >> 16) >> s as vqdmulh's (2 * x * m) >> 16
  // (never saturating: m > 0) shifted right by s + 1 (vshl by -(s + 1)),
  // clamped to [0, per].
  template <int NV>
  struct form_levels {
    narrow_vec<NV> k, c, m, shift, top;
    form_levels(const packed& p, int v0)
        : k(load16<NV>(p.forms.data() + v0 * lanes)),
          c(load16<NV>(p.forms.data() + p.oc_pad + v0 * lanes)),
          m(load16<NV>(p.forms.data() + 2 * p.oc_pad + v0 * lanes)),
          shift(load16<NV>(p.forms.data() + 3 * p.oc_pad + v0 * lanes)) {
      if constexpr (NV == 2) top = vdupq_n_s16(int16_t(p.per)); else top = vdup_n_s16(int16_t(p.per));
    }
    uint8x8_t operator()(narrow_vec<NV> acc) const {
      if constexpr (NV == 2) {
        const int16x8_t y = vshlq_s16(vqdmulhq_s16(vmlaq_s16(c, acc, k), m), shift);
        return vmovn_u16(vreinterpretq_u16_s16(vminq_s16(vmaxq_s16(y, vdupq_n_s16(0)), top)));
      } else {
        const int16x4_t y = vshl_s16(vqdmulh_s16(vmla_s16(c, acc, k), m), shift);
        const int16x4_t level = vmin_s16(vmax_s16(y, vdup_n_s16(0)), top);
        return vmovn_u16(vreinterpretq_u16_s16(vcombine_s16(level, level)));
      }
    }
  };

  // The same on int16 lanes (4 * acc fits int16), NV vectors (one block) at
  // once, the levels from the forms when every channel of the block has one,
  // else counted; narrowed to bytes and stored together.
  template <int NV>
  static void winograd_levels_narrow(const conv_step& s, const packed& p, scratch& w, int v0, int tx0, int n,
                                     uint8_t* out_row) {
    if (has_forms(p, v0))
      narrow_tile_levels<NV>(s, p, w, v0, tx0, n, out_row, form_levels<NV>(p, v0));
    else
      narrow_tile_levels<NV>(s, p, w, v0, tx0, n, out_row,
                             threshold_count<NV>{p.thresholds16.data() + v0 * lanes, p.per, p.oc_pad});
  }

  template <int NV, class Levels>
  static void narrow_tile_levels(const conv_step& s, const packed& p, scratch& w, int v0, int tx0, int n,
                                 uint8_t* out_row, const Levels& levels) {
    using vec16 = narrow_vec<NV>;
    const std::size_t xi_stride = std::size_t(winograd_tiles) * p.oc_pad;
    const int channels = std::min(NV * lanes, p.oc - v0 * lanes);
    for (int t = 0; t < n; ++t) {
      const int16_t* m = w.products16.data() + std::size_t(t) * p.oc_pad + v0 * lanes;
      vec16 r0[4], r1[4];  // A^T M: rows m0 + m1 + m2 and m1 - m2 - m3
      for (int j = 0; j < 4; ++j) {
        const vec16 m0 = load16<NV>(m + j * xi_stride), m1 = load16<NV>(m + (4 + j) * xi_stride),
                    m2 = load16<NV>(m + (8 + j) * xi_stride), m3 = load16<NV>(m + (12 + j) * xi_stride);
        r0[j] = m0 + m1 + m2;
        r1[j] = m1 - m2 - m3;
      }
      auto left = [](const vec16* r) { return r[0] + r[1] + r[2]; };
      auto right = [](const vec16* r) { return r[1] - r[2] - r[3]; };
      uint8_t* out = out_row + std::size_t(tx0 + t) * s.oc + v0 * lanes;
      vec16 acc;
      if constexpr (NV == 2)
        acc = vshrq_n_s16(vmaxq_s16(vmaxq_s16(left(r0), right(r0)), vmaxq_s16(left(r1), right(r1))), 2);
      else
        acc = vshr_n_s16(vmax_s16(vmax_s16(left(r0), right(r0)), vmax_s16(left(r1), right(r1))), 2);
      const uint8x8_t bytes = levels(acc);
      if (channels == 8) {
        vst1_u8(out, bytes);
        continue;
      }
      uint8_t values[8];
      vst1_u8(values, bytes);
      std::memcpy(out, values, channels);
    }
  }

  template <int NV>
  static void winograd_levels_wide(const conv_step& s, const packed& p, scratch& w, int v0, int tx0, int n,
                                   uint8_t* out_row) {
    const std::size_t xi_stride = std::size_t(winograd_tiles) * p.oc_pad;
    for (int v = v0; v < v0 + NV; ++v) {
      auto acc_of = [&](int t) {
        const int32_t* m = w.products.data() + std::size_t(t) * p.oc_pad + v * lanes;
        int32x4_t r0[4], r1[4];  // A^T M: rows m0 + m1 + m2 and m1 - m2 - m3
        for (int j = 0; j < 4; ++j) {
          const int32x4_t m0 = vld1q_s32(m + j * xi_stride), m1 = vld1q_s32(m + (4 + j) * xi_stride),
                          m2 = vld1q_s32(m + (8 + j) * xi_stride), m3 = vld1q_s32(m + (12 + j) * xi_stride);
          r0[j] = vaddq_s32(vaddq_s32(m0, m1), m2);
          r1[j] = vsubq_s32(vsubq_s32(m1, m2), m3);
        }
        auto left = [](const int32x4_t* r) { return vaddq_s32(vaddq_s32(r[0], r[1]), r[2]); };
        auto right = [](const int32x4_t* r) { return vsubq_s32(vsubq_s32(r[1], r[2]), r[3]); };
        return vshrq_n_s32(vmaxq_s32(vmaxq_s32(left(r0), right(r0)), vmaxq_s32(left(r1), right(r1))), 2);
      };
      if (!has_forms(p, v)) {
        for (int t = 0; t < n; ++t) store_levels(p, v, acc_of(t), out_row + std::size_t(tx0 + t) * s.oc);
        continue;
      }
      const form_levels<1> levels(p, v);
      const int channels = std::min(lanes, p.oc - v * lanes);
      for (int t = 0; t < n; ++t) {
        uint8_t values[8];
        vst1_u8(values, levels(vmovn_s32(acc_of(t))));
        std::memcpy(out_row + std::size_t(tx0 + t) * s.oc + v * lanes, values, channels);
      }
    }
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

  static bool run_special(const conv_step& s, const packed& p, scratch& w, const uint8_t* in, uint8_t* out) {
    if (!p.winograd) return false;
    run_winograd<neon_kernel>(s, p, w, in, out);
    return true;
  }

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
