// busi-dashboard: one self-contained HTML page from busi-eval JSON reports
// (several reports, e.g. the board's and a PC's, share the charts).
//   busi-dashboard -o dashboard.html board.json pc.json
#include <fstream>
#include <iostream>
#include <sstream>

#include "busi/dashboard.hpp"
#include "busi/error.hpp"
#include "cli.hpp"

namespace {

namespace po = boost::program_options;

int run(int argc, char** argv) {
  std::string out_path, title = "busi-infer evaluation";
  std::vector<std::string> report_paths;
  po::options_description visible(
      "Usage: busi-dashboard [options] -o OUT.html REPORT.json...\n\n"
      "One self-contained HTML page from busi-eval JSON reports (several reports,\n"
      "e.g. the board's and a PC's, share the charts).\n\nOptions");
  visible.add_options()
      ("help,h", "show this help and exit")
      ("output,o", po::value(&out_path), "the HTML file to write (required)")
      ("title", po::value(&title)->default_value(title), "the page title");
  po::variables_map vm;
  if (!busi::cli::parse_command_line(argc, argv, visible, report_paths, vm)) return busi::cli::exit_ok;
  if (out_path.empty()) throw busi::cli::usage_error("no output file given (-o OUT.html)");
  if (report_paths.empty()) throw busi::cli::usage_error("no report given");
  std::vector<busi::EvaluationReport> reports;
  for (const auto& path : report_paths) {
    std::ifstream in(path);
    if (!in) throw busi::error(path + ": cannot open");
    std::stringstream text;
    text << in.rdbuf();
    reports.push_back(busi::parse_report_json(text.str(), path));
  }
  std::ofstream out(out_path, std::ios::binary);
  out << busi::render_dashboard(reports, title);
  if (!out) throw busi::error("cannot write " + out_path);
  return busi::cli::exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  return busi::cli::guarded_main("busi-dashboard", [&] { return run(argc, argv); });
}
