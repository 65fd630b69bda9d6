// Loops over the elements of N strided operands of one shape, the workhorse of the CPU kernels.
//
// A plan first merges dimensions that are contiguous in every operand and drops size-1 dimensions,
// so a contiguous tensor becomes one long row. strided_for then calls
//   f(count, base_offsets, inner_strides)
// once per inner row: `count` elements at base_offsets[k] + i * inner_strides[k] of operand k.
// Rows are split over OpenMP threads when there is enough work; each row is independent, so the
// result does not depend on the thread count.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace cortex {

template <size_t N>
struct StridedPlan {
  Shape shape;                    // after merging; at least one dim
  std::array<Shape, N> strides;   // per operand, in elements
};

template <size_t N>
StridedPlan<N> make_plan(const Shape& shape, const std::array<Shape, N>& strides) {
  StridedPlan<N> p;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !p.shape.empty();
    if (merge)
      for (size_t k = 0; k < N; ++k)
        if (p.strides[k].back() != strides[k][d] * shape[d]) merge = false;
    if (merge) {
      p.shape.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) p.strides[k].back() = strides[k][d];
    } else {
      p.shape.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) p.strides[k].push_back(strides[k][d]);
    }
  }
  if (p.shape.empty()) {
    p.shape.push_back(1);
    for (size_t k = 0; k < N; ++k) p.strides[k].push_back(0);
  }
  for (int64_t s : shape)
    if (s == 0) p.shape.assign(1, 0);  // nothing to do
  return p;
}

// Convenience: plan for tensors that all have `shape` (broadcast views have stride 0).
template <size_t N>
StridedPlan<N> make_plan(const Shape& shape, const std::array<const Tensor*, N>& ts) {
  std::array<Shape, N> st;
  for (size_t k = 0; k < N; ++k) st[k] = ts[k]->strides();
  return make_plan<N>(shape, st);
}

template <size_t N, class F>
void strided_for(const StridedPlan<N>& p, F&& f, int64_t grain = 1 << 15) {
  const int64_t nd = static_cast<int64_t>(p.shape.size());
  const int64_t inner = p.shape[nd - 1];
  if (inner == 0) return;
  int64_t outer = 1;
  for (int64_t d = 0; d + 1 < nd; ++d) outer *= p.shape[d];
  std::array<int64_t, N> inner_strides;
  for (size_t k = 0; k < N; ++k) inner_strides[k] = p.strides[k][nd - 1];
  auto row = [&](int64_t r) {
    std::array<int64_t, N> off{};
    int64_t rem = r;
    for (int64_t d = nd - 2; d >= 0; --d) {
      int64_t i = rem % p.shape[d];
      rem /= p.shape[d];
      for (size_t k = 0; k < N; ++k) off[k] += i * p.strides[k][d];
    }
    f(inner, off, inner_strides);
  };
  if (outer * inner >= grain && outer > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < outer; ++r) row(r);
  } else if (outer == 1 && inner >= 2 * grain) {
    // One long row: split it into chunks so contiguous work is parallel too.
    const int64_t chunk = grain;
    const int64_t nchunks = (inner + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nchunks; ++c) {
      std::array<int64_t, N> off;
      for (size_t k = 0; k < N; ++k) off[k] = c * chunk * inner_strides[k];
      f(std::min(chunk, inner - c * chunk), off, inner_strides);
    }
  } else {
    for (int64_t r = 0; r < outer; ++r) row(r);
  }
}

// Unravels a linear index of `shape` into the offset for `strides`.
inline int64_t offset_of(int64_t linear, const Shape& shape, const Shape& strides) {
  int64_t off = 0;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    off += (linear % shape[d]) * strides[d];
    linear /= shape[d];
  }
  return off;
}

}  // namespace cortex
