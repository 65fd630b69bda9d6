// LinBridge statistics (analysis/linbridge.h); the derivations are in docs/linbridge.md.
#include "analysis/linbridge.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/autograd.h"
#include "dist/comm.h"
#include "tensor/error.h"

namespace cortex::analysis {

namespace {

using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapF = Eigen::Map<RowMatF>;
using RankMat = Eigen::Matrix<int32_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXd;
using RowVec = Eigen::RowVectorXd;

// A float64 contiguous copy of t as a row-major matrix (rows, cols).
RowMat to_mat(const Tensor& t, int64_t rows, int64_t cols) {
  const Tensor c = t.to(DType::Float64).contiguous();
  return Eigen::Map<const RowMat>(c.data<double>(), rows, cols);
}

Tensor from_mat(const RowMat& m, DType dt) {
  Tensor t = empty({int64_t(m.rows()), int64_t(m.cols())}, DType::Float64);
  Eigen::Map<RowMat>(t.data<double>(), m.rows(), m.cols()) = m;
  return dt == DType::Float64 ? t : t.to(dt);
}
Tensor from_matf(const RowMatF& m) {
  Tensor t = empty({int64_t(m.rows()), int64_t(m.cols())}, DType::Float32);
  Eigen::Map<RowMatF>(t.data<float>(), m.rows(), m.cols()) = m;
  return t;
}
Tensor from_vec(const Vec& v) {
  Tensor t = empty({int64_t(v.size())}, DType::Float64);
  Eigen::Map<Vec>(t.data<double>(), v.size()) = v;
  return t;
}

// Per column v of pred (N, V), the rank of each row (0 = smallest; ties by row index), int32 (one
// of the N x V buffers); centred() turns rows of it into AFD's regressor t - 1/2, t = rank / (N - 1)
// (docs/linbridge.md, "AFD").
template <class M>
RankMat ranks_of(const M& pred) {
  const int64_t N = pred.rows(), V = pred.cols();
  RankMat t(N, V);
#pragma omp parallel
  {
    std::vector<int64_t> idx(N);
#pragma omp for schedule(static)
    for (int64_t v = 0; v < V; ++v) {
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return pred(a, v) < pred(b, v); });
      for (int64_t r = 0; r < N; ++r) t(idx[r], v) = int32_t(r);
    }
  }
  return t;
}

RowMat centred(const RankMat& R, int64_t s, int64_t b) {
  return (R.middleRows(s, b).cast<double>() / double(R.rows() - 1)).array() - 0.5;
}

// sum_n (t_n - 1/2)^2 for t_n = n / (N - 1), n = 0..N-1: the regressor's sum of squares.
double rank_ss(int64_t N) { return double(N) * double(N + 1) / (12.0 * double(N - 1)); }

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

void finish_shares(LinBridgeResult& r, const Vec& total, const Vec& bias) {
  Vec share(total.size());
  for (int64_t v = 0; v < total.size(); ++v) share[v] = total[v] > 0 ? std::max(0.0, bias[v]) / total[v] : 0.0;
  r.energy_total = from_vec(total);
  r.energy_bias = from_vec(bias);
  r.energy_share = from_vec(share);
}

void finish_afd(LinBridgeResult& r, const Vec& cross, int64_t N) {
  const Vec slope = cross / rank_ss(N);
  r.afd_slope = from_vec(slope);
  r.afd = from_vec(slope.cwiseAbs());
}

void finish_energy_afd(LinBridgeResult& r, const Vec& ecross, int64_t N) {
  const Vec slope = ecross / rank_ss(N);
  r.afd_energy_slope = from_vec(slope);
  r.afd_energy = from_vec(slope.cwiseAbs());
}

Vec inverse_or_zero(const Vec& x) {
  Vec y(x.size());
  for (int64_t v = 0; v < x.size(); ++v) y[v] = x[v] > 0 ? 1.0 / x[v] : 0.0;
  return y;
}

}  // namespace

double roc_auc(const std::vector<double>& positives, const std::vector<double>& negatives) {
  CORTEX_CHECK(!positives.empty() && !negatives.empty(), "roc_auc: expected positives and negatives, found ",
               positives.size(), " and ", negatives.size());
  double wins = 0;
  for (double p : positives)
    for (double q : negatives) wins += p > q ? 1.0 : p == q ? 0.5 : 0.0;
  return wins / (double(positives.size()) * double(negatives.size()));
}

Tensor afd_slopes(const Tensor& gain, const Tensor& pred) {
  CORTEX_CHECK(gain.defined() && pred.defined() && gain.dim() == 2 && gain.shape() == pred.shape() && gain.size(0) >= 2,
               "afd_slopes: expected gain and pred of one shape (N >= 2, V), found ",
               gain.defined() ? shape_str(gain.shape()) : "undefined", " and ",
               pred.defined() ? shape_str(pred.shape()) : "undefined");
  const int64_t N = gain.size(0), V = gain.size(1);
  const RankMat R = ranks_of(to_mat(pred, N, V));
  const RowMat g = to_mat(gain, N, V);
  return from_vec(g.cwiseProduct(centred(R, 0, N)).colwise().sum().transpose() / rank_ss(N));
}

// ------------------------------------------------------------------------------ closed form
LinBridgeResult linbridge_two_layer(const TwoLayerParams& p, const Tensor& Z, const LinBridgeOptions& opt) {
  CORTEX_CHECK(p.W1.defined() && p.b1.defined() && p.W2.defined() && p.b2.defined() && p.W1.dim() == 2 &&
                   p.W2.dim() == 2,
               "linbridge_two_layer: expected W1 (H, F), b1 (H), W2 (V, H), b2 (V)");
  const int64_t H = p.W1.size(0), F = p.W1.size(1), V = p.W2.size(0);
  CORTEX_CHECK(p.b1.numel() == H && p.W2.size(1) == H && p.b2.numel() == V, "linbridge_two_layer: expected b1 (", H,
               "), W2 (V, ", H, "), b2 (V); found b1 ", shape_str(p.b1.shape()), ", W2 ", shape_str(p.W2.shape()),
               ", b2 ", shape_str(p.b2.shape()));
  CORTEX_CHECK(Z.defined() && Z.dim() == 2 && Z.size(1) == F && Z.size(0) >= 2,
               "linbridge_two_layer: expected stimuli Z (N >= 2, ", F, "), found ",
               Z.defined() ? shape_str(Z.shape()) : "undefined");
  CORTEX_CHECK(opt.block >= 1, "linbridge_two_layer: block must be >= 1, found ", opt.block);
  const int64_t N = Z.size(0), blk = opt.block;
  const RowMat W1 = to_mat(p.W1, H, F), A = to_mat(p.W2, V, H);
  const RowVec b1 = to_mat(p.b1, 1, H), b2 = to_mat(p.b2, 1, V);
  const int64_t total_work = 2 * N;

  // Pass 1: predictions, zbar, m = E s', S = E[s' s'^T]. The N x V buffers are float32: the
  // predictions, the linear part's and the ranks.
  Tensor pred_t = empty({N, V}, DType::Float32), lin_t = empty({N, V}, DType::Float32);
  MapF pred(pred_t.data<float>(), N, V), lin(lin_t.data<float>(), N, V);
  RowVec zsum = RowVec::Zero(F), msum = RowVec::Zero(H);
  RowMat SS = RowMat::Zero(H, H);
  // Blocks of stimuli are the units that MPI ranks share (docs/distributed.md): a block's partial
  // sums are added in block order on every rank, as one process adds them, so the sums are the
  // same bits for any number of ranks.
  const int64_t nblocks = (N + blk - 1) / blk;
  dist::for_units(
      nblocks,
      [&](int64_t u) {
        const int64_t s = u * blk, b = std::min(blk, N - s);
        const RowMat Zb = to_mat(Z.narrow(0, s, b), b, F);
        RowMat Hb = (Zb * W1.transpose()).rowwise() + b1;
        RowMat Sb = Hb.unaryExpr([](double x) { return sigmoid(x); });
        const RowMat Sp = Sb.array() * (1.0 - Sb.array());
        const RowMatF pb = ((Sb * A.transpose()).rowwise() + b2).cast<float>();
        const RowMat zs = Zb.colwise().sum(), ms = Sp.colwise().sum(), ss = Sp.transpose() * Sp;
        if (opt.progress) opt.progress(s + b, total_work);
        return std::vector<Tensor>{from_matf(pb), from_mat(zs, DType::Float64), from_mat(ms, DType::Float64),
                                   from_mat(ss, DType::Float64)};
      },
      [&](int64_t u, std::vector<Tensor>& t) {
        const int64_t s = u * blk, b = std::min(blk, N - s);
        pred.middleRows(s, b) = Eigen::Map<const RowMatF>(t[0].data<float>(), b, V);
        zsum += Eigen::Map<const RowVec>(t[1].data<double>(), F);
        msum += Eigen::Map<const RowVec>(t[2].data<double>(), H);
        SS += Eigen::Map<const RowMat>(t[3].data<double>(), H, H);
      });
  const RowVec zbar = zsum / double(N), m = msum / double(N);
  const RowMat C = SS / double(N) - m.transpose() * m;  // Cov(s')
  const RowMat G = W1 * W1.transpose();                  // (H, H)
  const RowMat Am = A * m.asDiagonal();                  // W2 diag(m)
  const RowMat Q = Am * G;
  const RowMat B = A.cwiseProduct(Q);                    // B[v,h] = W2[v,h] (G (W2_v . m))_h
  const Vec norm2 = Am.cwiseProduct(Q).rowwise().sum();  // ||JM_inherent_v||_F^2
  const Vec bias = (A * G.cwiseProduct(C)).cwiseProduct(A).rowwise().sum();  // E||dJM_v||_F^2
  const Vec total = bias + norm2;                                             // E||JM_v||_F^2

  // f(zbar), and pass 2: f_lin, gains, AFD's cross products.
  const RowVec hbar = zbar * W1.transpose() + b1;
  const RowVec fbar = hbar.unaryExpr([](double x) { return sigmoid(x); }) * A.transpose() + b2;
  const RankMat T = ranks_of(pred);
  RowMat gain_all;
  if (opt.keep_gain) gain_all.resize(N, V);
  Vec inv_norm2(V);
  for (int64_t v = 0; v < V; ++v) inv_norm2[v] = norm2[v] > 0 ? 1.0 / norm2[v] : 0.0;
  Vec cross = Vec::Zero(V), ecross = Vec::Zero(V);
  const Vec inv_total = inverse_or_zero(total);
  dist::for_units(
      nblocks,
      [&](int64_t u) {
        const int64_t s = u * blk, b = std::min(blk, N - s);
        const RowMat Zb = to_mat(Z.narrow(0, s, b), b, F);
        const RowMat Hb = (Zb * W1.transpose()).rowwise() + b1;
        const RowMat Sb = Hb.unaryExpr([](double x) { return sigmoid(x); });
        const RowMat D = (Sb.array() * (1.0 - Sb.array())).matrix().rowwise() - m;  // d(z) = s'(h) - m
        RowMat Gb = (D * B.transpose()) * inv_norm2.asDiagonal();                  // gain_v(z)
        const RowMat cb = Gb.cwiseProduct(centred(T, s, b)).colwise().sum();
        const RowMat U = ((Zb.rowwise() - zbar) * W1.transpose()) * m.asDiagonal();
        const RowMatF lb = ((U * A.transpose()).rowwise() + fbar).cast<float>();
        if (opt.progress) opt.progress(N + s + b, total_work);
        std::vector<Tensor> out{from_mat(cb, DType::Float64), from_matf(lb)};
        if (opt.keep_gain) out.push_back(from_mat(Gb, DType::Float64));
        if (opt.energy_afd) {  // ||dJM_v(z)||^2 = (a_v * d)^T G (a_v * d), stimulus by stimulus
          const RowMat Tc = centred(T, s, b);
          Vec eb = Vec::Zero(V);
          for (int64_t i = 0; i < b; ++i) {
            const RowMat Ad = A * D.row(i).asDiagonal();
            const Vec e = (Ad * G).cwiseProduct(Ad).rowwise().sum();
            eb += e.cwiseProduct(inv_total).cwiseProduct(Tc.row(i).transpose());
          }
          out.push_back(from_mat(RowMat(eb.transpose()), DType::Float64));
        }
        return out;
      },
      [&](int64_t u, std::vector<Tensor>& t) {
        const int64_t s = u * blk, b = std::min(blk, N - s);
        cross += Eigen::Map<const Vec>(t[0].data<double>(), V);
        lin.middleRows(s, b) = Eigen::Map<const RowMatF>(t[1].data<float>(), b, V);
        if (opt.keep_gain) gain_all.middleRows(s, b) = Eigen::Map<const RowMat>(t[2].data<double>(), b, V);
        if (opt.energy_afd) ecross += Eigen::Map<const Vec>(t[opt.keep_gain ? 3 : 2].data<double>(), V);
      });

  LinBridgeResult r;
  r.mode = "closed-form";
  r.z_mean = from_vec(zbar.transpose());
  r.inherent = from_mat(Am * W1, DType::Float64);
  finish_shares(r, total, bias);
  finish_afd(r, cross, N);
  if (opt.energy_afd) finish_energy_afd(r, ecross, N);
  r.pred_full = pred_t;
  r.pred_linear = lin_t;
  if (opt.keep_gain) r.gain = from_mat(gain_all, DType::Float32);
  r.peak_bytes = int64_t(sizeof(double)) * blk * (F + 3 * H + 2 * V);
  return r;
}

LinBridgeResult linbridge_linear(const Tensor& W, const Tensor& b, const Tensor& Z, const LinBridgeOptions& opt) {
  CORTEX_CHECK(W.defined() && b.defined() && W.dim() == 2 && b.numel() == W.size(0),
               "linbridge_linear: expected W (V, F) and b (V), found ", W.defined() ? shape_str(W.shape()) : "undefined",
               " and ", b.defined() ? shape_str(b.shape()) : "undefined");
  const int64_t V = W.size(0), F = W.size(1);
  CORTEX_CHECK(Z.defined() && Z.dim() == 2 && Z.size(1) == F && Z.size(0) >= 2,
               "linbridge_linear: expected stimuli Z (N >= 2, ", F, "), found ", Z.defined() ? shape_str(Z.shape()) : "undefined");
  CORTEX_CHECK(opt.block >= 1, "linbridge_linear: block must be >= 1, found ", opt.block);
  const int64_t N = Z.size(0);
  const RowMat Wm = to_mat(W, V, F);
  const RowVec bm = to_mat(b, 1, V);
  RowMat pred(N, V);
  RowVec zsum = RowVec::Zero(F);
  for (int64_t s = 0; s < N; s += opt.block) {
    const int64_t bb = std::min(opt.block, N - s);
    const RowMat Zb = to_mat(Z.narrow(0, s, bb), bb, F);
    pred.middleRows(s, bb) = (Zb * Wm.transpose()).rowwise() + bm;
    zsum += Zb.colwise().sum();
    if (opt.progress) opt.progress(s + bb, N);
  }
  LinBridgeResult r;
  r.mode = "closed-form";
  r.z_mean = from_vec(zsum.transpose() / double(N));
  r.inherent = from_mat(Wm, DType::Float64);
  const Vec total = Wm.rowwise().squaredNorm();
  finish_shares(r, total, Vec::Zero(V));
  finish_afd(r, Vec::Zero(V), N);
  if (opt.energy_afd) finish_energy_afd(r, Vec::Zero(V), N);
  r.pred_full = from_mat(pred, DType::Float32);
  r.pred_linear = r.pred_full;
  if (opt.keep_gain) r.gain = zeros({N, V}, DType::Float32);
  r.peak_bytes = int64_t(sizeof(double)) * opt.block * (F + V);
  return r;
}

// ------------------------------------------------------------------------------ autodiff
LinBridgeResult linbridge_autodiff(const BatchFn& f, const Tensor& X, const LinBridgeOptions& opt) {
  CORTEX_CHECK(f != nullptr, "linbridge_autodiff: expected a function, found none");
  CORTEX_CHECK(X.defined() && X.dim() >= 2 && X.size(0) >= 2 && is_floating(X.dtype()),
               "linbridge_autodiff: expected float stimuli X (N >= 2, ...), found ",
               X.defined() ? shape_str(X.shape()) : "undefined");
  CORTEX_CHECK(opt.memory_budget > 0, "linbridge_autodiff: memory_budget must be > 0, found ", opt.memory_budget);
  const int64_t N = X.size(0), F = X.numel() / N;
  const DType dt = X.dtype();
  const int64_t esize = dt == DType::Float64 ? 8 : 4;
  int64_t V = 0;
  {
    NoGradGuard ng;
    const Tensor y = f(X.narrow(0, 0, 1));
    CORTEX_CHECK(y.defined() && y.dim() == 2 && y.size(0) == 1, "linbridge_autodiff: f must map (B, ...) to (B, V), "
                 "found ", y.defined() ? shape_str(y.shape()) : "undefined", " for B = 1");
    V = y.size(1);
  }
  CORTEX_CHECK(V >= 1 && F >= 1, "linbridge_autodiff: expected at least one output and one input per stimulus");
  // Forward mode pushes one tangent per input element, reverse one cotangent per output: fewer passes wins.
  const bool forward = F <= V;
  const int64_t ndir = forward ? F : V;
  // Block of b stimuli and k directions: the tangents (k, b, F) and outputs (k, b, V) fit the budget.
  int64_t b = std::min<int64_t>(N, std::max<int64_t>(1, opt.block));
  int64_t k = 1;
  for (;;) {
    k = std::min<int64_t>(ndir, opt.memory_budget / std::max<int64_t>(1, b * (F + V) * esize));
    if (k >= 1 || b == 1) break;
    b = std::max<int64_t>(1, b / 2);
  }
  CORTEX_CHECK(k >= 1, "linbridge_autodiff: memory_budget of ", opt.memory_budget,
               " bytes is below one direction of one stimulus (", (F + V) * esize, " bytes)");
  Shape xshape = X.shape();
  const int64_t total_work = 2 * N;

  // Basis (k, b, *x) with direction j0 + i set to 1 for every stimulus of the block.
  auto basis = [&](int64_t j0, int64_t kk, int64_t bb, int64_t width, const Shape& item) {
    Tensor e = zeros({kk, bb, width}, DType::Float64);
    double* pe = e.data<double>();
    for (int64_t i = 0; i < kk; ++i)
      for (int64_t n = 0; n < bb; ++n) pe[(i * bb + n) * width + j0 + i] = 1.0;
    Shape s{kk, bb};
    s.insert(s.end(), item.begin(), item.end());
    return e.to(dt).reshape(s);
  };
  const Shape item(xshape.begin() + 1, xshape.end());
  const Shape out_item{V};

  // One block's Jacobian pieces: calls use(j0, kk, P) with P (kk, bb, width) float64 as a matrix
  // (kk * bb, width): forward, P[i, n, v] = J_n[v, j0 + i]; reverse, P[i, n, j] = J_n[j0 + i, j].
  auto jac_block = [&](const Tensor& xb, const std::function<void(int64_t, int64_t, const RowMat&)>& use,
                       Tensor* outputs) {
    const int64_t bb = xb.size(0);
    if (forward) {
      for (int64_t j0 = 0; j0 < F; j0 += k) {
        const int64_t kk = std::min(k, F - j0);
        BatchedScope bs(1);
        JvpResult r = jvp([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in[0])}; }, {xb},
                          {basis(j0, kk, bb, F, item)});
        if (outputs && j0 == 0) *outputs = detach(r.outputs[0]);
        use(j0, kk, to_mat(r.tangents[0], kk * bb, V));
      }
    } else {
      VjpResult r = vjp([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in[0])}; }, {xb});
      if (outputs) *outputs = detach(r.outputs[0]);
      for (int64_t j0 = 0; j0 < V; j0 += k) {
        const int64_t kk = std::min(k, V - j0);
        BatchedScope bs(1);
        const std::vector<Tensor> g = r.pullback({basis(j0, kk, bb, V, out_item)});
        use(j0, kk, to_mat(g[0], kk * bb, F));
      }
    }
  };

  // Pass 1: predictions, sum of J (V, F), sum of ||J_v||^2. Blocks of b stimuli are the units MPI
  // ranks share (docs/distributed.md): a unit returns its block's predictions and its partial sums
  // (float64), added in block order on every rank as one process adds them, so the result is the
  // same bits for any number of ranks. (b depends on the stimuli, --block and the memory budget,
  // never on the ranks.)
  Tensor pred_t = empty({N, V}, DType::Float32), lin_t = empty({N, V}, DType::Float32);
  MapF pred(pred_t.data<float>(), N, V), lin(lin_t.data<float>(), N, V);
  RowMat Jsum = RowMat::Zero(V, F);
  Vec sq = Vec::Zero(V);
  RowVec zsum = RowVec::Zero(F);
  const int64_t nblocks = (N + b - 1) / b;
  dist::for_units(
      nblocks,
      [&](int64_t u) {
        const int64_t s = u * b, bb = std::min(b, N - s);
        const Tensor xb = X.narrow(0, s, bb).contiguous();
        RowMat Jb = RowMat::Zero(V, F);
        Vec sqb = Vec::Zero(V);
        Tensor out;
        jac_block(
            xb,
            [&](int64_t j0, int64_t kk, const RowMat& P) {
              if (opt.jacobian_sink) opt.jacobian_sink({s, bb, j0, kk, int64_t(P.cols()), forward, P.data()});
              for (int64_t i = 0; i < kk; ++i) {
                const auto rows = P.middleRows(i * bb, bb);
                if (forward) {
                  Jb.col(j0 + i) = rows.colwise().sum().transpose();
                  sqb += rows.cwiseAbs2().colwise().sum().transpose();
                } else {
                  Jb.row(j0 + i) = rows.colwise().sum();
                  sqb[j0 + i] = rows.squaredNorm();
                }
              }
            },
            &out);
        const RowMat zs = to_mat(xb, bb, F).colwise().sum();
        if (opt.progress) opt.progress(s + bb, total_work);
        return std::vector<Tensor>{from_matf(to_mat(out, bb, V).cast<float>()), from_mat(Jb, DType::Float64),
                                   from_vec(sqb), from_mat(zs, DType::Float64)};
      },
      [&](int64_t u, std::vector<Tensor>& t) {
        const int64_t s = u * b, bb = std::min(b, N - s);
        pred.middleRows(s, bb) = Eigen::Map<const RowMatF>(t[0].data<float>(), bb, V);
        Jsum += Eigen::Map<const RowMat>(t[1].data<double>(), V, F);
        sq += Eigen::Map<const Vec>(t[2].data<double>(), V);
        zsum += Eigen::Map<const RowVec>(t[3].data<double>(), F);
      });
  const RowMat Jbar = Jsum / double(N);
  const RowVec zbar = zsum / double(N);
  const Vec norm2 = Jbar.rowwise().squaredNorm();
  const Vec total = sq / double(N);
  const Vec bias = total - norm2;  // E||J - Jbar||^2 = E||J||^2 - ||Jbar||^2, accumulated in float64
  Vec inv_norm2(V);
  for (int64_t v = 0; v < V; ++v) inv_norm2[v] = norm2[v] > 0 ? 1.0 / norm2[v] : 0.0;

  // Pass 2: gain_v(z_n) = <J_n[v], Jbar_v> / ||Jbar_v||^2 - 1, AFD's cross products; the same
  // units, each returning its block's partial cross products (and gains when kept).
  const RankMat T = ranks_of(pred);
  Vec cross = Vec::Zero(V), ecross = Vec::Zero(V);
  const Vec inv_total = inverse_or_zero(total);
  RowMat gain_all;
  if (opt.keep_gain) gain_all.resize(N, V);
  dist::for_units(
      nblocks,
      [&](int64_t u) {
        const int64_t s = u * b, bb = std::min(b, N - s);
        const Tensor xb = X.narrow(0, s, bb).contiguous();
        RowMat dot = RowMat::Zero(bb, V), sqn = RowMat::Zero(opt.energy_afd ? bb : 0, V);  // sqn: ||J_n[v]||^2
        jac_block(
            xb,
            [&](int64_t j0, int64_t kk, const RowMat& P) {
              for (int64_t i = 0; i < kk; ++i) {
                const auto rows = P.middleRows(i * bb, bb);
                if (forward) {  // rows (bb, V) = J_n[:, j]
                  dot += rows * Jbar.col(j0 + i).asDiagonal();
                  if (opt.energy_afd) sqn += rows.cwiseAbs2();
                } else {  // rows (bb, F) = J_n[v, :]
                  dot.col(j0 + i) += rows * Jbar.row(j0 + i).transpose();
                  if (opt.energy_afd) sqn.col(j0 + i) += rows.rowwise().squaredNorm();
                }
              }
            },
            nullptr);
        RowMat Gb = (dot * inv_norm2.asDiagonal()).array() - 1.0;
        for (int64_t v = 0; v < V; ++v)
          if (norm2[v] <= 0) Gb.col(v).setZero();
        const RowMat cb = Gb.cwiseProduct(centred(T, s, bb)).colwise().sum();
        std::vector<Tensor> res{from_mat(cb, DType::Float64)};
        if (opt.energy_afd) {  // ||J_n[v] - Jbar_v||^2 = ||J_n[v]||^2 - 2 <J_n[v], Jbar_v> + ||Jbar_v||^2
          const RowMat e = ((sqn - 2.0 * dot).rowwise() + norm2.transpose()) * inv_total.asDiagonal();
          res.push_back(from_mat(RowMat(e.cwiseProduct(centred(T, s, bb)).colwise().sum()), DType::Float64));
        }
        if (opt.keep_gain) res.push_back(from_mat(Gb, DType::Float64));
        if (opt.progress) opt.progress(N + s + bb, total_work);
        return res;
      },
      [&](int64_t u, std::vector<Tensor>& t) {
        const int64_t s = u * b, bb = std::min(b, N - s);
        cross += Eigen::Map<const Vec>(t[0].data<double>(), V);
        if (opt.energy_afd) ecross += Eigen::Map<const Vec>(t[1].data<double>(), V);
        if (opt.keep_gain) gain_all.middleRows(s, bb) = Eigen::Map<const RowMat>(t.back().data<double>(), bb, V);
      });

  // f_lin(z) = f(zbar) + Jbar (z - zbar).
  RowVec fbar;
  {
    NoGradGuard ng;
    Shape one = xshape;
    one[0] = 1;
    fbar = to_mat(f(from_mat(zbar, dt).reshape(one)), 1, V);
  }
  for (int64_t s = 0; s < N; s += b) {
    const int64_t bb = std::min(b, N - s);
    lin.middleRows(s, bb) =
        (((to_mat(X.narrow(0, s, bb), bb, F).rowwise() - zbar) * Jbar.transpose()).rowwise() + fbar).cast<float>();
  }

  LinBridgeResult r;
  r.mode = forward ? "forward" : "reverse";
  r.z_mean = from_vec(zbar.transpose());
  r.inherent = from_mat(Jbar, DType::Float64);
  finish_shares(r, total, bias);
  finish_afd(r, cross, N);
  if (opt.energy_afd) finish_energy_afd(r, ecross, N);
  r.pred_full = pred_t;
  r.pred_linear = lin_t;
  if (opt.keep_gain) r.gain = from_mat(gain_all, DType::Float32);
  r.peak_bytes = k * b * (F + V) * esize;
  return r;
}

}  // namespace cortex::analysis
