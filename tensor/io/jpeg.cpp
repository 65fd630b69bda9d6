// JPEG decoding through libjpeg-turbo with the settings PIL's JpegDecode uses: the library's
// defaults (accurate integer IDCT JDCT_ISLOW, fancy upsampling, block smoothing) and the output
// colour space PIL asks for (grey, RGB, or CMYK which PIL stores Adobe-inverted), read to the end
// (jpeg_finish_decompress) as PIL reads it. Warnings are ignored as PIL ignores them, except
// running out of data: PIL refuses a truncated file (unless ImageFile.LOAD_TRUNCATED_IMAGES).
//
// libjpeg reports errors through error_exit, which must not return; it longjmps back here. The
// functions that call setjmp hold only trivially destructible locals, so the jump skips no
// destructor, and the error becomes a cortex::Error once back in ordinary C++.
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE
#include <cstring>
#include <limits>
#include <memory>

#include <jerror.h>
#include <jpeglib.h>

#include "tensor/io/jpeg_png_decode.h"

namespace cortex::io::detail {

namespace {

// More scans than any real progressive file has (libjpeg-turbo's tools use 500 when asked to limit
// them); a hostile file could otherwise repeat tiny scans for minutes.
constexpr int kMaxScans = 1000;

struct JpegState {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr err;
  jpeg_progress_mgr progress;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
  bool created = false;
};

JpegState* state_of(j_common_ptr c) {
  // cinfo is the first member of JpegState (standard layout), so the state is at its address.
  return reinterpret_cast<JpegState*>(c);
}

[[noreturn]] void on_error(j_common_ptr c) {
  JpegState* s = state_of(c);
  (*c->err->format_message)(c, s->message);
  std::longjmp(s->jump, 1);
}

void on_message(j_common_ptr c, int level) {
  if (level == -1 && c->err->msg_code == JWRN_JPEG_EOF) {
    // jpeg_mem_src met the end of the data before the image was complete: truncated.
    JpegState* s = state_of(c);
    std::snprintf(s->message, sizeof s->message, "truncated JPEG (the data ends before the image does)");
    std::longjmp(s->jump, 1);
  }
  if (level == -1) ++c->err->num_warnings;  // other warnings: decoded anyway, as PIL does
}

void on_progress(j_common_ptr c) {
  auto* d = reinterpret_cast<j_decompress_ptr>(c);
  if (d->input_scan_number > kMaxScans) {
    JpegState* s = state_of(c);
    std::snprintf(s->message, sizeof s->message, "corrupt JPEG: more than %d scans", kMaxScans);
    std::longjmp(s->jump, 1);
  }
}

// Creates the decompressor and reads the header (markers up to the first scan).
bool read_header(JpegState& s, const uint8_t* data, size_t n, long memory_budget) {
  s.cinfo.err = jpeg_std_error(&s.err);
  s.err.error_exit = on_error;
  s.err.emit_message = on_message;
  if (setjmp(s.jump)) return false;
  jpeg_create_decompress(&s.cinfo);
  s.created = true;
  s.cinfo.mem->max_memory_to_use = memory_budget;
  s.progress.progress_monitor = on_progress;
  s.cinfo.progress = &s.progress;
  jpeg_mem_src(&s.cinfo, data, static_cast<unsigned long>(n));
  jpeg_save_markers(&s.cinfo, JPEG_APP0 + 1, 0xFFFF);  // APP1: EXIF
  jpeg_read_header(&s.cinfo, TRUE);
  return true;
}

// Decodes every scanline into `out` (rows of `stride` bytes).
bool read_pixels(JpegState& s, J_COLOR_SPACE space, int channels, uint8_t* out, size_t stride) {
  if (setjmp(s.jump)) return false;
  s.cinfo.out_color_space = space;
  jpeg_start_decompress(&s.cinfo);
  if (s.cinfo.output_components != channels) {
    std::snprintf(s.message, sizeof s.message, "libjpeg returned %d components, expected %d",
                  s.cinfo.output_components, channels);
    return false;
  }
  JSAMPROW rows[16];
  while (s.cinfo.output_scanline < s.cinfo.output_height) {
    const JDIMENSION at = s.cinfo.output_scanline;
    JDIMENSION k = 0;
    for (; k < 16 && at + k < s.cinfo.output_height; ++k) rows[k] = out + (at + k) * stride;
    if (jpeg_read_scanlines(&s.cinfo, rows, k) == 0) {  // only a suspending source returns 0
      std::snprintf(s.message, sizeof s.message, "truncated JPEG");
      return false;
    }
  }
  // PIL finishes the decompression too: markers after the last scanline up to EOI are read, and a
  // corrupt one (a bad table, a second scan in a baseline file), or no EOI at all, fails the file.
  jpeg_finish_decompress(&s.cinfo);
  return true;
}

struct Destroy {
  JpegState& s;
  ~Destroy() {
    if (s.created) jpeg_destroy_decompress(&s.cinfo);
  }
};

}  // namespace

bool is_jpeg(const uint8_t* data, size_t n) { return n >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF; }

Decoded decode_jpeg(const uint8_t* data, size_t n, const std::string& name, int64_t max_pixels) {
  auto state = std::make_unique<JpegState>();  // value-initialised: libjpeg's structs start zeroed
  JpegState& s = *state;
  Destroy guard{s};
  // libjpeg's own allocations (coefficient buffers of a progressive file: up to 8 bytes a pixel for
  // CMYK) are held to what the pixel limit allows, plus room for tables and row buffers.
  const double budget = static_cast<double>(max_pixels) * 8.0 + 64.0 * (1 << 20);
  const long memory_budget = budget >= static_cast<double>(std::numeric_limits<long>::max())
                                 ? std::numeric_limits<long>::max()
                                 : static_cast<long>(budget);
  if (!read_header(s, data, n, memory_budget))
    throw Error(cortex::detail::cat(name, ": corrupt or truncated JPEG image (libjpeg: ", s.message, ")"));
  const int64_t w = s.cinfo.image_width, h = s.cinfo.image_height;
  CORTEX_CHECK(w > 0 && h > 0, name, ": JPEG image has dimensions ", w, "x", h);
  CORTEX_CHECK(w * h <= max_pixels, name, ": image dimensions ", w, "x", h, " exceed the limit of ", max_pixels,
               " pixels");
  Decoded d;
  J_COLOR_SPACE space;
  int channels;
  switch (s.cinfo.num_components) {
    case 1:
      d.mode = PilMode::L, space = JCS_GRAYSCALE, channels = 1;
      break;
    case 3:
      d.mode = PilMode::RGB, space = JCS_RGB, channels = 3;
      break;
    case 4:
      d.mode = PilMode::CMYK, space = JCS_CMYK, channels = 4;
      break;
    default:
      throw Error(cortex::detail::cat(name, ": JPEG with ", s.cinfo.num_components,
                                      " components (supported: 1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK)"));
  }
  for (jpeg_saved_marker_ptr m = s.cinfo.marker_list; m != nullptr; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && std::memcmp(m->data, "Exif\0\0", 6) == 0) {
      d.exif.assign(m->data + 6, m->data + m->data_length);  // PIL keeps the first one
      break;
    }
  }
  d.pixels = empty({h, w, channels}, DType::UInt8);
  uint8_t* px = d.pixels.data<uint8_t>();
  if (!read_pixels(s, space, channels, px, static_cast<size_t>(w) * channels))
    throw Error(cortex::detail::cat(name, ": corrupt or truncated JPEG image (libjpeg: ", s.message, ")"));
  if (d.mode == PilMode::CMYK) {
    // PIL reads CMYK JPEGs with the "CMYK;I" rawmode (Adobe's inverted convention) for every file.
    const size_t count = static_cast<size_t>(w * h * 4);
    for (size_t i = 0; i < count; ++i) px[i] = static_cast<uint8_t>(255 - px[i]);
  }
  return d;
}

}  // namespace cortex::io::detail
