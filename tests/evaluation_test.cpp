// The evaluation harness end to end on a small labelled folder written here:
// identical inputs per backend, metrics, power labelling, JSON/CSV round trip,
// the dashboard's content, and the dashboard rendered by headless Chromium.
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

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
#include "busi/seen_images.hpp"
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

// A report as busi-eval --per-image writes it, from a quantized model whose
// package records 3 of the 12 images as seen, with what a schema-3 backend adds
// per image (verdict, p_abnormal; docs/evaluation.md) filled in by hand: image 2
// refused, the rest referred when P(abnormal) >= 0.5.
class ClinicalReport : public Evaluation {
 protected:
  void SetUp() override {
    Evaluation::SetUp();
    const auto labelled = images();
    busi::Model model = busi::random_model(small_spec(busi::ModelKind::quantized), 6);
    model.seen_images = std::vector<uint64_t>{};
    for (std::size_t i : {0u, 5u, 9u}) model.seen_images->push_back(busi::input_hash(labelled.inputs[i]));
    std::sort(model.seen_images->begin(), model.seen_images->end());
    busi::test::write_file(dir_ / "seen.bqnn", model.serialize());
    busi::EvaluationOptions o;
    o.backends = {"cpu_int"};
    o.models = {dir_ / "seen.bqnn"};
    o.power = "none";
    report_ = busi::evaluate(labelled, o);
    doc_ = nlohmann::json::parse(busi::report_json(report_, true));
    // A model without a calibration block gives "unavailable" everywhere; these
    // stand in for a calibrated backend's verdicts.
    auto& run = doc_["runs"][0];
    run["p_abnormal"] = nlohmann::json::array();
    run["verdict"] = nlohmann::json::array();
    for (std::size_t i = 0; i < labelled.inputs.size(); ++i) {
      const auto& s = report_.runs[0].scores[i];
      const double p = s[1] + s[2];
      run["p_abnormal"].push_back(i == 2 ? nlohmann::json(nullptr) : nlohmann::json(p));
      run["verdict"].push_back(i == 2 ? "unreadable" : p >= 0.5 ? "refer" : "routine");
    }
  }
  busi::EvaluationReport report_;
  nlohmann::json doc_;
};

TEST_F(ClinicalReport, SeenImagesAreReportedAndScoredApart) {
  const auto& run = report_.runs[0];
  EXPECT_EQ(run.seen, (std::vector<bool>{true, false, false, false, false, true, false, false, false, true, false, false}));
  ASSERT_TRUE(run.unseen);
  EXPECT_EQ(run.unseen->total(), 9u);
  EXPECT_EQ(doc_["runs"][0]["seen_images"], 3);
  EXPECT_EQ(doc_["runs"][0]["unseen"]["labelled"], 9);
  EXPECT_EQ(doc_["runs"][0]["seen"].size(), 12u);
  EXPECT_EQ(doc_["files"].size(), 12u);
  const auto& ci = doc_["runs"][0]["accuracy_ci95"];
  const auto wilson = busi::wilson_interval(run.confusion.correct(), 12);
  EXPECT_DOUBLE_EQ(ci[0].get<double>(), wilson.low);
  // Read back: the same per-image data.
  const auto back = busi::parse_report_json(doc_.dump(), "r.json");
  EXPECT_EQ(back.files, report_.files);
  EXPECT_EQ(back.labels, report_.labels);
  EXPECT_EQ(back.runs[0].scores, run.scores);
  EXPECT_EQ(back.runs[0].seen, run.seen);
  ASSERT_TRUE(back.runs[0].unseen);
  EXPECT_EQ(back.runs[0].unseen->correct(), run.unseen->correct());
  EXPECT_EQ(back.runs[0].verdicts.size(), 12u);
  EXPECT_TRUE(std::isnan(back.runs[0].p_abnormal[2]));
  // What the screen says.
  const std::string text = busi::accuracy_summary(run.confusion, run.unseen);
  EXPECT_NE(text.find("over 12 labelled images, 3 of which the model was trained on"), std::string::npos) << text;
  EXPECT_NE(text.find("on the 9 it never saw: accuracy "), std::string::npos) << text;
  EXPECT_NE(busi::accuracy_summary(run.confusion, std::nullopt).find("does not record"), std::string::npos);
  const std::string csv = busi::report_csv(report_);
  const auto row = csv_fields(csv.substr(csv.find('\n') + 1, csv.find('\n', csv.find('\n') + 1) - csv.find('\n') - 1));
  const auto columns = csv_fields(csv.substr(0, csv.find('\n')));
  const auto column = [&](const std::string& name) {
    return row.at(std::size_t(std::find(columns.begin(), columns.end(), name) - columns.begin()));
  };
  EXPECT_EQ(column("seen_images"), "3");
  EXPECT_EQ(column("unseen_labelled"), "9");
}

// The clinical charts, checked against figures computed here from the same
// per-image data: the AUCs, the ECE, the referral counts and the gallery.
TEST_F(ClinicalReport, DashboardShowsRocReliabilityReferralAndGallery) {
  const auto report = busi::parse_report_json(doc_.dump(), "r.json");
  const auto& run = report.runs[0];
  const std::string html = busi::render_dashboard({report});
  EXPECT_EQ(html.find("http"), std::string::npos);  // thumbnails are inline
  // The counted images: never seen (not 0, 5, 9), not refused (not 2).
  std::vector<std::size_t> counted;
  for (std::size_t i = 0; i < 12; ++i)
    if (!run.seen[i] && i != 2) counted.push_back(i);
  const auto auc = [&](auto score, auto positive, auto included) {
    double pairs = 0, right = 0;
    for (std::size_t a : counted)
      for (std::size_t b : counted)
        if (included(a) && included(b) && positive(a) && !positive(b)) {
          ++pairs;
          right += score(a) > score(b) ? 1 : score(a) == score(b) ? 0.5 : 0;
        }
    return right / pairs;
  };
  const auto attribute = [&](const std::string& chart, const std::string& name) {
    const auto at = html.find("data-chart=\"" + chart + "\"");
    EXPECT_NE(at, std::string::npos) << chart;
    const auto start = html.find(name + "=\"", at) + name.size() + 2;
    return std::stod(html.substr(start, html.find('"', start) - start));
  };
  const double abnormal_auc = auc([&](std::size_t i) { return run.p_abnormal[i]; },
                                  [&](std::size_t i) { return report.labels[i] != 0; }, [](std::size_t) { return true; });
  EXPECT_NEAR(attribute("roc-abnormal", "data-auc"), abnormal_auc, 1e-4);
  const double malignant_auc = auc([&](std::size_t i) { return double(run.scores[i][2]); },
                                   [&](std::size_t i) { return report.labels[i] == 2; },
                                   [&](std::size_t i) { return report.labels[i] != 0; });
  EXPECT_NEAR(attribute("roc-malignant", "data-auc"), malignant_auc, 1e-4);
  // ECE over ten bins of the top score.
  double gaps[10] = {}, ece = 0;
  for (std::size_t i : counted) {
    const auto& s = run.scores[i];
    const auto top = std::max_element(s.begin(), s.end());
    gaps[std::min(9, int(*top * 10))] += (int(top - s.begin()) == report.labels[i]) - *top;
  }
  for (double g : gaps) ece += std::abs(g) / double(counted.size());
  EXPECT_NEAR(attribute("reliability", "data-ece"), ece, 1e-4);
  // The referral: abnormal referred / abnormal, normal routine / normal, on the counted images.
  std::size_t tp = 0, abnormal = 0, tn = 0, normal = 0;
  for (std::size_t i : counted) {
    const bool referred = run.verdicts[i] == "refer";
    if (report.labels[i] != 0) abnormal++, tp += referred;
    else normal++, tn += !referred;
  }
  EXPECT_NE(html.find("data-table=\"referral\""), std::string::npos);
  EXPECT_NE(html.find("<td>" + std::to_string(tp) + " / " + std::to_string(abnormal) + "</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>" + std::to_string(tn) + " / " + std::to_string(normal) + "</td>"), std::string::npos);
  EXPECT_NE(html.find("class=\"operating-point\""), std::string::npos);
  // The gallery: every misclassified or refused image, a decodable 96x96 thumbnail each.
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < 12; ++i) wrong += i == 2 || run.predictions[i] != report.labels[i];
  std::size_t thumbs = 0, at = 0;
  while ((at = html.find("<figure class=\"thumb\"", at)) != std::string::npos) ++thumbs, ++at;
  EXPECT_EQ(thumbs, wrong);
  EXPECT_NE(html.find("data-kind=\"refused\""), std::string::npos);
  const auto src = html.find("data:image/png;base64,");
  ASSERT_NE(src, std::string::npos);
  const std::string b64 = html.substr(src + 22, html.find('"', src) - src - 22);
  std::vector<uint8_t> png;
  for (std::size_t i = 0; i + 3 < b64.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = b64[i + k];
      const auto d = std::string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/").find(c);
      pad += c == '=';
      v = v << 6 | uint32_t(c == '=' ? 0 : d);
    }
    for (int k = 0; k < 3 - pad; ++k) png.push_back(uint8_t(v >> (16 - 8 * k)));
  }
  const cv::Mat thumb = cv::imdecode(png, cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(thumb.empty());
  EXPECT_EQ(thumb.rows, 96);
  EXPECT_EQ(thumb.type(), CV_8UC1);
}

// Older reports: no per-image data (schema 2 without --per-image), or a top-1
// backend's "unavailable" verdicts: the page says what it cannot show.
TEST_F(ClinicalReport, DashboardShowsWhatOlderReportsAllow) {
  auto plain = nlohmann::json::parse(busi::report_json(report_, false));
  plain["schema_version"] = 1;
  for (auto& run : plain["runs"]) run["confusion"] = run["confusion"]["rows_true_columns_predicted"];
  const std::string old_page = busi::render_dashboard({busi::parse_report_json(plain.dump(), "v1.json")});
  EXPECT_NE(old_page.find("data-clinical=\"none\""), std::string::npos);
  EXPECT_EQ(old_page.find("data-chart=\"roc-abnormal\""), std::string::npos);
  EXPECT_NE(old_page.find("data-chart=\"accuracy\""), std::string::npos);
  auto top1 = doc_;
  for (auto& v : top1["runs"][0]["verdict"]) v = "unavailable";
  const std::string top1_page = busi::render_dashboard({busi::parse_report_json(top1.dump(), "top1.json")});
  EXPECT_NE(top1_page.find("data-referral=\"unavailable\""), std::string::npos);
  auto no_verdicts = doc_;
  no_verdicts["runs"][0].erase("verdict");
  no_verdicts["runs"][0].erase("p_abnormal");
  const std::string v2_page = busi::render_dashboard({busi::parse_report_json(no_verdicts.dump(), "v2.json")});
  EXPECT_NE(v2_page.find("data-referral=\"none\""), std::string::npos);
  EXPECT_NE(v2_page.find("data-chart=\"roc-abnormal\""), std::string::npos);  // from the scores alone
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
  // The clinical section from the per-image scores: ROC curves, reliability, thumbnails.
  for (const char* chart : {"data-chart=\"roc-abnormal\"", "data-chart=\"roc-malignant\"", "data-chart=\"reliability\"",
                            "<img src=\"data:image/png;base64,"})
    EXPECT_NE(text.find(chart), std::string::npos) << chart;
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
