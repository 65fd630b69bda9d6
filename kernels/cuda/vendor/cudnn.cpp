// cuDNN behind kernels/cuda/vendor/cudnn.h, through cuDNN's convolution API (cudnnConvolution*;
// kept in cuDNN 9, where the graph API is the new front end but this one is a few lines per call).
//
// Choices, so that CORTEX_CONV=cudnn changes speed, not the numbers' meaning:
//   - float32 runs with CUDNN_FMA_MATH (no TF32) unless TF32 is on (CORTEX_TF32=1 or
//     vendor::set_tf32, shared with the cuBLAS seam), then CUDNN_DEFAULT_MATH;
//   - the algorithm is cuDNN's first heuristic choice (cudnnGet*Algorithm_v7) that is deterministic,
//     like the hand-written kernels (no run-to-run differences from atomics), else its first choice;
//   - workspace comes from the project's CUDA caching allocator (a uint8 tensor), freed on return.
// Unverified on a GPU when written (no GPU was lent): scripts/gpu-check.sh and a GPU test must
// hold it to the hand-written kernels before it is trusted.
#include "kernels/cuda/vendor/cudnn.h"

#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>

#include "kernels/cuda/vendor/cublas.h"  // tf32()
#include "tensor/error.h"
#include "tensor/tensor.h"

namespace cortex::kernels::cuda::vendor {
namespace {

void check(cudnnStatus_t s, const char* what) {
  CORTEX_CHECK(s == CUDNN_STATUS_SUCCESS, "cuDNN: ", what, " failed: ", cudnnGetErrorString(s));
}

// One handle per host thread (a handle must not be used by two threads at once); never destroyed,
// since destroying it after the CUDA context is gone at exit fails. Kernels run on the default
// stream (kernels/cuda/common.cuh's stream()), so cuDNN does too.
cudnnHandle_t handle() {
  thread_local cudnnHandle_t h = [] {
    cudnnHandle_t x = nullptr;
    check(cudnnCreate(&x), "cudnnCreate");
    check(cudnnSetStream(x, nullptr), "cudnnSetStream");
    return x;
  }();
  return h;
}

// The descriptors of one call, destroyed with it.
struct Descs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, b = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnMathType_t math = CUDNN_FMA_MATH;
  explicit Descs(const ConvShape& s) {
    const cudnnDataType_t dt = s.f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    check(cudnnCreateTensorDescriptor(&x), "cudnnCreateTensorDescriptor");
    check(cudnnCreateTensorDescriptor(&y), "cudnnCreateTensorDescriptor");
    check(cudnnCreateTensorDescriptor(&b), "cudnnCreateTensorDescriptor");
    check(cudnnCreateFilterDescriptor(&w), "cudnnCreateFilterDescriptor");
    check(cudnnCreateConvolutionDescriptor(&conv), "cudnnCreateConvolutionDescriptor");
    check(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, dt, s.N, s.C, s.H, s.W), "cudnnSetTensor4dDescriptor (x)");
    check(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, dt, s.N, s.O, s.OH, s.OW), "cudnnSetTensor4dDescriptor (y)");
    check(cudnnSetTensor4dDescriptor(b, CUDNN_TENSOR_NCHW, dt, 1, s.O, 1, 1), "cudnnSetTensor4dDescriptor (bias)");
    check(cudnnSetFilter4dDescriptor(w, dt, CUDNN_TENSOR_NCHW, s.O, s.C / s.groups, s.KH, s.KW),
          "cudnnSetFilter4dDescriptor");
    // CROSS_CORRELATION: the kernel is not flipped, as in conv2d.
    check(cudnnSetConvolution2dDescriptor(conv, s.ph, s.pw, s.sh, s.sw, s.dh, s.dw, CUDNN_CROSS_CORRELATION, dt),
          "cudnnSetConvolution2dDescriptor");
    check(cudnnSetConvolutionGroupCount(conv, s.groups), "cudnnSetConvolutionGroupCount");
    math = !s.f64 && tf32() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
    check(cudnnSetConvolutionMathType(conv, math), "cudnnSetConvolutionMathType");
  }
  ~Descs() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyTensorDescriptor(b);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(x);
  }
  Descs(const Descs&) = delete;
  Descs& operator=(const Descs&) = delete;
};

// The heuristics' list, best first: the first algorithm that can run, is deterministic and keeps
// to the math type asked for (no TF32 unless it is on); failing that, the first that runs and
// keeps the math type; failing that, the first that runs. Its math type goes onto the descriptor
// (cuDNN's rule for _v7 results), except that TF32 stays off when it is off.
template <class Perf>
Perf pick(const Perf* perf, int n, Descs& d, const char* what) {
  auto runs = [](const Perf& p) { return p.status == CUDNN_STATUS_SUCCESS; };
  auto math_ok = [&](const Perf& p) { return d.math != CUDNN_FMA_MATH || p.mathType == CUDNN_FMA_MATH; };
  const Perf* chosen = nullptr;
  for (int i = 0; i < n && !chosen; ++i)
    if (runs(perf[i]) && math_ok(perf[i]) && perf[i].determinism == CUDNN_DETERMINISTIC) chosen = &perf[i];
  for (int i = 0; i < n && !chosen; ++i)
    if (runs(perf[i]) && math_ok(perf[i])) chosen = &perf[i];
  for (int i = 0; i < n && !chosen; ++i)
    if (runs(perf[i])) chosen = &perf[i];
  CORTEX_CHECK(chosen != nullptr, "cuDNN: no ", what, " algorithm for this convolution");
  if (math_ok(*chosen)) check(cudnnSetConvolutionMathType(d.conv, chosen->mathType), "cudnnSetConvolutionMathType");
  return *chosen;
}

// Scratch of `bytes` on the current device, from the caching allocator.
Tensor workspace(size_t bytes) {
  if (bytes == 0) return Tensor();
  int dev = 0;
  const cudaError_t e = cudaGetDevice(&dev);
  CORTEX_CHECK(e == cudaSuccess, "cuDNN: cudaGetDevice failed: ", cudaGetErrorString(e));
  return empty({static_cast<int64_t>(bytes)}, DType::UInt8, Device::cuda(dev));
}
void* ptr(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }

// alpha = 1 and beta = 0 (overwrite) or 1 (accumulate), in the type cuDNN reads for the data.
struct Scale {
  float f[2] = {1.0f, 0.0f};
  double d[2] = {1.0, 0.0};
  const void* alpha(bool f64) const { return f64 ? static_cast<const void*>(&d[0]) : &f[0]; }
  const void* zero(bool f64) const { return f64 ? static_cast<const void*>(&d[1]) : &f[1]; }
  const void* one(bool f64) const { return alpha(f64); }
};

constexpr int kMaxAlgos = 16;

}  // namespace

void conv_forward(const ConvShape& s, const void* x, const void* w, const void* bias, void* y) {
  cudnnHandle_t h = handle();
  Descs d(s);
  cudnnConvolutionFwdAlgoPerf_t perf[kMaxAlgos];
  int n = 0;
  check(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, kMaxAlgos, &n, perf),
        "cudnnGetConvolutionForwardAlgorithm_v7");
  const cudnnConvolutionFwdAlgoPerf_t p = pick(perf, n, d, "forward");
  size_t bytes = 0;
  check(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, p.algo, &bytes),
        "cudnnGetConvolutionForwardWorkspaceSize");
  const Tensor ws = workspace(bytes);
  const Scale sc;
  check(cudnnConvolutionForward(h, sc.alpha(s.f64), d.x, x, d.w, w, d.conv, p.algo, ptr(ws), bytes, sc.zero(s.f64),
                                d.y, y),
        "cudnnConvolutionForward");
  if (bias != nullptr)
    check(cudnnAddTensor(h, sc.one(s.f64), d.b, bias, sc.one(s.f64), d.y, y), "cudnnAddTensor (bias)");
}

void conv_backward_data(const ConvShape& s, const void* gy, const void* w, void* gx) {
  cudnnHandle_t h = handle();
  Descs d(s);
  cudnnConvolutionBwdDataAlgoPerf_t perf[kMaxAlgos];
  int n = 0;
  check(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x, kMaxAlgos, &n, perf),
        "cudnnGetConvolutionBackwardDataAlgorithm_v7");
  const cudnnConvolutionBwdDataAlgoPerf_t p = pick(perf, n, d, "backward-data");
  size_t bytes = 0;
  check(cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w, d.y, d.conv, d.x, p.algo, &bytes),
        "cudnnGetConvolutionBackwardDataWorkspaceSize");
  const Tensor ws = workspace(bytes);
  const Scale sc;
  check(cudnnConvolutionBackwardData(h, sc.alpha(s.f64), d.w, w, d.y, gy, d.conv, p.algo, ptr(ws), bytes,
                                     sc.zero(s.f64), d.x, gx),
        "cudnnConvolutionBackwardData");
}

void conv_backward_filter(const ConvShape& s, const void* x, const void* gy, void* gw) {
  cudnnHandle_t h = handle();
  Descs d(s);
  cudnnConvolutionBwdFilterAlgoPerf_t perf[kMaxAlgos];
  int n = 0;
  check(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w, kMaxAlgos, &n, perf),
        "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
  const cudnnConvolutionBwdFilterAlgoPerf_t p = pick(perf, n, d, "backward-filter");
  size_t bytes = 0;
  check(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x, d.y, d.conv, d.w, p.algo, &bytes),
        "cudnnGetConvolutionBackwardFilterWorkspaceSize");
  const Tensor ws = workspace(bytes);
  const Scale sc;
  check(cudnnConvolutionBackwardFilter(h, sc.alpha(s.f64), d.x, x, d.y, gy, d.conv, p.algo, ptr(ws), bytes,
                                       sc.zero(s.f64), d.w, gw),
        "cudnnConvolutionBackwardFilter");
}

}  // namespace cortex::kernels::cuda::vendor
