#pragma once
// FINN datatypes and the packing of tensors into the byte streams FINN's IODMAs
// move (finnpy_to_packed_bytearray with reverse_endian and reverse_inner):
// each innermost vector of the folded shape, n elements of b bits, becomes
// ceil(n * b / 8) bytes; element i sits at bits [i*b, (i+1)*b) of that vector
// read as a little-endian bit stream, zero padding in the high bits. Signed
// types are two's complement; BIPOLAR {-1, +1} is stored as {0, 1}.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace busi::fpga {

struct finn_datatype {
  std::string name;  // as FINN spells it: UINT8, INT2, BIPOLAR, BINARY, ...
  int bits = 0;
  bool is_signed = false;
  bool bipolar = false;

  // Accepts UINTn, INTn (1 <= n <= 32; INT needs n >= 2), BINARY, BIPOLAR.
  // Throws busi::error naming the text.
  static finn_datatype parse(const std::string& text);
  int64_t min() const;
  int64_t max() const;
  bool operator==(const finn_datatype& o) const { return name == o.name; }
};

// Bytes one innermost vector of `inner` elements occupies once packed.
inline std::size_t packed_vector_bytes(std::size_t inner, const finn_datatype& type) {
  return (inner * static_cast<std::size_t>(type.bits) + 7) / 8;
}

// Packs `vectors` vectors of `inner` values each. Values must lie in
// [type.min(), type.max()] (BIPOLAR: -1 or +1); the caller guarantees it.
template <typename T>
void pack(const T* values, std::size_t vectors, std::size_t inner, const finn_datatype& type, uint8_t* out) {
  const std::size_t vector_bytes = packed_vector_bytes(inner, type);
  if (type.bits == 8 && sizeof(T) == 1) {  // UINT8/INT8: the bytes are the values
    std::memcpy(out, values, vectors * inner);
    return;
  }
  const uint64_t mask = (uint64_t{1} << type.bits) - 1;  // bits <= 32
  for (std::size_t v = 0; v < vectors; ++v, values += inner, out += vector_bytes) {
    std::memset(out, 0, vector_bytes);
    for (std::size_t i = 0; i < inner; ++i) {
      const int64_t value = type.bipolar ? (values[i] > 0 ? 1 : 0) : static_cast<int64_t>(values[i]);
      const uint64_t field = static_cast<uint64_t>(value) & mask;
      const std::size_t bit = i * static_cast<std::size_t>(type.bits);
      if (type.bits % 8 == 0) {  // byte-aligned fields: little-endian bytes
        for (int b = 0; b < type.bits / 8; ++b) out[bit / 8 + b] = static_cast<uint8_t>(field >> (8 * b));
        continue;
      }
      for (int b = 0; b < type.bits; ++b)
        if ((field >> b) & 1u) out[(bit + b) / 8] |= static_cast<uint8_t>(1u << ((bit + b) % 8));
    }
  }
}

// Inverse of pack: sign-extends signed types, maps BIPOLAR {0,1} to {-1,+1}.
template <typename T>
void unpack(const uint8_t* in, std::size_t vectors, std::size_t inner, const finn_datatype& type, T* values) {
  const std::size_t vector_bytes = packed_vector_bytes(inner, type);
  if (type.bits == 8 && sizeof(T) == 1) {
    std::memcpy(values, in, vectors * inner);
    return;
  }
  for (std::size_t v = 0; v < vectors; ++v, in += vector_bytes, values += inner) {
    for (std::size_t i = 0; i < inner; ++i) {
      const std::size_t bit = i * static_cast<std::size_t>(type.bits);
      uint64_t field = 0;
      if (type.bits % 8 == 0) {
        for (int b = 0; b < type.bits / 8; ++b) field |= static_cast<uint64_t>(in[bit / 8 + b]) << (8 * b);
      } else {
        for (int b = 0; b < type.bits; ++b)
          field |= static_cast<uint64_t>((in[(bit + b) / 8] >> ((bit + b) % 8)) & 1u) << b;
      }
      int64_t value = static_cast<int64_t>(field);
      if (type.bipolar)
        value = field ? 1 : -1;
      else if (type.is_signed && (field >> (type.bits - 1)) & 1u)
        value = static_cast<int64_t>(field | (~uint64_t{0} << type.bits));
      values[i] = static_cast<T>(value);
    }
  }
}

}  // namespace busi::fpga
