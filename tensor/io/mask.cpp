// Mask PNGs (mask.h). Reading goes through the same libpng decoder as images (png.cpp), which keeps
// a palette image's indices; writing builds the few chunks an 8-bit palette PNG needs (IHDR, PLTE,
// IDAT with filter type 0 on every row, IEND) by hand, since stb_image_write has no palette mode.
#include "tensor/io/mask.h"

#include <zlib.h>

#include <climits>
#include <cstring>

#include "tensor/io/atomic_file.h"
#include "tensor/io/image.h"
#include "tensor/io/jpeg_png_decode.h"
#include "tensor/io/npy.h"

namespace cortex::io {

namespace {

const char* mode_name(detail::PilMode m) {
  switch (m) {
    case detail::PilMode::L: return "8-bit grey";
    case detail::PilMode::LA: return "grey+alpha";
    case detail::PilMode::RGB: return "RGB";
    case detail::PilMode::RGBA: return "RGBA";
    case detail::PilMode::P: return "palette";
    case detail::PilMode::CMYK: return "CMYK";
    case detail::PilMode::I16: return "16-bit grey";
  }
  return "unknown";
}

// (H, W, 1) decoded pixels -> a contiguous (H, W) tensor.
Tensor squeeze_channel(const Tensor& px) { return px.view({px.size(0), px.size(1)}); }

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

void put_chunk(std::vector<uint8_t>& out, const char type[5], const uint8_t* data, size_t n) {
  put_u32(out, static_cast<uint32_t>(n));
  const size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  if (n > 0) out.insert(out.end(), data, data + n);
  put_u32(out, crc32(out.data() + start, out.size() - start));
}

Tensor check_mask(const Tensor& mask, const char* what) {
  CORTEX_CHECK(mask.defined(), what, ": the mask tensor is undefined");
  CORTEX_CHECK(mask.dtype() == DType::UInt8, what, ": expected a uint8 mask, found ", dtype_name(mask.dtype()));
  CORTEX_CHECK(mask.dim() == 2, what, ": expected an (H, W) mask, found shape ", shape_str(mask.shape()));
  CORTEX_CHECK(mask.size(0) > 0 && mask.size(1) > 0, what, ": cannot write an empty mask of shape ",
               shape_str(mask.shape()));
  CORTEX_CHECK(mask.size(0) <= INT_MAX && mask.size(1) <= INT_MAX, what, ": mask of shape ", shape_str(mask.shape()),
               " is too large for PNG");
  return mask.to(Device::cpu()).contiguous();
}

}  // namespace

std::vector<uint8_t> voc_palette() {
  std::vector<uint8_t> p(256 * 3, 0);
  for (int i = 0; i < 256; ++i) {
    int c = i, r = 0, g = 0, b = 0;
    for (int j = 0; j < 8; ++j) {
      r |= ((c >> 0) & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    p[3 * i] = static_cast<uint8_t>(r), p[3 * i + 1] = static_cast<uint8_t>(g), p[3 * i + 2] = static_cast<uint8_t>(b);
  }
  return p;
}

Tensor decode_index_mask(const uint8_t* data, size_t n, const std::string& name) {
  CORTEX_CHECK(n > 0, name, ": empty file, not a mask PNG");
  CORTEX_CHECK(detail::is_png(data, n), name, ": not a PNG file (no PNG signature); masks must be palette or grey PNGs");
  const detail::Decoded d = detail::decode_png(data, n, name, kMaxImagePixels);
  CORTEX_CHECK(d.mode == detail::PilMode::P || d.mode == detail::PilMode::L, name,
               ": expected a palette or 8-bit grey PNG mask (one class index per pixel), found a ", mode_name(d.mode),
               " PNG");
  return squeeze_channel(d.pixels);
}

Tensor read_index_mask(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_index_mask(bytes.data(), bytes.size(), path);
}

Tensor decode_binary_mask(const uint8_t* data, size_t n, const std::string& name) {
  CORTEX_CHECK(n > 0, name, ": empty file, not a mask image");
  Tensor out;
  if (detail::is_png(data, n)) {
    const detail::Decoded d = detail::decode_png(data, n, name, kMaxImagePixels);
    if (d.mode == detail::PilMode::P) {
      out = squeeze_channel(d.pixels).clone();
      uint8_t* p = out.data<uint8_t>();
      for (int64_t i = 0; i < out.numel(); ++i) p[i] = p[i] == 0 ? 0 : p[i] == kMaskIgnore ? kMaskIgnore : 1;
      return out;
    }
  }
  // Everything else goes through the image decoder's grey conversion (it names bad files itself).
  Tensor g = decode_image(data, n, name, ImageMode::Gray);
  out = g.view({g.size(0), g.size(1)}).contiguous();
  uint8_t* p = out.data<uint8_t>();
  for (int64_t i = 0; i < out.numel(); ++i) p[i] = p[i] != 0 ? 1 : 0;
  return out;
}

Tensor read_binary_mask(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_binary_mask(bytes.data(), bytes.size(), path);
}

std::vector<uint8_t> encode_index_mask(const Tensor& mask_in, const std::vector<uint8_t>& palette_in) {
  const Tensor mask = check_mask(mask_in, "write_index_mask");
  const std::vector<uint8_t> palette = palette_in.empty() ? voc_palette() : palette_in;
  CORTEX_CHECK(palette.size() % 3 == 0 && palette.size() >= 3 && palette.size() <= 768,
               "write_index_mask: the palette must hold 3 * P bytes of RGB with 1 <= P <= 256, found ", palette.size(),
               " bytes");
  const int64_t P = static_cast<int64_t>(palette.size() / 3);
  const int64_t H = mask.size(0), W = mask.size(1);
  const uint8_t* m = mask.data<uint8_t>();
  for (int64_t i = 0; i < H * W; ++i)
    CORTEX_CHECK(m[i] < P, "write_index_mask: index ", int(m[i]), " at pixel (", i / W, ", ", i % W,
                 ") has no entry in a palette of ", P, " colours");
  // Raw scanlines: a filter byte (0, none) before each row.
  std::vector<uint8_t> raw(static_cast<size_t>(H * (W + 1)));
  for (int64_t y = 0; y < H; ++y) {
    raw[static_cast<size_t>(y * (W + 1))] = 0;
    std::memcpy(raw.data() + y * (W + 1) + 1, m + y * W, static_cast<size_t>(W));
  }
  uLongf zn = compressBound(static_cast<uLong>(raw.size()));
  std::vector<uint8_t> z(zn);
  CORTEX_CHECK(compress2(z.data(), &zn, raw.data(), static_cast<uLong>(raw.size()), 6) == Z_OK,
               "write_index_mask: zlib failed to compress a ", shape_str(mask.shape()), " mask");
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  put_u32(ihdr, static_cast<uint32_t>(W));
  put_u32(ihdr, static_cast<uint32_t>(H));
  ihdr.insert(ihdr.end(), {8, 3, 0, 0, 0});  // depth 8, colour type 3 (palette), deflate, filter 0, no interlace
  put_chunk(out, "IHDR", ihdr.data(), ihdr.size());
  put_chunk(out, "PLTE", palette.data(), palette.size());
  put_chunk(out, "IDAT", z.data(), zn);
  put_chunk(out, "IEND", nullptr, 0);
  return out;
}

void write_index_mask(const std::string& path, const Tensor& mask, const std::vector<uint8_t>& palette) {
  std::vector<uint8_t> bytes;
  try {
    bytes = encode_index_mask(mask, palette);
  } catch (const Error& e) {
    throw Error(cortex::detail::cat(e.what(), " (writing ", path, ")"));
  }
  write_file_atomic(path, bytes.data(), bytes.size());
}

void write_binary_mask(const std::string& path, const Tensor& mask_in) {
  try {
    const Tensor mask = check_mask(mask_in, "write_binary_mask");
    const uint8_t* m = mask.data<uint8_t>();
    for (int64_t i = 0; i < mask.numel(); ++i)
      CORTEX_CHECK(m[i] == 0 || m[i] == 1 || m[i] == kMaskIgnore, "write_binary_mask: expected values 0, 1 or 255, found ",
                   int(m[i]), " at pixel (", i / mask.size(1), ", ", i % mask.size(1), ")");
  } catch (const Error& e) {
    throw Error(cortex::detail::cat(e.what(), " (writing ", path, ")"));
  }
  std::vector<uint8_t> pal = voc_palette();
  pal[3] = pal[4] = pal[5] = 255;  // figure: white
  write_index_mask(path, mask_in, pal);
}

}  // namespace cortex::io
