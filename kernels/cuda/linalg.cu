// Dense linear algebra on CUDA and the emulated CUDA device (kernels/cuda/common.cuh says how one
// source serves both): cholesky and cholesky_solve, batched over leading dims, float32 and
// float64, any n. The symmetric eigensolver, svd, qr and solve have no kernel here: on emu they run
// the CPU kernel, counted as fallbacks (kernels/dispatch.h); on a GPU, eigh, eigh_topk and large
// Choleskys go to cuSOLVER (kernels/cuda/vendor/cusolver.h) after this file's input checks.
//
// cholesky: one block per matrix, right-looking and unblocked. The block first checks its matrix
// as the CPU kernel does (finite values; symmetric to 1e-4 (float32) or 1e-8 (float64) of max |a|)
// and writes the symmetrised lower triangle, (a_ij + a_ji) / 2, into the result. Then, column j at
// a time: thread 0 takes the square root of the pivot (a pivot that is not > 0 stops the block),
// the threads scale the column below it, and the threads update the trailing lower triangle
// row by row. 3n barriers per matrix; every element is written by one thread in a fixed order, so
// the result is the same in every schedule order. It is not Eigen's blocked LLT, so it matches
// the CPU to rounding, not bit for bit (tests/test_cuda_linalg.cpp bounds the difference).
// Errors are a status per matrix read back once, then the CPU kernel's one-line message.
//
// cholesky_solve: one thread per right-hand side column (grid (batch, columns / 128)), forward
// substitution l y = b then back substitution l^T x = y, each in float T in the CPU's order of
// terms per row. No barrier: the threads share only l, read-only (on a GPU, every lane of a warp
// reads the same element of l: one broadcast transaction; x is read and written coalesced).
// A check kernel before (finite l and b, non-zero diagonal) and a flag after (non-finite result)
// give the CPU's errors.
#include <cmath>

#include "kernels/linalg.h"
#if defined(__CUDACC__)
#include "kernels/cuda/vendor/cusolver.h"
#endif
// (last: see common.cuh)
#include "kernels/cuda/common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

constexpr unsigned kCholThreads = 256;
constexpr unsigned kSolveThreads = 128;

// Status per matrix (int32).
enum : int { kOk = 0, kNonFinite = 1, kAsymmetric = 2, kNotDefinite = 3, kNonFiniteB = 4, kZeroDiag = 5, kOverflow = 6 };

// The strides of a (rows, cols) matrix inside a batch, the batch offsets given by an Indexer.
struct Mat {
  int64_t rs, cs;
};

template <class T>
__device__ __forceinline__ bool finite(T v) {
  return v - v == T(0);  // false for NaN and +-Inf
}

// Threads for n rows: a power of two (the tree reductions halve it) from one warp to `cap`.
unsigned threads_for(int64_t n, unsigned cap) {
  unsigned t = 32;
  while (t < cap && t < n) t *= 2;
  return t;
}

// One block per matrix b = blockIdx.x: the checks, the symmetrised lower triangle into l (a
// contiguous (batch, n, n) result), then the factorisation in place. info[2b] and info[2b + 1]
// get |a - a^T| and max |a| for the asymmetry message.
// kFactor false: the checks and the symmetrised lower triangle only (the input of cuSOLVER, which
// reads that triangle as the column-major upper one).
template <class T, bool kFactor>
__global__ void cholesky_kernel(const T* __restrict__ a, Indexer ix, Mat as, int64_t n, T* __restrict__ l,
                                int* __restrict__ status, T* __restrict__ info) {
  __shared__ T s_max[kCholThreads];
  __shared__ T s_asym[kCholThreads];
  __shared__ int s_bad[kCholThreads];
  __shared__ int s_stop;
  const int64_t b = blockIdx.x;
  const unsigned tid = threadIdx.x, nt = blockDim.x;
  const T* ap = a + ix.offset(0, b);
  T* lp = l + b * n * n;

  // Checks: every element finite, |a_ij - a_ji| <= tol * max |a|.
  T mx = 0, asym = 0;
  int bad = 0;
  for (int64_t e = tid; e < n * n; e += nt) {
    const int64_t i = e / n, j = e % n;
    const T v = ap[i * as.rs + j * as.cs];
    if (!finite(v)) bad = 1;
    mx = fmax(mx, fabs(v));
    asym = fmax(asym, fabs(v - ap[j * as.rs + i * as.cs]));
  }
  s_max[tid] = mx;
  s_asym[tid] = asym;
  s_bad[tid] = bad;
  __syncthreads();
  for (unsigned s = nt / 2; s > 0; s >>= 1) {
    if (tid < s) {
      s_max[tid] = fmax(s_max[tid], s_max[tid + s]);
      s_asym[tid] = fmax(s_asym[tid], s_asym[tid + s]);
      s_bad[tid] |= s_bad[tid + s];
    }
    __syncthreads();
  }
  const T scale = s_max[0];
  const T tol = (sizeof(T) == 4 ? T(1e-4) : T(1e-8)) * scale;
  if (s_bad[0] || s_asym[0] > tol) {
    if (tid == 0) {
      status[b] = s_bad[0] ? kNonFinite : kAsymmetric;
      info[2 * b] = s_asym[0];
      info[2 * b + 1] = scale;
    }
    return;  // uniform: every thread read the same shared values
  }

  // The symmetrised lower triangle, zeros above.
  for (int64_t e = tid; e < n * n; e += nt) {
    const int64_t i = e / n, j = e % n;
    lp[e] = j > i ? T(0) : (ap[i * as.rs + j * as.cs] + ap[j * as.rs + i * as.cs]) / T(2);
  }
  if (!kFactor) {
    if (tid == 0) status[b] = kOk;
    return;
  }
  if (tid == 0) s_stop = 0;
  __syncthreads();

  for (int64_t j = 0; j < n; ++j) {
    if (tid == 0) {
      const T d = lp[j * n + j];
      if (!(d > T(0))) s_stop = 1;  // also NaN
      else lp[j * n + j] = sqrt(d);
    }
    __syncthreads();
    if (s_stop) {
      if (tid == 0) status[b] = kNotDefinite;
      return;
    }
    const T djj = lp[j * n + j];
    for (int64_t i = j + 1 + tid; i < n; i += nt) lp[i * n + j] /= djj;
    __syncthreads();
    // Trailing update of the lower triangle: l_rc -= l_rj l_cj for j < c <= r; the threads take
    // the columns of each row, so writes are contiguous.
    for (int64_t r = j + 1; r < n; ++r) {
      const T lrj = lp[r * n + j];
      for (int64_t c = j + 1 + tid; c <= r; c += nt) lp[r * n + c] -= lrj * lp[c * n + j];
    }
    __syncthreads();
  }
  if (tid == 0) status[b] = kOk;
}

// One block per (l, b) pair: finite l (all of it, as the CPU reads it), finite b, non-zero diagonal.
template <class T>
__global__ void solve_check_kernel(const T* __restrict__ l, const T* __restrict__ rhs, Indexer ix, Mat ls, Mat bs,
                                   int64_t n, int64_t k, int* __restrict__ status) {
  __shared__ int s_flag[kCholThreads];
  const int64_t b = blockIdx.x;
  const unsigned tid = threadIdx.x, nt = blockDim.x;
  const T* lp = l + ix.offset(0, b);
  const T* bp = rhs + ix.offset(1, b);
  int flag = 0;  // bit 0: l non-finite, bit 1: b non-finite, bit 2: zero diagonal
  for (int64_t e = tid; e < n * n; e += nt)
    if (!finite(lp[(e / n) * ls.rs + (e % n) * ls.cs])) flag |= 1;
  for (int64_t e = tid; e < n * k; e += nt)
    if (!finite(bp[(e / k) * bs.rs + (e % k) * bs.cs])) flag |= 2;
  for (int64_t i = tid; i < n; i += nt)
    if (lp[i * ls.rs + i * ls.cs] == T(0)) flag |= 4;
  s_flag[tid] = flag;
  __syncthreads();
  for (unsigned s = nt / 2; s > 0; s >>= 1) {
    if (tid < s) s_flag[tid] |= s_flag[tid + s];
    __syncthreads();
  }
  if (tid == 0) {
    const int f = s_flag[0];
    status[b] = (f & 1) ? kNonFinite : (f & 2) ? kNonFiniteB : (f & 4) ? kZeroDiag : kOk;
  }
}

// x = (l l^T)^-1 b, column j = blockIdx.y * blockDim.x + threadIdx.x of matrix blockIdx.x; x is
// a contiguous (batch, n, k) result. A non-finite result sets status[batch] to kOverflow.
template <class T>
__global__ void cholesky_solve_kernel(const T* __restrict__ l, const T* __restrict__ rhs, Indexer ix, Mat ls, Mat bs,
                                      int64_t n, int64_t k, T* __restrict__ x, int* __restrict__ status) {
  const int64_t j = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  const int64_t b = blockIdx.x;
  if (j >= k) return;
  const T* lp = l + ix.offset(0, b);
  const T* bp = rhs + ix.offset(1, b);
  T* xp = x + b * n * k + j;
  // l y = b: y_i = (b_i - sum_{p<i} l_ip y_p) / l_ii
  for (int64_t i = 0; i < n; ++i) {
    T s = bp[i * bs.rs + j * bs.cs];
    for (int64_t p = 0; p < i; ++p) s -= lp[i * ls.rs + p * ls.cs] * xp[p * k];
    xp[i * k] = s / lp[i * ls.rs + i * ls.cs];
  }
  // l^T x = y: x_i = (y_i - sum_{p>i} l_pi x_p) / l_ii
  bool ok = true;
  for (int64_t i = n - 1; i >= 0; --i) {
    T s = xp[i * k];
    for (int64_t p = i + 1; p < n; ++p) s -= lp[p * ls.rs + i * ls.cs] * xp[p * k];
    s /= lp[i * ls.rs + i * ls.cs];
    ok = ok && finite(s);
    xp[i * k] = s;
  }
  if (!ok) atomicMax(status + b, static_cast<int>(kOverflow));
}

// The batch dims of a (..., r, c) tensor (r, c given) and their strides.
Shape batch_shape(const Tensor& t, int64_t mdims) { return Shape(t.shape().begin(), t.shape().end() - mdims); }
Shape batch_strides(const Tensor& t, int64_t mdims) { return Shape(t.strides().begin(), t.strides().end() - mdims); }

int64_t count_of(const Shape& s) {
  int64_t c = 1;
  for (int64_t v : s) c *= v;
  return c;
}

// The first non-zero status of a (batch) int32 device tensor, read back once.
int first_status(const Tensor& status, int64_t* which) {
  const Tensor h = status.to(Device::cpu());
  const int* p = h.data<int32_t>();
  for (int64_t i = 0; i < h.numel(); ++i)
    if (p[i] != kOk) {
      *which = i;
      return p[i];
    }
  return kOk;
}

// The CPU kernel's errors for the check statuses of cholesky_kernel (op: cholesky, eigh, eigh_topk).
void throw_status(const char* op, int st, int64_t which, const Tensor& info) {
  switch (st) {
    case kNonFinite: throw Error(std::string(op) + ": expected finite values in a, found NaN or Inf");
    case kAsymmetric: {
      const Tensor h = info.to(Device::cpu()).to(DType::Float64);
      CORTEX_CHECK(false, op, ": expected a symmetric matrix, found |a - a^T| up to ", h.data<double>()[2 * which],
                   " (max |a| ", h.data<double>()[2 * which + 1], ")");
      break;
    }
    case kNotDefinite:
      throw Error(std::string(op) + ": expected a symmetric positive definite matrix, found a non-positive pivot");
    default: break;
  }
}

// Launches cholesky_kernel over every matrix of a (..., n, n) into l (contiguous, same shape) and
// throws the CPU's error for the first matrix that fails.
template <class T, bool kFactor>
void run_cholesky(const Tensor& a, Tensor& l, const char* op) {
  const int64_t n = a.size(-1);
  const Shape bshape = batch_shape(a, 2);
  const int64_t batch = count_of(bshape);
  Tensor status = zeros({batch}, DType::Int32, a.device());
  Tensor info = zeros({batch, 2}, a.dtype(), a.device());
  const Indexer ix = make_indexer<1>(bshape, std::array<Shape, 1>{batch_strides(a, 2)});
  CORTEX_CHECK(batch <= 2147483647, op, ": ", batch, " matrices need more blocks than a grid holds");
  CORTEX_LAUNCH((cholesky_kernel<T, kFactor>), static_cast<unsigned>(batch), threads_for(n, kCholThreads), 0, stream(),
                static_cast<const T*>(a.raw_data()), ix, Mat{a.stride(-2), a.stride(-1)}, n,
                static_cast<T*>(l.raw_data()), static_cast<int*>(status.raw_data()),
                static_cast<T*>(info.raw_data()));
  int64_t which = 0;
  throw_status(op, first_status(status, &which), which, info);
}

unsigned grid_count(int64_t n, const char* op) {
  CORTEX_CHECK(n <= 2147483647, op, ": ", n, " matrices need more blocks than a grid holds");
  return static_cast<unsigned>(n);
}

}  // namespace

// On a GPU, matrices from kVendorCholesky rows go to cuSOLVER's blocked potrf (one block per
// matrix is slow there at large n); the emulated device always runs the kernel.
constexpr int64_t kVendorCholesky = 128;

Tensor cholesky(const Tensor& a) {
  const int64_t n = a.size(-1);
  const int64_t batch = count_of(batch_shape(a, 2));
  Tensor l = empty(a.shape(), a.dtype(), a.device());
  if (batch == 0 || n == 0) return l;
  dispatch_float(a.dtype(), "cholesky", [&](auto tag) {
    using T = decltype(tag);
#if defined(__CUDACC__)
    if (n >= kVendorCholesky) {
      run_cholesky<T, false>(a, l, "cholesky");
      T* lp = static_cast<T*>(l.raw_data());
      for (int64_t b = 0; b < batch; ++b)
        CORTEX_CHECK(vendor::potrf_lower(lp + b * n * n, n) == 0,
                     "cholesky: expected a symmetric positive definite matrix, found a non-positive pivot");
      return;
    }
#endif
    run_cholesky<T, true>(a, l, "cholesky");
  });
  return l;
}

Tensor cholesky_solve(const Tensor& l, const Tensor& b) {
  const int64_t n = l.size(-1);
  const Shape bshape = batch_shape(l, 2);
  const int64_t batch = count_of(bshape);
  const bool vec = b.dim() == l.dim() - 1;
  const int64_t k = vec ? 1 : b.size(-1);
  if (batch == 0 || n == 0 || k == 0) return zeros(b.shape(), b.dtype(), b.device());
  Tensor x = empty(b.shape(), b.dtype(), b.device());
  // b as (..., n, k): a vector right-hand side is one column.
  const Mat ls{l.stride(-2), l.stride(-1)};
  const Mat bs{vec ? b.stride(-1) : b.stride(-2), vec ? 0 : b.stride(-1)};
  const Indexer ix = make_indexer<2>(bshape, std::array<Shape, 2>{batch_strides(l, 2), batch_strides(b, vec ? 1 : 2)});
  Tensor status = zeros({batch}, DType::Int32, l.device());
  const unsigned nb = grid_count(batch, "cholesky_solve");
  dispatch_float(l.dtype(), "cholesky_solve", [&](auto tag) {
    using T = decltype(tag);
    const T* lp = static_cast<const T*>(l.raw_data());
    const T* bp = static_cast<const T*>(b.raw_data());
    CORTEX_LAUNCH(solve_check_kernel<T>, nb, threads_for(n, kCholThreads), 0, stream(), lp, bp, ix, ls, bs, n, k,
                  static_cast<int*>(status.raw_data()));
  });
  int64_t which = 0;
  switch (first_status(status, &which)) {
    case kNonFinite: throw Error("cholesky_solve: expected finite values in l, found NaN or Inf");
    case kNonFiniteB: throw Error("cholesky_solve: expected finite values in b, found NaN or Inf");
    case kZeroDiag:
      throw Error("cholesky_solve: expected a factor with a non-zero diagonal, found a zero (singular)");
    default: break;
  }
  dispatch_float(l.dtype(), "cholesky_solve", [&](auto tag) {
    using T = decltype(tag);
    CORTEX_LAUNCH(cholesky_solve_kernel<T>, dim3(nb, blocks_for(k, kSolveThreads)), kSolveThreads, 0, stream(),
                  static_cast<const T*>(l.raw_data()), static_cast<const T*>(b.raw_data()), ix, ls, bs, n, k,
                  static_cast<T*>(x.raw_data()), static_cast<int*>(status.raw_data()));
  });
  CORTEX_CHECK(first_status(status, &which) == kOk,
               "cholesky_solve: the solution overflowed (factor too close to singular)");
  return x;
}

#if defined(__CUDACC__)
// ---- eigh and eigh_topk on a GPU: cuSOLVER (no emulation: on emu these ops run the CPU kernel) ----
namespace {

// vectors[:, j] = +-row src(j) of v (cuSOLVER's eigenvectors, one per row), values[j] = w[src(j)],
// src(j) = m - 1 - j when `reverse` (the k largest, descending) else j. The sign is the CPU's
// (kernels/cpu/linalg.cpp fix_signs): the column sum positive, or when the sum is zero to rounding
// the first entry above rounding positive. One block per eigenvector.
template <class T>
__global__ void eigvec_kernel(const T* __restrict__ v, const T* __restrict__ w, int64_t n, int64_t m, bool reverse,
                              int64_t k, T* __restrict__ values, T* __restrict__ vectors) {
  __shared__ T s_sum[kCholThreads];
  __shared__ int64_t s_first[kCholThreads];
  const int64_t j = blockIdx.x;
  const unsigned tid = threadIdx.x, nt = blockDim.x;
  const int64_t src = reverse ? m - 1 - j : j;
  const T* row = v + src * n;
  const T eps = sizeof(T) == 4 ? T(1.1920928955078125e-7) : T(2.220446049250313e-16);
  T s = 0;
  int64_t first = n;
  for (int64_t i = tid; i < n; i += nt) {
    s += row[i];
    if (first == n && fabs(row[i]) > T(256) * eps) first = i;
  }
  s_sum[tid] = s;
  s_first[tid] = first;
  __syncthreads();
  for (unsigned h = nt / 2; h > 0; h >>= 1) {
    if (tid < h) {
      s_sum[tid] += s_sum[tid + h];
      if (s_first[tid + h] < s_first[tid]) s_first[tid] = s_first[tid + h];
    }
    __syncthreads();
  }
  const T sum = s_sum[0];
  const bool flip = fabs(sum) > sqrt(static_cast<T>(n)) * T(256) * eps ? sum < T(0)
                                                                        : (s_first[0] < n && row[s_first[0]] < T(0));
  const T sign = flip ? T(-1) : T(1);
  for (int64_t i = tid; i < n; i += nt) vectors[i * k + j] = sign * row[i];
  if (tid == 0) values[j] = w[src];
}

// The CPU kernel's checks (finite, symmetric), then syevd (all pairs) or syevdx (k of them).
template <class T>
Eigh vendor_eigh(const Tensor& a, int64_t k, bool largest, bool all, const char* op) {
  const int64_t n = a.size(0);
  Tensor buf = empty({n, n}, a.dtype(), a.device());
  run_cholesky<T, false>(a, buf, op);  // the symmetrised lower triangle
  Tensor w = empty({n}, a.dtype(), a.device());
  T* bp = static_cast<T*>(buf.raw_data());
  T* wp = static_cast<T*>(w.raw_data());
  if (all) vendor::syevd(bp, n, wp);
  else vendor::syevdx(bp, n, largest ? n - k : 0, largest ? n - 1 : k - 1, wp);
  Eigh r{empty({k}, a.dtype(), a.device()), empty({n, k}, a.dtype(), a.device())};
  CORTEX_LAUNCH(eigvec_kernel<T>, static_cast<unsigned>(k), threads_for(n, kCholThreads), 0, stream(), bp, wp, n, k,
                !all && largest, k, static_cast<T*>(r.values.raw_data()), static_cast<T*>(r.vectors.raw_data()));
  return r;
}

}  // namespace

Eigh eigh(const Tensor& a) {
  const int64_t n = a.size(0);
  if (n == 0) return {empty({0}, a.dtype(), a.device()), empty({0, 0}, a.dtype(), a.device())};
  return dispatch_float(a.dtype(), "eigh", [&](auto tag) { return vendor_eigh<decltype(tag)>(a, n, false, true, "eigh"); });
}

Eigh eigh_topk(const Tensor& a, int64_t k, bool largest) {
  const int64_t n = a.size(0);
  if (k == 0) return {empty({0}, a.dtype(), a.device()), empty({n, 0}, a.dtype(), a.device())};
  return dispatch_float(a.dtype(), "eigh_topk",
                        [&](auto tag) { return vendor_eigh<decltype(tag)>(a, k, largest, false, "eigh_topk"); });
}
#endif  // __CUDACC__

}  // namespace cortex::kernels::CORTEX_BACKEND
