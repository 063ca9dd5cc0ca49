// Power sources against fake sysfs trees (powercap RAPL, hwmon INA2xx/PMBus),
// external meter commands and logs, and labelled estimates.
#include <gtest/gtest.h>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <fstream>
#include <random>
#include <thread>

#include "busi/error.hpp"
#include "busi/power.hpp"

namespace fs = std::filesystem;

namespace {

class PowerMeters : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    root_ = fs::temp_directory_path() / ("busi_power_" + std::to_string(rd()));
    fs::create_directories(root_);
    options_.sysfs_root = root_;
    options_.sample_period = std::chrono::milliseconds(1);
    options_.command_period = std::chrono::milliseconds(5);
  }
  void TearDown() override { fs::remove_all(root_); }

  void write(const std::string& relative, const std::string& text) {
    const fs::path p = root_ / relative;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text << "\n";
  }
  static void pause() { std::this_thread::sleep_for(std::chrono::milliseconds(20)); }

  fs::path root_;
  busi::PowerOptions options_;
};

TEST_F(PowerMeters, NoSourceIsNotANumber) {
  auto meter = busi::make_power_meter("auto", options_);
  EXPECT_EQ(meter->source(), "n/a");
  meter->start();
  const auto r = meter->stop();
  EXPECT_FALSE(r.available());
  EXPECT_TRUE(std::isnan(r.watts));
  EXPECT_TRUE(std::isnan(r.joules));
  EXPECT_EQ(r.source, "n/a");
  EXPECT_NE(r.note.find("no readable source"), std::string::npos);
  EXPECT_FALSE(busi::make_power_meter("none", options_)->stop().available());
}

TEST_F(PowerMeters, RaplSumsPackagesAndUndoesWraparound) {
  const std::string pkg0 = "sys/class/powercap/intel-rapl:0/", pkg1 = "sys/class/powercap/intel-rapl:1/";
  write(pkg0 + "name", "package-0");
  write(pkg0 + "energy_uj", "1000000");
  write(pkg0 + "max_energy_range_uj", "262143328850");
  write(pkg1 + "name", "package-1");
  write(pkg1 + "energy_uj", "262143000000");  // about to wrap
  write(pkg1 + "max_energy_range_uj", "262143328850");
  // A sub-zone and the platform zone must not be counted on top of the packages.
  write("sys/class/powercap/intel-rapl:0:0/name", "core");
  write("sys/class/powercap/intel-rapl:0:0/energy_uj", "5");
  write("sys/class/powercap/intel-rapl:2/name", "psys");
  write("sys/class/powercap/intel-rapl:2/energy_uj", "7");
  write("sys/class/powercap/intel-rapl:2/max_energy_range_uj", "262143328850");

  auto meter = busi::make_power_meter("auto", options_);
  EXPECT_EQ(meter->source(), "rapl (intel-rapl:0 package-0 + intel-rapl:1 package-1)");
  meter->start();
  pause();
  write(pkg0 + "energy_uj", "3500000");  // +2.5 J
  write(pkg1 + "energy_uj", "671150");   // wrapped: +328850 + 671150 uJ = +1.0 J
  const auto r = meter->stop();
  ASSERT_TRUE(r.available());
  EXPECT_FALSE(r.estimate);
  EXPECT_NEAR(r.joules, 3.5, 1e-9);
  EXPECT_GT(r.seconds, 0.015);
  EXPECT_NEAR(r.watts, r.joules / r.seconds, 1e-9);
}

TEST_F(PowerMeters, UnreadableRaplCounterIsAClearError) {
  write("sys/class/powercap/intel-rapl:0/name", "package-0");
  write("sys/class/powercap/intel-rapl:0/max_energy_range_uj", "1000");
  // A folder where the counter should be: opens, but reads no number (as a
  // root-only energy_uj does for a normal user).
  fs::create_directories(root_ / "sys/class/powercap/intel-rapl:0/energy_uj");
  try {
    busi::make_power_meter("rapl", options_);
    FAIL() << "expected device_error";
  } catch (const busi::device_error& e) {
    EXPECT_NE(std::string(e.what()).find("intel-rapl:0/energy_uj"), std::string::npos) << e.what();
  }
  // auto falls back to n/a and says why.
  auto meter = busi::make_power_meter("auto", options_);
  EXPECT_EQ(meter->source(), "n/a");
  meter->start();
  EXPECT_NE(meter->stop().note.find("energy_uj"), std::string::npos);
}

TEST_F(PowerMeters, MissingExplicitSourcesThrow) {
  EXPECT_THROW(busi::make_power_meter("rapl", options_), busi::device_error);
  EXPECT_THROW(busi::make_power_meter("hwmon", options_), busi::device_error);
  EXPECT_THROW(busi::make_power_meter("hwmon:ina226", options_), busi::device_error);
  EXPECT_THROW(busi::make_power_meter("watts-please", options_), busi::error);
  EXPECT_THROW(busi::make_power_meter("estimate:lots", options_), busi::error);
  EXPECT_THROW(busi::make_power_meter("command:exit 3", options_), busi::device_error);
  EXPECT_THROW(busi::make_power_meter("command:echo hello", options_), busi::device_error);
  EXPECT_THROW(busi::make_power_meter("command:echo 3 V", options_), busi::device_error);
}

TEST_F(PowerMeters, AMeterCommandThatNeverAnswersTimesOut) {
  options_.command_timeout = std::chrono::milliseconds(300);
  const auto begin = std::chrono::steady_clock::now();
  try {
    busi::make_power_meter("command:sleep 30; echo 1", options_);
    FAIL() << "expected device_error";
  } catch (const busi::device_error& e) {
    EXPECT_NE(std::string(e.what()).find("no answer within 300 ms"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(5));
  // Quotes in the command survive the wrapping.
  auto meter = busi::make_power_meter("command:echo '2.5' \"W\"", options_);
  meter->start();
  EXPECT_NEAR(meter->stop().watts, 2.5, 1e-9);
}

TEST_F(PowerMeters, HwmonIna226PowerInputIsSampled) {
  write("sys/class/hwmon/hwmon0/name", "coretemp");
  write("sys/class/hwmon/hwmon0/temp1_input", "45000");
  write("sys/class/hwmon/hwmon1/name", "amdgpu");
  write("sys/class/hwmon/hwmon1/power1_input", "90000000");  // not a board supply monitor
  write("sys/class/hwmon/hwmon2/name", "ina226");
  write("sys/class/hwmon/hwmon2/power1_input", "2500000");  // 2.5 W in microwatts
  auto meter = busi::make_power_meter("auto", options_);
  EXPECT_EQ(meter->source(), "hwmon (hwmon2 ina226, power1_input)");
  meter->start();
  pause();
  const auto r = meter->stop();
  ASSERT_TRUE(r.available()) << r.note;
  EXPECT_NEAR(r.watts, 2.5, 1e-9);
  EXPECT_NEAR(r.joules, 2.5 * r.seconds, 1e-3);
  // Named explicitly, any hwmon device can be used.
  EXPECT_EQ(busi::make_power_meter("hwmon:amdgpu", options_)->source(), "hwmon (hwmon1 amdgpu, power1_input)");
  EXPECT_EQ(busi::make_power_meter("hwmon:hwmon2", options_)->source(), "hwmon (hwmon2 ina226, power1_input)");
}

TEST_F(PowerMeters, HwmonCurrentTimesVoltageAndPmbusRails) {
  write("sys/class/hwmon/hwmon3/name", "ina219");
  write("sys/class/hwmon/hwmon3/curr1_input", "400");  // mA
  write("sys/class/hwmon/hwmon3/in1_input", "5000");   // mV
  auto meter = busi::make_power_meter("hwmon:ina219", options_);
  meter->start();
  pause();
  auto r = meter->stop();
  ASSERT_TRUE(r.available()) << r.note;
  EXPECT_NEAR(r.watts, 2.0, 1e-9);

  write("sys/class/hwmon/hwmon4/name", "irps5401");
  write("sys/class/hwmon/hwmon4/power1_input", "1000000");
  write("sys/class/hwmon/hwmon4/power2_input", "250000");
  meter = busi::make_power_meter("hwmon:irps5401", options_);
  EXPECT_EQ(meter->source(), "hwmon (hwmon4 irps5401, power1..2_input)");
  meter->start();
  r = meter->stop();
  EXPECT_NEAR(r.watts, 1.25, 1e-9);
}

TEST_F(PowerMeters, HwmonEnergyCounterIsDifferenced) {
  write("sys/class/hwmon/hwmon0/name", "ina238");
  write("sys/class/hwmon/hwmon0/power1_input", "1");
  write("sys/class/hwmon/hwmon0/energy1_input", "10000000");
  auto meter = busi::make_power_meter("hwmon", options_);
  EXPECT_EQ(meter->source(), "hwmon (hwmon0 ina238, energy1_input)");
  meter->start();
  write("sys/class/hwmon/hwmon0/energy1_input", "10750000");
  EXPECT_NEAR(meter->stop().joules, 0.75, 1e-9);
}

TEST_F(PowerMeters, ExternalCommandInWattsOrJoules) {
  auto watts = busi::make_power_meter("command:echo 3.25 W", options_);
  watts->start();
  pause();
  const auto w = watts->stop();
  ASSERT_TRUE(w.available()) << w.note;
  EXPECT_NEAR(w.watts, 3.25, 1e-9);

  write("counter", "100");
  const std::string counter = (root_ / "counter").string();
  auto joules = busi::make_power_meter("command:printf '%s J' $(cat '" + counter + "')", options_);
  EXPECT_NE(joules->source().find("J counter"), std::string::npos);
  joules->start();
  write("counter", "104.5");
  EXPECT_NEAR(joules->stop().joules, 4.5, 1e-9);
}

TEST_F(PowerMeters, ExternalLogIsAveragedOverTheWindow) {
  const fs::path log = root_ / "meter.log";
  const auto now = [] {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  };
  {
    std::ofstream out(log);
    out << "# time,watts\n" << std::fixed << (now() - 100) << ",50\n";  // before the window
  }
  auto meter = busi::make_power_meter("log:" + log.string(), options_);
  meter->start();
  pause();
  {
    std::ofstream out(log, std::ios::app);
    out << std::fixed << now() << " 2.0\n" << now() << "\t4.0\n";
  }
  pause();
  const auto r = meter->stop();
  ASSERT_TRUE(r.available()) << r.note;
  EXPECT_NEAR(r.watts, 3.0, 1e-9);
  EXPECT_EQ(r.note, "2 samples");

  auto empty = busi::make_power_meter("log:" + log.string(), options_);
  empty->start();
  EXPECT_FALSE(empty->stop().available());
  EXPECT_THROW(busi::make_power_meter("log:" + (root_ / "absent.log").string(), options_)->start(), busi::device_error);
}

TEST_F(PowerMeters, EstimatesAreLabelled) {
  auto meter = busi::make_power_meter("estimate:1.718:paper W2A4 report", options_);
  meter->start();
  const auto r = meter->stop();
  EXPECT_TRUE(r.estimate);
  EXPECT_DOUBLE_EQ(r.watts, 1.718);
  EXPECT_NE(r.source.find("estimate"), std::string::npos);
  EXPECT_NE(r.source.find("paper W2A4 report"), std::string::npos);

  write("power.rpt",
        "| Total On-Chip Power (W)  | 1.719        |\n"
        "| Design Power Budget (W)  | Unspecified* |\n");
  auto report = busi::make_power_meter("estimate-report:" + (root_ / "power.rpt").string(), options_);
  report->start();
  const auto rr = report->stop();
  EXPECT_TRUE(rr.estimate);
  EXPECT_DOUBLE_EQ(rr.watts, 1.719);
  EXPECT_NE(rr.source.find("power.rpt"), std::string::npos);

  write("not_a_report.txt", "hello");
  EXPECT_THROW(busi::read_vivado_power_report(root_ / "not_a_report.txt"), busi::error);
}

TEST_F(PowerMeters, DescriptionListsCandidates) {
  write("sys/class/hwmon/hwmon0/name", "coretemp");
  const auto lines = busi::describe_power_sources(options_);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("rapl"), std::string::npos);
  EXPECT_NE(lines[1].find("not a known power monitor"), std::string::npos);
}

}  // namespace

namespace {

// One hierarchy: a device_error is a busi::error, always carries an errno, and
// its message says the condition ("...: Input/output error"), never ": Success".
TEST(DeviceError, IsABusiErrorThatCarriesErrno) {
  const busi::device_error opened(EACCES, "cannot open /dev/mem");
  EXPECT_EQ(std::string(opened.what()), "cannot open /dev/mem: Permission denied");
  EXPECT_EQ(opened.code().value(), EACCES);
  const busi::error& as_base = opened;
  EXPECT_NE(dynamic_cast<const busi::device_error*>(&as_base), nullptr);
  const busi::device_error no_errno(0, "the accelerator wrote nothing");
  EXPECT_EQ(no_errno.code().value(), EIO);
  EXPECT_EQ(std::string(no_errno.what()), "the accelerator wrote nothing: Input/output error");
}

TEST(DeviceError, MeterCommandFailuresNameTheCondition) {
  busi::PowerOptions options;
  const auto message = [&](const std::string& spec) {
    try {
      busi::make_power_meter(spec, options);
    } catch (const busi::error& e) {  // caught as the base
      EXPECT_NE(dynamic_cast<const busi::device_error*>(&e), nullptr) << spec;
      return std::string(e.what());
    }
    return std::string("(no exception)");
  };
  EXPECT_EQ(message("command:exit 3"), "power command 'exit 3': exited with status 3: Input/output error");
  EXPECT_EQ(message("command:echo hello"), "power command 'echo hello': output 'hello\n' is not a number: Bad message");
  for (const char* spec : {"command:exit 3", "command:echo hello", "command:echo 3 V"})
    EXPECT_EQ(message(spec).find("Success"), std::string::npos) << spec;
}

}  // namespace
