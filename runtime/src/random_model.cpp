#include "busi/random_model.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace busi {
namespace {

// Portable draws from mt19937_64 (its raw output is specified by the standard).
struct Rng {
  std::mt19937_64 engine;
  explicit Rng(uint64_t seed) : engine(seed) {}
  int uniform_int(int lo, int hi) { return lo + int(engine() % uint64_t(hi - lo + 1)); }  // [lo, hi]
  double uniform01() { return double(engine() >> 11) * (1.0 / 9007199254740992.0); }
};

}  // namespace

RandomModelSpec paper_network_spec(int weight_bits, int act_bits) {
  RandomModelSpec spec;
  spec.weight_bits = weight_bits;
  spec.act_bits = act_bits;
  return spec;
}

Model random_model(const RandomModelSpec& spec, uint64_t seed) {
  Rng rng(seed);
  Model model;
  model.name = "random-w" + std::to_string(spec.weight_bits) + "a" + std::to_string(spec.act_bits) + "-seed" +
               std::to_string(seed);
  model.kind = spec.kind;
  for (int c = 0; c < spec.num_classes; ++c)
    model.class_names.push_back(spec.num_classes == 3 ? std::vector<std::string>{"normal", "benign", "malignant"}[c]
                                                      : "class" + std::to_string(c));
  model.input = spec.input;
  model.preprocess = "gray-area-v1";
  model.logit_scale = 0.01f;
  model.provenance_json = R"({"generator":"busi::random_model","seed":)" + std::to_string(seed) + "}";

  const bool quantized = spec.kind == ModelKind::quantized;
  const int wmax = quantized ? (1 << (spec.weight_bits - 1)) - 1 : 0;
  Shape shape = spec.input;
  int in_max = 255;  // largest input value of the next layer

  auto add_weights_layer = [&](LayerType type, int in, int out, int kernel, bool last) {
    Layer layer;
    layer.type = type;
    layer.in_channels = in;
    layer.out_channels = out;
    layer.kernel = kernel;
    const std::size_t fan_in = std::size_t(in) * kernel * kernel;
    const std::size_t count = fan_in * out;
    if (quantized) {
      layer.weight_bits = spec.weight_bits;
      layer.weights.resize(count);
      for (auto& w : layer.weights) w = int8_t(rng.uniform_int(-wmax, wmax));
      if (!last) {
        layer.act_bits = spec.act_bits;
        const int per = layer.thresholds_per_channel();
        // Typical |acc| of a sum of fan_in products of zero-mean weights: sqrt(fan_in)*wmax*in_max/2.
        const double spread = std::sqrt(double(fan_in)) * wmax * in_max * 0.5 + 1;
        for (int oc = 0; oc < out; ++oc) {
          std::vector<int32_t> t(per);
          for (auto& v : t) v = int32_t(std::lround((rng.uniform01() * 2 - 0.5) * spread));
          std::sort(t.begin(), t.end());
          layer.thresholds.insert(layer.thresholds.end(), t.begin(), t.end());
        }
      }
    } else {
      layer.weight_bits = 32;
      const double scale = std::sqrt(2.0 / double(fan_in)) / (in_max == 255 ? 255.0 : 1.0);
      layer.float_weights.resize(count);
      for (auto& w : layer.float_weights) w = float((rng.uniform01() * 2 - 1) * std::sqrt(3.0) * scale);
      layer.float_bias.resize(out);
      for (auto& b : layer.float_bias) b = float((rng.uniform01() * 2 - 1) * 0.1);
      layer.act_bits = last ? 0 : 32;
    }
    model.layers.push_back(std::move(layer));
    in_max = quantized ? (1 << spec.act_bits) - 1 : 1;
  };

  for (const auto& conv : spec.convs) {
    add_weights_layer(LayerType::conv, shape.channels, conv.out_channels, conv.kernel, false);
    shape = {conv.out_channels, shape.height - conv.kernel + 1, shape.width - conv.kernel + 1};
    if (conv.pool) {
      Layer pool;
      pool.type = LayerType::maxpool;
      pool.pool = conv.pool;
      model.layers.push_back(pool);
      shape = {shape.channels, shape.height / conv.pool, shape.width / conv.pool};
    }
  }
  int features = int(shape.size());
  for (int width : spec.dense) {
    add_weights_layer(LayerType::dense, features, width, 1, false);
    features = width;
  }
  add_weights_layer(LayerType::dense, features, spec.num_classes, 1, true);
  model.validate(model.name);
  return model;
}

std::vector<uint8_t> random_pixels(std::size_t count, uint64_t seed) {
  Rng rng(seed);
  std::vector<uint8_t> out(count);
  for (auto& p : out) p = uint8_t(rng.engine() & 0xFF);
  return out;
}

}  // namespace busi
