// The fpga backend's pieces on their own: XML and .hwh reading, FINN packing
// against hand-worked bytes, the overlay description, .bit -> .bin, register
// windows and the FCLK0 divider search.
#include <fcntl.h>
#include <unistd.h>

#include <random>

#include "busi/error.hpp"
#include "fpga_manager.hpp"
#include "hwh.hpp"
#include "overlay.hpp"
#include "packing.hpp"
#include "pynq_emulator.hpp"
#include "register_window.hpp"
#include "test_support.hpp"

namespace busi::fpga {
namespace {

using test::error_of;

// The .hwh is XML read with pugixml: entities, comments, CDATA and nesting
// wherever Vivado puts the processing system.
TEST(FpgaXml, ReadsEntitiesCommentsCdataAndNestedModules) {
  const auto info = parse_hwh(
      "<?xml version=\"1.0\"?>\n<!-- c --><A><![CDATA[<raw>]]><B><MODULE MODTYPE=\"processing_system7\">"
      "<PARAMETERS><PARAMETER NAME=\"PCW_FPGA0_PERIPHERAL_FREQMHZ\" VALUE=\"1&#48;0\"/></PARAMETERS>"
      "<X><MEMRANGE INSTANCE=\"a&amp;b\" BASEVALUE=\"0x40000000\" HIGHVALUE=\"0x40000FFF\" MEMTYPE=\"REGISTER\"/>"
      "</X></MODULE></B><MEMRANGE INSTANCE=\"outside\" BASEVALUE=\"0x0\" HIGHVALUE=\"0xF\"/></A>",
      "t.hwh");
  EXPECT_DOUBLE_EQ(info.fclk_mhz(0), 100.0);
  ASSERT_EQ(info.ips.size(), 1u);  // the MEMRANGE outside the processing system is not its
  EXPECT_EQ(info.ip("a&b").range, 0x1000u);
}

TEST(FpgaXml, MalformedInputNamesFileAndLine) {
  const auto message = error_of([] { parse_hwh("<A>\n<B></A>", "x.hwh"); });
  EXPECT_NE(message.find("x.hwh: malformed XML at line 2"), std::string::npos) << message;
  EXPECT_NE(error_of([] { parse_hwh("<A b=1/>", "x.hwh"); }).find("x.hwh: malformed XML at line 1"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_hwh("<A>", "x.hwh"); }).find("x.hwh: malformed XML"), std::string::npos);
  EXPECT_NE(error_of([] { parse_hwh("", "x.hwh"); }).find("x.hwh: malformed XML"), std::string::npos);
}

const char* const hwh_text = R"(<?xml version="1.0" encoding="UTF-8"?>
<EDKSYSTEM><MODULES>
  <MODULE INSTANCE="idma0" MODTYPE="IODMA"/>
  <MODULE INSTANCE="processing_system7_0" MODTYPE="processing_system7">
    <PARAMETERS><PARAMETER NAME="PCW_FPGA0_PERIPHERAL_FREQMHZ" VALUE="100"/></PARAMETERS>
    <MEMORYMAP>
      <MEMRANGE BASEVALUE="0x43C00000" HIGHVALUE="0x43C0FFFF" INSTANCE="idma0" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="s_axi_control"/>
      <MEMRANGE BASEVALUE="0x43C10000" HIGHVALUE="0x43C10FFF" INSTANCE="odma0" MEMTYPE="REGISTER"/>
      <MEMRANGE BASEVALUE="0x00000000" HIGHVALUE="0x1FFFFFFF" INSTANCE="ps7_ddr_0" MEMTYPE="MEMORY"/>
    </MEMORYMAP>
  </MODULE>
</MODULES></EDKSYSTEM>)";

TEST(FpgaHwh, FindsIpWindowsAndClocks) {
  const auto info = parse_hwh(hwh_text, "b.hwh");
  EXPECT_EQ(info.ip("idma0").base, 0x43C00000u);
  EXPECT_EQ(info.ip("idma0").range, 0x10000u);
  EXPECT_EQ(info.ip("idma0").slave_interface, "s_axi_control");
  EXPECT_EQ(info.ip("odma0").range, 0x1000u);
  EXPECT_EQ(info.ips.count("ps7_ddr_0"), 0u);  // memory, not registers
  EXPECT_DOUBLE_EQ(info.fclk_mhz(0), 100.0);
}

TEST(FpgaHwh, MissingDmaOrProcessingSystemIsAClearError) {
  const auto info = parse_hwh(hwh_text, "b.hwh");
  const auto message = error_of([&] { info.ip("odma1"); });
  EXPECT_NE(message.find("b.hwh: no IP named 'odma1'"), std::string::npos) << message;
  EXPECT_NE(message.find("found: idma0, odma0"), std::string::npos) << message;
  EXPECT_NE(error_of([] { parse_hwh("<EDKSYSTEM><MODULES/></EDKSYSTEM>", "e.hwh"); }).find("no processing system"),
            std::string::npos);
  std::string bad = hwh_text;
  bad.replace(bad.find("0x43C10FFF"), 10, "0x43000000");
  EXPECT_NE(error_of([&] { parse_hwh(bad, "b.hwh"); }).find("below BASEVALUE"), std::string::npos);
  EXPECT_NE(error_of([] { load_hwh("/nonexistent/x.hwh"); }).find("/nonexistent/x.hwh"), std::string::npos);
}

// Vivado's own files for the XC7Z020 (../shared/finn_pynq_z2, see its README):
// test data for the real formats, never copied into the repository.
std::filesystem::path real_finn_files() {
  if (const char* env = std::getenv("BUSI_FINN_PYNQ_Z2")) return env;
  return std::filesystem::path(BUSI_SOURCE_DIR) / "../shared/finn_pynq_z2";
}
#define REQUIRE_REAL_FINN_FILES()                                                                       \
  do {                                                                                                \
    if (!std::filesystem::exists(real_finn_files() / "resizer.hwh"))                                  \
      GTEST_SKIP() << "Vivado's resizer.hwh/.bit not found at " << real_finn_files()                  \
                   << " (../shared/finn_pynq_z2 beside the checkout, or set BUSI_FINN_PYNQ_Z2)";     \
  } while (0)

// Vivado writes a UTF-8 byte-order mark first; the reader refused every real
// .hwh for it ("expected the root element") until it skipped it.
TEST(FpgaHwh, ReadsVivadosRealHandOffWithItsByteOrderMark) {
  REQUIRE_REAL_FINN_FILES();
  const auto path = real_finn_files() / "resizer.hwh";
  const auto bytes = test::read_file(path);
  ASSERT_GE(bytes.size(), 3u);
  ASSERT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 3), (std::vector<uint8_t>{0xEF, 0xBB, 0xBF}))
      << "the test file no longer starts with a byte-order mark";
  const auto info = load_hwh(path);
  EXPECT_EQ(info.ip("idma0").base, 0x40000000u);
  EXPECT_EQ(info.ip("idma0").range, 0x1000u);
  EXPECT_EQ(info.ip("odma0").base, 0x40001000u);
  EXPECT_EQ(info.ip("odma0").range, 0x1000u);
  EXPECT_DOUBLE_EQ(info.fclk_mhz(0), 100.0);
}

TEST(FpgaBitstream, RealBitstreamGivesExactlyItsConfigurationData) {
  REQUIRE_REAL_FINN_FILES();
  const auto bit = test::read_file(real_finn_files() / "resizer.bit");
  const auto info = bit_to_bin(bit, "resizer.bit");
  EXPECT_EQ(info.part, "7z020clg400");
  EXPECT_EQ(info.design.rfind("top_wrapper", 0), 0u) << info.design;
  ASSERT_EQ(info.bin.size(), 4045564u);
  // The configuration data is the .bit's last 4,045,564 bytes, each 32-bit
  // word byte-swapped; its sync word 0xAA995566 sits at byte 48.
  const std::size_t start = bit.size() - info.bin.size();
  for (std::size_t i = 0; i < info.bin.size(); i += 4)
    for (std::size_t b = 0; b < 4; ++b) ASSERT_EQ(info.bin[i + b], bit[start + i + 3 - b]) << "byte " << i + b;
  EXPECT_EQ(std::vector<uint8_t>(info.bin.begin() + 48, info.bin.begin() + 52),
            (std::vector<uint8_t>{0x66, 0x55, 0x99, 0xAA}));
}

TEST(FpgaHwh, EmulatedHandOffStartsWithAByteOrderMarkLikeVivados) {
  test::TempDir dir;
  std::filesystem::copy(std::filesystem::path(BUSI_SOURCE_DIR) / "overlays/busi-w2a4/overlay.json",
                        dir / "overlay.json");
  const auto d = overlay_description::load(dir.path());
  emu::write_emulated_hardware(d);
  const auto bytes = test::read_file(d.hwh);
  ASSERT_GE(bytes.size(), 3u);
  EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 3), (std::vector<uint8_t>{0xEF, 0xBB, 0xBF}));
  EXPECT_EQ(load_hwh(d.hwh).ip("idma0").base, 0x43C00000u);
}

// Red-team finding 1: 200,000 nested elements overflowed the stack (SIGSEGV)
// in xml_element's destructor and collect_modules.
TEST(FpgaXml, DeepNestingIsRefusedNotAStackOverflow) {
  std::string deep;
  for (int i = 0; i < 90000; ++i) deep += "<a>";
  for (int i = 0; i < 90000; ++i) deep += "</a>";
  auto message = error_of([&] { parse_hwh(deep, "deep.hwh"); });
  EXPECT_NE(message.find("deep.hwh: malformed XML at line 1: elements nested deeper than 64 levels"),
            std::string::npos)
      << message;
  std::string wide = "<a>";
  for (int i = 0; i < 200000; ++i) wide += "<b/>";
  wide += "</a>";
  message = error_of([&] { parse_hwh(wide, "wide.hwh"); });
  EXPECT_NE(message.find("more than 100000 elements"), std::string::npos) << message;
  message = error_of([&] { parse_hwh("<!DOCTYPE a [<!ENTITY x \"y\">]><a/>", "dtd.hwh"); });
  EXPECT_NE(message.find("DOCTYPE not supported"), std::string::npos) << message;
}

TEST(FpgaPacking, MatchesHandWorkedBytes) {
  // INT2 {-1, 0, 1, -2}: fields 11, 00, 01, 10 from bit 0 up.
  const int32_t int2[] = {-1, 0, 1, -2};
  uint8_t out[4] = {};
  pack(int2, 1, 4, finn_datatype::parse("INT2"), out);
  EXPECT_EQ(out[0], 0x93);
  // UINT4 {1, 2, 3}: two bytes, high nibble of the second is padding.
  const int32_t uint4[] = {1, 2, 3};
  pack(uint4, 1, 3, finn_datatype::parse("UINT4"), out);
  EXPECT_EQ(out[0], 0x21);
  EXPECT_EQ(out[1], 0x03);
  // BIPOLAR {-1, 1, 1, -1, 1} stored as {0, 1, 1, 0, 1}.
  const int32_t bipolar[] = {-1, 1, 1, -1, 1};
  pack(bipolar, 1, 5, finn_datatype::parse("BIPOLAR"), out);
  EXPECT_EQ(out[0], 0x16);
  // INT32 little-endian, two vectors of one element.
  const int32_t int32[] = {-2, 0x01020304};
  uint8_t wide[8];
  pack(int32, 2, 1, finn_datatype::parse("INT32"), wide);
  EXPECT_EQ(std::vector<uint8_t>(wide, wide + 8), (std::vector<uint8_t>{0xFE, 0xFF, 0xFF, 0xFF, 4, 3, 2, 1}));
  int32_t back[5];  // one vector of 5 elements (AddressSanitizer found a 4 here)
  unpack(out, 1, 5, finn_datatype::parse("BIPOLAR"), back);
  EXPECT_EQ(std::vector<int32_t>(back, back + 5), (std::vector<int32_t>{-1, 1, 1, -1, 1}));
}

TEST(FpgaPacking, RoundTripsEveryWidthOnOddVectorLengths) {
  std::mt19937 rng(5);
  for (const char* name : {"BINARY", "BIPOLAR", "UINT2", "INT2", "UINT3", "INT4", "UINT7", "UINT8", "INT8", "INT13",
                           "UINT16", "INT20", "INT32"}) {
    const auto type = finn_datatype::parse(name);
    for (std::size_t inner : {1u, 3u, 7u, 13u}) {
      std::vector<int32_t> values(inner * 3);
      std::uniform_int_distribution<int64_t> pick(type.min(), type.max());
      for (auto& v : values) {
        v = int32_t(pick(rng));
        if (type.bipolar) v = v > 0 ? 1 : -1;
      }
      std::vector<uint8_t> packed(3 * packed_vector_bytes(inner, type));
      pack(values.data(), 3, inner, type, packed.data());
      std::vector<int32_t> back(values.size());
      unpack(packed.data(), 3, inner, type, back.data());
      EXPECT_EQ(back, values) << name << " inner " << inner;
    }
  }
  EXPECT_NE(error_of([] { finn_datatype::parse("INT1"); }).find("'INT1' not supported"), std::string::npos);
  EXPECT_NE(error_of([] { finn_datatype::parse("FLOAT32"); }).find("'FLOAT32'"), std::string::npos);
}

std::filesystem::path shipped_overlay() { return std::filesystem::path(BUSI_SOURCE_DIR) / "overlays/busi-w2a4"; }

TEST(FpgaOverlay, LoadsTheShippedDescription) {
  const auto d = overlay_description::load(shipped_overlay());
  EXPECT_EQ(d.name, "busi-w2a4");
  EXPECT_EQ(d.input.dma, "idma0");
  EXPECT_EQ(d.input.packed_bytes(), 255u * 255u);
  // The three int32 logits: 12 bytes per image (a top-1 overlay's would be 1).
  EXPECT_EQ(d.output.packed_bytes(), 12u);
  EXPECT_EQ(d.kind, output_kind::logits);
  EXPECT_EQ(overlay_description::load(std::filesystem::path(BUSI_SOURCE_DIR) / "overlays/busi-w4a4").kind,
            output_kind::logits);
  EXPECT_EQ(d.hwh, shipped_overlay() / "busi-w2a4.hwh");
}

TEST(FpgaOverlay, InconsistentShapesAreNamed) {
  test::TempDir dir;
  const auto write = [&](const std::string& output) {
    std::ofstream(dir / "overlay.json") << R"({"name": "x", "bitstream": "x.bit",
      "input": {"dma": "idma0", "datatype": "UINT8", "shape_normal": [1,4,4,1], "shape_folded": [1,4,4,1,1],
                "shape_packed": [1,4,4,1,1]}, "output": )"
                                        << output << "}";
  };
  write(
      R"({"dma": "odma0", "datatype": "INT4", "shape_normal": [1,3], "shape_folded": [1,1,3], "shape_packed": [1,1,1]})");
  auto message = error_of([&] { overlay_description::load(dir.path()); });
  EXPECT_NE(message.find("output: packed shape [1,1,1] does not match folded shape [1,1,3] at 4 bits"),
            std::string::npos)
      << message;
  write(
      R"({"dma": "odma0", "datatype": "INT4", "shape_normal": [1,3], "shape_folded": [1,2,2], "shape_packed": [1,2,1]})");
  message = error_of([&] { overlay_description::load(dir.path()); });
  EXPECT_NE(message.find("does not hold the elements"), std::string::npos) << message;
  write(R"({"datatype": "INT4", "shape_normal": [1,3], "shape_folded": [1,1,3], "shape_packed": [1,1,2]})");
  message = error_of([&] { overlay_description::load(dir.path()); });
  EXPECT_NE(message.find("missing \"dma\""), std::string::npos) << message;
  EXPECT_NE(error_of([] { overlay_description::load("/nonexistent"); }).find("cannot open /nonexistent/overlay.json"),
            std::string::npos);
}

// Red-team finding 2: shapes are whole numbers whose products cannot wrap.
TEST(FpgaOverlay, ShapesAreWholeNumbersWhoseProductIsBounded) {
  test::TempDir dir;
  const auto message_for = [&](const std::string& shape_normal) {
    std::ofstream(dir / "overlay.json", std::ios::trunc) << R"({"name": "x", "bitstream": "x.bit",
      "input": {"dma": "idma0", "datatype": "UINT8", "shape_normal": [1,4,4,1], "shape_folded": [1,4,4,1,1],
                "shape_packed": [1,4,4,1,1]},
      "output": {"dma": "odma0", "datatype": "UINT8", "shape_normal": )"
                                                     << shape_normal
                                                     << R"(, "shape_folded": [1,1,1], "shape_packed": [1,1,1]}})";
    return error_of([&] { overlay_description::load(dir.path()); });
  };
  for (const char* bad : {"[1, 1e300]", "[1, 0.9]", "[1, 5.5]", "[1, -3]", "[1, \"2\"]"}) {
    const auto message = message_for(bad);
    EXPECT_NE(message.find("\"shape_normal\" dimension"), std::string::npos) << bad << ": " << message;
    EXPECT_NE(message.find("is not a whole number"), std::string::npos) << bad << ": " << message;
  }
  // 2^31-1 cubed wraps 64 bits; refused as it is multiplied.
  auto message = message_for("[1, 2147483647, 2147483647, 2147483647, 2147483647]");
  EXPECT_NE(message.find("holds more than 16777216 elements per image"), std::string::npos) << message;
  // Deep nesting is refused before the JSON library sees it.
  std::string deep(100000, '[');
  std::ofstream(dir / "overlay.json", std::ios::trunc) << deep;
  message = error_of([&] { overlay_description::load(dir.path()); });
  EXPECT_NE(message.find("deeper than 64 levels"), std::string::npos) << message;
}

TEST(FpgaBitstream, ConvertsBitToByteSwappedBin) {
  test::TempDir dir;
  std::filesystem::copy(shipped_overlay() / "overlay.json", dir / "overlay.json");
  const auto d = overlay_description::load(dir.path());
  emu::write_emulated_hardware(d);
  const auto bit = test::read_file(d.bitstream);
  const auto info = bit_to_bin(bit, "x.bit");
  EXPECT_EQ(info.part, "7z020clg400");
  EXPECT_EQ(info.design.rfind("busi-w2a4;", 0), 0u);
  ASSERT_EQ(info.bin.size() % 4, 0u);
  const std::vector<uint8_t> sync = {0x66, 0x55, 0x99, 0xAA};
  EXPECT_NE(std::search(info.bin.begin(), info.bin.end(), sync.begin(), sync.end()), info.bin.end());
  auto truncated = bit;
  truncated.resize(bit.size() - 6);
  EXPECT_NE(error_of([&] {
              bit_to_bin(truncated, "t.bit");
            }).find("t.bit: not a Xilinx .bit file: configuration data truncated"),
            std::string::npos);
  EXPECT_NE(error_of([] { bit_to_bin({1, 2, 3}, "z.bit"); }).find("bad magic"), std::string::npos);
}

// Red-team finding 4: an emulated dev/mem shorter than a window mapped fine,
// then raised SIGBUS on the first read past its end.
TEST(FpgaRegisters, AFileShorterThanTheWindowIsRefusedNotSigbus) {
  test::TempDir dir;
  const auto file = dir / "mem";
  test::write_file(file, std::vector<uint8_t>(0x1000, 0));
  const auto message = error_of([&] { register_window::map_physical(file, 0x1000, 0x100, "slcr"); });
  EXPECT_NE(message.find("is a file of 4096 bytes, too short for slcr registers at 0x1000"), std::string::npos)
      << message;
  EXPECT_EQ(register_window::map_physical(file, 0x0, 0x1000, "ok").read32(0xFFC), 0u);
}

TEST(FpgaRegisters, BoundsAndAlignmentAreChecked) {
  test::TempDir dir;
  const auto file = dir / "mem";
  test::write_file(file, std::vector<uint8_t>(0x3000, 0));
  auto regs = register_window::map_physical(file, 0x1010, 0x100, "ip0");
  regs.write32(0xFC, 0xCAFEF00D);
  EXPECT_EQ(regs.read32(0xFC), 0xCAFEF00Du);
  const auto bytes = test::read_file(file);
  EXPECT_EQ(bytes[0x1010 + 0xFC], 0x0D);  // landed at base + offset of the file
  auto message = error_of([&] { regs.read32(0x100); });
  EXPECT_NE(message.find("read ip0 register 0x100: outside the window of size 0x100"), std::string::npos) << message;
  EXPECT_NE(error_of([&] { regs.write32(2, 0); }).find("not 32-bit aligned"), std::string::npos);
  message = error_of([&] { register_window::map_physical(dir / "nomem", 0x40000000, 0x1000, "odma0"); });
  EXPECT_NE(message.find("open " + (dir / "nomem").string() + " for odma0 registers at 0x40000000"), std::string::npos)
      << message;
}

}  // namespace
}  // namespace busi::fpga
