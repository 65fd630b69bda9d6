// The tensor layer's device work on CUDA and the emulated CUDA device: strided copies with dtype
// conversion (copy_, clone, contiguous, to(dtype)), fill, arange, linspace, and Philox uniform
// and normal numbers. tensor/ may not call kernels/, so these are not ops of kernels/ops.def: the
// static initialiser at the bottom puts them in tensor/device_ops.h's table for this file's
// device (emu in the host build, cuda in the nvcc build), with kernels' fallback counter.
//
// Every value is computed as the CPU computes it: the conversions below repeat tensor.cpp's
// convert (float -> bfloat16/float16 round to nearest even, NaN kept; float -> integer truncates;
// anything -> bool is `!= 0`), and arange/linspace/rand/randn call the same per-element functions
// as the CPU (tensor/ramp.h, tensor/random.h). Element i of a random draw depends only on
// (seed, offset, i), never on the grid. On the emulated device every result is the CPU's bit for
// bit. On a GPU so are copies, fills, ramps and rand (integer Philox, exact scaling; nvcc contracts
// `a + b * c` into an fma as the host compiler does on an FMA CPU, the default -march=native);
// randn's log/sin/cos come from CUDA's libm, within 1 ulp of glibc's, so a float64 normal may
// differ from the CPU's in its last bit.
#include <cstring>
#include <type_traits>

#include "kernels/dispatch.h"
#include "tensor/device_ops.h"
#include "tensor/ramp.h"
#include "tensor/random.h"
// (last: see common.cuh)
#include "kernels/cuda/common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

// The 16-bit float storage types as the kernels see them (tensor/dtype.h's bfloat16 and float16
// convert on the host only).
struct bf16_t { uint16_t bits; };
struct f16_t { uint16_t bits; };
template <class T>
constexpr bool is_half_v = std::is_same_v<T, bf16_t> || std::is_same_v<T, f16_t>;

__host__ __device__ __forceinline__ uint32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
__host__ __device__ __forceinline__ float bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// tensor/dtype.h's bfloat16(float).
__host__ __device__ __forceinline__ bf16_t to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {static_cast<uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return {static_cast<uint16_t>(u >> 16)};
}
__host__ __device__ __forceinline__ float to_float(bf16_t h) { return bits_float(static_cast<uint32_t>(h.bits) << 16); }

// tensor.cpp's float16(float).
__host__ __device__ __forceinline__ f16_t to_f16(float f) {
  const uint32_t x = float_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return {static_cast<uint16_t>(sign | 0x7e00u)};   // NaN
  if (absx >= 0x47800000u) return {static_cast<uint16_t>(sign | 0x7c00u)};  // overflow -> inf
  if (absx < 0x38800000u) {  // subnormal or zero: value = m * 2^-24, m rounded to nearest even
    const float a = bits_float(absx);
    return {static_cast<uint16_t>(sign | static_cast<uint32_t>(rintf(a * 16777216.0f)))};
  }
  const uint32_t mant = absx & 0x7fffffu;
  const uint32_t exp = (absx >> 23) - 112;
  uint32_t h = (exp << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent
  return {static_cast<uint16_t>(sign | h)};
}
__host__ __device__ __forceinline__ float to_float(f16_t h) {
  const uint32_t sign = (static_cast<uint32_t>(h.bits) & 0x8000u) << 16;
  const uint32_t exp = (h.bits >> 10) & 0x1fu;
  const uint32_t mant = h.bits & 0x3ffu;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;  // mant * 2^-24, exact
    return sign ? -v : v;
  }
  if (exp == 31) return bits_float(sign | 0x7f800000u | (mant << 13));
  return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
}

// tensor.cpp's convert<D>(S): the half types go through float.
template <class D, class S>
__host__ __device__ __forceinline__ D convert(S s) {
  if constexpr (is_half_v<S>) {
    return convert<D>(to_float(s));
  } else if constexpr (std::is_same_v<D, bf16_t>) {
    return to_bf16(static_cast<float>(s));
  } else if constexpr (std::is_same_v<D, f16_t>) {
    return to_f16(static_cast<float>(s));
  } else if constexpr (std::is_same_v<D, bool>) {
    return s != S(0);
  } else {
    return static_cast<D>(s);
  }
}

// dst[i] = convert(src[i]) for strided dst and src of one shape (src may be a broadcast view).
template <class D, class S>
__global__ void copy_kernel(D* __restrict__ dst, const S* __restrict__ src, Indexer ix, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  dst[ix.offset(0, i)] = convert<D>(src[ix.offset(1, i)]);
}

template <class D>
__global__ void fill_kernel(D* __restrict__ dst, Indexer ix, int64_t n, D value) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  dst[ix.offset(0, i)] = value;
}

template <class D>
__global__ void arange_kernel(D* __restrict__ dst, int64_t n, double start, double step) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  dst[i] = convert<D>(arange_value(start, step, i));
}

template <class D>
__global__ void linspace_kernel(D* __restrict__ dst, int64_t n, double start, double stop) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  dst[i] = convert<D>(linspace_value(start, stop, n, i));
}

// rand: float32 results that round up to `high` become the float below it, as on the CPU.
template <class D>
__global__ void uniform_kernel(D* __restrict__ dst, int64_t n, uint64_t seed, uint64_t base, double low,
                               double high) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const double v = philox_uniform_value(seed, base, i, low, high);
  if constexpr (std::is_same_v<D, float>) {
    const float f = static_cast<float>(v), h = static_cast<float>(high);
    dst[i] = f >= h ? nextafterf(h, static_cast<float>(low)) : f;
  } else {
    dst[i] = v;
  }
}

template <class D>
__global__ void normal_kernel(D* __restrict__ dst, int64_t n, uint64_t seed, uint64_t base, double mean,
                              double std) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  dst[i] = static_cast<D>(philox_normal_value(seed, base, i, mean, std));
}

// Calls f(T{}) with T the kernels' storage type of dt.
template <class F>
void dispatch_storage(DType dt, F&& f) {
  switch (dt) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::BFloat16: return f(bf16_t{});
    case DType::Float16: return f(f16_t{});
    case DType::Int32: return f(int32_t{});
    case DType::Int64: return f(int64_t{});
    case DType::UInt8: return f(uint8_t{});
    case DType::Bool: return f(bool{});
  }
  throw Error("tensor ops: unknown dtype");
}

void tensor_copy(const Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (dst.dim() > kMaxDims) {  // more dims than an Indexer holds: one copy per leading index
    for (int64_t i = 0; i < dst.size(0); ++i) tensor_copy(dst.select(0, i), src.select(0, i));
    return;
  }
  const Indexer ix = make_indexer<2>(dst.shape(), {&dst, &src});
  dispatch_storage(dst.dtype(), [&](auto d) {
    using D = decltype(d);
    dispatch_storage(src.dtype(), [&](auto s) {
      using S = decltype(s);
      CORTEX_LAUNCH((copy_kernel<D, S>), blocks_for(n), kBlock, 0, stream(), static_cast<D*>(dst.raw_data()),
                    static_cast<const S*>(src.raw_data()), ix, n);
    });
  });
}

void tensor_fill(const Tensor& dst, double value) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (dst.dim() > kMaxDims) {
    for (int64_t i = 0; i < dst.size(0); ++i) tensor_fill(dst.select(0, i), value);
    return;
  }
  const Indexer ix = make_indexer<1>(dst.shape(), {&dst});
  dispatch_storage(dst.dtype(), [&](auto d) {
    using D = decltype(d);
    CORTEX_LAUNCH(fill_kernel<D>, blocks_for(n), kBlock, 0, stream(), static_cast<D*>(dst.raw_data()), ix, n,
                  convert<D>(value));
  });
}

void tensor_arange(const Tensor& dst, double start, double step) {
  const int64_t n = dst.numel();
  CORTEX_CHECK(dst.is_contiguous(), "arange: expects a contiguous output");
  if (n == 0) return;
  dispatch_storage(dst.dtype(), [&](auto d) {
    using D = decltype(d);
    CORTEX_LAUNCH(arange_kernel<D>, blocks_for(n), kBlock, 0, stream(), static_cast<D*>(dst.raw_data()), n, start,
                  step);
  });
}

void tensor_linspace(const Tensor& dst, double start, double stop) {
  const int64_t n = dst.numel();
  CORTEX_CHECK(dst.is_contiguous(), "linspace: expects a contiguous output");
  if (n == 0) return;
  dispatch_storage(dst.dtype(), [&](auto d) {
    using D = decltype(d);
    CORTEX_LAUNCH(linspace_kernel<D>, blocks_for(n), kBlock, 0, stream(), static_cast<D*>(dst.raw_data()), n, start,
                  stop);
  });
}

void tensor_philox_uniform(const Tensor& dst, uint64_t seed, uint64_t base, double low, double high) {
  const int64_t n = dst.numel();
  CORTEX_CHECK(dst.is_contiguous(), "rand: expects a contiguous output");
  if (n == 0) return;
  if (dst.dtype() == DType::Float32)
    CORTEX_LAUNCH(uniform_kernel<float>, blocks_for(n), kBlock, 0, stream(), dst.data<float>(), n, seed, base, low,
                  high);
  else
    CORTEX_LAUNCH(uniform_kernel<double>, blocks_for(n), kBlock, 0, stream(), dst.data<double>(), n, seed, base, low,
                  high);
}

void tensor_philox_normal(const Tensor& dst, uint64_t seed, uint64_t base, double mean, double std) {
  const int64_t n = dst.numel();
  CORTEX_CHECK(dst.is_contiguous(), "randn: expects a contiguous output");
  if (n == 0) return;
  if (dst.dtype() == DType::Float32)
    CORTEX_LAUNCH(normal_kernel<float>, blocks_for(n), kBlock, 0, stream(), dst.data<float>(), n, seed, base, mean,
                  std);
  else
    CORTEX_LAUNCH(normal_kernel<double>, blocks_for(n), kBlock, 0, stream(), dst.data<double>(), n, seed, base, mean,
                  std);
}

// Registers this build's kernels for its device when cortex_kernels loads.
#ifdef __CUDACC__
constexpr Device::Type kDeviceType = Device::Type::CUDA;
#else
constexpr Device::Type kDeviceType = Device::Type::EMU;
#endif
[[maybe_unused]] const bool registered = [] {
  DeviceTensorOps ops;
  ops.copy = &tensor_copy;
  ops.fill = &tensor_fill;
  ops.arange = &tensor_arange;
  ops.linspace = &tensor_linspace;
  ops.philox_uniform = &tensor_philox_uniform;
  ops.philox_normal = &tensor_philox_normal;
  ops.note_fallback = &detail::note_fallback;
  set_device_tensor_ops(kDeviceType, ops);
  return true;
}();

}  // namespace
}  // namespace cortex::kernels::CORTEX_BACKEND
