#include "busi/seen_images.hpp"

#include <algorithm>

#include "busi/model.hpp"

namespace busi {

uint64_t fnv1a64(std::span<const uint8_t> bytes) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (uint8_t b : bytes) hash = (hash ^ b) * 0x100000001b3ull;
  return hash;
}

std::string seen_image_hash_name(const std::string& preprocess) { return "fnv1a64-" + preprocess; }

uint64_t input_hash(const Tensor8& input) { return fnv1a64(input.pixels); }

bool Model::has_seen(const Tensor8& input) const {
  return seen_images && std::binary_search(seen_images->begin(), seen_images->end(), input_hash(input));
}

}  // namespace busi
