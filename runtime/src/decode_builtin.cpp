// The image decoder: PNG through libdeflate or libpng, JPEG through
// libjpeg(-turbo), set up the way OpenCV 4's PngDecoder and JpegDecoder set
// them up for cv::IMREAD_UNCHANGED, so a file gives the same pixels as
// cv::imdecode (tests/image_decode_test.cpp checks it on every BUSI image and
// every PNG colour type). OpenCV's imgcodecs is not used: it pulls in GDAL,
// GDCM, OpenEXR, TIFF, WebP and their closure (~45 MB of resident libraries),
// none of which PYNQ's Ubuntu carries at Debian's sonames.
#include "decode.hpp"

#include <algorithm>
#include <cctype>
#include <bit>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <jpeglib.h>
#include <libdeflate.h>
#include <png.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

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
// (`buffers`, `view`, `header`) or is trivially destructible, so the jump skips
// no destructor. Returns false on a libpng error; leaves `view` empty and fills
// `header` when the image is refused by size.
bool png_decode(png_structp png, png_infop info, DecodeBuffers& buffers, ImageView& view, image_header& header) {
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

  const std::size_t row_bytes = std::size_t(width) * std::size_t(channels) * (sixteen ? 2 : 1);
  if (png_get_rowbytes(png, info) != row_bytes && height > 0) png_error(png, "unexpected row size after transforms");
  if (buffers.pixels.size() < row_bytes * height) buffers.pixels.resize(row_bytes * height);
  buffers.rows.resize(height);
  for (png_uint_32 y = 0; y < height; ++y) buffers.rows[y] = buffers.pixels.data() + row_bytes * y;
  png_read_image(png, reinterpret_cast<png_bytepp>(buffers.rows.data()));
  png_read_end(png, nullptr);
  view = {buffers.pixels.data(), int(width), int(height), channels, row_bytes, sixteen ? 2 : 1};
  return true;
}

ImageView decode_png_with_libpng(std::span<const uint8_t> bytes, const std::string& name, DecodeBuffers& buffers) {
  PngInput in{bytes.data(), bytes.size()};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &in, png_on_error, png_on_warning);
  if (!png) throw image_error(name + ": cannot decode: out of memory");
  png_infop info = png_create_info_struct(png);
  png_set_read_fn(png, &in, png_read_from_memory);
  ImageView view;
  image_header header;
  const bool ok = info && png_decode(png, info, buffers, view, header);
  png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  if (!ok) throw image_error(name + ": not a readable image (corrupt or truncated PNG: " + in.message + ")");
  check_decode_budget(header, name);
  return view;
}

// ---- PNG fast path -----------------------------------------------------------
// The PNGs scanners and datasets write (8-bit gray, RGB or RGBA, not
// interlaced, no palette or transparency key): the IDAT stream inflated in one
// call by libdeflate, 3-4x faster than zlib, and the rows unfiltered here.
// Anything else, and anything irregular (a bad CRC, an unknown critical chunk,
// a stream of the wrong length, a chunk libpng would find too large), returns
// false and goes to libpng, which decodes it or names what is wrong: this path
// only ever decodes files libpng decodes to the same pixels.

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

bool is_letter(uint8_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

// PNG's Paeth filter undone byte by byte: each channel's left and upper-left
// kept in registers, so the bpp channels are independent chains, and the
// choice made with masks, not branches the data would make unpredictable.
template <std::size_t bpp>
void unpaeth_bytes(uint8_t* row, const uint8_t* up, std::size_t n) {
  int left[bpp] = {}, corner[bpp] = {};
  for (std::size_t i = 0; i < n; i += bpp) {
    for (std::size_t ch = 0; ch < bpp; ++ch) {
      const int a = left[ch], b = up[i + ch], c = corner[ch];
      const int pa = std::abs(b - c), pb = std::abs(a - c), pc = std::abs(a + b - 2 * c);
      const int not_a = -int((pa > pb) | (pa > pc)), use_c = -int(pb > pc);
      const int predictor = (a & ~not_a) | (((b & ~use_c) | (c & use_c)) & not_a);
      const int value = (row[i + ch] + predictor) & 0xff;
      row[i + ch] = uint8_t(value);
      left[ch] = value;
      corner[ch] = b;
    }
  }
}

// The same a pixel at a time, its 3 or 4 channels in the 16-bit lanes of one
// SSE2 or NEON register: a third of the dependent steps. Loads and stores
// move 4 bytes; the inflate buffer's tail padding covers the last pixel's
// extra byte when bpp is 3. The predictor is the channel's a (left) when |pa|
// is the smallest of |pa|, |pb|, |pc|, else b (above) when |pb| is, else c.
#if defined(__SSE2__)
constexpr bool kHavePixelVectors = true;
template <std::size_t bpp>
void unpaeth_pixels(uint8_t* row, const uint8_t* up, std::size_t n) {
  const __m128i zero = _mm_setzero_si128();
  const auto load = [&](const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return _mm_unpacklo_epi8(_mm_cvtsi32_si128(int(v)), zero);
  };
  const auto abs16 = [&](__m128i x) { return _mm_max_epi16(x, _mm_sub_epi16(zero, x)); };
  const auto select = [](__m128i mask, __m128i yes, __m128i no) {
    return _mm_or_si128(_mm_and_si128(mask, yes), _mm_andnot_si128(mask, no));
  };
  __m128i a = zero, c = zero;
  for (std::size_t i = 0; i < n; i += bpp) {
    const __m128i b = load(up + i);
    const __m128i b_c = _mm_sub_epi16(b, c), a_c = _mm_sub_epi16(a, c);
    const __m128i pa = abs16(b_c), pb = abs16(a_c), pc = abs16(_mm_add_epi16(b_c, a_c));
    const __m128i smallest = _mm_min_epi16(pc, _mm_min_epi16(pa, pb));
    const __m128i predictor =
        select(_mm_cmpeq_epi16(smallest, pa), a, select(_mm_cmpeq_epi16(smallest, pb), b, c));
    const __m128i value = _mm_add_epi8(load(row + i), predictor);  // bytewise: the high bytes stay 0
    const uint32_t out = uint32_t(_mm_cvtsi128_si32(_mm_packus_epi16(value, value)));
    std::memcpy(row + i, &out, bpp);
    a = value;
    c = b;
  }
}
#elif defined(__ARM_NEON)
constexpr bool kHavePixelVectors = true;
template <std::size_t bpp>
void unpaeth_pixels(uint8_t* row, const uint8_t* up, std::size_t n) {
  const auto load = [](const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return vreinterpret_s16_u16(vget_low_u16(vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(v)))));
  };
  int16x4_t a = vdup_n_s16(0), c = a;
  const int16x4_t low_byte = vdup_n_s16(0xff);
  for (std::size_t i = 0; i < n; i += bpp) {
    const int16x4_t b = load(up + i);
    const int16x4_t b_c = vsub_s16(b, c), a_c = vsub_s16(a, c);
    const int16x4_t pa = vabs_s16(b_c), pb = vabs_s16(a_c), pc = vabs_s16(vadd_s16(b_c, a_c));
    const int16x4_t smallest = vmin_s16(pc, vmin_s16(pa, pb));
    const int16x4_t predictor = vbsl_s16(vceq_s16(smallest, pa), a, vbsl_s16(vceq_s16(smallest, pb), b, c));
    const int16x4_t value = vand_s16(vadd_s16(load(row + i), predictor), low_byte);
    const uint16x4_t lanes = vreinterpret_u16_s16(value);
    const uint32_t out = vget_lane_u32(vreinterpret_u32_u8(vmovn_u16(vcombine_u16(lanes, lanes))), 0);
    std::memcpy(row + i, &out, bpp);
    a = value;
    c = b;
  }
}
#else
constexpr bool kHavePixelVectors = false;
template <std::size_t bpp>
void unpaeth_pixels(uint8_t*, const uint8_t*, std::size_t) {}
#endif

// Undoes the filter of one row of `n` bytes, `bpp` bytes per pixel (a
// template argument, so the loops unroll), against the previous, already
// unfiltered row `up` (zeros above the first row, as PNG defines). False for a
// filter type PNG does not define.
template <std::size_t bpp>
bool unfilter_row(uint8_t filter, uint8_t* row, const uint8_t* up, std::size_t n) {
  switch (filter) {
    case 0: return true;
    case 1:  // Sub: + left
      for (std::size_t i = bpp; i < n; ++i) row[i] = uint8_t(row[i] + row[i - bpp]);
      return true;
    case 2:  // Up: + above
      for (std::size_t i = 0; i < n; ++i) row[i] = uint8_t(row[i] + up[i]);
      return true;
    case 3:  // Average: + (left + above) / 2
      for (std::size_t i = 0; i < bpp; ++i) row[i] = uint8_t(row[i] + (up[i] >> 1));
      for (std::size_t i = bpp; i < n; ++i) row[i] = uint8_t(row[i] + ((row[i - bpp] + up[i]) >> 1));
      return true;
    case 4:  // Paeth: + whichever of left, above, upper-left is nearest to left + above - upper-left
      if constexpr (bpp >= 3 && kHavePixelVectors) unpaeth_pixels<bpp>(row, up, n);
      else unpaeth_bytes<bpp>(row, up, n);
      return true;
    default: return false;
  }
}

template <std::size_t bpp>
bool unfilter_rows(uint8_t* rows, std::size_t stride, uint32_t height) {
  // rows - stride .. rows: a row of zeros, the one above the first.
  for (uint32_t y = 0; y < height; ++y) {
    uint8_t* row = rows + stride * y;
    if (!unfilter_row<bpp>(row[0], row + 1, row + 1 - stride, stride - 1)) return false;
  }
  return true;
}

// libpng's default cap on a chunk's data (PNG_USER_CHUNK_MALLOC_MAX) and on
// image width and height (PNG_USER_WIDTH_MAX, PNG_USER_HEIGHT_MAX): files past
// them are left to libpng, which refuses them.
constexpr uint32_t kLibpngChunkBytes = 8000000, kLibpngDimension = 1000000;

// The first chunk, up to IEND, whose length runs past the end of the file:
// libpng allocates a chunk's buffer before it reads the data, so a 300-byte
// file whose tEXt claims 990 MB cost a 990 MB allocation (a fuzzing finding,
// fuzz/regressions/image/png-text-claims-990MB). Refused here instead, naming
// the chunk; empty when every chunk fits (libpng judges the rest).
std::string png_chunk_past_the_end(std::span<const uint8_t> bytes) {
  for (std::size_t pos = 8; bytes.size() - pos >= 8;) {
    const uint32_t length = be32(bytes.data() + pos);
    const std::string type(reinterpret_cast<const char*>(bytes.data()) + pos + 4, 4);
    const std::size_t left = bytes.size() - pos - 8;
    if (uint64_t(length) + 4 > left) {
      std::string printable;
      for (char c : type) printable += std::isalpha(static_cast<unsigned char>(c)) ? c : '?';
      return "chunk " + printable + " claims " + std::to_string(length) + " bytes, " + std::to_string(left) +
             " remain in the file";
    }
    if (type == "IEND") break;
    pos += 12 + std::size_t(length);
  }
  return {};
}

bool png_decode_fast(std::span<const uint8_t> bytes, DecodeBuffers& buffers, Pixels& out) {
  const uint8_t* const data = bytes.data();
  const std::size_t size = bytes.size();
  std::size_t pos = 8;  // after the signature
  uint32_t width = 0, height = 0;
  int channels = 0;
  const uint8_t* idat = nullptr;  // the one IDAT chunk's data, else buffers.joined
  std::size_t idat_bytes = 0, idat_chunks = 0;
  bool idat_done = false, ended = false;
  for (bool first = true; !ended; first = false) {
    if (size - pos < 12) return false;
    const uint32_t length = be32(data + pos);
    const uint8_t* type = data + pos + 4;
    if (length > kLibpngChunkBytes || size - pos - 12 < length) return false;
    if (!is_letter(type[0]) || !is_letter(type[1]) || !is_letter(type[2]) || !is_letter(type[3])) return false;
    if (libdeflate_crc32(0, type, length + 4) != be32(type + 4 + length)) return false;
    const uint8_t* body = type + 4;
    const bool is_idat = std::memcmp(type, "IDAT", 4) == 0;
    if (first) {
      if (std::memcmp(type, "IHDR", 4) != 0 || length != 13) return false;
      width = be32(body);
      height = be32(body + 4);
      const uint8_t depth = body[8], color = body[9];
      if (width == 0 || height == 0 || width > kLibpngDimension || height > kLibpngDimension) return false;
      if (depth != 8 || body[10] != 0 || body[11] != 0 || body[12] != 0) return false;  // deflate, filter 0, no interlace
      channels = color == 0 ? 1 : color == 2 ? 3 : color == 4 ? 2 : color == 6 ? 4 : 0;
      if (channels == 0) return false;  // palette
      // The budget check, with libpng's figures (png_header): over it, libpng refuses.
      const uint64_t out_channels = channels == 2 ? 4 : channels;
      if (uint64_t(width) * height * out_channels + uint64_t(height) * sizeof(void*) > limits::kDecodeBytes) return false;
    } else if (is_idat) {
      if (idat_done) return false;  // IDAT chunks must follow each other
      if (++idat_chunks == 1) {
        idat = body;
        idat_bytes = length;
      } else {
        if (idat_chunks == 2) buffers.joined.assign(idat, idat + idat_bytes);
        buffers.joined.insert(buffers.joined.end(), body, body + length);
      }
    } else {
      if (idat_chunks > 0) idat_done = true;
      if (std::memcmp(type, "IEND", 4) == 0) ended = true;
      else if (!(type[0] & 0x20)) return false;       // another critical chunk (PLTE, or unknown)
      else if (std::memcmp(type, "tRNS", 4) == 0) return false;  // a transparent colour: libpng adds alpha
    }
    pos += 12 + length;
  }
  if (idat_chunks == 0) return false;
  if (idat_chunks > 1) {
    idat = buffers.joined.data();
    idat_bytes = buffers.joined.size();
  }
  const std::size_t row_bytes = std::size_t(width) * channels, stride = row_bytes + 1;
  const std::size_t total = stride * height;  // < 24 MiB + height: checked against the budget above
  // A row of zeros first: the row above the first, for the Up, Average and
  // Paeth filters; 4 bytes after the last row for Paeth's 4-byte loads.
  if (buffers.inflated.size() < stride + total + 4) buffers.inflated.resize(stride + total + 4);
  std::memset(buffers.inflated.data(), 0, stride);
  uint8_t* const rows = buffers.inflated.data() + stride;
  if (!buffers.inflater && !(buffers.inflater = libdeflate_alloc_decompressor())) return false;
  std::size_t consumed = 0, produced = 0;
  // The stream must fill the image exactly and end with its data: short or
  // long streams and trailing bytes are libpng's to judge.
  if (libdeflate_zlib_decompress_ex(buffers.inflater, idat, idat_bytes, rows, total, &consumed, &produced) !=
          LIBDEFLATE_SUCCESS ||
      produced != total || consumed != idat_bytes)
    return false;
  const bool unfiltered = channels == 1   ? unfilter_rows<1>(rows, stride, height)
                          : channels == 2 ? unfilter_rows<2>(rows, stride, height)
                          : channels == 3 ? unfilter_rows<3>(rows, stride, height)
                                          : unfilter_rows<4>(rows, stride, height);
  if (!unfiltered) return false;
  if (channels != 2) {  // the rows in place, after their filter bytes
    out = {{rows + 1, int(width), int(height), channels, stride, 1}, channels > 1};
    return true;
  }
  // Gray + alpha: OpenCV gives BGRA with the gray in B, G and R.
  const std::size_t out_row = std::size_t(width) * 4;
  if (buffers.pixels.size() < out_row * height) buffers.pixels.resize(out_row * height);
  for (uint32_t y = 0; y < height; ++y) {
    const uint8_t* in = rows + stride * y + 1;
    uint8_t* o = buffers.pixels.data() + out_row * y;
    for (uint32_t x = 0; x < width; ++x, in += 2, o += 4) o[0] = o[1] = o[2] = in[0], o[3] = in[1];
  }
  out = {{buffers.pixels.data(), int(width), int(height), 4, out_row, 1}, false};
  return true;
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

bool jpeg_decode(jpeg_decompress_struct& cinfo, JpegErrors& errors, std::span<const uint8_t> bytes,
                 DecodeBuffers& buffers, ImageView& view, JpegRefusal& refusal, image_header& header,
                 target_size target) {
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
  const std::size_t row_bytes = std::size_t(cinfo.output_width) * std::size_t(channels);
  if (buffers.pixels.size() < row_bytes * cinfo.output_height) buffers.pixels.resize(row_bytes * cinfo.output_height);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = buffers.pixels.data() + row_bytes * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  view = {buffers.pixels.data(), int(cinfo.output_width), int(cinfo.output_height), channels, row_bytes, 1};
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

ImageView decode_jpeg(std::span<const uint8_t> bytes, const std::string& name, target_size target,
                      DecodeBuffers& buffers) {
  JpegDecompressor jpeg;
  ImageView view;
  JpegRefusal refusal = JpegRefusal::none;
  image_header header;
  const bool ok = jpeg_decode(jpeg.cinfo, jpeg.errors, bytes, buffers, view, refusal, header, target);
  if (refusal == JpegRefusal::too_large) check_decode_budget(header, name);
  if (refusal == JpegRefusal::cmyk)
    throw image_error(name + ": CMYK JPEG not supported (this build decodes gray and colour JPEG only)");
  if (!ok) throw image_error(name + ": not a readable image (corrupt JPEG: " + jpeg.errors.message + ")");
  return view;
}

bool starts_with(std::span<const uint8_t> bytes, std::initializer_list<uint8_t> magic) {
  return bytes.size() >= magic.size() && std::equal(magic.begin(), magic.end(), bytes.begin());
}

bool is_png(std::span<const uint8_t> bytes) { return starts_with(bytes, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}); }
bool is_jpeg(std::span<const uint8_t> bytes) { return starts_with(bytes, {0xff, 0xd8, 0xff}); }

// JPEG decoders fill a truncated file with gray and only warn; refuse it instead.
bool is_truncated_jpeg(std::span<const uint8_t> bytes) {
  if (!is_jpeg(bytes)) return false;
  // The end-of-image marker may be followed by padding; look at the last bytes.
  const std::size_t from = bytes.size() > 64 ? bytes.size() - 64 : 0;
  for (std::size_t i = bytes.size() - 1; i > from; --i)
    if (bytes[i - 1] == 0xFF && bytes[i] == 0xD9) return false;
  return true;
}

}  // namespace

DecodeBuffers::DecodeBuffers() = default;
DecodeBuffers::~DecodeBuffers() { libdeflate_free_decompressor(inflater); }

void DecodeBuffers::trim(std::size_t keep_bytes) {
  for (auto* buffer : {&pixels, &inflated, &joined})
    if (buffer->capacity() > keep_bytes) std::vector<uint8_t>().swap(*buffer);
  if (rows.capacity() * sizeof(void*) > keep_bytes) std::vector<void*>().swap(rows);
}

Pixels decode_builtin(std::span<const uint8_t> bytes, const std::string& name, target_size target,
                      DecodeBuffers& buffers) {
  if (bytes.empty()) throw image_error(name + ": file is empty (0 bytes)");
  if (is_truncated_jpeg(bytes)) throw image_error(name + ": truncated JPEG (no end-of-image marker)");
  if (is_png(bytes)) {
    Pixels fast;
    if (png_decode_fast(bytes, buffers, fast)) return fast;
    if (const std::string overrun = png_chunk_past_the_end(bytes); !overrun.empty())
      throw image_error(name + ": not a readable image (truncated PNG: " + overrun + ")");
    return {decode_png_with_libpng(bytes, name, buffers), false};
  }
  if (is_jpeg(bytes)) return {decode_jpeg(bytes, name, target, buffers), false};
  throw image_error(name + ": not a readable image (this build decodes PNG and JPEG only)");
}

}  // namespace busi::detail
