// The backend table. Each backend library exports one factory function; a
// backend is listed when its CMake option compiled it in.
#include <functional>
#include <sstream>

#include "busi/classifier.hpp"
#include "busi/error.hpp"

namespace busi {
#ifdef BUSI_HAS_CPU_INT
std::unique_ptr<Classifier> make_cpu_int_classifier(const ClassifierOptions&);
#endif
#ifdef BUSI_HAS_CPU_REF
std::unique_ptr<Classifier> make_cpu_ref_classifier(const ClassifierOptions&);
#endif
#ifdef BUSI_HAS_FPGA
std::unique_ptr<Classifier> make_fpga_classifier(const ClassifierOptions&);
#endif

namespace {
struct BackendEntry {
  const char* name;
  ModelKind kind;
  std::function<std::unique_ptr<Classifier>(const ClassifierOptions&)> make;
};

const std::vector<BackendEntry>& backend_table() {
  static const std::vector<BackendEntry> table = {
#ifdef BUSI_HAS_CPU_INT
      {"cpu_int", ModelKind::quantized, make_cpu_int_classifier},
#endif
#ifdef BUSI_HAS_CPU_REF
      {"cpu_ref", ModelKind::floating, make_cpu_ref_classifier},
#endif
#ifdef BUSI_HAS_FPGA
      {"fpga", ModelKind::quantized, make_fpga_classifier},
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
  return find_backend(backend).make(options);
}

}  // namespace busi
