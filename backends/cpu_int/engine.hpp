#pragma once
// Internal API of the cpu_int backend (not installed), shared by its
// classifier (cpu_int.cpp), the tests and the benchmarks.
//
// An engine is one prepared way to run a quantized Model: the scalar reference
// or a SIMD fast path. Construction validates, packs weights and allocates all
// scratch; run() neither checks nor allocates. Every fast path returns the
// reference's int32 logits bit for bit. An engine keeps scratch buffers: one
// instance per thread. The Model must outlive the engine.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "busi/model.hpp"

namespace busi::cpu_int {

// Every engine kind; which of them a build has is the ISA table in cpu_int.cpp.
enum class isa { scalar, avx2, avx512vnni, neon };
// Their names, in the enum's order (the "isa" setting takes them, or "auto").
inline constexpr const char* isa_names[] = {"scalar", "avx2", "avx512vnni", "neon"};

// isa_names[which].
const char* isa_name(isa which);
// Parses a name from isa_name(); throws busi::error listing the known names.
isa parse_isa(const std::string& name);
// Whether this build has the path compiled in and this CPU can run it.
bool isa_available(isa which);
// Every ISA isa_available() accepts, widest first, scalar last.
std::vector<isa> available_isas();

class engine {
 public:
  virtual ~engine() = default;
  // pixels: model.input.height * model.input.width uint8, row-major.
  // logits: model.layers.back().output.size() int32, CHW order.
  virtual void run(const uint8_t* pixels, int32_t* logits) = 0;
  virtual isa kind() const = 0;
  // For the benchmark's per-layer profile (benchmarks/cpu_int_bench.cpp): the
  // names of the steps run() takes, and run() with each step's wall-clock
  // nanoseconds written to step_ns[0 .. steps().size()). The reference is one
  // step.
  virtual std::vector<std::string> steps() const { return {"all"}; }
  virtual void run_timed(const uint8_t* pixels, int32_t* logits, double* step_ns);
};

// Makes the engine for `which`; throws busi::error naming the ISA when this
// CPU or build lacks it, model_error when the model is not quantized.
std::unique_ptr<engine> make_engine(const Model& model, isa which);

// Throws model_error unless `model` is a quantized model whose shapes
// Model::validate() derived (every engine's constructor calls it).
void check_model(const Model& model);

}  // namespace busi::cpu_int
