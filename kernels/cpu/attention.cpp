// CPU fused attention: the flash-attention schedule written with Eigen GEMMs. Each (batch, block of
// kRows query rows) computes its (kRows, Lk) slab of scores, softmax and products in a per-thread
// scratch that stays in cache, so no (Lq, Lk) matrix is ever stored and each q/k/v element is read
// from memory once per row block. The blocks run in parallel (kernels/cpu/parallel.h: fixed blocks,
// no region below its grain); the GEMMs inside a block run on one thread. docs/attention.md has the formulas and the measured CPU figures.
#include "kernels/cpu/attention.h"

// GCC 12 reports -Wmaybe-uninitialized inside its own AVX-512 intrinsics when Eigen's vectorised
// exp is inlined; a false positive (kernels/cpu/nn.cpp says the same).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/conv_gemm.h"
#include "kernels/cpu/parallel.h"

namespace cortex::kernels::cpu {
namespace {

constexpr int64_t kRows = 64;  // query rows per block: a (64, Lk) slab is 50 KB at Lk = 197, float32

template <class T> using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T> using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
using DynStride = Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>;
template <class T> using CMap = Eigen::Map<const Mat<T>, 0, DynStride>;
template <class T> using MMap = Eigen::Map<Mat<T>>;

// A (rows, cols) matrix of operand t at batch b: rows [r0, r0 + n), all columns, any strides.
struct Operand {
  const Tensor* t;
  std::vector<int64_t> off;  // element offset of each batch's matrix
  int64_t rs, cs;
};
Operand operand(const Tensor& t) {
  Operand o{&t, {}, t.stride(-2), t.stride(-1)};
  const int64_t nd = t.dim() - 2;
  int64_t nb = 1;
  for (int64_t i = 0; i < nd; ++i) nb *= t.size(i);
  o.off.resize(static_cast<size_t>(nb));
  for (int64_t b = 0; b < nb; ++b) {
    int64_t rem = b, off = 0;
    for (int64_t i = nd - 1; i >= 0; --i) {
      off += (rem % t.size(i)) * t.stride(i);
      rem /= t.size(i);
    }
    o.off[static_cast<size_t>(b)] = off;
  }
  return o;
}
template <class T>
CMap<T> rows(const Operand& o, int64_t b, int64_t r0, int64_t n) {
  const T* p = o.t->template data<T>() + o.off[static_cast<size_t>(b)] + r0 * o.rs;
  return CMap<T>(p, n, o.t->size(-1), DynStride(o.rs, o.cs));
}

// P = exp(S - rowmax) / rowsum in place; returns lse per row.
template <class T>
void softmax_rows(Mat<T>& S, Vec<T>& lse) {
  lse.resize(S.rows());
  for (int64_t r = 0; r < S.rows(); ++r) {
    auto row = S.row(r).array();
    const T m = row.maxCoeff();
    row = (row - m).exp();
    const T l = row.sum();
    row /= l;
    lse(r) = m + std::log(l);
  }
}

#ifdef CORTEX_GEMM_AVX512
// softmax_rows for float32 on AVX-512, with the scores' scale s applied first: the rows' last
// partial vector (197 = 12 x 16 + 5) masked instead of left to Eigen's scalar expf (6% of the
// B = 8 forward in expf alone), and one multiply by 1 / rowsum instead of a division per element. The row sum is a
// 16-lane sum, then the lanes in a fixed order: the same for any thread count.
void softmax_rows_f32(float* S, int64_t n, int64_t cols, float s, float* lse) {
  using Eigen::internal::pexp;
  const __m512 vs = _mm512_set1_ps(s), ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const int64_t full = cols / 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (cols % 16)) - 1u);
  for (int64_t r = 0; r < n; ++r) {
    float* x = S + r * cols;
    __m512 mx = ninf;
    for (int64_t j = 0; j < full; ++j) {
      const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + 16 * j), vs);
      _mm512_storeu_ps(x + 16 * j, v);
      mx = _mm512_max_ps(mx, v);
    }
    if (tail) {
      const __m512 v = _mm512_mul_ps(_mm512_mask_loadu_ps(ninf, tail, x + 16 * full), vs);
      _mm512_mask_storeu_ps(x + 16 * full, tail, v);
      mx = _mm512_mask_max_ps(mx, tail, mx, v);
    }
    const float m = _mm512_reduce_max_ps(mx);
    const __m512 vm = _mm512_set1_ps(m);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < full; ++j) {
      const __m512 e = pexp(_mm512_sub_ps(_mm512_loadu_ps(x + 16 * j), vm));
      _mm512_storeu_ps(x + 16 * j, e);
      sum = _mm512_add_ps(sum, e);
    }
    if (tail) {
      const __m512 e = pexp(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + 16 * full), vm));
      _mm512_mask_storeu_ps(x + 16 * full, tail, e);
      sum = _mm512_mask_add_ps(sum, tail, sum, e);
    }
    const float l = _mm512_reduce_add_ps(sum);
    const __m512 inv = _mm512_set1_ps(1.0f / l);
    for (int64_t j = 0; j < full; ++j) _mm512_storeu_ps(x + 16 * j, _mm512_mul_ps(_mm512_loadu_ps(x + 16 * j), inv));
    if (tail) _mm512_mask_storeu_ps(x + 16 * full, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + 16 * full), inv));
    lse[r] = m + std::log(l);
  }
}
#elif defined(CORTEX_CONV_GEMM)
// The same on AVX2: each 16 columns as two 8-lane halves, so that the row sum is the AVX-512
// kernel's 16 lane sums, then those lanes added in _mm512_reduce_add_ps's order (8 + 8, 4 + 4,
// 2 + 2, 1 + 1). Fixed for any thread count either way.
void softmax_rows_f32(float* S, int64_t n, int64_t cols, float s, float* lse) {
  using Eigen::internal::pexp;
  const __m256 vs = _mm256_set1_ps(s), ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  const int64_t full = cols / 16, tail = cols % 16;
  const __m256i mask[2] = {conv_gemm::lane_mask8(tail), conv_gemm::lane_mask8(tail - 8)};
  for (int64_t r = 0; r < n; ++r) {
    float* x = S + r * cols;
    __m256 mx[2] = {ninf, ninf};
    for (int64_t j = 0; j < full; ++j)
      for (int h = 0; h < 2; ++h) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 16 * j + 8 * h), vs);
        _mm256_storeu_ps(x + 16 * j + 8 * h, v);
        mx[h] = _mm256_max_ps(mx[h], v);
      }
    if (tail)
      for (int h = 0; h < 2; ++h) {
        float* p = x + 16 * full + 8 * h;
        const __m256 v = _mm256_mul_ps(_mm256_maskload_ps(p, mask[h]), vs);
        _mm256_maskstore_ps(p, mask[h], v);
        mx[h] = _mm256_blendv_ps(mx[h], _mm256_max_ps(mx[h], v), _mm256_castsi256_ps(mask[h]));
      }
    const __m256 m8 = _mm256_max_ps(mx[0], mx[1]);
    const __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
    const __m128 m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    const float m = std::max(_mm_cvtss_f32(m2), _mm_cvtss_f32(_mm_shuffle_ps(m2, m2, 1)));
    const __m256 vm = _mm256_set1_ps(m);
    __m256 sum[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t j = 0; j < full; ++j)
      for (int h = 0; h < 2; ++h) {
        const __m256 e = pexp(_mm256_sub_ps(_mm256_loadu_ps(x + 16 * j + 8 * h), vm));
        _mm256_storeu_ps(x + 16 * j + 8 * h, e);
        sum[h] = _mm256_add_ps(sum[h], e);
      }
    if (tail)
      for (int h = 0; h < 2; ++h) {
        float* p = x + 16 * full + 8 * h;
        const __m256 e = pexp(_mm256_sub_ps(_mm256_maskload_ps(p, mask[h]), vm));
        _mm256_maskstore_ps(p, mask[h], e);
        sum[h] = _mm256_blendv_ps(sum[h], _mm256_add_ps(sum[h], e), _mm256_castsi256_ps(mask[h]));
      }
    const __m256 s8 = _mm256_add_ps(sum[1], sum[0]);
    const __m128 s4 = _mm_add_ps(_mm256_extractf128_ps(s8, 1), _mm256_castps256_ps128(s8));
    const __m128 s2 = _mm_add_ps(s4, _mm_shuffle_ps(s4, s4, _MM_SHUFFLE(1, 0, 3, 2)));
    const float l = _mm_cvtss_f32(s2) + _mm_cvtss_f32(_mm_shuffle_ps(s2, s2, 1));
    const __m256 inv = _mm256_set1_ps(1.0f / l);
    for (int64_t j = 0; j < 2 * full; ++j) _mm256_storeu_ps(x + 8 * j, _mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), inv));
    if (tail)
      for (int h = 0; h < 2; ++h) {
        float* p = x + 16 * full + 8 * h;
        _mm256_maskstore_ps(p, mask[h], _mm256_mul_ps(_mm256_maskload_ps(p, mask[h]), inv));
      }
    lse[r] = m + std::log(l);
  }
}
#endif

// Whether forward() runs T on the packed kernel (float32 where conv_gemm.h has it: AVX-512 or AVX2).
template <class T>
constexpr bool packed_float() {
#ifdef CORTEX_CONV_GEMM
  return std::is_same_v<T, float>;
#else
  return false;
#endif
}

// Query rows per block on the packed kernel: a slab of scores of at most 64 K floats (256 KB, in
// L2), a multiple of 16, at most 112 rows. ViT's 197 queries in blocks of 112 and 85: in blocks of
// 64, 1.18 ms per image alone (more narrow strips); in one block per head, 1.07 ms alone but
// ViT-B/16 at batch 1 on two threads 126 ms against 121 ms with 112 (12 tasks for 2 threads).
int64_t packed_block_rows(int64_t Lk) {
  return std::clamp<int64_t>((int64_t{1} << 16) / std::max<int64_t>(Lk, 1) / 16 * 16, 16, 112);
}

int64_t batch_of(const Tensor& q) { return shape_numel(Shape(q.shape().begin(), q.shape().end() - 2)); }

template <class T>
Attention forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  const Operand Q = operand(q), K = operand(k), V = operand(v);
  const int64_t NB = batch_of(q), Lq = q.size(-2), Lk = k.size(-2), Dv = v.size(-1);
  Shape os = q.shape();
  os.back() = Dv;
  Tensor out = empty(os, q.dtype());
  Shape ls(q.shape().begin(), q.shape().end() - 1);
  Tensor lse = empty(ls, q.dtype());
  T* op = out.data<T>();
  T* lp = lse.data<T>();
  const int64_t rows_per_block = packed_float<T>() ? packed_block_rows(Lk) : kRows;
  const int64_t nblk = (Lq + rows_per_block - 1) / rows_per_block;
  const T s = static_cast<T>(scale);
  const double work = double(NB) * double(Lq) * double(Lk) * double(q.size(-1) + Dv);
  parallel::for_chunks(NB * nblk, 1, work, [&](int64_t w, int64_t) {
    Mat<T> S;
    Vec<T> l;
    const int64_t b = w / nblk, r0 = (w % nblk) * rows_per_block, n = std::min(rows_per_block, Lq - r0);
#ifdef CORTEX_CONV_GEMM
    if constexpr (packed_float<T>()) {
      // float32: both products on the packed kernel (conv_gemm.h), which on AVX-512 reads k's rows
      // in place as the weight rows of S^T = k q^T (docs/attention.md has the figures).
      const int64_t D = q.size(-1);
      S.resize(n, Lk);
      const T* qb = q.data<T>() + Q.off[static_cast<size_t>(b)] + r0 * Q.rs;
      const T* kb = k.data<T>() + K.off[static_cast<size_t>(b)];
      const T* vb = v.data<T>() + V.off[static_cast<size_t>(b)];
      conv_gemm::gemm(n, Lk, D, qb, Q.rs, Q.cs, kb, K.cs, K.rs, S.data(), Lk, false);
      softmax_rows_f32(S.data(), n, Lk, s, lp + b * Lq + r0);
      conv_gemm::gemm(n, Dv, Lk, S.data(), Lk, 1, vb, V.rs, V.cs, op + (b * Lq + r0) * Dv, Dv, false);
      return;
    }
#endif
    S.noalias() = s * (rows<T>(Q, b, r0, n) * rows<T>(K, b, 0, Lk).transpose());
    softmax_rows(S, l);
    MMap<T>(op + (b * Lq + r0) * Dv, n, Dv).noalias() = S * rows<T>(V, b, 0, Lk);
    Eigen::Map<Vec<T>>(lp + b * Lq + r0, n) = l;
  });
  return {out, lse};
}

template <class T>
AttentionGrads backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        const Tensor& gout, double scale) {
  const Tensor oc = out.contiguous(), lc = lse.contiguous();
  const Operand Q = operand(q), K = operand(k), V = operand(v), G = operand(gout);
  const int64_t NB = batch_of(q), Lq = q.size(-2), Lk = k.size(-2), D = q.size(-1), Dv = v.size(-1);
  Tensor dq = empty(q.shape(), q.dtype()), dk = zeros(k.shape(), q.dtype()), dv = zeros(v.shape(), q.dtype());
  const T* opp = oc.data<T>();
  const T* lp = lc.data<T>();
  T *dqp = dq.data<T>(), *dkp = dk.data<T>(), *dvp = dv.data<T>();
  const T s = static_cast<T>(scale);
  // One batch per task: its row blocks add into the batch's dk and dv in row-block order, so nothing
  // races and the sums do not depend on the thread count.
  const double work = 2.0 * double(NB) * double(Lq) * double(Lk) * double(q.size(-1) + Dv);
  parallel::for_chunks(NB, 1, work, [&](int64_t b, int64_t) {
    Mat<T> P, dP;
    Vec<T> delta;
    {
      const auto Kb = rows<T>(K, b, 0, Lk), Vb = rows<T>(V, b, 0, Lk);
      MMap<T> dK(dkp + b * Lk * D, Lk, D), dV(dvp + b * Lk * Dv, Lk, Dv);
      for (int64_t r0 = 0; r0 < Lq; r0 += kRows) {
        const int64_t n = std::min(kRows, Lq - r0);
        const auto Qr = rows<T>(Q, b, r0, n), Gr = rows<T>(G, b, r0, n);
        const Eigen::Map<const Mat<T>> Or(opp + (b * Lq + r0) * Dv, n, Dv);
        const Eigen::Map<const Vec<T>> L(lp + b * Lq + r0, n);
        // P = exp(S - lse) recomputed; delta_i = sum_d gout_id out_id = sum_j P_ij dP_ij.
        P.noalias() = s * (Qr * Kb.transpose());
        P = (P.colwise() - L).array().exp().matrix();
        delta = (Gr.array() * Or.array()).rowwise().sum().matrix();
        dV.noalias() += P.transpose() * Gr;
        dP.noalias() = Gr * Vb.transpose();
        dP = (P.array() * (dP.colwise() - delta).array()).matrix();  // dS
        MMap<T>(dqp + (b * Lq + r0) * D, n, D).noalias() = s * (dP * Kb);
        dK.noalias() += s * (dP.transpose() * Qr);
      }
    }
  });
  return {dq, dk, dv};
}

template <class T>
AttentionJvp jvp(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& tq, const Tensor& tk,
                 const Tensor& tv, double scale) {
  const Operand Q = operand(q), K = operand(k), V = operand(v), TQ = operand(tq), TK = operand(tk), TV = operand(tv);
  const int64_t NB = batch_of(q), Lq = q.size(-2), Lk = k.size(-2), Dv = v.size(-1);
  Shape os = q.shape();
  os.back() = Dv;
  Tensor out = empty(os, q.dtype()), tout = empty(os, q.dtype());
  T *op = out.data<T>(), *tp = tout.data<T>();
  const int64_t nblk = (Lq + kRows - 1) / kRows;
  const T s = static_cast<T>(scale);
  const double work = 3.0 * double(NB) * double(Lq) * double(Lk) * double(q.size(-1) + Dv);
  parallel::for_chunks(NB * nblk, 1, work, [&](int64_t w, int64_t) {
    Mat<T> P, tS;
    Vec<T> l, c;
    {
      const int64_t b = w / nblk, r0 = (w % nblk) * kRows, n = std::min(kRows, Lq - r0);
      const auto Qr = rows<T>(Q, b, r0, n), Kb = rows<T>(K, b, 0, Lk), Vb = rows<T>(V, b, 0, Lk);
      P.noalias() = s * (Qr * Kb.transpose());
      tS.noalias() = s * (rows<T>(TQ, b, r0, n) * Kb.transpose());
      tS.noalias() += s * (Qr * rows<T>(TK, b, 0, Lk).transpose());
      softmax_rows(P, l);
      // tout = (P . tS) V + P tV - (rowsum P . tS) out.
      tS = (P.array() * tS.array()).matrix();
      c = tS.rowwise().sum();
      MMap<T> O(op + (b * Lq + r0) * Dv, n, Dv), tO(tp + (b * Lq + r0) * Dv, n, Dv);
      O.noalias() = P * Vb;
      tO.noalias() = tS * Vb;
      tO.noalias() += P * rows<T>(TV, b, 0, Lk);
      tO -= (O.array().colwise() * c.array()).matrix();
    }
  });
  return {out, tout};
}

}  // namespace

Attention attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  return dispatch_float(q.dtype(), "attention_forward", [&](auto tag) { return forward<decltype(tag)>(q, k, v, scale); });
}

AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                  const Tensor& lse, const Tensor& gout, double scale) {
  return dispatch_float(q.dtype(), "attention_backward",
                        [&](auto tag) { return backward<decltype(tag)>(q, k, v, out, lse, gout, scale); });
}

AttentionJvp attention_jvp(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& tq, const Tensor& tk,
                           const Tensor& tv, double scale) {
  return dispatch_float(q.dtype(), "attention_jvp",
                        [&](auto tag) { return jvp<decltype(tag)>(q, k, v, tq, tk, tv, scale); });
}

}  // namespace cortex::kernels::cpu
