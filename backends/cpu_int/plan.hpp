#pragma once
// The shape-level plan every SIMD engine runs, built once from a validated
// Model (plan.cpp, compiled without ISA flags).
//
// Tensors between steps are HWC uint8 (channels innermost), so one kernel row
// of a conv window, kw pixels x in_c channels, is kw*in_c contiguous bytes. A
// fast path reads that row in 4-byte groups (u8 x s8 dot products of 4 terms:
// vpdpbusd, vpmaddubsw+vpmaddwd, vmlal); weights past the row's end are zero,
// so the up to 3 bytes read past it only need to exist (buffers carry slack).
//
// A step is a conv or dense layer with the max-pools after it fused in: the
// level of an accumulator is non-decreasing in it, so the max of the levels of
// a window is the level of its largest accumulator and pooling accumulators
// then thresholding once is exact. Consecutive pools p1, p2 are one pool p1*p2
// (floor(floor(n/p1)/p2) = floor(n/(p1*p2)), windows nest). A dense layer is a
// conv whose window is its whole input (weights re-ordered from CHW to HWC).
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "busi/model.hpp"

namespace busi::cpu_int {

struct conv_step {
  const Layer* layer = nullptr;  // the conv or dense layer
  int in_h = 0, in_w = 0, in_c = 0;
  int kh = 0, kw = 0;                // kernel window (dense: the whole input)
  int out_h = 0, out_w = 0, oc = 0;  // accumulators, before pooling
  int pool = 1;                      // fused max-pool window and stride (1: none)
  int pooled_h = 0, pooled_w = 0;    // output size after pooling
  int groups = 0;                    // 4-byte groups per kernel row: ceil(kw * in_c / 4)
  int input_max = 0;                 // largest input value: 2^input_bits - 1
  bool logits = false;               // the last layer: int32 CHW logits, no thresholds
  // Byte offsets of a pool window's pool*pool accumulator positions from its
  // first one, row-major (one 0 when pool is 1).
  std::vector<std::size_t> window_offsets;
  // Byte offsets of the window's 4-byte groups from its first pixel, kernel
  // row by kernel row: the order of the packed weights.
  std::vector<uint32_t> group_offsets;

  std::size_t in_row_bytes() const { return std::size_t(in_w) * in_c; }
  int thresholds_per_channel() const { return layer->thresholds_per_channel(); }
  // The weight of output o for byte k = kx*in_c + ic of kernel row ky; 0 for k past the row.
  int8_t weight(int ky, int k, int o) const;
  // Largest |weight| of the layer.
  int max_abs_weight() const;
  // Largest sum of |weight| over one output's fan-in: |acc| <= input_max times it.
  int64_t max_abs_channel_sum() const;
  // The least and greatest accumulator of output o over inputs in [0, input_max]
  // (input_max times the sums of its negative and positive weights).
  std::pair<int64_t, int64_t> accumulator_range(int o) const;
};

struct plan {
  // Out of line (plan.cpp) so the ISA files, compiled with their own -m
  // flags, emit no shared (weak) copy of it for the linker to pick.
  ~plan();

  std::vector<conv_step> steps;
  // steps[i] reads buffer i and writes buffer i+1 (the last writes the logits);
  // buffer 0 holds a copy of the input pixels. Sizes include read slack.
  std::vector<std::size_t> buffer_bytes;
  std::size_t logit_count = 0;
};

// Read slack at the end of every activation buffer: the widest over-reads,
// 64-byte loads at a group of the last row (engine_avx512vnni.cpp; up to 65
// bytes past it in its single_channel kernel), stay within it.
constexpr std::size_t buffer_slack = 128;

// Checks the model (check_model) and plans it.
plan make_plan(const Model& model);

// One name per step for profiles: the layer's type and index in the model,
// with the pool fused into it ("conv 0 + pool 2").
std::vector<std::string> step_names(const plan& p);

// Weights of a step packed for 4-byte-group dot products with `lanes` output
// channels per vector: [ky][group][oc_pad][4] int8, oc_pad = oc rounded up to
// `lanes`, padding zero. `map` transforms each weight (e.g. to split it).
// Defined in plan.cpp, compiled without ISA flags: a template here would be
// instantiated by ISA files with different flags and merged by the linker.
std::vector<int8_t> pack_groups(const conv_step& s, int lanes, int8_t (*map)(int8_t));

// Winograd F(2x2, 3x3) over the integers, which the fast paths use for a 3x3
// conv followed by a 2x2 pool: with B, G, A the usual matrices and G' = 2G
// (integer), 4 * acc = A^T [sum_ic (G' g G'^T) . (B^T d B)] A exactly for each
// 4x4 input tile d, whose 2x2 outputs are one pooling window: 16 products per
// tile and input channel instead of 36. The B^T d B and A^T M A halves are the
// ISA files' (each picks its number ranges); this is the step's shape test
// and its transformed weights.
bool winograd_shape(const conv_step& s);
// (G' g G'^T)[xi / 4][xi % 4] for input channel ic and output o (|value| <= 9
// times the largest |weight|).
int winograd_weight(const conv_step& s, int xi, int ic, int o);

// The numbers of Winograd on bytes (the x86 paths): transformed inputs
// B^T d B shifted by offset = 2 * input_max into unsigned bytes (they lie in
// [-2m, 4m]), transformed weights as int8, products summed mod 2^16 (4 * acc
// must fit int16), the offset's share subtracted after the output transform.
struct winograd_bytes {
  int groups = 0;  // 4-byte groups of input channels: in_c / 4
  int offset = 0;
  // [xi][group][oc_pad][4] int8, oc_pad = oc rounded up to `lanes`.
  std::vector<int8_t> weights;
  // What the offset adds to 4 * acc at pooled position pos = 2 * py + px of a
  // tile, mod 2^16: [o][pos].
  std::vector<int16_t> corrections;
  // 4 * threshold - 1, clamped to [-4 bound - 1, 4 bound] first (the same
  // counts for every reachable 4 * acc), so level = count of 4 acc > it: [o][t].
  std::vector<int16_t> thresholds;
  // The corrections as [vector][pos][lane] and the thresholds as
  // [vector][t][lane] for an ISA whose int16 vectors hold `lanes` lanes, lane
  // l of vector v holding channel v * channels + channel_of(l) (padding
  // channels: correction 0, threshold -1).
  void lane_tables(int oc, int per, int vectors, int channels, int lanes, int (*channel_of)(int lane),
                   std::vector<int16_t>& lane_corrections, std::vector<int16_t>& lane_thresholds) const;
};
// Fills `out` and returns true when the step has the Winograd shape and its
// numbers fit as above (in_c a multiple of 4); false leaves the step to the
// direct kernels.
bool pack_winograd_bytes(const conv_step& s, int lanes, winograd_bytes& out);

// A channel's level (the count of its thresholds <= acc) as int16 arithmetic
// on v = scale * acc, for layers quantized uniformly with a BatchNorm folded
// in, whose thresholds are nearly an arithmetic sequence: 6 vector
// instructions (vpmullw, vpaddw, vpmulhw, vpsravw, vpmaxsw, vpminsw) where a
// binary search of 15 thresholds takes ~19:
//   level = clamp((((k * v + c) mod 2^16) * m >> 16) >> s, 0, per),
// k * v + c within int16 (so the wrapping products and sums are exact).
struct level_arithmetic {
  int16_t k = 0, c = 0, m = 0, s = 0;
  // The level as the vector instructions compute it.
  int level(int32_t v, int per) const;
};
// Searches for a form whose level equals the count of thresholds[0 .. per)
// <= acc for every acc in [lo, hi] (with v = scale * acc); the one it returns
// was checked at every one of those accumulators, so it is exact by
// construction. false when none is found within a bounded search (the
// thresholds are not close enough to an arithmetic sequence, or the range
// times scale does not fit int16).
bool find_level_arithmetic(const int32_t* thresholds, int per, int scale, int64_t lo, int64_t hi,
                           level_arithmetic& out);
// Output channel o's form over its accumulator_range(), or false when it
// has none (or the step more than 15 thresholds per channel, or none).
bool channel_level_arithmetic(const conv_step& s, int o, int scale, level_arithmetic& out);
// Every output channel's form, or false (and `out` empty) when some channel
// has none: the step keeps its threshold search.
bool step_level_arithmetic(const conv_step& s, int scale, std::vector<level_arithmetic>& out);

// Thresholds as [t][oc_pad] int32 so one vector load gives threshold t of
// `lanes` channels; padding channels never store their level.
std::vector<int32_t> pack_thresholds(const conv_step& s, int lanes);

}  // namespace busi::cpu_int
