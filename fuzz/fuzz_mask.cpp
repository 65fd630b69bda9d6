// libFuzzer target: mask PNGs (tensor/io/mask.h): index and binary mask decoding, and on what
// decodes, a palette-PNG round trip (encode_index_mask must give back the same indices).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "tensor/io/mask.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cortex;
  try {
    Tensor m = io::decode_index_mask(data, size, "fuzz.png");
    if (m.numel() <= 64 * 64) {
      const std::vector<uint8_t> png = io::encode_index_mask(m);
      const Tensor back = io::decode_index_mask(png.data(), png.size(), "roundtrip.png");
      if (back.to_vector<uint8_t>() != m.contiguous().to_vector<uint8_t>()) std::abort();
    }
  } catch (const Error&) {
  }
  try {
    (void)io::decode_binary_mask(data, size, "fuzz.png");
  } catch (const Error&) {
  }
  return 0;
}
