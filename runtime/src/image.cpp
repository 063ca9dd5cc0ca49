// Decoding and the gray-area-v1 pre-processing (docs/preprocessing.md). The
// training code makes the OpenCV calls this file computes: cvtColor to gray,
// then resize with INTER_AREA. The common case (8-bit pixels, shrunk by a
// scale that is not a whole number, or not resized at all) is one fused pass
// that gives OpenCV's bytes exactly (tests/preprocess_test.cpp checks it on
// every BUSI and BUS-BRA image); 16-bit images and the other resize cases
// (enlarging, shrinking by a whole number) call OpenCV itself.
#include "busi/image.hpp"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "busi/area_shrink.hpp"
#include "busi/error.hpp"
#include "busi/limits.hpp"
#include "decode.hpp"
#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

namespace busi {

namespace detail {
void check_decode_budget(const image_header& h, const std::string& name) {
  if (h.work_bytes <= limits::kDecodeBytes) return;
  throw image_error(name + ": " + h.format + " image of " + std::to_string(h.width) + "x" + std::to_string(h.height) +
                    " pixels (" + std::to_string(h.channels) + " channel" + (h.channels == 1 ? "" : "s") + " of " +
                    std::to_string(8 * h.bytes_per_sample) + " bits) needs " + std::to_string(h.work_bytes) +
                    " bytes to decode, over the limit of " + std::to_string(limits::kDecodeBytes) +
                    " bytes; refused before decoding");
}

int jpeg_scale_denominator(const image_header& h, target_size target) {
  if (h.work_bytes <= limits::kDecodeBytes) return 1;
  if (target.height <= 0 || target.width <= 0) return 0;
  for (int d : {2, 4, 8}) {
    const uint64_t w = (h.width + d - 1) / d, ht = (h.height + d - 1) / d;
    if (w < uint64_t(target.width) || ht < uint64_t(target.height)) return 0;
    if (w * ht * uint64_t(h.channels) + h.coefficient_bytes <= limits::kDecodeBytes) return d;
  }
  return 0;
}
}  // namespace detail

namespace {

namespace fs = std::filesystem;

// cv::cvtColor's BGR -> gray for 8-bit pixels (RGB2Gray<uchar>): BT.601
// weights in 15-bit fixed point (OpenCV's BY15, GY15, RY15), rounded half up.
// The three weights sum to 2^15, so a gray pixel stays itself.
constexpr int kGrayShift = 15, kBlueWeight = 3735, kGreenWeight = 19235, kRedWeight = 9798;
inline uint8_t gray_of(int blue, int green, int red) {
  return uint8_t((blue * kBlueWeight + green * kGreenWeight + red * kRedWeight + (1 << (kGrayShift - 1))) >> kGrayShift);
}

// One tap of INTER_AREA along one axis: destination `to` takes `weight` of source `from`.
struct AreaTap {
  int from, to;
  float weight;
};

// cv::resize's INTER_AREA weights along one axis for a shrink by `scale`
// (OpenCV's computeResizeAreaTab): each destination cell covers `scale`
// source pixels, the partly covered ones at its ends by their covered part.
// The weights are computed in double and stored as float, as OpenCV does.
void area_taps(int source, int destination, double scale, std::vector<AreaTap>& taps) {
  taps.clear();
  for (int d = 0; d < destination; ++d) {
    const double begin = d * scale, end = begin + scale;
    const double cell = std::min(scale, source - begin);
    int first = int(std::ceil(begin)), last = int(std::floor(end));
    last = std::min(last, source - 1);
    first = std::min(first, last);
    if (first - begin > 1e-3) taps.push_back({first - 1, d, float((first - begin) / cell)});
    for (int s = first; s < last; ++s) taps.push_back({s, d, float(1.0 / cell)});
    if (end - last > 1e-3) taps.push_back({last, d, float(std::min(std::min(end - last, 1.), cell) / cell)});
  }
}

// How cv::resize(INTER_AREA) computes a size change: the area tables for a
// shrink in both directions by a scale that is not a whole number in both;
// OpenCV's integer averaging (a whole-number shrink) or its area-weighted
// bilinear interpolation (an enlargement in either direction) otherwise.
bool resize_uses_area_tables(int source_height, int source_width, int height, int width) {
  const double scale_x = 1. / (double(width) / source_width), scale_y = 1. / (double(height) / source_height);
  if (scale_x < 1 || scale_y < 1) return false;
  const bool whole = std::abs(scale_x - std::lround(scale_x)) < DBL_EPSILON &&
                     std::abs(scale_y - std::lround(scale_y)) < DBL_EPSILON;
  return !whole;
}

// The pre-processing's reusable state: the area tables of the last size
// change and the rows the fused pass works in.
struct Preprocessor {
  int source_height = -1, source_width = -1, height = -1, width = -1;
  std::vector<AreaTap> y_taps;
  // The horizontal taps, the same number (x_taps_per_pixel) for every
  // destination pixel: those with fewer get taps of weight 0 at the end, which
  // add +0.0 to a non-negative sum and so change no bit of it.
  int x_taps_per_pixel = 0;
  std::vector<int> x_from;
  std::vector<float> x_weight;
  // Source rows are summed horizontally kBlockRows at a time (horizontal_block):
  // their gray pixels (when made here), the same as floats interleaved row by
  // row, and their sums; block_first is the first row of the block held.
  static constexpr int kBlockRows = 4;
  int block_first = -1, block_rows = 0;
  std::vector<uint8_t> gray_rows;
  std::vector<float> interleaved, block_sums, column_sum;

  void run(const detail::Pixels& pixels, int height, int width, Tensor8& out, const std::string& name);
  // The area tables for a shrink of source_height x source_width to height x
  // width (kept while the sizes stay the same).
  void set_sizes(int source_height, int source_width, int height, int width);
  // cv::resize(INTER_AREA)'s area-table arithmetic, destination row by row:
  // source_row(s, scratch) gives source row s in gray (made in `scratch`, a
  // source row's bytes, when it needs to); finish(d, sums, row, beta) makes
  // destination row d from its last source row's horizontal sums `row`, that
  // row's weight and the weighted sums of the rows before it (null when it
  // has no others), as sums[x] + beta * row[x].
  template <class SourceRow, class FinishRow>
  void area_rows(SourceRow source_row, FinishRow finish);

 private:
  // Row y's gray pixels into `out`; returns its colour (colour_and_gray's
  // sum, 0 for one channel).
  uint32_t gray(const detail::Pixels& pixels, int y, uint8_t* out) const;
  void set_x_taps(const std::vector<AreaTap>& taps);
  template <int taps>
  void horizontal(const uint8_t* gray, float* sums) const;
  void horizontal_block(const uint8_t* const* rows);
  // Returns the colour sum of every source row.
  uint64_t fused_area(const detail::Pixels& pixels, uint8_t* out);
};

}  // namespace

namespace {

#if defined(__SSE2__)
// 0xFF at the bytes that are a pixel's first or second channel: over the 48
// bytes (three registers) that hold 16 pixels of 3 channels, and over each
// 16 of the 64 bytes that hold 16 pixels of 4.
alignas(16) constexpr uint8_t kFirstTwoOf3[48] = {
    255, 255, 0, 255, 255, 0, 255, 255, 0, 255, 255, 0, 255, 255, 0, 255, 255, 0, 255, 255, 0, 255, 255, 0,
    255, 255, 0, 255, 255, 0, 255, 255, 0, 255, 255, 0, 255, 255, 0, 255, 255, 0, 255, 255, 0, 255, 255, 0};
alignas(16) constexpr uint8_t kFirstTwoOf4[16] = {255, 255, 0, 0, 255, 255, 0, 0, 255, 255, 0, 0, 255, 255, 0, 0};
#endif

// One row of 8-bit pixels of 3 or 4 channels: the sum of |B - G| + |G - R|
// over it (Tensor8::source_colour's), and its gray pixels into `gray` unless
// that is null (`blue`, `red`: the channels that get those weights). With
// SSE2, 16 pixels at a time: each byte's distance to the next one, kept where
// the byte is a pixel's first or second channel, summed by _mm_sad_epu8 (the
// same whole numbers as the scalar loop, which does the rest of the row); and
// where all those distances are 0, the 16 pixels are gray stored as colour
// (B = G = R, every BUSI image), each its own gray (the weights sum to 2^15),
// so they are copied instead of weighted.
uint32_t colour_and_gray(const uint8_t* row, int width, int channels, int blue, int red, uint8_t* gray) {
  uint32_t total = 0;
  int x = 0;
#if defined(__SSE2__)
  const std::size_t bytes = std::size_t(width) * channels;
  __m128i sums = _mm_setzero_si128();
  // 16 pixels are `channels` registers; the last one reads a byte past them.
  for (; std::size_t(x + 16) * channels + 1 <= bytes; x += 16) {
    const uint8_t* step = row + std::size_t(x) * channels;
    __m128i any = _mm_setzero_si128();
    for (int r = 0; r < channels; ++r) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(step + 16 * r));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(step + 16 * r + 1));
      const __m128i keep =
          _mm_load_si128(reinterpret_cast<const __m128i*>(channels == 3 ? kFirstTwoOf3 + 16 * r : kFirstTwoOf4));
      const __m128i distance = _mm_and_si128(_mm_or_si128(_mm_subs_epu8(a, b), _mm_subs_epu8(b, a)), keep);
      sums = _mm_add_epi64(sums, _mm_sad_epu8(distance, _mm_setzero_si128()));
      any = _mm_or_si128(any, distance);
    }
    if (!gray) continue;
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(any, _mm_setzero_si128())) == 0xFFFF)
      for (int i = 0; i < 16; ++i) gray[x + i] = step[i * channels];
    else
      for (int i = 0; i < 16; ++i)
        gray[x + i] = gray_of(step[i * channels + blue], step[i * channels + 1], step[i * channels + red]);
  }
  total = uint32_t(_mm_cvtsi128_si32(sums)) + uint32_t(_mm_cvtsi128_si32(_mm_unpackhi_epi64(sums, sums)));
#endif
  for (row += std::size_t(x) * channels; x < width; ++x, row += channels) {
    total += uint32_t(std::abs(row[0] - row[1]) + std::abs(row[1] - row[2]));
    if (gray) gray[x] = gray_of(row[blue], row[1], row[red]);
  }
  return total;
}

// Mean of |B - G| + |G - R| over the pixels (8-bit values; 16-bit ones as
// value / 257, rounded, as the conversion to 8 bits): 0 for a gray image stored
// as colour (every BUSI and BUS-BRA file), large for a photo. The gate reads it
// (Tensor8::source_colour); the sum is symmetric in B and R, so either channel
// order gives the same. `total` is the sum over every pixel of `v`.
float colour_of(uint64_t total, const ImageView& v) {
  return v.channels < 3 ? 0.f : float(double(total) / (double(v.width) * v.height));
}

// colour_of the pixels, measured alone (the fused pass and a gray conversion
// alone measure each row as they make it gray instead).
float mean_colour(const ImageView& v) {
  if (v.channels < 3) return 0;
  uint64_t total = 0;
  for (int y = 0; y < v.height; ++y) {
    const uint8_t* row = v.data + v.stride * std::size_t(y);
    uint32_t row_total = 0;  // at most 510 * 8192: no overflow
    if (v.bytes_per_channel == 1) {
      row_total = colour_and_gray(row, v.width, v.channels, 0, 2, nullptr);
    } else {
      const auto eight = [](const uint8_t* at) {
        uint16_t value;
        std::memcpy(&value, at, 2);
        return int(std::lround(value / 257.0));
      };
      for (int x = 0; x < v.width; ++x, row += 2 * v.channels) {
        const int b = eight(row), g = eight(row + 2), r = eight(row + 4);
        row_total += uint32_t(std::abs(b - g) + std::abs(g - r));
      }
    }
    total += row_total;
  }
  return colour_of(total, v);
}

}  // namespace

uint32_t Preprocessor::gray(const detail::Pixels& p, int y, uint8_t* out) const {
  const uint8_t* row = p.view.data + p.view.stride * std::size_t(y);
  const int n = p.view.width, channels = p.view.channels;
  if (channels == 1) {
    std::memcpy(out, row, std::size_t(n));
    return 0;
  }
  // Pixels in R, G, B order give their first byte the red weight instead.
  return colour_and_gray(row, n, channels, p.rgb_order ? 2 : 0, p.rgb_order ? 0 : 2, out);
}

namespace {

// float -> the nearest integer, ties to even (cvRound's rounding, in the
// default rounding mode), saturated to 0..255, without a libm call or a
// branch: adding 1.5 * 2^23 leaves no fraction bits, so the float sum is the
// rounded value, held in the low bits of its pattern. Valid for |x| < 2^22;
// the sums here are 0 to 255 and a little over.
inline uint8_t round_saturate(float x) {
  const int32_t rounded = std::bit_cast<int32_t>(x + 12582912.f) - 0x4B400000;
  return uint8_t(rounded < 0 ? 0 : rounded > 255 ? 255 : rounded);
}

// One destination row's last step: o[x] = round_saturate(sums[x] + beta *
// row[x]), or of beta * row[x] alone when `sums` is null, four pixels at a
// time in SSE2 or NEON registers. The same float operations in the same order
// as the scalar code: vector and scalar multiplies and adds round alike
// (NEON flushes subnormals to zero, but no product or sum here is subnormal:
// they are 0 or at least a weight of ~1e-3 times a gray level of 1), and the
// saturating narrowings clamp to 0..255.
void round_row(const float* sums, const float* row, float beta, int n, uint8_t* o) {
  int x = 0;
#if defined(__SSE2__)
  const __m128 b = _mm_set1_ps(beta), magic = _mm_set1_ps(12582912.f);
  const __m128i magic_bits = _mm_set1_epi32(0x4B400000);
  for (; x + 4 <= n; x += 4) {
    __m128 v = _mm_mul_ps(b, _mm_loadu_ps(row + x));
    if (sums) v = _mm_add_ps(_mm_loadu_ps(sums + x), v);
    const __m128i rounded = _mm_sub_epi32(_mm_castps_si128(_mm_add_ps(v, magic)), magic_bits);
    const __m128i narrow = _mm_packus_epi16(_mm_packs_epi32(rounded, rounded), _mm_setzero_si128());
    const uint32_t four = uint32_t(_mm_cvtsi128_si32(narrow));
    std::memcpy(o + x, &four, 4);
  }
#elif defined(__ARM_NEON)
  const float32x4_t magic = vdupq_n_f32(12582912.f);
  const int32x4_t magic_bits = vdupq_n_s32(0x4B400000);
  for (; x + 4 <= n; x += 4) {
    float32x4_t v = vmulq_n_f32(vld1q_f32(row + x), beta);
    if (sums) v = vaddq_f32(vld1q_f32(sums + x), v);
    const int32x4_t rounded = vsubq_s32(vreinterpretq_s32_f32(vaddq_f32(v, magic)), magic_bits);
    const uint16x4_t narrow16 = vqmovun_s32(rounded);
    const uint8x8_t narrow = vqmovn_u16(vcombine_u16(narrow16, narrow16));
    vst1_lane_u32(reinterpret_cast<uint32_t*>(o + x), vreinterpret_u32_u8(narrow), 0);
  }
#endif
  for (; x < n; ++x) o[x] = round_saturate(sums ? sums[x] + beta * row[x] : beta * row[x]);
}

}  // namespace

void Preprocessor::set_x_taps(const std::vector<AreaTap>& taps) {
  std::vector<int> count(std::size_t(width), 0);
  for (const AreaTap& t : taps) ++count[std::size_t(t.to)];
  x_taps_per_pixel = *std::max_element(count.begin(), count.end());
  x_from.assign(std::size_t(width) * x_taps_per_pixel, 0);
  x_weight.assign(std::size_t(width) * x_taps_per_pixel, 0.f);
  std::fill(count.begin(), count.end(), 0);
  for (const AreaTap& t : taps) {
    const std::size_t slot = std::size_t(t.to) * x_taps_per_pixel + count[std::size_t(t.to)]++;
    x_from[slot] = t.from;
    x_weight[slot] = t.weight;
  }
}

// A source row's horizontal sums: each destination pixel's taps in OpenCV's
// order, from 0, in a register. `taps` = x_taps_per_pixel, or 0 for any count.
template <int taps>
void Preprocessor::horizontal(const uint8_t* gray_pixels, float* sums) const {
  const int n = taps ? taps : x_taps_per_pixel;
  const int* from = x_from.data();
  const float* weight = x_weight.data();
  for (int x = 0; x < width; ++x, from += n, weight += n) {
    float sum = 0.f;
    for (int j = 0; j < n; ++j) sum += float(gray_pixels[from[j]]) * weight[j];
    sums[x] = sum;
  }
}

// The horizontal sums of kBlockRows source rows into block_sums (row r at
// r * width). With SSE2 the rows go side by side in the four lanes of a
// register: their pixels are interleaved as floats once, then each tap is one
// multiply and one add for all four rows, in each lane the same operations in
// the same order as horizontal's (packed and scalar float arithmetic round
// alike). A sum waits for its previous add, so four independent ones keep
// the adder busy where one row's would not.
void Preprocessor::horizontal_block(const uint8_t* const* rows) {
  static_assert(kBlockRows == 4, "one row per SSE2 lane");
#if defined(__SSE2__)
  float* f = interleaved.data();
  const __m128i zero = _mm_setzero_si128();
  int c = 0;
  for (; c + 16 <= source_width; c += 16) {
    const auto load = [&](int r) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[r] + c)); };
    const __m128i r0 = load(0), r1 = load(1), r2 = load(2), r3 = load(3);
    const __m128i low01 = _mm_unpacklo_epi8(r0, r1), high01 = _mm_unpackhi_epi8(r0, r1);
    const __m128i low23 = _mm_unpacklo_epi8(r2, r3), high23 = _mm_unpackhi_epi8(r2, r3);
    // Four columns each: the four rows' bytes of a column side by side.
    const __m128i quads[4] = {_mm_unpacklo_epi16(low01, low23), _mm_unpackhi_epi16(low01, low23),
                              _mm_unpacklo_epi16(high01, high23), _mm_unpackhi_epi16(high01, high23)};
    for (int q = 0; q < 4; ++q) {
      const __m128i low = _mm_unpacklo_epi8(quads[q], zero), high = _mm_unpackhi_epi8(quads[q], zero);
      float* o = f + 4 * std::size_t(c + 4 * q);
      _mm_storeu_ps(o, _mm_cvtepi32_ps(_mm_unpacklo_epi16(low, zero)));
      _mm_storeu_ps(o + 4, _mm_cvtepi32_ps(_mm_unpackhi_epi16(low, zero)));
      _mm_storeu_ps(o + 8, _mm_cvtepi32_ps(_mm_unpacklo_epi16(high, zero)));
      _mm_storeu_ps(o + 12, _mm_cvtepi32_ps(_mm_unpackhi_epi16(high, zero)));
    }
  }
  for (; c < source_width; ++c)
    for (int r = 0; r < 4; ++r) f[4 * std::size_t(c) + r] = float(rows[r][c]);
  const int n = x_taps_per_pixel;
  const int* from = x_from.data();
  const float* weight = x_weight.data();
  float* sums = block_sums.data();
  for (int x = 0; x < width; ++x, from += n, weight += n) {
    __m128 sum = _mm_setzero_ps();
    for (int j = 0; j < n; ++j)
      sum = _mm_add_ps(sum, _mm_mul_ps(_mm_loadu_ps(f + 4 * std::size_t(from[j])), _mm_set1_ps(weight[j])));
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, sum);
    for (int r = 0; r < 4; ++r) sums[std::size_t(r) * width + x] = lanes[r];
  }
#else
  for (int r = 0; r < kBlockRows; ++r) {
    float* sums = block_sums.data() + std::size_t(r) * width;
    switch (x_taps_per_pixel) {  // the common counts unrolled
      case 2: horizontal<2>(rows[r], sums); break;
      case 3: horizontal<3>(rows[r], sums); break;
      default: horizontal<0>(rows[r], sums); break;
    }
  }
#endif
}

// cv::resize(INTER_AREA)'s area tables in OpenCV's float arithmetic and order
// (ResizeArea_Invoker): a source row's horizontal sums start at 0 and add
// pixel * weight tap by tap; a destination row's sum is the first source row's
// sums * its weight, then adds each next one's. A source row's horizontal sums
// are the same for every destination row that takes it, so they are computed
// once. FMA contraction is off for this file (CMake), so every product is
// rounded before it is added, as in OpenCV's build.
// Source rows are taken in increasing order, so the block of kBlockRows rows
// from the first one not yet summed holds the next ones.
template <class SourceRow, class FinishRow>
void Preprocessor::area_rows(SourceRow source_row, FinishRow finish) {
  block_first = -1, block_rows = 0;
  std::size_t k = 0;
  for (int d = 0; d < height; ++d) {
    const std::size_t first = k;
    for (; k < y_taps.size() && y_taps[k].to == d; ++k) {
      const int s = y_taps[k].from;
      if (s < block_first || s >= block_first + block_rows) {
        block_first = s, block_rows = std::min(kBlockRows, source_height - s);
        const uint8_t* rows[kBlockRows];
        for (int r = 0; r < kBlockRows; ++r)  // past the last row: the last row again
          rows[r] = r < block_rows ? source_row(s + r, gray_rows.data() + std::size_t(r) * source_width) : rows[r - 1];
        horizontal_block(rows);
      }
      const float* row_sum = block_sums.data() + std::size_t(s - block_first) * width;
      const float beta = y_taps[k].weight;
      const bool last = k + 1 == y_taps.size() || y_taps[k + 1].to != d;
      // The first tap sets the sums, the next ones add to them; the last one's
      // sums go to `finish` rather than being stored first.
      if (last)
        finish(d, k == first ? nullptr : column_sum.data(), row_sum, beta);
      else if (k == first)
        for (int x = 0; x < width; ++x) column_sum[x] = beta * row_sum[x];
      else
        for (int x = 0; x < width; ++x) column_sum[x] += beta * row_sum[x];
    }
  }
}

void Preprocessor::set_sizes(int from_height, int from_width, int to_height, int to_width) {
  if (from_height == source_height && from_width == source_width && to_height == height && to_width == width) return;
  source_height = from_height, source_width = from_width, height = to_height, width = to_width;
  std::vector<AreaTap> x_taps;
  area_taps(from_width, to_width, 1. / (double(to_width) / from_width), x_taps);
  set_x_taps(x_taps);
  area_taps(from_height, to_height, 1. / (double(to_height) / from_height), y_taps);
  gray_rows.assign(std::size_t(kBlockRows) * from_width, 0);
  interleaved.assign(std::size_t(kBlockRows) * from_width, 0.f);
  block_sums.assign(std::size_t(kBlockRows) * to_width, 0.f);
  column_sum.assign(std::size_t(to_width), 0.f);
}

// Gray conversion and the area tables in one pass, each destination row
// rounded half to even and saturated as cv::resize does for 8-bit pixels.
// The colour is measured on each source row as it is made gray; a row the
// area tables would not take (none does for a shrink, but it costs nothing to
// be sure) is measured alone, so every row counts once.
uint64_t Preprocessor::fused_area(const detail::Pixels& p, uint8_t* out) {
  const ImageView& v = p.view;
  uint64_t colour = 0;
  int measured = 0;  // the rows before it are in `colour`
  const auto measure_up_to = [&](int row) {
    for (; measured < row; ++measured)
      if (v.channels >= 3)
        colour += colour_and_gray(v.data + v.stride * std::size_t(measured), v.width, v.channels, 0, 2, nullptr);
  };
  area_rows(
      [&](int s, uint8_t* scratch) {
        measure_up_to(s);
        colour += gray(p, s, scratch);
        measured = s + 1;
        return scratch;
      },
      [&](int d, const float* sums, const float* row, float beta) {
        round_row(sums, row, beta, width, out + std::size_t(d) * width);
      });
  measure_up_to(v.height);
  return colour;
}

void Preprocessor::run(const detail::Pixels& p, int h, int w, Tensor8& out, const std::string& name) {
  const ImageView& v = p.view;
  if (!v.data || v.width <= 0 || v.height <= 0) throw image_error(name + ": image is empty (0x0)");
  if (h <= 0 || w <= 0 || h > 8192 || w > 8192)
    throw image_error(name + ": model input size " + std::to_string(w) + "x" + std::to_string(h) +
                      " out of range (1 to 8192)");
  out.height = h;
  out.width = w;
  out.source_height = v.height;
  out.source_width = v.width;
  out.pixels.resize(std::size_t(h) * w);
  const bool same_size = v.height == h && v.width == w;
  if (v.bytes_per_channel == 1 && (same_size || resize_uses_area_tables(v.height, v.width, h, w))) {
    // The colour from the rows as they are made gray.
    uint64_t colour = 0;
    if (same_size) {
      for (int y = 0; y < h; ++y) colour += gray(p, y, out.pixels.data() + std::size_t(y) * w);
    } else {
      set_sizes(v.height, v.width, h, w);
      colour = fused_area(p, out.pixels.data());
    }
    out.source_colour = colour_of(colour, v);
    return;
  }
  out.source_colour = mean_colour(v);
  // OpenCV itself: 16-bit -> 8-bit (value / 257, rounded), gray, resize.
  const int type = CV_MAKETYPE(v.bytes_per_channel == 2 ? CV_16U : CV_8U, v.channels);
  const cv::Mat view(v.height, v.width, type, const_cast<uint8_t*>(v.data), v.stride);
  cv::Mat eight = view;
  if (v.bytes_per_channel == 2) view.convertTo(eight, CV_8U, 1.0 / 257.0);
  cv::Mat gray;
  switch (eight.channels()) {
    case 1: gray = eight; break;
    case 3: cv::cvtColor(eight, gray, p.rgb_order ? cv::COLOR_RGB2GRAY : cv::COLOR_BGR2GRAY); break;
    case 4: cv::cvtColor(eight, gray, p.rgb_order ? cv::COLOR_RGBA2GRAY : cv::COLOR_BGRA2GRAY); break;
  }
  cv::Mat sized(h, w, CV_8UC1, out.pixels.data());
  if (same_size) gray.copyTo(sized);
  else cv::resize(gray, sized, cv::Size(w, h), 0, 0, cv::INTER_AREA);
}

namespace {

// The checks on pixels handed in directly (preprocess); decoded files were
// checked from their header.
void check_view(const ImageView& image) {
  if (!image.data || image.width <= 0 || image.height <= 0) throw image_error("image view is empty");
  if (image.bytes_per_channel != 1 && image.bytes_per_channel != 2)
    throw image_error("image view: " + std::to_string(image.bytes_per_channel) + " bytes per channel not supported (1 or 2)");
  if (image.channels != 1 && image.channels != 3 && image.channels != 4)
    throw image_error("image view: " + std::to_string(image.channels) + " channels not supported (1, 3 or 4)");
  const uint64_t row = uint64_t(image.width) * uint64_t(image.channels) * uint64_t(image.bytes_per_channel);
  if (row * uint64_t(image.height) > limits::kDecodeBytes)
    throw image_error("image view: " + std::to_string(image.width) + "x" + std::to_string(image.height) + " pixels (" +
                      std::to_string(row * uint64_t(image.height)) + " bytes) is too large (limit " +
                      std::to_string(limits::kDecodeBytes) + " bytes)");
  const std::size_t stride = image.stride ? image.stride : std::size_t(row);
  if (stride < row) throw image_error("image view: row stride " + std::to_string(stride) + " is shorter than a row (" + std::to_string(row) + " bytes)");
}

// Buffers of a large image are freed after it rather than kept for the next.
constexpr std::size_t kKeptBufferBytes = std::size_t(4) << 20;

}  // namespace

Tensor8 preprocess(const ImageView& image, int height, int width) {
  check_view(image);
  ImageView view = image;
  if (!view.stride) view.stride = std::size_t(view.width) * view.channels * view.bytes_per_channel;
  Preprocessor preprocessor;
  Tensor8 out;
  preprocessor.run({view, false}, height, width, out, "image view");
  return out;
}

void area_shrink(const uint8_t* pixels, int height, int width, int to_height, int to_width, std::vector<float>& out) {
  if (to_height <= 0 || to_width <= 0 || to_height > height || to_width > width)
    throw error("area_shrink: " + std::to_string(width) + "x" + std::to_string(height) + " to " +
                std::to_string(to_width) + "x" + std::to_string(to_height) + " is not a shrink");
  out.resize(std::size_t(to_height) * to_width);
  if (!resize_uses_area_tables(height, width, to_height, to_width)) {
    // A shrink by whole numbers: OpenCV's resizeAreaFast, the float sum of
    // each cell (whole numbers, so exact in any order) times the float 1 / area.
    const int cell_y = height / to_height, cell_x = width / to_width;
    const float scale = 1.f / float(cell_y * cell_x);
    std::vector<uint32_t> columns(static_cast<std::size_t>(width));  // a cell row's column sums
    for (int d = 0; d < to_height; ++d) {
      std::fill(columns.begin(), columns.end(), 0u);
      for (int y = d * cell_y; y < (d + 1) * cell_y; ++y) {
        const uint8_t* row = pixels + std::size_t(y) * width;
        for (int x = 0; x < width; ++x) columns[x] += row[x];
      }
      float* o = out.data() + std::size_t(d) * to_width;
      for (int x = 0; x < to_width; ++x) {
        uint32_t sum = 0;
        for (int i = x * cell_x; i < (x + 1) * cell_x; ++i) sum += columns[i];
        o[x] = float(sum) * scale;
      }
    }
    return;
  }
  thread_local Preprocessor tables;  // one thread's, kept while the sizes stay
  tables.set_sizes(height, width, to_height, to_width);
  tables.area_rows([&](int s, uint8_t*) { return pixels + std::size_t(s) * width; },
                   [&](int d, const float* sums, const float* row, float beta) {
                     float* o = out.data() + std::size_t(d) * to_width;
                     for (int x = 0; x < to_width; ++x) o[x] = sums ? sums[x] + beta * row[x] : beta * row[x];
                   });
}

DecodedImage decode_image(std::span<const uint8_t> bytes, const std::string& name, int target_height,
                          int target_width) {
  detail::DecodeBuffers buffers;
  const detail::Pixels p = detail::decode_builtin(bytes, name, {target_height, target_width}, buffers);
  const ImageView& v = p.view;
  DecodedImage out{v.width, v.height, v.channels, v.bytes_per_channel, {}};
  const std::size_t row = std::size_t(v.width) * v.channels * v.bytes_per_channel;
  out.pixels.resize(row * v.height);
  for (int y = 0; y < v.height; ++y) {
    uint8_t* o = out.pixels.data() + row * y;
    std::memcpy(o, v.data + v.stride * y, row);
    if (p.rgb_order)  // to OpenCV's B, G, R order (8-bit only: the fast PNG path's)
      for (std::size_t x = 0; x < row; x += std::size_t(v.channels)) std::swap(o[x], o[x + 2]);
  }
  return out;
}

struct ImageLoader::Buffers {
  std::vector<uint8_t> file;
  detail::DecodeBuffers decode;
  Preprocessor preprocessor;
};

ImageLoader::ImageLoader() : buffers_(std::make_unique<Buffers>()) {}
ImageLoader::~ImageLoader() = default;

void ImageLoader::load(const fs::path& path, int height, int width, Tensor8& out) {
  const std::string& name = path.native();  // errors name the file; no copy per image (POSIX paths are strings)
  std::string reason;
  if (!limits::read_file_into(path, limits::kImageFileBytes, buffers_->file, reason))
    throw image_error(name + ": " + reason);
  const detail::Pixels pixels = detail::decode_builtin(buffers_->file, name, {height, width}, buffers_->decode);
  buffers_->preprocessor.run(pixels, height, width, out, name);
  if (buffers_->file.capacity() > kKeptBufferBytes) std::vector<uint8_t>().swap(buffers_->file);
  buffers_->decode.trim(kKeptBufferBytes);
}

Tensor8 load_image(const fs::path& path, int height, int width) {
  // Each thread's calls share one loader's buffers (trimmed after large images).
  thread_local ImageLoader loader;
  Tensor8 out;
  loader.load(path, height, width, out);
  return out;
}

bool has_image_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  static const char* known[] = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".pnm", ".webp"};
  return std::any_of(std::begin(known), std::end(known), [&](const char* k) { return ext == k; });
}

std::vector<fs::path> collect_images(const fs::path& root) {
  std::error_code ec;
  const auto status = fs::status(root, ec);
  if (!fs::exists(status)) throw error(root.string() + ": no such file or directory");
  if (!fs::is_directory(status)) return {root};
  std::vector<fs::path> files;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
  if (ec) throw error(root.string() + ": cannot list: " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw error(root.string() + ": cannot list: " + ec.message());
    if (it->is_regular_file(ec) && has_image_extension(it->path())) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace busi
