#include "reference.hpp"

#include <algorithm>
#include <sstream>

#include "busi/error.hpp"

namespace busi::cpu_int {

namespace {

// The level of one accumulator: how many of the channel's thresholds it reaches.
uint8_t threshold_level(int32_t acc, const int32_t* thresholds, int count) {
  int level = 0;
  for (int t = 0; t < count; ++t)
    if (acc >= thresholds[t]) ++level;
  return uint8_t(level);
}

// Valid, stride-1 convolution of a CHW tensor; acc is [oc][y][x]. Summed one
// weight at a time over the whole output plane (the same sums as the textbook
// loop order, in a cache-friendly order). The loader guarantees the worst-case
// sum fits in int32.
void conv(const Layer& layer, const uint8_t* in, int32_t* acc) {
  const Shape& is = layer.input;
  const Shape& os = layer.output;
  const int k = layer.kernel;
  std::fill(acc, acc + os.size(), 0);
  for (int oc = 0; oc < os.channels; ++oc)
    for (int ic = 0; ic < is.channels; ++ic)
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx) {
          const int32_t w = layer.weights[((std::size_t(oc) * is.channels + ic) * k + ky) * k + kx];
          for (int y = 0; y < os.height; ++y) {
            const uint8_t* a = in + (std::size_t(ic) * is.height + y + ky) * is.width + kx;
            int32_t* sum = acc + (std::size_t(oc) * os.height + y) * os.width;
            for (int x = 0; x < os.width; ++x) sum[x] += int32_t(a[x]) * w;
          }
        }
}

// Dense over the input flattened in C, H, W order; acc is [out].
void dense(const Layer& layer, const uint8_t* in, int32_t* acc) {
  const std::size_t n_in = layer.input.size();
  for (int o = 0; o < layer.out_channels; ++o) {
    int32_t sum = 0;
    for (std::size_t i = 0; i < n_in; ++i) sum += int32_t(in[i]) * int32_t(layer.weights[o * n_in + i]);
    acc[o] = sum;
  }
}

void maxpool(const Layer& layer, const uint8_t* in, uint8_t* out) {
  const Shape& is = layer.input;
  const Shape& os = layer.output;
  const int p = layer.pool;
  for (int c = 0; c < os.channels; ++c)
    for (int y = 0; y < os.height; ++y)
      for (int x = 0; x < os.width; ++x) {
        uint8_t m = 0;
        for (int dy = 0; dy < p; ++dy)
          for (int dx = 0; dx < p; ++dx)
            m = std::max(m, in[(std::size_t(c) * is.height + y * p + dy) * is.width + x * p + dx]);
        out[(std::size_t(c) * os.height + y) * os.width + x] = m;
      }
}

}  // namespace

void check_model(const Model& model) {
  // Shapes, bit widths and threshold order are Model::validate()'s job; this
  // only rejects what validate() accepts but cpu_int cannot run.
  const std::string origin = model.source.empty() ? model.name : model.source.string();
  if (model.kind != ModelKind::quantized)
    throw model_error(origin + ": cpu_int runs quantized models, this one is float");
  if (model.layers.empty() || !(model.layers.front().input == model.input))
    throw model_error(origin + ": layer shapes are not derived (call Model::validate() after building it)");
}

reference_engine::reference_engine(const Model& model) : model_(model) {
  check_model(model);
  std::size_t widest = 0;
  for (std::size_t i = 0; i < model.layers.size(); ++i) {
    widest = std::max(widest, model.layers[i].output.size());
    if (i + 1 < model.layers.size()) levels_.emplace_back(model.layers[i].output.size());
  }
  acc_.resize(widest);
}

void reference_engine::run(const uint8_t* pixels, int32_t* logits) {
  const uint8_t* in = pixels;
  for (std::size_t i = 0; i < model_.layers.size(); ++i) {
    const Layer& layer = model_.layers[i];
    const bool last = i + 1 == model_.layers.size();
    if (layer.type == LayerType::maxpool) {
      maxpool(layer, in, levels_[i].data());
    } else {
      int32_t* acc = last ? logits : acc_.data();
      if (layer.type == LayerType::conv)
        conv(layer, in, acc);
      else
        dense(layer, in, acc);
      if (!last) {
        const std::size_t plane = std::size_t(layer.output.height) * layer.output.width;
        for (std::size_t j = 0; j < layer.output.size(); ++j)
          levels_[i][j] =
              threshold_level(acc[j], layer.channel_thresholds(int(j / plane)), layer.thresholds_per_channel());
      }
    }
    if (!last) in = levels_[i].data();
  }
}

std::vector<int32_t> reference_logits(const Model& model, const Tensor8& input) {
  if (input.height != model.input.height || input.width != model.input.width ||
      input.pixels.size() != std::size_t(input.height) * input.width) {
    std::ostringstream msg;
    msg << "input is " << input.height << "x" << input.width << " (" << input.pixels.size()
        << " pixels); the model takes " << model.input.height << "x" << model.input.width;
    throw error(msg.str());
  }
  reference_engine engine(model);
  std::vector<int32_t> logits(model.layers.back().output.size());
  engine.run(input.pixels.data(), logits.data());
  return logits;
}

}  // namespace busi::cpu_int
