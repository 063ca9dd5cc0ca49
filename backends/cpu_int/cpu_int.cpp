// The cpu_int classifier: picks an ISA once, at construction, and runs the
// prepared engine for every image.
#include <chrono>
#include <iterator>
#include <sstream>

#include "busi/backend.hpp"
#include "busi/classifier.hpp"
#include "busi/error.hpp"
#include "engine.hpp"
#include "reference.hpp"

#if defined(__arm__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace busi::cpu_int {

// Each fast path lives in its own file compiled with its own ISA flags; the
// CMake file defines BUSI_CPU_INT_<ISA> for the ones this build has.
#ifdef BUSI_CPU_INT_AVX2
std::unique_ptr<engine> make_avx2_engine(const Model& model);
#endif
#ifdef BUSI_CPU_INT_AVX512VNNI
std::unique_ptr<engine> make_avx512vnni_engine(const Model& model);
#endif
#ifdef BUSI_CPU_INT_NEON
std::unique_ptr<engine> make_neon_engine(const Model& model);
#endif

namespace {

// What this CPU can run (only the ISAs of this build's architecture are asked).
#if defined(__x86_64__) || defined(__i386__)
[[maybe_unused]] bool cpu_has_avx2() { return __builtin_cpu_supports("avx2"); }
[[maybe_unused]] bool cpu_has_avx512vnni() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}
#endif
#if defined(__aarch64__)
[[maybe_unused]] bool cpu_has_neon() { return true; }  // Advanced SIMD is mandatory on AArch64
#elif defined(__arm__) && defined(__linux__)
[[maybe_unused]] bool cpu_has_neon() { return (getauxval(AT_HWCAP) & HWCAP_NEON) != 0; }
#endif

std::unique_ptr<engine> make_reference_engine(const Model& model) { return std::make_unique<reference_engine>(model); }

// The ISA table, like the backend table: one row per engine compiled into this
// build, widest first, the scalar reference (the oracle) last. Adding an ISA:
// its enum value and name (engine.hpp), its engine_<isa>.cpp with CMake flags,
// and one row here.
struct isa_entry {
  isa id;
  bool (*supported)();  // this CPU can run it
  std::unique_ptr<engine> (*make)(const Model&);
};

const isa_entry isa_table[] = {
#ifdef BUSI_CPU_INT_AVX512VNNI
    {isa::avx512vnni, cpu_has_avx512vnni, make_avx512vnni_engine},
#endif
#ifdef BUSI_CPU_INT_AVX2
    {isa::avx2, cpu_has_avx2, make_avx2_engine},
#endif
#ifdef BUSI_CPU_INT_NEON
    {isa::neon, cpu_has_neon, make_neon_engine},
#endif
    {isa::scalar, [] { return true; }, make_reference_engine},
};

// The row of `which`; nullptr when this build does not have it.
const isa_entry* find_isa(isa which) {
  for (const auto& entry : isa_table)
    if (entry.id == which) return &entry;
  return nullptr;
}

}  // namespace

const char* isa_name(isa which) {
  const auto index = static_cast<std::size_t>(which);
  return index < std::size(isa_names) ? isa_names[index] : "?";
}

isa parse_isa(const std::string& name) {
  std::string known;
  for (std::size_t i = 0; i < std::size(isa_names); ++i) {
    if (name == isa_names[i]) return static_cast<isa>(i);
    known += std::string(", ") + isa_names[i];
  }
  throw error("cpu_int: unknown isa '" + name + "'; known: auto" + known);
}

bool isa_available(isa which) {
  const isa_entry* entry = find_isa(which);
  return entry && entry->supported();
}

std::vector<isa> available_isas() {
  std::vector<isa> out;
  for (const auto& entry : isa_table)
    if (entry.supported()) out.push_back(entry.id);
  return out;
}

void engine::run_timed(const uint8_t* pixels, int32_t* logits, double* step_ns) {
  const auto t0 = std::chrono::steady_clock::now();
  run(pixels, logits);
  step_ns[0] = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
}

std::unique_ptr<engine> make_engine(const Model& model, isa which) {
  const isa_entry* entry = find_isa(which);
  if (!entry) throw error(std::string("cpu_int: isa ") + isa_name(which) + " is not compiled into this build");
  if (!entry->supported())
    throw error(std::string("cpu_int: isa ") + isa_name(which) + " is not supported by this CPU");
  return entry->make(model);
}

namespace {
class cpu_int_classifier final : public Classifier {
 public:
  cpu_int_classifier(std::shared_ptr<const Model> model, isa which)
      : model_(std::move(model)), engine_(make_engine(*model_, which)) {}

  std::string backend() const override { return "cpu_int"; }
  std::string describe() const override {
    return std::string("cpu_int: integer-exact, isa ") + isa_name(engine_->kind()) + ", 1 thread";
  }
  const Model& model() const override { return *model_; }

 protected:
  void infer(std::span<const Tensor8> inputs, std::span<RawOutput> outputs) override {
    const std::size_t classes = model_->layers.back().output.size();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      outputs[i].logits.resize(classes);
      engine_->run(inputs[i].pixels.data(), outputs[i].logits.data());
    }
  }

 private:
  std::shared_ptr<const Model> model_;
  std::unique_ptr<engine> engine_;
};
}  // namespace

}  // namespace busi::cpu_int

namespace busi {

std::unique_ptr<Classifier> make_cpu_int_classifier(std::shared_ptr<const Model> model,
                                                    const BackendSettings& settings) {
  std::vector<std::string> names = {"auto"};
  names.insert(names.end(), std::begin(cpu_int::isa_names), std::end(cpu_int::isa_names));
  const std::string name = settings.one_of("isa", "auto", names);
  const cpu_int::isa which = name == "auto" ? cpu_int::available_isas().front() : cpu_int::parse_isa(name);
  return std::make_unique<cpu_int::cpu_int_classifier>(std::move(model), which);
}

}  // namespace busi
