#pragma once
// The few onnxruntime C API entry points the peer benchmark calls, declared here
// because npm's onnxruntime-node ships libonnxruntime.so but no C headers.
//
// OrtApi is a table of function pointers that only ever grows at the end (the C
// API's ABI rule), so a call is the pointer at a fixed index. The indices below
// are positions in `struct OrtApi` of onnxruntime_c_api.h (ORT_API_VERSION 13,
// unchanged in later versions): 2 GetErrorMessage, 3 CreateEnv, 7 CreateSession,
// 9 Run, 10 CreateSessionOptions, 23 SetSessionGraphOptimizationLevel,
// 24 SetIntraOpNumThreads, 25 SetInterOpNumThreads, 49 CreateTensorWithDataAsOrtValue,
// 51 GetTensorMutableData, 69 CreateCpuMemoryInfo, 93 ReleaseStatus,
// 94 ReleaseMemoryInfo, 95 ReleaseSession, 96 ReleaseValue, 100 ReleaseSessionOptions.
#include <cstddef>
#include <cstdint>

namespace ort {

struct OrtStatus;
struct OrtEnv;
struct OrtSession;
struct OrtSessionOptions;
struct OrtValue;
struct OrtMemoryInfo;
struct OrtRunOptions;

constexpr uint32_t api_version = 13;
constexpr int logging_warning = 2;   // ORT_LOGGING_LEVEL_WARNING
constexpr int enable_all = 99;       // ORT_ENABLE_ALL graph optimizations
constexpr int element_float = 1;     // ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
constexpr int arena_allocator = 1;   // OrtArenaAllocator
constexpr int mem_type_default = 0;  // OrtMemTypeDefault

using Status = OrtStatus*;

struct ApiBase {
  const void* (*get_api)(uint32_t version);
  const char* (*get_version_string)();
};

// Typed views of the table entries used.
struct Api {
  const void* const* table;

  template <typename Fn>
  Fn at(int index) const {
    return reinterpret_cast<Fn>(table[index]);
  }

  const char* error_message(const OrtStatus* s) const { return at<const char* (*)(const OrtStatus*)>(2)(s); }
  Status create_env(int level, const char* id, OrtEnv** out) const {
    return at<Status (*)(int, const char*, OrtEnv**)>(3)(level, id, out);
  }
  Status create_session(OrtEnv* env, const char* path, const OrtSessionOptions* o, OrtSession** out) const {
    return at<Status (*)(OrtEnv*, const char*, const OrtSessionOptions*, OrtSession**)>(7)(env, path, o, out);
  }
  Status run(OrtSession* s, const OrtRunOptions* ro, const char* const* in_names, const OrtValue* const* in,
             std::size_t n_in, const char* const* out_names, std::size_t n_out, OrtValue** out) const {
    return at<Status (*)(OrtSession*, const OrtRunOptions*, const char* const*, const OrtValue* const*, std::size_t,
                         const char* const*, std::size_t, OrtValue**)>(9)(s, ro, in_names, in, n_in, out_names, n_out,
                                                                          out);
  }
  Status create_session_options(OrtSessionOptions** out) const { return at<Status (*)(OrtSessionOptions**)>(10)(out); }
  Status set_graph_optimization(OrtSessionOptions* o, int level) const {
    return at<Status (*)(OrtSessionOptions*, int)>(23)(o, level);
  }
  Status set_intra_threads(OrtSessionOptions* o, int n) const {
    return at<Status (*)(OrtSessionOptions*, int)>(24)(o, n);
  }
  Status set_inter_threads(OrtSessionOptions* o, int n) const {
    return at<Status (*)(OrtSessionOptions*, int)>(25)(o, n);
  }
  Status create_tensor(const OrtMemoryInfo* info, void* data, std::size_t bytes, const int64_t* shape, std::size_t rank,
                       int type, OrtValue** out) const {
    return at<Status (*)(const OrtMemoryInfo*, void*, std::size_t, const int64_t*, std::size_t, int, OrtValue**)>(49)(
        info, data, bytes, shape, rank, type, out);
  }
  Status tensor_data(OrtValue* v, void** out) const { return at<Status (*)(OrtValue*, void**)>(51)(v, out); }
  Status create_cpu_memory_info(int allocator, int mem_type, OrtMemoryInfo** out) const {
    return at<Status (*)(int, int, OrtMemoryInfo**)>(69)(allocator, mem_type, out);
  }
  void release_status(OrtStatus* s) const { at<void (*)(OrtStatus*)>(93)(s); }
  void release_memory_info(OrtMemoryInfo* m) const { at<void (*)(OrtMemoryInfo*)>(94)(m); }
  void release_session(OrtSession* s) const { at<void (*)(OrtSession*)>(95)(s); }
  void release_value(OrtValue* v) const { at<void (*)(OrtValue*)>(96)(v); }
  void release_session_options(OrtSessionOptions* o) const { at<void (*)(OrtSessionOptions*)>(100)(o); }
};

}  // namespace ort
