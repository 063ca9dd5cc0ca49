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
#include "busi/limits.hpp"

namespace busi::detail {
namespace {

// ---- PNG -------------------------------------------------------------------

struct PngInput {
  const uint8_t* data;
  std::size_t size, pos = 0;
  char message[160] = "";
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

// The header as png_read_info left it: the channel count OpenCV's
// PngDecoder::readHeader chooses, and the bytes of the decoded image.
image_header png_header(png_structp png, png_infop info) {
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, nullptr, nullptr, nullptr);
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
  image_header h{"PNG", width, height, channels, bit_depth == 16 ? 2 : 1, 0};
  // Pixels plus one row pointer per row (both < 2^64: width, height < 2^31).
  h.work_bytes = h.width * h.height * uint64_t(channels) * uint64_t(h.bytes_per_sample) + h.height * sizeof(void*);
  return h;
}

// Everything between setjmp and a longjmp out of libpng lives in the caller
// (`out`, `rows`, `header`) or is trivially destructible, so the jump skips no
// destructor. Returns false on a libpng error; leaves `out` empty and fills
// `header` when the image is refused by size.
bool png_decode(png_structp png, png_infop info, cv::Mat& out, std::vector<png_bytep>& rows, image_header& header) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  header = png_header(png, info);
  if (header.work_bytes > limits::kDecodeBytes) return true;  // before a byte of it is allocated
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, nullptr, nullptr, nullptr);
  const int channels = header.channels;
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
  image_header header;
  const bool ok = info && png_decode(png, info, out, rows, header);
  png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  if (!ok) throw image_error(name + ": not a readable image (corrupt or truncated PNG: " + in.message + ")");
  check_decode_budget(header, name);
  return out;
}

bool png_read_header_only(png_structp png, png_infop info, image_header& header) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  header = png_header(png, info);
  return true;
}

image_header read_png_header(std::span<const uint8_t> bytes, const std::string& name) {
  PngInput in{bytes.data(), bytes.size()};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &in, png_on_error, png_on_warning);
  if (!png) throw image_error(name + ": cannot decode: out of memory");
  png_infop info = png_create_info_struct(png);
  png_set_read_fn(png, &in, png_read_from_memory);
  image_header header;
  const bool ok = info && png_read_header_only(png, info, header);
  png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  if (!ok) throw image_error(name + ": not a readable image (corrupt or truncated PNG: " + in.message + ")");
  return header;
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

// The header as jpeg_read_header left it. A progressive (multi-scan) JPEG
// keeps every component's DCT coefficients for the whole image, 2 bytes per
// sample: counted at full resolution, an upper bound for subsampled chroma.
image_header jpeg_header(const jpeg_decompress_struct& cinfo) {
  image_header h{"JPEG", cinfo.image_width, cinfo.image_height, cinfo.num_components > 1 ? 3 : 1, 1, 0, 0};
  const uint64_t blocks = ((h.width + 7) / 8) * ((h.height + 7) / 8);
  if (jpeg_has_multiple_scans(const_cast<jpeg_decompress_struct*>(&cinfo)))
    h.coefficient_bytes = blocks * 64 * 2 * uint64_t(std::max(cinfo.num_components, 1));
  h.work_bytes = h.width * h.height * uint64_t(h.channels) + h.coefficient_bytes;
  return h;
}

void jpeg_setup(jpeg_decompress_struct& cinfo, std::span<const uint8_t> bytes) {
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  // libjpeg's own cap on its whole-image buffers (it has no backing store, so
  // a request past it is an error, not a temporary file).
  cinfo.mem->max_memory_to_use = static_cast<long>(limits::kDecodeBytes);
}

bool jpeg_decode(jpeg_decompress_struct& cinfo, JpegErrors& errors, std::span<const uint8_t> bytes, cv::Mat& out,
                 JpegRefusal& refusal, image_header& header, target_size target) {
  if (setjmp(errors.jump)) return false;
  jpeg_setup(cinfo, bytes);
  jpeg_read_header(&cinfo, TRUE);
  // OpenCV converts 4-component (CMYK/YCCK) JPEGs with its own routine; an
  // ultrasound scanner never writes them, so this decoder refuses them by name.
  if (cinfo.num_components == 4) {
    refusal = JpegRefusal::cmyk;
    return false;
  }
  header = jpeg_header(cinfo);
  const int denominator = jpeg_scale_denominator(header, target);
  if (denominator == 0) {  // before a byte of it is allocated
    refusal = JpegRefusal::too_large;
    return false;
  }
  cinfo.scale_num = 1;
  cinfo.scale_denom = static_cast<unsigned>(denominator);
  const int channels = header.channels;
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

// A libjpeg decompressor whose errors long-jump back into the jpeg_* function
// that set errors.jump (jpeg_on_error), destroyed with this object.
struct JpegDecompressor {
  jpeg_decompress_struct cinfo{};
  JpegErrors errors;
  JpegDecompressor() {
    cinfo.err = jpeg_std_error(&errors.pub);
    errors.pub.error_exit = jpeg_on_error;
    errors.pub.output_message = jpeg_on_message;
    jpeg_create_decompress(&cinfo);
  }
  ~JpegDecompressor() { jpeg_destroy_decompress(&cinfo); }
  JpegDecompressor(const JpegDecompressor&) = delete;
  JpegDecompressor& operator=(const JpegDecompressor&) = delete;
};

cv::Mat decode_jpeg(std::span<const uint8_t> bytes, const std::string& name, target_size target) {
  JpegDecompressor jpeg;
  cv::Mat out;
  JpegRefusal refusal = JpegRefusal::none;
  image_header header;
  const bool ok = jpeg_decode(jpeg.cinfo, jpeg.errors, bytes, out, refusal, header, target);
  if (refusal == JpegRefusal::too_large) check_decode_budget(header, name);
  if (refusal == JpegRefusal::cmyk)
    throw image_error(name + ": CMYK JPEG not supported (this build decodes gray and colour JPEG only)");
  if (!ok) throw image_error(name + ": not a readable image (corrupt JPEG: " + jpeg.errors.message + ")");
  return out;
}

bool jpeg_read_header_only(jpeg_decompress_struct& cinfo, JpegErrors& errors, std::span<const uint8_t> bytes,
                           image_header& header) {
  if (setjmp(errors.jump)) return false;
  jpeg_setup(cinfo, bytes);
  jpeg_read_header(&cinfo, TRUE);
  header = jpeg_header(cinfo);
  return true;
}

image_header read_jpeg_header(std::span<const uint8_t> bytes, const std::string& name) {
  JpegDecompressor jpeg;
  image_header header;
  if (!jpeg_read_header_only(jpeg.cinfo, jpeg.errors, bytes, header))
    throw image_error(name + ": not a readable image (corrupt JPEG: " + jpeg.errors.message + ")");
  return header;
}

bool starts_with(std::span<const uint8_t> bytes, std::initializer_list<uint8_t> magic) {
  return bytes.size() >= magic.size() && std::equal(magic.begin(), magic.end(), bytes.begin());
}

bool is_png(std::span<const uint8_t> bytes) { return starts_with(bytes, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}); }
bool is_jpeg(std::span<const uint8_t> bytes) { return starts_with(bytes, {0xff, 0xd8, 0xff}); }

}  // namespace

std::optional<image_header> read_builtin_header(std::span<const uint8_t> bytes, const std::string& name) {
  if (is_png(bytes)) return read_png_header(bytes, name);
  if (is_jpeg(bytes)) return read_jpeg_header(bytes, name);
  return std::nullopt;
}

cv::Mat decode_builtin(std::span<const uint8_t> bytes, const std::string& name, target_size target) {
  if (is_png(bytes)) return decode_png(bytes, name);
  if (is_jpeg(bytes)) return decode_jpeg(bytes, name, target);
  throw image_error(name + ": not a readable image (this build decodes PNG and JPEG only)");
}

}  // namespace busi::detail
