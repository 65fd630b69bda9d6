// Graph affinities for Normalized Cut (Shi & Malik 2000) as AlignedCut / ncut-pytorch build them,
// the Ncut normalisation D^-1/2 W D^-1/2, and the reference's degree-quantile search for the RBF
// bandwidth. docs/spectral.md has the equations and the choices.
//
//   Cosine: W(x, y) = exp(-(1 - cos(x, y)) / t)          t: the temperature (ncut-pytorch's
//                                                        affinity_focal_gamma); lower t, sharper cuts
//   Rbf:    W(x, y) = exp(-|x - y|^2 / (2 sigma^2))      sigma: the bandwidth
//
// Both kernels are positive semi-definite (exp of a PSD Gram matrix, Schur product theorem), so
// every normalised affinity here has its spectrum in [0, 1] and its top eigenvalue is 1.
//
// A node's affinity to itself is 1 (W_ii = K(x, x)): self-loops keep every degree >= 1, so the
// normalisation never divides by zero, and they keep W positive semi-definite, which the Nystrom
// methods need. Zero feature rows have cosine 0 with every other row (as torch's F.normalize).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::analysis::spectral {

enum class Affinity { Cosine, Rbf };
const char* affinity_name(Affinity a);  // "cosine", "rbf"

// W (n, m) between the rows of x (n, d) and y (m, d): float32 or float64, one dtype, finite values;
// `t` > 0 is the cosine temperature or the RBF sigma. Computed from one GEMM (x y^T) per call, in
// the inputs' dtype; RBF distances come from |x|^2 - 2 x.y + |y|^2 on mean-centred copies (less
// cancellation) and are clamped at 0. Returns a new contiguous tensor of x's dtype.
Tensor affinity(const Tensor& x, const Tensor& y, Affinity kind, double t);
// The square affinity of x with itself: symmetric, diagonal exactly 1.
Tensor affinity(const Tensor& x, Affinity kind, double t);

// The Ncut normalisation of a square symmetric affinity w (n, n): a = D^-1/2 w D^-1/2 with
// D = diag(w 1). Degrees below kDegreeFloor * (largest degree) are raised to that floor (the
// documented fallback for an isolated or zero-degree node: its row of `a` stays finite and small
// instead of 0/0); throws when no degree is positive. Returns a new tensor and the degrees used.
constexpr double kDegreeFloor = 1e-8;
struct Normalized {
  Tensor a;       // (n, n), w's dtype
  Tensor degree;  // (n), float64, after the floor
};
Normalized ncut_normalize(const Tensor& w);

// The RBF bandwidth search of ncut-pytorch (find_sigma_by_degree): on the points x (n, d) (the
// reference passes a farthest-point subsample of 1000 nodes; ncut() does the same),
//   target = quantile_q of the per-node mean affinity at sigma0 = sum of the per-feature std devs,
//   then sigma is bisected (doubling from 0.5 until bracketed) until the mean affinity of all
//   pairs is within rtol * target of the target.
// Affinities here exclude the diagonal, as the reference's zero_diag. Points that are all equal
// (sigma0 = 0: every affinity is 1 whatever sigma is) return the documented fallback sigma = 1.
struct SigmaSearch {
  double quantile = 0.25;  // quantile_sigma
  double init = 0.5;       // init_sigma
  double rtol = 1e-2;
  int64_t max_iter = 100;
};
double find_sigma_by_degree(const Tensor& x, const SigmaSearch& opt = {});

namespace detail {
// x as a host, contiguous (n, d) float32/float64 tensor with finite values; throws naming `op` and
// `name` otherwise (the row of the first bad value is in the message).
Tensor host_features(const Tensor& x, const char* op, const char* name);
// The same checks for x on any device, where x stays: a CPU x goes through host_features; on a
// device the finiteness test is one elementwise pass and one sum (kernels), and only a failing x is
// copied to the host to name the row.
Tensor device_features(const Tensor& x, const char* op, const char* name);
// D^-1/2 W D^-1/2 with W = affinity(x, kind, t) on x's device (not the CPU), through kernels: one
// GEMM, elementwise passes and a row sum (docs/spectral.md, "Devices"). The quantities of affinity()
// and ncut_normalize() to rounding: cosine rows scaled to unit norm, rbf rows centred on their mean,
// exp of the clamped score, W made exactly symmetric with a unit diagonal, degrees floored at
// kDegreeFloor * max. x: checked (n, d) float32/float64; returns (n, n) on x's device.
Tensor normalized_affinity_on_device(const Tensor& x, Affinity kind, double t);
// Throws naming `op` unless t (cosine temperature, or rbf sigma) is finite and > 0.
void check_t(double t, Affinity kind, const char* op);
// Column means of a row-major (n, d) matrix, accumulated in float64 (zeros when n == 0).
template <class T>
std::vector<T> column_mean(const T* x, int64_t n, int64_t d);

// Plain-pointer building blocks shared by the Nystrom propagation and the Fowlkes passes, so that
// neither needs to materialise more than one chunk of affinities. Matrices are row-major.
//
// Prepares rows of x (n, d) for similarity(): cosine scales each row to unit norm (zero rows stay
// zero); rbf subtracts `centre` (d). `half_sq` (n) receives |row|^2 / 2 after preparation.
template <class T>
void prepare_rows(const T* x, int64_t n, int64_t d, Affinity kind, const T* centre, T* out, T* half_sq);
// s (n, m) = x y^T on prepared rows, minus half_sq_y for rbf: a score whose order along a row is
// the order of the affinities, and from which affinity_of_score() gives the affinity.
template <class T>
void similarity(const T* x, int64_t n, const T* y, int64_t m, int64_t d, Affinity kind, const T* half_sq_y, T* s);
// w (n, m) = the affinities of prepared rows x against prepared rows y (similarity, then the
// elementwise exp, in place in w); half_sq_x is only read for rbf.
template <class T>
void affinity_block(const T* x, const T* half_sq_x, int64_t n, const T* y, const T* half_sq_y, int64_t m, int64_t d,
                    Affinity kind, T t, T* w);
// The affinity for a score of row x: cosine exp((s - 1) / t); rbf exp((s - half_sq_x) / sigma^2)
// = exp(-|x - y|^2 / (2 sigma^2)), the distance clamped at 0.
template <class T>
inline T affinity_of_score(T s, T half_sq_x, Affinity kind, T t) {
  if (kind == Affinity::Cosine) return std::exp((std::min(s, T(1)) - T(1)) / t);
  return std::exp(std::min(s - half_sq_x, T(0)) / (t * t));
}
// log W(s) - log W(s_ref) for two scores of one row: normalises KNN weights without underflow.
template <class T>
inline T log_ratio(T s, T s_ref, Affinity kind, T t) {
  return kind == Affinity::Cosine ? (s - s_ref) / t : (s - s_ref) / (t * t);
}
}  // namespace detail

}  // namespace cortex::analysis::spectral
