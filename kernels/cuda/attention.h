// Which fused-attention forward kernel runs on CUDA and the emulated device (kernels/cuda/attention.cu,
// docs/attention.md): version 1 (one thread per query row, two passes), 2 (one block per query row,
// online softmax) or 3 (tiled, the default). The backward and the JVP have the tiled form only.
#pragma once

namespace cortex::kernels {
inline constexpr int kAttentionVersions = 3;
}  // namespace cortex::kernels

#define CORTEX_ATTENTION_DECLARE_BACKEND(ns)                                                           \
  namespace cortex::kernels::ns {                                                                      \
  /* The forward version: set_attention_version, else env CORTEX_ATTENTION=1..3, else 3. */           \
  int attention_version();                                                                             \
  /* v: 1..3, or -1 to follow the environment again. */                                               \
  void set_attention_version(int v);                                                                   \
  }

CORTEX_ATTENTION_DECLARE_BACKEND(emu)
CORTEX_ATTENTION_DECLARE_BACKEND(cuda)
#undef CORTEX_ATTENTION_DECLARE_BACKEND
