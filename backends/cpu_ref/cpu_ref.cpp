// cpu_ref: the float baseline. Runs a float model package (BatchNorm already
// folded into each conv/dense layer's weights and bias, 1/255 folded into the
// first layer) on oneDNN: convolutions and inner products with ReLU as a
// post-op, max-pools, in whatever memory layouts oneDNN prefers for this CPU.
// Prepared once at construction (primitives created, weights reordered);
// classify() only converts the pixels to float and executes.
//
// Threads: oneDNN (Debian's build uses OpenMP) runs on OMP_NUM_THREADS threads,
// all cores by default; set OMP_NUM_THREADS=1 to compare with one-thread backends.
#include <algorithm>
#include <cstring>
#include <set>
#include <sstream>

#include <oneapi/dnnl/dnnl.hpp>

#include "busi/backend.hpp"
#include "busi/classifier.hpp"
#include "busi/error.hpp"

namespace busi {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

memory::dims chw_dims(const Shape& s) { return {1, s.channels, s.height, s.width}; }

std::string isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    default:
      return "isa " + std::to_string(static_cast<int>(isa));
  }
}

class cpu_ref_classifier final : public Classifier {
 public:
  explicit cpu_ref_classifier(std::shared_ptr<const Model> model)
      : model_(std::move(model)), engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    try {
      build();
    } catch (const dnnl::error& e) {
      throw error("cpu_ref: oneDNN cannot run model '" + model_->name + "': " + e.what());
    }
  }

  std::string backend() const override { return "cpu_ref"; }
  std::string describe() const override { return description_; }
  const Model& model() const override { return *model_; }

 protected:
  // The model takes raw pixel values: its first layer holds the 1/255.
  void infer(std::span<const Tensor8> inputs, std::span<RawOutput> outputs) override {
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      float* pixels = static_cast<float*>(input_.get_data_handle());
      std::transform(inputs[i].pixels.begin(), inputs[i].pixels.end(), pixels, [](uint8_t v) { return float(v); });
      for (auto& step : steps_) step.primitive.execute(stream_, step.args);
      stream_.wait();
      const float* out = static_cast<const float*>(output_.get_data_handle());
      outputs[i].real_logits.assign(out, out + model_->num_classes());
    }
  }

 private:
  struct Step {
    dnnl::primitive primitive;
    std::unordered_map<int, memory> args;
  };

  // Returns `current` in layout `wanted`, adding a reorder step when they differ.
  memory in_layout(const memory& current, const memory::desc& wanted) {
    if (current.get_desc() == wanted) return current;
    memory converted(wanted, engine_);
    steps_.push_back({dnnl::reorder(current, converted), {{DNNL_ARG_FROM, current}, {DNNL_ARG_TO, converted}}});
    return converted;
  }

  // Weights are reordered once, now, into the layout the primitive chose.
  memory constant(const std::vector<float>& values, const memory::dims& dims, tag user_tag,
                  const memory::desc& wanted) {
    memory user({dims, dt::f32, user_tag}, engine_);
    std::memcpy(user.get_data_handle(), values.data(), values.size() * sizeof(float));
    if (user.get_desc() == wanted) return user;
    memory packed(wanted, engine_);
    dnnl::reorder(user, packed).execute(stream_, user, packed);
    stream_.wait();
    return packed;
  }

  void build() {
    const Model& m = *model_;
    if (m.input.channels != 1)
      throw error("cpu_ref: model '" + m.name + "' has " + std::to_string(m.input.channels) +
                  " input channels; the pixels are one gray channel");
    input_ = memory({chw_dims(m.input), dt::f32, tag::nchw}, engine_);
    memory current = input_;
    std::set<std::string> impls;
    for (std::size_t i = 0; i < m.layers.size(); ++i) {
      const Layer& layer = m.layers[i];
      const bool last = i + 1 == m.layers.size();
      // The logits are read in plain order; everything else may be blocked.
      const memory::desc dst_any = layer.type == LayerType::dense
                                       ? memory::desc({1, layer.out_channels}, dt::f32, last ? tag::nc : tag::any)
                                       : memory::desc(chw_dims(layer.output), dt::f32, last ? tag::nchw : tag::any);
      dnnl::primitive_attr attr;
      if (layer.type != LayerType::maxpool && layer.act_bits != 0) {
        dnnl::post_ops ops;
        ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
        attr.set_post_ops(ops);
      }
      const memory::desc bias_md({layer.out_channels}, dt::f32, tag::x);

      if (layer.type == LayerType::conv) {
        const memory::dims weight_dims = {layer.out_channels, layer.in_channels, layer.kernel, layer.kernel};
        const memory::desc src_any(chw_dims(layer.input), dt::f32, tag::any);
        const memory::desc weights_any(weight_dims, dt::f32, tag::any);
        dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                             src_any, weights_any, bias_md, dst_any, {1, 1}, {0, 0}, {0, 0});
        dnnl::convolution_forward::primitive_desc pd(desc, attr, engine_);
        const memory src = in_layout(current, pd.src_desc());
        memory dst(pd.dst_desc(), engine_);
        steps_.push_back({dnnl::convolution_forward(pd),
                          {{DNNL_ARG_SRC, src},
                           {DNNL_ARG_WEIGHTS, constant(layer.float_weights, weight_dims, tag::oihw, pd.weights_desc())},
                           {DNNL_ARG_BIAS, constant(layer.float_bias, {layer.out_channels}, tag::x, pd.bias_desc())},
                           {DNNL_ARG_DST, dst}}});
        impls.insert(pd.impl_info_str());
        current = dst;
      } else if (layer.type == LayerType::maxpool) {
        dnnl::pooling_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max,
                                         current.get_desc(), dst_any, {layer.pool, layer.pool},
                                         {layer.pool, layer.pool}, {0, 0}, {0, 0});
        dnnl::pooling_forward::primitive_desc pd(desc, engine_);
        memory dst(pd.dst_desc(), engine_);
        steps_.push_back({dnnl::pooling_forward(pd), {{DNNL_ARG_SRC, current}, {DNNL_ARG_DST, dst}}});
        current = dst;
      } else {
        // After a CHW tensor the weights are [out][C][H][W] (PyTorch's flatten
        // order); after a dense layer they are [out][in].
        const bool from_image = current.get_desc().data.ndims == 4;
        const Shape& in = layer.input;
        const memory::dims weight_dims = from_image ? memory::dims{layer.out_channels, in.channels, in.height, in.width}
                                                    : memory::dims{layer.out_channels, layer.in_channels};
        const memory::dims src_dims = from_image ? chw_dims(in) : memory::dims{1, layer.in_channels};
        const memory::desc src_any(src_dims, dt::f32, tag::any);
        const memory::desc weights_any(weight_dims, dt::f32, tag::any);
        dnnl::inner_product_forward::desc desc(dnnl::prop_kind::forward_inference, src_any, weights_any, bias_md,
                                               dst_any);
        dnnl::inner_product_forward::primitive_desc pd(desc, attr, engine_);
        const memory src = in_layout(current, pd.src_desc());
        memory dst(pd.dst_desc(), engine_);
        steps_.push_back({dnnl::inner_product_forward(pd),
                          {{DNNL_ARG_SRC, src},
                           {DNNL_ARG_WEIGHTS, constant(layer.float_weights, weight_dims,
                                                       from_image ? tag::oihw : tag::oi, pd.weights_desc())},
                           {DNNL_ARG_BIAS, constant(layer.float_bias, {layer.out_channels}, tag::x, pd.bias_desc())},
                           {DNNL_ARG_DST, dst}}});
        impls.insert(pd.impl_info_str());
        current = dst;
      }
    }
    if (current.get_desc().get_size() != m.num_classes() * sizeof(float))
      throw error("cpu_ref: model '" + m.name + "' ends in " + std::to_string(current.get_desc().get_size() / 4) +
                  " outputs for " + std::to_string(m.num_classes()) + " classes");
    output_ = current;

    const dnnl_version_t* v = dnnl_version();
    std::ostringstream d;
    d << "oneDNN " << v->major << "." << v->minor << "." << v->patch << " f32, "
      << isa_name(dnnl::get_effective_cpu_isa()) << " (";
    std::size_t n = 0;
    for (const auto& impl : impls) d << (n++ ? ", " : "") << impl;
    d << "), model " << m.name;
    description_ = d.str();
  }

  std::shared_ptr<const Model> model_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::vector<Step> steps_;
  memory input_, output_;
  std::string description_;
};

}  // namespace

std::unique_ptr<Classifier> make_cpu_ref_classifier(std::shared_ptr<const Model> model, const BackendSettings&) {
  return std::make_unique<cpu_ref_classifier>(std::move(model));
}

}  // namespace busi
