#include "busi/model.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "busi/error.hpp"
#include "busi/limits.hpp"
#include "busi/random_model.hpp"
#include "busi/seen_images.hpp"
#include "test_support.hpp"

namespace busi {
namespace {

using test::TempDir;

// Rewrites the trailing CRC so a deliberately edited file passes the checksum
// and reaches the check under test.
void fix_crc(std::vector<uint8_t>& bytes);

// Runs parse() and returns the message it throws ("" if it does not).
std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    Model::parse(bytes, "m.bqnn");
  } catch (const model_error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelPackage, RoundTripsEveryBitWidth) {
  for (int w : {2, 4, 8})
    for (int a : {2, 4, 8}) {
      const Model model = random_model(paper_network_spec(w, a), 7);
      const Model back = Model::parse(model.serialize(), "mem");
      ASSERT_EQ(back.layers.size(), model.layers.size());
      for (std::size_t i = 0; i < model.layers.size(); ++i) {
        EXPECT_EQ(back.layers[i].weights, model.layers[i].weights) << "w" << w << "a" << a << " layer " << i;
        EXPECT_EQ(back.layers[i].thresholds, model.layers[i].thresholds);
        EXPECT_EQ(back.layers[i].output, model.layers[i].output);
      }
      EXPECT_EQ(back.class_names, model.class_names);
      EXPECT_FLOAT_EQ(back.logit_scale, model.logit_scale);
    }
}

TEST(ModelPackage, PaperNetworkShapes) {
  const Model model = random_model(paper_network_spec(2, 4), 1);
  // conv outputs 253, 124, 60, 28, 12, 4 (ANCHORS.md), then 512 -> 128 -> 64 -> 3.
  std::vector<int> conv_sizes;
  for (const auto& l : model.layers)
    if (l.type == LayerType::conv) conv_sizes.push_back(l.output.height);
  EXPECT_EQ(conv_sizes, (std::vector<int>{253, 124, 60, 28, 12, 4}));
  EXPECT_EQ(model.layers.back().output.channels, 3);
  EXPECT_EQ(model.layers[model.layers.size() - 3].in_channels, 512);
  EXPECT_EQ(model.layers[1].input_bits, 4);
  EXPECT_EQ(model.layers[0].input_bits, 8);
}

TEST(ModelPackage, PacksWeightsLsbFirst) {
  // Packing order is part of the format: element i at bits [i*b, (i+1)*b).
  RandomModelSpec spec;
  spec.input = {1, 3, 3};
  spec.convs = {{1, 3, 0}};
  spec.dense = {};
  spec.num_classes = 2;
  Model model = random_model(spec, 3);
  model.layers[0].weights = {1, -1, 0, 1, 1, -1, 0, 0, 1};  // int2: 01 11 00 01 | 01 11 00 00 | 01
  const auto bytes = model.serialize();
  const Model back = Model::parse(bytes, "mem");
  EXPECT_EQ(back.layers[0].weights, model.layers[0].weights);
  const std::vector<uint8_t> expected = {0b01001101, 0b00001101, 0b00000001};
  EXPECT_NE(std::search(bytes.begin(), bytes.end(), expected.begin(), expected.end()), bytes.end());
}

TEST(ModelPackage, RejectsEmptyTruncatedAndCorruptFiles) {
  const auto good = random_model(paper_network_spec(2, 4), 1).serialize();
  EXPECT_NE(parse_error({}).find("empty"), std::string::npos);
  EXPECT_NE(parse_error({'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!', '!', '!', '!', '!', '!', '!', '!', '!'})
                .find("bad magic"),
            std::string::npos);
  for (std::size_t cut : {std::size_t(10), std::size_t(20), good.size() / 2, good.size() - 1}) {
    std::vector<uint8_t> truncated(good.begin(), good.begin() + cut);
    const auto msg = parse_error(truncated);
    EXPECT_TRUE(msg.find("truncated") != std::string::npos || msg.find("checksum") != std::string::npos)
        << "cut at " << cut << ": " << msg;
  }
  auto flipped = good;
  flipped[good.size() / 2] ^= 0x10;
  EXPECT_NE(parse_error(flipped).find("checksum mismatch"), std::string::npos);
}

TEST(ModelPackage, RejectsFutureVersionNamingIt) {
  auto bytes = random_model(paper_network_spec(2, 4), 1).serialize();
  bytes[8] = 2;
  fix_crc(bytes);
  const auto msg = parse_error(bytes);
  EXPECT_NE(msg.find("format version 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("m.bqnn"), std::string::npos) << msg;
}

TEST(ModelPackage, ValidateNamesTheBrokenLayer) {
  auto expect_invalid = [](Model m, const std::string& needle) {
    try {
      m.validate("m.bqnn");
      ADD_FAILURE() << "accepted a model that should fail with '" << needle << "'";
    } catch (const model_error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const Model good = random_model(paper_network_spec(2, 4), 1);
  {
    Model m = good;
    m.layers[0].weight_bits = 5;
    expect_invalid(m, "layer 0 (conv): weight bit width 5 not supported");
  }
  {
    Model m = good;
    std::swap(m.layers[2].thresholds[0], m.layers[2].thresholds[14]);
    if (m.layers[2].thresholds[0] == m.layers[2].thresholds[14]) m.layers[2].thresholds[0] += 1;
    expect_invalid(m, "not ascending");
  }
  {
    Model m = good;
    m.layers[2].in_channels = 9;
    expect_invalid(m, "in_channels 9");
  }
  {
    Model m = good;
    m.class_names.pop_back();
    expect_invalid(m, "3 logits for 2 classes");
  }
  {
    Model m = good;
    m.layers.back().act_bits = 4;
    expect_invalid(m, "last layer must have no activation");
  }
  {
    Model m = good;
    m.preprocess = "rgb-bilinear";
    expect_invalid(m, "pre-processing 'rgb-bilinear' not implemented");
  }
}

// The header of a package, as JSON, and the package rebuilt around an edited
// header (length and CRC fixed, so the edit reaches the check under test).
nlohmann::json header_of(const std::vector<uint8_t>& bytes) {
  const uint32_t length = bytes[12] | bytes[13] << 8 | bytes[14] << 16 | uint32_t(bytes[15]) << 24;
  return nlohmann::json::parse(bytes.begin() + 16, bytes.begin() + 16 + length);
}
std::vector<uint8_t> with_header(const std::vector<uint8_t>& bytes, const std::string& header) {
  const uint32_t old_length = bytes[12] | bytes[13] << 8 | bytes[14] << 16 | uint32_t(bytes[15]) << 24;
  std::vector<uint8_t> out(bytes.begin(), bytes.begin() + 12);
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(header.size() >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), bytes.begin() + 16 + old_length, bytes.end());
  fix_crc(out);
  return out;
}

// Red-team finding 1: provenance nested 100,000 deep overflowed the stack in
// nlohmann's dump() (SIGSEGV).
TEST(ModelHostile, DeeplyNestedHeaderIsRefused) {
  const auto good = random_model(paper_network_spec(2, 4), 1).serialize();
  auto h = header_of(good);
  h["provenance"] = "DEEP";
  auto text = h.dump();
  text.replace(text.find("\"DEEP\""), 6, std::string(100000, '[') + std::string(100000, ']'));
  const auto msg = parse_error(with_header(good, text));
  EXPECT_NE(msg.find("m.bqnn: header nests arrays/objects deeper than 64 levels"), std::string::npos) << msg;
  // ... while nesting within the limit, and brackets inside strings, are fine.
  auto ok = header_of(good);
  ok["provenance"] = nlohmann::json::parse(std::string(20, '[') + "\"]]]{{{\"" + std::string(20, ']'));
  EXPECT_EQ(parse_error(with_header(good, ok.dump())), "");
}

// Red-team finding 2: out x in x k x k wrapped size_t to 0, so a model with
// no weight bytes validated, then cpu_ref died of SIGFPE inside oneDNN.
TEST(ModelHostile, WeightCountThatWouldWrapIsRefused) {
  const auto good = random_model(paper_network_spec(2, 4), 1).serialize();
  auto h = header_of(good);
  auto& conv = h["layers"][0];
  ASSERT_EQ(conv["type"], "conv");
  conv["out_channels"] = 1 << 20;
  conv["in_channels"] = 1 << 18;
  conv["kernel"] = 8192;
  conv["weights"]["size"] = 0;  // 2^20 * 2^18 * 8192^2 = 2^64: 0 in size_t
  const auto msg = parse_error(with_header(good, h.dump()));
  EXPECT_NE(msg.find("layer 0: 1048576 x 262144 x 8192 x 8192 weights exceed the limit of 4194304"), std::string::npos)
      << msg;
}

// Red-team finding 2: 1e300 as an offset was undefined behaviour; 0.9 and 5.5
// were truncated and accepted.
TEST(ModelHostile, NumbersMustBeWholeAndInRangeNamingTheKey) {
  const auto good = random_model(paper_network_spec(2, 4), 1).serialize();
  const auto expect = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& needle) {
    auto h = header_of(good);
    edit(h);
    const auto msg = parse_error(with_header(good, h.dump()));
    EXPECT_NE(msg.find(needle), std::string::npos) << needle << ": " << msg;
  };
  for (double bad : {1e300, 0.9, 5.5, -1.0}) {
    SCOPED_TRACE(bad);
    expect([&](nlohmann::json& h) { h["layers"][0]["weights"]["offset"] = bad; }, "\"weights.offset\" = ");
    expect([&](nlohmann::json& h) { h["layers"][0]["weights"]["size"] = bad; }, "\"weights.size\" = ");
    expect([&](nlohmann::json& h) { h["layers"][0]["kernel"] = bad; }, "\"kernel\" = ");
    expect([&](nlohmann::json& h) { h["input"]["height"] = bad; }, "\"height\" = ");
  }
  expect([](nlohmann::json& h) { h["layers"][0]["weights"]["offset"] = 0.9; },
         "layer 0: \"weights.offset\" = 0.9 is not a whole number");
  expect([](nlohmann::json& h) { h["layers"][0]["kernel"] = "3"; }, "\"kernel\" = \"3\" is not a whole number");
  expect([](nlohmann::json& h) { h["logit_scale"] = 1e300; }, "\"logit_scale\" = 1e+300 is not a positive finite");
}

TEST(ModelCalibration, RoundTripsAndAPackageWithoutItLoadsAsBefore) {
  Model model = random_model(paper_network_spec(2, 4), 1);
  EXPECT_FALSE(Model::parse(model.serialize(), "mem").calibration);
  Calibration c;
  c.fitted_on = "test images";
  c.temperature = 1.5;
  const std::size_t features = Calibration::Gate::image_statistics + 3;
  c.gate = {128, 4.0, 2.0, "image-logit-mahalanobis-v1", std::vector<double>(features, 0.25),
            std::vector<double>(features * features, 0.5), 9.5, 0.99};
  c.referral = {0.97, 0.4, 0.97, 0.3, {{0.1, 1.0, 0.1}, {0.4, 0.97, 0.3}}};
  c.suspicious = {0.9, 0.6, 0.9, 0.5, {{0.6, 0.9, 0.5}}};
  model.calibration = c;
  const Model back = Model::parse(model.serialize(), "mem");
  ASSERT_TRUE(back.calibration);
  EXPECT_EQ(back.calibration->fitted_on, "test images");
  EXPECT_EQ(back.calibration->temperature, 1.5);
  EXPECT_EQ(back.calibration->gate.min_side, 128);
  EXPECT_EQ(back.calibration->gate.precision, c.gate.precision);
  EXPECT_EQ(back.calibration->referral.curve, c.referral.curve);
  EXPECT_EQ(back.calibration->suspicious.threshold, 0.6);
}

TEST(ModelCalibration, AMalformedBlockIsRefusedNamingTheField) {
  Model model = random_model(paper_network_spec(2, 4), 1);
  Calibration c;
  c.fitted_on = "x";
  const std::size_t features = Calibration::Gate::image_statistics + 3;
  c.gate = {128, 4.0, 2.0, "image-logit-mahalanobis-v1", std::vector<double>(features, 0),
            std::vector<double>(features * features, 0), 9.5, 0.99};
  c.referral = {0.97, 0.4, 0.97, 0.3, {{0.4, 0.97, 0.3}}};
  c.suspicious = c.referral;
  model.calibration = c;
  const auto good = model.serialize();
  const auto expect = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& needle) {
    auto h = header_of(good);
    edit(h);
    const auto msg = parse_error(with_header(good, h.dump()));
    EXPECT_NE(msg.find(needle), std::string::npos) << needle << ": " << msg;
  };
  expect([](nlohmann::json& h) { h["calibration"] = 5; }, "m.bqnn: calibration must be an object");
  expect([](nlohmann::json& h) { h["calibration"].erase("temperature"); }, "calibration has no \"temperature\"");
  expect([](nlohmann::json& h) { h["calibration"]["temperature"] = -1; },
         "calibration.temperature = -1 is not a number in");
  expect([](nlohmann::json& h) { h["calibration"]["fitted_on"] = 3; }, "calibration.fitted_on must be a string");
  expect([](nlohmann::json& h) { h["calibration"]["gate"]["min_side"] = 0.5; },
         "\"calibration.gate.min_side\" = 0.5 is not a whole number");
  expect([](nlohmann::json& h) { h["calibration"]["gate"]["ood_score"] = "energy"; },
         "calibration.gate.ood_score = \"energy\" is not a score this runtime computes");
  expect([](nlohmann::json& h) { h["calibration"]["gate"]["ood_params"]["mean"].erase(0); },
         "calibration.gate.ood_params.mean must be an array of " + std::to_string(features) + " numbers");
  expect([](nlohmann::json& h) { h["calibration"]["gate"]["ood_params"]["precision"][3] = "x"; },
         "calibration.gate.ood_params.precision[3] = \"x\" is not a finite number");
  expect([](nlohmann::json& h) { h["calibration"]["referral"]["threshold"] = 1.5; },
         "calibration.referral.threshold = 1.5 is not a number in [0, 1]");
  expect([](nlohmann::json& h) { h["calibration"]["suspicious"]["curve"] = nlohmann::json::array(); },
         "calibration.suspicious.curve must be a non-empty array");
  expect([](nlohmann::json& h) { h["calibration"]["referral"]["curve"][0] = {0.1, 2, 0.3}; },
         "calibration.referral.curve[0] holds 2, not a number in [0, 1]");
  expect([](nlohmann::json& h) { h["classes"] = {"a", "b", "malignant"}; },
         "calibration needs a class named \"normal\"");
}

// Red-team finding 3: /dev/zero as a model grew to gigabytes (no size cap).
TEST(ModelHostile, NonRegularAndOversizedFilesAreRefusedUnread) {
  TempDir dir;
  auto msg = test::error_of([] { Model::load("/dev/zero"); });
  EXPECT_NE(msg.find("/dev/zero: is a character device, not a regular file"), std::string::npos) << msg;
  const auto fifo = dir / "fifo.bqnn";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  msg = test::error_of([&] { Model::load(fifo); });  // no writer: must not block
  EXPECT_NE(msg.find("fifo.bqnn: is a FIFO (named pipe), not a regular file"), std::string::npos) << msg;
  const auto big = dir / "big.bqnn";
  test::write_file(big, {});
  std::filesystem::resize_file(big, limits::kModelFileBytes + 1);  // sparse: no disk used
  msg = test::error_of([&] { Model::load(big); });
  EXPECT_NE(msg.find("big.bqnn: file of 16777217 bytes is too large (limit 16777216 bytes)"), std::string::npos)
      << msg;
}

TEST(ModelPackage, LoadNamesMissingFile) {
  TempDir dir;
  try {
    Model::load(dir / "nope.bqnn");
    FAIL();
  } catch (const model_error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.bqnn: no such model file"), std::string::npos) << e.what();
  }
}

TEST(ModelPackage, ShippedDefaultModelLoads) {
  const Model model = Model::load(default_model_path(ModelKind::quantized));
  EXPECT_EQ(model.class_names, (std::vector<std::string>{"normal", "benign", "malignant"}));
  EXPECT_EQ(model.input, (Shape{1, 255, 255}));
}

// FNV-1a 64's published test vectors (Fowler, Noll, Vo).
TEST(SeenImages, HashIsFnv1a64) {
  const auto of = [](const std::string& s) { return fnv1a64({reinterpret_cast<const uint8_t*>(s.data()), s.size()}); };
  EXPECT_EQ(of(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(of("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(of("foobar"), 0x85944171f73967e8ull);
  const Tensor8 t{1, 6, {'f', 'o', 'o', 'b', 'a', 'r'}};
  EXPECT_EQ(input_hash(t), of("foobar"));
}

TEST(SeenImages, RoundTripAndLookup) {
  Model model = random_model(paper_network_spec(2, 4), 1);
  EXPECT_FALSE(Model::parse(model.serialize(), "m.bqnn").seen_images);  // absent: loads as before
  const Tensor8 a{255, 255, std::vector<uint8_t>(255 * 255, 7)}, b{255, 255, std::vector<uint8_t>(255 * 255, 9)};
  Tensor8 c = a;
  c.pixels[1000] ^= 1;  // one pixel differs: another image
  EXPECT_FALSE(model.has_seen(a));
  model.seen_images = std::vector<uint64_t>{input_hash(a), input_hash(b)};
  std::sort(model.seen_images->begin(), model.seen_images->end());
  const Model back = Model::parse(model.serialize(), "m.bqnn");
  ASSERT_TRUE(back.seen_images);
  EXPECT_EQ(*back.seen_images, *model.seen_images);
  EXPECT_TRUE(back.has_seen(a));
  EXPECT_TRUE(back.has_seen(b));
  EXPECT_FALSE(back.has_seen(c));
  const auto h = header_of(model.serialize());
  EXPECT_EQ(h["seen_images"]["hash"], "fnv1a64-gray-area-v1");
  EXPECT_EQ(h["seen_images"]["count"], 2);
}

TEST(SeenImages, BadBlocksAreRefusedNamingTheKey) {
  Model model = random_model(paper_network_spec(2, 4), 1);
  model.seen_images = std::vector<uint64_t>{5, 3};
  EXPECT_NE(parse_error(model.serialize()).find("m.bqnn: seen_images.hashes are not sorted and distinct (index 1)"),
            std::string::npos);
  model.seen_images = std::vector<uint64_t>{3, 5};
  const auto good = model.serialize();
  auto h = header_of(good);
  h["seen_images"]["hash"] = "sha1-gray-area-v1";
  EXPECT_NE(parse_error(with_header(good, h.dump())).find("hash 'sha1-gray-area-v1' is not the one this runtime"),
            std::string::npos);
  h = header_of(good);
  h["seen_images"]["count"] = 3;
  EXPECT_NE(parse_error(with_header(good, h.dump())).find("seen_images.hashes: blob has 16 bytes, shapes need 24"),
            std::string::npos);
  h = header_of(good);
  h["seen_images"].erase("hashes");
  EXPECT_NE(parse_error(with_header(good, h.dump())).find("seen_images needs \"count\" and \"hashes\""),
            std::string::npos);
}

// The hashes in the shipped packages were written by Python
// (training/busi_train/seen.py: data.load_image + package.input_hashes); here the
// C++ runtime pre-processes and hashes the same files: every training image is
// found, and the validation images, never trained on, are not.
TEST(SeenImages, ShippedPackagesKnowTheirTrainingImages) {
  BUSI_REQUIRE_DATA();
  const auto split = [](const char* name) {
    std::vector<std::string> files;
    std::ifstream in(std::filesystem::path(BUSI_SOURCE_DIR) / "training/splits" / name);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) files.push_back(line);
    return files;
  };
  const auto train = split("train.txt"), val = split("val.txt");
  ASSERT_EQ(train.size(), 624u);
  ASSERT_EQ(val.size(), 78u);
  std::vector<Tensor8> train_inputs, val_inputs;
  for (const auto& f : train) train_inputs.push_back(load_image(test::busi_data_dir() / f, 255, 255));
  for (const auto& f : val) val_inputs.push_back(load_image(test::busi_data_dir() / f, 255, 255));
  for (const char* file : {"busi-w2a4.bqnn", "busi-w4a4.bqnn", "busi-float.bqnn"}) {
    const Model model = Model::load(std::filesystem::path(BUSI_SOURCE_DIR) / "models" / file);
    ASSERT_TRUE(model.seen_images) << file;
    EXPECT_EQ(model.seen_images->size(), 624u) << file;
    for (std::size_t i = 0; i < train.size(); ++i) EXPECT_TRUE(model.has_seen(train_inputs[i])) << file << " " << train[i];
    for (std::size_t i = 0; i < val.size(); ++i) EXPECT_FALSE(model.has_seen(val_inputs[i])) << file << " " << val[i];
  }
}

void fix_crc(std::vector<uint8_t>& bytes) {
  // An independent bitwise CRC-32 (IEEE), so the test does not trust the code under test.
  const std::size_t body = bytes.size() - 4;
  uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < body; ++i) {
    crc ^= bytes[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  crc ^= 0xFFFFFFFFu;
  for (int i = 0; i < 4; ++i) bytes[body + i] = uint8_t(crc >> (8 * i));
}

}  // namespace
}  // namespace busi
