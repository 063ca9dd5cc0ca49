// Runs the busi-infer binary as a user would and checks its output and exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "busi/random_model.hpp"
#include "test_support.hpp"

namespace busi {
namespace {

using test::TempDir;

struct CliRun {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CliRun busi_infer(const std::string& args) {
  const std::string cmd = BUSI_INFER_LAUNCHER + quote(BUSI_INFER_BINARY) + " --no-progress " + args + " 2>&1";
  CliRun run;
  FILE* pipe = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) run.out.append(buf.data(), n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

// A folder of good and bad images laid out like BUSI (class folders).
struct Fixture {
  TempDir dir;
  std::string model;
  Fixture() {
    for (const char* c : {"normal", "benign", "malignant"}) std::filesystem::create_directories(dir / c);
    for (int i = 0; i < 3; ++i) {
      cv::Mat img(60 + i, 80, CV_8UC3);
      cv::randu(img, 0, 255);
      cv::imwrite((dir / (std::string(i == 0 ? "normal" : i == 1 ? "benign" : "malignant") + "/img (" +
                          std::to_string(i) + ").png"))
                      .string(),
                  img);
    }
    test::write_file(dir / "benign/broken.png", {'n', 'o', 't', ' ', 'p', 'n', 'g'});
    test::write_file(dir / "benign/empty.png", {});
    model = (dir / "m.bqnn").string();
    test::write_file(model, random_model(paper_network_spec(2, 4), 11).serialize());
  }
};

TEST(Cli, HelpListsBackendsAndExitCodes) {
  const CliRun r = busi_infer("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("cpu_int"), std::string::npos);
  EXPECT_NE(r.out.find("Exit codes"), std::string::npos);
  EXPECT_NE(r.out.find("--threads"), std::string::npos);
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(busi_infer("").exit_code, 2);
  EXPECT_EQ(busi_infer("--format yaml x.png").exit_code, 2);
  EXPECT_EQ(busi_infer("--threads 0 x.png").exit_code, 2);
  const CliRun r = busi_infer("--backend fgpa x.png");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.out.find("unknown backend 'fgpa'; available: cpu_int"), std::string::npos) << r.out;
}

TEST(Cli, BadImagesAreReportedAndTheRestClassified) {
  Fixture f;
  const CliRun r = busi_infer("--model " + quote(f.model) + " " + quote(f.dir.path().string()));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("3 of 5 images classified, 2 failed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("broken.png: not a readable image"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("empty.png: file is empty"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("accuracy"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sensitivity"), std::string::npos) << r.out;
}

// A valid PNG whose IHDR claims width x height (a bitwise CRC-32 re-signs it).
std::vector<uint8_t> png_claiming(uint32_t width, uint32_t height) {
  std::vector<uint8_t> png;
  cv::imencode(".png", cv::Mat(4, 4, CV_8UC1, cv::Scalar(1)), png);
  for (int i = 0; i < 4; ++i) {
    png[16 + i] = uint8_t(width >> (24 - 8 * i));
    png[20 + i] = uint8_t(height >> (24 - 8 * i));
  }
  uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = 12; i < 29; ++i) {  // "IHDR" and its 13 bytes
    crc ^= png[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  crc ^= 0xFFFFFFFFu;
  for (int i = 0; i < 4; ++i) png[29 + i] = uint8_t(crc >> (24 - 8 * i));
  return png;
}

// A package with its JSON header replaced (length and CRC-32 re-signed).
std::vector<uint8_t> with_header(const std::vector<uint8_t>& bytes, const std::string& header) {
  const uint32_t old_length = bytes[12] | bytes[13] << 8 | bytes[14] << 16 | uint32_t(bytes[15]) << 24;
  std::vector<uint8_t> out(bytes.begin(), bytes.begin() + 12);
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(header.size() >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), bytes.begin() + 16 + old_length, bytes.end() - 4);
  uint32_t crc = 0xFFFFFFFFu;
  for (uint8_t b : out) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  crc ^= 0xFFFFFFFFu;
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(crc >> (8 * i)));
  return out;
}

// Issue 16, findings 1 and 2 through the CLI: a provenance nested 100,000 deep
// (SIGSEGV before), a weight count that wraps to 0 and a fractional offset.
TEST(Cli, HostileModelsAreFatalWithTheReasonNotACrash) {
  Fixture f;
  const auto good = random_model(paper_network_spec(2, 4), 11).serialize();
  const uint32_t length = good[12] | good[13] << 8 | good[14] << 16 | uint32_t(good[15]) << 24;
  const auto header = nlohmann::json::parse(good.begin() + 16, good.begin() + 16 + length);
  auto deep = header;
  deep["provenance"] = "DEEP";
  auto text = deep.dump();
  text.replace(text.find("\"DEEP\""), 6, std::string(100000, '[') + std::string(100000, ']'));
  auto wrap = header;
  wrap["layers"][0]["out_channels"] = 1 << 20;
  wrap["layers"][0]["in_channels"] = 1 << 18;
  wrap["layers"][0]["kernel"] = 8192;
  wrap["layers"][0]["weights"]["size"] = 0;
  auto fraction = header;
  fraction["layers"][0]["weights"]["offset"] = 0.9;
  const std::pair<std::vector<uint8_t>, std::string> cases[] = {
      {with_header(good, text), "header nests arrays/objects deeper than 64 levels"},
      {with_header(good, wrap.dump()), "layer 0: 1048576 x 262144 x 8192 x 8192 weights exceed the limit"},
      {with_header(good, fraction.dump()), "layer 0: \"weights.offset\" = 0.9 is not a whole number"}};
  for (const auto& [bytes, reason] : cases) {
    test::write_file(f.dir / "hostile.bqnn", bytes);
    const CliRun r = busi_infer("--model " + quote((f.dir / "hostile.bqnn").string()) + " " + quote(f.dir.path().string()));
    EXPECT_EQ(r.exit_code, 3) << r.out;
    EXPECT_NE(r.out.find("hostile.bqnn: " + reason), std::string::npos) << r.out;
  }
}

// Issue 16: /dev/zero, and a 100-byte PNG claiming 20000x20000 pixels (454 MB
// before it was refused), are reported without reading or decoding them, and
// cost the other images nothing; /dev/zero as the model is fatal at once.
TEST(Cli, HostileFilesAreRefusedCheaplyAndTheRestClassified) {
  Fixture f;
  test::write_file(f.dir / "normal/claims 20000x20000.png", png_claiming(20000, 20000));
  const CliRun r = busi_infer("--format json --model " + quote(f.model) + " /dev/zero " +
                           quote((f.dir / "normal").string()));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("/dev/zero: is a character device, not a regular file"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("claims 20000x20000.png: PNG image of 20000x20000 pixels (1 channel of 8 bits) needs"),
            std::string::npos)
      << r.out;
  const auto json = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(json["summary"]["classified"], 1) << r.out;
  EXPECT_EQ(json["summary"]["failed"], 2) << r.out;
  // Shared libraries included (Debian's OpenCV maps ~48 MB of them); it was 454 MB.
  EXPECT_LT(json["summary"]["peak_rss_mb"].get<double>(), 100.0) << r.out;

  const CliRun model = busi_infer("--model /dev/zero " + quote(f.dir.path().string()));
  EXPECT_EQ(model.exit_code, 3) << model.out;
  EXPECT_NE(model.out.find("/dev/zero: is a character device, not a regular file"), std::string::npos) << model.out;
}

TEST(Cli, MissingPathAndEmptyFolderAreReported) {
  Fixture f;
  std::filesystem::create_directories(f.dir / "nothing");
  const CliRun r = busi_infer("--model " + quote(f.model) + " " + quote((f.dir / "nope").string()) + " " +
                           quote((f.dir / "nothing").string()) + " " + quote((f.dir / "normal").string()));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("nope: no such file or directory"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nothing: no images found"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 of 1 images classified"), std::string::npos) << r.out;
}

TEST(Cli, CorruptModelIsFatalWithItsName) {
  Fixture f;
  test::write_file(f.dir / "bad.bqnn", {'B', 'U', 'S', 'I', 'Q', 'N', 'N', 0, 1});
  const CliRun r = busi_infer("--model " + quote((f.dir / "bad.bqnn").string()) + " " + quote(f.dir.path().string()));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.out.find("bad.bqnn: truncated"), std::string::npos) << r.out;
}

TEST(Cli, ModelOfTheWrongKindIsFatal) {
  // A float package for an integer backend: a model error naming the file, not
  // a silent switch to the backend's default model.
  Fixture f;
  RandomModelSpec spec = paper_network_spec(2, 4);
  spec.kind = ModelKind::floating;
  test::write_file(f.dir / "float.bqnn", random_model(spec, 3).serialize());
  const CliRun r = busi_infer("--model " + quote((f.dir / "float.bqnn").string()) + " " + quote(f.dir.path().string()));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.out.find("float.bqnn: backend cpu_int runs quantized models, but this one is float"), std::string::npos)
      << r.out;
}

TEST(Cli, JsonAndThreadsGiveTheSameAnswers) {
  Fixture f;
  const CliRun one = busi_infer("--format json --model " + quote(f.model) + " " + quote(f.dir.path().string()));
  const CliRun two = busi_infer("--format json --threads 2 --batch 2 --model " + quote(f.model) + " " +
                             quote(f.dir.path().string()));
  const auto a = nlohmann::json::parse(one.out), b = nlohmann::json::parse(two.out);
  ASSERT_EQ(a["images"].size(), 5u);
  EXPECT_EQ(a["images"], b["images"]);
  EXPECT_EQ(a["schema_version"], 3);
  // Every image carries a verdict and its reason, a file that could not be read too.
  for (const auto& image : a["images"]) {
    EXPECT_TRUE(image.contains("verdict") && image.contains("reason") && image.contains("p_abnormal")) << image;
    EXPECT_EQ(image.contains("error"), image["verdict"] == "unreadable") << image;
  }
  EXPECT_EQ(a["summary"]["failed"], 2);
  EXPECT_EQ(a["summary"]["labelled"], 3);
  // The metrics object busi-eval writes for each run (docs/evaluation.md).
  EXPECT_EQ(a["summary"]["confusion"]["classes"], nlohmann::json({"normal", "benign", "malignant"}));
  EXPECT_EQ(a["summary"]["confusion"]["rows_true_columns_predicted"][1].size(), 3u);
  for (const char* key : {"accuracy", "correct", "recall", "sensitivity", "specificity"})
    EXPECT_TRUE(a["summary"].contains(key)) << key;
  // Sorted: benign/broken.png, benign/empty.png, benign/img (1).png, ...
  EXPECT_NE(a["images"][0]["error"].get<std::string>().find("broken.png"), std::string::npos);
  EXPECT_EQ(a["images"][2]["logits"].size(), 3u);
  EXPECT_EQ(a["images"][2]["label"], "benign");
}

TEST(Cli, FileAndModelPathsWithSpacesAndParentheses) {
  // Every BUSI file name looks like "benign (12).png".
  Fixture f;
  const auto model = f.dir / "my model (1).bqnn";
  std::filesystem::copy_file(f.model, model);
  const CliRun r = busi_infer("--model " + quote(model.string()) + " " + quote((f.dir / "benign/img (1).png").string()));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("1 of 1 images classified"), std::string::npos) << r.out;
}

TEST(Cli, CsvHasOneRowPerImage) {
  Fixture f;
  const CliRun r = busi_infer("--format csv --model " + quote(f.model) + " " + quote((f.dir / "benign").string()));
  EXPECT_NE(r.out.find("file,class,score_normal,score_benign,score_malignant,verdict,p_abnormal,"
                       "suspicious_malignancy,reason,error"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("broken.png,,,,,"), std::string::npos) << r.out;
}

TEST(Cli, VerifyAgainstTheSameBackendAgrees) {
  Fixture f;
  const CliRun r = busi_infer("--verify cpu_int --isa scalar --model " + quote(f.model) + " " +
                           quote((f.dir / "normal").string()));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("verify against cpu_int: 0 disagreements"), std::string::npos) << r.out;
}

TEST(Cli, ClassifiesBusiWithTheDefaultModel) {
  BUSI_REQUIRE_DATA();
  const CliRun r = busi_infer("--threads 2 --format json " + quote((test::busi_data_dir() / "normal").string()));
  EXPECT_EQ(r.exit_code, 0) << r.out.substr(0, 2000);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["summary"]["classified"], 120);
  EXPECT_EQ(j["summary"]["labelled"], 120);
}

}  // namespace
}  // namespace busi

namespace busi {
namespace {

// The shipped model records its 624 training images: given one of them and one
// validation image, busi-infer says which it was trained on and scores the other
// apart, in JSON, CSV and on screen.
TEST(Cli, SaysWhichImagesTheModelWasTrainedOn) {
  BUSI_REQUIRE_DATA();
  const auto data = test::busi_data_dir();
  // "benign (1).png" is in training/splits/train.txt, "benign (102).png" in val.txt.
  const std::string images = quote((data / "benign/benign (1).png").string()) + " " +
                             quote((data / "benign/benign (102).png").string());
  const CliRun json = busi_infer("--format json " + images);
  ASSERT_EQ(json.exit_code, 0) << json.out;
  const auto doc = nlohmann::json::parse(json.out);
  EXPECT_EQ(doc["images"][0]["seen"], true);
  EXPECT_EQ(doc["images"][1]["seen"], false);
  EXPECT_EQ(doc["summary"]["seen_images"], 1);
  EXPECT_EQ(doc["summary"]["unseen"]["labelled"], 1);
  EXPECT_EQ(doc["summary"]["labelled"], 2);
  // In batches of two on one thread, the second batch's input is loaded where
  // the first batch's were: each image is still judged by its own pixels.
  const std::string trained = quote((data / "benign/benign (1).png").string()),
                    validation = quote((data / "benign/benign (102).png").string());
  const CliRun batched =
      busi_infer("--format json --threads 1 --batch 2 " + validation + " " + trained + " " + validation);
  ASSERT_EQ(batched.exit_code, 0) << batched.out;
  const auto batches = nlohmann::json::parse(batched.out);
  EXPECT_EQ(batches["images"][0]["seen"], false);
  EXPECT_EQ(batches["images"][1]["seen"], true);
  EXPECT_EQ(batches["images"][2]["seen"], false);
  const CliRun table = busi_infer(images);
  // Only the training image's line says so.
  const auto line_of = [&](const std::string& name) {
    const auto at = table.out.find(name + "\t");
    return at == std::string::npos ? std::string() : table.out.substr(at, table.out.find('\n', at) - at);
  };
  EXPECT_NE(line_of("benign (1).png").find("(trained on)"), std::string::npos) << table.out;
  EXPECT_EQ(line_of("benign (102).png").find("(trained on)"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("over 2 labelled images, 1 of which the model was trained on"), std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("on the 1 it never saw: accuracy "), std::string::npos) << table.out;
  const CliRun csv = busi_infer("--format csv " + images);
  EXPECT_NE(csv.out.find(",seen,error\n"), std::string::npos) << csv.out;
  EXPECT_NE(csv.out.find(",yes,\n"), std::string::npos) << csv.out;
  EXPECT_NE(csv.out.find(",no,\n"), std::string::npos) << csv.out;
}

}  // namespace
}  // namespace busi
