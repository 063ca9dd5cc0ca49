// busi-eval: evaluates labelled images on several backends with identical
// pre-processed inputs; prints a table and writes JSON / CSV / an HTML dashboard.
//   busi-eval --backends cpu_int,cpu_ref --json out.json --csv out.csv ../shared/busi
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "busi/dashboard.hpp"
#include "busi/error.hpp"
#include "busi/evaluation.hpp"
#include "busi/pipeline.hpp"
#include "cli.hpp"

namespace po = boost::program_options;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw busi::error("cannot write " + path);
}

void print_run(const busi::BackendRun& run) {
  const auto rates = run.confusion.normal_vs_abnormal();
  std::cout << "== " << run.backend << " " << run.precision << " (" << run.model_name << ")\n"
            << "   " << run.description << "\n"
            << busi::accuracy_summary(run.confusion, run.unseen) << "all " << run.confusion.total()
            << ": normal-vs-abnormal sensitivity " << busi::percent_text(rates.sensitivity()) << ", specificity "
            << busi::percent_text(rates.specificity()) << "\n"
            << run.confusion.to_text() << std::fixed << std::setprecision(3) << "latency ms p50 " << run.latency.p50_ms
            << " p90 " << run.latency.p90_ms << " p99 " << run.latency.p99_ms << ", throughput " << std::setprecision(1)
            << run.throughput << " img/s\n";
  if (run.energy.available())
    std::cout << "power " << std::setprecision(3) << run.energy.watts << " W, " << run.joules_per_image() * 1e3
              << " mJ/image" << (run.energy.estimate ? " [ESTIMATE]" : "") << " from " << run.energy.source << "\n";
  else
    std::cout << "power n/a (" << run.energy.note << ")\n";
  std::cout << "\n";
}

const char* const usage =
    "Usage: busi-eval [options] PATH...\n\n"
    "Evaluates the images under PATH (folders named after the classes: normal/,\n"
    "benign/, malignant/) on each backend, with the same pre-processed inputs, and\n"
    "prints a table; writes the report as JSON (docs/evaluation.md), CSV and HTML.\n\nOptions";

int run(int argc, char** argv) {
  busi::EvaluationOptions options;
  std::vector<std::string> input_names, models, sets, power_for;
  std::string backends, json_path, csv_path, html_path, list_path, sysfs_root;
  po::options_description visible(usage);
  visible.add_options()
      ("help,h", "show this help and exit")
      ("backends", po::value(&backends), "comma-separated backends (default: every one compiled in)")
      ("list", po::value(&list_path),
       "only the images listed in FILE, one path per line relative to the single PATH (e.g. training/splits/val.txt)")
      ("model", po::value(&models)->composing(),
       "a model package; repeat for several. Each backend runs every given model of its kind (quantized: cpu_int, "
       "fpga; float: cpu_ref), or the default model of its kind when none is given")
      ("set", po::value(&sets)->composing(), "a backend setting BACKEND.KEY=VALUE (e.g. fpga.overlay=overlays/w2a4)")
      ("power", po::value(&options.power)->default_value(options.power),
       "power source for every backend: none, auto, rapl, hwmon[:NAME], command:CMD, log:PATH, "
       "estimate:WATTS[:WHY], estimate-report:VIVADO_POWER.rpt")
      ("power-for", po::value(&power_for)->composing(),
       "power source for one backend, BACKEND=SPEC (e.g. fpga=estimate-report:power.rpt)")
      ("list-power", "print the power sources found on this machine and exit")
      ("sysfs-root", po::value(&sysfs_root), "read /sys under DIR (default /)")
      ("warmup", po::value(&options.warmup)->default_value(options.warmup),
       "untimed classifications before each run")
      ("json", po::value(&json_path), "write the report as JSON (schema in docs/evaluation.md)")
      ("per-image", "the JSON report also holds every image's prediction, verdict, reason and latency")
      ("referral-sensitivity", po::value<double>(),
       "refer at this sensitivity (e.g. 0.95), re-chosen from each model's stored referral curve")
      ("csv", po::value(&csv_path), "write one CSV row per run")
      ("html", po::value(&html_path), "write the dashboard (self-contained HTML)");
  po::variables_map vm;
  if (!busi::cli::parse_command_line(
          argc, argv, visible, input_names, vm,
          "\nExample:\n  busi-eval --backends cpu_int,cpu_ref --json out.json --html out.html ../shared/busi\n"))
    return busi::cli::exit_ok;
  const bool per_image = vm.count("per-image") != 0;
  if (vm.count("referral-sensitivity")) options.referral_sensitivity = vm["referral-sensitivity"].as<double>();
  options.backends = split(backends, ',');
  options.models.assign(models.begin(), models.end());
  if (!sysfs_root.empty()) options.power_options.sysfs_root = sysfs_root;
  for (const auto& set : sets) {
    const auto [target, value] = busi::cli::key_value(set, "--set", "BACKEND.KEY=VALUE");
    const auto dot = target.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == target.size())
      throw busi::cli::usage_error("--set takes BACKEND.KEY=VALUE, not '" + set + "'");
    options.settings[target.substr(0, dot)][target.substr(dot + 1)] = value;
  }
  for (const auto& spec : power_for) {
    const auto [backend, value] = busi::cli::key_value(spec, "--power-for", "BACKEND=SPEC");
    options.backend_power[backend] = value;
  }
  if (options.warmup < 0) throw busi::cli::usage_error("--warmup must be 0 or more");
  if (vm.count("list-power")) {
    for (const auto& line : busi::describe_power_sources(options.power_options)) std::cout << line << "\n";
    return busi::cli::exit_ok;
  }
  if (input_names.empty()) throw busi::cli::usage_error("no image folder given");
  const std::vector<std::filesystem::path> inputs(input_names.begin(), input_names.end());
  if (options.backends.empty()) options.backends = busi::available_backends();
  std::vector<std::filesystem::path> images_to_load = inputs;
  if (!list_path.empty()) {
    if (inputs.size() != 1)
      throw busi::cli::usage_error("--list takes exactly one PATH, the folder its lines are relative to");
    std::ifstream list(list_path);
    if (!list) throw busi::error("--list " + list_path + ": cannot open");
    images_to_load.clear();
    for (std::string line; std::getline(list, line);)
      if (!line.empty() && line[0] != '#') images_to_load.push_back(inputs.front() / line);
    if (images_to_load.empty()) throw busi::error("--list " + list_path + ": no image listed");
  }

  // Models, power sources and output folders first: a mistake in any fails
  // before any image is decoded. Labels come from the class names of the first
  // model that will run.
  const auto plan = busi::plan_runs(options);
  if (options.referral_sensitivity)
    for (const auto& run : plan) try {
        run.model->referral_at(*options.referral_sensitivity);
      } catch (const busi::error& e) {
        throw busi::cli::usage_error(std::string("--referral-sensitivity: ") + e.what());
      }
  for (const auto& backend : options.backends) {
    const auto it = options.backend_power.find(backend);
    busi::make_power_meter(it == options.backend_power.end() ? options.power : it->second, options.power_options);
  }
  for (const auto& out : {json_path, csv_path, html_path}) {
    if (out.empty()) continue;
    const auto folder = std::filesystem::absolute(out).parent_path();
    if (!std::filesystem::is_directory(folder))
      throw busi::error("cannot write " + out + ": no folder " + folder.string());
  }
  const busi::Model& first = *plan.front().model;
  const auto images =
      busi::load_labelled_images(images_to_load, first.class_names, first.input.height, first.input.width);
  for (const auto& e : images.unreadable) std::cerr << "busi-eval: " << e << "\n";
  std::cerr << "busi-eval: " << images.inputs.size() << " images pre-processed once";
  if (!images.unreadable.empty()) std::cerr << ", " << images.unreadable.size() << " could not be read";
  std::cerr << "; " << plan.size() << " run(s)\n";

  auto report = busi::evaluate(images, plan, options);
  for (const auto& p : inputs) report.inputs.push_back(p.string());
  if (!list_path.empty()) report.inputs.push_back("listed in " + list_path);
  std::cout << "machine: " << report.machine.cpu << ", " << report.machine.cores << " cores, " << report.machine.kernel
            << "; commit " << report.commit << "\n\n";
  for (const auto& r : report.runs) print_run(r);
  if (!json_path.empty()) write_text(json_path, busi::report_json(report, per_image));
  if (!csv_path.empty()) write_text(csv_path, busi::report_csv(report));
  if (!html_path.empty()) write_text(html_path, busi::render_dashboard({report}));
  return images.unreadable.empty() ? busi::cli::exit_ok : busi::cli::exit_some_failed;
}

}  // namespace

int main(int argc, char** argv) {
  return busi::cli::guarded_main("busi-eval", [&] { return run(argc, argv); });
}
