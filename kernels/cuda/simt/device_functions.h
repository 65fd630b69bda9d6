// CUDA's device built-ins that kernels commonly use, for host builds of kernel sources (the
// emulated CUDA device). Included by kernels/cuda/cuda_compat.h; never under nvcc.
//
// The fast-math intrinsics (__expf, __fdividef, rsqrtf, ...) are computed here at full float
// precision: results can differ from a GPU's in the last few ulps, which is why tests compare
// with a tolerance against float64 references and never demand bit equality with a GPU.
#pragma once
#ifdef __CUDACC__
#error "kernels/cuda/simt/device_functions.h is for host builds; nvcc has the real built-ins"
#endif

#include <math.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>

inline constexpr int warpSize = 32;

// ---- math
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __tanhf(float x) { return tanhf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
// Clamps to [0, 1]; NaN gives 0, as on a GPU.
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f); }

// Conversions. _rn relies on the rounding mode being to-nearest-even: every fiber starts with the
// default MXCSR (kernels/cuda/simt/fiber.cpp).
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(floorf(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(ceilf(x)); }
inline unsigned __float2uint_rn(float x) { return static_cast<unsigned>(nearbyintf(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __uint2float_rn(unsigned x) { return static_cast<float>(x); }
inline int __double2int_rn(double x) { return static_cast<int>(nearbyint(x)); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }

// Bit tricks.
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return std::countl_zero(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned>(x)) + 1; }
inline int __ffsll(long long x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned long long>(x)) + 1; }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0F0F0F0Fu) | ((x & 0x0F0F0F0Fu) << 4);
  x = ((x >> 8) & 0x00FF00FFu) | ((x & 0x00FF00FFu) << 8);
  return (x >> 16) | (x << 16);
}

// CUDA's unqualified min/max overloads (device code calls min(a, b) on ints and floats).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline unsigned min(int a, unsigned b) { return min(static_cast<unsigned>(a), b); }
inline unsigned max(int a, unsigned b) { return max(static_cast<unsigned>(a), b); }
inline unsigned min(unsigned a, int b) { return min(a, static_cast<unsigned>(b)); }
inline unsigned max(unsigned a, int b) { return max(a, static_cast<unsigned>(b)); }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

// Read-only cache load: a plain load here.
template <class T>
inline T __ldg(const T* p) { return *p; }

// Memory fences. Blocks run one after another on the emulated device, so these never change a
// result there; they keep the source correct for a GPU.
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// ---- atomics: relaxed, as CUDA's atomicAdd & co are (they order nothing else), through
// std::atomic_ref so blocks on several OS threads would stay correct.
namespace cortex::simt::detail {
template <class T>
inline T atomic_add(T* p, T v) { return std::atomic_ref<T>(*p).fetch_add(v, std::memory_order_relaxed); }
template <class T>
inline T atomic_update(T* p, T v, bool (*better)(T, T)) {
  std::atomic_ref<T> a(*p);
  T old = a.load(std::memory_order_relaxed);
  while (better(v, old) && !a.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
  }
  return old;
}
template <class T>
inline T atomic_cas(T* p, T compare, T val) {
  std::atomic_ref<T>(*p).compare_exchange_strong(compare, val, std::memory_order_relaxed);
  return compare;  // the old value, whether or not it was replaced
}
template <class T>
inline bool less(T a, T b) { return a < b; }
template <class T>
inline bool greater(T a, T b) { return a > b; }
}  // namespace cortex::simt::detail

inline int atomicAdd(int* p, int v) { return cortex::simt::detail::atomic_add(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return cortex::simt::detail::atomic_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { return cortex::simt::detail::atomic_add(p, v); }
inline float atomicAdd(float* p, float v) { return cortex::simt::detail::atomic_add(p, v); }
inline double atomicAdd(double* p, double v) { return cortex::simt::detail::atomic_add(p, v); }
inline int atomicSub(int* p, int v) { return std::atomic_ref<int>(*p).fetch_sub(v, std::memory_order_relaxed); }
inline unsigned atomicSub(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_sub(v, std::memory_order_relaxed); }
inline int atomicMax(int* p, int v) { return cortex::simt::detail::atomic_update(p, v, &cortex::simt::detail::greater<int>); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return cortex::simt::detail::atomic_update(p, v, &cortex::simt::detail::greater<unsigned>); }
inline long long atomicMax(long long* p, long long v) { return cortex::simt::detail::atomic_update(p, v, &cortex::simt::detail::greater<long long>); }
inline int atomicMin(int* p, int v) { return cortex::simt::detail::atomic_update(p, v, &cortex::simt::detail::less<int>); }
inline unsigned atomicMin(unsigned* p, unsigned v) { return cortex::simt::detail::atomic_update(p, v, &cortex::simt::detail::less<unsigned>); }
inline long long atomicMin(long long* p, long long v) { return cortex::simt::detail::atomic_update(p, v, &cortex::simt::detail::less<long long>); }
inline int atomicCAS(int* p, int compare, int val) { return cortex::simt::detail::atomic_cas(p, compare, val); }
inline unsigned atomicCAS(unsigned* p, unsigned compare, unsigned val) { return cortex::simt::detail::atomic_cas(p, compare, val); }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long compare, unsigned long long val) {
  return cortex::simt::detail::atomic_cas(p, compare, val);
}
inline int atomicExch(int* p, int v) { return std::atomic_ref<int>(*p).exchange(v, std::memory_order_relaxed); }
inline unsigned atomicExch(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).exchange(v, std::memory_order_relaxed); }
inline unsigned long long atomicExch(unsigned long long* p, unsigned long long v) {
  return std::atomic_ref<unsigned long long>(*p).exchange(v, std::memory_order_relaxed);
}
inline float atomicExch(float* p, float v) { return std::atomic_ref<float>(*p).exchange(v, std::memory_order_relaxed); }
inline int atomicAnd(int* p, int v) { return std::atomic_ref<int>(*p).fetch_and(v, std::memory_order_relaxed); }
inline unsigned atomicAnd(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_and(v, std::memory_order_relaxed); }
inline int atomicOr(int* p, int v) { return std::atomic_ref<int>(*p).fetch_or(v, std::memory_order_relaxed); }
inline unsigned atomicOr(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_or(v, std::memory_order_relaxed); }
inline int atomicXor(int* p, int v) { return std::atomic_ref<int>(*p).fetch_xor(v, std::memory_order_relaxed); }
inline unsigned atomicXor(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_xor(v, std::memory_order_relaxed); }
