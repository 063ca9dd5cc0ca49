#include "busi/model.hpp"

#include <gtest/gtest.h>

#include "busi/error.hpp"
#include "busi/random_model.hpp"
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
