// Reader and writer of the .bqnn model package (docs/model-format.md).
// Every check names the file and, where it applies, the layer, so a user who
// hands the runtime a broken file learns what is broken without a debugger.
#include "busi/model.hpp"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "busi/error.hpp"
#include "busi/limits.hpp"
#include "busi/seen_images.hpp"

namespace busi {
namespace {

using json = nlohmann::json;

constexpr std::array<uint8_t, 8> kMagic = {'B', 'U', 'S', 'I', 'Q', 'N', 'N', 0};
constexpr uint32_t kFormatVersion = 1;
constexpr std::size_t kPrefixBytes = 16;  // magic + version + header length

uint32_t read_u32_le(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
void append_u32_le(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

uint32_t crc32_of(const uint8_t* data, std::size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths; feed in chunks so any size works.
  while (size > 0) {
    const uInt chunk = uInt(std::min<std::size_t>(size, 1u << 30));
    crc = crc32(crc, data, chunk);
    data += chunk;
    size -= chunk;
  }
  return uint32_t(crc);
}

// Context for error messages: "model.bqnn: layer 3 (conv): ..."
struct Where {
  std::string origin;
  std::string layer;
  [[noreturn]] void fail(const std::string& what) const {
    throw model_error(origin + ": " + (layer.empty() ? "" : layer + ": ") + what);
  }
};

int weight_bits_of(const std::string& dtype, const Where& where) {
  if (dtype == "int2") return 2;
  if (dtype == "int4") return 4;
  if (dtype == "int8") return 8;
  if (dtype == "float32") return 32;
  where.fail("weight dtype '" + dtype + "' not supported (int2, int4, int8, float32)");
}

// A short, printable rendering of a JSON value for error messages.
std::string shown(const json& v) {
  std::string text = v.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

// A JSON value that must be a whole number in [low, high]: 1e300, 0.9, 5.5,
// -1, "7" and true are refused naming the key, never converted (a double
// outside an integer's range converts with undefined behaviour).
uint64_t whole_number(const json& v, const std::string& key, uint64_t low, uint64_t high, const Where& where) {
  if (v.is_number_unsigned()) {
    const auto x = v.get<uint64_t>();
    if (x >= low && x <= high) return x;
  } else if (v.is_number_integer() && low == 0 && v.get<int64_t>() == 0) {
    return 0;
  }
  where.fail("\"" + key + "\" = " + shown(v) + " is not a whole number in [" + std::to_string(low) + ", " +
             std::to_string(high) + "]");
}

// out x in x k x k weights, or a refusal when the product does not fit the limit.
std::size_t weight_count_of(const Layer& layer, const Where& where) {
  auto n = limits::checked_mul(std::size_t(layer.out_channels), std::size_t(layer.in_channels));
  if (n) n = limits::checked_mul(*n, std::size_t(layer.kernel));
  if (n) n = limits::checked_mul(*n, std::size_t(layer.kernel));
  if (!n || *n > limits::kModelWeights)
    where.fail(std::to_string(layer.out_channels) + " x " + std::to_string(layer.in_channels) + " x " +
               std::to_string(layer.kernel) + " x " + std::to_string(layer.kernel) + " weights exceed the limit of " +
               std::to_string(limits::kModelWeights) + " per model");
  return *n;
}

class PayloadReader {
 public:
  PayloadReader(const uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  // The bytes of a blob {"offset", "size"}, checked against the payload and the expected size.
  const uint8_t* blob(const json& ref, std::size_t expected_size, const std::string& what,
                      const Where& where) const {
    if (!ref.is_object() || !ref.contains("offset") || !ref.contains("size"))
      where.fail(what + ": blob needs \"offset\" and \"size\"");
    const auto offset = whole_number(ref.at("offset"), what + ".offset", 0, UINT64_MAX, where);
    const auto size = whole_number(ref.at("size"), what + ".size", 0, UINT64_MAX, where);
    if (offset > size_ || size > size_ - offset)
      where.fail(what + ": blob at offset " + std::to_string(offset) + " size " + std::to_string(size) +
                 " lies outside the payload (" + std::to_string(size_) + " bytes); file truncated?");
    if (size != expected_size)
      where.fail(what + ": blob has " + std::to_string(size) + " bytes, shapes need " +
                 std::to_string(expected_size));
    return data_ + offset;
  }

 private:
  const uint8_t* data_;
  std::size_t size_;
};

std::vector<int8_t> unpack_weights(const uint8_t* packed, std::size_t count, int bits) {
  std::vector<int8_t> out(count);
  const unsigned mask = (1u << bits) - 1;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t bit = i * bits;
    // bits divides 8 for 2/4/8, so an element never straddles a byte.
    const unsigned raw = (packed[bit / 8] >> (bit % 8)) & mask;
    out[i] = int8_t(raw & (1u << (bits - 1)) ? int(raw) - (1 << bits) : int(raw));
  }
  return out;
}

std::vector<uint8_t> pack_weights(const std::vector<int8_t>& values, int bits) {
  std::vector<uint8_t> out((values.size() * bits + 7) / 8, 0);
  const unsigned mask = (1u << bits) - 1;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::size_t bit = i * bits;
    out[bit / 8] |= uint8_t((unsigned(values[i]) & mask) << (bit % 8));
  }
  return out;
}

template <typename T>
std::vector<T> read_le_array(const uint8_t* p, std::size_t count) {
  static_assert(sizeof(T) == 4);
  std::vector<T> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    const uint32_t bits = read_u32_le(p + 4 * i);
    std::memcpy(&out[i], &bits, 4);
  }
  return out;
}

template <typename T>
json append_blob(std::vector<uint8_t>& payload, const T* data, std::size_t count) {
  json ref = {{"offset", payload.size()}, {"size", count * 4}};
  for (std::size_t i = 0; i < count; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &data[i], 4);
    append_u32_le(payload, bits);
  }
  return ref;
}

int positive_int(const json& obj, const char* key, const Where& where) {
  if (!obj.is_object() || !obj.contains(key)) where.fail(std::string("missing integer \"") + key + "\"");
  return int(whole_number(obj.at(key), key, 1, 1 << 20, where));
}

std::string layer_type_name(LayerType t) {
  switch (t) {
    case LayerType::conv: return "conv";
    case LayerType::maxpool: return "maxpool";
    case LayerType::dense: return "dense";
  }
  return "?";
}

// "seen_images": {"hash": "fnv1a64-<preprocess>", "count": n, "hashes": blob of n
// sorted distinct uint64 LE}. Refused when the hash is not the one this runtime
// computes for the model's pre-processing: a mismatch would call every image unseen.
std::vector<uint64_t> parse_seen_images(const json& j, const std::string& preprocess, const PayloadReader& payload,
                                        const Where& where) {
  if (!j.is_object()) where.fail("\"seen_images\" must be an object");
  const std::string hash = j.value("hash", std::string());
  if (hash != seen_image_hash_name(preprocess))
    where.fail("seen_images: hash '" + hash + "' is not the one this runtime computes for " + preprocess + " (" +
               seen_image_hash_name(preprocess) + ")");
  if (!j.contains("count") || !j.contains("hashes")) where.fail("seen_images needs \"count\" and \"hashes\"");
  const auto count = whole_number(j.at("count"), "seen_images.count", 0, limits::kModelFileBytes / 8, where);
  const uint8_t* p = payload.blob(j.at("hashes"), std::size_t(count) * 8, "seen_images.hashes", where);
  std::vector<uint64_t> hashes(count);
  for (std::size_t i = 0; i < count; ++i) {
    hashes[i] = uint64_t(read_u32_le(p + 8 * i)) | uint64_t(read_u32_le(p + 8 * i + 4)) << 32;
    if (i > 0 && hashes[i] <= hashes[i - 1])
      where.fail("seen_images.hashes are not sorted and distinct (index " + std::to_string(i) + ")");
  }
  return hashes;
}

Layer parse_layer(const json& j, ModelKind kind, const PayloadReader& payload, const Where& where) {
  Layer layer;
  if (!j.is_object() || !j.contains("type")) where.fail("layer needs a \"type\"");
  const auto type = j.at("type").get<std::string>();
  if (type == "maxpool") {
    layer.type = LayerType::maxpool;
    layer.pool = positive_int(j, "kernel", where);
    return layer;
  }
  if (type == "conv") {
    layer.type = LayerType::conv;
    layer.in_channels = positive_int(j, "in_channels", where);
    layer.out_channels = positive_int(j, "out_channels", where);
    layer.kernel = positive_int(j, "kernel", where);
  } else if (type == "dense") {
    layer.type = LayerType::dense;
    layer.in_channels = positive_int(j, "in_features", where);
    layer.out_channels = positive_int(j, "out_features", where);
    layer.kernel = 1;
  } else {
    where.fail("layer type '" + type + "' not supported (conv, maxpool, dense)");
  }

  const std::size_t weight_count = weight_count_of(layer, where);
  if (!j.contains("weights")) where.fail("missing \"weights\"");
  const auto& w = j.at("weights");
  layer.weight_bits = weight_bits_of(w.value("dtype", std::string("?")), where);
  if ((layer.weight_bits == 32) != (kind == ModelKind::floating))
    where.fail("weight dtype " + w.value("dtype", std::string()) + " does not match a " +
               (kind == ModelKind::floating ? "float" : "quantized") + " model");
  if (kind == ModelKind::floating) {
    layer.float_weights = read_le_array<float>(payload.blob(w, weight_count * 4, "weights", where), weight_count);
    if (!j.contains("bias")) where.fail("float layer missing \"bias\"");
    layer.float_bias = read_le_array<float>(
        payload.blob(j.at("bias"), std::size_t(layer.out_channels) * 4, "bias", where), layer.out_channels);
    for (float v : layer.float_weights)
      if (!std::isfinite(v)) where.fail("weights contain a non-finite value");
    for (float v : layer.float_bias)
      if (!std::isfinite(v)) where.fail("bias contains a non-finite value");
  } else {
    const std::size_t packed = (weight_count * layer.weight_bits + 7) / 8;
    layer.weights = unpack_weights(payload.blob(w, packed, "weights", where), weight_count, layer.weight_bits);
    const int limit = (1 << (layer.weight_bits - 1)) - 1;  // narrow range
    for (std::size_t i = 0; i < layer.weights.size(); ++i)
      if (layer.weights[i] < -limit)
        where.fail("weight " + std::to_string(i) + " = " + std::to_string(layer.weights[i]) +
                   " outside the narrow int" + std::to_string(layer.weight_bits) + " range [-" +
                   std::to_string(limit) + ", " + std::to_string(limit) + "]");
  }

  const json& act = j.contains("activation") ? j.at("activation") : json();
  if (act.is_null()) {
    layer.act_bits = 0;
  } else if (kind == ModelKind::floating) {
    if (act.value("type", std::string()) != "relu") where.fail("float models support only \"relu\" activations");
    layer.act_bits = 32;
  } else {
    if (act.value("type", std::string()) != "thresholds")
      where.fail("quantized models support only \"thresholds\" activations");
    layer.act_bits = positive_int(act, "bits", where);
    if (layer.act_bits != 2 && layer.act_bits != 4 && layer.act_bits != 8)
      where.fail("activation bit width " + std::to_string(layer.act_bits) + " not supported (2, 4, 8)");
    const std::size_t count = std::size_t(layer.out_channels) * layer.thresholds_per_channel();
    if (!act.contains("thresholds")) where.fail("missing \"thresholds\"");
    layer.thresholds = read_le_array<int32_t>(payload.blob(act.at("thresholds"), count * 4, "thresholds", where), count);
  }
  return layer;
}

json layer_to_json(const Layer& layer, ModelKind kind, std::vector<uint8_t>& payload) {
  if (layer.type == LayerType::maxpool) return {{"type", "maxpool"}, {"kernel", layer.pool}};
  json j;
  if (layer.type == LayerType::conv) {
    j = {{"type", "conv"}, {"in_channels", layer.in_channels}, {"out_channels", layer.out_channels},
         {"kernel", layer.kernel}};
  } else {
    j = {{"type", "dense"}, {"in_features", layer.in_channels}, {"out_features", layer.out_channels}};
  }
  if (kind == ModelKind::floating) {
    j["weights"] = append_blob(payload, layer.float_weights.data(), layer.float_weights.size());
    j["weights"]["dtype"] = "float32";
    j["bias"] = append_blob(payload, layer.float_bias.data(), layer.float_bias.size());
    j["bias"]["dtype"] = "float32";
    j["activation"] = layer.act_bits ? json{{"type", "relu"}} : json();
  } else {
    const auto packed = pack_weights(layer.weights, layer.weight_bits);
    j["weights"] = {{"dtype", "int" + std::to_string(layer.weight_bits)}, {"offset", payload.size()},
                    {"size", packed.size()}};
    payload.insert(payload.end(), packed.begin(), packed.end());
    if (layer.act_bits) {
      j["activation"] = {{"type", "thresholds"}, {"bits", layer.act_bits},
                         {"thresholds", append_blob(payload, layer.thresholds.data(), layer.thresholds.size())}};
    } else {
      j["activation"] = nullptr;
    }
  }
  return j;
}

// ---- the "calibration" block ------------------------------------------------
// Every refusal names the field: "calibration.referral.threshold = 1.5 is not
// a number in [0, 1]".

const json& field(const json& obj, const std::string& key, const std::string& path, const Where& where) {
  if (!obj.is_object()) where.fail(path + " must be an object");
  if (!obj.contains(key)) where.fail(path + " has no \"" + key + "\"");
  return obj.at(key);
}

double number_in(const json& obj, const std::string& key, const std::string& path, double low, double high,
                 const Where& where) {
  const json& v = field(obj, key, path, where);
  const double x = v.is_number() ? v.get<double>() : std::nan("");
  if (!(std::isfinite(x) && x >= low && x <= high)) {
    std::ostringstream range;
    range << "[" << low << ", " << high << "]";
    where.fail(path + "." + key + " = " + shown(v) + " is not a number in " + range.str());
  }
  return x;
}

std::vector<double> numbers(const json& obj, const std::string& key, const std::string& path, std::size_t count,
                            const Where& where) {
  const json& v = field(obj, key, path, where);
  if (!v.is_array() || v.size() != count)
    where.fail(path + "." + key + " must be an array of " + std::to_string(count) + " numbers");
  std::vector<double> out;
  for (std::size_t i = 0; i < count; ++i) {
    if (!v[i].is_number() || !std::isfinite(v[i].get<double>()))
      where.fail(path + "." + key + "[" + std::to_string(i) + "] = " + shown(v[i]) + " is not a finite number");
    out.push_back(v[i].get<double>());
  }
  return out;
}

OperatingPoint parse_operating_point(const json& obj, const std::string& path, const Where& where) {
  OperatingPoint p;
  p.target_sensitivity = number_in(obj, "target_sensitivity", path, 0, 1, where);
  p.threshold = number_in(obj, "threshold", path, 0, 1, where);
  p.sensitivity = number_in(obj, "sensitivity", path, 0, 1, where);
  p.specificity = number_in(obj, "specificity", path, 0, 1, where);
  const json& curve = field(obj, "curve", path, where);
  if (!curve.is_array() || curve.empty()) where.fail(path + ".curve must be a non-empty array");
  for (std::size_t i = 0; i < curve.size(); ++i) {
    const std::string at = path + ".curve[" + std::to_string(i) + "]";
    if (!curve[i].is_array() || curve[i].size() != 3)
      where.fail(at + " must be [threshold, sensitivity, specificity]");
    std::array<double, 3> point{};
    for (std::size_t k = 0; k < 3; ++k) {
      const double x = curve[i][k].is_number() ? curve[i][k].get<double>() : std::nan("");
      if (!(std::isfinite(x) && x >= 0 && x <= 1)) where.fail(at + " holds " + shown(curve[i][k]) + ", not a number in [0, 1]");
      point[k] = x;
    }
    if (i > 0 && point[0] < p.curve.back()[0]) where.fail(at + ": thresholds must be ascending");
    p.curve.push_back(point);
  }
  return p;
}

json operating_point_json(const OperatingPoint& p) {
  return {{"target_sensitivity", p.target_sensitivity}, {"threshold", p.threshold},
          {"sensitivity", p.sensitivity},               {"specificity", p.specificity},
          {"curve", p.curve}};
}

Calibration parse_calibration(const json& obj, std::size_t classes, const Where& where) {
  Calibration c;
  const std::string path = "calibration";
  const json& fitted_on = field(obj, "fitted_on", path, where);
  if (!fitted_on.is_string()) where.fail("calibration.fitted_on must be a string naming the images");
  c.fitted_on = fitted_on.get<std::string>();
  c.temperature = number_in(obj, "temperature", path, 1e-3, 1e3, where);
  const json& gate = field(obj, "gate", path, where);
  const std::string gp = "calibration.gate";
  c.gate.min_side = int(whole_number(field(gate, "min_side", gp, where), gp + ".min_side", 1, 8192, where));
  c.gate.min_stddev = number_in(gate, "min_stddev", gp, 0, 255, where);
  c.gate.max_colour = number_in(gate, "max_colour", gp, 0, 510, where);
  const json& score = field(gate, "ood_score", gp, where);
  if (score != "image-logit-mahalanobis-v1")
    where.fail(gp + ".ood_score = " + shown(score) + " is not a score this runtime computes (image-logit-mahalanobis-v1)");
  c.gate.ood_score = score.get<std::string>();
  const std::size_t features = Calibration::Gate::image_statistics + classes;
  const json& params = field(gate, "ood_params", gp, where);
  c.gate.mean = numbers(params, "mean", gp + ".ood_params", features, where);
  c.gate.precision = numbers(params, "precision", gp + ".ood_params", features * features, where);
  c.gate.ood_threshold = number_in(gate, "ood_threshold", gp, 0, 1e12, where);
  c.gate.accepted_rate = number_in(gate, "accepted_rate", gp, 0, 1, where);
  c.referral = parse_operating_point(field(obj, "referral", path, where), "calibration.referral", where);
  c.suspicious = parse_operating_point(field(obj, "suspicious", path, where), "calibration.suspicious", where);
  return c;
}

json calibration_json(const Calibration& c) {
  return {{"fitted_on", c.fitted_on},
          {"temperature", c.temperature},
          {"gate",
           {{"min_side", c.gate.min_side},
            {"min_stddev", c.gate.min_stddev},
            {"max_colour", c.gate.max_colour},
            {"ood_score", c.gate.ood_score},
            {"ood_params", {{"mean", c.gate.mean}, {"precision", c.gate.precision}}},
            {"ood_threshold", c.gate.ood_threshold},
            {"accepted_rate", c.gate.accepted_rate}}},
          {"referral", operating_point_json(c.referral)},
          {"suspicious", operating_point_json(c.suspicious)}};
}

}  // namespace

OperatingPoint OperatingPoint::choose(double target) const {
  double lowest = 1, highest = 0;
  for (const auto& point : curve) {
    lowest = std::min(lowest, point[1]);
    highest = std::max(highest, point[1]);
  }
  const auto covers = [&] {
    std::ostringstream s;
    s << std::fixed << std::setprecision(2) << "the stored referral curve covers sensitivities " << lowest << " to "
      << highest;
    return s.str();
  };
  if (!(target > 0 && target <= 1))
    throw error("sensitivity " + json(target).dump() + " is not in (0, 1]; " + covers());
  const std::array<double, 3>* best = nullptr;
  for (const auto& point : curve)
    if (point[1] >= target && (!best || point[0] >= (*best)[0])) best = &point;
  if (!best || target < lowest)
    throw error("sensitivity " + json(target).dump() + " cannot be chosen: " + covers());
  OperatingPoint chosen = *this;
  chosen.target_sensitivity = target;
  chosen.threshold = (*best)[0];
  chosen.sensitivity = (*best)[1];
  chosen.specificity = (*best)[2];
  return chosen;
}

OperatingPoint Model::referral_at(double sensitivity) const {
  if (!calibration) throw error("model " + name + " has no calibration block, so it has no referral curve to choose from");
  return calibration->referral.choose(sensitivity);
}

void Model::validate(const std::string& origin) {
  Where where{origin, ""};
  if (input.channels != 1) where.fail("input must have 1 channel (gray), found " + std::to_string(input.channels));
  if (input.height <= 0 || input.width <= 0 || input.height > 8192 || input.width > 8192)
    where.fail("input size " + std::to_string(input.height) + "x" + std::to_string(input.width) + " out of range");
  if (class_names.size() < 2) where.fail("needs at least 2 class names, found " + std::to_string(class_names.size()));
  if (layers.empty()) where.fail("has no layers");
  if (calibration && std::min(input.height, input.width) < Calibration::Gate::min_input_side)
    where.fail("calibration: the gate's image statistics need an input of at least " +
               std::to_string(Calibration::Gate::min_input_side) + " pixels a side");
  if (preprocess != "gray-area-v1")
    where.fail("pre-processing '" + preprocess + "' not implemented by this runtime (gray-area-v1)");

  Shape shape = input;
  int bits = 8;  // uint8 pixels feed the first layer
  bool seen_dense = false;
  std::size_t total_weights = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    Layer& layer = layers[i];
    where.layer = "layer " + std::to_string(i) + " (" + layer_type_name(layer.type) + ")";
    const bool last = i + 1 == layers.size();
    layer.input = shape;
    layer.input_bits = bits;
    switch (layer.type) {
      case LayerType::maxpool:
        if (i == 0 || layers[i - 1].type == LayerType::dense) where.fail("max-pool must follow a conv layer");
        if (last) where.fail("the last layer must be conv or dense (the logits)");
        if (shape.height < layer.pool || shape.width < layer.pool)
          where.fail("pool " + std::to_string(layer.pool) + " larger than its " + std::to_string(shape.height) +
                     "x" + std::to_string(shape.width) + " input");
        shape = {shape.channels, shape.height / layer.pool, shape.width / layer.pool};
        break;
      case LayerType::conv:
        if (seen_dense) where.fail("conv cannot follow a dense layer");
        if (layer.in_channels != shape.channels)
          where.fail("in_channels " + std::to_string(layer.in_channels) + " but its input has " +
                     std::to_string(shape.channels) + " channels");
        if (layer.kernel > shape.height || layer.kernel > shape.width)
          where.fail("kernel " + std::to_string(layer.kernel) + " larger than its " + std::to_string(shape.height) +
                     "x" + std::to_string(shape.width) + " input");
        shape = {layer.out_channels, shape.height - layer.kernel + 1, shape.width - layer.kernel + 1};
        break;
      case LayerType::dense:
        if (uint64_t(layer.in_channels) != uint64_t(shape.channels) * uint64_t(shape.height) * uint64_t(shape.width))
          where.fail("in_features " + std::to_string(layer.in_channels) + " but its input has " +
                     std::to_string(shape.size()) + " values (" + std::to_string(shape.channels) + "x" +
                     std::to_string(shape.height) + "x" + std::to_string(shape.width) + ")");
        shape = {layer.out_channels, 1, 1};
        seen_dense = true;
        break;
    }
    layer.output = shape;
    if (uint64_t(shape.channels) * uint64_t(shape.height) * uint64_t(shape.width) > limits::kLayerOutputElements)
      where.fail("output of " + std::to_string(shape.channels) + "x" + std::to_string(shape.height) + "x" +
                 std::to_string(shape.width) + " values exceeds the limit of " +
                 std::to_string(limits::kLayerOutputElements) + " per layer");
    if (layer.type == LayerType::maxpool) continue;

    const std::size_t weight_count = weight_count_of(layer, where);
    total_weights += weight_count;
    if (total_weights > limits::kModelWeights)
      where.fail("the layers so far hold " + std::to_string(total_weights) + " weights, over the limit of " +
                 std::to_string(limits::kModelWeights) + " per model");
    if (last != (layer.act_bits == 0))
      where.fail(last ? "the last layer must have no activation (it gives the logits)"
                      : "every layer but the last needs an activation");
    if (last && std::size_t(layer.out_channels) != class_names.size())
      where.fail("gives " + std::to_string(layer.out_channels) + " logits for " +
                 std::to_string(class_names.size()) + " classes");
    if (kind == ModelKind::floating) {
      if (layer.float_weights.size() != weight_count || layer.float_bias.size() != std::size_t(layer.out_channels))
        where.fail("float weight or bias count does not match the shapes");
      continue;
    }
    if (layer.weight_bits != 2 && layer.weight_bits != 4 && layer.weight_bits != 8)
      where.fail("weight bit width " + std::to_string(layer.weight_bits) + " not supported (2, 4, 8)");
    if (layer.weights.size() != weight_count)
      where.fail("has " + std::to_string(layer.weights.size()) + " weights, shapes need " + std::to_string(weight_count));
    // Worst case |acc| = fan-in * max|w| * max input; it must fit in int32.
    const double worst = double(layer.in_channels) * layer.kernel * layer.kernel *
                         double((1 << (layer.weight_bits - 1)) - 1) * double((1 << bits) - 1);
    if (worst > double(INT32_MAX))
      where.fail("accumulator may overflow int32 (worst case " + std::to_string(worst) + ")");
    if (layer.act_bits) {
      const int per = layer.thresholds_per_channel();
      if (layer.thresholds.size() != std::size_t(layer.out_channels) * per)
        where.fail("has " + std::to_string(layer.thresholds.size()) + " thresholds, needs " +
                   std::to_string(layer.out_channels) + " x " + std::to_string(per));
      for (int oc = 0; oc < layer.out_channels; ++oc) {
        const int32_t* t = layer.channel_thresholds(oc);
        for (int k = 1; k < per; ++k)
          if (t[k] < t[k - 1])
            where.fail("thresholds of channel " + std::to_string(oc) + " are not ascending (index " +
                       std::to_string(k) + ": " + std::to_string(t[k]) + " < " + std::to_string(t[k - 1]) + ")");
      }
      bits = layer.act_bits;
    }
  }
  if (kind == ModelKind::quantized && !(std::isfinite(logit_scale) && logit_scale > 0))
    Where{origin, ""}.fail("logit_scale must be a positive finite number");
}

Model Model::parse(const std::vector<uint8_t>& bytes, const std::string& origin) {
  Where where{origin, ""};
  if (bytes.empty()) where.fail("file is empty");
  if (bytes.size() < kPrefixBytes + 4 || !std::equal(kMagic.begin(), kMagic.end(), bytes.begin())) {
    if (bytes.size() >= kMagic.size() && std::equal(kMagic.begin(), kMagic.end(), bytes.begin()))
      where.fail("truncated: " + std::to_string(bytes.size()) + " bytes is shorter than the header");
    where.fail("not a busi model package (bad magic; expected \"BUSIQNN\")");
  }
  const uint32_t version = read_u32_le(bytes.data() + 8);
  if (version == 0 || version > kFormatVersion)
    where.fail("format version " + std::to_string(version) + " is not supported: this runtime reads versions 1 to " +
               std::to_string(kFormatVersion) + " (upgrade busi-infer)");
  const uint32_t header_len = read_u32_le(bytes.data() + 12);
  if (std::size_t(header_len) > bytes.size() - kPrefixBytes - 4)
    where.fail("truncated: header of " + std::to_string(header_len) + " bytes does not fit in " +
               std::to_string(bytes.size()) + " bytes");
  const std::size_t body = bytes.size() - 4;
  const uint32_t stored_crc = read_u32_le(bytes.data() + body);
  const uint32_t actual_crc = crc32_of(bytes.data(), body);
  if (stored_crc != actual_crc) {
    std::ostringstream msg;
    msg << "checksum mismatch (stored 0x" << std::hex << stored_crc << ", computed 0x" << actual_crc
        << "): the file is corrupt or truncated";
    where.fail(msg.str());
  }

  if (header_len > limits::kJsonBytes)
    where.fail("header of " + std::to_string(header_len) + " bytes is too large (limit " +
               std::to_string(limits::kJsonBytes) + " bytes)");
  const std::string_view header_text(reinterpret_cast<const char*>(bytes.data()) + kPrefixBytes, header_len);
  if (limits::json_nesting_depth(header_text) > limits::kNestingDepth)
    where.fail("header nests arrays/objects deeper than " + std::to_string(limits::kNestingDepth) + " levels");
  json header;
  try {
    header = json::parse(bytes.begin() + kPrefixBytes, bytes.begin() + kPrefixBytes + header_len);
  } catch (const json::exception& e) {
    where.fail(std::string("header is not valid JSON: ") + e.what());
  }
  const PayloadReader payload(bytes.data() + kPrefixBytes + header_len, body - kPrefixBytes - header_len);

  Model model;
  model.source = origin;
  try {
    if (header.value("format", std::string()) != "busi-qnn") where.fail("header \"format\" is not \"busi-qnn\"");
    const auto kind = header.value("kind", std::string());
    if (kind == "quantized") model.kind = ModelKind::quantized;
    else if (kind == "float") model.kind = ModelKind::floating;
    else where.fail("model kind '" + kind + "' not supported (quantized, float)");
    model.name = header.value("name", std::string("unnamed"));
    model.class_names = header.at("classes").get<std::vector<std::string>>();
    const auto& in = header.at("input");
    model.input = {positive_int(in, "channels", where), positive_int(in, "height", where),
                   positive_int(in, "width", where)};
    if (in.value("dtype", std::string()) != "uint8") where.fail("input dtype must be uint8");
    model.preprocess = in.value("preprocess", std::string());
    if (model.kind == ModelKind::quantized) {
      if (!header.contains("logit_scale")) where.fail("quantized model missing \"logit_scale\"");
      // Checked as a double first: converting one outside float's range is undefined.
      const json& scale = header.at("logit_scale");
      const double value = scale.is_number() ? scale.get<double>() : 0.0;
      if (!(std::isfinite(value) && value > 0 && value <= double(std::numeric_limits<float>::max())))
        where.fail("\"logit_scale\" = " + shown(scale) + " is not a positive finite number");
      model.logit_scale = float(value);
    }
    model.provenance_json = header.contains("provenance") ? header.at("provenance").dump() : "{}";
    if (header.contains("seen_images"))
      model.seen_images = parse_seen_images(header.at("seen_images"), model.preprocess, payload, where);
    if (header.contains("calibration")) {
      // Referral reads P(normal) and "suspicious" P(malignant) by name.
      for (const char* needed : {"normal", "malignant"})
        if (std::find(model.class_names.begin(), model.class_names.end(), needed) == model.class_names.end())
          where.fail(std::string("calibration needs a class named \"") + needed + "\"");
      model.calibration = parse_calibration(header.at("calibration"), model.class_names.size(), where);
    }
    const auto& layers = header.at("layers");
    if (!layers.is_array()) where.fail("\"layers\" must be an array");
    for (std::size_t i = 0; i < layers.size(); ++i)
      model.layers.push_back(parse_layer(layers[i], model.kind, payload, Where{origin, "layer " + std::to_string(i)}));
  } catch (const json::exception& e) {
    where.fail(std::string("malformed header: ") + e.what());
  }
  model.validate(origin);
  return model;
}

Model Model::load(const std::filesystem::path& path) {
  std::string reason;
  const auto bytes = limits::read_file(path, limits::kModelFileBytes, reason);
  if (!bytes) {
    if (reason == "no such file") reason = "no such model file";
    if (reason == "is a directory") reason = "is a directory, not a model file";
    throw model_error(path.string() + ": " + reason);
  }
  Model model = parse(*bytes, path.string());
  model.source = path;
  return model;
}

std::vector<uint8_t> Model::serialize() const {
  std::vector<uint8_t> payload;
  json header = {{"format", "busi-qnn"},
                 {"kind", kind == ModelKind::floating ? "float" : "quantized"},
                 {"name", name},
                 {"classes", class_names},
                 {"input", {{"height", input.height}, {"width", input.width}, {"channels", input.channels},
                            {"dtype", "uint8"}, {"preprocess", preprocess}}},
                 {"layers", json::array()},
                 {"provenance", json::parse(provenance_json.empty() ? "{}" : provenance_json)}};
  if (kind == ModelKind::quantized) header["logit_scale"] = logit_scale;
  if (calibration) header["calibration"] = calibration_json(*calibration);
  for (const auto& layer : layers) header["layers"].push_back(layer_to_json(layer, kind, payload));
  if (seen_images) {
    json blob = {{"dtype", "uint64"}, {"offset", payload.size()}, {"size", seen_images->size() * 8}};
    for (uint64_t h : *seen_images) {
      append_u32_le(payload, uint32_t(h));
      append_u32_le(payload, uint32_t(h >> 32));
    }
    header["seen_images"] = {{"hash", seen_image_hash_name(preprocess)}, {"count", seen_images->size()}, {"hashes", blob}};
  }

  const std::string text = header.dump();
  std::vector<uint8_t> out(kMagic.begin(), kMagic.end());
  append_u32_le(out, kFormatVersion);
  append_u32_le(out, uint32_t(text.size()));
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), payload.begin(), payload.end());
  append_u32_le(out, crc32_of(out.data(), out.size()));
  return out;
}

std::filesystem::path default_model_path(ModelKind kind) {
  const char* file = kind == ModelKind::floating ? "busi-float.bqnn" : "busi-w2a4.bqnn";
  std::vector<std::filesystem::path> candidates;
  if (const char* dir = std::getenv("BUSI_MODEL_DIR")) candidates.emplace_back(dir);
  // Next to the executable (relocatable installs: <prefix>/bin/../share/busi-infer/models).
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back(exe.parent_path().parent_path() / "share/busi-infer/models");
  candidates.emplace_back(BUSI_INSTALL_MODEL_DIR);
  candidates.emplace_back(BUSI_SOURCE_MODEL_DIR);
  for (const auto& dir : candidates)
    if (std::filesystem::exists(dir / file, ec)) return dir / file;
  std::string tried;
  for (const auto& dir : candidates) tried += (tried.empty() ? "" : ", ") + dir.string();
  throw model_error(std::string("default model ") + file + " not found (looked in " + tried +
                    "); pass --model or set BUSI_MODEL_DIR");
}

}  // namespace busi
