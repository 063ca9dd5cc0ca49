// peers_bench: this runtime's backends beside what a user would pick instead, in
// one process, on the same pre-processed images, one thread each:
//   cpu_int (quantized .bqnn), cpu_ref (float .bqnn on oneDNN),
//   onnxruntime (the float ONNX; libonnxruntime.so from npm's onnxruntime-node),
//   OpenCV DNN (the float ONNX through cv::dnn::readNetFromONNX).
// Engines take turns image by image, round after round, so a noisy neighbour
// slows all of them alike; medians and ratios to cpu_int are printed as a
// markdown table. PyTorch runs in benchmarks/peers/torch_peer.py (a separate
// process, with cpu_int timed beside it there).
//
//   OMP_NUM_THREADS=1 build/benchmarks/peers_bench --quantized models/busi-w2a4.bqnn \
//     --float models/busi-float.bqnn --onnx models/busi-float.onnx \
//     --ort benchmarks/peers/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1 \
//     --images ../shared/busi --count 60 --rounds 5
#include <dlfcn.h>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <iomanip>
#include <iostream>
#include <memory>
#include <numeric>
#include <sstream>

#include "busi/classifier.hpp"
#include "busi/error.hpp"
#include "busi/metrics.hpp"
#include "ort_c_api.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

// One engine: classify(input) returns the float logits (or, for cpu_int, the
// real logits from its scores' log) and the argmax.
struct Engine {
  std::string name, precision, detail;
  std::function<int(const busi::Tensor8&, std::vector<float>&)> run;
  std::vector<double> ms;
  std::vector<int> predictions;
  std::vector<std::vector<float>> scores;
};

std::vector<float> softmax(const std::vector<float>& logits) {
  std::vector<float> out(logits.size());
  const float top = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float v : logits) sum += std::exp(double(v - top));
  for (std::size_t i = 0; i < logits.size(); ++i) out[i] = float(std::exp(double(logits[i] - top)) / sum);
  return out;
}

int argmax(const std::vector<float>& v) { return int(std::max_element(v.begin(), v.end()) - v.begin()); }

Engine busi_engine(const std::string& backend, const std::string& model_path) {
  busi::ClassifierOptions options;
  // The raw network's softmax, as the peers compute it: without the package's
  // temperature (docs/safety.md).
  auto model = busi::Model::load(model_path);
  model.calibration.reset();
  options.model = std::make_shared<const busi::Model>(std::move(model));
  auto classifier = std::shared_ptr<busi::Classifier>(busi::make_classifier(backend, options));
  Engine e;
  e.name = backend;
  e.precision = backend == "cpu_ref" ? "fp32" : "int (" + classifier->model().name + ")";
  e.detail = classifier->describe();
  e.run = [classifier](const busi::Tensor8& input, std::vector<float>& scores) {
    const auto p = classifier->classify(input);
    scores = p.scores;
    return p.class_index;
  };
  return e;
}

// onnxruntime through its C API, loaded at run time.
class OrtSession {
 public:
  OrtSession(const std::string& library, const std::string& onnx) {
    handle_ = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_) throw busi::error("onnxruntime: dlopen " + library + ": " + dlerror());
    auto get_base = reinterpret_cast<const ort::ApiBase* (*)(void)>(dlsym(handle_, "OrtGetApiBase"));
    if (!get_base) throw busi::error("onnxruntime: " + library + " has no OrtGetApiBase");
    const ort::ApiBase* base = get_base();
    version_ = base->get_version_string();
    api_.table = static_cast<const void* const*>(base->get_api(ort::api_version));
    if (!api_.table) throw busi::error("onnxruntime " + version_ + ": C API version 13 not available");
    check(api_.create_env(ort::logging_warning, "peers_bench", &env_));
    ort::OrtSessionOptions* options = nullptr;
    check(api_.create_session_options(&options));
    check(api_.set_intra_threads(options, 1));
    check(api_.set_inter_threads(options, 1));
    check(api_.set_graph_optimization(options, ort::enable_all));
    check(api_.create_session(env_, onnx.c_str(), options, &session_));
    api_.release_session_options(options);
    check(api_.create_cpu_memory_info(ort::arena_allocator, ort::mem_type_default, &memory_));
  }
  ~OrtSession() {
    if (memory_) api_.release_memory_info(memory_);
    if (session_) api_.release_session(session_);
    // The env is left to process exit: onnxruntime's own guidance for the last env.
  }
  OrtSession(const OrtSession&) = delete;
  OrtSession& operator=(const OrtSession&) = delete;

  const std::string& version() const { return version_; }

  // Pixels as float [1][1][H][W], raw 0..255 (the export folds 1/255 into layer 1).
  std::vector<float> run(std::vector<float>& pixels, int height, int width) {
    const int64_t shape[4] = {1, 1, height, width};
    ort::OrtValue* input = nullptr;
    check(api_.create_tensor(memory_, pixels.data(), pixels.size() * sizeof(float), shape, 4, ort::element_float,
                             &input));
    const char* in_names[] = {"pixels"};
    const char* out_names[] = {"logits"};
    ort::OrtValue* output = nullptr;
    const ort::OrtValue* inputs[] = {input};
    ort::Status s = api_.run(session_, nullptr, in_names, inputs, 1, out_names, 1, &output);
    api_.release_value(input);
    check(s);
    void* data = nullptr;
    check(api_.tensor_data(output, &data));
    std::vector<float> logits(static_cast<float*>(data), static_cast<float*>(data) + 3);
    api_.release_value(output);
    return logits;
  }

 private:
  void check(ort::Status s) const {
    if (!s) return;
    const std::string message = api_.error_message(s);
    api_.release_status(s);
    throw busi::error("onnxruntime: " + message);
  }
  void* handle_ = nullptr;
  ort::Api api_{};
  std::string version_;
  ort::OrtEnv* env_ = nullptr;
  ort::OrtSession* session_ = nullptr;
  ort::OrtMemoryInfo* memory_ = nullptr;
};

Engine ort_engine(const std::string& library, const std::string& onnx) {
  auto session = std::make_shared<OrtSession>(library, onnx);
  Engine e;
  e.name = "onnxruntime";
  e.precision = "fp32";
  e.detail = "onnxruntime " + session->version() + " (npm onnxruntime-node), 1 intra-op thread, ORT_ENABLE_ALL";
  auto buffer = std::make_shared<std::vector<float>>();
  e.run = [session, buffer](const busi::Tensor8& input, std::vector<float>& scores) {
    buffer->assign(input.pixels.begin(), input.pixels.end());
    scores = softmax(session->run(*buffer, input.height, input.width));
    return argmax(scores);
  };
  return e;
}

Engine opencv_engine(const std::string& onnx) {
  auto net = std::make_shared<cv::dnn::Net>(cv::dnn::readNetFromONNX(onnx));
  net->setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  net->setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  Engine e;
  e.name = "opencv_dnn";
  e.precision = "fp32";
  e.detail = "OpenCV " + std::string(CV_VERSION) + " DNN (readNetFromONNX), cv::setNumThreads(1)";
  e.run = [net](const busi::Tensor8& input, std::vector<float>& scores) {
    const int shape[4] = {1, 1, input.height, input.width};
    cv::Mat blob(4, shape, CV_32F);
    std::copy(input.pixels.begin(), input.pixels.end(), blob.ptr<float>());
    net->setInput(blob);
    const cv::Mat out = net->forward();
    scores = softmax(std::vector<float>(out.ptr<float>(), out.ptr<float>() + out.total()));
    return argmax(scores);
  };
  return e;
}

double median(std::vector<double> v) { return busi::percentile(std::move(v), 50); }

int run(int argc, char** argv) {
  std::string quantized, float_model, onnx, ort_library, images = "../shared/busi";
  int count = 60, rounds = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) throw busi::error("option " + arg + " needs a value");
    const std::string value = argv[++i];
    if (arg == "--quantized")
      quantized = value;
    else if (arg == "--float")
      float_model = value;
    else if (arg == "--onnx")
      onnx = value;
    else if (arg == "--ort")
      ort_library = value;
    else if (arg == "--images")
      images = value;
    else if (arg == "--count")
      count = std::stoi(value);
    else if (arg == "--rounds")
      rounds = std::stoi(value);
    else
      throw busi::error("unknown option " + arg);
  }
  // oneDNN's OpenMP reads its thread count at library load: only the
  // environment can make cpu_ref single-threaded like the others.
  const char* omp = std::getenv("OMP_NUM_THREADS");
  if (!omp || std::string(omp) != "1") throw busi::error("run with OMP_NUM_THREADS=1 (cpu_ref's oneDNN uses OpenMP)");
  cv::setNumThreads(1);

  std::vector<Engine> engines;
  engines.push_back(busi_engine("cpu_int", quantized));
  if (!float_model.empty()) engines.push_back(busi_engine("cpu_ref", float_model));
  if (!onnx.empty() && !ort_library.empty()) engines.push_back(ort_engine(ort_library, onnx));
  if (!onnx.empty()) engines.push_back(opencv_engine(onnx));

  // Evenly spaced through the sorted list, so every class folder is represented.
  const auto files = busi::collect_images(images);
  std::vector<busi::Tensor8> inputs;
  const std::size_t step = std::max<std::size_t>(1, files.size() / std::size_t(count));
  for (std::size_t i = 0; i < files.size() && int(inputs.size()) < count; i += step)
    inputs.push_back(busi::load_image(files[i], 255, 255));

  for (auto& e : engines) {  // warm-up, and the predictions compared below
    e.scores.resize(inputs.size());
    e.predictions.resize(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) e.predictions[i] = e.run(inputs[i], e.scores[i]);
  }
  std::vector<float> scratch;
  for (int r = 0; r < rounds; ++r)
    for (std::size_t i = 0; i < inputs.size(); ++i)
      for (std::size_t k = 0; k < engines.size(); ++k) {
        auto& e = engines[(k + i + std::size_t(r)) % engines.size()];  // rotate who goes first
        const auto t0 = clock_type::now();
        e.run(inputs[i], scratch);
        e.ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
      }

  const double base = median(engines.front().ms);
  const Engine* reference = nullptr;  // cpu_ref: the float baseline the other float engines should match
  for (const auto& e : engines)
    if (e.name == "cpu_ref") reference = &e;
  std::cout << "| engine | precision | median ms | p90 ms | time / cpu_int | agrees with cpu_ref | max score diff |\n"
            << "|---|---|---|---|---|---|---|\n";
  for (const auto& e : engines) {
    std::size_t agree = 0;
    double diff = 0;
    if (reference)
      for (std::size_t i = 0; i < inputs.size(); ++i) {
        agree += e.predictions[i] == reference->predictions[i];
        for (std::size_t c = 0; c < e.scores[i].size(); ++c)
          diff = std::max(diff, double(std::abs(e.scores[i][c] - reference->scores[i][c])));
      }
    const double m = median(e.ms);
    std::cout << "| " << e.name << " | " << e.precision << " | " << std::fixed << std::setprecision(3) << m << " | "
              << busi::percentile(e.ms, 90) << " | " << std::setprecision(2) << m / base << "x | ";
    if (reference && &e != reference && e.precision == "fp32")
      std::cout << agree << "/" << inputs.size() << " | " << std::scientific << std::setprecision(1) << diff
                << std::fixed << " |\n";
    else
      std::cout << (reference && &e != reference
                        ? std::to_string(agree) + "/" + std::to_string(inputs.size()) + " (quantized)"
                        : "-")
                << " | - |\n";
  }
  std::cout << "\n" << inputs.size() << " images x " << rounds << " rounds, engines interleaved per image.\n";
  for (const auto& e : engines) std::cout << "- " << e.name << ": " << e.detail << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "peers_bench: error: " << e.what() << "\n";
    return 1;
  }
}
