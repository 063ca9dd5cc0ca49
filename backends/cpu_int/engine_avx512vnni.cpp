// AVX-512 VNNI fast path: vpdpbusd multiplies 4 uint8 activations by 4 int8
// weights and adds the 4 products into an int32 lane, exactly (no int16
// intermediate), so it equals the reference for every bit width.
// 16 output channels per zmm; the activations' 4-byte group is broadcast.
//
// Three kernels, one per strategy, each with its own packed data:
// avx512vnni_columns (the first layers), avx512vnni_winograd (3x3 convs with a
// 2x2 pool, with its scratch) and avx512vnni_kernel (direct dot products, any
// layer), which picks one of them for each layer when it packs it.
#include <immintrin.h>

#include "engine_simd.hpp"

namespace busi::cpu_int {
namespace {

// The 4-byte group at a, in every lane.
__m512i broadcast_group(const uint8_t* a) {
  int32_t v;
  std::memcpy(&v, a, 4);
  return _mm512_set1_epi32(v);
}

// The real channels of 16-channel vector v of a layer with oc channels.
__mmask16 valid_lanes(int oc, int v) {
  const int n = std::min(16, oc - v * 16);
  return __mmask16((1u << n) - 1);
}

// A level_arithmetic (plan.hpp) per int16 lane, for 15 thresholds: its k, c,
// m, s as 4 vectors, loaded from [4][32] int16.
struct arithmetic_lanes {
  __m512i k{}, c{}, m{}, s{};
  arithmetic_lanes() = default;
  explicit arithmetic_lanes(const int16_t* params)
      : k(_mm512_loadu_si512(params)),
        c(_mm512_loadu_si512(params + 32)),
        m(_mm512_loadu_si512(params + 64)),
        s(_mm512_loadu_si512(params + 96)) {}
  __m512i levels(__m512i v) const {
    const __m512i x = _mm512_add_epi16(_mm512_mullo_epi16(v, k), c);
    const __m512i y = _mm512_srav_epi16(_mm512_mulhi_epi16(x, m), s);
    return _mm512_min_epi16(_mm512_max_epi16(y, _mm512_setzero_si512()), _mm512_set1_epi16(15));
  }
  // Appends the [4][32] table it loads, lane l's form being form_of(l).
  template <class F>
  static void append_table(std::vector<int16_t>& table, F form_of) {
    for (int16_t level_arithmetic::*param : {&level_arithmetic::k, &level_arithmetic::c, &level_arithmetic::m,
                                             &level_arithmetic::s})
      for (int l = 0; l < 32; ++l) table.push_back(form_of(l).*param);
  }
};

// Output columns across lanes for the first layers (1, 4 or 8 input
// channels, a 2x2 pool, at most 15 levels), where channels across lanes would
// waste lanes (8 channels) or broadcast one activation group per vpdpbusd:
// weights as 4-byte groups [channel / 8][kh][groups][channel % 8], thresholds
// as 16-entry rows per channel padded with INT32_MAX; when every accumulator
// fits in int16 (|acc| <= bound <= 32766), the rows as int16 (narrow),
// clamped to [-bound, bound + 1] (the same count for any acc in range), 64 per
// 4 channels, so one search covers 32 lanes. The shipped models' conv1 (1
// input channel, 8 outputs, int16 accumulators) has a kernel of its own,
// single_channel.
struct avx512vnni_columns {
  struct packed {
    int per = 0;
    bool narrow = false;
    std::vector<int32_t> tap_weights, threshold_rows;
    std::vector<int16_t> threshold_rows16;
    // For single_channel's searches (narrow): per channel and step 8, 4, 2, 1,
    // 32 entries, entry i = row[min(i + step - 1, 15)], so a step's lookup
    // needs no add: [channel][step][32].
    std::vector<int16_t> search_tables;
    // Or, when every channel's 15 thresholds have a level_arithmetic (plan.hpp)
    // on the pooled accumulator, its k, c, m, s in 32 lanes each:
    // [channel][4][32]; empty otherwise.
    std::vector<int16_t> arithmetic;
  };

  // Fills `p` and returns true when this step runs here. kw * in_c <= 64
  // bounds the loads past a row (buffer_slack) and keeps |acc| far below
  // INT32_MAX, so the INT32_MAX padding of threshold rows is never reached.
  static bool pack(const conv_step& s, int per, bool levels16, int64_t bound, packed& p) {
    if (!((s.in_c == 1 || s.in_c == 4 || s.in_c == 8) && s.pool == 2 && !s.logits && s.kw * s.in_c <= 64 && per <= 15))
      return false;
    p.per = per;
    const int oc8 = (s.oc + 7) / 8 * 8;
    p.tap_weights.assign(std::size_t(oc8) * s.kh * s.groups, 0);
    for (int o = 0; o < s.oc; ++o)
      for (int ky = 0; ky < s.kh; ++ky)
        for (int g = 0; g < s.groups; ++g) {
          uint32_t taps = 0;
          for (int t = 0; t < 4; ++t) taps |= uint32_t(uint8_t(s.weight(ky, 4 * g + t, o))) << (8 * t);
          p.tap_weights[((std::size_t(o / 8) * s.kh + ky) * s.groups + g) * 8 + o % 8] = int32_t(taps);
        }
    p.threshold_rows.assign(std::size_t(oc8) * 16, INT32_MAX);
    for (int o = 0; o < s.oc; ++o)
      for (int t = 0; t < per; ++t) p.threshold_rows[std::size_t(o) * 16 + t] = s.layer->channel_thresholds(o)[t];
    p.narrow = levels16;
    if (p.narrow) {
      p.threshold_rows16.resize(p.threshold_rows.size());
      for (std::size_t i = 0; i < p.threshold_rows.size(); ++i)
        p.threshold_rows16[i] = int16_t(std::clamp<int64_t>(p.threshold_rows[i], -bound, bound + 1));
    }
    if (single_channel_shape(s, p)) {
      for (std::size_t o = 0; o < p.threshold_rows16.size() / 16; ++o)
        for (int step = 8; step > 0; step /= 2)
          for (int i = 0; i < 32; ++i) p.search_tables.push_back(p.threshold_rows16[o * 16 + std::min(i + step - 1, 15)]);
      std::vector<level_arithmetic> forms;
      if (per == 15 && step_level_arithmetic(s, 1, forms))
        for (const level_arithmetic& f : forms) arithmetic_lanes::append_table(p.arithmetic, [&](int) { return f; });
    }
    return true;
  }

  static void run(const conv_step& s, const packed& p, const uint8_t* in, uint8_t* out) {
    switch (s.in_c) {
      case 1:
        if (single_channel_shape(s, p)) {
          switch (p.per) {
            case 1:
              return single_channel<1>(s, p, in, out);
            case 3:
              return single_channel<2>(s, p, in, out);
            default:
              if (!p.arithmetic.empty()) return single_channel<8, true>(s, p, in, out);
              return single_channel<8>(s, p, in, out);
          }
        }
        columns_for<1>(s, p, in, out);
        break;
      case 4:
        columns_for<4>(s, p, in, out);
        break;
      default:
        columns_for<8>(s, p, in, out);
        break;
    }
  }

  // One input channel, a kernel at most 4 wide, 8 output channels, int16
  // accumulators: a 64-byte load at byte x0 + r holds in dword lane i the
  // group of output column x0 + 4i + r, so 4 plain loads give 64 columns (no
  // shuffles), and the 2x2 pool is a max of loads r = 0, 1 (pooled column 2i)
  // and r = 2, 3 (2i + 1) and of the two conv rows (no permutes). Each
  // channel's 32 pooled accumulators are packed to int16 and binary-searched
  // in its own threshold row, or, when every channel has one, put through its
  // level_arithmetic (conv1 ~5% faster); the 8 channels' levels are
  // interleaved into [pixel][channel] bytes by unpacks and 128-bit lane moves.
  static bool single_channel_shape(const conv_step& s, const packed& p) {
    return s.in_c == 1 && p.narrow && s.oc == 8 && s.groups == 1;
  }

  template <int Steps, bool Arithmetic = false>
  static void single_channel(const conv_step& s, const packed& p, const uint8_t* in, uint8_t* out) {
    const std::size_t row = s.in_row_bytes();
    const int kh = s.kh;
    for (int py = 0; py < s.pooled_h; ++py) {
      const uint8_t* rows = in + std::size_t(2 * py) * row;
      uint8_t* out_row = out + std::size_t(py) * s.pooled_w * 8;
      for (int px0 = 0; px0 < s.pooled_w; px0 += 32) {
        const uint8_t* first = rows + 2 * px0;
        __m512i pooled[8];  // int16 per channel, pooled columns in packs order (below)
        for (int c0 = 0; c0 < 8; c0 += 2) {
          __m512i acc[2][2][4];  // [channel][conv row][load offset r]
          for (int c = 0; c < 2; ++c)
            for (int y = 0; y < 2; ++y)
              for (int r = 0; r < 4; ++r) acc[c][y][r] = _mm512_setzero_si512();
          for (int ry = 0; ry <= kh; ++ry)  // input row ry: kernel row ry of the top conv row, ry - 1 of the bottom
            for (int r = 0; r < 4; ++r) {
              const __m512i a = _mm512_loadu_si512(first + std::size_t(ry) * row + r);
              for (int c = 0; c < 2; ++c) {
                const int32_t* w = p.tap_weights.data() + std::size_t(ry) * 8 + c0 + c;  // [ky][channel], groups == 1
                if (ry < kh) acc[c][0][r] = _mm512_dpbusd_epi32(acc[c][0][r], a, _mm512_set1_epi32(w[0]));
                if (ry > 0) acc[c][1][r] = _mm512_dpbusd_epi32(acc[c][1][r], a, _mm512_set1_epi32(w[-8]));
              }
            }
          for (int c = 0; c < 2; ++c) {
            auto pool = [&](int r) {
              return _mm512_max_epi32(_mm512_max_epi32(acc[c][0][r], acc[c][0][r + 1]),
                                      _mm512_max_epi32(acc[c][1][r], acc[c][1][r + 1]));
            };
            // Per 128-bit lane L: pooled columns 8L, 8L+2, 8L+4, 8L+6, 8L+1, 8L+3, 8L+5, 8L+7.
            pooled[c0 + c] = _mm512_packs_epi32(pool(0), pool(2));  // exact: |acc| <= bound
          }
        }
        __m512i levels[8];
        if constexpr (Arithmetic) {
          for (int c = 0; c < 8; ++c) levels[c] = arithmetic_lanes(p.arithmetic.data() + c * 4 * 32).levels(pooled[c]);
        } else {
          // The 8 searches interleaved (each step is a dependent chain).
          for (int c = 0; c < 8; ++c) levels[c] = _mm512_setzero_si512();
          for (int step = Steps, k = Steps == 8 ? 0 : Steps == 2 ? 2 : 3; step > 0; step /= 2, ++k)
            for (int c = 0; c < 8; ++c) {
              const __m512i t =
                  _mm512_permutexvar_epi16(levels[c], _mm512_loadu_si512(p.search_tables.data() + (c * 4 + k) * 32));
              levels[c] = _mm512_mask_add_epi16(levels[c], _mm512_cmpge_epi16_mask(pooled[c], t), levels[c],
                                                _mm512_set1_epi16(step));
            }
        }
        // Channel pairs as bytes of int16 lanes, then per 128-bit lane L
        // dwords of 4 channels and qwords of all 8 for columns 8L, 8L+2
        // (lo_lo), 8L+4, 8L+6 (lo_hi), 8L+1, 8L+3 (hi_lo), 8L+5, 8L+7 (hi_hi).
        __m512i pairs[4];
        for (int k = 0; k < 4; ++k) pairs[k] = _mm512_or_si512(levels[2 * k], _mm512_slli_epi16(levels[2 * k + 1], 8));
        const __m512i lo03 = _mm512_unpacklo_epi16(pairs[0], pairs[1]), hi03 = _mm512_unpackhi_epi16(pairs[0], pairs[1]);
        const __m512i lo47 = _mm512_unpacklo_epi16(pairs[2], pairs[3]), hi47 = _mm512_unpackhi_epi16(pairs[2], pairs[3]);
        const __m512i lo_lo = _mm512_unpacklo_epi32(lo03, lo47), lo_hi = _mm512_unpackhi_epi32(lo03, lo47);
        const __m512i hi_lo = _mm512_unpacklo_epi32(hi03, hi47), hi_hi = _mm512_unpackhi_epi32(hi03, hi47);
        // Columns 8L, 8L+1 | 8L+2, 8L+3 | 8L+4, 8L+5 | 8L+6, 8L+7 of each lane L.
        const __m512i e = _mm512_unpacklo_epi64(lo_lo, hi_lo), f = _mm512_unpackhi_epi64(lo_lo, hi_lo);
        const __m512i g = _mm512_unpacklo_epi64(lo_hi, hi_hi), h = _mm512_unpackhi_epi64(lo_hi, hi_hi);
        // 4x4 transpose of 128-bit lanes: output vector L = (e, f, g, h) of lane L.
        const __m512i ef_lo = _mm512_shuffle_i64x2(e, f, 0x44), ef_hi = _mm512_shuffle_i64x2(e, f, 0xee);
        const __m512i gh_lo = _mm512_shuffle_i64x2(g, h, 0x44), gh_hi = _mm512_shuffle_i64x2(g, h, 0xee);
        const __m512i columns[4] = {_mm512_shuffle_i64x2(ef_lo, gh_lo, 0x88), _mm512_shuffle_i64x2(ef_lo, gh_lo, 0xdd),
                                    _mm512_shuffle_i64x2(ef_hi, gh_hi, 0x88), _mm512_shuffle_i64x2(ef_hi, gh_hi, 0xdd)};
        const int valid = std::min(32, s.pooled_w - px0);
        for (int L = 0; L < 4 && 8 * L < valid; ++L) {
          const int n = std::min(8, valid - 8 * L);  // columns of this vector to store
          _mm512_mask_storeu_epi8(out_row + std::size_t(px0 + 8 * L) * 8,
                                  n == 8 ? ~__mmask64(0) : (__mmask64(1) << (8 * n)) - 1, columns[L]);
        }
      }
    }
  }

  // Lane j of the result holds bytes j..j+3 from a: the 4 taps of output
  // column j (vpermd brings bytes 4L..4L+15 into 128-bit lane L, vpshufb
  // slides the window in the lane).
  static __m512i sliding_taps(const uint8_t* a) {
    const __m512i dwords = _mm512_set_epi32(6, 5, 4, 3, 5, 4, 3, 2, 4, 3, 2, 1, 3, 2, 1, 0);
    const __m512i bytes = _mm512_broadcast_i32x4(_mm_set_epi8(6, 5, 4, 3, 5, 4, 3, 2, 4, 3, 2, 1, 3, 2, 1, 0));
    const __m512i row = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)));
    return _mm512_shuffle_epi8(_mm512_permutexvar_epi32(dwords, row), bytes);
  }

  // Lane j: the 4-byte group at a + j * C (the same group of output column j).
  template <int C>
  static __m512i column_groups(const uint8_t* a) {
    if constexpr (C == 1) {
      return sliding_taps(a);
    } else if constexpr (C == 4) {
      return _mm512_loadu_si512(a);
    } else {  // C == 8: the even dwords of 128 bytes
      const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
      return _mm512_permutex2var_epi32(_mm512_loadu_si512(a), even, _mm512_loadu_si512(a + 64));
    }
  }

  // Output columns across lanes: 16 conv columns x 2 conv rows (8 pooled
  // outputs) x 8 channels per pass, the weights broadcast, then pooling in
  // registers, a binary search of each channel's thresholds, and an 8x8 byte
  // transpose into HWC. C: input channels; Steps: the first binary-search
  // step, 2^(act_bits-1).
  template <int C, int Steps, bool Narrow>
  static void columns(const conv_step& s, const packed& p, const uint8_t* in, uint8_t* out) {
    const std::size_t row = s.in_row_bytes();
    const std::size_t window = s.group_offsets.size();
    // Pair channels c, c+1 after pooling: even lanes (left columns of each
    // pool window) vs odd lanes, channel c in lanes 0-7, c+1 in lanes 8-15.
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i table_base = _mm512_set_epi32(16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0);
    alignas(64) int16_t slots[32];  // the table slot of each int16 lane, times 16 (see Narrow below)
    for (int lane = 0; lane < 32; ++lane)
      slots[lane] = int16_t(16 * ((lane / 8 >= 2 ? 1 : 0) + (lane % 8 >= 4 ? 2 : 0)));
    const __m512i slot_base = _mm512_load_si512(slots);
    // [c][px] bytes -> [px][c]: pair rows into words in each 128-bit lane, then move words.
    const __m512i interleave =
        _mm512_broadcast_i32x4(_mm_set_epi8(15, 7, 14, 6, 13, 5, 12, 4, 11, 3, 10, 2, 9, 1, 8, 0));
    alignas(64) int16_t word_order[32];
    for (int px = 0; px < 8; ++px)
      for (int lane = 0; lane < 4; ++lane) word_order[px * 4 + lane] = int16_t(lane * 8 + px);
    const __m512i transpose = _mm512_load_si512(word_order);
    alignas(64) uint8_t block[64];
    // Blocks (8 pooled outputs x 8 channels) run in two passes over up to
    // `chunk` of them: the products and pooling, then the threshold searches
    // and stores. A search is a long dependent chain; in its own pass the
    // searches of several blocks overlap, where one block's search after its
    // products left the core waiting (the network ran ~5% faster).
    constexpr int chunk = 16;
    alignas(64) int32_t pooled_blocks[chunk][4][16];
    const int blocks_c = (s.oc + 7) / 8, blocks = (s.pooled_w + 7) / 8 * blocks_c;

    for (int py = 0; py < s.pooled_h; ++py) {
      const uint8_t* rows = in + std::size_t(2 * py) * row;
      for (int b0 = 0; b0 < blocks; b0 += chunk) {
        const int b1 = std::min(blocks, b0 + chunk);
        for (int b = b0; b < b1; ++b) {
          const int px0 = b / blocks_c * 8, c0 = b % blocks_c * 8;
          // Conv rows 2py (top) and 2py+1 (bottom) share every weight.
          __m512i top[8], bottom[8];
          for (int c = 0; c < 8; ++c) top[c] = bottom[c] = _mm512_setzero_si512();
          const int32_t* w = p.tap_weights.data() + std::size_t(c0) * window;
          const uint8_t* first = rows + std::size_t(2 * px0) * C;
          for (const uint32_t offset : s.group_offsets) {
            const __m512i a_top = column_groups<C>(first + offset), a_bottom = column_groups<C>(first + offset + row);
            for (int c = 0; c < 8; ++c) {
              const __m512i wc = _mm512_set1_epi32(w[c]);
              top[c] = _mm512_dpbusd_epi32(top[c], a_top, wc);
              bottom[c] = _mm512_dpbusd_epi32(bottom[c], a_bottom, wc);
            }
            w += 8;
          }
          __m512i pooled[4];
          for (int q = 0; q < 4; ++q) {
            const __m512i c_a = _mm512_max_epi32(top[2 * q], bottom[2 * q]);
            const __m512i c_b = _mm512_max_epi32(top[2 * q + 1], bottom[2 * q + 1]);
            pooled[q] =
                _mm512_max_epi32(_mm512_permutex2var_epi32(c_a, even, c_b), _mm512_permutex2var_epi32(c_a, odd, c_b));
            _mm512_store_si512(pooled_blocks[b - b0][q], pooled[q]);
          }
        }
        for (int b = b0; b < b1; ++b) {
          const int px0 = b / blocks_c * 8, c0 = b % blocks_c * 8;
          const int valid = std::min(8, s.pooled_w - px0);
          uint8_t* dst = out + (std::size_t(py) * s.pooled_w + px0) * s.oc;
          __m512i pooled[4];
          for (int q = 0; q < 4; ++q) pooled[q] = _mm512_load_si512(pooled_blocks[b - b0][q]);
          // Level = entries <= acc in the channel's padded, ascending row. The
          // searches are interleaved: each step is a chain of dependent
          // permute, compare and add.
          __m512i bytes;  // [c][px]
          if constexpr (Narrow) {
            // packs(pooled 2h, pooled 2h+1), per 128-bit lane L: 4 lanes of
            // each: channels c, c+2 (L = 0, 1) and c+1, c+3 (L = 2, 3) of the
            // quad, table slots 0-3.
            __m512i packed16[2], index[2], t_lo[2], t_hi[2];
            for (int h = 0; h < 2; ++h) {
              packed16[h] = _mm512_packs_epi32(pooled[2 * h], pooled[2 * h + 1]);
              const int16_t* rows = p.threshold_rows16.data() + std::size_t(c0 + 4 * h) * 16;
              t_lo[h] = _mm512_loadu_si512(rows);
              t_hi[h] = _mm512_loadu_si512(rows + 32);
              index[h] = slot_base;
            }
            for (int step = Steps; step > 0; step /= 2)
              for (int h = 0; h < 2; ++h) {
                const __m512i t = _mm512_permutex2var_epi16(
                    t_lo[h], _mm512_add_epi16(index[h], _mm512_set1_epi16(step - 1)), t_hi[h]);
                index[h] = _mm512_mask_add_epi16(index[h], _mm512_cmpge_epi16_mask(packed16[h], t), index[h],
                                                 _mm512_set1_epi16(step));
              }
            // Bytes in dwords (c, px 0-3), (c+2, px 0-3), (c, px 4-7), ...: back to [c][px].
            const __m256i dword_order = _mm256_set_epi32(7, 5, 3, 1, 6, 4, 2, 0);
            const __m256i low =
                _mm256_permutexvar_epi32(dword_order, _mm512_cvtepi16_epi8(_mm512_sub_epi16(index[0], slot_base)));
            const __m256i high =
                _mm256_permutexvar_epi32(dword_order, _mm512_cvtepi16_epi8(_mm512_sub_epi16(index[1], slot_base)));
            bytes = _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
          } else {
            __m512i index[4], t_a[4], t_b[4];
            for (int q = 0; q < 4; ++q) {
              const int32_t* rows_ab = p.threshold_rows.data() + std::size_t(c0 + 2 * q) * 16;
              t_a[q] = _mm512_loadu_si512(rows_ab);
              t_b[q] = _mm512_loadu_si512(rows_ab + 16);
              index[q] = table_base;
            }
            for (int step = Steps; step > 0; step /= 2)
              for (int q = 0; q < 4; ++q) {
                const __m512i t =
                    _mm512_permutex2var_epi32(t_a[q], _mm512_add_epi32(index[q], _mm512_set1_epi32(step - 1)), t_b[q]);
                index[q] = _mm512_mask_add_epi32(index[q], _mm512_cmpge_epi32_mask(pooled[q], t), index[q],
                                                 _mm512_set1_epi32(step));
              }
            __m128i levels[4];
            for (int q = 0; q < 4; ++q) levels[q] = _mm512_cvtepi32_epi8(_mm512_sub_epi32(index[q], table_base));
            bytes = _mm512_castsi128_si512(levels[0]);
            bytes = _mm512_inserti32x4(bytes, levels[1], 1);
            bytes = _mm512_inserti32x4(bytes, levels[2], 2);
            bytes = _mm512_inserti32x4(bytes, levels[3], 3);
          }
          bytes = _mm512_permutexvar_epi16(transpose, _mm512_shuffle_epi8(bytes, interleave));  // [px][c]
          if (s.oc == 8) {
            _mm512_mask_storeu_epi8(dst, valid == 8 ? ~__mmask64(0) : (__mmask64(1) << (8 * valid)) - 1, bytes);
          } else {
            _mm512_store_si512(block, bytes);
            if (s.oc - c0 >= 8) {
              for (int j = 0; j < valid; ++j) std::memcpy(dst + std::size_t(j) * s.oc + c0, block + 8 * j, 8);
            } else {
              for (int j = 0; j < valid; ++j) std::memcpy(dst + std::size_t(j) * s.oc + c0, block + 8 * j, s.oc - c0);
            }
          }
        }
      }
    }
  }

  template <int C, bool Narrow>
  static void columns_for(const conv_step& s, const packed& p, const uint8_t* in, uint8_t* out) {
    switch (p.per) {  // 2^act_bits - 1 thresholds
      case 1:
        columns<C, 1, Narrow>(s, p, in, out);
        break;
      case 3:
        columns<C, 2, Narrow>(s, p, in, out);
        break;
      default:
        columns<C, 8, Narrow>(s, p, in, out);
        break;
    }
  }

  template <int C>
  static void columns_for(const conv_step& s, const packed& p, const uint8_t* in, uint8_t* out) {
    if (p.narrow)
      columns_for<C, true>(s, p, in, out);
    else
      columns_for<C, false>(s, p, in, out);
  }

};

// Winograd F(2x2, 3x3) for 3x3 convs with a 2x2 pool (run_winograd in
// engine_simd.hpp drives it): transformed weights [xi][group][oc_pad][4], the
// input offset's share of each pooled position's 4 * acc as int16 mod 2^16
// [vector][position][32], 4 * threshold - 1 clamped as int16
// [vector][threshold][32] (32 lanes: the vector's 16 channels for two tiles).
struct avx512vnni_winograd {
  static constexpr int lanes = 16;
  // Tiles per block: the int16 products of two vectors of channels,
  // 16 x 2 x 16 tiles x 16 lanes, take 16 KB (half of L1).
  static constexpr int winograd_tiles = 16;

  struct packed {
    int oc = 0, oc_pad = 0, per = 0;
    int groups = 0, offset = 0;
    std::vector<int8_t> weights;
    std::vector<int16_t> corrections, thresholds;
    // When every channel's 15 thresholds have a level_arithmetic (plan.hpp) on
    // 4 * acc: its k, c, m, s as [vector][4][32] (padding channels: level 0);
    // empty otherwise.
    std::vector<int16_t> arithmetic;
    std::size_t row_stride = 0, plane_stride = 0;  // bytes, multiples of 64
  };

  // The scratch of one engine's step: written and read by every run, so an
  // engine (one per thread) owns it and passes it by non-const reference.
  struct scratch {
    struct alignas(64) cache_line {
      uint8_t bytes[64];
    };
    std::vector<cache_line> rows, planes, products;
    uint8_t* rows_data() { return reinterpret_cast<uint8_t*>(rows.data()); }
    uint8_t* planes_data() { return reinterpret_cast<uint8_t*>(planes.data()); }
    int16_t* products_data() { return reinterpret_cast<int16_t*>(products.data()); }
  };

  // Fills `p` (oc, oc_pad and per already set) and returns true when this
  // step can run here: pack_winograd_bytes accepts it and in_c divides 64.
  static bool pack(const conv_step& s, packed& p) {
    if (64 % s.in_c != 0) return false;  // whole pixels per dword permute (winograd_inputs)
    winograd_bytes b;
    if (!pack_winograd_bytes(s, lanes, b)) return false;
    p.groups = b.groups;
    p.offset = b.offset;
    p.weights = std::move(b.weights);
    b.lane_tables(s.oc, p.per, p.oc_pad / lanes, lanes, 32, [](int lane) { return lane % lanes; }, p.corrections,
                  p.thresholds);
    std::vector<level_arithmetic> forms;
    if (p.per == 15 && step_level_arithmetic(s, 4, forms))
      for (int v = 0; v < p.oc_pad / lanes; ++v)
        arithmetic_lanes::append_table(p.arithmetic, [&](int l) {
          const int o = v * lanes + l % lanes;
          return o < s.oc ? forms[o] : level_arithmetic{};
        });
    // Rows: the column pass reads up to 2 pixels past twice the planes' bytes.
    const std::size_t row = s.in_row_bytes(), plane = std::size_t(s.pooled_w) * s.in_c;
    p.plane_stride = (plane + 63) / 64 * 64;
    p.row_stride = (std::max(row, 2 * p.plane_stride + 2 * s.in_c) + 63) / 64 * 64;
    return true;
  }

  // This step's scratch, in 64-byte vectors so every row and plane starts a
  // cache line: the 4 rows of the vertical transform, the 16 transformed
  // planes of a tile row, and the int16 products of a block of tiles.
  static scratch make_scratch(const packed& p) {
    scratch w;
    w.rows.assign(4 * p.row_stride / 64, {});
    w.planes.assign(16 * p.plane_stride / 64, {});
    w.products.assign(std::size_t(16) * 2 * winograd_tiles * lanes * 2 / 64, {});
    return w;
  }


  // One tile row: input rows 2py..2py+3 (from `in`) into the 16 planes
  // B^T d B + offset, bytewise mod 256 (exact: the results lie in [0, 6m]).
  // Plane xi = 4i + j holds the in_c values of tile tx at tx * in_c.
  static void winograd_inputs(const conv_step& s, const packed& p, scratch& w, const uint8_t* in) {
    const std::size_t row = s.in_row_bytes(), c = s.in_c, rs = p.row_stride, ps = p.plane_stride;
    uint8_t* t = w.rows_data();
    auto load = [](const uint8_t* a) { return _mm512_loadu_si512(a); };
    auto store = [](uint8_t* a, __m512i v) { _mm512_storeu_si512(a, v); };
    for (std::size_t x = 0; x < row; x += 64) {  // rows: d0 - d2, d1 + d2, d2 - d1, d1 - d3
      const __m512i r0 = load(in + x), r1 = load(in + row + x), r2 = load(in + 2 * row + x),
                    r3 = load(in + 3 * row + x);
      store(t + x, _mm512_sub_epi8(r0, r2));
      store(t + rs + x, _mm512_add_epi8(r1, r2));
      store(t + 2 * rs + x, _mm512_sub_epi8(r2, r1));
      store(t + 3 * rs + x, _mm512_sub_epi8(r1, r3));
    }
    // Columns, the same four combinations of pixels 2tx..2tx+3: 64 bytes of
    // tiles come from 128 bytes of pixels, even pixels (e) and odd ones (o),
    // gathered by dword permutes (in_c divides 64).
    const int dwords = s.in_c / 4;
    alignas(64) int32_t even_index[16], odd_index[16];
    for (int d = 0; d < 16; ++d) {
      even_index[d] = 2 * (d / dwords) * dwords + d % dwords;
      odd_index[d] = even_index[d] + dwords;
    }
    const __m512i even = _mm512_load_si512(even_index), odd = _mm512_load_si512(odd_index);
    const std::size_t plane = std::size_t(s.pooled_w) * c;
    const __m512i offset = _mm512_set1_epi8(char(p.offset));
    for (int i = 0; i < 4; ++i) {
      const uint8_t* ti = t + i * rs;
      uint8_t* out = w.planes_data() + 4 * i * ps;
      for (std::size_t x = 0; x < plane; x += 64) {
        const __m512i lo = load(ti + 2 * x), hi = load(ti + 2 * x + 64);                    // pixels 2tx, 2tx + 1
        const __m512i lo2 = load(ti + 2 * x + 2 * c), hi2 = load(ti + 2 * x + 2 * c + 64);  // 2tx + 2, 2tx + 3
        const __m512i a0 = _mm512_permutex2var_epi32(lo, even, hi), a1 = _mm512_permutex2var_epi32(lo, odd, hi);
        const __m512i a2 = _mm512_permutex2var_epi32(lo2, even, hi2), a3 = _mm512_permutex2var_epi32(lo2, odd, hi2);
        store(out + x, _mm512_add_epi8(_mm512_sub_epi8(a0, a2), offset));
        store(out + ps + x, _mm512_add_epi8(_mm512_add_epi8(a1, a2), offset));
        store(out + 2 * ps + x, _mm512_add_epi8(_mm512_sub_epi8(a2, a1), offset));
        store(out + 3 * ps + x, _mm512_add_epi8(_mm512_sub_epi8(a1, a3), offset));
      }
    }
  }

  // The 16 transformed products of tiles tx0..tx0+n-1 (n <= winograd_tiles)
  // for vectors v0..v0+NV-1, channels across lanes, each tile's G 4-byte input
  // groups broadcast, kept mod 2^16: [xi][v][tile][lane]. Blocks of nt tiles
  // past n repeat the last tile; their products land in unused slots.
  template <int NV, int G>
  static void winograd_products(const packed& p, scratch& w, int v0, int tx0, int n) {
    constexpr int nt = NV == 1 ? 8 : 4;  // enough independent accumulators to hide vpdpbusd's latency
    static_assert(winograd_tiles % 8 == 0);
    const std::size_t ps = p.plane_stride, u_xi = std::size_t(G) * p.oc_pad * 4, u_g = std::size_t(p.oc_pad) * 4;
    const int8_t* u = p.weights.data() + std::size_t(v0) * lanes * 4;
    for (int t0 = 0; t0 < n; t0 += nt) {
      const uint8_t* tile[nt];
      for (int t = 0; t < nt; ++t) tile[t] = w.planes_data() + std::size_t(tx0 + std::min(t0 + t, n - 1)) * G * 4;
      int16_t* products = w.products_data() + t0 * lanes;
      for (int xi = 0; xi < 16; ++xi) {
        __m512i acc[nt][NV];
        for (int t = 0; t < nt; ++t)
          for (int v = 0; v < NV; ++v) acc[t][v] = _mm512_setzero_si512();
        for (int g = 0; g < G; ++g) {
          __m512i w[NV];
          for (int v = 0; v < NV; ++v) w[v] = _mm512_loadu_si512(u + xi * u_xi + g * u_g + v * lanes * 4);
          for (int t = 0; t < nt; ++t) {
            const __m512i a = broadcast_group(tile[t] + xi * ps + 4 * g);
            for (int v = 0; v < NV; ++v) acc[t][v] = _mm512_dpbusd_epi32(acc[t][v], a, w[v]);
          }
        }
        for (int t = 0; t < nt; ++t)
          for (int v = 0; v < NV; ++v)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(products + ((xi * NV + v) * winograd_tiles + t) * lanes),
                                _mm512_cvtepi32_epi16(acc[t][v]));
      }
    }
  }

  template <int NV>
  static void winograd_products(const packed& p, scratch& w, int v0, int tx0, int n) {
    switch (p.groups) {  // in_c / 4, in_c dividing 64
      case 1:
        return winograd_products<NV, 1>(p, w, v0, tx0, n);
      case 2:
        return winograd_products<NV, 2>(p, w, v0, tx0, n);
      case 4:
        return winograd_products<NV, 4>(p, w, v0, tx0, n);
      case 8:
        return winograd_products<NV, 8>(p, w, v0, tx0, n);
      default:
        return winograd_products<NV, 16>(p, w, v0, tx0, n);
    }
  }

  // Two tiles at a time (32 int16 lanes): the output transform A^T M A, minus
  // the offset's share, pooled, then the count of thresholds reached. Per:
  // thresholds per channel, held in registers (the counts are most of the
  // work, and as memory operands their loads were the limit), or 0: any
  // number, from memory. Arithmetic (Per 15): each channel's
  // level_arithmetic instead of the search (6 instructions against 19:
  // conv2 ~10% faster).
  template <int NV, int Per, bool Arithmetic = false>
  static void winograd_levels(const conv_step& s, const packed& p, scratch& w, int v0, int tx0, int n,
                              uint8_t* out_row) {
    const std::size_t xi_stride = std::size_t(NV) * winograd_tiles * lanes;
    const __m512i one = _mm512_set1_epi16(1);
    for (int v = 0; v < NV; ++v) {
      const int vector = v0 + v;
      const int16_t* corrections = p.corrections.data() + vector * 4 * 32;
      const int16_t* thresholds = p.thresholds.data() + std::size_t(vector) * p.per * 32;
      const __m512i c00 = _mm512_loadu_si512(corrections), c01 = _mm512_loadu_si512(corrections + 32),
                    c10 = _mm512_loadu_si512(corrections + 64), c11 = _mm512_loadu_si512(corrections + 96);
      __m512i held[Per > 0 && !Arithmetic ? Per : 1];
      for (int k = 0; k < (Arithmetic ? 0 : Per); ++k) held[k] = _mm512_loadu_si512(thresholds + k * 32);
      arithmetic_lanes forms;
      if constexpr (Arithmetic) forms = arithmetic_lanes(p.arithmetic.data() + std::size_t(vector) * 4 * 32);
      const __mmask16 valid = valid_lanes(p.oc, vector);
      const int16_t* products = w.products_data() + v * winograd_tiles * lanes;
      for (int t = 0; t < n; t += 2) {  // an odd last tile pairs with a stale one, never stored
        __m512i r0[4], r1[4];           // A^T M: rows m0 + m1 + m2 and m1 - m2 - m3
        for (int j = 0; j < 4; ++j) {
          const int16_t* m = products + j * xi_stride + t * lanes;
          const __m512i m0 = _mm512_loadu_si512(m), m1 = _mm512_loadu_si512(m + 4 * xi_stride),
                        m2 = _mm512_loadu_si512(m + 8 * xi_stride), m3 = _mm512_loadu_si512(m + 12 * xi_stride);
          r0[j] = _mm512_add_epi16(_mm512_add_epi16(m0, m1), m2);
          r1[j] = _mm512_sub_epi16(_mm512_sub_epi16(m1, m2), m3);
        }
        auto left = [](const __m512i* r) { return _mm512_add_epi16(_mm512_add_epi16(r[0], r[1]), r[2]); };
        auto right = [](const __m512i* r) { return _mm512_sub_epi16(_mm512_sub_epi16(r[1], r[2]), r[3]); };
        const __m512i acc =
            _mm512_max_epi16(_mm512_max_epi16(_mm512_sub_epi16(left(r0), c00), _mm512_sub_epi16(right(r0), c01)),
                             _mm512_max_epi16(_mm512_sub_epi16(left(r1), c10), _mm512_sub_epi16(right(r1), c11)));
        __m512i level = _mm512_setzero_si512();  // 4 acc > 4 t - 1
        if constexpr (Arithmetic) {
          level = forms.levels(acc);
        } else if constexpr (Per == 15) {
          // A binary search, bit by bit, each step's threshold picked per lane
          // by blends: 19 instructions against 44 to count them all (the
          // output pass took ~7% less time).
          auto above = [&](__m512i t) { return _mm512_cmpgt_epi16_mask(acc, t); };
          auto pick = [](__mmask32 m, __m512i a, __m512i b) { return _mm512_mask_blend_epi16(m, a, b); };
          const __mmask32 b3 = above(held[7]);
          const __mmask32 b2 = above(pick(b3, held[3], held[11]));
          const __mmask32 b1 = above(pick(b3, pick(b2, held[1], held[5]), pick(b2, held[9], held[13])));
          const __mmask32 b0 = above(pick(b3, pick(b2, pick(b1, held[0], held[2]), pick(b1, held[4], held[6])),
                                          pick(b2, pick(b1, held[8], held[10]), pick(b1, held[12], held[14]))));
          level = _mm512_maskz_mov_epi16(b3, _mm512_set1_epi16(8));
          level = _mm512_mask_add_epi16(level, b2, level, _mm512_set1_epi16(4));
          level = _mm512_mask_add_epi16(level, b1, level, _mm512_set1_epi16(2));
          level = _mm512_mask_add_epi16(level, b0, level, one);
        } else if constexpr (Per > 0) {
          for (int k = 0; k < Per; ++k)
            level = _mm512_mask_add_epi16(level, _mm512_cmpgt_epi16_mask(acc, held[k]), level, one);
        } else {
          for (int k = 0; k < p.per; ++k)
            level = _mm512_mask_add_epi16(level, _mm512_cmpgt_epi16_mask(acc, _mm512_loadu_si512(thresholds + k * 32)),
                                          level, one);
        }
        const __m256i bytes = _mm512_cvtepi16_epi8(level);
        _mm_mask_storeu_epi8(out_row + std::size_t(tx0 + t) * s.oc + vector * lanes, valid,
                             _mm256_castsi256_si128(bytes));
        if (t + 1 < n)
          _mm_mask_storeu_epi8(out_row + std::size_t(tx0 + t + 1) * s.oc + vector * lanes, valid,
                               _mm256_extracti128_si256(bytes, 1));
      }
    }
  }

  template <int NV>
  static void winograd_levels(const conv_step& s, const packed& p, scratch& w, int v0, int tx0, int n,
                              uint8_t* out_row) {
    switch (p.per) {  // 2^act_bits - 1 thresholds
      case 3:
        return winograd_levels<NV, 3>(s, p, w, v0, tx0, n, out_row);
      case 15:
        if (!p.arithmetic.empty()) return winograd_levels<NV, 15, true>(s, p, w, v0, tx0, n, out_row);
        return winograd_levels<NV, 15>(s, p, w, v0, tx0, n, out_row);
      default:
        return winograd_levels<NV, 0>(s, p, w, v0, tx0, n, out_row);
    }
  }

};

// The direct kernel (dot products over each output position, channels
// across lanes) for every step, and the dispatch: each step runs with exactly
// one strategy, chosen when it is packed: Winograd, columns, or direct.
struct avx512vnni_kernel {
  static constexpr isa which = isa::avx512vnni;
  static constexpr int lanes = 16, max_nv = 4;
  using vec = __m512i;

  enum class strategy { direct, columns, winograd };

  struct packed {
    strategy kind = strategy::direct;
    int oc, oc_pad, per;
    // direct: pack_groups and pack_thresholds layouts. When every accumulator
    // fits in int16 (|acc| <= bound <= 32766): thresholds minus 1 as int16,
    // clamped to [-bound, bound + 1] first (the same count for any acc in
    // range), so store_levels counts with 256-bit compares into vectors, no
    // mask registers (the network ran ~2% faster than with 512-bit int32
    // compares into masks).
    std::vector<int8_t> weights;
    std::vector<int32_t> thresholds;
    bool levels16 = false;
    std::vector<int16_t> thresholds16;
    avx512vnni_columns::packed columns;
    avx512vnni_winograd::packed winograd;
  };
  // Per engine and step (an engine runs one image at a time, on one thread).
  struct scratch {
    avx512vnni_winograd::scratch winograd;
  };

  static packed pack(const conv_step& s) {
    packed p;
    p.oc = s.oc;
    p.oc_pad = (s.oc + lanes - 1) / lanes * lanes;
    p.per = s.logits ? 0 : s.thresholds_per_channel();
    p.winograd.oc = p.oc;
    p.winograd.oc_pad = p.oc_pad;
    p.winograd.per = p.per;
    if (avx512vnni_winograd::pack(s, p.winograd)) {
      p.kind = strategy::winograd;
      return p;  // the other kernels' packing would go unused
    }
    p.weights = pack_groups(s, lanes, [](int8_t w) { return w; });
    if (!s.logits) p.thresholds = pack_thresholds(s, lanes);
    const int64_t bound = int64_t(s.input_max) * s.max_abs_channel_sum();
    p.levels16 = !s.logits && bound <= 32766;
    if (p.levels16)
      for (int32_t t : p.thresholds) p.thresholds16.push_back(int16_t(std::clamp<int64_t>(t, -bound, bound + 1) - 1));
    if (avx512vnni_columns::pack(s, p.per, p.levels16, bound, p.columns)) p.kind = strategy::columns;
    return p;
  }

  static scratch make_scratch(const conv_step&, const packed& p) {
    scratch w;
    if (p.kind == strategy::winograd) w.winograd = avx512vnni_winograd::make_scratch(p.winograd);
    return w;
  }

  static bool run_special(const conv_step& s, const packed& p, scratch& w, const uint8_t* in, uint8_t* out) {
    switch (p.kind) {
      case strategy::winograd:
        run_winograd<avx512vnni_winograd>(s, p.winograd, w.winograd, in, out);
        return true;
      case strategy::columns:
        avx512vnni_columns::run(s, p.columns, in, out);
        return true;
      default:
        return false;
    }
  }

  // vpdpbusd has a latency of several cycles: one vector of channels needs 8
  // independent accumulators to keep the unit busy.
  static constexpr int positions(int nv) { return nv == 1 ? 8 : 4; }

  template <int NP, int NV>
  static void dot(const conv_step& s, const packed& p, int v0, const uint8_t* const* pos, vec (&acc)[NP][NV]) {
    for (int i = 0; i < NP; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_si512();
    const int8_t* w = p.weights.data() + std::size_t(v0) * lanes * 4;
    const std::size_t w_step = std::size_t(p.oc_pad) * 4;
    for (const uint32_t offset : s.group_offsets) {
      __m512i wv[NV];
      for (int v = 0; v < NV; ++v) wv[v] = _mm512_loadu_si512(w + v * lanes * 4);
      w += w_step;
      for (int i = 0; i < NP; ++i) {
        const __m512i a = broadcast_group(pos[i] + offset);
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], a, wv[v]);
      }
    }
  }

  static vec max(vec a, vec b) { return _mm512_max_epi32(a, b); }

  static void store_levels(const packed& p, int v, vec acc, uint8_t* out) {
    // level = number of thresholds t with acc >= t.
    if (p.levels16) {
      const __m256i narrow = _mm512_cvtepi32_epi16(acc);  // exact: |acc| <= bound
      __m256i level = _mm256_setzero_si256();
      const int16_t* t = p.thresholds16.data() + v * lanes;
      for (int k = 0; k < p.per; ++k, t += p.oc_pad)  // acc > t - 1: all ones, -1
        level = _mm256_sub_epi16(level,
                                 _mm256_cmpgt_epi16(narrow, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t))));
      _mm_mask_storeu_epi8(out + v * lanes, valid_lanes(p.oc, v), _mm256_cvtepi16_epi8(level));
      return;
    }
    __m512i level = _mm512_setzero_si512();
    const __m512i one = _mm512_set1_epi32(1);
    const int32_t* t = p.thresholds.data() + v * lanes;
    for (int k = 0; k < p.per; ++k, t += p.oc_pad) {
      const __mmask16 reached = _mm512_cmpge_epi32_mask(acc, _mm512_loadu_si512(t));
      level = _mm512_mask_add_epi32(level, reached, level, one);
    }
    _mm_mask_storeu_epi8(out + v * lanes, valid_lanes(p.oc, v), _mm512_cvtepi32_epi8(level));
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
