// Element types, the 16-bit float storage types, and dispatch from a runtime dtype to a C++ type.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "tensor/error.h"

namespace cortex {

enum class DType : uint8_t { Float32, Float64, BFloat16, Float16, Int32, Int64, UInt8, Bool };

size_t dtype_size(DType dt);
const char* dtype_name(DType dt);  // "float32", "bfloat16", ... (NumPy/PyTorch spelling)
DType dtype_from_name(const std::string& name);  // accepts the names above and f32/f64/bf16/f16/i32/i64/u8
inline bool is_floating(DType dt) {
  return dt == DType::Float32 || dt == DType::Float64 || dt == DType::BFloat16 || dt == DType::Float16;
}

// bfloat16: the top 16 bits of a float32; conversion rounds to nearest even, NaN stays NaN.
struct bfloat16 {
  uint16_t bits = 0;
  bfloat16() = default;
  bfloat16(float f) {  // NOLINT(implicit): behaves like a number
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      bits = static_cast<uint16_t>((u >> 16) | 0x40u);
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);
      bits = static_cast<uint16_t>(u >> 16);
    }
  }
  operator float() const {
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

// IEEE binary16. Conversion rounds to nearest even and handles subnormals, inf and NaN.
struct float16 {
  uint16_t bits = 0;
  float16() = default;
  float16(float f);  // NOLINT
  operator float() const;
};

// Calls f(T{}) with T the C++ type of dt. Use as: dispatch(dt, [&](auto t) { using T = decltype(t); ... }).
template <class F>
decltype(auto) dispatch(DType dt, F&& f) {
  switch (dt) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::BFloat16: return f(bfloat16{});
    case DType::Float16: return f(float16{});
    case DType::Int32: return f(int32_t{});
    case DType::Int64: return f(int64_t{});
    case DType::UInt8: return f(uint8_t{});
    case DType::Bool: return f(bool{});
  }
  throw Error("dispatch: unknown dtype");
}

// Compute kernels run in float32 and float64 (float64 is what the references and gradient checks use).
template <class F>
decltype(auto) dispatch_float(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    default: break;
  }
  throw Error(detail::cat(op, ": expected a float32 or float64 tensor, found ", dtype_name(dt)));
}

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }
template <> constexpr DType dtype_of<bfloat16>() { return DType::BFloat16; }
template <> constexpr DType dtype_of<float16>() { return DType::Float16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::Int32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::UInt8; }
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }

}  // namespace cortex
