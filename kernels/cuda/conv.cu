// conv2d and its two adjoints on CUDA and the emulated CUDA device (kernels/cuda/common.cuh says
// how one source serves both), float32 and float64, every Conv2dParams field. The mapping of each
// op onto a GEMM, the tile sizes and why: docs/conv.md.
//
// Implicit GEMM: each op is one GEMM per group, C (M, Ncol) = A (M, K) B (K, Ncol), whose A and B
// are never stored: a block loads a BM x BK tile of A and a BK x BN tile of B straight from the
// tensors (the im2col of x, or the scatter pattern of gy, computed from the indices, zero where
// the window reads padding) into shared memory, and each thread accumulates a TM x TN piece of
// C over k in increasing order, in T (float32 accumulates in float32, as the CPU does). No
// atomics: every output element is written by one thread, so results are the same in every
// schedule order. They are not bit-identical to the CPU, whose Eigen GEMM sums in another order
// (tests/test_cuda_conv.cpp holds them to the float64 reference and to the CPU within an NMSE).
//   conv2d:             M = Og, Ncol = N*OH*OW, K = Cg*KH*KW   (A = w_g, B = im2col(x))
//   conv2d_input_grad:  M = Cg, Ncol = N*H*W,   K = Og*KH*KW   (A = w_g^T, B = gy gathered per tap)
//   conv2d_weight_grad: M = Og, Ncol = Cg*KH*KW, K = N*OH*OW   (A = gy_g, B = im2col(x)^T), split-K
//       into per-split partial sums added in split order by a second kernel (deterministic).
// Depthwise convs (one input and one output channel per group) take direct kernels instead: a
// 64x64 GEMM tile would be 1/64th used.
//
// Inputs are made contiguous in the entries (strided views cost one copy). Under nvcc, with
// cuDNN found at build time, CORTEX_CONV=cudnn sends every call to cuDNN (kernels/cuda/vendor/
// cudnn.h); CORTEX_CONV unset or "igemm" runs the kernels here, and the emulated device always
// runs them.
#include <atomic>
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <string>

#include "kernels/conv.h"
#include "kernels/shape.h"
#if defined(__CUDACC__) && defined(CORTEX_HAVE_CUDNN)
#include "kernels/cuda/vendor/cudnn.h"
#endif
// (last: see common.cuh)
#include "kernels/cuda/common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

// Block tile BM x BN over a depth slice BK; 256 threads, each owning TM x TN outputs at a stride
// of 16 (rows ty + 16 i, columns tx + 16 j), so a warp's stores are 16 consecutive columns.
constexpr int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4;
constexpr int kThreads = (BM / TM) * (BN / TN);
static_assert(kThreads == 256 && kThreads % BN == 0 && kThreads % BK == 0, "tile loads assume 256 threads");
// Loads per thread per tile: A element e = t + 256 i sits at (row e / BK, depth e % BK), B element
// at (depth e / BN, column e % BN), so a thread's A depth and B column are the same in every load.
constexpr int kALoads = BM * BK / kThreads, kBLoads = BK * BN / kThreads;
// Split-K of the weight grad: aim for this many blocks, each split at least kMinSplitDepth deep.
constexpr int64_t kTargetBlocks = 264;  // two waves of an H100's 132 SMs
constexpr int64_t kMinSplitDepth = 8 * BK;
// Threads of the depthwise weight-grad reduction (one block per weight).
constexpr int kReduceThreads = 256;

// Sizes of one call in 32-bit integers (the entries check that every tensor has < 2^31 elements).
struct Geom {
  int N, C, H, W, O, KH, KW, OH, OW, G, Cg, Og, KK, P, HW;
  int sh, sw, ph, pw, dh, dw;
};

// A thread's B column, decoded once per block: the base offset and two coordinates, meaning
// per op (see each op's col()); ok is false past the last column.
struct Col {
  int64_t base;
  int a, b;
  bool ok;
};

// conv2d: A (m = o, k = (c, kh, kw)) = w[g*Og + o, c, kh, kw]; B (k, j = (n, oh, ow)) = x[n, g*Cg + c,
// oh*sh - ph + kh*dh, ow*sw - pw + kw*dw] or 0 in the padding; y[n, g*Og + o, oh, ow] = C + bias.
template <class T>
struct FwdOp {
  const T* x;
  const T* w;
  const T* bias;  // may be null
  T* y;
  Geom g;
  int K;     // Cg * KK
  int ncol;  // N * P
  __device__ __forceinline__ Col col(int grp, int j) const {
    if (j >= ncol) return {0, 0, 0, false};
    const int n = j / g.P, p = j % g.P;
    return {(static_cast<int64_t>(n) * g.C + grp * g.Cg) * g.HW, (p / g.OW) * g.sh - g.ph, (p % g.OW) * g.sw - g.pw,
            true};
  }
  __device__ __forceinline__ T a(int grp, int m, int k) const {
    return w[static_cast<int64_t>(grp * g.Og + m) * K + k];
  }
  __device__ __forceinline__ T b(const Col& c, int k) const {
    const int ci = k / g.KK, r = k % g.KK;
    const int ih = c.a + (r / g.KW) * g.dh, iw = c.b + (r % g.KW) * g.dw;
    if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) return T(0);
    return x[c.base + static_cast<int64_t>(ci) * g.HW + ih * g.W + iw];
  }
  __device__ __forceinline__ void store(int grp, int, int m, int j, T v) const {
    const int n = j / g.P, p = j % g.P, o = grp * g.Og + m;
    y[(static_cast<int64_t>(n) * g.O + o) * g.P + p] = bias ? v + bias[o] : v;
  }
};

// conv2d_input_grad as a gather: A (m = c, k = (o, kh, kw)) = w[g*Og + o, c, kh, kw]; B (k, j = (n, ih,
// iw)) = gy[n, g*Og + o, oh, ow] where ih = oh*sh - ph + kh*dh (likewise iw) has a whole solution
// inside the output, else 0; gx[n, g*Cg + c, ih, iw] = C. Every gx element is written once.
template <class T>
struct InputGradOp {
  const T* gy;
  const T* w;
  T* gx;
  Geom g;
  int ncol;  // N * HW
  __device__ __forceinline__ Col col(int grp, int j) const {
    if (j >= ncol) return {0, 0, 0, false};
    const int n = j / g.HW, q = j % g.HW;
    return {(static_cast<int64_t>(n) * g.O + grp * g.Og) * g.P, q / g.W + g.ph, q % g.W + g.pw, true};
  }
  __device__ __forceinline__ T a(int grp, int m, int k) const {
    const int o = k / g.KK, r = k % g.KK;
    return w[(static_cast<int64_t>(grp * g.Og + o) * g.Cg + m) * g.KK + r];
  }
  __device__ __forceinline__ T b(const Col& c, int k) const {
    const int o = k / g.KK, r = k % g.KK;
    const int th = c.a - (r / g.KW) * g.dh, tw = c.b - (r % g.KW) * g.dw;  // oh*sh, ow*sw
    if (th < 0 || tw < 0 || th % g.sh != 0 || tw % g.sw != 0) return T(0);
    const int oh = th / g.sh, ow = tw / g.sw;
    if (oh >= g.OH || ow >= g.OW) return T(0);
    return gy[c.base + static_cast<int64_t>(o) * g.P + oh * g.OW + ow];
  }
  __device__ __forceinline__ void store(int grp, int, int m, int j, T v) const {
    const int n = j / g.HW, q = j % g.HW;
    gx[(static_cast<int64_t>(n) * g.C + grp * g.Cg + m) * g.HW + q] = v;
  }
};

// conv2d_weight_grad: A (m = o, k = (n, oh, ow)) = gy[n, g*Og + o, oh, ow]; B (k, j = (c, kh, kw)) =
// x[n, g*Cg + c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw] or 0; split s writes its partial C to
// out + s * split_stride at gw's layout.
template <class T>
struct WeightGradOp {
  const T* x;
  const T* gy;
  T* out;
  Geom g;
  int Kg;  // Cg * KK: the columns
  int64_t split_stride;
  __device__ __forceinline__ Col col(int grp, int j) const {
    if (j >= Kg) return {0, 0, 0, false};
    const int c = j / g.KK, r = j % g.KK;
    return {static_cast<int64_t>(grp * g.Cg + c) * g.HW, (r / g.KW) * g.dh - g.ph, (r % g.KW) * g.dw - g.pw, true};
  }
  __device__ __forceinline__ T a(int grp, int m, int k) const {
    const int n = k / g.P, p = k % g.P;
    return gy[(static_cast<int64_t>(n) * g.O + grp * g.Og + m) * g.P + p];
  }
  __device__ __forceinline__ T b(const Col& c, int k) const {
    const int n = k / g.P, p = k % g.P;
    const int ih = (p / g.OW) * g.sh + c.a, iw = (p % g.OW) * g.sw + c.b;
    if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) return T(0);
    return x[static_cast<int64_t>(n) * g.C * g.HW + c.base + ih * g.W + iw];
  }
  __device__ __forceinline__ void store(int grp, int split, int m, int j, T v) const {
    out[split * split_stride + static_cast<int64_t>(grp * g.Og + m) * Kg + j] = v;
  }
};

// The implicit GEMM of one op: block (x: column tile, y: row tile, z: group * splits + split)
// computes C[m0 : m0 + BM, n0 : n0 + BN] over depths [split * k_split, (split + 1) * k_split) and
// hands each element to op.store. Rows past M, columns past ncol and depths past the split's end
// load as 0 and store nothing.
template <class T, class Op>
__global__ void __launch_bounds__(kThreads)
    conv_igemm_kernel(Op op, int M, int ncol, int K, int k_split, int splits) {
  __shared__ T As[BK][BM + 1];  // +1: the stores (16 depths of one row per half-warp) hit 16 banks
  __shared__ T Bs[BK][BN];
  const int t = threadIdx.x, tx = t % (BN / TN), ty = t / (BN / TN);
  const int grp = blockIdx.z / splits, split = blockIdx.z % splits;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int kbeg = split * k_split, kend = kbeg + k_split < K ? kbeg + k_split : K;
  const int ak = t % BK, bj = t % BN;
  const Col col = op.col(grp, n0 + bj);
  T acc[TM][TN];
  for (int i = 0; i < TM; ++i)
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);
  for (int k0 = kbeg; k0 < kend; k0 += BK) {
    for (int i = 0; i < kALoads; ++i) {
      const int m = t / BK + i * (kThreads / BK), k = k0 + ak;
      As[ak][m] = m0 + m < M && k < kend ? op.a(grp, m0 + m, k) : T(0);
    }
    for (int i = 0; i < kBLoads; ++i) {
      const int kk = t / BN + i * (kThreads / BN), k = k0 + kk;
      Bs[kk][bj] = col.ok && k < kend ? op.b(col, k) : T(0);
    }
    __syncthreads();
    for (int kk = 0; kk < BK; ++kk) {
      T av[TM], bv[TN];
      for (int i = 0; i < TM; ++i) av[i] = As[kk][ty + i * (BM / TM)];
      for (int j = 0; j < TN; ++j) bv[j] = Bs[kk][tx + j * (BN / TN)];
      for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j) acc[i][j] += av[i] * bv[j];
    }
    __syncthreads();
  }
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + ty + i * (BM / TM);
    if (m >= M) continue;
    for (int j = 0; j < TN; ++j) {
      const int n = n0 + tx + j * (BN / TN);
      if (n < ncol) op.store(grp, split, m, n, acc[i][j]);
    }
  }
}

// out[i] = sum over splits s (in order) of part[s * n + i].
template <class T>
__global__ void sum_splits_kernel(const T* __restrict__ part, int splits, int64_t n, T* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  T s = part[i];
  for (int k = 1; k < splits; ++k) s += part[k * n + i];
  out[i] = s;
}

// Depthwise (Cg == Og == 1, so channel c of x, w and y go together): one thread per y element,
// taps in (kh, kw) order.
template <class T>
__global__ void depthwise_fwd_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                     Geom g, int total, T* __restrict__ y) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int ow = i % g.OW, oh = (i / g.OW) % g.OH, nc = i / g.P, c = nc % g.C;
  const T* xp = x + static_cast<int64_t>(nc) * g.HW;
  const T* wp = w + static_cast<int64_t>(c) * g.KK;
  T acc = T(0);
  for (int kh = 0; kh < g.KH; ++kh) {
    const int ih = oh * g.sh - g.ph + kh * g.dh;
    if (ih < 0 || ih >= g.H) continue;
    for (int kw = 0; kw < g.KW; ++kw) {
      const int iw = ow * g.sw - g.pw + kw * g.dw;
      if (iw >= 0 && iw < g.W) acc += wp[kh * g.KW + kw] * xp[ih * g.W + iw];
    }
  }
  y[i] = bias ? acc + bias[c] : acc;
}

// One thread per gx element: the taps whose output position is whole and inside the output.
template <class T>
__global__ void depthwise_input_grad_kernel(const T* __restrict__ gy, const T* __restrict__ w, Geom g, int total,
                                            T* __restrict__ gx) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int iw = i % g.W, ih = (i / g.W) % g.H, nc = i / g.HW, c = nc % g.C;
  const T* gp = gy + static_cast<int64_t>(nc) * g.P;
  const T* wp = w + static_cast<int64_t>(c) * g.KK;
  T acc = T(0);
  for (int kh = 0; kh < g.KH; ++kh) {
    const int th = ih + g.ph - kh * g.dh;
    if (th < 0 || th % g.sh != 0 || th / g.sh >= g.OH) continue;
    for (int kw = 0; kw < g.KW; ++kw) {
      const int tw = iw + g.pw - kw * g.dw;
      if (tw < 0 || tw % g.sw != 0 || tw / g.sw >= g.OW) continue;
      acc += wp[kh * g.KW + kw] * gp[(th / g.sh) * g.OW + tw / g.sw];
    }
  }
  gx[i] = acc;
}

// One block per weight (c, kh, kw): each thread sums a stride of the (n, oh, ow) products, then a
// fixed tree in shared memory adds the threads' sums (the same order in every schedule).
template <class T>
__global__ void __launch_bounds__(kReduceThreads)
    depthwise_weight_grad_kernel(const T* __restrict__ x, const T* __restrict__ gy, Geom g, T* __restrict__ gw) {
  __shared__ T red[kReduceThreads];
  const int wi = blockIdx.x, c = wi / g.KK, r = wi % g.KK;
  const int offh = (r / g.KW) * g.dh - g.ph, offw = (r % g.KW) * g.dw - g.pw;
  const int t = threadIdx.x, total = g.N * g.P;
  T acc = T(0);
  for (int k = t; k < total; k += kReduceThreads) {
    const int n = k / g.P, p = k % g.P;
    const int ih = (p / g.OW) * g.sh + offh, iw = (p % g.OW) * g.sw + offw;
    if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
    const int64_t nc = static_cast<int64_t>(n) * g.C + c;
    acc += gy[nc * g.P + p] * x[nc * g.HW + ih * g.W + iw];
  }
  red[t] = acc;
  __syncthreads();
  for (int s = kReduceThreads / 2; s > 0; s /= 2) {
    if (t < s) red[t] += red[t + s];
    __syncthreads();
  }
  if (t == 0) gw[wi] = red[0];
}

Geom geom(const char* op, const Shape& xs, const Shape& ws, const Shape& ys, const Conv2dParams& p) {
  for (const Shape* s : {&xs, &ws, &ys})
    CORTEX_CHECK(shape_numel(*s) <= INT_MAX, op, " on the CUDA backend: expected tensors of at most 2^31-1 elements, found ",
                 shape_str(*s));
  Geom g{};
  g.N = static_cast<int>(xs[0]), g.C = static_cast<int>(xs[1]), g.H = static_cast<int>(xs[2]), g.W = static_cast<int>(xs[3]);
  g.O = static_cast<int>(ws[0]), g.KH = static_cast<int>(ws[2]), g.KW = static_cast<int>(ws[3]);
  g.OH = static_cast<int>(ys[2]), g.OW = static_cast<int>(ys[3]);
  g.G = static_cast<int>(p.groups), g.Cg = g.C / g.G, g.Og = g.O / g.G, g.KK = g.KH * g.KW;
  g.P = g.OH * g.OW, g.HW = g.H * g.W;
  g.sh = static_cast<int>(p.stride_h), g.sw = static_cast<int>(p.stride_w);
  g.ph = static_cast<int>(p.pad_h), g.pw = static_cast<int>(p.pad_w);
  g.dh = static_cast<int>(p.dilation_h), g.dw = static_cast<int>(p.dilation_w);
  return g;
}

bool depthwise(const Geom& g) { return g.Cg == 1 && g.Og == 1; }

// Launches the implicit GEMM of op: M rows, ncol columns, depth K in `splits` slices, per group.
template <class T, class Op>
void run_igemm(const Op& op, const Geom& g, int M, int ncol, int K, int splits) {
  const int64_t per = (static_cast<int64_t>(K) + splits - 1) / splits;
  const int k_split = static_cast<int>(splits == 1 ? (K > 0 ? K : 1) : (per + BK - 1) / BK * BK);
  const int64_t z = static_cast<int64_t>(g.G) * splits;
  CORTEX_CHECK(z <= 65535, "conv2d on the CUDA backend: at most 65535 groups x K-splits, found ", z);
  const dim3 grid(blocks_for(ncol, BN), blocks_for(M, BM), static_cast<unsigned>(z));
  CORTEX_LAUNCH((conv_igemm_kernel<T, Op>), grid, kThreads, 0, stream(), op, M, ncol, K, k_split, splits);
}

// Which path the calls take: 0 the kernels here, 1 cuDNN (GPU builds with cuDNN only).
int conv_path() {
  const char* e = std::getenv("CORTEX_CONV");
  const std::string s = e ? e : "";
  CORTEX_CHECK(s.empty() || s == "igemm" || s == "cudnn", "CORTEX_CONV: expected igemm or cudnn, found '", s, "'");
#ifdef __CUDACC__
  if (s == "cudnn") {
#ifdef CORTEX_HAVE_CUDNN
    return 1;
#else
    CORTEX_CHECK(false, "CORTEX_CONV=cudnn: this build has no cuDNN (it was not found when the project was configured)");
#endif
  }
#endif
  return 0;  // the emulated device always runs the hand-written kernels (../shared/SIMT.md, vendor libraries)
}

#if defined(__CUDACC__) && defined(CORTEX_HAVE_CUDNN)
vendor::ConvShape vendor_shape(const Geom& g, bool f64) {
  return {g.N, g.C, g.H, g.W, g.O, g.KH, g.KW, g.OH, g.OW, g.G, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, f64};
}
#endif

}  // namespace

Tensor conv2d(const Tensor& x0, const Tensor& w0, const Tensor& b0, const Conv2dParams& p) {
  const Shape ys = conv2d_out_shape("conv2d", x0.shape(), w0.shape(), p);
  Tensor y = empty(ys, x0.dtype(), x0.device());
  if (y.numel() == 0) return y;
  const Geom g = geom("conv2d", x0.shape(), w0.shape(), ys, p);
  const Tensor x = x0.contiguous(), w = w0.contiguous(), b = b0.defined() ? b0.contiguous() : b0;
#if defined(__CUDACC__) && defined(CORTEX_HAVE_CUDNN)
  if (conv_path() == 1) {
    vendor::conv_forward(vendor_shape(g, x.dtype() == DType::Float64), x.raw_data(), w.raw_data(),
                         b.defined() ? b.raw_data() : nullptr, y.raw_data());
    return y;
  }
#else
  conv_path();  // still refuses a bad CORTEX_CONV
#endif
  dispatch_float(x.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x.raw_data());
    const T* wp = static_cast<const T*>(w.raw_data());
    const T* bp = b.defined() ? static_cast<const T*>(b.raw_data()) : nullptr;
    T* yp = static_cast<T*>(y.raw_data());
    if (depthwise(g)) {
      const int total = static_cast<int>(y.numel());
      CORTEX_LAUNCH(depthwise_fwd_kernel<T>, blocks_for(total), kBlock, 0, stream(), xp, wp, bp, g, total, yp);
      return;
    }
    const FwdOp<T> op{xp, wp, bp, yp, g, g.Cg * g.KK, g.N * g.P};
    run_igemm<T>(op, g, g.Og, op.ncol, op.K, 1);
  });
  return y;
}

Tensor conv2d_input_grad(const Tensor& gy0, const Tensor& w0, const Shape& x_shape, const Conv2dParams& p) {
  Tensor gx = empty(x_shape, gy0.dtype(), gy0.device());
  if (gx.numel() == 0) return gx;
  const Geom g = geom("conv2d_input_grad", x_shape, w0.shape(), gy0.shape(), p);
  const Tensor gy = gy0.contiguous(), w = w0.contiguous();
#if defined(__CUDACC__) && defined(CORTEX_HAVE_CUDNN)
  if (conv_path() == 1) {
    vendor::conv_backward_data(vendor_shape(g, gy.dtype() == DType::Float64), gy.raw_data(), w.raw_data(),
                               gx.raw_data());
    return gx;
  }
#else
  conv_path();
#endif
  dispatch_float(gy.dtype(), "conv2d_input_grad", [&](auto tag) {
    using T = decltype(tag);
    const T* gp = static_cast<const T*>(gy.raw_data());
    const T* wp = static_cast<const T*>(w.raw_data());
    T* xp = static_cast<T*>(gx.raw_data());
    if (depthwise(g)) {
      const int total = static_cast<int>(gx.numel());
      CORTEX_LAUNCH(depthwise_input_grad_kernel<T>, blocks_for(total), kBlock, 0, stream(), gp, wp, g, total, xp);
      return;
    }
    // Every gx element is written (0 where no tap reaches it), so gx needs no zeroing first.
    const InputGradOp<T> op{gp, wp, xp, g, g.N * g.HW};
    run_igemm<T>(op, g, g.Cg, op.ncol, g.Og * g.KK, 1);
  });
  return gx;
}

Tensor conv2d_weight_grad(const Tensor& x0, const Tensor& gy0, const Shape& w_shape, const Conv2dParams& p) {
  Tensor gw = empty(w_shape, x0.dtype(), x0.device());
  if (gw.numel() == 0) return gw;
  const Geom g = geom("conv2d_weight_grad", x0.shape(), w_shape, gy0.shape(), p);
  const Tensor x = x0.contiguous(), gy = gy0.contiguous();
#if defined(__CUDACC__) && defined(CORTEX_HAVE_CUDNN)
  if (conv_path() == 1) {
    vendor::conv_backward_filter(vendor_shape(g, x.dtype() == DType::Float64), x.raw_data(), gy.raw_data(),
                                 gw.raw_data());
    return gw;
  }
#else
  conv_path();
#endif
  dispatch_float(x.dtype(), "conv2d_weight_grad", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x.raw_data());
    const T* gp = static_cast<const T*>(gy.raw_data());
    T* wp = static_cast<T*>(gw.raw_data());
    if (depthwise(g)) {
      CORTEX_LAUNCH(depthwise_weight_grad_kernel<T>, blocks_for(gw.numel(), 1), kReduceThreads, 0, stream(), xp, gp, g,
                    wp);
      return;
    }
    // Split the depth (N * OH * OW, often far larger than the Og x Kg output) so that enough
    // blocks run; the split count depends only on the shape, so the emulated device and a GPU
    // add the same partial sums in the same order.
    const int Kg = g.Cg * g.KK, K = g.N * g.P;
    const int64_t tiles = static_cast<int64_t>(blocks_for(Kg, BN)) * blocks_for(g.Og, BM) * g.G;
    int64_t splits = (kTargetBlocks + tiles - 1) / tiles;
    splits = std::min<int64_t>(splits, std::max<int64_t>(K / kMinSplitDepth, 1));
    splits = std::min<int64_t>(splits, std::max<int64_t>(65535 / g.G, 1));
    if (splits <= 1) {
      run_igemm<T>(WeightGradOp<T>{xp, gp, wp, g, Kg, 0}, g, g.Og, Kg, K, 1);
      return;
    }
    const int64_t n = gw.numel();
    Tensor part = empty({splits * n}, x.dtype(), x.device());
    T* pp = static_cast<T*>(part.raw_data());
    run_igemm<T>(WeightGradOp<T>{xp, gp, pp, g, Kg, n}, g, g.Og, Kg, K, static_cast<int>(splits));
    CORTEX_LAUNCH(sum_splits_kernel<T>, blocks_for(n), kBlock, 0, stream(), pp, static_cast<int>(splits), n, wp);
  });
  return gw;
}

}  // namespace cortex::kernels::CORTEX_BACKEND
