#pragma once
// An overlay: a folder under overlays/ holding the accelerator's description
// (overlay.json, written by hand or by overlays/build.py next to FINN's build),
// and, on a board, the bitstream and its .hwh built with FINN and Vivado.
//
// overlay.json:
// {
//   "name": "busi-w2a4", "model": "busi-w2a4",       // model name it was built from
//   "bitstream": "busi-w2a4.bit", "hwh": "busi-w2a4.hwh",
//   "fclk_mhz": 100, "folding": "folding_3fps.json",
//   "input":  {"dma": "idma0", "datatype": "UINT8", "shape_normal": [1,255,255,1],
//              "shape_folded": [1,255,255,1,1], "shape_packed": [1,255,255,1,1]},
//   "output": {"dma": "odma0", "datatype": "UINT8", "kind": "top1",  // or "logits"
//              "shape_normal": [1,1], "shape_folded": [1,1,1], "shape_packed": [1,1,1]}
// }
// Shapes follow FINN's io_shape_dict: dimension 0 is the batch (any value here;
// the runtime replaces it), normal shapes are NHWC, the folded shape's innermost
// dimension is the port's SIMD/PE, the packed shape's innermost dimension is
// ceil(inner * bits / 8) bytes.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "packing.hpp"

namespace busi {
struct Model;
}

namespace busi::fpga {

struct io_port {
  std::string dma;
  finn_datatype datatype;
  std::vector<int64_t> shape_normal, shape_folded, shape_packed;

  // Per image (dimension 0 excluded).
  std::size_t elements() const;
  std::size_t vectors() const;  // innermost folded vectors per image
  std::size_t inner() const;    // elements per innermost vector
  std::size_t packed_bytes() const;
};

enum class output_kind { top1, logits };

struct overlay_description {
  std::filesystem::path dir;
  std::string name, model_name;
  std::filesystem::path bitstream, hwh, folding;  // absolute (dir-relative in the file)
  double fclk_mhz = 100.0;
  io_port input, output;
  output_kind kind = output_kind::top1;

  // Reads and checks dir/overlay.json. Throws busi::error naming the file and
  // the key that is missing or inconsistent.
  static overlay_description load(const std::filesystem::path& dir);
  // The same from the text of an overlay.json in `dir` (paths are resolved
  // against it, nothing is read).
  static overlay_description parse(std::string_view text, const std::filesystem::path& dir);

  // Checks that the ports match the model: input normal shape = 1 x H x W x C
  // of the model input; output = 1 index (top1) or one logit per class.
  void check_against(const Model& model) const;
};

}  // namespace busi::fpga
