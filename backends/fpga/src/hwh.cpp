#include "hwh.hpp"

#include <pugixml.hpp>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "busi/error.hpp"
#include "busi/limits.hpp"
#include "sysfs.hpp"

namespace busi::fpga {

const ip_window& hwh_info::ip(const std::string& instance) const {
  const auto it = ips.find(instance);
  if (it != ips.end()) return it->second;
  std::string known;
  for (const auto& entry : ips) known += (known.empty() ? "" : ", ") + entry.first;
  throw device_error(ENOENT,
                     source.string() + ": no IP named '" + instance +
                         "' in the processing system's address map (found: " + (known.empty() ? "none" : known) + ")");
}

double hwh_info::fclk_mhz(int index) const {
  const auto it = ps_params.find("PCW_FPGA" + std::to_string(index) + "_PERIPHERAL_FREQMHZ");
  return it == ps_params.end() ? 0.0 : std::strtod(it->second.c_str(), nullptr);
}

namespace {

[[noreturn]] void malformed(const std::string& text, std::size_t offset, const std::filesystem::path& origin,
                            const std::string& what) {
  const auto end = text.begin() + static_cast<std::ptrdiff_t>(std::min(offset, text.size()));
  const auto line = 1 + std::count(text.begin(), end, '\n');
  throw device_error(EINVAL, origin.string() + ": malformed XML at line " + std::to_string(line) + ": " + what);
}

// The elements below `root` in document order, without recursion, refusing a
// tree deeper than kNestingDepth.
std::vector<pugi::xml_node> elements_below(pugi::xml_node root, const std::string& text,
                                           const std::filesystem::path& origin) {
  std::vector<pugi::xml_node> out;
  std::vector<std::pair<pugi::xml_node, int>> stack{{root, 0}};
  while (!stack.empty()) {
    const auto [node, depth] = stack.back();
    stack.pop_back();
    if (depth > limits::kNestingDepth)
      malformed(text, static_cast<std::size_t>(node.offset_debug()), origin,
                "elements nested deeper than " + std::to_string(limits::kNestingDepth) + " levels");
    if (depth > 0) out.push_back(node);
    std::vector<pugi::xml_node> children;
    for (auto c = node.first_child(); c; c = c.next_sibling())
      if (c.type() == pugi::node_element) children.push_back(c);
    for (auto c = children.rbegin(); c != children.rend(); ++c) stack.emplace_back(*c, depth + 1);
  }
  return out;
}

}  // namespace

hwh_info parse_hwh(const std::string& text, const std::filesystem::path& origin) {
  // Bounded before pugixml builds its tree: every element starts with '<'.
  if (static_cast<std::size_t>(std::count(text.begin(), text.end(), '<')) > 2 * limits::kXmlElements)
    malformed(text, 0, origin, "more than " + std::to_string(limits::kXmlElements) + " elements");
  // A .hwh has no DOCTYPE; refusing one keeps pugixml's (recursive) DOCTYPE
  // skipping out of reach of hostile input.
  if (text.find("<!DOCTYPE") != std::string::npos) malformed(text, text.find("<!DOCTYPE"), origin, "DOCTYPE not supported");
  pugi::xml_document doc;
  // encoding_auto: UTF-8 with or without the byte-order mark Vivado writes first.
  const auto parsed = doc.load_buffer(text.data(), text.size(), pugi::parse_default, pugi::encoding_auto);
  if (!parsed) malformed(text, static_cast<std::size_t>(parsed.offset), origin, parsed.description());
  const auto elements = elements_below(doc, text, origin);
  if (elements.empty()) malformed(text, 0, origin, "no root element");

  hwh_info info;
  info.source = origin;
  // The processing system: the first MODULE (wherever Vivado nested it) whose
  // MODTYPE is processing_system7 (Zynq-7000) or zynq_ultra_ps_e.
  pugi::xml_node ps;
  std::size_t ps_index = 0;
  for (std::size_t i = 0; i < elements.size() && !ps; ++i) {
    const std::string_view name = elements[i].name(), type = elements[i].attribute("MODTYPE").value();
    if (name == "MODULE" && (type == "processing_system7" || type == "zynq_ultra_ps_e")) {
      ps = elements[i];
      ps_index = i;
    }
  }
  if (!ps)
    throw device_error(EINVAL, origin.string() +
                                   ": no processing system module (MODTYPE processing_system7) found; "
                                   "is this a Vivado .hwh file?");
  for (auto p : ps.child("PARAMETERS").children("PARAMETER"))
    if (auto n = p.attribute("NAME"), v = p.attribute("VALUE"); n && v) info.ps_params[n.value()] = v.value();

  // Its MEMRANGEs: the elements after it in document order that lie inside it.
  for (std::size_t i = ps_index + 1; i < elements.size(); ++i) {
    const auto r = elements[i];
    bool inside = false;
    for (auto up = r.parent(); up && !inside; up = up.parent()) inside = up == ps;
    if (!inside) break;
    if (std::string_view(r.name()) != "MEMRANGE") continue;
    const auto instance = r.attribute("INSTANCE"), base = r.attribute("BASEVALUE"), high = r.attribute("HIGHVALUE");
    if (!instance || !base || !high) continue;
    const auto memtype = r.attribute("MEMTYPE");
    if (memtype && std::string_view(memtype.value()) != "REGISTER") continue;  // skip DDR/OCM memory ranges
    const std::string where = origin.string() + ": MEMRANGE of " + instance.value();
    ip_window w;
    w.base = parse_number(base.value(), where + " BASEVALUE");
    const uint64_t h = parse_number(high.value(), where + " HIGHVALUE");
    if (h < w.base)
      throw device_error(EINVAL, where + ": HIGHVALUE " + high.value() + " is below BASEVALUE " + base.value());
    w.range = h - w.base + 1;
    w.slave_interface = r.attribute("SLAVEBUSINTERFACE").value();
    info.ips.emplace(instance.value(), w);  // the first (control) interface wins
  }
  return info;
}

hwh_info load_hwh(const std::filesystem::path& path) {
  std::string reason;
  const auto bytes = limits::read_file(path, limits::kHwhFileBytes, reason);
  if (!bytes)
    throw device_error(reason == "no such file" ? ENOENT : EINVAL,
                       "cannot read hardware hand-off file " + path.string() + ": " + reason);
  return parse_hwh(std::string(bytes->begin(), bytes->end()), path);
}

}  // namespace busi::fpga
