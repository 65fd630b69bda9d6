#include "tensor/io/image.h"

#include <stb_image.h>
#include <stb_image_write.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <memory>

#include "tensor/io/atomic_file.h"

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

// stb_image's reason for the last failure on this thread ("bad IHDR len", "outofdata", ...).
std::string failure_reason() {
  const char* r = stbi_failure_reason();
  return r != nullptr && *r != '\0' ? r : "no reason given";
}

struct StbFree {
  void operator()(void* p) const { stbi_image_free(p); }
};

void png_sink(void* ctx, void* data, int size) {
  auto* v = static_cast<std::vector<uint8_t>*>(ctx);
  const auto* p = static_cast<const uint8_t*>(data);
  v->insert(v->end(), p, p + size);
}

// stb_image (Debian's 2022-09 snapshot) decodes a scan whose Huffman table selector names a table
// no DHT segment defined from uninitialised memory, reading far outside its tables (found by
// fuzz_image). stb_impl.cpp zeroes stb's allocations, which keeps that read in bounds; such a file
// is corrupt all the same, so it is refused here with a clear message: the marker segments are
// walked as stb_image walks them (bytes between segments skipped) and every scan's tables must have
// been defined before it. What this walk cannot follow (truncation, a bad length) is left to
// stb_image's own checks.
void check_jpeg_huffman_tables(const uint8_t* d, size_t n, const std::string& name) {
  if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) return;
  bool defined[2][4] = {};  // [DC = 0 / AC = 1][table id]
  bool progressive = false;
  size_t i = 2;
  while (i + 1 < n) {
    if (d[i] != 0xFF) {  // padding between segments: stb_image scans on to the next marker
      ++i;
      continue;
    }
    const uint8_t m = d[i + 1];
    if (m == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) {  // standalone markers
      i += 2;
      continue;
    }
    if (m == 0xD9 || i + 4 > n) return;
    const size_t len = (size_t(d[i + 2]) << 8) | d[i + 3];
    if (len < 2 || i + 2 + len > n) return;
    const uint8_t* seg = d + i + 4;
    const size_t sl = len - 2;
    if (m == 0xC2) progressive = true;
    if (m == 0xC4) {  // DHT: one or more tables
      size_t j = 0;
      while (j + 17 <= sl) {
        const int tc = seg[j] >> 4, th = seg[j] & 15;
        size_t count = 0;
        for (int k = 1; k <= 16; ++k) count += seg[j + k];
        if (tc <= 1 && th <= 3) defined[tc][th] = true;
        j += 17 + count;
      }
    }
    i += 2 + len;
    if (m == 0xDA) {  // SOS: check its tables, then skip the entropy-coded data
      if (sl < 1) return;
      const size_t ns = seg[0];
      if (sl < 1 + 2 * ns + 3) return;
      const uint8_t ss = seg[1 + 2 * ns], ah = seg[3 + 2 * ns] >> 4;
      const bool uses_dc = !progressive || (ss == 0 && ah == 0);
      const bool uses_ac = !progressive || ss > 0;
      for (size_t c = 0; c < ns; ++c) {
        const int td = seg[2 + 2 * c] >> 4, ta = seg[2 + 2 * c] & 15;
        CORTEX_CHECK(!uses_dc || td > 3 || defined[0][td], name, ": corrupt JPEG: a scan uses DC Huffman table ", td,
                     ", which no DHT segment defines before it");
        CORTEX_CHECK(!uses_ac || ta > 3 || defined[1][ta], name, ": corrupt JPEG: a scan uses AC Huffman table ", ta,
                     ", which no DHT segment defines before it");
      }
      while (i + 1 < n && !(d[i] == 0xFF && d[i + 1] != 0x00 && !(d[i + 1] >= 0xD0 && d[i + 1] <= 0xD7))) ++i;
    }
  }
}

// stb_image grows its IDAT buffer to what each chunk header claims before reading the chunk, so a
// corrupt length makes it allocate up to 4 GB for a small file (found by fuzz_image). In memory
// the claim can be checked first: every chunk up to IEND must fit in the bytes that remain.
void check_png_chunks(const uint8_t* d, size_t n, const std::string& name) {
  size_t i = 8;  // after the signature
  while (i + 8 <= n) {
    const uint64_t len = (uint64_t(d[i]) << 24) | (uint64_t(d[i + 1]) << 16) | (uint64_t(d[i + 2]) << 8) | d[i + 3];
    const bool iend = std::memcmp(d + i + 4, "IEND", 4) == 0;
    CORTEX_CHECK(len + 12 <= n - i, name, ": corrupt or truncated PNG or JPEG image (a PNG chunk claims ", len,
                 " bytes, ", n - i < 12 ? 0 : n - i - 12, " remain in the file)");
    if (iend) return;
    i += 12 + len;
  }
}

}  // namespace

// ---------------------------------------------------------------- decoding / encoding

Tensor decode_image(const uint8_t* data, size_t n, const std::string& name, ImageMode mode, int64_t max_pixels) {
  CORTEX_CHECK(n > 0, name, ": empty file, not an image");
  CORTEX_CHECK(n <= static_cast<size_t>(INT_MAX), name, ": ", n, " bytes is too large for the image decoder");
  // Dimensions come from the header alone, so an absurd claim is refused before any allocation.
  // PNG's IHDR is read here directly: stb_image reports a PNG wider than 2^24 only as an "unknown
  // image type".
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n >= 24 && std::memcmp(data, png_sig, 8) == 0 && std::memcmp(data + 12, "IHDR", 4) == 0) {
    auto be32 = [&](size_t at) {
      return (uint64_t(data[at]) << 24) | (uint64_t(data[at + 1]) << 16) | (uint64_t(data[at + 2]) << 8) | data[at + 3];
    };
    const uint64_t pw = be32(16), ph = be32(20);
    CORTEX_CHECK(pw * ph <= static_cast<uint64_t>(max_pixels), name, ": image dimensions ", pw, "x", ph,
                 " exceed the limit of ", max_pixels, " pixels");
    check_png_chunks(data, n, name);
  }
  check_jpeg_huffman_tables(data, n, name);
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, static_cast<int>(n), &w, &h, &comp))
    throw Error(detail::cat(name, ": not a readable PNG or JPEG image (stb_image: ", failure_reason(), ")"));
  CORTEX_CHECK(w > 0 && h > 0, name, ": image has dimensions ", w, "x", h);
  CORTEX_CHECK(static_cast<int64_t>(w) * h <= max_pixels, name, ": image dimensions ", w, "x", h,
               " exceed the limit of ", max_pixels, " pixels");
  const int want = mode == ImageMode::RGB ? 3 : mode == ImageMode::Gray ? 1 : mode == ImageMode::RGBA ? 4 : 0;
  int x = 0, y = 0, file_c = 0;
  std::unique_ptr<uint8_t, StbFree> px(stbi_load_from_memory(data, static_cast<int>(n), &x, &y, &file_c, want));
  if (!px)
    throw Error(detail::cat(name, ": corrupt or truncated PNG or JPEG image (stb_image: ", failure_reason(), ")"));
  CORTEX_CHECK(x == w && y == h, name, ": decoded size ", x, "x", y, " differs from the header's ", w, "x", h);
  const int c = want != 0 ? want : file_c;
  CORTEX_CHECK(c >= 1 && c <= 4, name, ": decoder returned ", c, " channels");
  Tensor out = empty({h, w, c}, DType::UInt8);
  std::memcpy(out.data<uint8_t>(), px.get(), static_cast<size_t>(w) * h * c);
  return out;
}

Tensor read_image(const std::string& path, ImageMode mode, int64_t max_pixels) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_image(bytes.data(), bytes.size(), path, mode, max_pixels);
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
    throw Error(detail::cat(e.what(), " (writing ", path, ")"));
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
