#include "plan.hpp"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "engine.hpp"

namespace busi::cpu_int {

plan::~plan() = default;

int8_t conv_step::weight(int ky, int k, int o) const {
  if (k >= kw * in_c) return 0;
  const int kx = k / in_c, ic = k % in_c;
  if (layer->type == LayerType::dense)  // [out][c][h][w] over the whole input
    return layer->weights[std::size_t(o) * in_c * in_h * in_w + (std::size_t(ic) * in_h + ky) * in_w + kx];
  return layer->weights[((std::size_t(o) * in_c + ic) * kh + ky) * kw + kx];  // OIHW
}

int conv_step::max_abs_weight() const {
  int m = 0;
  for (int8_t w : layer->weights) m = std::max(m, std::abs(int(w)));
  return m;
}

int64_t conv_step::max_abs_channel_sum() const {
  const std::size_t fan_in = layer->weights.size() / std::size_t(oc);
  int64_t m = 0;
  for (int o = 0; o < oc; ++o) {
    int64_t sum = 0;
    for (std::size_t i = 0; i < fan_in; ++i) sum += std::abs(int(layer->weights[o * fan_in + i]));
    m = std::max(m, sum);
  }
  return m;
}

plan make_plan(const Model& model) {
  check_model(model);
  plan p;
  p.buffer_bytes.push_back(model.input.size() + buffer_slack);
  for (std::size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    if (layer.type == LayerType::maxpool) {
      // validate() puts every max-pool after a conv (or another max-pool).
      conv_step& s = p.steps.back();
      s.pool *= layer.pool;
      s.pooled_h = layer.output.height;
      s.pooled_w = layer.output.width;
      p.buffer_bytes.back() = layer.output.size() + buffer_slack;
      s.window_offsets.clear();
      for (int dy = 0; dy < s.pool; ++dy)
        for (int dx = 0; dx < s.pool; ++dx)
          s.window_offsets.push_back(dy * s.in_row_bytes() + std::size_t(dx) * s.in_c);
      continue;
    }
    conv_step s;
    s.layer = &layer;
    s.in_h = layer.input.height;
    s.in_w = layer.input.width;
    s.in_c = layer.input.channels;
    const bool dense = layer.type == LayerType::dense;
    s.kh = dense ? s.in_h : layer.kernel;
    s.kw = dense ? s.in_w : layer.kernel;
    s.out_h = s.pooled_h = s.in_h - s.kh + 1;
    s.out_w = s.pooled_w = s.in_w - s.kw + 1;
    s.oc = layer.out_channels;
    s.groups = (s.kw * s.in_c + 3) / 4;
    s.input_max = (1 << layer.input_bits) - 1;
    s.logits = layer.act_bits == 0;
    s.window_offsets = {0};
    for (int ky = 0; ky < s.kh; ++ky)
      for (int g = 0; g < s.groups; ++g) s.group_offsets.push_back(uint32_t(ky * s.in_row_bytes() + 4 * g));
    p.steps.push_back(s);
    if (s.logits)
      p.logit_count = layer.output.size();
    else
      p.buffer_bytes.push_back(layer.output.size() + buffer_slack);
  }
  return p;
}

std::vector<std::string> step_names(const plan& p) {
  std::vector<std::string> names;
  for (const conv_step& s : p.steps) {
    std::ostringstream name;
    if (s.layer->type == LayerType::dense)
      name << "dense " << s.in_h * s.in_w * s.in_c << "->" << s.oc;
    else
      name << "conv " << s.kh << "x" << s.kw << " " << s.in_c << "->" << s.oc << " on " << s.in_h << "x" << s.in_w;
    if (s.pool > 1) name << ", pool " << s.pool;
    names.push_back(name.str());
  }
  return names;
}

std::vector<int8_t> pack_groups(const conv_step& s, int lanes, int8_t (*map)(int8_t)) {
  const int oc_pad = (s.oc + lanes - 1) / lanes * lanes;
  std::vector<int8_t> out(std::size_t(s.kh) * s.groups * oc_pad * 4, 0);
  std::size_t i = 0;
  for (int ky = 0; ky < s.kh; ++ky)
    for (int g = 0; g < s.groups; ++g)
      for (int o = 0; o < oc_pad; ++o, i += 4)
        for (int t = 0; t < 4 && o < s.oc; ++t) out[i + t] = map(s.weight(ky, 4 * g + t, o));
  return out;
}

bool winograd_shape(const conv_step& s) {
  return !s.logits && s.layer->type == LayerType::conv && s.kh == 3 && s.kw == 3 && s.pool == 2;
}

int winograd_weight(const conv_step& s, int xi, int ic, int o) {
  constexpr int g2[4][3] = {{2, 0, 0}, {1, 1, 1}, {1, -1, 1}, {0, 0, 2}};  // G' = 2G
  const int i = xi / 4, j = xi % 4;
  int u = 0;
  for (int ky = 0; ky < 3; ++ky)
    for (int kx = 0; kx < 3; ++kx) u += g2[i][ky] * s.weight(ky, kx * s.in_c + ic, o) * g2[j][kx];
  return u;
}

bool pack_winograd_bytes(const conv_step& s, int lanes, winograd_bytes& out) {
  const int64_t bound = int64_t(s.input_max) * s.max_abs_channel_sum();
  if (!winograd_shape(s) || 6 * s.input_max > 255 || 4 * bound > 32766 || s.in_c % 4 != 0) return false;
  constexpr int at[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};  // A^T
  const int oc_pad = (s.oc + lanes - 1) / lanes * lanes, groups = s.in_c / 4;
  std::vector<int8_t> weights(std::size_t(16) * groups * oc_pad * 4, 0);
  std::vector<int64_t> sums(std::size_t(16) * s.oc, 0);  // sum over ic of each transformed weight
  for (int o = 0; o < s.oc; ++o)
    for (int ic = 0; ic < s.in_c; ++ic)
      for (int xi = 0; xi < 16; ++xi) {
        const int u = winograd_weight(s, xi, ic, o);
        if (u < -128 || u > 127) return false;
        weights[((std::size_t(xi) * groups + ic / 4) * oc_pad + o) * 4 + ic % 4] = int8_t(u);
        sums[std::size_t(xi) * s.oc + o] += u;
      }
  out.groups = groups;
  out.offset = 2 * s.input_max;
  out.weights = std::move(weights);
  out.corrections.clear();
  out.thresholds.clear();
  const int per = s.thresholds_per_channel();
  for (int o = 0; o < s.oc; ++o) {
    for (int pos = 0; pos < 4; ++pos) {
      int64_t c = 0;
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) c += at[pos / 2][i] * at[pos % 2][j] * sums[std::size_t(4 * i + j) * s.oc + o];
      out.corrections.push_back(int16_t(uint16_t(uint64_t(c * out.offset))));
    }
    for (int t = 0; t < per; ++t)
      out.thresholds.push_back(
          int16_t(std::clamp<int64_t>(4 * int64_t(s.layer->channel_thresholds(o)[t]), -4 * bound, 4 * bound + 1) - 1));
  }
  return true;
}

void winograd_bytes::lane_tables(int oc, int per, int vectors, int channels, int lanes, int (*channel_of)(int lane),
                                 std::vector<int16_t>& lane_corrections, std::vector<int16_t>& lane_thresholds) const {
  lane_corrections.clear();
  lane_thresholds.clear();
  for (int v = 0; v < vectors; ++v)
    for (int pos = 0; pos < 4; ++pos)
      for (int l = 0; l < lanes; ++l) {
        const int o = v * channels + channel_of(l);
        lane_corrections.push_back(o < oc ? corrections[std::size_t(o) * 4 + pos] : 0);
      }
  for (int v = 0; v < vectors; ++v)
    for (int t = 0; t < per; ++t)
      for (int l = 0; l < lanes; ++l) {
        const int o = v * channels + channel_of(l);
        lane_thresholds.push_back(o < oc ? thresholds[std::size_t(o) * per + t] : -1);
      }
}

std::vector<int32_t> pack_thresholds(const conv_step& s, int lanes) {
  const int oc_pad = (s.oc + lanes - 1) / lanes * lanes;
  const int per = s.thresholds_per_channel();
  std::vector<int32_t> out(std::size_t(per) * oc_pad, 0);
  for (int t = 0; t < per; ++t)
    for (int o = 0; o < s.oc; ++o) out[std::size_t(t) * oc_pad + o] = s.layer->channel_thresholds(o)[t];
  return out;
}

}  // namespace busi::cpu_int
