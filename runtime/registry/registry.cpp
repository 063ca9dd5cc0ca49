// The backend table: one row per backend, compiled in when its CMake option is
// on: its name, the model kind it runs, the settings it takes, and its factory.
// make_classifier() checks the settings and resolves the model here, once, so
// a factory only builds.
#include <sstream>

#include "busi/backend.hpp"
#include "busi/classifier.hpp"
#include "busi/error.hpp"

namespace busi {

using BackendFactory = std::unique_ptr<Classifier> (*)(std::shared_ptr<const Model>, const BackendSettings&);

#ifdef BUSI_HAS_CPU_INT
std::unique_ptr<Classifier> make_cpu_int_classifier(std::shared_ptr<const Model>, const BackendSettings&);
#endif
#ifdef BUSI_HAS_CPU_REF
std::unique_ptr<Classifier> make_cpu_ref_classifier(std::shared_ptr<const Model>, const BackendSettings&);
#endif
#ifdef BUSI_HAS_FPGA
std::unique_ptr<Classifier> make_fpga_classifier(std::shared_ptr<const Model>, const BackendSettings&);
#endif

namespace {
struct BackendEntry {
  const char* name;
  ModelKind kind;
  std::vector<std::string> settings;  // the keys it takes (docs/cli.md, the backend's header)
  BackendFactory make;
};

const std::vector<BackendEntry>& backend_table() {
  static const std::vector<BackendEntry> table = {
#ifdef BUSI_HAS_CPU_INT
      {"cpu_int", ModelKind::quantized, {"isa"}, make_cpu_int_classifier},
#endif
#ifdef BUSI_HAS_CPU_REF
      {"cpu_ref", ModelKind::floating, {}, make_cpu_ref_classifier},
#endif
#ifdef BUSI_HAS_FPGA
      {"fpga",
       ModelKind::quantized,
       {"overlay", "device_root", "timeout_ms", "buffer_stack", "program", "fclk_mhz", "max_batch",
        "max_failures"},
       make_fpga_classifier},
#endif
  };
  return table;
}

const BackendEntry& find_backend(const std::string& name) {
  for (const auto& entry : backend_table())
    if (name == entry.name) return entry;
  std::ostringstream msg;
  msg << "unknown backend '" << name << "'; available: ";
  const auto names = available_backends();
  for (std::size_t i = 0; i < names.size(); ++i) msg << (i ? ", " : "") << names[i];
  if (names.empty()) msg << "(none compiled in)";
  throw error(msg.str());
}
}  // namespace

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
  for (const auto& entry : backend_table()) names.push_back(entry.name);
  return names;
}

ModelKind backend_model_kind(const std::string& backend) { return find_backend(backend).kind; }

std::unique_ptr<Classifier> make_classifier(const std::string& backend, const ClassifierOptions& options) {
  const BackendEntry& entry = find_backend(backend);
  const BackendSettings settings(entry.name, options.settings, entry.settings);
  return entry.make(resolve_model(options, entry.kind, entry.name), settings);
}

}  // namespace busi
