// busi-model: look inside a .bqnn package, or write a deterministic random one.
//   busi-model info MODEL.bqnn
//   busi-model random [--weights 2] [--acts 4] [--seed 1] OUT.bqnn
//   busi-model import MODEL.onnx -o OUT.bqnn [--name NAME]   (QONNX in; busi_model_import.cpp)
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>

#include "busi/error.hpp"
#include "busi/model.hpp"
#include "busi/random_model.hpp"
#include "busi_model_import.hpp"

namespace {

const char* kUsage =
    "usage: busi-model info MODEL.bqnn\n"
    "       busi-model random [--weights BITS] [--acts BITS] [--seed N] OUT.bqnn\n"
    "       busi-model import MODEL.onnx -o OUT.bqnn [--name NAME]\n";

const char* type_name(busi::LayerType t) {
  return t == busi::LayerType::conv ? "conv" : t == busi::LayerType::dense ? "dense" : "maxpool";
}

int info(const std::string& path) {
  const auto model = busi::Model::load(path);
  std::cout << path << ": " << model.name << " ("
            << (model.kind == busi::ModelKind::floating ? "float" : "quantized") << ")\n"
            << "input: " << model.input.channels << "x" << model.input.height << "x" << model.input.width
            << " uint8, pre-processing " << model.preprocess << "\nclasses:";
  for (const auto& c : model.class_names) std::cout << " " << c;
  std::cout << "\n";
  for (std::size_t i = 0; i < model.layers.size(); ++i) {
    const auto& l = model.layers[i];
    std::cout << "  " << i << " " << type_name(l.type) << " " << l.input.channels << "x" << l.input.height << "x"
              << l.input.width << " -> " << l.output.channels << "x" << l.output.height << "x" << l.output.width;
    if (l.type == busi::LayerType::maxpool) std::cout << " pool " << l.pool;
    else if (model.kind == busi::ModelKind::quantized)
      std::cout << " w" << l.weight_bits << (l.act_bits ? " a" + std::to_string(l.act_bits) : " logits");
    std::cout << "\n";
  }
  std::cout << "provenance: " << model.provenance_json << "\n";
  return 0;
}

int random(int argc, char** argv) {
  int weights = 2, acts = 4;
  uint64_t seed = 1;
  std::string out;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw busi::error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--weights") weights = std::stoi(value());
    else if (arg == "--acts") acts = std::stoi(value());
    else if (arg == "--seed") seed = std::stoull(value());
    else if (out.empty() && arg[0] != '-') out = arg;
    else throw busi::error("unexpected argument '" + arg + "'");
  }
  if (out.empty()) throw busi::error("missing output path");
  auto model = busi::random_model(busi::paper_network_spec(weights, acts), seed);
  model.name = "placeholder-random-w" + std::to_string(weights) + "a" + std::to_string(acts);
  model.provenance_json = R"({"placeholder":true,"note":"random weights, not trained: predictions are meaningless",)"
                          R"("generator":"busi-model random","seed":)" + std::to_string(seed) + "}";
  const auto bytes = model.serialize();
  std::ofstream file(out, std::ios::binary);
  file.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!file.flush()) throw busi::error(out + ": cannot write: " + std::strerror(errno));
  std::cout << "wrote " << out << " (" << bytes.size() << " bytes)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 3 && std::strcmp(argv[1], "info") == 0) return info(argv[2]);
    if (argc >= 2 && std::strcmp(argv[1], "random") == 0) return random(argc, argv);
    if (argc >= 2 && std::strcmp(argv[1], "import") == 0) return run_import(argc, argv);
    std::cerr << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "busi-model: error: " << e.what() << "\n";
    return 1;
  }
}
