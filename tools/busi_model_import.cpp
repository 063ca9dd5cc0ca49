// `busi-model import MODEL.onnx -o MODEL.bqnn [--name NAME]`: hands over to the
// Python importer (training/busi_train/qonnx_import.py, numpy + onnx), which
// parses the QONNX graph, streamlines it and writes the package. Replaces this
// process with `PYTHON -m busi_train.qonnx_import ARGS...`, so its messages and
// exit status are the command's.
//   PYTHON: $BUSI_PYTHON, else /usr/bin/python3 (Debian's, with python3-onnx).
//   busi_train: $BUSI_TRAINING_DIR, else <prefix>/share/busi-infer/python next to
//   the installed program, else the source tree's training/ (a build tree).
#include "busi_model_import.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "busi/error.hpp"

namespace fs = std::filesystem;

namespace {

std::string training_dir() {
  if (const char* env = std::getenv("BUSI_TRAINING_DIR"); env && *env) return env;
  std::error_code ec;
  const auto self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto installed = self.parent_path().parent_path() / "share" / "busi-infer" / "python";
    if (fs::exists(installed / "busi_train" / "qonnx_import.py")) return installed.string();
  }
#ifdef BUSI_SOURCE_TRAINING_DIR
  if (fs::exists(fs::path(BUSI_SOURCE_TRAINING_DIR) / "busi_train" / "qonnx_import.py"))
    return BUSI_SOURCE_TRAINING_DIR;
#endif
  throw busi::error(
      "import: the Python importer (busi_train/qonnx_import.py) was not found; set BUSI_TRAINING_DIR "
      "to the folder holding busi_train");
}

}  // namespace

int run_import(int argc, char** argv) {
  const std::string dir = training_dir();
  const char* env_python = std::getenv("BUSI_PYTHON");
  const std::string python = env_python && *env_python ? env_python : "/usr/bin/python3";
  const char* old_path = std::getenv("PYTHONPATH");
  const std::string path = old_path && *old_path ? dir + ":" + old_path : dir;
  if (::setenv("PYTHONPATH", path.c_str(), 1) != 0)
    throw busi::error(std::string("import: setenv PYTHONPATH: ") + std::strerror(errno));
  std::vector<std::string> args = {python, "-m", "busi_train.qonnx_import"};
  for (int i = 2; i < argc; ++i) args.emplace_back(argv[i]);
  std::vector<char*> c_args;
  for (auto& a : args) c_args.push_back(a.data());
  c_args.push_back(nullptr);
  ::execv(python.c_str(), c_args.data());
  throw busi::error("import: cannot run " + python + " (set BUSI_PYTHON to a python3 with numpy and onnx): " +
                    std::strerror(errno));
}
