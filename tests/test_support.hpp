#pragma once
// Small helpers shared by the test suites: where the BUSI images are, and a
// scratch directory that cleans itself up.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace busi::test {

// $BUSI_DATA, else the folder configured by CMake (../shared/busi beside the checkout).
inline std::filesystem::path busi_data_dir() {
  if (const char* env = std::getenv("BUSI_DATA")) return env;
  return BUSI_DATA_DIR;
}

// Skips the calling test, with the reason, when the BUSI images are absent.
#define BUSI_REQUIRE_DATA()                                                                        \
  do {                                                                                             \
    if (!std::filesystem::is_directory(::busi::test::busi_data_dir() / "benign"))                  \
      GTEST_SKIP() << "BUSI images not found at " << ::busi::test::busi_data_dir()                 \
                   << " (set BUSI_DATA to the folder holding normal/, benign/, malignant/)";       \
  } while (0)

// ARM builds run their tests under qemu (or on the board's slow cores), where
// the scalar reference and the emulated accelerator take about half a second
// per image: the suites that walk the BUSI images take every 7th there (101 of
// 702), every image on x86.
#if defined(__arm__) || defined(__aarch64__)
inline constexpr std::size_t busi_image_stride = 7;
#else
inline constexpr std::size_t busi_image_stride = 1;
#endif

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "busi-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// The message `f` throws, or "(no exception)": tests compare messages, not just types.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

inline void write_file(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}
inline std::vector<uint8_t> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace busi::test
