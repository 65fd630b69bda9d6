// libFuzzer target: the .npy parser (header literal, dtype, sizes, Fortran order, conversions).
#include <cstddef>
#include <cstdint>

#include "tensor/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    cortex::Tensor t = cortex::io::read_npy_bytes(data, size, "fuzz.npy");
    // Read every byte of the result so a tensor over bad memory would be caught.
    const auto* p = static_cast<const uint8_t*>(t.raw_data());
    unsigned sum = 0;
    for (size_t i = 0; i < static_cast<size_t>(t.numel()) * t.element_size(); ++i) sum += p[i];
    volatile unsigned sink = sum;
    (void)sink;
  } catch (const cortex::Error&) {
  }
  return 0;
}
