#pragma once
// Which images a model has already seen. A package may record ("seen_images",
// docs/model-format.md) one hash per image it was trained on; the tools then
// say how many of the given images those are and score the rest apart, so an
// accuracy over images the model learned is never passed off as its accuracy.
//
// The hash is FNV-1a 64 of the pre-processed input tensor (height x width uint8,
// row-major): it names the pixels the network sees, so a re-saved or renamed
// copy of a training image is still recognised, while any pixel difference makes
// another image. training/busi_train/package.py (input_hashes) computes the same.
#include <cstdint>
#include <span>
#include <string>

#include "busi/image.hpp"

namespace busi {

// FNV-1a, 64 bits (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
uint64_t fnv1a64(std::span<const uint8_t> bytes);

// The hash a package records for an input of `preprocess`: the name stored in
// "seen_images.hash" is "fnv1a64-" + the model's pre-processing name.
std::string seen_image_hash_name(const std::string& preprocess);
uint64_t input_hash(const Tensor8& input);

}  // namespace busi
