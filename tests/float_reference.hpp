#pragma once
// A plain scalar float reference of a float model package, for the suites that
// check the float backend (cpu_ref_test, the conformance suite).
#include <algorithm>
#include <cmath>
#include <vector>

#include "busi/model.hpp"

namespace busi::test {

// The obvious float network: valid convs, floor max-pools, dense layers over
// the CHW-flattened tensor, ReLU on every hidden layer; double accumulators.
inline std::vector<double> float_reference_logits(const busi::Model& model, const std::vector<uint8_t>& pixels) {
  std::vector<double> x(pixels.begin(), pixels.end());
  busi::Shape s = model.input;
  for (const auto& layer : model.layers) {
    std::vector<double> y;
    if (layer.type == busi::LayerType::maxpool) {
      const int p = layer.pool, oh = s.height / p, ow = s.width / p;
      for (int c = 0; c < s.channels; ++c)
        for (int i = 0; i < oh; ++i)
          for (int j = 0; j < ow; ++j) {
            double m = -INFINITY;
            for (int a = 0; a < p; ++a)
              for (int b = 0; b < p; ++b)
                m = std::max(m, x[(std::size_t(c) * s.height + i * p + a) * s.width + j * p + b]);
            y.push_back(m);
          }
      s = {s.channels, oh, ow};
    } else if (layer.type == busi::LayerType::conv) {
      const int k = layer.kernel, oh = s.height - k + 1, ow = s.width - k + 1;
      for (int o = 0; o < layer.out_channels; ++o)
        for (int i = 0; i < oh; ++i)
          for (int j = 0; j < ow; ++j) {
            double acc = layer.float_bias[o];
            for (int c = 0; c < s.channels; ++c)
              for (int a = 0; a < k; ++a)
                for (int b = 0; b < k; ++b)
                  acc += double(layer.float_weights[((std::size_t(o) * s.channels + c) * k + a) * k + b]) *
                         x[(std::size_t(c) * s.height + i + a) * s.width + j + b];
            y.push_back(layer.act_bits ? std::max(acc, 0.0) : acc);
          }
      s = {layer.out_channels, oh, ow};
    } else {
      for (int o = 0; o < layer.out_channels; ++o) {
        double acc = layer.float_bias[o];
        for (std::size_t i = 0; i < x.size(); ++i) acc += double(layer.float_weights[o * x.size() + i]) * x[i];
        y.push_back(layer.act_bits ? std::max(acc, 0.0) : acc);
      }
      s = {layer.out_channels, 1, 1};
    }
    x = std::move(y);
  }
  return x;
}

}  // namespace busi::test
