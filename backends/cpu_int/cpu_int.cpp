// The cpu_int classifier: picks an ISA once, at construction, and runs the
// prepared engine for every image.
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
constexpr isa all_isas[] = {isa::avx512vnni, isa::avx2, isa::neon, isa::scalar};

bool cpu_supports(isa which) {
  switch (which) {
    case isa::scalar:
      return true;
#if defined(__x86_64__) || defined(__i386__)
    case isa::avx2:
      return __builtin_cpu_supports("avx2");
    case isa::avx512vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#endif
#if defined(__aarch64__)
    case isa::neon:
      return true;  // Advanced SIMD is mandatory on AArch64
#elif defined(__arm__) && defined(__linux__)
    case isa::neon:
      return (getauxval(AT_HWCAP) & HWCAP_NEON) != 0;
#endif
    default:
      return false;
  }
}

bool compiled_in(isa which) {
  switch (which) {
    case isa::scalar:
      return true;
#ifdef BUSI_CPU_INT_AVX2
    case isa::avx2:
      return true;
#endif
#ifdef BUSI_CPU_INT_AVX512VNNI
    case isa::avx512vnni:
      return true;
#endif
#ifdef BUSI_CPU_INT_NEON
    case isa::neon:
      return true;
#endif
    default:
      return false;
  }
}
}  // namespace

const char* isa_name(isa which) {
  switch (which) {
    case isa::scalar:
      return "scalar";
    case isa::avx2:
      return "avx2";
    case isa::avx512vnni:
      return "avx512vnni";
    case isa::neon:
      return "neon";
  }
  return "?";
}

isa parse_isa(const std::string& name) {
  for (isa which : all_isas)
    if (name == isa_name(which)) return which;
  throw error("cpu_int: unknown isa '" + name + "'; known: auto, avx512vnni, avx2, neon, scalar");
}

bool isa_available(isa which) { return compiled_in(which) && cpu_supports(which); }

std::vector<isa> available_isas() {
  std::vector<isa> out;
  for (isa which : all_isas)
    if (isa_available(which)) out.push_back(which);
  return out;
}

std::unique_ptr<engine> make_engine(const Model& model, isa which) {
  if (!compiled_in(which))
    throw error(std::string("cpu_int: isa ") + isa_name(which) + " is not compiled into this build");
  if (!cpu_supports(which))
    throw error(std::string("cpu_int: isa ") + isa_name(which) + " is not supported by this CPU");
  switch (which) {
#ifdef BUSI_CPU_INT_AVX2
    case isa::avx2:
      return make_avx2_engine(model);
#endif
#ifdef BUSI_CPU_INT_AVX512VNNI
    case isa::avx512vnni:
      return make_avx512vnni_engine(model);
#endif
#ifdef BUSI_CPU_INT_NEON
    case isa::neon:
      return make_neon_engine(model);
#endif
    default:
      return std::make_unique<reference_engine>(model);
  }
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
  for (cpu_int::isa which : cpu_int::all_isas) names.push_back(cpu_int::isa_name(which));
  const std::string name = settings.one_of("isa", "auto", names);
  const cpu_int::isa which = name == "auto" ? cpu_int::available_isas().front() : cpu_int::parse_isa(name);
  return std::make_unique<cpu_int::cpu_int_classifier>(std::move(model), which);
}

}  // namespace busi
