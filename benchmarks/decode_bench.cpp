// decode_bench: what the decoder and the pre-processing are made of, per BUSI
// image (all PNGs of a folder, held in memory), one thread, each candidate
// timed in alternating rounds so all see the same machine load:
//   - inflating the IDAT stream alone: zlib (libpng's) vs libdeflate (the fast path's);
//   - decoding the file: cv::imdecode (the PC build's decoder before issue 17),
//     libpng as OpenCV sets it up, and busi::decode_image (the libdeflate path);
//   - pre-processing the decoded BGR pixels: cv::cvtColor + cv::resize(INTER_AREA)
//     vs busi::preprocess (the fused pass);
//   - all of it from the file: read + cv::imdecode + cvtColor + resize (what
//     load_image did before issue 17) vs busi::ImageLoader::load (what each of
//     busi-infer's workers does now, its buffers kept from image to image).
//   - the gate of every prediction (make_prediction with the shipped W2A4
//     package and fixed logits: the input checks, the 17 features and the
//     out-of-distribution score) on the images' 255x255 inputs.
// decode_image and preprocess allocate their outputs and copy decode_image's
// pixels into OpenCV's BGR order on every call; the loader does neither.
// Prints the median over rounds of the mean microseconds per image.
//   decode_bench [folder] [rounds] [only]    (default ../shared/busi, 5; `only`:
//   run just the steps whose name contains it, e.g. gate)
#include <png.h>
#include <zlib.h>
#include <libdeflate.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "busi/backend.hpp"
#include "busi/image.hpp"
#include "busi/limits.hpp"

namespace {

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

// The IDAT data of a PNG joined, and its inflated size (rows + filter bytes).
struct Idat {
  std::vector<uint8_t> stream;
  std::size_t inflated = 0;
};
Idat idat_of(const std::vector<uint8_t>& png) {
  Idat out;
  uint32_t width = 0, height = 0, channels = 0;
  for (std::size_t pos = 8; pos + 12 <= png.size();) {
    const uint32_t length = be32(&png[pos]);
    const uint8_t* type = &png[pos + 4];
    if (std::memcmp(type, "IHDR", 4) == 0) {
      width = be32(type + 4);
      height = be32(type + 8);
      const int color = type[13];
      channels = color == 0 ? 1 : color == 2 ? 3 : color == 4 ? 2 : 4;
    }
    if (std::memcmp(type, "IDAT", 4) == 0) out.stream.insert(out.stream.end(), type + 4, type + 4 + length);
    pos += 12 + length;
  }
  out.inflated = std::size_t(height) * (std::size_t(width) * channels + 1);
  return out;
}

struct PngInput {
  const uint8_t* data;
  std::size_t size, pos;
};

// libpng reading 8-bit RGB to BGR, as OpenCV's PngDecoder does.
cv::Mat libpng_decode(const std::vector<uint8_t>& bytes) {
  PngInput in{bytes.data(), bytes.size(), 0};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_read_fn(png, &in, [](png_structp p, png_bytep out, png_size_t n) {
    auto* i = static_cast<PngInput*>(png_get_io_ptr(p));
    std::memcpy(out, i->data + i->pos, n);
    i->pos += n;
  });
  png_read_info(png, info);
  png_set_bgr(png);
  png_read_update_info(png, info);
  cv::Mat out(int(png_get_image_height(png, info)), int(png_get_image_width(png, info)), CV_8UC(png_get_channels(png, info)));
  std::vector<png_bytep> rows(out.rows);
  for (int y = 0; y < out.rows; ++y) rows[y] = out.ptr(y);
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path folder = argc > 1 ? argv[1] : "../shared/busi";
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  const std::string only = argc > 3 ? argv[3] : "";
  std::vector<std::vector<uint8_t>> files;
  std::vector<std::filesystem::path> paths;
  std::vector<Idat> idats;
  std::vector<cv::Mat> decoded;
  for (const auto& path : busi::collect_images(folder)) {
    if (path.extension() != ".png") continue;
    std::string reason;
    auto bytes = busi::limits::read_file(path, busi::limits::kImageFileBytes, reason);
    if (!bytes) continue;
    idats.push_back(idat_of(*bytes));
    decoded.push_back(cv::imdecode(*bytes, cv::IMREAD_UNCHANGED));
    files.push_back(std::move(*bytes));
    paths.push_back(path);
  }
  if (files.empty()) {
    std::cerr << "decode_bench: no PNG under " << folder << "\n";
    return 1;
  }
  std::vector<uint8_t> out(1 << 24);
  libdeflate_decompressor* inflater = libdeflate_alloc_decompressor();
  uint64_t sink = 0;  // keeps results alive
  busi::ImageLoader loader;
  busi::Tensor8 tensor;
  std::vector<busi::Tensor8> inputs(paths.size());
  for (std::size_t i = 0; i < paths.size(); ++i) loader.load(paths[i], 255, 255, inputs[i]);
  const busi::Model model = busi::Model::load(busi::default_model_path(busi::ModelKind::quantized));
  struct Candidate {
    const char* name;
    std::function<void(std::size_t)> run;
    std::vector<double> us;
  };
  std::vector<Candidate> candidates = {
      {"inflate IDAT: zlib", [&](std::size_t i) {
         uLongf n = uLongf(out.size());
         sink += uncompress(out.data(), &n, idats[i].stream.data(), uLong(idats[i].stream.size()));
       }},
      {"inflate IDAT: libdeflate", [&](std::size_t i) {
         sink += libdeflate_zlib_decompress(inflater, idats[i].stream.data(), idats[i].stream.size(), out.data(),
                                            idats[i].inflated, nullptr);
       }},
      {"decode: cv::imdecode (PC build before issue 17)", [&](std::size_t i) {
         sink += cv::imdecode(files[i], cv::IMREAD_UNCHANGED).cols;
       }},
      {"decode: libpng, OpenCV's setup (board build before)", [&](std::size_t i) { sink += libpng_decode(files[i]).cols; }},
      {"decode: busi::decode_image (libdeflate path)", [&](std::size_t i) {
         sink += busi::decode_image(files[i], "x").width;
       }},
      {"pre-process: cv::cvtColor + cv::resize(INTER_AREA)", [&](std::size_t i) {
         cv::Mat gray, sized;
         cv::cvtColor(decoded[i], gray, cv::COLOR_BGR2GRAY);
         cv::resize(gray, sized, cv::Size(255, 255), 0, 0, cv::INTER_AREA);
         sink += sized.data[0];
       }},
      {"pre-process: busi::preprocess (fused pass)", [&](std::size_t i) {
         const cv::Mat& m = decoded[i];
         sink += busi::preprocess({m.data, m.cols, m.rows, m.channels(), m.step[0], 1}, 255, 255).pixels[0];
       }},
      {"file to 255x255: read + cv::imdecode + cvtColor + resize (before)", [&](std::size_t i) {
         std::string reason;
         const auto bytes = busi::limits::read_file(paths[i], busi::limits::kImageFileBytes, reason);
         cv::Mat gray, sized;
         cv::cvtColor(cv::imdecode(*bytes, cv::IMREAD_UNCHANGED), gray, cv::COLOR_BGR2GRAY);
         cv::resize(gray, sized, cv::Size(255, 255), 0, 0, cv::INTER_AREA);
         sink += sized.data[0];
       }},
      {"file to 255x255: busi::ImageLoader::load (after)", [&](std::size_t i) {
         loader.load(paths[i], 255, 255, tensor);
         sink += tensor.pixels[0];
       }},
      {"gate: make_prediction on the 255x255 input (W2A4 package, fixed logits)", [&](std::size_t i) {
         busi::RawOutput raw;
         raw.logits = {1000, -200, 300};
         sink += int(busi::make_prediction(model, "cpu_int", inputs[i], std::move(raw)).verdict);
       }},
  };
  std::erase_if(candidates, [&](const Candidate& c) { return std::string(c.name).find(only) == std::string::npos; });
  for (int r = 0; r < rounds; ++r)
    for (auto& c : candidates) {
      const auto t0 = std::chrono::steady_clock::now();
      for (std::size_t i = 0; i < files.size(); ++i) c.run(i);
      c.us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
                     double(files.size()));
    }
  libdeflate_free_decompressor(inflater);
  std::cout << files.size() << " PNGs from " << folder << ", " << rounds << " alternating rounds (checksum " << sink % 10
            << ")\n\n| step | us / image (median of rounds) |\n|---|---|\n";
  for (auto& c : candidates) {
    std::sort(c.us.begin(), c.us.end());
    std::cout << "| " << c.name << " | " << c.us[c.us.size() / 2] << " |\n";
  }
}
