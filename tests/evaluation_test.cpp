// The evaluation harness end to end on a small labelled folder written here:
// identical inputs per backend, metrics, power labelling, JSON/CSV round trip,
// the dashboard's content, and the dashboard rendered by headless Chromium.
#include <opencv2/imgcodecs.hpp>

#include <gtest/gtest.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "busi/dashboard.hpp"
#include "busi/error.hpp"
#include "busi/evaluation.hpp"
#include "busi/pipeline.hpp"
#include "busi/random_model.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;

// Fields of one CSV line (RFC 4180 quoting).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"')
      fields.back() += '"', ++i;
    else if (c == '"')
      quoted = !quoted;
    else if (c == ',' && !quoted)
      fields.emplace_back();
    else
      fields.back() += c;
  }
  return fields;
}

busi::RandomModelSpec small_spec(busi::ModelKind kind) {
  busi::RandomModelSpec spec;
  spec.input = {1, 40, 36};
  spec.convs = {{4, 3, 2}, {6, 3, 2}};
  spec.dense = {8};
  spec.kind = kind;
  return spec;
}

class Evaluation : public ::testing::Test {
 protected:
  void SetUp() override {
    // 4 normal, 5 benign, 3 malignant images of random noise, 50x45 RGB.
    const int counts[3] = {4, 5, 3};
    const char* classes[3] = {"normal", "benign", "malignant"};
    uint64_t seed = 1;
    for (int c = 0; c < 3; ++c) {
      fs::create_directories(dir_ / "data" / classes[c]);
      for (int i = 0; i < counts[c]; ++i) {
        const auto pixels = busi::random_pixels(50 * 45 * 3, seed++);
        cv::Mat image(45, 50, CV_8UC3, const_cast<uint8_t*>(pixels.data()));
        cv::imwrite(
            (dir_ / "data" / classes[c] / (std::string(classes[c]) + " (" + std::to_string(i) + ").png")).string(),
            image);
      }
    }
    float_path_ = dir_ / "float.bqnn";
    busi::test::write_file(float_path_, busi::random_model(small_spec(busi::ModelKind::floating), 5).serialize());
    quantized_path_ = dir_ / "w2a4.bqnn";
    busi::test::write_file(quantized_path_, busi::random_model(small_spec(busi::ModelKind::quantized), 6).serialize());
  }

  busi::EvaluationOptions options() const {
    busi::EvaluationOptions o;
    // The CPU backends run without settings (fpga needs an overlay and a board).
    for (const auto& b : busi::available_backends())
      if (b == "cpu_int" || b == "cpu_ref") o.backends.push_back(b);
    o.models = {quantized_path_, float_path_};
    o.power = "none";
    o.backend_power["cpu_ref"] = "estimate:2.0:test figure";
    return o;
  }

  busi::LabelledImages images() const {
    return busi::load_labelled_images({dir_ / "data"}, {"normal", "benign", "malignant"}, 40, 36);
  }

  busi::test::TempDir dir_;
  fs::path float_path_, quantized_path_;
};

TEST(EvaluationParts, Sha256MatchesKnownDigests) {
  busi::test::TempDir dir;
  busi::test::write_file(dir / "empty", {});
  busi::test::write_file(dir / "abc", {'a', 'b', 'c'});
  std::vector<uint8_t> million(1000000, 'a');
  busi::test::write_file(dir / "million", million);
  EXPECT_EQ(busi::sha256_file(dir / "empty"), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(busi::sha256_file(dir / "abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(busi::sha256_file(dir / "million"), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_THROW(busi::sha256_file(dir / "absent"), busi::error);
}

TEST(EvaluationParts, PrecisionLabels) {
  EXPECT_EQ(busi::precision_label(busi::random_model(small_spec(busi::ModelKind::quantized), 1)), "w2a4");
  EXPECT_EQ(busi::precision_label(busi::random_model(small_spec(busi::ModelKind::floating), 1)), "fp32");
}

TEST_F(Evaluation, UnlabelledImagesAreNamed) {
  fs::create_directories(dir_ / "data" / "unsorted");
  fs::copy_file(dir_ / "data" / "normal" / "normal (0).png", dir_ / "data" / "unsorted" / "mystery.png");
  try {
    images();
    FAIL() << "expected busi::error";
  } catch (const busi::error& e) {
    EXPECT_NE(std::string(e.what()).find("mystery.png"), std::string::npos) << e.what();
  }
}

TEST_F(Evaluation, EveryBackendSeesTheSameInputsAndIsScored) {
  const auto data = images();
  ASSERT_EQ(data.inputs.size(), 12u);
  const auto report = busi::evaluate(data, options());
  ASSERT_EQ(report.runs.size(), options().backends.size());
  for (const auto& run : report.runs) {
    SCOPED_TRACE(run.backend);
    // The same predictions the backend gives when it decodes the files itself.
    busi::ClassifierOptions copts;
    copts.model_path =
        busi::backend_model_kind(run.backend) == busi::ModelKind::floating ? float_path_ : quantized_path_;
    auto classifier = busi::make_classifier(run.backend, copts);
    std::size_t correct = 0;
    for (std::size_t i = 0; i < data.files.size(); ++i) {
      const int p = classifier->classify_file(data.files[i]).class_index;
      EXPECT_EQ(run.predictions[i], p) << data.files[i];
      correct += p == data.labels[i];
    }
    EXPECT_EQ(run.confusion.total(), 12u);
    EXPECT_EQ(run.confusion.correct(), correct);
    EXPECT_EQ(run.confusion.class_total(1), 5u);
    EXPECT_EQ(run.latencies_ms.size(), 12u);
    EXPECT_GT(run.latency.p50_ms, 0);
    EXPECT_LE(run.latency.p50_ms, run.latency.p99_ms);
    EXPECT_GT(run.throughput, 0);
    EXPECT_EQ(run.model_sha256, busi::sha256_file(copts.model_path));
    if (run.backend == "cpu_ref") {
      EXPECT_EQ(run.precision, "fp32");
      EXPECT_TRUE(run.energy.estimate);
      EXPECT_DOUBLE_EQ(run.energy.watts, 2.0);
      EXPECT_NEAR(run.joules_per_image(), 2.0 * run.energy.seconds / 12, 1e-12);
    } else {
      EXPECT_EQ(run.precision, "w2a4");
      EXPECT_FALSE(run.energy.available());
      EXPECT_TRUE(std::isnan(run.joules_per_image()));
      EXPECT_EQ(run.energy.source, "n/a");
    }
  }
}

TEST_F(Evaluation, JsonAndCsvRoundTrip) {
  auto report = busi::evaluate(images(), options());
  report.inputs = {(dir_ / "data").string()};
  const std::string json = busi::report_json(report, true);
  EXPECT_NE(json.find("\"commit\""), std::string::npos);
  EXPECT_NE(json.find("\"joules_per_image\": null"), std::string::npos);  // the n/a run
  const auto back = busi::parse_report_json(json, "report.json");
  ASSERT_EQ(back.runs.size(), report.runs.size());
  for (std::size_t i = 0; i < back.runs.size(); ++i) {
    EXPECT_EQ(back.runs[i].backend, report.runs[i].backend);
    EXPECT_EQ(back.runs[i].confusion.correct(), report.runs[i].confusion.correct());
    EXPECT_EQ(back.runs[i].predictions, report.runs[i].predictions);
    EXPECT_DOUBLE_EQ(back.runs[i].latency.p90_ms, report.runs[i].latency.p90_ms);
    EXPECT_EQ(back.runs[i].energy.available(), report.runs[i].energy.available());
    EXPECT_EQ(back.runs[i].energy.estimate, report.runs[i].energy.estimate);
  }
  EXPECT_THROW(busi::parse_report_json("{\"runs\": 3}", "bad.json"), busi::error);

  // The versioned schema (docs/evaluation.md): version 2 writes the confusion
  // object busi-infer writes too; version 1 reports (a bare matrix) still read;
  // a newer version is refused by name.
  auto doc = nlohmann::json::parse(json);
  EXPECT_EQ(doc["schema_version"], busi::result_schema_version);
  const auto& confusion = doc["runs"][0]["confusion"];
  EXPECT_EQ(confusion["classes"], nlohmann::json(report.runs[0].confusion.class_names()));
  EXPECT_EQ(confusion["rows_true_columns_predicted"].size(), 3u);
  EXPECT_EQ(doc["runs"][0]["labelled"], report.runs[0].confusion.total());
  auto v1 = doc;
  v1.erase("schema_version");
  for (auto& run : v1["runs"]) run["confusion"] = run["confusion"]["rows_true_columns_predicted"];
  EXPECT_EQ(busi::parse_report_json(v1.dump(), "v1.json").runs[0].confusion.correct(),
            report.runs[0].confusion.correct());
  doc["schema_version"] = busi::result_schema_version + 1;
  EXPECT_NE(busi::test::error_of([&] { busi::parse_report_json(doc.dump(), "future.json"); })
                .find("future.json: report schema version 4 is newer than this build reads (3)"),
            std::string::npos);

  const std::string csv = busi::report_csv(report);
  std::istringstream lines(csv);
  std::string header, line;
  std::getline(lines, header);
  EXPECT_EQ(header.rfind("backend,precision,model,", 0), 0u);
  EXPECT_NE(header.find("recall_malignant"), std::string::npos);
  EXPECT_NE(header.find("c_normal_benign"), std::string::npos);
  const auto columns = csv_fields(header);
  std::size_t rows = 0;
  while (std::getline(lines, line)) {
    const auto fields = csv_fields(line);
    ASSERT_EQ(fields.size(), columns.size()) << line;
    const auto column = [&](const std::string& name) {
      return fields[std::find(columns.begin(), columns.end(), name) - columns.begin()];
    };
    const auto& run = report.runs[rows++];
    EXPECT_EQ(column("backend"), run.backend);
    EXPECT_EQ(column("power_source"), run.energy.source);
    EXPECT_EQ(column("c_benign_benign"), std::to_string(run.confusion.count(1, 1)));
    EXPECT_EQ(column("watts").empty(), !run.energy.available());
  }
  EXPECT_EQ(rows, report.runs.size());
}

TEST_F(Evaluation, DashboardShowsEveryRun) {
  const auto report = busi::evaluate(images(), options());
  const std::string html = busi::render_dashboard({report});
  EXPECT_EQ(html.find("http"), std::string::npos);  // nothing to fetch
  for (const char* chart : {"data-chart=\"accuracy\"", "data-chart=\"latency\"", "data-chart=\"energy\"",
                            "data-chart=\"pareto\"", "class=\"confusion\""})
    EXPECT_NE(html.find(chart), std::string::npos) << chart;
  for (const auto& run : report.runs) {
    std::ostringstream accuracy;
    accuracy << std::fixed << std::setprecision(1) << 100 * run.confusion.accuracy() << "%";
    EXPECT_NE(html.find(">" + run.backend + " " + run.precision + "<"), std::string::npos);
    EXPECT_NE(html.find(accuracy.str()), std::string::npos) << accuracy.str();
  }
  EXPECT_NE(html.find("n/a: no power source"), std::string::npos);
  if (std::any_of(report.runs.begin(), report.runs.end(), [](const auto& r) { return r.energy.estimate; }))
    EXPECT_NE(html.find("(estimate)"), std::string::npos);
  // Two reports (say the board's and a PC's) share the charts, runs named by machine.
  auto other = report;
  other.machine.host = "pynq";
  const std::string both = busi::render_dashboard({report, other});
  EXPECT_NE(both.find(">" + report.runs.front().backend + " " + report.runs.front().precision + " @ pynq<"),
            std::string::npos);
}

// The command: a --list subset of the folder, every output written, and errors
// reported with a non-zero exit.
TEST_F(Evaluation, BusiEvalCommandWritesReports) {
  std::ofstream(dir_ / "list.txt")
      << "normal/normal (1).png\n# a comment\nbenign/benign (2).png\nmalignant/malignant (0).png\n";
  const std::string common =
      std::string(BUSI_EVAL_COMMAND) + " --backends cpu_int --power none --model '" + quantized_path_.string() + "' ";
  const std::string outputs = " --json '" + (dir_ / "r.json").string() + "' --csv '" + (dir_ / "r.csv").string() +
                              "' --html '" + (dir_ / "r.html").string() + "' ";
  ASSERT_EQ(std::system((common + "--list '" + (dir_ / "list.txt").string() + "'" + outputs + "'" +
                         (dir_ / "data").string() + "' > '" + (dir_ / "out.txt").string() + "' 2>&1")
                            .c_str()),
            0)
      << [&] {
           const auto bytes = busi::test::read_file(dir_ / "out.txt");
           return std::string(bytes.begin(), bytes.end());
         }();
  const auto json_bytes = busi::test::read_file(dir_ / "r.json");
  const auto json = nlohmann::json::parse(json_bytes.begin(), json_bytes.end());
  EXPECT_EQ(json["images"], 3);
  EXPECT_EQ(json["schema_version"], busi::result_schema_version);
  EXPECT_EQ(json["runs"][0]["backend"], "cpu_int");
  EXPECT_TRUE(json["runs"][0]["power"]["watts"].is_null());
  EXPECT_FALSE(busi::test::read_file(dir_ / "r.csv").empty());
  EXPECT_FALSE(busi::test::read_file(dir_ / "r.html").empty());

  // A listed image that is not there: non-zero exit, the message names it.
  std::ofstream(dir_ / "bad.txt") << "benign/absent.png\n";
  const fs::path log = dir_ / "err.txt";
  EXPECT_NE(std::system((common + "--list '" + (dir_ / "bad.txt").string() + "' '" + (dir_ / "data").string() +
                         "' > '" + log.string() + "' 2>&1")
                            .c_str()),
            0);
  const auto err = busi::test::read_file(log);
  EXPECT_NE(std::string(err.begin(), err.end()).find("absent.png"), std::string::npos);
}

// Headless Chromium parses and paints the page: its DOM holds the charts and
// figures, and the screenshot holds bars in the backends' colours.
TEST_F(Evaluation, DashboardRendersInHeadlessChromium) {
  const fs::path chromium = "/usr/bin/chromium";
  if (BUSI_CROSS_BUILD) GTEST_SKIP() << "cross build: the page is rendered by the host's build";
  if (!fs::exists(chromium))
    GTEST_SKIP() << "no " << chromium << " (scripts/install-deps.sh installs Debian's chromium)";
  const auto report = busi::evaluate(images(), options());
  const fs::path page = dir_ / "dashboard.html", shot = dir_ / "dashboard.png", dom = dir_ / "dom.html";
  { std::ofstream(page) << busi::render_dashboard({report}, "test dashboard"); }
  const std::string flags =
      " --headless --no-sandbox --disable-gpu --disable-background-networking"
      " --disable-component-update --disable-sync --no-first-run --user-data-dir=" +
      (dir_ / "profile").string() + " --window-size=1000,2400 ";
  const std::string url = "file://" + page.string();
  ASSERT_EQ(std::system(("timeout 120 " + chromium.string() + flags + "--dump-dom '" + url + "' > '" + dom.string() +
                         "' 2>/dev/null")
                            .c_str()),
            0);
  const auto dom_bytes = busi::test::read_file(dom);
  const std::string text(dom_bytes.begin(), dom_bytes.end());
  EXPECT_NE(text.find("<svg data-chart=\"pareto\""), std::string::npos);
  EXPECT_NE(text.find("test dashboard"), std::string::npos);
  for (const auto& run : report.runs) {
    std::ostringstream accuracy;
    accuracy << std::fixed << std::setprecision(1) << 100 * run.confusion.accuracy() << "%";
    EXPECT_NE(text.find(run.backend), std::string::npos);
    EXPECT_NE(text.find(accuracy.str()), std::string::npos);
  }

  ASSERT_EQ(std::system(("cd '" + dir_.path().string() + "' && timeout 120 " + chromium.string() + flags +
                         "--screenshot='" + shot.string() + "' '" + url + "' >/dev/null 2>&1")
                            .c_str()),
            0);
  const cv::Mat image = cv::imread(shot.string(), cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty()) << "no screenshot at " << shot;
  const auto count_colour = [&](int r, int g, int b) {
    cv::Mat mask;
    cv::inRange(image, cv::Scalar(b - 3, g - 3, r - 3), cv::Scalar(b + 3, g + 3, r + 3), mask);
    return cv::countNonZero(mask);
  };
  for (const auto& run : report.runs) {
    if (run.backend == "cpu_int") EXPECT_GT(count_colour(0x1f, 0x77, 0xb4), 100);
    if (run.backend == "cpu_ref") EXPECT_GT(count_colour(0xff, 0x7f, 0x0e), 100);
  }
}

}  // namespace
