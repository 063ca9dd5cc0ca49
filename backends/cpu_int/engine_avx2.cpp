// AVX2 fast path: vpmaddubsw (uint8 x int8, adjacent pairs summed into
// SATURATING int16) then vpmaddwd by ones (pairs into int32). Exact only while
// no pair sum can leave int16: 2 * input_max * max|w| <= 32767. Layers that
// could (8-bit pixels times 8-bit weights) are run with each weight split as
// w = 16*hi + lo, lo in [-8, 7], hi in [-8, 8]: both halves keep pair sums
// within 2*255*8, and vpmaddwd by 16 rebuilds 16*hi in int32.
// 8 output channels per ymm; the activations' 4-byte group is broadcast.
// 3x3 convs with a 2x2 pool run as Winograd F(2x2, 3x3) where its numbers fit
// (avx2_winograd).
#include <immintrin.h>

#include "engine_simd.hpp"

namespace busi::cpu_int {
namespace {

int8_t split_hi(int8_t w) { return int8_t((w + 8) >> 4); }
int8_t split_lo(int8_t w) { return int8_t(w - 16 * split_hi(w)); }

// Winograd F(2x2, 3x3) on bytes (pack_winograd_bytes in plan.cpp: unsigned
// transformed inputs, int8 transformed weights, products mod 2^16), driven by
// run_winograd (engine_simd.hpp), as the AVX-512 path does with vpdpbusd.
// Here vpmaddubsw sums pairs of products into saturating int16, exact while
// 2 * 6 * input_max * max|transformed weight| <= 32767 (checked per layer);
// the pair sums of the 4-byte groups are added mod 2^16 and the pairs of each
// channel joined by vphaddw (wrapping) for two tiles at once. Its 16 int16
// lanes are channels c0-3 of tile t, c0-3 of t+1 (low 128 bits), c4-7 of t,
// c4-7 of t+1 (high): corrections and thresholds are laid out to match.
struct avx2_winograd {
  static constexpr int lanes = 8;
  static constexpr int winograd_tiles = 16;  // tiles per block (an even number: pairs)

  struct packed {
    int oc = 0, oc_pad = 0, per = 0;
    int groups = 0, offset = 0;
    std::vector<int8_t> weights;                // winograd_bytes layout
    std::vector<int16_t> corrections;           // [vector][position][16 lanes]
    std::vector<int16_t> thresholds;            // [vector][threshold][16 lanes]
    std::size_t row_stride = 0, plane_stride = 0;  // bytes, multiples of 32
  };

  struct scratch {
    struct alignas(32) block {
      uint8_t bytes[32];
    };
    std::vector<block> rows, planes, products;
    uint8_t* rows_data() { return reinterpret_cast<uint8_t*>(rows.data()); }
    uint8_t* planes_data() { return reinterpret_cast<uint8_t*>(planes.data()); }
    int16_t* products_data() { return reinterpret_cast<int16_t*>(products.data()); }
  };

  // The channel of int16 lane l of a vector (see above).
  static int lane_channel(int l) { return (l / 8) * 4 + l % 4; }

  // Fills `p` (oc, oc_pad and per already set); false: not this step.
  static bool pack(const conv_step& s, packed& p) {
    if (32 % s.in_c != 0) return false;  // whole pixels per 32 bytes (winograd_inputs)
    winograd_bytes b;
    if (!pack_winograd_bytes(s, lanes, b)) return false;
    int max_u = 0;
    for (int8_t u : b.weights) max_u = std::max(max_u, std::abs(int(u)));
    if (2 * (6 * s.input_max) * max_u > 32767) return false;  // vpmaddubsw would saturate
    p.groups = b.groups;
    p.offset = b.offset;
    p.weights = std::move(b.weights);
    b.lane_tables(s.oc, p.per, p.oc_pad / lanes, lanes, 16, lane_channel, p.corrections, p.thresholds);
    const std::size_t row = s.in_row_bytes(), plane = std::size_t(s.pooled_w) * s.in_c;
    p.plane_stride = (plane + 31) / 32 * 32;
    // The column pass reads up to 2 pixels past twice the planes' bytes.
    p.row_stride = (std::max(row, 2 * p.plane_stride + 2 * s.in_c) + 31) / 32 * 32;
    return true;
  }

  // The 4 rows of the vertical transform, the 16 planes of a tile row, the
  // int16 products of a block of tiles for up to two vectors.
  static scratch make_scratch(const packed& p) {
    scratch w;
    w.rows.assign(4 * p.row_stride / 32, {});
    w.planes.assign(16 * p.plane_stride / 32, {});
    w.products.assign(std::size_t(16) * 2 * winograd_tiles * lanes * 2 / 32, {});
    return w;
  }

  static __m256i load(const uint8_t* a) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)); }
  static void store(uint8_t* a, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(a), v); }

  // One tile row: input rows 2py..2py+3 (from `in`) into the 16 planes
  // B^T d B + offset, bytewise mod 256 (exact: the results lie in [0, 6m]).
  // Plane xi = 4i + j holds the in_c values of tile tx at tx * in_c.
  static void winograd_inputs(const conv_step& s, const packed& p, scratch& w, const uint8_t* in) {
    const std::size_t row = s.in_row_bytes(), c = s.in_c, rs = p.row_stride, ps = p.plane_stride;
    uint8_t* t = w.rows_data();
    for (std::size_t x = 0; x < row; x += 32) {  // rows: d0 - d2, d1 + d2, d2 - d1, d1 - d3
      const __m256i r0 = load(in + x), r1 = load(in + row + x), r2 = load(in + 2 * row + x),
                    r3 = load(in + 3 * row + x);
      store(t + x, _mm256_sub_epi8(r0, r2));
      store(t + rs + x, _mm256_add_epi8(r1, r2));
      store(t + 2 * rs + x, _mm256_sub_epi8(r2, r1));
      store(t + 3 * rs + x, _mm256_sub_epi8(r1, r3));
    }
    // Columns, the same four combinations of pixels 2tx..2tx+3.
    const std::size_t plane = std::size_t(s.pooled_w) * c;
    const __m256i offset = _mm256_set1_epi8(char(p.offset));
    auto columns = [&](uint8_t* out, __m256i a0, __m256i a1, __m256i a2, __m256i a3) {
      store(out, _mm256_add_epi8(_mm256_sub_epi8(a0, a2), offset));
      store(out + ps, _mm256_add_epi8(_mm256_add_epi8(a1, a2), offset));
      store(out + 2 * ps, _mm256_add_epi8(_mm256_sub_epi8(a2, a1), offset));
      store(out + 3 * ps, _mm256_add_epi8(_mm256_sub_epi8(a1, a3), offset));
    };
    if (c == 32) {  // one tile's 32 bytes from 4 whole-pixel loads
      for (int i = 0; i < 4; ++i) {
        const uint8_t* ti = t + i * rs;
        uint8_t* out = w.planes_data() + 4 * i * ps;
        for (std::size_t x = 0; x < plane; x += 32)
          columns(out + x, load(ti + 2 * x), load(ti + 2 * x + 32), load(ti + 2 * x + 64), load(ti + 2 * x + 96));
      }
      return;
    }
    // c in {4, 8, 16}: 32 bytes of tiles from 64 bytes of pixels: a dword
    // permute puts each 32 bytes' even pixels in its low 128 bits, odd pixels
    // in its high, and 128-bit moves join the two halves' evens and odds.
    const int dwords = int(c / 4);
    alignas(32) int32_t split_index[8];
    for (int d = 0; d < 4; ++d) {
      split_index[d] = 2 * (d / dwords) * dwords + d % dwords;
      split_index[d + 4] = split_index[d] + dwords;
    }
    const __m256i split = _mm256_load_si256(reinterpret_cast<const __m256i*>(split_index));
    auto even_odd = [&](const uint8_t* a, __m256i& even, __m256i& odd) {
      const __m256i lo = _mm256_permutevar8x32_epi32(load(a), split);
      const __m256i hi = _mm256_permutevar8x32_epi32(load(a + 32), split);
      even = _mm256_permute2x128_si256(lo, hi, 0x20);
      odd = _mm256_permute2x128_si256(lo, hi, 0x31);
    };
    for (int i = 0; i < 4; ++i) {
      const uint8_t* ti = t + i * rs;
      uint8_t* out = w.planes_data() + 4 * i * ps;
      for (std::size_t x = 0; x < plane; x += 32) {
        __m256i a0, a1, a2, a3;
        even_odd(ti + 2 * x, a0, a1);          // pixels 2tx, 2tx + 1
        even_odd(ti + 2 * x + 2 * c, a2, a3);  // 2tx + 2, 2tx + 3
        columns(out + x, a0, a1, a2, a3);
      }
    }
  }

  // The 16 transformed products of tiles tx0..tx0+n-1 for vectors
  // v0..v0+NV-1, mod 2^16, two tiles per vector: [xi][v][pair][16]. Blocks of
  // nt tiles past n repeat the last tile; their products land in unused slots.
  template <int NV, int G>
  static void winograd_products(const packed& p, scratch& w, int v0, int tx0, int n) {
    constexpr int nt = NV == 1 ? 8 : 4;  // accumulators: nt * NV of 16 ymm registers
    constexpr int pairs = winograd_tiles / 2;
    static_assert(winograd_tiles % nt == 0);
    const std::size_t ps = p.plane_stride, u_xi = std::size_t(G) * p.oc_pad * 4, u_g = std::size_t(p.oc_pad) * 4;
    const int8_t* u = p.weights.data() + std::size_t(v0) * lanes * 4;
    for (int t0 = 0; t0 < n; t0 += nt) {
      const uint8_t* tile[nt];
      for (int t = 0; t < nt; ++t) tile[t] = w.planes_data() + std::size_t(tx0 + std::min(t0 + t, n - 1)) * G * 4;
      for (int xi = 0; xi < 16; ++xi) {
        __m256i acc[nt][NV];
        for (int t = 0; t < nt; ++t)
          for (int v = 0; v < NV; ++v) acc[t][v] = _mm256_setzero_si256();
        for (int g = 0; g < G; ++g) {
          __m256i wv[NV];
          for (int v = 0; v < NV; ++v)
            wv[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + xi * u_xi + g * u_g + v * lanes * 4));
          for (int t = 0; t < nt; ++t) {
            int32_t group;
            std::memcpy(&group, tile[t] + xi * ps + 4 * g, 4);
            const __m256i a = _mm256_set1_epi32(group);
            for (int v = 0; v < NV; ++v) acc[t][v] = _mm256_add_epi16(acc[t][v], _mm256_maddubs_epi16(a, wv[v]));
          }
        }
        int16_t* products = w.products_data() + (std::size_t(xi) * NV * pairs + t0 / 2) * 16;
        for (int t = 0; t < nt; t += 2)
          for (int v = 0; v < NV; ++v)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(products + (std::size_t(v) * pairs + t / 2) * 16),
                                _mm256_hadd_epi16(acc[t][v], acc[t + 1][v]));
      }
    }
  }

  template <int NV>
  static void winograd_products(const packed& p, scratch& w, int v0, int tx0, int n) {
    switch (p.groups) {  // in_c / 4, in_c dividing 32
      case 1:
        return winograd_products<NV, 1>(p, w, v0, tx0, n);
      case 2:
        return winograd_products<NV, 2>(p, w, v0, tx0, n);
      case 4:
        return winograd_products<NV, 4>(p, w, v0, tx0, n);
      case 8:
        return winograd_products<NV, 8>(p, w, v0, tx0, n);
      default:
        return winograd_products<NV, 8>(p, w, v0, tx0, n);
    }
  }

  // Two tiles at a time: the output transform A^T M A, minus the offset's
  // share, pooled, then the count of thresholds reached (4 acc > 4 t - 1).
  template <int NV>
  static void winograd_levels(const conv_step& s, const packed& p, scratch& w, int v0, int tx0, int n,
                              uint8_t* out_row) {
    constexpr int pairs = winograd_tiles / 2;
    const std::size_t xi_stride = std::size_t(NV) * pairs * 16;
    const __m256i tile_bytes = _mm256_set_epi32(0, 0, 0, 0, 5, 1, 4, 0);  // dwords: tile t's 8 bytes, then t+1's
    for (int v = 0; v < NV; ++v) {
      const int vector = v0 + v;
      const int16_t* corrections = p.corrections.data() + vector * 4 * 16;
      const int16_t* thresholds = p.thresholds.data() + std::size_t(vector) * p.per * 16;
      auto load16 = [](const int16_t* a) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)); };
      const __m256i c00 = load16(corrections), c01 = load16(corrections + 16), c10 = load16(corrections + 32),
                    c11 = load16(corrections + 48);
      const int channels = std::min(lanes, p.oc - vector * lanes);
      const int16_t* products = w.products_data() + std::size_t(v) * pairs * 16;
      for (int t = 0; t < n; t += 2) {  // an odd last tile pairs with a repeat, never stored
        __m256i r0[4], r1[4];           // A^T M: rows m0 + m1 + m2 and m1 - m2 - m3
        for (int j = 0; j < 4; ++j) {
          const int16_t* m = products + j * xi_stride + (t / 2) * 16;
          const __m256i m0 = load16(m), m1 = load16(m + 4 * xi_stride), m2 = load16(m + 8 * xi_stride),
                        m3 = load16(m + 12 * xi_stride);
          r0[j] = _mm256_add_epi16(_mm256_add_epi16(m0, m1), m2);
          r1[j] = _mm256_sub_epi16(_mm256_sub_epi16(m1, m2), m3);
        }
        auto left = [](const __m256i* r) { return _mm256_add_epi16(_mm256_add_epi16(r[0], r[1]), r[2]); };
        auto right = [](const __m256i* r) { return _mm256_sub_epi16(_mm256_sub_epi16(r[1], r[2]), r[3]); };
        const __m256i acc =
            _mm256_max_epi16(_mm256_max_epi16(_mm256_sub_epi16(left(r0), c00), _mm256_sub_epi16(right(r0), c01)),
                             _mm256_max_epi16(_mm256_sub_epi16(left(r1), c10), _mm256_sub_epi16(right(r1), c11)));
        __m256i level = _mm256_setzero_si256();
        for (int k = 0; k < p.per; ++k)  // cmpgt gives -1
          level = _mm256_sub_epi16(level, _mm256_cmpgt_epi16(acc, load16(thresholds + k * 16)));
        const __m128i bytes = _mm256_castsi256_si128(
            _mm256_permutevar8x32_epi32(_mm256_packus_epi16(level, _mm256_setzero_si256()), tile_bytes));
        alignas(16) uint8_t two[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(two), bytes);
        std::memcpy(out_row + std::size_t(tx0 + t) * s.oc + vector * lanes, two, channels);
        if (t + 1 < n) std::memcpy(out_row + std::size_t(tx0 + t + 1) * s.oc + vector * lanes, two + 8, channels);
      }
    }
  }
};

// Output columns across lanes for a first layer (1 input channel, a kernel
// at most 4 wide, a 2x2 pool), where channels across lanes would broadcast one
// activation group per multiply for only 8 channels. A 32-byte load at byte
// x0 + r gives in dword lane i the group of output column x0 + 4i + r, so 4
// plain loads give 32 columns, and each serves 4 channels, whose kernel
// rows are one broadcast group of weights each. The pair sums of vpmaddubsw are added over the kernel
// rows in int16 and joined by one vpmaddwd: exact while kh * 2 * input_max *
// max|w| <= 32767. The pool is a max of loads r = 0, 1 (pooled column 2i)
// and 2, 3 (2i + 1) and of the two conv rows; the pooled accumulators, at
// most `bound` <= 32766 in size, are packed to int16 and counted against the
// channel's thresholds (clamped to [-bound, bound + 1], minus 1).
struct avx2_columns {
  struct packed {
    int kh = 0, per = 0;
    std::vector<int32_t> weights;     // [channel][ky]: the kernel row as 4 bytes
    std::vector<int16_t> thresholds;  // [channel][t][16]: broadcast, 4 t - 1 as above
  };

  static bool pack(const conv_step& s, packed& p) {
    const int64_t bound = int64_t(s.input_max) * s.max_abs_channel_sum();
    if (s.in_c != 1 || s.kw > 4 || s.pool != 2 || s.logits || bound > 32766 ||
        int64_t(s.kh) * 2 * s.input_max * s.max_abs_weight() > 32767)
      return false;
    p.kh = s.kh;
    p.per = s.thresholds_per_channel();
    for (int o = 0; o < s.oc; ++o)
      for (int ky = 0; ky < s.kh; ++ky) {
        uint32_t taps = 0;
        for (int t = 0; t < 4; ++t) taps |= uint32_t(uint8_t(s.weight(ky, t, o))) << (8 * t);
        p.weights.push_back(int32_t(taps));
      }
    for (int o = 0; o < s.oc; ++o)
      for (int t = 0; t < p.per; ++t)
        p.thresholds.insert(p.thresholds.end(), 16,
                            int16_t(std::clamp<int64_t>(s.layer->channel_thresholds(o)[t], -bound, bound + 1) - 1));
    return true;
  }

  static __m256i load(const uint8_t* a) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)); }

  // 16 pooled outputs (32 conv columns, 2 conv rows) per block, every channel.
  static void run(const conv_step& s, const packed& p, const uint8_t* in, uint8_t* out) {
    const std::size_t row = s.in_row_bytes();
    const __m256i ones = _mm256_set1_epi16(1);
    // packs(even, odd) puts pooled columns 0,2,4,6,1,3,5,7 | 8,10,...: their index.
    constexpr int column_of[16] = {0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15};
    alignas(32) int16_t levels[16];
    constexpr int together = 4;  // channels per pass: 8 measured no faster
    for (int py = 0; py < s.pooled_h; ++py) {
      const uint8_t* rows = in + std::size_t(2 * py) * row;
      uint8_t* out_row = out + std::size_t(py) * s.pooled_w * s.oc;
      for (int px0 = 0; px0 < s.pooled_w; px0 += 16) {
        const uint8_t* first = rows + 2 * px0;
        const int valid = std::min(16, s.pooled_w - px0);
        for (int c0 = 0; c0 < s.oc; c0 += together) {
          // `together` channels at a time, sharing every load (past oc the
          // last channel repeats; it is not stored).
          const int32_t* w[together];
          for (int k = 0; k < together; ++k) w[k] = p.weights.data() + std::size_t(std::min(c0 + k, s.oc - 1)) * p.kh;
          __m256i pooled[together][2];  // [channel][pooled columns 2i (loads r = 0, 1), 2i + 1 (r = 2, 3)]
          for (int half = 0; half < 2; ++half) {
            __m256i m[together];
            for (int k = 0; k < together; ++k) m[k] = _mm256_set1_epi32(INT32_MIN);
            for (int r = 2 * half; r < 2 * half + 2; ++r)
              for (int conv_row = 0; conv_row < 2; ++conv_row) {
                __m256i pairs[together];
                for (int k = 0; k < together; ++k) pairs[k] = _mm256_setzero_si256();
                for (int ky = 0; ky < p.kh; ++ky) {
                  const __m256i a = load(first + (conv_row + ky) * row + r);
                  for (int k = 0; k < together; ++k)
                    pairs[k] = _mm256_add_epi16(pairs[k], _mm256_maddubs_epi16(a, _mm256_set1_epi32(w[k][ky])));
                }
                for (int k = 0; k < together; ++k) m[k] = _mm256_max_epi32(m[k], _mm256_madd_epi16(pairs[k], ones));
              }
            for (int k = 0; k < together; ++k) pooled[k][half] = m[k];
          }
          for (int k = 0; k < together && c0 + k < s.oc; ++k) {
            const int c = c0 + k;
            const __m256i acc = _mm256_packs_epi32(pooled[k][0], pooled[k][1]);  // exact: |acc| <= bound
            __m256i level = _mm256_setzero_si256();
            const int16_t* t = p.thresholds.data() + std::size_t(c) * p.per * 16;
            for (int j = 0; j < p.per; ++j, t += 16)  // acc > t - 1: all ones, -1
              level = _mm256_sub_epi16(level, _mm256_cmpgt_epi16(acc, load(reinterpret_cast<const uint8_t*>(t))));
            _mm256_store_si256(reinterpret_cast<__m256i*>(levels), level);
            for (int j = 0; j < 16; ++j)
              if (column_of[j] < valid) out_row[std::size_t(px0 + column_of[j]) * s.oc + c] = uint8_t(levels[j]);
          }
        }
      }
    }
  }
};

struct avx2_kernel {
  static constexpr isa which = isa::avx2;
  static constexpr int lanes = 8, max_nv = 2;
  using vec = __m256i;

  struct packed {
    std::vector<int8_t> weights;      // pack_groups layout (the low halves when split)
    std::vector<int8_t> high;         // split layers: the high halves, same layout
    std::vector<int32_t> thresholds;  // pack_thresholds layout
    int oc, oc_pad, per;
    bool split = false;
    bool winograd = false;  // run by avx2_winograd, with its own packing
    avx2_winograd::packed wg;
    bool columns = false;  // run by avx2_columns, with its own packing
    avx2_columns::packed cols;
  };

  static packed pack(const conv_step& s) {
    packed p;
    p.oc = s.oc;
    p.oc_pad = (s.oc + lanes - 1) / lanes * lanes;
    p.per = s.logits ? 0 : s.thresholds_per_channel();
    p.wg.oc = p.oc;
    p.wg.oc_pad = p.oc_pad;
    p.wg.per = p.per;
    p.winograd = avx2_winograd::pack(s, p.wg);
    if (p.winograd) return p;  // the direct packing would go unused
    p.columns = avx2_columns::pack(s, p.cols);
    if (p.columns) return p;
    p.split = 2 * s.input_max * s.max_abs_weight() > 32767;
    if (p.split) {
      p.weights = pack_groups(s, lanes, split_lo);
      p.high = pack_groups(s, lanes, split_hi);
    } else {
      p.weights = pack_groups(s, lanes, [](int8_t w) { return w; });
    }
    if (!s.logits) p.thresholds = pack_thresholds(s, lanes);
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

  using scratch = avx2_winograd::scratch;  // empty unless the step runs as Winograd
  static scratch make_scratch(const conv_step&, const packed& p) {
    return p.winograd ? avx2_winograd::make_scratch(p.wg) : scratch{};
  }
  static bool run_special(const conv_step& s, const packed& p, scratch& w, const uint8_t* in, uint8_t* out) {
    if (p.winograd)
      run_winograd<avx2_winograd>(s, p.wg, w, in, out);
    else if (p.columns)
      avx2_columns::run(s, p.cols, in, out);
    return p.winograd || p.columns;
  }

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
