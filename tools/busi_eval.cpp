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

namespace {

const char* kUsage = R"(usage: busi-eval [options] PATH...
Evaluates the images under PATH (folders named after the classes: normal/,
benign/, malignant/) on each backend, with the same pre-processed inputs.

  --backends LIST        comma-separated backends (default: every one compiled in)
  --list FILE            only the images listed in FILE, one path per line relative to
                         the single PATH (e.g. training/splits/val.txt)
  --model FILE           a model package; repeat for several. Each backend runs every
                         given model of its kind (quantized: cpu_int, fpga; float:
                         cpu_ref), or the default model of its kind when none is given
  --set BACKEND.KEY=VAL  a backend setting (e.g. --set fpga.overlay=overlays/w2a4)
  --power SPEC           power source for every backend (default auto): none, auto,
                         rapl, hwmon[:NAME], command:CMD, log:PATH,
                         estimate:WATTS[:WHY], estimate-report:VIVADO_POWER.rpt
  --power-for B=SPEC     power source for backend B only (e.g. fpga=estimate-report:power.rpt)
  --list-power           print the power sources found on this machine and exit
  --sysfs-root DIR       read /sys under DIR (default /)
  --warmup N             untimed classifications before each run (default 1)
  --json FILE            write the report as JSON (--per-image adds predictions and latencies)
  --csv FILE             write one CSV row per run
  --html FILE            write the dashboard (self-contained HTML)
)";

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

std::string percent(double v) {
  if (std::isnan(v)) return "n/a";
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << 100 * v << "%";
  return s.str();
}

void print_run(const busi::BackendRun& run) {
  const auto rates = run.confusion.normal_vs_abnormal();
  std::cout << "== " << run.backend << " " << run.precision << " (" << run.model_name << ")\n"
            << "   " << run.description << "\n"
            << "accuracy " << percent(run.confusion.accuracy()) << " (" << run.confusion.correct() << "/"
            << run.confusion.total() << "), normal-vs-abnormal sensitivity " << percent(rates.sensitivity())
            << ", specificity " << percent(rates.specificity()) << "\n"
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

int run(int argc, char** argv) {
  busi::EvaluationOptions options;
  std::vector<std::filesystem::path> inputs;
  std::string json_path, csv_path, html_path, list_path;
  bool per_image = false, list_power = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw busi::error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "--backends") {
      options.backends = split(value(), ',');
    } else if (arg == "--list") {
      list_path = value();
    } else if (arg == "--model") {
      options.models.push_back(value());
    } else if (arg == "--set") {
      const std::string v = value();
      const auto dot = v.find('.'), eq = v.find('=');
      if (dot == std::string::npos || eq == std::string::npos || eq < dot)
        throw busi::error("--set " + v + ": expected BACKEND.KEY=VALUE");
      options.settings[v.substr(0, dot)][v.substr(dot + 1, eq - dot - 1)] = v.substr(eq + 1);
    } else if (arg == "--power") {
      options.power = value();
    } else if (arg == "--power-for") {
      const std::string v = value();
      const auto eq = v.find('=');
      if (eq == std::string::npos) throw busi::error("--power-for " + v + ": expected BACKEND=SPEC");
      options.backend_power[v.substr(0, eq)] = v.substr(eq + 1);
    } else if (arg == "--list-power") {
      list_power = true;
    } else if (arg == "--sysfs-root") {
      options.power_options.sysfs_root = value();
    } else if (arg == "--warmup") {
      options.warmup = std::stoi(value());
    } else if (arg == "--json") {
      json_path = value();
    } else if (arg == "--csv") {
      csv_path = value();
    } else if (arg == "--html") {
      html_path = value();
    } else if (arg == "--per-image") {
      per_image = true;
    } else if (!arg.empty() && arg[0] == '-') {
      throw busi::error("unknown option " + arg + "\n" + kUsage);
    } else {
      inputs.push_back(arg);
    }
  }
  if (list_power) {
    for (const auto& line : busi::describe_power_sources(options.power_options)) std::cout << line << "\n";
    return 0;
  }
  if (inputs.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  if (options.backends.empty()) options.backends = busi::available_backends();
  std::vector<std::filesystem::path> images_to_load = inputs;
  if (!list_path.empty()) {
    if (inputs.size() != 1) throw busi::error("--list takes exactly one PATH, the folder its lines are relative to");
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
  std::cerr << "busi-eval: " << images.inputs.size() << " images pre-processed once; " << plan.size() << " run(s)\n";

  auto report = busi::evaluate(images, plan, options);
  for (const auto& p : inputs) report.inputs.push_back(p.string());
  if (!list_path.empty()) report.inputs.push_back("listed in " + list_path);
  std::cout << "machine: " << report.machine.cpu << ", " << report.machine.cores << " cores, " << report.machine.kernel
            << "; commit " << report.commit << "\n\n";
  for (const auto& r : report.runs) print_run(r);
  if (!json_path.empty()) write_text(json_path, busi::report_json(report, per_image));
  if (!csv_path.empty()) write_text(csv_path, busi::report_csv(report));
  if (!html_path.empty()) write_text(html_path, busi::render_dashboard({report}));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "busi-eval: error: " << e.what() << "\n";
    return 1;
  }
}
