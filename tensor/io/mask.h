// Segmentation masks as PNG files: VOC-style palette PNGs (one class index per pixel, 0 background,
// 255 "ignore", the palette only for display) and binary figure-ground masks.
//
// A palette PNG's pixels are read as its indices, never through its colours: two files with the
// same indices and different palettes are the same mask. An 8-bit grey PNG is read as its values
// (many datasets store label maps that way). Colour (RGB/RGBA), grey+alpha and 16-bit grey files are
// refused for index masks: their colours would need a colour -> class table this reader does not
// guess. Errors are one line naming the file ("<file>: <problem>").
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::io {

constexpr uint8_t kMaskIgnore = 255;  // VOC's "void" label: excluded from scores

// The PASCAL VOC colour map (256 RGB entries, 768 bytes): entry i spreads the bits of i over the
// high bits of R, G, B (VOCdevkit's labelcolormap), so 0 is black, 1 dark red, 255 (224, 224, 192).
std::vector<uint8_t> voc_palette();

// A palette (or 8-bit grey) PNG -> uint8 (H, W) of indices.
Tensor read_index_mask(const std::string& path);
Tensor decode_index_mask(const uint8_t* data, size_t n, const std::string& name);

// A binary figure-ground mask -> uint8 (H, W) with 0 background, 1 figure, 255 ignore.
//   palette PNG: index 0 -> 0, index 255 -> 255, any other index -> 1;
//   any other PNG or JPEG: its grey value (PIL's convert('L')) 0 -> 0, nonzero -> 1 (so 0/1 and
//   0/255 masks both read as expected; such files have no ignore label).
Tensor read_binary_mask(const std::string& path);
Tensor decode_binary_mask(const uint8_t* data, size_t n, const std::string& name);

// Writes a uint8 (H, W) index mask as an 8-bit palette PNG (through AtomicFile). `palette` holds
// 3 * P bytes of RGB, 1 <= P <= 256; empty means voc_palette(). Every index must be < P.
void write_index_mask(const std::string& path, const Tensor& mask, const std::vector<uint8_t>& palette = {});
std::vector<uint8_t> encode_index_mask(const Tensor& mask, const std::vector<uint8_t>& palette = {});

// A binary mask (values 0, 1, 255) as a palette PNG: 0 black, 1 white, 255 VOC's ignore colour.
void write_binary_mask(const std::string& path, const Tensor& mask);

}  // namespace cortex::io
