// PNG decoding through libpng, to the pixels PIL holds after Image.open(...).load(): samples of 1,
// 2 or 4 bits unpacked (grey scaled to 0..255 as PIL's "1", "L;2", "L;4" rawmodes do, palette
// indices kept), 16-bit RGB / RGBA / grey+alpha reduced to their high byte (PIL's ";16B" rawmodes;
// 16-bit grey+alpha becomes RGBA, as PIL opens it), 16-bit grey clipped to 0..255 (PIL's "I;16"
// converted to L/RGB/RGBA clips), and the
// palette and tRNS kept for image.cpp's conversions.
//
// libpng reports errors through a callback that must not return; it longjmps back here. The
// functions that call setjmp hold only trivially destructible locals, so the jump skips no
// destructor, and the error becomes a cortex::Error once back in ordinary C++.
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>

#include "tensor/io/jpeg_png_decode.h"

namespace cortex::io::detail {

namespace {

struct PngState {
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::jmp_buf jump;
  char message[256] = {};
  const uint8_t* data = nullptr;
  size_t n = 0, pos = 0;
};

[[noreturn]] void on_error(png_structp png, png_const_charp msg) {
  auto* s = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(s->message, sizeof s->message, "%s", msg);
  std::longjmp(s->jump, 1);
}

void on_warning(png_structp, png_const_charp) {}  // decoded anyway, as PIL does

void on_read(png_structp png, png_bytep out, size_t want) {
  auto* s = static_cast<PngState*>(png_get_io_ptr(png));
  if (want > s->n - s->pos) {
    std::snprintf(s->message, sizeof s->message, "the file ends at byte %zu, %zu bytes short of what it declares",
                  s->n, want - (s->n - s->pos));
    std::longjmp(s->jump, 1);
  }
  std::memcpy(out, s->data + s->pos, want);
  s->pos += want;
}

struct Header {
  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0, interlace = 0;
};

bool read_header(PngState& s, Header& hd, size_t chunk_budget) {
  if (setjmp(s.jump)) return false;
  png_set_read_fn(s.png, &s, on_read);
  // Width and height are checked against the caller's pixel limit right after this; libpng's own
  // limits only need to stay out of the way. Ancillary chunks (text, ICC profiles) are held to a
  // budget so a small file cannot inflate into a large allocation.
  png_set_user_limits(s.png, 0x7fffffff, 0x7fffffff);
  png_set_chunk_cache_max(s.png, 1000);
  png_set_chunk_malloc_max(s.png, chunk_budget);
  png_read_info(s.png, s.info);
  png_get_IHDR(s.png, s.info, &hd.w, &hd.h, &hd.depth, &hd.color, &hd.interlace, nullptr, nullptr);
  return true;
}

// PIL's value of one sample as stored in its 8-bit image.
inline uint8_t grey_low_depth(uint8_t v, int depth) {
  return static_cast<uint8_t>(depth == 1 ? v * 255 : depth == 2 ? v * 85 : depth == 4 ? v * 17 : v);
}

// Converts one row as libpng returns it (samples unpacked to bytes; 16-bit samples big-endian)
// into PIL's 8-bit row of `count` samples.
void convert_row(const uint8_t* raw, uint8_t* out, size_t count, int depth, bool grey, bool palette, bool la16) {
  if (la16) {  // 16-bit grey+alpha: PIL opens it as RGBA ("LA;16B"), high bytes
    for (size_t i = 0; i < count / 4; ++i) {
      out[4 * i] = out[4 * i + 1] = out[4 * i + 2] = raw[4 * i];
      out[4 * i + 3] = raw[4 * i + 2];
    }
  } else if (depth == 16) {
    if (grey)  // "I;16" clipped to 0..255 by PIL's conversions
      for (size_t i = 0; i < count; ++i) out[i] = raw[2 * i] != 0 ? 255 : raw[2 * i + 1];
    else  // ";16B" rawmodes keep the high byte
      for (size_t i = 0; i < count; ++i) out[i] = raw[2 * i];
  } else if (grey && !palette) {
    for (size_t i = 0; i < count; ++i) out[i] = grey_low_depth(raw[i], depth);
  } else {
    std::memcpy(out, raw, count);
  }
}

// Reads all rows. `direct`: libpng's rows are PIL's (8-bit, no scaling) and go straight into
// `out`; otherwise they go through `scratch` (one row, or the whole image when interlaced).
bool read_rows(PngState& s, const Header& hd, int channels, uint8_t* out, uint8_t* scratch, png_bytep* rows) {
  if (setjmp(s.jump)) return false;
  const bool grey = hd.color == PNG_COLOR_TYPE_GRAY, palette = hd.color == PNG_COLOR_TYPE_PALETTE;
  const bool la16 = hd.color == PNG_COLOR_TYPE_GRAY_ALPHA && hd.depth == 16;
  const bool direct = hd.depth == 8;
  const size_t stride = static_cast<size_t>(hd.w) * channels;
  const size_t raw_stride = png_get_rowbytes(s.png, s.info);
  if (hd.interlace != PNG_INTERLACE_NONE) {
    for (png_uint_32 y = 0; y < hd.h; ++y) rows[y] = direct ? out + y * stride : scratch + y * raw_stride;
    png_read_image(s.png, rows);
    if (!direct)
      for (png_uint_32 y = 0; y < hd.h; ++y)
        convert_row(scratch + y * raw_stride, out + y * stride, stride, hd.depth, grey, palette, la16);
  } else {
    for (png_uint_32 y = 0; y < hd.h; ++y) {
      if (direct) {
        png_read_row(s.png, out + y * stride, nullptr);
      } else {
        png_read_row(s.png, scratch, nullptr);
        convert_row(scratch, out + y * stride, stride, hd.depth, grey, palette, la16);
      }
    }
  }
  return true;
}

// Reads the chunks after the image data (an eXIf may be there). PIL stops quietly at a problem
// there, and so does this: the pixels are complete.
bool read_end(PngState& s) {
  if (setjmp(s.jump)) return false;
  png_read_end(s.png, s.info);
  return true;
}

struct Destroy {
  PngState& s;
  ~Destroy() { png_destroy_read_struct(&s.png, s.info != nullptr ? &s.info : nullptr, nullptr); }
};

}  // namespace

bool is_png(const uint8_t* data, size_t n) { return n >= 8 && png_sig_cmp(data, 0, 8) == 0; }

Decoded decode_png(const uint8_t* data, size_t n, const std::string& name, int64_t max_pixels) {
  auto fail = [&](const PngState& s) {
    return Error(cortex::detail::cat(name, ": corrupt or truncated PNG image (libpng: ", s.message, ")"));
  };
  auto state = std::make_unique<PngState>();
  PngState& s = *state;
  s.data = data;
  s.n = n;
  s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, on_error, on_warning);
  CORTEX_CHECK(s.png != nullptr, name, ": libpng could not create a decoder (out of memory?)");
  Destroy guard{s};
  s.info = png_create_info_struct(s.png);
  CORTEX_CHECK(s.info != nullptr, name, ": libpng could not create a decoder (out of memory?)");
  Header hd;
  if (!read_header(s, hd, 16u << 20)) throw fail(s);
  CORTEX_CHECK(static_cast<int64_t>(hd.w) * hd.h <= max_pixels, name, ": image dimensions ", hd.w, "x", hd.h,
               " exceed the limit of ", max_pixels, " pixels");
  Decoded d;
  int channels = 0;
  switch (hd.color) {
    case PNG_COLOR_TYPE_GRAY:
      d.mode = hd.depth == 16 ? PilMode::I16 : PilMode::L, channels = 1;
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:  // PIL: "LA" at 8 bits, "RGBA" at 16
      d.mode = hd.depth == 16 ? PilMode::RGBA : PilMode::LA, channels = hd.depth == 16 ? 4 : 2;
      break;
    case PNG_COLOR_TYPE_RGB:
      d.mode = PilMode::RGB, channels = 3;
      break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
      d.mode = PilMode::RGBA, channels = 4;
      break;
    case PNG_COLOR_TYPE_PALETTE:
      d.mode = PilMode::P, channels = 1;
      break;
    default:
      throw Error(cortex::detail::cat(name, ": PNG colour type ", hd.color, " is not one PNG defines"));
  }
  if (hd.color == PNG_COLOR_TYPE_PALETTE) {
    png_colorp plte = nullptr;
    int np = 0;
    CORTEX_CHECK(png_get_PLTE(s.png, s.info, &plte, &np) != 0, name, ": corrupt PNG: palette image without PLTE");
    // PIL's palette has 256 entries; those PLTE does not give are opaque black (checked against PIL
    // by the fixture png_palette8_short_plte).
    d.palette.assign(256 * 4, 0);
    for (int i = 0; i < 256; ++i) d.palette[4 * i + 3] = 255;
    for (int i = 0; i < np && i < 256; ++i) {
      d.palette[4 * i] = plte[i].red, d.palette[4 * i + 1] = plte[i].green, d.palette[4 * i + 2] = plte[i].blue;
    }
  }
  png_bytep trans_alpha = nullptr;
  int num_trans = 0;
  png_color_16p trans_color = nullptr;
  if (png_get_tRNS(s.png, s.info, &trans_alpha, &num_trans, &trans_color) != 0) {
    if (hd.color == PNG_COLOR_TYPE_PALETTE && trans_alpha != nullptr) {
      for (int i = 0; i < num_trans && i < 256; ++i) d.palette[4 * i + 3] = trans_alpha[i];
      d.has_transparency = true;
    } else if (hd.color == PNG_COLOR_TYPE_GRAY && trans_color != nullptr) {
      d.has_transparency = true;
      d.transparency[0] = trans_color->gray;  // the raw value, compared with PIL's (scaled) pixel
    } else if (hd.color == PNG_COLOR_TYPE_RGB && trans_color != nullptr) {
      d.has_transparency = true;
      d.transparency[0] = trans_color->red, d.transparency[1] = trans_color->green,
      d.transparency[2] = trans_color->blue;
    }
  }
  if (hd.depth < 8) png_set_packing(s.png);  // one sample per byte, values unscaled
  if (hd.interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(s.png);
  png_read_update_info(s.png, s.info);

  d.pixels = empty({static_cast<int64_t>(hd.h), static_cast<int64_t>(hd.w), channels}, DType::UInt8);
  const size_t raw_stride = png_get_rowbytes(s.png, s.info);
  std::vector<uint8_t> scratch;
  std::vector<png_bytep> rows;
  if (hd.interlace != PNG_INTERLACE_NONE) {
    rows.resize(hd.h);
    if (hd.depth != 8) scratch.resize(raw_stride * hd.h);
  } else if (hd.depth != 8) {
    scratch.resize(raw_stride);
  }
  if (!read_rows(s, hd, channels, d.pixels.data<uint8_t>(), scratch.data(), rows.data())) throw fail(s);
  read_end(s);
  png_bytep exif = nullptr;
  png_uint_32 nexif = 0;
  if (png_get_eXIf_1(s.png, s.info, &nexif, &exif) != 0 && exif != nullptr) d.exif.assign(exif, exif + nexif);
  return d;
}

}  // namespace cortex::io::detail
