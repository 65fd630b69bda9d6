// CUDA's built-in vector types for host builds of kernel sources (the emulated CUDA device).
//
// Why our own: CUDA's vector_types.h compiles with g++, but vector_functions.h drags in the CUDA
// runtime API, and the emulated device must build on machines with no toolkit at all. Under nvcc
// this header is never included (cuda_compat.h uses the toolkit's definitions). A translation unit
// that includes it must not also include <cuda_runtime.h>: the global names would clash.
#pragma once
#ifdef __CUDACC__
#error "kernels/cuda/simt/types.h is for host builds; under nvcc use the toolkit's vector types"
#endif

// Layout and alignment as CUDA's vector_types.h, so a float4 load is a 16-byte aligned load and
// reinterpret_cast<const float4*> on a misaligned pointer is the same bug on both devices.
#ifdef CORTEX_SIMT_PROFILE
// The profiling build (kernels/cuda/simt/profile.h) counts the loads and stores the compiler emits.
// A plain struct copy of a float4 is a memcpy, which clang either leaves uninstrumented or splits into
// four 4-byte loads; on a GPU it is one 128-bit access. These copies are one vector access instead.
#define CORTEX_SIMT_VECTOR_COPY(T, E, N)                                                        \
  T() = default;                                                                               \
  T(const T& o) { copy_from(o); }                                                              \
  T& operator=(const T& o) {                                                                   \
    copy_from(o);                                                                              \
    return *this;                                                                              \
  }                                                                                            \
  void copy_from(const T& o) {                                                                 \
    typedef E V __attribute__((vector_size(sizeof(E) * N), may_alias));                        \
    *reinterpret_cast<V*>(this) = *reinterpret_cast<const V*>(&o);                             \
  }
#define CORTEX_SIMT_VECTOR_CTOR2(T, E) \
  constexpr T(E a, E b) : x(a), y(b) {}
#define CORTEX_SIMT_VECTOR_CTOR4(T, E) \
  constexpr T(E a, E b, E c, E d) : x(a), y(b), z(c), w(d) {}
#else
#define CORTEX_SIMT_VECTOR_COPY(T, E, N)
#define CORTEX_SIMT_VECTOR_CTOR2(T, E)
#define CORTEX_SIMT_VECTOR_CTOR4(T, E)
#endif

struct uint3 { unsigned int x, y, z; };
struct int2 { int x, y; };
struct alignas(16) int4 {
  int x, y, z, w;
  CORTEX_SIMT_VECTOR_COPY(int4, int, 4)
  CORTEX_SIMT_VECTOR_CTOR4(int4, int)
};
struct alignas(16) uint4 {
  unsigned int x, y, z, w;
  CORTEX_SIMT_VECTOR_COPY(uint4, unsigned, 4)
  CORTEX_SIMT_VECTOR_CTOR4(uint4, unsigned)
};
struct alignas(8) float2 {
  float x, y;
  CORTEX_SIMT_VECTOR_COPY(float2, float, 2)
  CORTEX_SIMT_VECTOR_CTOR2(float2, float)
};
struct float3 { float x, y, z; };
struct alignas(16) float4 {
  float x, y, z, w;
  CORTEX_SIMT_VECTOR_COPY(float4, float, 4)
  CORTEX_SIMT_VECTOR_CTOR4(float4, float)
};
struct alignas(16) double2 {
  double x, y;
  CORTEX_SIMT_VECTOR_COPY(double2, double, 2)
  CORTEX_SIMT_VECTOR_CTOR2(double2, double)
};
#undef CORTEX_SIMT_VECTOR_COPY
#undef CORTEX_SIMT_VECTOR_CTOR2
#undef CORTEX_SIMT_VECTOR_CTOR4

// dim3 as in CUDA: unspecified dimensions are 1, and it converts from/to uint3.
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

inline constexpr int2 make_int2(int x, int y) { return int2{x, y}; }
inline constexpr int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
inline constexpr uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }
inline constexpr uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
inline constexpr float2 make_float2(float x, float y) { return float2{x, y}; }
inline constexpr float3 make_float3(float x, float y, float z) { return float3{x, y, z}; }
inline constexpr float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline constexpr double2 make_double2(double x, double y) { return double2{x, y}; }
