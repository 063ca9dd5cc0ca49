#include "hwh.hpp"

#include <cerrno>
#include "busi/error.hpp"
#include "busi/limits.hpp"
#include "sysfs.hpp"
#include "xml_reader.hpp"

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

// Depth-first search for MODULE elements wherever Vivado nested them (the
// reader limits the depth, so the recursion is at most kNestingDepth deep).
void collect_modules(const xml_element& e, std::vector<const xml_element*>& out) {
  for (const auto& c : e.children) {
    if (c->name == "MODULE")
      out.push_back(c.get());
    else
      collect_modules(*c, out);
  }
}

void collect_named(const xml_element& e, std::string_view name, std::vector<const xml_element*>& out) {
  for (const auto& c : e.children) {
    if (c->name == name) out.push_back(c.get());
    collect_named(*c, name, out);
  }
}

}  // namespace

hwh_info parse_hwh(const std::string& text, const std::filesystem::path& origin) {
  const auto root = parse_xml(text, origin.string());
  hwh_info info;
  info.source = origin;
  std::vector<const xml_element*> modules;
  collect_modules(*root, modules);
  const xml_element* ps = nullptr;
  for (const auto* m : modules) {
    const auto* type = m->attribute("MODTYPE");
    if (type && (*type == "processing_system7" || *type == "zynq_ultra_ps_e")) {
      ps = m;
      break;
    }
  }
  if (!ps)
    throw device_error(EINVAL, origin.string() +
                                   ": no processing system module (MODTYPE processing_system7) found; "
                                   "is this a Vivado .hwh file?");
  if (const auto* params = ps->child("PARAMETERS"))
    for (const auto* p : params->children_named("PARAMETER"))
      if (const auto* n = p->attribute("NAME"), *v = p->attribute("VALUE"); n && v) info.ps_params[*n] = *v;

  std::vector<const xml_element*> ranges;
  collect_named(*ps, "MEMRANGE", ranges);
  for (const auto* r : ranges) {
    const auto* instance = r->attribute("INSTANCE");
    const auto* base = r->attribute("BASEVALUE");
    const auto* high = r->attribute("HIGHVALUE");
    if (!instance || !base || !high) continue;
    const auto* memtype = r->attribute("MEMTYPE");
    if (memtype && *memtype != "REGISTER") continue;  // skip DDR/OCM memory ranges
    const std::string where = origin.string() + ": MEMRANGE of " + *instance;
    ip_window w;
    w.base = parse_number(*base, where + " BASEVALUE");
    const uint64_t h = parse_number(*high, where + " HIGHVALUE");
    if (h < w.base) throw device_error(EINVAL, where + ": HIGHVALUE " + *high + " is below BASEVALUE " + *base);
    w.range = h - w.base + 1;
    if (const auto* s = r->attribute("SLAVEBUSINTERFACE")) w.slave_interface = *s;
    info.ips.emplace(*instance, w);  // the first (control) interface wins
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
