// armnn_probe: the float network (models/busi-float.bqnn) built layer by layer
// through Arm NN's C++ graph API (armnn::INetwork), optimized for one Arm NN
// backend and run REPEATS times on one image, so that count-insns.sh can count
// the instructions of one inference under qemu-arm as it does for cpu_int
// (insn_probe.cpp). The logits are checked against the plain float reference
// (tests/float_reference.hpp) so a wrongly built graph cannot be counted.
//   armnn_probe BACKEND REPEATS IMAGE [MODEL]     (BACKEND: CpuRef, CpuAcc, ...)
// Debian 12's armhf Arm NN (20.08) ships the CpuRef backend as a dynamic
// backend; its folder is the compiled-in default unless ARMNN_BACKENDS_PATH
// names another.
#include <armnn/ArmNN.hpp>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "../../tests/float_reference.hpp"
#include "busi/error.hpp"
#include "busi/image.hpp"
#include "busi/model.hpp"

namespace {

armnn::TensorInfo float_tensor(std::vector<unsigned> dims) {
  return armnn::TensorInfo(armnn::TensorShape(unsigned(dims.size()), dims.data()), armnn::DataType::Float32);
}

unsigned u(int v) { return unsigned(v); }

// The network of a float Model, NCHW like the model's own layout: conv (OIHW
// weights, bias) + ReLU, max-pool (floor), fully connected over the CHW-flattened
// tensor ([out][in] weights, hence m_TransposeWeightMatrix) + ReLU, no ReLU
// after the last layer.
armnn::INetworkPtr build_network(const busi::Model& model) {
  armnn::INetworkPtr net = armnn::INetwork::Create();
  armnn::IConnectableLayer* previous = net->AddInputLayer(0, "pixels");
  previous->GetOutputSlot(0).SetTensorInfo(float_tensor({1, 1, u(model.input.height), u(model.input.width)}));
  auto connect = [&](armnn::IConnectableLayer* next, const busi::Shape& out, bool flat) {
    previous->GetOutputSlot(0).Connect(next->GetInputSlot(0));
    next->GetOutputSlot(0).SetTensorInfo(flat ? float_tensor({1, u(out.channels)})
                                              : float_tensor({1, u(out.channels), u(out.height), u(out.width)}));
    previous = next;
  };
  armnn::ActivationDescriptor relu;
  relu.m_Function = armnn::ActivationFunction::ReLu;
  for (std::size_t i = 0; i < model.layers.size(); ++i) {
    const busi::Layer& layer = model.layers[i];
    const std::string name = "layer" + std::to_string(i);
    const bool dense = layer.type == busi::LayerType::dense;
    if (layer.type == busi::LayerType::maxpool) {
      armnn::Pooling2dDescriptor pool;
      pool.m_PoolType = armnn::PoolingAlgorithm::Max;
      pool.m_PoolWidth = pool.m_PoolHeight = pool.m_StrideX = pool.m_StrideY = u(layer.pool);
      pool.m_OutputShapeRounding = armnn::OutputShapeRounding::Floor;
      pool.m_DataLayout = armnn::DataLayout::NCHW;
      connect(net->AddPooling2dLayer(pool, name.c_str()), layer.output, false);
      continue;
    }
    const armnn::ConstTensor bias(float_tensor({u(layer.out_channels)}), layer.float_bias.data());
    if (dense) {
      armnn::FullyConnectedDescriptor fc;
      fc.m_BiasEnabled = true;
      fc.m_TransposeWeightMatrix = true;
      const armnn::ConstTensor weights(float_tensor({u(layer.out_channels), u(int(layer.input.size()))}),
                                       layer.float_weights.data());
      connect(net->AddFullyConnectedLayer(fc, weights, armnn::Optional<armnn::ConstTensor>(bias), name.c_str()),
              layer.output, true);
    } else {
      armnn::Convolution2dDescriptor conv;
      conv.m_StrideX = conv.m_StrideY = 1;
      conv.m_BiasEnabled = true;
      conv.m_DataLayout = armnn::DataLayout::NCHW;
      const armnn::ConstTensor weights(
          float_tensor({u(layer.out_channels), u(layer.input.channels), u(layer.kernel), u(layer.kernel)}),
          layer.float_weights.data());
      connect(net->AddConvolution2dLayer(conv, weights, armnn::Optional<armnn::ConstTensor>(bias), name.c_str()),
              layer.output, false);
    }
    if (layer.act_bits != 0)
      connect(net->AddActivationLayer(relu, (name + "_relu").c_str()), layer.output, dense);
  }
  previous->GetOutputSlot(0).Connect(net->AddOutputLayer(0, "logits")->GetInputSlot(0));
  return net;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::cerr << "usage: armnn_probe BACKEND REPEATS IMAGE [MODEL]\n";
    return 2;
  }
  try {
    const armnn::BackendId backend(argv[1]);
    const int repeats = std::atoi(argv[2]);
    const auto model = busi::Model::load(argc == 5 ? argv[4] : busi::default_model_path(busi::ModelKind::floating));
    if (model.kind != busi::ModelKind::floating) throw busi::error("armnn_probe runs float models");
    const auto input = busi::load_image(argv[3], model.input.height, model.input.width);

    armnn::IRuntime::CreationOptions options;
    if (const char* path = std::getenv("ARMNN_BACKENDS_PATH")) options.m_DynamicBackendsPath = path;
    armnn::IRuntimePtr runtime = armnn::IRuntime::Create(options);
    std::vector<std::string> messages;
    armnn::IOptimizedNetworkPtr optimized =
        armnn::Optimize(*build_network(model), {backend}, runtime->GetDeviceSpec(), armnn::OptimizerOptions(),
                        armnn::Optional<std::vector<std::string>&>(messages));
    if (!optimized) {
      std::string why;
      for (const auto& m : messages) why += "; " + m;
      throw busi::error("Arm NN could not optimize the network for backend " + std::string(argv[1]) + why);
    }
    armnn::NetworkId id;
    std::string load_error;
    if (runtime->LoadNetwork(id, std::move(optimized), load_error, armnn::INetworkProperties()) !=
        armnn::Status::Success)
      throw busi::error("Arm NN could not load the network: " + load_error);

    std::vector<float> pixels(input.pixels.begin(), input.pixels.end());  // raw 0..255: the model folds the 1/255
    std::vector<float> logits(model.layers.back().output.size());
    const armnn::InputTensors inputs{{0, armnn::ConstTensor(runtime->GetInputTensorInfo(id, 0), pixels.data())}};
    const armnn::OutputTensors outputs{{0, armnn::Tensor(runtime->GetOutputTensorInfo(id, 0), logits.data())}};
    for (int i = 0; i < repeats; ++i)
      if (runtime->EnqueueWorkload(id, inputs, outputs) != armnn::Status::Success)
        throw busi::error("Arm NN could not run the network");

    std::cout << "armnn " << argv[1] << " x" << repeats << ": logits";
    for (float v : logits) std::cout << ' ' << v;
    std::cout << '\n';
    if (repeats > 0) {
      const std::vector<double> expected = busi::test::float_reference_logits(model, input.pixels);
      for (std::size_t i = 0; i < logits.size(); ++i)
        if (std::abs(logits[i] - expected[i]) > 1e-3 * (1 + std::abs(expected[i])))
          throw busi::error("Arm NN's logit " + std::to_string(i) + " is " + std::to_string(logits[i]) +
                            ", the float reference's " + std::to_string(expected[i]));
    }
  } catch (const std::exception& e) {
    std::cerr << "armnn_probe: error: " << e.what() << '\n';
    return 1;
  }
}
