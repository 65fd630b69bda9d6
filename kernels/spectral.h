// Spectral clustering's heavy passes over N nodes and m sampled nodes (analysis/spectral,
// docs/spectral.md): the K nearest samples of every node, found from the affinity computed on the
// fly (no N x m matrix is kept), and the propagation of the samples' values to every node by the
// affinity-weighted average of its K neighbours. Entry: kernels/spectral.cpp; CPU:
// kernels/cpu/spectral.cpp; CUDA and the emulated device: kernels/cuda/spectral.cu.
#pragma once
#include "tensor/tensor.h"

// Parameter types in namespace cortex: see the note in kernels/conv.h.
namespace cortex {
// The affinities of analysis/spectral/affinity.h:
//   Cosine: W(x, y) = exp((cos(x, y) - 1) / t)          t: the temperature
//   Rbf:    W(x, y) = exp(-|x - y|^2 / (2 t^2))          t: sigma
enum class KnnKernel { Cosine, Rbf };
struct KnnAffinityParams {
  KnnKernel kind = KnnKernel::Cosine;
  double t = 1.0;  // finite, > 0
};
}  // namespace cortex

namespace cortex::kernels {
using cortex::KnnAffinityParams;
using cortex::KnnKernel;

// For each row x_i of x (N, d), the k rows of samples (m, d) with the largest affinity to it,
// 1 <= k <= m: values (N, k) = log W(x_i, s_j) in x's dtype, descending, indices (N, k) int64 = j;
// equal affinities keep the lower index first. float32/float64 (one dtype), any strides, finite
// values expected (a NaN's rank is unspecified). The ranking and the values follow the CPU's
// arithmetic: rows are prepared as analysis/spectral's prepare_rows does (cosine: x / max(|x|,
// 1e-12) in float64 rounded to the dtype; rbf: rows as given, |x|^2 / 2 summed in float64), the
// score is s = x.y (cosine) or x.y - |y|^2 / 2 (rbf) in the dtype, and
//   cosine: log W = (min(s, 1) - 1) / t        rbf: log W = min(s - |x|^2 / 2, 0) / t^2.
// Rbf callers centre x and samples on one point first (analysis/spectral uses the samples' mean):
// the distance is then computed with less cancellation. Log values, because rbf affinities of
// far-apart points underflow while their ratios (what the propagation needs) do not.
struct KnnAffinity {
  Tensor values, indices;
  // Every tensor of the result, for the dispatcher that moves results between devices (kernels/dispatch.h).
  template <class F> void for_each_tensor(F&& f) { f(values); f(indices); }
};
KnnAffinity knn_affinity(const Tensor& x, const Tensor& samples, int64_t k, const KnnAffinityParams& p);

// out (N, c) with out_i = sum_q w_iq values[indices_iq] / sum_q w_iq, w_iq = exp(log_w_iq - log_w_i0):
// the weighted average of the rows of values (m, c) named by indices (N, k) (int64, each in [0, m),
// checked), with weights relative to the first column (knn_affinity's best neighbour) so
// that they never underflow to 0/0. log_w (N, k) and values of one float dtype; sums in float64.
Tensor knn_propagate(const Tensor& log_w, const Tensor& indices, const Tensor& values);

}  // namespace cortex::kernels
