// cuSOLVER behind kernels/cuda/vendor/cusolver.h: the legacy dense API (cusolverDn<t>potrf,
// <t>syevd, <t>syevdx) on the column-major upper triangle, which is the row-major lower one the
// callers fill; one handle per host thread on the default stream (the stream the
// hand-written kernels run on), workspace from cudaMalloc per call. Unverified on a GPU so far:
// CI compiles it; scripts/gpu-check.sh runs it when a GPU is lent.
#include "kernels/cuda/vendor/cusolver.h"

#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <climits>

#include "tensor/error.h"

namespace cortex::kernels::cuda::vendor {
namespace {

// One handle per host thread (a handle must not be used by two threads at once); never destroyed,
// since destroying it after the CUDA context is gone at exit fails.
cusolverDnHandle_t handle() {
  thread_local cusolverDnHandle_t h = [] {
    cusolverDnHandle_t x = nullptr;
    const cusolverStatus_t s = cusolverDnCreate(&x);
    CORTEX_CHECK(s == CUSOLVER_STATUS_SUCCESS, "cuSOLVER: cusolverDnCreate failed with status ", static_cast<int>(s));
    return x;
  }();
  return h;
}

void check(cusolverStatus_t s, const char* what) {
  CORTEX_CHECK(s == CUSOLVER_STATUS_SUCCESS, "cuSOLVER: ", what, " failed with status ", static_cast<int>(s));
}

int as_int(int64_t n, const char* what) {
  CORTEX_CHECK(n >= 0 && n <= INT_MAX, "cuSOLVER: ", what, ": n = ", n, " does not fit cuSOLVER's int");
  return static_cast<int>(n);
}

// Device scratch of `bytes` plus one int for cuSOLVER's info, freed at scope exit.
struct Scratch {
  void* work = nullptr;
  int* info = nullptr;
  explicit Scratch(size_t bytes) {
    cudaError_t e = cudaMalloc(&work, bytes > 0 ? bytes : 1);
    if (e == cudaSuccess) e = cudaMalloc(reinterpret_cast<void**>(&info), sizeof(int));
    if (e != cudaSuccess) {
      release();
      throw Error(std::string("cuSOLVER: could not allocate ") + std::to_string(bytes) +
                  " bytes of workspace: " + cudaGetErrorString(e));
    }
  }
  ~Scratch() { release(); }
  void release() {
    if (work) cudaFree(work);
    if (info) cudaFree(info);
    work = nullptr, info = nullptr;
  }
  int read_info() const {
    int h = 0;
    const cudaError_t e = cudaMemcpy(&h, info, sizeof(int), cudaMemcpyDeviceToHost);
    CORTEX_CHECK(e == cudaSuccess, "cuSOLVER: reading info failed: ", cudaGetErrorString(e));
    return h;
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// cuSOLVER's typed entry points, by element type.
cusolverStatus_t potrf_size(int n, float* a, int* lw) {
  return cusolverDnSpotrf_bufferSize(handle(), CUBLAS_FILL_MODE_UPPER, n, a, n, lw);
}
cusolverStatus_t potrf_size(int n, double* a, int* lw) {
  return cusolverDnDpotrf_bufferSize(handle(), CUBLAS_FILL_MODE_UPPER, n, a, n, lw);
}
cusolverStatus_t potrf_run(int n, float* a, float* w, int lw, int* info) {
  return cusolverDnSpotrf(handle(), CUBLAS_FILL_MODE_UPPER, n, a, n, w, lw, info);
}
cusolverStatus_t potrf_run(int n, double* a, double* w, int lw, int* info) {
  return cusolverDnDpotrf(handle(), CUBLAS_FILL_MODE_UPPER, n, a, n, w, lw, info);
}
cusolverStatus_t syevd_size(int n, const float* a, const float* w, int* lw) {
  return cusolverDnSsyevd_bufferSize(handle(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, n, a, n, w, lw);
}
cusolverStatus_t syevd_size(int n, const double* a, const double* w, int* lw) {
  return cusolverDnDsyevd_bufferSize(handle(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, n, a, n, w, lw);
}
cusolverStatus_t syevd_run(int n, float* a, float* w, float* work, int lw, int* info) {
  return cusolverDnSsyevd(handle(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, n, a, n, w, work, lw, info);
}
cusolverStatus_t syevd_run(int n, double* a, double* w, double* work, int lw, int* info) {
  return cusolverDnDsyevd(handle(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, n, a, n, w, work, lw, info);
}
cusolverStatus_t syevdx_size(int n, const float* a, int il, int iu, int* m, const float* w, int* lw) {
  return cusolverDnSsyevdx_bufferSize(handle(), CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I, CUBLAS_FILL_MODE_UPPER,
                                      n, a, n, 0.f, 0.f, il, iu, m, w, lw);
}
cusolverStatus_t syevdx_size(int n, const double* a, int il, int iu, int* m, const double* w, int* lw) {
  return cusolverDnDsyevdx_bufferSize(handle(), CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I, CUBLAS_FILL_MODE_UPPER,
                                      n, a, n, 0.0, 0.0, il, iu, m, w, lw);
}
cusolverStatus_t syevdx_run(int n, float* a, int il, int iu, int* m, float* w, float* work, int lw, int* info) {
  return cusolverDnSsyevdx(handle(), CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I, CUBLAS_FILL_MODE_UPPER, n, a, n,
                           0.f, 0.f, il, iu, m, w, work, lw, info);
}
cusolverStatus_t syevdx_run(int n, double* a, int il, int iu, int* m, double* w, double* work, int lw, int* info) {
  return cusolverDnDsyevdx(handle(), CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I, CUBLAS_FILL_MODE_UPPER, n, a, n,
                           0.0, 0.0, il, iu, m, w, work, lw, info);
}

template <class T>
int potrf_impl(T* a, int64_t n64) {
  const int n = as_int(n64, "potrf");
  if (n == 0) return 0;
  int lw = 0;
  check(potrf_size(n, a, &lw), "potrf_bufferSize");
  Scratch s(static_cast<size_t>(lw) * sizeof(T));
  check(potrf_run(n, a, static_cast<T*>(s.work), lw, s.info), "potrf");
  const int info = s.read_info();
  CORTEX_CHECK(info >= 0, "cuSOLVER: potrf: parameter ", -info, " is wrong");
  return info;
}

template <class T>
void syevd_impl(T* a, int64_t n64, T* w) {
  const int n = as_int(n64, "syevd");
  if (n == 0) return;
  int lw = 0;
  check(syevd_size(n, a, w, &lw), "syevd_bufferSize");
  Scratch s(static_cast<size_t>(lw) * sizeof(T));
  check(syevd_run(n, a, w, static_cast<T*>(s.work), lw, s.info), "syevd");
  const int info = s.read_info();
  CORTEX_CHECK(info == 0, "eigh: the symmetric eigensolver did not converge (cuSOLVER syevd info ", info, ")");
}

template <class T>
void syevdx_impl(T* a, int64_t n64, int64_t lo, int64_t hi, T* w) {
  const int n = as_int(n64, "syevdx");
  CORTEX_CHECK(lo >= 0 && lo <= hi && hi < n64, "cuSOLVER: syevdx: expected 0 <= lo <= hi < n = ", n64, ", found lo ",
               lo, ", hi ", hi);
  const int il = static_cast<int>(lo) + 1, iu = static_cast<int>(hi) + 1;  // 1-based
  int lw = 0, found = 0;
  check(syevdx_size(n, a, il, iu, &found, w, &lw), "syevdx_bufferSize");
  Scratch s(static_cast<size_t>(lw) * sizeof(T));
  check(syevdx_run(n, a, il, iu, &found, w, static_cast<T*>(s.work), lw, s.info), "syevdx");
  const int info = s.read_info();
  CORTEX_CHECK(info == 0, "eigh_topk: the symmetric eigensolver did not converge (cuSOLVER syevdx info ", info, ")");
  CORTEX_CHECK(found == iu - il + 1, "eigh_topk: cuSOLVER syevdx found ", found, " eigenpairs, expected ", iu - il + 1);
}

}  // namespace

int potrf_lower(float* a, int64_t n) { return potrf_impl(a, n); }
int potrf_lower(double* a, int64_t n) { return potrf_impl(a, n); }
void syevd(float* a, int64_t n, float* w) { syevd_impl(a, n, w); }
void syevd(double* a, int64_t n, double* w) { syevd_impl(a, n, w); }
void syevdx(float* a, int64_t n, int64_t lo, int64_t hi, float* w) { syevdx_impl(a, n, lo, hi, w); }
void syevdx(double* a, int64_t n, int64_t lo, int64_t hi, double* w) { syevdx_impl(a, n, lo, hi, w); }

}  // namespace cortex::kernels::cuda::vendor
