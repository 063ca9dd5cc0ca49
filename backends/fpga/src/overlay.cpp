#include "overlay.hpp"

#include <nlohmann/json.hpp>

#include "busi/error.hpp"
#include "busi/limits.hpp"
#include "busi/model.hpp"

namespace busi::fpga {

finn_datatype finn_datatype::parse(const std::string& text) {
  finn_datatype t;
  t.name = text;
  auto width = [&](std::size_t prefix) {
    const std::string digits = text.substr(prefix);
    if (digits.empty() || digits.size() > 2 || digits.find_first_not_of("0123456789") != std::string::npos) return 0;
    return std::stoi(digits);
  };
  if (text == "BINARY") {
    t.bits = 1;
  } else if (text == "BIPOLAR") {
    t.bits = 1;
    t.bipolar = true;
    t.is_signed = true;
  } else if (text.rfind("UINT", 0) == 0) {
    t.bits = width(4);
  } else if (text.rfind("INT", 0) == 0) {
    t.bits = width(3);
    t.is_signed = true;
    if (t.bits == 1) t.bits = 0;
  }
  if (t.bits < 1 || t.bits > 32)
    throw error("FINN datatype '" + text + "' not supported (UINT1..UINT32, INT2..INT32, BINARY, BIPOLAR)");
  return t;
}

int64_t finn_datatype::min() const {
  if (bipolar) return -1;
  return is_signed ? -(int64_t{1} << (bits - 1)) : 0;
}
int64_t finn_datatype::max() const {
  if (bipolar) return 1;
  return is_signed ? (int64_t{1} << (bits - 1)) - 1 : (int64_t{1} << bits) - 1;
}

namespace {
// Only called on shapes parse_port has checked: their product fits kPortElements.
std::size_t product_after_batch(const std::vector<int64_t>& shape) {
  std::size_t n = 1;
  for (std::size_t i = 1; i < shape.size(); ++i) n *= static_cast<std::size_t>(shape[i]);
  return n;
}

// A shape: 2 to 8 whole numbers in [1, 2^31), whose product after the batch
// dimension is at most kPortElements (checked as it is computed, so it cannot
// wrap). 1e300, 0.9 and 5.5 are refused naming the key, never converted.
std::vector<int64_t> parse_shape(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.is_array() || j.size() < 2 || j.size() > 8)
    throw error(where + ": \"" + key + "\" must be an array of 2 to 8 dimensions, not " + j.dump().substr(0, 40));
  std::vector<int64_t> shape;
  std::size_t product = 1;
  for (const auto& d : j) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() < 1 || d.get<uint64_t>() >= (uint64_t{1} << 31))
      throw error(where + ": \"" + key + "\" dimension " + d.dump().substr(0, 40) +
                  " is not a whole number in [1, 2147483647]");
    shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
    if (shape.size() == 1) continue;  // the batch dimension: the runtime replaces it
    const auto next = limits::checked_mul(product, static_cast<std::size_t>(shape.back()));
    if (!next || *next > limits::kPortElements)
      throw error(where + ": \"" + key + "\" holds more than " + std::to_string(limits::kPortElements) +
                  " elements per image");
    product = *next;
  }
  return shape;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

io_port parse_port(const nlohmann::json& j, const std::string& where) {
  io_port p;
  auto need = [&](const char* key) -> const nlohmann::json& {
    if (!j.contains(key)) throw error(where + ": missing \"" + key + "\"");
    return j.at(key);
  };
  p.dma = need("dma").get<std::string>();
  p.datatype = finn_datatype::parse(need("datatype").get<std::string>());
  p.shape_normal = parse_shape(need("shape_normal"), "shape_normal", where);
  p.shape_folded = parse_shape(need("shape_folded"), "shape_folded", where);
  p.shape_packed = parse_shape(need("shape_packed"), "shape_packed", where);
  if (product_after_batch(p.shape_normal) != product_after_batch(p.shape_folded))
    throw error(where + ": folded shape " + shape_text(p.shape_folded) +
                " does not hold the elements of normal shape " + shape_text(p.shape_normal));
  const bool same_outer = p.shape_folded.size() == p.shape_packed.size() &&
                          std::equal(p.shape_folded.begin() + 1, p.shape_folded.end() - 1, p.shape_packed.begin() + 1);
  if (!same_outer || static_cast<std::size_t>(p.shape_packed.back()) != packed_vector_bytes(p.inner(), p.datatype))
    throw error(where + ": packed shape " + shape_text(p.shape_packed) + " does not match folded shape " +
                shape_text(p.shape_folded) + " at " + std::to_string(p.datatype.bits) + " bits per element");
  return p;
}
}  // namespace

std::size_t io_port::elements() const { return product_after_batch(shape_normal); }
std::size_t io_port::inner() const { return static_cast<std::size_t>(shape_folded.back()); }
std::size_t io_port::vectors() const { return elements() / inner(); }
std::size_t io_port::packed_bytes() const { return product_after_batch(shape_packed); }

overlay_description overlay_description::load(const std::filesystem::path& dir) {
  const auto file = dir / "overlay.json";
  std::string reason;
  const auto bytes = limits::read_file(file, limits::kJsonBytes, reason);
  if (!bytes) throw error("overlay " + dir.string() + ": cannot open " + file.string() + ": " + reason);
  return parse(std::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size()), dir);
}

overlay_description overlay_description::parse(std::string_view text, const std::filesystem::path& dir) {
  const auto file = dir / "overlay.json";
  if (text.size() > limits::kJsonBytes)
    throw error(file.string() + ": " + std::to_string(text.size()) + " bytes is too large (limit " +
                std::to_string(limits::kJsonBytes) + " bytes)");
  if (limits::json_nesting_depth(text) > limits::kNestingDepth)
    throw error(file.string() + ": nests arrays/objects deeper than " + std::to_string(limits::kNestingDepth) +
                " levels");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw error(file.string() + ": not valid JSON: " + e.what());
  }
  overlay_description d;
  d.dir = dir;
  try {
    d.name = j.at("name").get<std::string>();
    d.model_name = j.value("model", d.name);
    d.bitstream = dir / j.at("bitstream").get<std::string>();
    d.hwh = dir / j.value("hwh", d.bitstream.stem().string() + ".hwh");
    if (j.contains("folding")) d.folding = dir / j.at("folding").get<std::string>();
    if (j.contains("fclk_mhz") && !j.at("fclk_mhz").is_number())
      throw error("\"fclk_mhz\" = " + j.at("fclk_mhz").dump().substr(0, 40) + " is not a number");
    d.fclk_mhz = j.value("fclk_mhz", 100.0);
    if (!j.contains("input") || !j.contains("output")) throw error("missing \"input\" or \"output\"");
    d.input = parse_port(j.at("input"), file.string() + " input");
    d.output = parse_port(j.at("output"), file.string() + " output");
    const std::string kind = j.at("output").value("kind", "top1");
    if (kind == "top1")
      d.kind = output_kind::top1;
    else if (kind == "logits")
      d.kind = output_kind::logits;
    else
      throw error("output kind '" + kind + "' is neither top1 nor logits");
  } catch (const nlohmann::json::exception& e) {
    throw error(file.string() + ": " + e.what());
  } catch (const error& e) {
    const std::string what = e.what();
    throw error(what.rfind(file.string(), 0) == 0 ? what : file.string() + ": " + what);
  }
  if (!(d.fclk_mhz > 0 && d.fclk_mhz <= 250))
    throw error(file.string() + ": fclk_mhz " + std::to_string(d.fclk_mhz) + " out of range (0, 250]");
  return d;
}

void overlay_description::check_against(const Model& model) const {
  const std::vector<int64_t> want_in = {1, model.input.height, model.input.width, model.input.channels};
  if (input.shape_normal.size() != 4 || !std::equal(want_in.begin() + 1, want_in.end(), input.shape_normal.begin() + 1))
    throw error("overlay " + name + ": input shape " + shape_text(input.shape_normal) + " does not match model " +
                model.name + " input " + shape_text(want_in) + " (NHWC)");
  if (input.datatype.bits != 8 || input.datatype.is_signed)
    throw error("overlay " + name + ": input datatype " + input.datatype.name +
                " is not UINT8 (the model takes pixels)");
  const std::size_t want_out = kind == output_kind::top1 ? 1 : model.num_classes();
  if (output.elements() != want_out)
    throw error("overlay " + name + ": output has " + std::to_string(output.elements()) +
                " elements per image, expected " + std::to_string(want_out) +
                (kind == output_kind::top1 ? " (top-1 index)" : " (one logit per class)"));
}

}  // namespace busi::fpga
