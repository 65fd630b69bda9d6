// Internal to tensor/io: the JPEG (libjpeg-turbo) and PNG (libpng) decoders behind decode_image.
// Each returns the image as PIL holds it after Image.open(...).load(), reduced to 8 bits per
// sample, with what image.cpp needs to apply PIL's convert() and exif_transpose.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::io::detail {

// PIL's mode of the decoded image (the 8-bit modes it unpacks to):
//   L, LA, RGB, RGBA: as named;  P: palette indices (one channel) with `palette`;
//   CMYK: PIL's stored CMYK (Adobe-inverted, as PIL's "CMYK;I" rawmode stores it);
//   I16: a 16-bit grey PNG (PIL's "I;16"), held here already clipped to 0..255 as PIL's
//        convert() to L/RGB/RGBA clips it;
//   (16-bit grey+alpha, which PIL opens as RGBA, is RGBA here.)
enum class PilMode { L, LA, RGB, RGBA, P, CMYK, I16 };

struct Decoded {
  Tensor pixels;  // uint8 (H, W, C), C = 1 (L, P, I16), 2 (LA), 3 (RGB), 4 (RGBA, CMYK)
  PilMode mode = PilMode::RGB;
  std::vector<uint8_t> palette;  // P: 256 RGBA entries (PIL's palette, alpha from tRNS)
  // PIL's info["transparency"] of an L / I16 / RGB image (PNG tRNS, the raw 16-bit field values):
  // convert('RGBA') makes transparent the pixels whose 8-bit value (scaled from low bit depths,
  // clipped from I16) equals it, as PIL's convert_transparent compares them.
  bool has_transparency = false;
  int transparency[3] = {0, 0, 0};
  std::vector<uint8_t> exif;  // the EXIF TIFF block (JPEG APP1 "Exif\0\0" payload, PNG eXIf), if any
};

bool is_jpeg(const uint8_t* data, size_t n);
bool is_png(const uint8_t* data, size_t n);

// Both throw cortex::Error naming `name` on anything they cannot decode; neither allocates the
// image before checking its header's width * height against max_pixels.
Decoded decode_jpeg(const uint8_t* data, size_t n, const std::string& name, int64_t max_pixels);
Decoded decode_png(const uint8_t* data, size_t n, const std::string& name, int64_t max_pixels);

}  // namespace cortex::io::detail
