// libFuzzer target: the .npz reader (zip directory, zip64 fields, inflate, CRC, members as .npy).
#include <cstddef>
#include <cstdint>

#include "tensor/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto arrays = cortex::io::read_npz_bytes(data, size, "fuzz.npz");
    unsigned sum = 0;
    for (const auto& [key, t] : arrays) {
      const auto* p = static_cast<const uint8_t*>(t.raw_data());
      for (size_t i = 0; i < static_cast<size_t>(t.numel()) * t.element_size(); ++i) sum += p[i];
    }
    volatile unsigned sink = sum;
    (void)sink;
  } catch (const cortex::Error&) {
  }
  return 0;
}
