#include "plan.hpp"

#include <algorithm>
#include <climits>
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

std::pair<int64_t, int64_t> conv_step::accumulator_range(int o) const {
  const std::size_t fan_in = layer->weights.size() / std::size_t(oc);
  int64_t lo = 0, hi = 0;
  for (std::size_t i = 0; i < fan_in; ++i) {
    const int w = layer->weights[o * fan_in + i];
    (w < 0 ? lo : hi) += w;
  }
  return {lo * input_max, hi * input_max};
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

int level_arithmetic::level(int32_t v, int per) const {
  const int16_t x = int16_t(uint16_t(uint32_t(int32_t(k) * v + c)));  // vpmullw, vpaddw: mod 2^16
  return std::clamp(((int32_t(x) * m) >> 16) >> s, 0, per);          // vpmulhw, vpsravw, vpmaxsw, vpminsw
}

namespace {

// Whether `f` gives the count of thresholds <= acc at every acc in [lo, hi].
bool level_arithmetic_holds(const level_arithmetic& f, const int32_t* thresholds, int per, int scale, int64_t lo,
                            int64_t hi) {
  int count = 0;
  for (int64_t acc = lo; acc <= hi; ++acc) {
    while (count < per && thresholds[count] <= acc) ++count;
    if (f.level(int32_t(scale * acc), per) != count) return false;
  }
  return true;
}

int64_t ceil_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? (a + b - 1) / b : -(-a / b);
}

}  // namespace

bool find_level_arithmetic(const int32_t* thresholds, int per, int scale, int64_t lo, int64_t hi,
                           level_arithmetic& out) {
  const int64_t reach = std::max(-lo, hi);
  if (per < 1 || per > 15 || scale < 1 || lo > hi || scale * reach > 32767) return false;
  // Thresholds in (lo, hi] must be met exactly; those at or below lo are
  // always counted, those above hi never.
  int first = -1, last = -1, below = 0;
  for (int j = 0; j < per; ++j) {
    if (thresholds[j] <= lo) ++below;
    if (thresholds[j] > lo && thresholds[j] <= hi) {
      if (first < 0) first = j;
      last = j;
    }
  }
  if (first < 0) {  // one level over the whole range: k = 0, (c * 32) >> 16 = below
    const level_arithmetic f{0, int16_t(below * 2048), 32, 0};
    if (!level_arithmetic_holds(f, thresholds, per, scale, lo, hi)) return false;
    out = f;
    return true;
  }
  // With K = k * scale and D = 2^(16 + s), level >= j + 1 exactly when
  // K * acc + c >= q_j = ceil((j + 1) * D / m), so the form's threshold j is
  // ceil((q_j - c) / K): equal to thresholds[j] for c in
  // [u_j, u_j + K - 1], u_j = q_j - K t_j. The exact thresholds' intervals
  // meet only if max u_j - min u_j <= K - 1, so with r = D / m,
  // spread(r) = max - min of (j + 1) r - K t_j is at most K: a convex
  // condition, an interval of r found by ternary search and bisection. For
  // each k (the largest first: the finest offset) and s, the m of that
  // interval are checked exactly. The budget (~1 ms) bounds the plan time
  // for thresholds far from any form.
  int64_t budget = int64_t(1) << 20;
  for (int64_t k = 32767 / (scale * std::max<int64_t>(reach, 1)); k >= 1; --k) {
    const int64_t big_k = k * scale;
    double r_lo = 0, r_hi = 0;  // the r with spread(r) <= K (first < last)
    if (last > first) {
      if ((budget -= 180 * (last - first + 1)) < 0) return false;  // the 180 spreads below
      auto spread = [&](double r) {
        double top = -1e300, bottom = 1e300;
        for (int j = first; j <= last; ++j) {
          const double u = (j + 1) * r - double(big_k) * thresholds[j];
          top = std::max(top, u);
          bottom = std::min(bottom, u);
        }
        return top - bottom;
      };
      double a = 0, b = double(big_k) * double(hi - lo + 2);
      for (int i = 0; i < 60; ++i) {
        const double m1 = a + (b - a) / 3, m2 = b - (b - a) / 3;
        if (spread(m1) < spread(m2))
          b = m2;
        else
          a = m1;
      }
      const double best = (a + b) / 2;
      if (spread(best) > double(big_k)) continue;
      auto edge = [&](double inside, double outside) {  // spread(inside) <= K < spread(outside)
        for (int i = 0; i < 30; ++i) {
          const double mid = (inside + outside) / 2;
          (spread(mid) <= double(big_k) ? inside : outside) = mid;
        }
        return outside;
      };
      r_lo = spread(0) <= double(big_k) ? 0 : edge(best, 0);
      r_hi = edge(best, double(big_k) * double(hi - lo + 2) * 2);
    }
    bool too_wide = false;
    for (int s = 0; s <= 15 && !too_wide; ++s) {
      const int64_t d = int64_t(1) << (16 + s);
      int64_t m_lo = 1, m_hi = 32767;
      if (last > first) {  // m = D / r
        m_lo = std::max<int64_t>(m_lo, int64_t(double(d) / r_hi) - 1);
        if (r_lo > 0) m_hi = std::min<int64_t>(m_hi, int64_t(double(d) / r_lo) + 1);
      } else {  // one exact threshold: the form's others must leave [lo, hi]
        m_hi = std::min<int64_t>(m_hi, d / (big_k * (hi - lo + 2)) + 1);
        m_lo = std::max<int64_t>(m_lo, m_hi - 64);
      }
      for (int64_t m = m_lo; m <= m_hi && !too_wide; ++m) {
        if ((budget -= per) < 0) return false;
        int64_t c_lo = INT64_MIN, c_hi = INT64_MAX;  // what the thresholds allow
        for (int j = 0; j < per && c_lo <= c_hi; ++j) {
          const int64_t q = ceil_div((j + 1) * d, m);
          if (thresholds[j] <= lo) {
            c_lo = std::max(c_lo, q - big_k * lo);
          } else if (thresholds[j] > hi) {
            c_hi = std::min(c_hi, q - big_k * hi - 1);
          } else {
            c_lo = std::max(c_lo, q - big_k * thresholds[j]);
            c_hi = std::min(c_hi, q - big_k * thresholds[j] + big_k - 1);
          }
        }
        if (c_lo > c_hi) continue;
        // k * v + c must stay within int16 over [lo, hi]; when the c the
        // thresholds want leave it, the other m and s (about the same r) do
        // too: a smaller k.
        too_wide = c_lo > 32767 - big_k * hi || c_hi < -32768 - big_k * lo;
        c_lo = std::max(c_lo, -32768 - big_k * lo);
        c_hi = std::min(c_hi, 32767 - big_k * hi);
        if (c_lo > c_hi) continue;
        const level_arithmetic f{int16_t(k), int16_t(c_lo + (c_hi - c_lo) / 2), int16_t(m), int16_t(s)};
        if (level_arithmetic_holds(f, thresholds, per, scale, lo, hi)) {
          out = f;
          return true;
        }
      }
    }
  }
  return false;
}

bool channel_level_arithmetic(const conv_step& s, int o, int scale, level_arithmetic& out) {
  if (s.logits) return false;
  const auto [lo, hi] = s.accumulator_range(o);
  return find_level_arithmetic(s.layer->channel_thresholds(o), s.thresholds_per_channel(), scale, lo, hi, out);
}

bool step_level_arithmetic(const conv_step& s, int scale, std::vector<level_arithmetic>& out) {
  out.clear();
  for (int o = 0; o < s.oc; ++o) {
    level_arithmetic f;
    if (!channel_level_arithmetic(s, o, scale, f)) break;
    out.push_back(f);
  }
  if (int(out.size()) == s.oc) return true;
  out.clear();
  return false;
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
