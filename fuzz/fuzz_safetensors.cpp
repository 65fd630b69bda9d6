// libFuzzer target: the safetensors header validation and tensor views.
#include <cstddef>
#include <cstdint>

#include "tensor/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto st = cortex::io::SafeTensors::from_bytes(data, size, "fuzz.safetensors");
    unsigned sum = 0;
    for (const auto& key : st.keys()) {
      cortex::Tensor t = st.get(key);
      const auto* p = static_cast<const uint8_t*>(t.raw_data());
      for (size_t i = 0; i < static_cast<size_t>(t.numel()) * t.element_size(); ++i) sum += p[i];
    }
    for (const auto& [k, v] : st.metadata()) sum += static_cast<unsigned>(k.size() + v.size());
    volatile unsigned sink = sum;
    (void)sink;
  } catch (const cortex::Error&) {
  }
  return 0;
}
