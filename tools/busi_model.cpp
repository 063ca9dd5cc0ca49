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
#include "cli.hpp"

namespace {

namespace po = boost::program_options;

const char* const usage =
    "Usage: busi-model info MODEL.bqnn\n"
    "       busi-model random [options] OUT.bqnn\n"
    "       busi-model import MODEL.onnx -o OUT.bqnn [--name NAME]\n\n"
    "info: what a model package holds (layers, shapes, bit widths, provenance).\n"
    "random: writes a deterministic random placeholder of the paper's network\n"
    "(untrained: its predictions are meaningless).\n"
    "import: a QONNX graph (Brevitas's export_qonnx or ours) streamlined to an integer package\n"
    "(busi-model import --help for its options).\n";

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

// Parses `command`'s arguments (argv after the command word) with `options`
// and one positional FILE; returns false after printing help.
bool parse(int argc, char** argv, po::options_description& options, std::string& file, po::variables_map& vm) {
  po::options_description all;
  all.add(options).add_options()("help,h", "show this help and exit")("file", po::value(&file));
  po::positional_options_description positional;
  positional.add("file", 1);
  po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
  if (vm.count("help")) {
    std::cout << usage << "\n" << po::options_description("Options").add(options) << "\n" << busi::cli::exit_codes_help;
    return false;
  }
  po::notify(vm);
  if (file.empty()) throw busi::cli::usage_error("no model file given");
  return true;
}

int random(int argc, char** argv) {
  int weights = 2, acts = 4;
  uint64_t seed = 1;
  std::string out;
  po::options_description options;
  options.add_options()
      ("weights", po::value(&weights)->default_value(weights), "weight bits (2, 4 or 8)")
      ("acts", po::value(&acts)->default_value(acts), "hidden activation bits (2, 4 or 8)")
      ("seed", po::value(&seed)->default_value(seed), "random seed");
  po::variables_map vm;
  if (!parse(argc, argv, options, out, vm)) return busi::cli::exit_ok;
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

int run(int argc, char** argv) {
  const std::string command = argc >= 2 ? argv[1] : "";
  if (command == "-h" || command == "--help") {
    std::cout << usage << "\n" << busi::cli::exit_codes_help;
    return busi::cli::exit_ok;
  }
  if (command == "random") return random(argc - 1, argv + 1);
  if (command == "import") return run_import(argc, argv);
  if (command == "info") {
    std::string path;
    po::options_description none;
    po::variables_map vm;
    if (!parse(argc - 1, argv + 1, none, path, vm)) return busi::cli::exit_ok;
    return info(path);
  }
  throw busi::cli::usage_error(command.empty() ? "no command given (info, random or import)"
                                               : "unknown command '" + command + "' (info, random or import)");
}

}  // namespace

int main(int argc, char** argv) {
  return busi::cli::guarded_main("busi-model", [&] { return run(argc, argv); });
}
