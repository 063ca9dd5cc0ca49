// cpu_int inference alone (no decoding, no pre-processing), one 255x255 image,
// one thread: the scalar reference beside every fast path this CPU runs, in
// one process with the engines interleaved round by round, so a noisy shared
// machine slows them alike. Prints a markdown table: wall-clock median,
// 10th/90th percentile, the median of the thread's CPU time (what a run costs
// when the scheduler does not take the core away mid-run), and speed-up over
// the reference.
//
//   cpu_int_bench [--model M.bqnn] [--image I.png] [--rounds R] [--steps]
// Defaults: the shipped quantized model; a fixed random image. --steps adds a
// second table: each fast path's median wall time per step (layer with its
// fused pool), from separate timed runs (engine::run_timed).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "busi/error.hpp"
#include "busi/image.hpp"
#include "busi/random_model.hpp"
#include "engine.hpp"

namespace {

double thread_cpu_us() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e6 + double(t.tv_nsec) * 1e-3;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::size_t(q * double(v.size() - 1) + 0.5)];
}

}  // namespace

int main(int argc, char** argv) try {
  using namespace busi;
  std::filesystem::path model_path;
  std::string image_path;
  int rounds = 20;
  bool steps = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--model" && i + 1 < argc)
      model_path = argv[++i];
    else if (arg == "--image" && i + 1 < argc)
      image_path = argv[++i];
    else if (arg == "--rounds" && i + 1 < argc)
      rounds = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--steps")
      steps = true;
    else
      throw error("usage: cpu_int_bench [--model M.bqnn] [--image I.png] [--rounds R] [--steps]; unknown argument '" + arg + "'");
  }
  const Model model = Model::load(model_path.empty() ? default_model_path(ModelKind::quantized) : model_path);
  const std::vector<uint8_t> pixels = image_path.empty()
                                          ? random_pixels(model.input.size(), 1)
                                          : load_image(image_path, model.input.height, model.input.width).pixels;

  struct runner {
    std::unique_ptr<cpu_int::engine> engine;
    int per_round;  // timed runs per round: about 20 ms of work
    std::vector<double> us, cpu_us;
  };
  std::vector<runner> runners;
  std::vector<int32_t> logits(model.layers.back().output.size()), first;
  for (cpu_int::isa which : cpu_int::available_isas()) {
    runner r{cpu_int::make_engine(model, which), 1, {}, {}};
    // Warm up, check it agrees with the first engine, size the rounds.
    const auto t0 = std::chrono::steady_clock::now();
    r.engine->run(pixels.data(), logits.data());
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    if (first.empty()) first = logits;
    if (logits != first) throw error(std::string("isa ") + cpu_int::isa_name(which) + " disagrees with the others");
    r.per_round = std::clamp(int(20000 / std::max(us, 1.0)), 1, 200);
    runners.push_back(std::move(r));
  }
  for (int round = 0; round < rounds; ++round)
    for (runner& r : runners)
      for (int k = 0; k < r.per_round; ++k) {
        const double c0 = thread_cpu_us();
        const auto t0 = std::chrono::steady_clock::now();
        r.engine->run(pixels.data(), logits.data());
        r.us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
        r.cpu_us.push_back(thread_cpu_us() - c0);
      }

  const auto reference = std::find_if(runners.begin(), runners.end(),
                                      [](const runner& r) { return r.engine->kind() == cpu_int::isa::scalar; });
  const double reference_median = percentile(reference->us, 0.5);
  std::printf("model %s (%s), input %dx%d %s, %d rounds\n\n", model.name.c_str(), model.source.string().c_str(),
              model.input.height, model.input.width, image_path.empty() ? "random pixels" : image_path.c_str(), rounds);
  const double reference_cpu = percentile(reference->cpu_us, 0.5);
  std::printf(
      "| isa | runs | median us | p10 us | p90 us | CPU-time median us | speed-up vs scalar (wall, CPU) |\n"
      "|---|---|---|---|---|---|---|\n");
  for (const runner& r : runners) {
    const double median = percentile(r.us, 0.5), cpu = percentile(r.cpu_us, 0.5);
    std::printf("| %s | %zu | %.1f | %.1f | %.1f | %.1f | %.1fx, %.1fx |\n", cpu_int::isa_name(r.engine->kind()),
                r.us.size(), median, percentile(r.us, 0.1), percentile(r.us, 0.9), cpu, reference_median / median,
                reference_cpu / cpu);
  }
  if (steps) {
    std::printf("\nPer step, median us of %d timed runs each (run_timed):\n\n", 20 * rounds);
    for (const runner& r : runners) {
      if (r.engine->kind() == cpu_int::isa::scalar) continue;
      const std::vector<std::string> names = r.engine->steps();
      std::vector<std::vector<double>> ns(names.size());
      std::vector<double> one(names.size());
      for (int k = 0; k < 20 * rounds; ++k) {
        r.engine->run_timed(pixels.data(), logits.data(), one.data());
        for (std::size_t i = 0; i < names.size(); ++i) ns[i].push_back(one[i]);
      }
      std::printf("| %s step | median us | p10 us |\n|---|---|---|\n", cpu_int::isa_name(r.engine->kind()));
      double total = 0;
      for (std::size_t i = 0; i < names.size(); ++i) {
        total += percentile(ns[i], 0.5) / 1e3;
        std::printf("| %s | %.1f | %.1f |\n", names[i].c_str(), percentile(ns[i], 0.5) / 1e3, percentile(ns[i], 0.1) / 1e3);
      }
      std::printf("| sum of medians | %.1f | |\n\n", total);
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "cpu_int_bench: error: %s\n", e.what());
  return 1;
}
