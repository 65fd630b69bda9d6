#include "tensor/io/image.h"

#include <stb_image_write.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <memory>

#include "tensor/io/atomic_file.h"
#include "tensor/io/jpeg_png_decode.h"

namespace cortex::io {

namespace {

// Checks a uint8 (H, W, C) image and returns it host-side and contiguous.
Tensor check_hwc(const Tensor& img, const char* op) {
  CORTEX_CHECK(img.defined(), op, ": the image tensor is undefined");
  CORTEX_CHECK(img.dtype() == DType::UInt8, op, ": expected a uint8 image, found ", dtype_name(img.dtype()));
  CORTEX_CHECK(img.dim() == 3 && img.size(2) >= 1 && img.size(2) <= 4, op,
               ": expected an image of shape (H, W, C) with C in 1..4, found ", shape_str(img.shape()));
  return img.to(Device::cpu()).contiguous();
}

// ---------------------------------------------------------------- PIL's resampling

constexpr int kPrecisionBits = 32 - 8 - 2;  // PIL's fixed point for 8-bit images

double bilinear_filter(double x) {
  x = std::abs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}
double bicubic_filter(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Weights of one 1-D pass, as PIL's precompute_coeffs + normalize_coeffs_8bpc compute them: for
// output index i, input taps xmin[i] .. xmin[i] + count[i] - 1 with weights k[i * ksize + j].
struct Coeffs {
  int ksize = 0;
  std::vector<int> xmin, count;
  std::vector<int32_t> k;
};

Coeffs precompute(int in_size, int out_size, Interp interp) {
  const double base_support = interp == Interp::Bilinear ? 1.0 : 2.0;
  auto filter = interp == Interp::Bilinear ? bilinear_filter : bicubic_filter;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);  // widen the kernel when shrinking: antialias
  const double support = base_support * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.xmin.resize(out_size);
  c.count.resize(out_size);
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // PIL rounds with a cast (truncation toward zero) after adding 0.5.
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = filter((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      c.k[static_cast<size_t>(xx) * c.ksize + x] =
          static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    c.xmin[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

// One pass along `axis` (1: width, 0: height) of a contiguous (H, W, C) uint8 image.
Tensor resample_pass(const Tensor& in, int64_t out_len, int axis, Interp interp) {
  const int64_t H = in.size(0), W = in.size(1), C = in.size(2);
  const Coeffs c = precompute(static_cast<int>(axis == 1 ? W : H), static_cast<int>(out_len), interp);
  const int64_t oh = axis == 0 ? out_len : H, ow = axis == 1 ? out_len : W;
  Tensor out = empty({oh, ow, C}, DType::UInt8);
  const uint8_t* src = in.data<uint8_t>();
  uint8_t* dst = out.data<uint8_t>();
  const int32_t half = 1 << (kPrecisionBits - 1);
#pragma omp parallel for schedule(static) if (oh * ow * C > (1 << 18))
  for (int64_t y = 0; y < oh; ++y) {
    for (int64_t x = 0; x < ow; ++x) {
      const int64_t o = axis == 1 ? x : y;
      const int32_t* k = c.k.data() + o * c.ksize;
      const int n = c.count[o];
      // Taps step along a row (axis 1) or down a column (axis 0).
      const int64_t step = axis == 1 ? C : W * C;
      const uint8_t* base = axis == 1 ? src + (y * W + c.xmin[o]) * C : src + (c.xmin[o] * W + x) * C;
      for (int64_t ch = 0; ch < C; ++ch) {
        int32_t ss = half;
        for (int j = 0; j < n; ++j) ss += static_cast<int32_t>(base[j * step + ch]) * k[j];
        dst[(y * ow + x) * C + ch] = clip8(ss);
      }
    }
  }
  return out;
}

// Python's round() on a multiple of 0.5, (a / 2.0): ties go to the even integer.
int64_t round_half_even_div2(int64_t a) {
  const int64_t q = a / 2;  // a >= 0
  if (a % 2 == 0) return q;
  return q % 2 == 0 ? q : q + 1;
}

void png_sink(void* ctx, void* data, int size) {
  auto* v = static_cast<std::vector<uint8_t>*>(ctx);
  const auto* p = static_cast<const uint8_t*>(data);
  v->insert(v->end(), p, p + size);
}

// ---------------------------------------------------------------- PIL's mode conversions

using detail::Decoded;
using detail::PilMode;

// PIL's luma: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16 (ITU-R 601-2, Convert.c's L24).
inline uint8_t luma(uint32_t r, uint32_t g, uint32_t b) {
  return static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
}

// PIL's cmyk2rgb on its stored (inverted) CMYK: nk = 255 - K, channel = nk - nk * C / 255 rounded.
inline uint8_t cmyk_channel(uint32_t c, uint32_t nk) {
  const uint32_t t = c * nk + 128;
  const int v = static_cast<int>(nk) - static_cast<int>(((t >> 8) + t) >> 8);
  return static_cast<uint8_t>(v < 0 ? 0 : v);
}

// Writes pixel `i` of `d` as RGBA (what PIL's convert('RGBA') gives; RGB and L follow from it).
inline void rgba_of(const Decoded& d, const uint8_t* px, size_t i, uint8_t* o) {
  switch (d.mode) {
    case PilMode::L:
    case PilMode::I16: {
      const uint8_t v = px[i];
      o[0] = o[1] = o[2] = v;
      o[3] = d.has_transparency && v == d.transparency[0] ? 0 : 255;
      break;
    }
    case PilMode::LA:
      o[0] = o[1] = o[2] = px[2 * i];
      o[3] = px[2 * i + 1];
      break;
    case PilMode::RGB: {
      const uint8_t* p = px + 3 * i;
      o[0] = p[0], o[1] = p[1], o[2] = p[2];
      o[3] = d.has_transparency && p[0] == d.transparency[0] && p[1] == d.transparency[1] &&
                     p[2] == d.transparency[2]
                 ? 0
                 : 255;
      break;
    }
    case PilMode::RGBA:
      std::memcpy(o, px + 4 * i, 4);
      break;
    case PilMode::P:
      std::memcpy(o, d.palette.data() + 4 * size_t(px[i]), 4);
      break;
    case PilMode::CMYK: {
      const uint8_t* p = px + 4 * i;
      const uint32_t nk = 255u - p[3];
      o[0] = cmyk_channel(p[0], nk), o[1] = cmyk_channel(p[1], nk), o[2] = cmyk_channel(p[2], nk);
      o[3] = 255;
      break;
    }
  }
}

// The channel count PIL's own mode has, for ImageMode::Native (palette and CMYK expanded).
int native_channels(const Decoded& d) {
  switch (d.mode) {
    case PilMode::L:
    case PilMode::I16:
      return 1;
    case PilMode::LA:
      return 2;
    case PilMode::RGB:
    case PilMode::CMYK:
      return 3;
    case PilMode::RGBA:
      return 4;
    case PilMode::P:
      return d.has_transparency ? 4 : 3;
  }
  return 3;
}

// PIL's Image.convert to L (1), LA (2), RGB (3) or RGBA (4) channels.
Tensor convert(const Decoded& d, int channels) {
  const int have = static_cast<int>(d.pixels.size(2));
  const bool same = (channels == have) && (d.mode == PilMode::L || d.mode == PilMode::I16 || d.mode == PilMode::LA ||
                                           d.mode == PilMode::RGB || d.mode == PilMode::RGBA);
  if (same) return d.pixels;
  const int64_t H = d.pixels.size(0), W = d.pixels.size(1);
  Tensor out = empty({H, W, channels}, DType::UInt8);
  const uint8_t* px = d.pixels.data<uint8_t>();
  uint8_t* o = out.data<uint8_t>();
  const size_t count = static_cast<size_t>(H * W);
  const bool grey_source = d.mode == PilMode::L || d.mode == PilMode::I16 || d.mode == PilMode::LA;
#pragma omp parallel for schedule(static) if (count > (1 << 20))
  for (int64_t i = 0; i < static_cast<int64_t>(count); ++i) {
    uint8_t q[4] = {0, 0, 0, 0};
    rgba_of(d, px, static_cast<size_t>(i), q);
    uint8_t* t = o + i * channels;
    if (channels >= 3) {
      t[0] = q[0], t[1] = q[1], t[2] = q[2];
      if (channels == 4) t[3] = q[3];
    } else {
      t[0] = grey_source ? q[0] : luma(q[0], q[1], q[2]);
      if (channels == 2) t[1] = q[3];
    }
  }
  return out;
}

// ---------------------------------------------------------------- EXIF orientation

uint32_t tiff_u(const std::vector<uint8_t>& b, size_t at, int bytes, bool big) {
  uint32_t v = 0;
  for (int k = 0; k < bytes; ++k) {
    const uint32_t byte = b[at + k];
    v |= big ? byte << (8 * (bytes - 1 - k)) : byte << (8 * k);
  }
  return v;
}

}  // namespace

int exif_orientation(const std::vector<uint8_t>& tiff) {
  // TIFF header: byte order ("II" / "MM"), 42, offset of IFD0; IFD0: a count, then 12-byte entries
  // (tag, type, count, value). Orientation is tag 0x0112, a SHORT (a LONG is read as well).
  const size_t n = tiff.size();
  if (n < 8) return 1;
  const bool big = tiff[0] == 'M' && tiff[1] == 'M';
  if (!big && !(tiff[0] == 'I' && tiff[1] == 'I')) return 1;
  if (tiff_u(tiff, 2, 2, big) != 42) return 1;
  const uint64_t ifd = tiff_u(tiff, 4, 4, big);
  if (ifd + 2 > n) return 1;
  const uint32_t entries = tiff_u(tiff, ifd, 2, big);
  for (uint32_t e = 0; e < entries; ++e) {
    const uint64_t at = ifd + 2 + 12 * uint64_t(e);
    if (at + 12 > n) return 1;
    if (tiff_u(tiff, at, 2, big) != 0x0112) continue;
    const uint32_t type = tiff_u(tiff, at + 2, 2, big), count = tiff_u(tiff, at + 4, 4, big);
    if (count < 1) return 1;
    const uint32_t v = type == 3 ? tiff_u(tiff, at + 8, 2, big) : type == 4 ? tiff_u(tiff, at + 8, 4, big) : 1;
    return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
  }
  return 1;
}

Tensor apply_exif_orientation(const Tensor& img_in, int orientation) {
  CORTEX_CHECK(orientation >= 1 && orientation <= 8, "apply_exif_orientation: orientation must be 1..8, found ",
               orientation);
  const Tensor img = check_hwc(img_in, "apply_exif_orientation");
  if (orientation == 1) return img;
  const int64_t H = img.size(0), W = img.size(1), C = img.size(2);
  const bool swap = orientation >= 5;  // TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90 swap the sides
  const int64_t oh = swap ? W : H, ow = swap ? H : W;
  Tensor out = empty({oh, ow, C}, DType::UInt8);
  const uint8_t* s = img.data<uint8_t>();
  uint8_t* o = out.data<uint8_t>();
  // For each output pixel (y, x), the source pixel of the PIL transpose ImageOps.exif_transpose
  // applies: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270,
  // 7 TRANSVERSE, 8 ROTATE_90 (PIL's rotations are counter-clockwise).
#pragma omp parallel for schedule(static) if (oh * ow * C > (1 << 20))
  for (int64_t y = 0; y < oh; ++y) {
    for (int64_t x = 0; x < ow; ++x) {
      int64_t sy = y, sx = x;
      switch (orientation) {
        case 2: sx = W - 1 - x; break;
        case 3: sy = H - 1 - y, sx = W - 1 - x; break;
        case 4: sy = H - 1 - y; break;
        case 5: sy = x, sx = y; break;
        case 6: sy = H - 1 - x, sx = y; break;
        case 7: sy = H - 1 - x, sx = W - 1 - y; break;
        case 8: sy = x, sx = W - 1 - y; break;
        default: break;
      }
      std::memcpy(o + (y * ow + x) * C, s + (sy * W + sx) * C, static_cast<size_t>(C));
    }
  }
  return out;
}


// ---------------------------------------------------------------- decoding / encoding

Tensor decode_image(const uint8_t* data, size_t n, const std::string& name, ImageMode mode, int64_t max_pixels,
                    bool exif_transpose) {
  CORTEX_CHECK(n > 0, name, ": empty file, not an image");
  CORTEX_CHECK(max_pixels > 0, name, ": the pixel limit must be positive, found ", max_pixels);
  Decoded d;
  if (detail::is_png(data, n))
    d = detail::decode_png(data, n, name, max_pixels);
  else if (detail::is_jpeg(data, n))
    d = detail::decode_jpeg(data, n, name, max_pixels);
  else
    throw Error(cortex::detail::cat(name, ": not a readable PNG or JPEG image (neither signature found)"));
  const int channels = mode == ImageMode::RGB    ? 3
                       : mode == ImageMode::Gray ? 1
                       : mode == ImageMode::RGBA ? 4
                                                 : native_channels(d);
  Tensor out = convert(d, channels);
  if (exif_transpose && !d.exif.empty()) out = apply_exif_orientation(out, exif_orientation(d.exif));
  return out;
}

Tensor read_image(const std::string& path, ImageMode mode, int64_t max_pixels, bool exif_transpose) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_image(bytes.data(), bytes.size(), path, mode, max_pixels, exif_transpose);
}

std::vector<uint8_t> encode_png(const Tensor& img_in) {
  CORTEX_CHECK(img_in.defined(), "write_png: the image tensor is undefined");
  Tensor img = img_in.dim() == 2 ? img_in.unsqueeze(2) : img_in;
  img = check_hwc(img, "write_png");
  const int64_t H = img.size(0), W = img.size(1), C = img.size(2);
  CORTEX_CHECK(H > 0 && W > 0, "write_png: cannot write an empty image of shape ", shape_str(img_in.shape()));
  CORTEX_CHECK(H <= INT_MAX && W * C <= INT_MAX, "write_png: image of shape ", shape_str(img_in.shape()),
               " is too large for PNG encoding");
  std::vector<uint8_t> out;
  const int ok = stbi_write_png_to_func(png_sink, &out, static_cast<int>(W), static_cast<int>(H), static_cast<int>(C),
                                        img.data<uint8_t>(), static_cast<int>(W * C));
  CORTEX_CHECK(ok != 0, "write_png: PNG encoding of a ", shape_str(img_in.shape()), " image failed");
  return out;
}

void write_png(const std::string& path, const Tensor& img) {
  std::vector<uint8_t> bytes;
  try {
    bytes = encode_png(img);
  } catch (const Error& e) {
    throw Error(cortex::detail::cat(e.what(), " (writing ", path, ")"));
  }
  write_file_atomic(path, bytes.data(), bytes.size());
}

// ---------------------------------------------------------------- preprocessing

Tensor resize(const Tensor& img_in, int64_t out_h, int64_t out_w, Interp interp) {
  const Tensor img = check_hwc(img_in, "resize");
  const int64_t H = img.size(0), W = img.size(1);
  CORTEX_CHECK(out_h > 0 && out_w > 0, "resize: output size must be positive, found ", out_h, "x", out_w);
  CORTEX_CHECK(H > 0 && W > 0, "resize: cannot resize an empty image of shape ", shape_str(img.shape()));
  CORTEX_CHECK(out_h <= INT_MAX && out_w <= INT_MAX && H <= INT_MAX && W <= INT_MAX,
               "resize: sizes beyond 2^31 are not supported");
  // Like PIL: horizontal pass first, then vertical; a pass whose size is unchanged is skipped.
  Tensor t = img;
  if (out_w != W) t = resample_pass(t, out_w, 1, interp);
  if (out_h != H) t = resample_pass(t, out_h, 0, interp);
  return t.is_same(img) ? img.clone() : t;
}

Tensor resize_shorter(const Tensor& img, int64_t size, Interp interp) {
  CORTEX_CHECK(size > 0, "resize_shorter: size must be positive, found ", size);
  const Tensor c = check_hwc(img, "resize_shorter");
  const int64_t h = c.size(0), w = c.size(1);
  CORTEX_CHECK(h > 0 && w > 0, "resize_shorter: cannot resize an empty image of shape ", shape_str(c.shape()));
  const int64_t shorter = std::min(h, w), longer = std::max(h, w);
  // torchvision: int(size * long / short) in Python floats, i.e. truncation of a double.
  const int64_t new_long = static_cast<int64_t>(static_cast<double>(size) * static_cast<double>(longer) /
                                                static_cast<double>(shorter));
  const int64_t oh = w <= h ? new_long : size, ow = w <= h ? size : new_long;
  return resize(c, oh, ow, interp);
}

Tensor center_crop(const Tensor& img, int64_t ch, int64_t cw) {
  CORTEX_CHECK(img.defined(), "center_crop: the image tensor is undefined");
  CORTEX_CHECK(img.dim() == 3 || img.dim() == 4, "center_crop: expected (H, W, C) or (N, H, W, C), found ",
               shape_str(img.shape()));
  CORTEX_CHECK(ch > 0 && cw > 0, "center_crop: crop size must be positive, found ", ch, "x", cw);
  const int64_t hd = img.dim() - 3, wd = img.dim() - 2;
  Tensor t = img;
  const int64_t H = t.size(hd), W = t.size(wd);
  if (ch > H || cw > W) {
    // torchvision pads (left, top, right, bottom) with zeros so the crop fits, then crops.
    const int64_t left = cw > W ? (cw - W) / 2 : 0, top = ch > H ? (ch - H) / 2 : 0;
    const int64_t right = cw > W ? (cw - W + 1) / 2 : 0, bottom = ch > H ? (ch - H + 1) / 2 : 0;
    Shape ps = t.shape();
    ps[hd] = H + top + bottom;
    ps[wd] = W + left + right;
    Tensor padded = zeros(ps, t.dtype(), t.device());
    padded.narrow(hd, top, H).narrow(wd, left, W).copy_(t);
    t = padded;
  }
  const int64_t top = round_half_even_div2(t.size(hd) - ch), left = round_half_even_div2(t.size(wd) - cw);
  return t.narrow(hd, top, ch).narrow(wd, left, cw);
}

Tensor to_float_chw(const Tensor& img_in) {
  CORTEX_CHECK(img_in.defined(), "to_float_chw: the image tensor is undefined");
  CORTEX_CHECK(img_in.dtype() == DType::UInt8, "to_float_chw: expected a uint8 image, found ",
               dtype_name(img_in.dtype()));
  CORTEX_CHECK(img_in.dim() == 3 || img_in.dim() == 4, "to_float_chw: expected (H, W, C) or (N, H, W, C), found ",
               shape_str(img_in.shape()));
  const Tensor img = img_in.to(Device::cpu()).contiguous();
  const bool batched = img.dim() == 4;
  const int64_t N = batched ? img.size(0) : 1, H = img.size(-3), W = img.size(-2), C = img.size(-1);
  Tensor out = batched ? empty({N, C, H, W}) : empty({C, H, W});
  const uint8_t* src = img.data<uint8_t>();
  float* dst = out.data<float>();
  // ToTensor divides the float32 value by 255 (not a multiplication by 1/255: that rounds differently).
#pragma omp parallel for collapse(2) schedule(static) if (N * C * H * W > (1 << 18))
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x)
          dst[((n * C + c) * H + y) * W + x] = static_cast<float>(src[((n * H + y) * W + x) * C + c]) / 255.0f;
  return img_in.device().is_cpu() ? out : out.to(img_in.device());
}

Tensor normalize(const Tensor& x_in, const std::vector<double>& mean, const std::vector<double>& std) {
  CORTEX_CHECK(x_in.defined(), "normalize: the tensor is undefined");
  CORTEX_CHECK(x_in.dim() == 3 || x_in.dim() == 4, "normalize: expected (C, H, W) or (N, C, H, W), found ",
               shape_str(x_in.shape()));
  const int64_t C = x_in.size(-3);
  CORTEX_CHECK(static_cast<int64_t>(mean.size()) == C && static_cast<int64_t>(std.size()) == C, "normalize: ", C,
               " channels but ", mean.size(), " means and ", std.size(), " stds");
  for (double s : std) CORTEX_CHECK(s != 0.0, "normalize: std evaluated to zero, leading to division by zero");
  const Tensor x = x_in.to(Device::cpu()).contiguous();
  Tensor out = empty(x.shape(), x.dtype());
  const int64_t outer = x.dim() == 4 ? x.size(0) * C : C, inner = x.size(-1) * x.size(-2);
  dispatch_float(x.dtype(), "normalize", [&](auto tag) {
    using T = decltype(tag);
    const T* src = x.data<T>();
    T* dst = out.data<T>();
#pragma omp parallel for schedule(static) if (outer * inner > (1 << 18))
    for (int64_t o = 0; o < outer; ++o) {
      // Subtract then divide in T, with mean and std rounded to T, exactly as sub_(mean).div_(std).
      const T m = static_cast<T>(mean[o % C]), s = static_cast<T>(std[o % C]);
      for (int64_t i = 0; i < inner; ++i) dst[o * inner + i] = (src[o * inner + i] - m) / s;
    }
  });
  return x_in.device().is_cpu() ? out : out.to(x_in.device());
}

Tensor preprocess_imagenet(const Tensor& img, int64_t resize_to, int64_t crop) {
  CORTEX_CHECK(img.defined() && img.dim() == 3 && img.size(2) == 3,
               "preprocess_imagenet: expected an RGB image (H, W, 3), found ",
               img.defined() ? shape_str(img.shape()) : std::string("an undefined tensor"),
               " (read_image returns RGB by default)");
  Tensor r = resize_shorter(img, resize_to, Interp::Bilinear);
  return normalize(to_float_chw(center_crop(r, crop, crop)), kImageNetMean, kImageNetStd);
}

Tensor preprocess_clip(const Tensor& img, int64_t size) {
  CORTEX_CHECK(img.defined() && img.dim() == 3 && img.size(2) == 3,
               "preprocess_clip: expected an RGB image (H, W, 3), found ",
               img.defined() ? shape_str(img.shape()) : std::string("an undefined tensor"),
               " (read_image returns RGB by default)");
  Tensor r = resize_shorter(img, size, Interp::Bicubic);
  return normalize(to_float_chw(center_crop(r, size, size)), kClipMean, kClipStd);
}

}  // namespace cortex::io
