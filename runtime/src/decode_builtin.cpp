// The built-in decoder: PNG through libpng, JPEG through libjpeg(-turbo), set up
// the way OpenCV 4's PngDecoder and JpegDecoder set them up for
// cv::IMREAD_UNCHANGED, so a file gives the same pixels as cv::imdecode
// (tests/image_decode_test.cpp checks it on every BUSI image and every PNG
// colour type). It exists for the board package: OpenCV's imgcodecs pulls in
// GDAL, GDCM, OpenEXR, TIFF, WebP and their own closure, none of which PYNQ's
// Ubuntu carries at Debian's sonames, while libpng and libjpeg link statically.
#include "decode.hpp"

#include <algorithm>
#include <bit>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <jpeglib.h>
#include <png.h>

#include "busi/error.hpp"

namespace busi::detail {
namespace {

// ---- PNG -------------------------------------------------------------------

struct PngInput {
  const uint8_t* data;
  std::size_t size, pos = 0;
  char message[160] = "";
  bool too_large = false;  // refused by size, message says it
};

void png_read_from_memory(png_structp png, png_bytep out, png_size_t n) {
  auto* in = static_cast<PngInput*>(png_get_io_ptr(png));
  if (n > in->size - in->pos) png_error(png, "unexpected end of file (truncated)");
  std::memcpy(out, in->data + in->pos, n);
  in->pos += n;
}

// libpng reports fatal errors here and expects no return: keep the text, jump back.
void png_on_error(png_structp png, png_const_charp message) {
  auto* in = static_cast<PngInput*>(png_get_error_ptr(png));
  std::snprintf(in->message, sizeof in->message, "%s", message);
  png_longjmp(png, 1);
}
void png_on_warning(png_structp, png_const_charp) {}  // OpenCV ignores warnings too

// Everything between setjmp and a longjmp out of libpng lives in the caller
// (`out`, `rows`) or is trivially destructible, so the jump skips no destructor.
bool png_decode(png_structp png, png_infop info, cv::Mat& out, std::vector<png_bytep>& rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, nullptr, nullptr, nullptr);
  if (double(width) * height > kMaxPixels) {  // before a byte of it is allocated
    auto* in = static_cast<PngInput*>(png_get_io_ptr(png));
    std::snprintf(in->message, sizeof in->message, "%ux%u pixels is too large (limit %.0f pixels)",
                  unsigned(width), unsigned(height), kMaxPixels);
    in->too_large = true;
    return false;
  }

  // The channel count OpenCV's PngDecoder::readHeader chooses.
  int channels = 1;
  if (color_type == PNG_COLOR_TYPE_RGB || color_type == PNG_COLOR_TYPE_PALETTE) {
    png_bytep trans = nullptr;
    int num_trans = 0;
    png_color_16p trans_values = nullptr;
    png_get_tRNS(png, info, &trans, &num_trans, &trans_values);
    channels = num_trans > 0 ? 4 : 3;
  } else if (color_type == PNG_COLOR_TYPE_GRAY_ALPHA || color_type == PNG_COLOR_TYPE_RGB_ALPHA) {
    channels = 4;
  }
  // ... and the transforms of its readData, in its order.
  const bool sixteen = bit_depth == 16;
  if (sixteen && std::endian::native == std::endian::little) png_set_swap(png);
  if (channels < 4) png_set_strip_alpha(png);
  else png_set_tRNS_to_alpha(png);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if ((color_type & PNG_COLOR_MASK_COLOR) == 0 && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  const bool color = channels > 1;
  if ((color_type & PNG_COLOR_MASK_COLOR) && color) png_set_bgr(png);
  else if (color) png_set_gray_to_rgb(png);
  else png_set_rgb_to_gray(png, 1, 0.299, 0.587);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);

  out.create(int(height), int(width), CV_MAKETYPE(sixteen ? CV_16U : CV_8U, channels));
  if (png_get_rowbytes(png, info) != out.step[0] && out.rows > 0)
    png_error(png, "unexpected row size after transforms");
  rows.resize(height);
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = out.ptr(int(y));
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  return true;
}

cv::Mat decode_png(std::span<const uint8_t> bytes, const std::string& name) {
  PngInput in{bytes.data(), bytes.size()};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &in, png_on_error, png_on_warning);
  if (!png) throw image_error(name + ": cannot decode: out of memory");
  png_infop info = png_create_info_struct(png);
  png_set_read_fn(png, &in, png_read_from_memory);
  cv::Mat out;
  std::vector<png_bytep> rows;
  const bool ok = info && png_decode(png, info, out, rows);
  png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  if (in.too_large) throw image_error(name + ": image of " + in.message);
  if (!ok) throw image_error(name + ": not a readable image (corrupt or truncated PNG: " + in.message + ")");
  return out;
}

// ---- JPEG ------------------------------------------------------------------

struct JpegErrors {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = "";
};

void jpeg_on_error(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}
void jpeg_on_message(j_common_ptr) {}  // warnings: OpenCV decodes on; truncation is checked before

// Why jpeg_decode refused a file it could parse.
enum class JpegRefusal { none, cmyk, too_large };

bool jpeg_decode(jpeg_decompress_struct& cinfo, JpegErrors& errors, std::span<const uint8_t> bytes, cv::Mat& out,
                 JpegRefusal& refusal) {
  if (setjmp(errors.jump)) return false;
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  // OpenCV converts 4-component (CMYK/YCCK) JPEGs with its own routine; an
  // ultrasound scanner never writes them, so this decoder refuses them by name.
  if (cinfo.num_components == 4) {
    refusal = JpegRefusal::cmyk;
    return false;
  }
  if (double(cinfo.image_width) * cinfo.image_height > kMaxPixels) {
    std::snprintf(errors.message, sizeof errors.message, "%ux%u pixels is too large (limit %.0f pixels)",
                  unsigned(cinfo.image_width), unsigned(cinfo.image_height), kMaxPixels);
    refusal = JpegRefusal::too_large;
    return false;
  }
  const int channels = cinfo.num_components > 1 ? 3 : 1;
  cinfo.out_color_space = channels == 3 ? JCS_EXT_BGR : JCS_GRAYSCALE;
  jpeg_start_decompress(&cinfo);
  out.create(int(cinfo.output_height), int(cinfo.output_width), CV_8UC(channels));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out.ptr(int(cinfo.output_scanline));
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  return true;
}

cv::Mat decode_jpeg(std::span<const uint8_t> bytes, const std::string& name) {
  jpeg_decompress_struct cinfo{};
  JpegErrors errors;
  cinfo.err = jpeg_std_error(&errors.pub);
  errors.pub.error_exit = jpeg_on_error;
  errors.pub.output_message = jpeg_on_message;
  jpeg_create_decompress(&cinfo);
  cv::Mat out;
  JpegRefusal refusal = JpegRefusal::none;
  const bool ok = jpeg_decode(cinfo, errors, bytes, out, refusal);
  jpeg_destroy_decompress(&cinfo);
  if (refusal == JpegRefusal::too_large) throw image_error(name + ": image of " + errors.message);
  if (refusal == JpegRefusal::cmyk)
    throw image_error(name + ": CMYK JPEG not supported (this build decodes gray and colour JPEG only)");
  if (!ok) throw image_error(name + ": not a readable image (corrupt JPEG: " + errors.message + ")");
  return out;
}

bool starts_with(std::span<const uint8_t> bytes, std::initializer_list<uint8_t> magic) {
  return bytes.size() >= magic.size() && std::equal(magic.begin(), magic.end(), bytes.begin());
}

}  // namespace

cv::Mat decode_builtin(std::span<const uint8_t> bytes, const std::string& name) {
  if (starts_with(bytes, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'})) return decode_png(bytes, name);
  if (starts_with(bytes, {0xff, 0xd8, 0xff})) return decode_jpeg(bytes, name);
  throw image_error(name + ": not a readable image (this build decodes PNG and JPEG only)");
}

}  // namespace busi::detail
