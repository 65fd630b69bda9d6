// libFuzzer target: PNG/JPEG decoding (libpng and libjpeg-turbo behind tensor/io's error managers
// and limits), EXIF orientation, and, on what decodes, the torchvision-style preprocessing.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "tensor/io/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cortex;
  // The input length picks the colour mode and EXIF handling, so all are exercised without spending a byte.
  const io::ImageMode modes[] = {io::ImageMode::RGB, io::ImageMode::Gray, io::ImageMode::RGBA, io::ImageMode::Native};
  try {
    // A small pixel limit keeps each run within libFuzzer's memory limit.
    Tensor img = io::decode_image(data, size, "fuzz.img", modes[size % 4], int64_t(1) << 20, (size / 4) % 2 == 1);
    const int64_t h = img.size(0), w = img.size(1);
    if (h * w <= 64 * 64) {
      Tensor r = io::resize(img, std::max<int64_t>(1, h / 3), w + 5, io::Interp::Bilinear);
      Tensor b = io::resize(img, h + 3, std::max<int64_t>(1, w / 2), io::Interp::Bicubic);
      Tensor c = io::center_crop(r, 4, 3);
      Tensor f = io::to_float_chw(c);
      (void)b;
      (void)f;
    }
  } catch (const Error&) {
  }
  return 0;
}
