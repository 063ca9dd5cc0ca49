#include "busi/power.hpp"

#include <sys/wait.h>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <regex>
#include <sstream>
#include <stop_token>
#include <thread>

#include "busi/error.hpp"

namespace busi {
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

EnergyReading::EnergyReading()
    : joules(std::numeric_limits<double>::quiet_NaN()), watts(std::numeric_limits<double>::quiet_NaN()) {}

bool EnergyReading::available() const { return !std::isnan(watts) && !std::isnan(joules); }

namespace {

double seconds_between(steady::time_point a, steady::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Reads a sysfs file holding one integer. Throws device_error with errno.
long double read_sysfs_number(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw device_error(errno, path.string() + ": cannot open");
  long double value = 0;
  if (!(in >> value)) {
    // sysfs attributes that need privileges open fine but fail on read.
    const int err = errno;
    throw device_error(err, path.string() + ": cannot read a number");
  }
  return value;
}

std::string read_first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return line;
}

fs::path sys_path(const PowerOptions& options, const std::string& rest) { return options.sysfs_root / rest; }

// ---- none ------------------------------------------------------------------

class NoMeter final : public PowerMeter {
 public:
  explicit NoMeter(std::string why) : why_(std::move(why)) {}
  std::string source() const override { return "n/a"; }
  void start() override { begin_ = steady::now(); }
  EnergyReading stop() override {
    EnergyReading r;
    r.seconds = seconds_between(begin_, steady::now());
    r.note = why_;
    return r;
  }

 private:
  std::string why_;
  steady::time_point begin_;
};

// ---- energy counters (rapl, hwmon energy1_input, command "J") ---------------

// A meter whose source is a cumulative energy counter in joules.
class CounterMeter : public PowerMeter {
 public:
  void start() override {
    begin_ = steady::now();
    first_ = read_joules();
  }
  EnergyReading stop() override {
    const double last = read_joules();
    EnergyReading r;
    r.seconds = seconds_between(begin_, steady::now());
    r.source = source();
    if (last < first_) {
      r.note = "energy counter went backwards";
      return r;
    }
    r.joules = last - first_;
    if (r.seconds > 0) r.watts = r.joules / r.seconds;
    return r;
  }

 protected:
  // A non-decreasing count of joules (sources that wrap undo it themselves).
  virtual double read_joules() = 0;

 private:
  steady::time_point begin_;
  double first_ = 0;
};

struct RaplZone {
  fs::path dir;
  std::string name;
  long double max_range_uj = 0;
};

std::vector<RaplZone> find_rapl_zones(const PowerOptions& options) {
  const fs::path base = sys_path(options, "sys/class/powercap");
  std::vector<RaplZone> zones;
  std::error_code ec;
  if (!fs::is_directory(base, ec)) return zones;
  static const std::regex top_level(R"((intel|amd)-rapl:\d+)");
  for (const auto& entry : fs::directory_iterator(base, ec)) {
    if (!std::regex_match(entry.path().filename().string(), top_level)) continue;
    RaplZone z{entry.path(), read_first_line(entry.path() / "name"), 0};
    zones.push_back(z);
  }
  std::sort(zones.begin(), zones.end(), [](const auto& a, const auto& b) { return a.dir < b.dir; });
  // The platform zone ("psys") already contains the packages: sum packages only
  // when there are any, so nothing is counted twice.
  const bool has_package =
      std::any_of(zones.begin(), zones.end(), [](const auto& z) { return z.name.rfind("package", 0) == 0; });
  if (has_package) std::erase_if(zones, [](const auto& z) { return z.name.rfind("package", 0) != 0; });
  return zones;
}

class RaplMeter final : public CounterMeter {
 public:
  explicit RaplMeter(std::vector<RaplZone> zones) : zones_(std::move(zones)) {
    for (auto& z : zones_) z.max_range_uj = read_sysfs_number(z.dir / "max_energy_range_uj");
    read_joules();  // fail now (permissions) rather than at the first window
  }
  std::string source() const override {
    std::string s = "rapl (";
    for (std::size_t i = 0; i < zones_.size(); ++i)
      s += (i ? " + " : "") + zones_[i].dir.filename().string() + " " + zones_[i].name;
    return s + ")";
  }

 protected:
  // Sums the zones; a wrap of any one zone is undone per zone, so each zone's
  // counter is tracked separately.
  double read_joules() override {
    double total = 0;
    last_.resize(zones_.size());
    wrapped_.resize(zones_.size(), 0);
    for (std::size_t i = 0; i < zones_.size(); ++i) {
      const long double uj = read_sysfs_number(zones_[i].dir / "energy_uj");
      if (started_ && uj < last_[i]) wrapped_[i] += zones_[i].max_range_uj;
      last_[i] = uj;
      total += double((uj + wrapped_[i]) * 1e-6L);
    }
    started_ = true;
    return total;
  }

 private:
  std::vector<RaplZone> zones_;
  std::vector<long double> last_, wrapped_;
  bool started_ = false;
};

// ---- sampled power (hwmon power/current, command watts) --------------------

// A meter that samples instantaneous watts on a thread and integrates them
// over the window (trapezoids between timestamps).
class SampledMeter : public PowerMeter {
 public:
  explicit SampledMeter(std::chrono::milliseconds period) : period_(period) {}
  ~SampledMeter() override { halt(); }

  void start() override {
    halt();
    samples_.clear();
    error_.clear();
    begin_ = steady::now();
    samples_.push_back({begin_, sample_watts()});  // throws: unreadable source
    thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
  }

  EnergyReading stop() override {
    halt();
    EnergyReading r;
    r.source = source();
    const auto end = steady::now();
    r.seconds = seconds_between(begin_, end);
    if (!error_.empty()) {
      r.note = "sampling failed: " + error_;
      return r;
    }
    samples_.push_back({end, sample_watts()});
    double joules = 0;
    for (std::size_t i = 1; i < samples_.size(); ++i)
      joules += 0.5 * (samples_[i].watts + samples_[i - 1].watts) * seconds_between(samples_[i - 1].at, samples_[i].at);
    r.joules = joules;
    r.watts = r.seconds > 0 ? joules / r.seconds : samples_.back().watts;
    r.note = std::to_string(samples_.size()) + " samples";
    return r;
  }

 protected:
  virtual double sample_watts() = 0;

 private:
  struct Sample {
    steady::time_point at;
    double watts;
  };

  void run(std::stop_token stop) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    for (;;) {
      // Returns early only when stop is requested (the predicate never holds).
      cv.wait_for(lock, stop, period_, [] { return false; });
      if (stop.stop_requested()) return;
      try {
        const double w = sample_watts();
        std::lock_guard guard(samples_mutex_);
        samples_.push_back({steady::now(), w});
      } catch (const std::exception& e) {
        std::lock_guard guard(samples_mutex_);
        error_ = e.what();
        return;
      }
    }
  }

  void halt() {
    if (thread_.joinable()) {
      thread_.request_stop();
      thread_.join();
    }
  }

  std::chrono::milliseconds period_;
  steady::time_point begin_;
  std::mutex samples_mutex_;
  std::vector<Sample> samples_;
  std::string error_;
  std::jthread thread_;
};

// Driver names of hwmon devices that measure a board's supply: the INA2xx family
// (ina2xx, ina238 drivers) and common PMBus regulators/monitors.
bool is_power_monitor(const std::string& name) {
  static const std::vector<std::string> known = {
      "ina209",  "ina219",   "ina220",   "ina226",  "ina230",   "ina231",    "ina233",   "ina237", "ina238",
      "ina260",  "ina2xx",   "pmbus",    "ir38064", "irps5401", "isl68137",  "tps53679", "tps544", "ucd9000",
      "ucd9200", "max20751", "max20796", "lm25066", "adm1275",  "xdpe12284", "zl6100"};
  return std::find(known.begin(), known.end(), name) != known.end();
}

struct HwmonDevice {
  fs::path dir;
  std::string name;
};

std::vector<HwmonDevice> find_hwmon(const PowerOptions& options) {
  const fs::path base = sys_path(options, "sys/class/hwmon");
  std::vector<HwmonDevice> devices;
  std::error_code ec;
  if (!fs::is_directory(base, ec)) return devices;
  for (const auto& entry : fs::directory_iterator(base, ec))
    devices.push_back({entry.path(), read_first_line(entry.path() / "name")});
  std::sort(devices.begin(), devices.end(), [](const auto& a, const auto& b) {
    // hwmon10 after hwmon9
    const auto num = [](const fs::path& p) {
      const std::string s = p.filename().string();
      const auto digits = s.find_first_of("0123456789");
      return digits == std::string::npos ? -1L : std::strtol(s.c_str() + digits, nullptr, 10);
    };
    return num(a.dir) < num(b.dir);
  });
  return devices;
}

// power1..N_input present in a hwmon folder.
std::vector<fs::path> power_inputs(const fs::path& dir) {
  std::vector<fs::path> inputs;
  for (int i = 1; fs::exists(dir / ("power" + std::to_string(i) + "_input")); ++i)
    inputs.push_back(dir / ("power" + std::to_string(i) + "_input"));
  return inputs;
}

class HwmonPowerMeter final : public SampledMeter {
 public:
  HwmonPowerMeter(HwmonDevice device, std::chrono::milliseconds period)
      : SampledMeter(period), device_(std::move(device)), powers_(power_inputs(device_.dir)) {
    if (powers_.empty() && !(fs::exists(device_.dir / "curr1_input") && fs::exists(device_.dir / "in1_input")))
      throw device_error(ENOENT, "hwmon " + device_.dir.string() + " (" + device_.name +
                                     "): no power1_input, energy1_input or curr1_input + in1_input");
  }
  std::string source() const override {
    std::string what = powers_.empty()       ? "curr1_input*in1_input"
                       : powers_.size() == 1 ? "power1_input"
                                             : "power1.." + std::to_string(powers_.size()) + "_input";
    return "hwmon (" + device_.dir.filename().string() + " " + device_.name + ", " + what + ")";
  }

 protected:
  double sample_watts() override {
    if (!powers_.empty()) {
      long double uw = 0;
      for (const auto& p : powers_) uw += read_sysfs_number(p);
      return double(uw * 1e-6L);
    }
    // ina2xx: curr1 in mA, in1 (bus voltage) in mV.
    return double(read_sysfs_number(device_.dir / "curr1_input") * read_sysfs_number(device_.dir / "in1_input") *
                  1e-6L);
  }

 private:
  HwmonDevice device_;
  std::vector<fs::path> powers_;
};

class HwmonEnergyMeter final : public CounterMeter {
 public:
  explicit HwmonEnergyMeter(HwmonDevice device) : device_(std::move(device)) { read_joules(); }
  std::string source() const override {
    return "hwmon (" + device_.dir.filename().string() + " " + device_.name + ", energy1_input)";
  }

 protected:
  double read_joules() override { return double(read_sysfs_number(device_.dir / "energy1_input") * 1e-6L); }

 private:
  HwmonDevice device_;
};

std::unique_ptr<PowerMeter> make_hwmon_meter(const HwmonDevice& device, const PowerOptions& options) {
  if (fs::exists(device.dir / "energy1_input")) return std::make_unique<HwmonEnergyMeter>(device);
  return std::make_unique<HwmonPowerMeter>(device, options.sample_period);
}

// ---- external meter: command and log ---------------------------------------

struct CommandOutput {
  double value;
  bool joules;
};

// Runs `command` through /bin/sh under coreutils' timeout, so a meter that
// never answers ends the run with an error instead of hanging it.
CommandOutput run_meter_command(const std::string& command, std::chrono::milliseconds limit) {
  std::string quoted = "'";
  for (char c : command) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  quoted += "'";
  const std::string line = "timeout -k 1 " + std::to_string(double(limit.count()) / 1000.0) + " /bin/sh -c " + quoted;
  FILE* pipe = ::popen(line.c_str(), "r");
  if (!pipe) throw device_error(errno, "power command '" + command + "': cannot start");
  std::string output;
  char buffer[256];
  while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
  const int status = ::pclose(pipe);
  if (WIFEXITED(status) && (WEXITSTATUS(status) == 124 || WEXITSTATUS(status) == 137))
    throw device_error(ETIMEDOUT,
                       "power command '" + command + "': no answer within " + std::to_string(limit.count()) + " ms");
  if (status != 0)
    throw device_error(EIO, "power command '" + command + "': exited with status " +
                       std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : status));
  static const std::regex number(R"(^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*))");
  std::smatch match;
  if (!std::regex_search(output, match, number))
    throw device_error(EBADMSG,
                       "power command '" + command + "': output '" + output.substr(0, 60) + "' is not a number");
  const std::string unit = match[2];
  if (!unit.empty() && unit != "W" && unit != "J")
    throw device_error(EBADMSG, "power command '" + command + "': unit '" + unit + "' is neither W nor J");
  return {std::stod(match[1]), unit == "J"};
}

class CommandWattsMeter final : public SampledMeter {
 public:
  CommandWattsMeter(std::string command, std::chrono::milliseconds period, std::chrono::milliseconds limit)
      : SampledMeter(period), command_(std::move(command)), limit_(limit) {}
  std::string source() const override { return "command (" + command_ + ", W)"; }

 protected:
  double sample_watts() override { return run_meter_command(command_, limit_).value; }

 private:
  std::string command_;
  std::chrono::milliseconds limit_;
};

class CommandJoulesMeter final : public CounterMeter {
 public:
  CommandJoulesMeter(std::string command, std::chrono::milliseconds limit)
      : command_(std::move(command)), limit_(limit) {}
  std::string source() const override { return "command (" + command_ + ", J counter)"; }

 protected:
  double read_joules() override { return run_meter_command(command_, limit_).value; }

 private:
  std::string command_;
  std::chrono::milliseconds limit_;
};

class LogMeter final : public PowerMeter {
 public:
  explicit LogMeter(fs::path log) : log_(std::move(log)) {}
  std::string source() const override { return "log (" + log_.string() + ")"; }
  void start() override {
    if (!fs::exists(log_)) throw device_error(ENOENT, "power log " + log_.string() + ": no such file");
    begin_ = std::chrono::system_clock::now();
    steady_begin_ = steady::now();
  }
  EnergyReading stop() override {
    const auto end = std::chrono::system_clock::now();
    EnergyReading r;
    r.source = source();
    r.seconds = seconds_between(steady_begin_, steady::now());
    const double from = std::chrono::duration<double>(begin_.time_since_epoch()).count();
    const double to = std::chrono::duration<double>(end.time_since_epoch()).count();
    std::ifstream in(log_);
    if (!in) {
      r.note = "cannot read " + log_.string();
      return r;
    }
    std::string line;
    double sum = 0;
    std::size_t n = 0;
    while (std::getline(in, line)) {
      std::replace(line.begin(), line.end(), ',', ' ');
      std::istringstream fields(line);
      double t = 0, w = 0;
      if (fields >> t >> w && t >= from && t <= to) {
        sum += w;
        ++n;
      }
    }
    if (n == 0) {
      r.note = "no sample of " + log_.string() + " inside the window";
      return r;
    }
    r.watts = sum / double(n);
    r.joules = r.watts * r.seconds;
    r.note = std::to_string(n) + " samples";
    return r;
  }

 private:
  fs::path log_;
  std::chrono::system_clock::time_point begin_;
  steady::time_point steady_begin_;
};

// ---- estimate ----------------------------------------------------------------

class EstimateMeter final : public PowerMeter {
 public:
  EstimateMeter(double watts, std::string why) : watts_(watts), why_(std::move(why)) {}
  std::string source() const override {
    std::ostringstream s;
    s << "estimate (" << watts_ << " W";
    if (!why_.empty()) s << ", " << why_;
    s << ")";
    return s.str();
  }
  void start() override { begin_ = steady::now(); }
  EnergyReading stop() override {
    EnergyReading r;
    r.source = source();
    r.estimate = true;
    r.seconds = seconds_between(begin_, steady::now());
    r.watts = watts_;
    r.joules = watts_ * r.seconds;
    r.note = "not measured";
    return r;
  }

 private:
  double watts_;
  std::string why_;
  steady::time_point begin_;
};

double parse_watts(const std::string& text, const std::string& spec) {
  std::size_t used = 0;
  double w = 0;
  try {
    w = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !(w >= 0) || !std::isfinite(w))
    throw error("power source '" + spec + "': '" + text + "' is not a number of watts");
  return w;
}

}  // namespace

double read_vivado_power_report(const fs::path& report) {
  std::ifstream in(report);
  if (!in) throw error("power report " + report.string() + ": cannot open");
  static const std::regex total(R"(Total On-Chip Power \(W\)\s*\|\s*([0-9]*\.?[0-9]+))");
  std::string line;
  std::smatch match;
  while (std::getline(in, line))
    if (std::regex_search(line, match, total)) return std::stod(match[1]);
  throw error("power report " + report.string() +
              ": no 'Total On-Chip Power (W)' line (not a Vivado report_power text?)");
}

std::vector<std::string> describe_power_sources(const PowerOptions& options) {
  std::vector<std::string> lines;
  const auto zones = find_rapl_zones(options);
  if (zones.empty())
    lines.push_back("rapl: no " + sys_path(options, "sys/class/powercap").string() + "/intel-rapl:N zone");
  try {
    if (!zones.empty()) lines.push_back(RaplMeter(zones).source() + ": readable");
  } catch (const std::exception& e) {
    lines.push_back(std::string("rapl: ") + e.what());
  }
  const auto devices = find_hwmon(options);
  if (devices.empty()) lines.push_back("hwmon: no device under " + sys_path(options, "sys/class/hwmon").string());
  for (const auto& d : devices) {
    std::string line = "hwmon " + d.dir.filename().string() + " '" + d.name + "'";
    if (!is_power_monitor(d.name)) {
      lines.push_back(line + ": not a known power monitor (use hwmon:" + d.name + " to force)");
      continue;
    }
    try {
      lines.push_back(make_hwmon_meter(d, options)->source() + ": usable");
    } catch (const std::exception& e) {
      lines.push_back(line + ": " + e.what());
    }
  }
  return lines;
}

std::unique_ptr<PowerMeter> make_power_meter(const std::string& spec, const PowerOptions& options) {
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);

  if (spec == "none") return std::make_unique<NoMeter>("no power source chosen");
  if (spec == "auto") {
    const auto zones = find_rapl_zones(options);
    std::string tried = "auto found no readable source";
    if (!zones.empty()) {
      try {
        return std::make_unique<RaplMeter>(zones);
      } catch (const std::exception& e) {
        tried += std::string("; rapl: ") + e.what();
      }
    }
    for (const auto& d : find_hwmon(options)) {
      if (!is_power_monitor(d.name)) continue;
      try {
        return make_hwmon_meter(d, options);
      } catch (const std::exception& e) {
        tried += std::string("; ") + e.what();
      }
    }
    return std::make_unique<NoMeter>(tried);
  }
  if (spec == "rapl") {
    auto zones = find_rapl_zones(options);
    if (zones.empty())
      throw device_error(ENOENT,
                         "rapl: no intel-rapl:N zone under " + sys_path(options, "sys/class/powercap").string());
    return std::make_unique<RaplMeter>(std::move(zones));
  }
  if (kind == "hwmon") {
    for (const auto& d : find_hwmon(options)) {
      const bool chosen = arg.empty() ? is_power_monitor(d.name) : (d.name == arg || d.dir.filename() == arg);
      if (chosen) return make_hwmon_meter(d, options);
    }
    throw device_error(ENOENT, "hwmon: no " +
                                   (arg.empty() ? std::string("known power monitor") : "device '" + arg + "'") +
                                   " under " + sys_path(options, "sys/class/hwmon").string());
  }
  if (kind == "command" && !arg.empty()) {
    // Probe once: the unit decides how the window is measured.
    if (run_meter_command(arg, options.command_timeout).joules)
      return std::make_unique<CommandJoulesMeter>(arg, options.command_timeout);
    return std::make_unique<CommandWattsMeter>(arg, options.command_period, options.command_timeout);
  }
  if (kind == "log" && !arg.empty()) return std::make_unique<LogMeter>(arg);
  if (kind == "estimate" && !arg.empty()) {
    const auto second = arg.find(':');
    const double watts = parse_watts(arg.substr(0, second), spec);
    return std::make_unique<EstimateMeter>(watts, second == std::string::npos ? "" : arg.substr(second + 1));
  }
  if (kind == "estimate-report" && !arg.empty())
    return std::make_unique<EstimateMeter>(read_vivado_power_report(arg),
                                           "Vivado report_power total on-chip, " + fs::path(arg).filename().string());
  throw error(
      "unknown power source '" + spec +
      "'; use none, auto, rapl, hwmon[:NAME], command:CMD, log:PATH, estimate:WATTS[:WHY] or estimate-report:PATH");
}

}  // namespace busi
