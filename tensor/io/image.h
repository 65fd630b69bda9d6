// Images: PNG/JPEG reading (libpng / libjpeg-turbo) and PNG writing (stb_image_write), and the preprocessing
// torchvision applies to PIL images, reproduced exactly:
//   resize_shorter  = transforms.Resize(size)      (PIL bilinear or bicubic with antialias)
//   center_crop     = transforms.CenterCrop((h, w))
//   to_float_chw    = transforms.ToTensor()         (uint8 HWC -> float32 CHW in [0, 1])
//   normalize       = transforms.Normalize(mean, std)
// Images are uint8 tensors (H, W, C), C in 1..4, row-major, as decoded.
//
// Decoding gives the pixels of PIL's Image.open(f).convert(mode) exactly: JPEG through libjpeg-turbo
// with PIL's settings (accurate integer IDCT, fancy upsampling; CMYK read Adobe-inverted and
// converted with PIL's formula), PNG through libpng (1- to 16-bit, grey, palette, alpha, tRNS, with
// 16-bit samples reduced as PIL reduces them). Tested against PIL in tests/test_io_image.cpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::io {

// Channels of the decoded image, as PIL's convert(): RGB (the default) repeats grey, drops alpha,
// expands palettes and converts CMYK; Gray is convert('L') (luma (19595 R + 38470 G + 7471 B) / 2^16,
// rounded); RGBA is convert('RGBA') (alpha from the file, from a palette's or a colour's tRNS, else
// 255). Native keeps what the file has (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), with a palette
// expanded to RGB, or RGBA when it has tRNS, and CMYK converted to RGB.
enum class ImageMode { RGB, Gray, RGBA, Native };

// Images with more pixels than this are refused from their header, before any decoding (a PNG
// header claiming 100000 x 100000 would otherwise ask for 30 GB). The decoders' own working memory
// (a progressive JPEG's coefficients, ancillary PNG chunks) is bounded from the same limit.
constexpr int64_t kMaxImagePixels = int64_t(1) << 28;

// exif_transpose: apply the file's EXIF orientation as PIL's ImageOps.exif_transpose does (JPEG
// APP1 Exif, PNG eXIf; XMP orientation is not read). Off by default, as torchvision's ImageFolder
// and most training pipelines do not apply it.
Tensor read_image(const std::string& path, ImageMode mode = ImageMode::RGB, int64_t max_pixels = kMaxImagePixels,
                  bool exif_transpose = false);
// Decodes an in-memory PNG or JPEG file; `name` is used in error messages.
Tensor decode_image(const uint8_t* data, size_t n, const std::string& name, ImageMode mode = ImageMode::RGB,
                    int64_t max_pixels = kMaxImagePixels, bool exif_transpose = false);

// The orientation (1..8) in an EXIF TIFF block, 1 when it has none or is unreadable.
int exif_orientation(const std::vector<uint8_t>& tiff);
// PIL's transpose for an EXIF orientation on a uint8 (H, W, C) image: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180,
// 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90; 1 returns the image.
Tensor apply_exif_orientation(const Tensor& img, int orientation);

// Writes a uint8 (H, W, C) image, C in 1..4, or (H, W) grey, as PNG (through AtomicFile).
void write_png(const std::string& path, const Tensor& img);
std::vector<uint8_t> encode_png(const Tensor& img);

// ---- preprocessing ----

enum class Interp { Bilinear, Bicubic };  // PIL.Image.BILINEAR / BICUBIC (support 1 / 2, a = -0.5)

// PIL's Image.resize(size, resample) on a uint8 (H, W, C) image: a separable filter (horizontal
// pass, then vertical) whose support widens by the downscale factor (antialiasing), centre-aligned
// coordinates, 22-bit fixed-point weights, rounding to uint8 after each pass. Channels are filtered
// independently (PIL premultiplies alpha for RGBA; this does not).
Tensor resize(const Tensor& img, int64_t out_h, int64_t out_w, Interp interp = Interp::Bilinear);
// torchvision Resize(size): the shorter side becomes `size`, the longer int(size * long / short).
Tensor resize_shorter(const Tensor& img, int64_t size, Interp interp = Interp::Bilinear);
// torchvision CenterCrop((h, w)) on (H, W, C) or (N, H, W, C): top = int(round((H - h) / 2.0)) with
// Python's round-half-to-even, likewise left; an image smaller than the crop is zero-padded first
// as torchvision does. A view of the input when no padding is needed.
Tensor center_crop(const Tensor& img, int64_t h, int64_t w);
// uint8 (H, W, C) -> float32 (C, H, W), or (N, H, W, C) -> (N, C, H, W), values x / 255.
Tensor to_float_chw(const Tensor& img);
// (x - mean[c]) / std[c] on (C, H, W) or (N, C, H, W), float32 or float64, computed in x's dtype
// (mean and std rounded to it first, as torchvision does). Returns a new tensor.
Tensor normalize(const Tensor& x, const std::vector<double>& mean, const std::vector<double>& std);

inline const std::vector<double> kImageNetMean = {0.485, 0.456, 0.406};
inline const std::vector<double> kImageNetStd = {0.229, 0.224, 0.225};
inline const std::vector<double> kClipMean = {0.48145466, 0.4578275, 0.40821073};
inline const std::vector<double> kClipStd = {0.26862954, 0.26130258, 0.27577711};

// Resize(resize) (bilinear), CenterCrop(crop), ToTensor, Normalize(ImageNet): uint8 (H, W, 3) ->
// float32 (3, crop, crop).
Tensor preprocess_imagenet(const Tensor& img, int64_t resize = 256, int64_t crop = 224);
// OpenAI CLIP's preprocessing: Resize(size, bicubic), CenterCrop(size), ToTensor, Normalize(CLIP).
Tensor preprocess_clip(const Tensor& img, int64_t size = 224);

}  // namespace cortex::io
