// insn_probe: runs one cpu_int engine REPEATS times on one image and nothing
// else, so that count-insns.sh can take the instructions of one inference as
// the difference between two runs under qemu-arm's instruction counter.
//   insn_probe ISA REPEATS IMAGE [MODEL]
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "busi/error.hpp"
#include "busi/image.hpp"
#include "busi/model.hpp"
#include "engine.hpp"

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::cerr << "usage: insn_probe ISA REPEATS IMAGE [MODEL]\n";
    return 2;
  }
  try {
    const auto which = busi::cpu_int::parse_isa(argv[1]);
    const int repeats = std::atoi(argv[2]);
    const auto model = busi::Model::load(argc == 5 ? argv[4] : busi::default_model_path(busi::ModelKind::quantized));
    const auto input = busi::load_image(argv[3], model.input.height, model.input.width);
    auto engine = busi::cpu_int::make_engine(model, which);
    std::vector<int32_t> logits(model.layers.back().output.size());
    for (int i = 0; i < repeats; ++i) engine->run(input.pixels.data(), logits.data());
    std::cout << busi::cpu_int::isa_name(which) << " x" << repeats << ": logits";
    for (int32_t v : logits) std::cout << ' ' << v;
    std::cout << '\n';
  } catch (const std::exception& e) {
    std::cerr << "insn_probe: error: " << e.what() << '\n';
    return 1;
  }
}
