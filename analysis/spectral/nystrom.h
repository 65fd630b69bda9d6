// Nystrom approximations of the Ncut eigenvectors of an N-node graph from m sampled nodes.
//
//   fowlkes_nystrom  the original method (Fowlkes, Belongie, Chung & Malik 2004, "Spectral grouping
//                    using the Nystrom method", one-shot orthogonalisation): with C = W(S, :) (m, N)
//                    and A = W(S, S), the approximation W ~ C^T A^+ C, its degrees
//                    d = C^T A^+ (C 1), Ct = C D^-1/2, Q = A^+1/2 Ct Ct^T A^+1/2 = U L U^T, and the
//                    orthonormal eigenvectors V = Ct^T A^+1/2 U L^-1/2 of D^-1/2 W D^-1/2 ~ V L V^T.
//                    Cost O(N m d + N m^2 + m^3); C is streamed in chunks (three passes), never stored.
//   AlignedCut       solve the Ncut of the sampled subgraph exactly (ncut_eigenpairs), then give
//                    every node the affinity-weighted average of its K nearest sampled nodes'
//                    eigenvectors (propagate_knn: ncut-pytorch's propagate_knn). Cost O(N m d) for
//                    the propagation; the N x m similarity is computed one chunk of rows at a time.
//
// Sampling: farthest-point sampling as ncut-pytorch does it (random pre-draw of 4m nodes, PCA to 8
// dimensions, exact FPS there), or uniform random sampling without replacement. Both are seeded
// (Philox) and deterministic.
#pragma once
#include <cstdint>
#include <functional>

#include "analysis/spectral/affinity.h"
#include "analysis/spectral/eigensolver.h"
#include "tensor/tensor.h"

namespace cortex::analysis::spectral {

enum class Sampling { Fps, Random };
const char* sampling_name(Sampling s);  // "fps", "random"

struct FpsOptions {
  int64_t pca_dims = 8;     // FPS runs on the top principal components (the reference: 8)
  double draw_ratio = 4.0;  // with N > draw_ratio * m, FPS runs on a random draw of draw_ratio * m nodes
  bool unit_rows = false;   // scale rows to unit norm first (cosine geometry; the reference normalises
                            // features before sampling when its distance is cosine)
};
// m distinct row indices (int64, in the order picked, on the CPU) of x (N, d), 1 <= m <= N. x may be
// on a device: only the draw's rows are copied to the host. The first pick is
// the first node of the random draw (node 0 when there is no draw); distance ties go to the lowest
// index, and nodes at distance 0 from the picks (duplicates) are taken only when nothing else is left.
Tensor farthest_point_sampling(const Tensor& x, int64_t m, uint64_t seed = 0, const FpsOptions& opt = {});
// m distinct indices drawn uniformly from [0, n), sorted ascending.
Tensor random_sampling(int64_t n, int64_t m, uint64_t seed = 0);
Tensor sample_nodes(const Tensor& x, int64_t m, Sampling how, uint64_t seed = 0, const FpsOptions& fps = {});

enum class EigSolver { Auto, Dense, Lanczos, Subspace };
const char* solver_name(EigSolver s);
// Auto: dense for n <= kDenseMax (Eigen's full solver is O(n^3) and unblocked), else Lanczos.
constexpr int64_t kDenseMax = 1024;

// The top-k Ncut eigenpairs of the graph on the rows of x (n, d): W = affinity(x), normalised
// D^-1/2 W D^-1/2 in place, then the chosen solver, all in x's dtype (tolerance 1e-5 relative for
// float32, 1e-9 for float64 unless opt says otherwise). Memory: the n x n matrix. x on a device:
// W and its normalisation through kernels there, the dense solver through kernels::eigh_topk and
// the matrix-free ones with their products on the device; results on the CPU.
// affinity_seconds, when given, receives the time spent on W and its normalisation; affinity_done,
// when set, is called with it as soon as that part ends (before the eigensolver starts).
Eigenpairs ncut_eigenpairs(const Tensor& x, int64_t k, Affinity kind, double t, EigSolver solver = EigSolver::Auto,
                           const EigOptions* opt = nullptr, double* affinity_seconds = nullptr,
                           const std::function<void(double seconds)>& affinity_done = {});

// AlignedCut's propagation: out (N, c) with out_i = sum_j w_ij values_j over the K sampled rows j
// of xs (m, d) with the largest affinity to x_i (ties: lower index first), w_ij = W(x_i, xs_j) /
// sum_j' W(x_i, xs_j'). Computed in x's dtype on x's device (xs on the same one), per chunk of rows,
// by kernels::knn_affinity (the K best samples fused with the similarity: no chunk x m block is
// kept) and kernels::knn_propagate; weights are formed relative to the best neighbour, so they
// never underflow to 0/0. values (m, c) is converted to x's dtype and device; K is clamped to m, as
// the reference does. out is on x's device.
// `progress`, when set, is called after each chunk with the fraction of the N rows done (0, 1].
using ChunkProgress = std::function<void(double fraction)>;
Tensor propagate_knn(const Tensor& values, const Tensor& x, const Tensor& xs, int64_t knn, Affinity kind, double t,
                     int64_t chunk = 8192, const ChunkProgress& progress = {});

// Fowlkes et al.'s Nystrom Ncut (above) with the sampled rows `sample` (m, int64) of x (N, d).
// Approximate degrees below kDegreeFloor * max are raised to it; A's pseudo-inverse drops
// eigenvalues below kPinvRcond * max. Throws when fewer than k eigenvalues of Q are positive.
constexpr double kPinvRcond = 1e-8;
// `progress` as for propagate_knn, over the three passes together.
Eigenpairs fowlkes_nystrom(const Tensor& x, const Tensor& sample, int64_t k, Affinity kind, double t,
                           int64_t chunk = 8192, const ChunkProgress& progress = {});

}  // namespace cortex::analysis::spectral
