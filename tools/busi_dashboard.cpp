// busi-dashboard: one self-contained HTML page from busi-eval JSON reports
// (several reports, e.g. the board's and a PC's, share the charts).
//   busi-dashboard -o dashboard.html board.json pc.json
#include <fstream>
#include <iostream>
#include <sstream>

#include "busi/dashboard.hpp"
#include "busi/error.hpp"

namespace {

const char* kUsage = "usage: busi-dashboard [--title TEXT] -o OUT.html REPORT.json...\n";

int run(int argc, char** argv) {
  std::string out_path, title = "busi-infer evaluation";
  std::vector<busi::EvaluationReport> reports;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "-o" || arg == "--title") && i + 1 < argc) {
      (arg == "-o" ? out_path : title) = argv[++i];
    } else if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (!arg.empty() && arg[0] == '-') {
      throw busi::error("unknown option " + arg + "\n" + kUsage);
    } else {
      std::ifstream in(arg);
      if (!in) throw busi::error(arg + ": cannot open");
      std::stringstream text;
      text << in.rdbuf();
      reports.push_back(busi::parse_report_json(text.str(), arg));
    }
  }
  if (out_path.empty() || reports.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  std::ofstream out(out_path, std::ios::binary);
  out << busi::render_dashboard(reports, title);
  if (!out) throw busi::error("cannot write " + out_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "busi-dashboard: error: " << e.what() << "\n";
    return 1;
  }
}
