// libFuzzer target: .bqnn bytes through Model::parse (magic, CRC, JSON header,
// payload blobs, validation). The CRC would stop almost every mutation at the
// door, so inputs whose first byte is odd get their CRC re-signed first.
#include <zlib.h>

#include <cstdint>
#include <vector>

#include "busi/error.hpp"
#include "busi/model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  if (bytes.size() >= 24 && (bytes[9] & 1)) {  // the version's high byte: 0 in valid files, so flip to opt in
    bytes[9] = 0;
    const std::size_t body = bytes.size() - 4;
    const uint32_t crc = uint32_t(crc32(0L, bytes.data(), uInt(body)));
    for (int i = 0; i < 4; ++i) bytes[body + i] = uint8_t(crc >> (8 * i));
  }
  try {
    const busi::Model model = busi::Model::parse(bytes, "fuzz.bqnn");
    (void)model.serialize();
  } catch (const busi::error&) {
  }
  return 0;
}
