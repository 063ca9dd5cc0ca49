#pragma once
// What every busi-* command-line tool shares: the exit codes (docs/cli.md),
// the top-level error handling ("<tool>: error: <message>"), and option helpers
// for Boost.Program_options.
#include <boost/program_options.hpp>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "busi/error.hpp"

namespace busi::cli {

namespace po = boost::program_options;

// Exit codes of every tool (docs/cli.md, "Exit codes").
enum exit_code : int {
  exit_ok = 0,            // everything asked for was done
  exit_some_failed = 1,   // some inputs (images, paths) failed; the others were done and reported
  exit_usage = 2,         // bad command line
  exit_fatal = 3,         // nothing could be done: bad model or report, unknown backend, device failure
  exit_disagreement = 4,  // busi-infer --verify: the two backends disagreed on at least one image
};

inline constexpr const char* exit_codes_help =
    "Exit codes (every busi-* tool):\n"
    "  0  done\n"
    "  1  some images (or paths) could not be read; the others were done and reported\n"
    "  2  bad command line\n"
    "  3  nothing could be done: bad model or report, unknown backend, device failure\n"
    "  4  busi-infer --verify: the two backends disagreed on at least one image\n";

// Thrown by a tool for a command-line mistake found after parsing (exit 2).
class usage_error : public po::error {
 public:
  using po::error::error;
};

// Runs a tool's body: a command-line error exits 2, any other error 3, each
// printed as "<tool>: error: <message>" on stderr.
template <typename Body>
int guarded_main(const char* tool, Body&& body) {
  try {
    return body();
  } catch (const po::error& e) {
    std::cerr << tool << ": error: " << e.what() << "\n";
    return exit_usage;
  } catch (const std::exception& e) {
    std::cerr << tool << ": error: " << e.what() << "\n";
    return exit_fatal;
  }
}

// Splits "KEY=VALUE"; throws usage_error naming `option` otherwise.
inline std::pair<std::string, std::string> key_value(const std::string& text, const std::string& option,
                                                     const std::string& form = "KEY=VALUE") {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw usage_error(option + " takes " + form + ", not '" + text + "'");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

// Parses argv: the `visible` options, and every positional argument into
// `positionals`. With --help, prints `visible`, the exit codes and `examples`
// and returns false; otherwise stores, notifies and returns true.
inline bool parse_command_line(int argc, char** argv, const po::options_description& visible,
                               std::vector<std::string>& positionals, po::variables_map& vm,
                               const std::string& examples = "") {
  po::options_description hidden;
  hidden.add_options()("positional", po::value(&positionals)->composing());
  po::options_description all;
  all.add(visible).add(hidden);
  po::positional_options_description positional;
  positional.add("positional", -1);
  po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
  if (vm.count("help")) {
    std::cout << visible << "\n" << exit_codes_help << examples;
    return false;
  }
  po::notify(vm);
  return true;
}

}  // namespace busi::cli
