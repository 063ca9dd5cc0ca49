// decode_probe: reads, decodes and pre-processes (busi::load_image, to the
// model's 255x255) each IMAGE REPEATS times and nothing else, so that
// count-decode-insns.sh can take the instructions of one image's decode and
// pre-processing as the difference between two runs under qemu-arm's
// instruction counter. It uses only load_image, so the same file builds
// against older revisions for a before/after count.
//   decode_probe REPEATS IMAGE...
#include <cstdint>
#include <cstdlib>
#include <iostream>

#include "busi/image.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: decode_probe REPEATS IMAGE...\n";
    return 2;
  }
  try {
    const int repeats = std::atoi(argv[1]);
    uint64_t checksum = 0;  // printed, so no load is optimised away
    for (int i = 0; i < repeats; ++i)
      for (int f = 2; f < argc; ++f)
        for (uint8_t v : busi::load_image(argv[f], 255, 255).pixels) checksum = checksum * 31 + v;
    std::cout << "decode_probe x" << repeats << ": checksum " << checksum << '\n';
  } catch (const std::exception& e) {
    std::cerr << "decode_probe: error: " << e.what() << '\n';
    return 1;
  }
}
