#pragma once
// Power and energy over a measurement window, from real sources only. Every
// reading names its source; a reading without one says "n/a" and carries NaN,
// never a made-up number. Estimates (a fixed figure from an overlay's Vivado
// power report) are always flagged as such.
//
// Sources (the spec strings make_power_meter accepts):
//   none                 no meter: watts "n/a"
//   auto                 rapl if readable, else the first hwmon power monitor, else none
//   rapl                 Linux powercap energy counters, every top-level zone
//                        (/sys/class/powercap/intel-rapl:N/energy_uj, summed; Intel
//                        and AMD both expose them there), with wraparound at
//                        max_energy_range_uj. Whole package(s): includes every
//                        other process on the machine.
//   hwmon[:NAME]         a hwmon power monitor (/sys/class/hwmon/hwmonN): NAME is the
//                        device's `name` (ina226) or the hwmonN folder; without it,
//                        the first one whose name is a known power monitor (INA2xx,
//                        PMBus regulators). energy1_input (uJ) when present, else
//                        power1_input (uW), else curr1_input (mA) * in1_input (mV),
//                        sampled every sample_period and averaged.
//   command:CMD          an external meter's command, run through /bin/sh at the
//                        start, the end and every command_period in between. Its
//                        output's first number is watts, or a cumulative energy
//                        counter in joules when followed by "J" (then the window's
//                        energy is the difference). A command that fails, prints
//                        no number or takes longer than command_timeout is an error.
//   log:PATH             an external meter's log, read at stop(): lines
//                        "<unix time s> <watts>" (space, tab or comma separated;
//                        other lines ignored); the samples inside the window are
//                        averaged.
//   estimate:WATTS[:WHY] a fixed power figure, labelled "estimate" (WHY says where it
//                        comes from); joules = watts * seconds.
//   estimate-report:PATH the "Total On-Chip Power (W)" of a Vivado report_power
//                        text report (an overlay's power report), as an estimate.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace busi {

struct PowerOptions {
  // Prefix for /sys (tests point it at a fake tree).
  std::filesystem::path sysfs_root = "/";
  std::chrono::milliseconds sample_period{10};      // hwmon power/current sampling
  std::chrono::milliseconds command_period{250};    // command:CMD sampling (watts)
  std::chrono::milliseconds command_timeout{5000};  // a command that takes longer is an error
};

// Energy and mean power over one window.
struct EnergyReading {
  std::string source = "n/a";  // e.g. "rapl (intel-rapl:0 package-0)", "estimate (...)"
  bool estimate = false;       // true for estimate sources
  double seconds = 0;          // window length
  double joules;               // NaN when no source or no sample
  double watts;                // NaN likewise
  std::string note;            // why the figure is missing, or caveats ("3 samples")
  EnergyReading();
  bool available() const;
};

class PowerMeter {
 public:
  virtual ~PowerMeter() = default;
  // What it measures, e.g. "hwmon (hwmon3 ina226, power1_input)"; "n/a" for none.
  virtual std::string source() const = 0;
  // Opens a window. Throws device_error when the source cannot be read.
  virtual void start() = 0;
  // Closes the window opened by start() and returns what it measured.
  virtual EnergyReading stop() = 0;
};

// Makes a meter from a spec (above). Throws busi::error for an unknown spec and
// device_error when an explicitly named source is absent or unreadable
// ("rapl: /sys/class/powercap/intel-rapl:0/energy_uj: Permission denied").
std::unique_ptr<PowerMeter> make_power_meter(const std::string& spec, const PowerOptions& options = {});

// The sources `auto` would consider, one line each, readable or not and why
// (for busi-eval --list-power).
std::vector<std::string> describe_power_sources(const PowerOptions& options = {});

// The total on-chip power in watts of a Vivado report_power text report. Throws
// busi::error naming the file when it has no such line.
double read_vivado_power_report(const std::filesystem::path& report);

}  // namespace busi
