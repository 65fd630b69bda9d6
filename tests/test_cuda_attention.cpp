// The fused attention kernels of kernels/cuda/attention.cu on the emulated CUDA device: every
// forward version (1 naive, 2 row block, 3 tiled; docs/attention.md) and the tiled backward and JVP,
// against a float64 loop reference written from the definitions (S = s q k^T, P = softmax(S),
// out = P v) and the CPU kernels (kernels/cpu/attention.cpp); the reference's backward and JVP are
// themselves checked against central differences of its forward. Shapes: Lq != Lk, D != Dv, odd
// lengths (197 = ViT-B/16 tokens, 129 keys past one 128-thread chunk), length 1, D = 0, 2-D and
// 4-D inputs, and q/k/v as the ViT passes them (selects of a packed, permuted qkv tensor) or with
// gaps and transposes. float32 and float64. Strict device mode is on (a host fallback fails), and
// every kernel is deterministic (one writer per output element, no atomics): the emulator's
// forward, reverse and random schedule orders give the same bytes. The GPU sums in another order
// than the CPU's Eigen GEMMs, so device vs CPU is within a tolerance: float64 1e-12 relative to
// the output's scale, float32 1e-5.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

using namespace cortex;
namespace K = cortex::kernels;
using cortex::testing::noncontig;
using cortex::testing::randn;
using cortex::testing::bytes_of;

namespace {

const Device kEmu = Device::emu();

class CudaAttention : public cortex::testing::StrictEmuTest {
 protected:
  void TearDown() override {
    K::emu::set_attention_version(-1);
    StrictEmuTest::TearDown();
  }
};

// ---------------------------------------------------------------- float64 reference

struct Dims {
  Shape lead;
  int64_t Lq, Lk, D, Dv;
  int64_t nb() const { return shape_numel(lead); }
  Shape s(int64_t a, int64_t b) const {
    Shape r = lead;
    r.push_back(a);
    r.push_back(b);
    return r;
  }
};

std::vector<double> vals(const Tensor& t) { return t.to(Device::cpu()).to(DType::Float64).contiguous().to_vector<double>(); }

// out, lse for contiguous (nb, L, .) value arrays.
struct RefFwd {
  std::vector<double> out, lse, P;  // P (nb, Lq, Lk) for the other references
};
RefFwd ref_forward(const Dims& d, const std::vector<double>& q, const std::vector<double>& k,
                   const std::vector<double>& v, double s) {
  RefFwd r;
  r.out.assign(d.nb() * d.Lq * d.Dv, 0.0);
  r.lse.assign(d.nb() * d.Lq, 0.0);
  r.P.assign(d.nb() * d.Lq * d.Lk, 0.0);
  for (int64_t b = 0; b < d.nb(); ++b)
    for (int64_t i = 0; i < d.Lq; ++i) {
      std::vector<double> S(d.Lk);
      double m = -INFINITY;
      for (int64_t j = 0; j < d.Lk; ++j) {
        double acc = 0;
        for (int64_t c = 0; c < d.D; ++c) acc += q[(b * d.Lq + i) * d.D + c] * k[(b * d.Lk + j) * d.D + c];
        S[j] = s * acc;
        m = std::max(m, S[j]);
      }
      double l = 0;
      for (int64_t j = 0; j < d.Lk; ++j) l += std::exp(S[j] - m);
      r.lse[b * d.Lq + i] = m + std::log(l);
      for (int64_t j = 0; j < d.Lk; ++j) {
        const double p = std::exp(S[j] - m) / l;
        r.P[(b * d.Lq + i) * d.Lk + j] = p;
        for (int64_t e = 0; e < d.Dv; ++e) r.out[(b * d.Lq + i) * d.Dv + e] += p * v[(b * d.Lk + j) * d.Dv + e];
      }
    }
  return r;
}

// dq, dk, dv from gout: dv = P^T g, dP = g v^T, dS = P (dP - rowsum(dP P)), dq = s dS k, dk = s dS^T q.
std::vector<std::vector<double>> ref_backward(const Dims& d, const std::vector<double>& q, const std::vector<double>& k,
                                              const std::vector<double>& v, const std::vector<double>& g, double s) {
  const RefFwd f = ref_forward(d, q, k, v, s);
  std::vector<double> dq(q.size(), 0.0), dk(k.size(), 0.0), dv(v.size(), 0.0);
  for (int64_t b = 0; b < d.nb(); ++b)
    for (int64_t i = 0; i < d.Lq; ++i) {
      std::vector<double> dP(d.Lk);
      double rs = 0;
      for (int64_t j = 0; j < d.Lk; ++j) {
        double acc = 0;
        for (int64_t e = 0; e < d.Dv; ++e) acc += g[(b * d.Lq + i) * d.Dv + e] * v[(b * d.Lk + j) * d.Dv + e];
        dP[j] = acc;
        rs += acc * f.P[(b * d.Lq + i) * d.Lk + j];
      }
      for (int64_t j = 0; j < d.Lk; ++j) {
        const double p = f.P[(b * d.Lq + i) * d.Lk + j], dS = p * (dP[j] - rs);
        for (int64_t e = 0; e < d.Dv; ++e) dv[(b * d.Lk + j) * d.Dv + e] += p * g[(b * d.Lq + i) * d.Dv + e];
        for (int64_t c = 0; c < d.D; ++c) {
          dq[(b * d.Lq + i) * d.D + c] += s * dS * k[(b * d.Lk + j) * d.D + c];
          dk[(b * d.Lk + j) * d.D + c] += s * dS * q[(b * d.Lq + i) * d.D + c];
        }
      }
    }
  return {dq, dk, dv};
}

// tout by the definition's derivative: tS = s (tq k^T + q tk^T), tP = P (tS - rowsum(P tS)), tout = tP v + P tv.
std::vector<double> ref_jvp(const Dims& d, const std::vector<std::vector<double>>& x,
                            const std::vector<std::vector<double>>& t, double s) {
  const RefFwd f = ref_forward(d, x[0], x[1], x[2], s);
  std::vector<double> to(f.out.size(), 0.0);
  for (int64_t b = 0; b < d.nb(); ++b)
    for (int64_t i = 0; i < d.Lq; ++i) {
      std::vector<double> tS(d.Lk);
      double c = 0;
      for (int64_t j = 0; j < d.Lk; ++j) {
        double acc = 0;
        for (int64_t e = 0; e < d.D; ++e)
          acc += t[0][(b * d.Lq + i) * d.D + e] * x[1][(b * d.Lk + j) * d.D + e] +
                 x[0][(b * d.Lq + i) * d.D + e] * t[1][(b * d.Lk + j) * d.D + e];
        tS[j] = s * acc;
        c += f.P[(b * d.Lq + i) * d.Lk + j] * tS[j];
      }
      for (int64_t j = 0; j < d.Lk; ++j) {
        const double p = f.P[(b * d.Lq + i) * d.Lk + j], tp = p * (tS[j] - c);
        for (int64_t e = 0; e < d.Dv; ++e)
          to[(b * d.Lq + i) * d.Dv + e] += tp * x[2][(b * d.Lk + j) * d.Dv + e] + p * t[2][(b * d.Lk + j) * d.Dv + e];
      }
    }
  return to;
}

// max |a - b| / max(1, max |b|)
double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double e = 0, m = 1;
  for (size_t i = 0; i < a.size(); ++i) {
    e = std::max(e, std::fabs(a[i] - b[i]));
    m = std::max(m, std::fabs(b[i]));
  }
  return e / m;
}
double tol(DType dt) { return dt == DType::Float64 ? 1e-12 : 2e-5; }

// ---------------------------------------------------------------- inputs

// q, k, v of the dims in one of three layouts, values from one float64 draw:
//   "contiguous"; "vit": selects of a packed (Lq, 3, lead, D) buffer permuted to (3, lead, L, D),
//   as models/layers.cpp passes them (needs Lq == Lk and D == Dv); "strided": q gapped along D,
//   k transposed, v gapped.
std::vector<Tensor> make_qkv(const Dims& d, uint64_t seed, DType dt, const std::string& layout, Device dev) {
  Tensor q = randn(d.s(d.Lq, d.D), seed).to(dt), k = randn(d.s(d.Lk, d.D), seed + 1).to(dt),
         v = randn(d.s(d.Lk, d.Dv), seed + 2).to(dt);
  if (layout == "contiguous") return {q.to(dev), k.to(dev), v.to(dev)};
  if (layout == "vit") {
    // packed (L, 3, *lead, D) -> permute to (3, *lead, L, D)
    const int64_t nl = static_cast<int64_t>(d.lead.size());
    Shape ps{d.Lq, 3};
    for (int64_t x : d.lead) ps.push_back(x);
    ps.push_back(d.D);
    Tensor packed = empty(ps, dt, dev);
    Shape perm{1};
    for (int64_t i = 0; i < nl; ++i) perm.push_back(2 + i);
    perm.push_back(0);
    perm.push_back(2 + nl);
    Tensor t = packed.permute(perm);
    t.select(0, 0).copy_(q.to(dev));
    t.select(0, 1).copy_(k.to(dev));
    t.select(0, 2).copy_(v.to(dev));
    return {t.select(0, 0), t.select(0, 1), t.select(0, 2)};
  }
  Tensor kt = k.to(dev).transpose(-1, -2).contiguous().transpose(-1, -2);
  return {noncontig(q.to(dev)), kt, noncontig(v.to(dev))};
}

std::vector<Dims> shapes() {
  return {
      {{2, 3}, 5, 7, 4, 6},     // Lq != Lk, D != Dv, 4-D
      {{1, 2}, 197, 197, 64, 64},  // ViT-B/16 tokens and head size, two heads
      {{}, 1, 1, 3, 2},         // 2-D inputs, one query, one key
      {{2}, 33, 1, 5, 3},       // one key
      {{2}, 1, 40, 8, 1},       // one query, Dv = 1
      {{3}, 17, 129, 16, 9},    // keys past one 128-thread chunk of version 2
      {{2}, 3, 4, 0, 2},        // D = 0: every score 0, out = mean of v's rows
  };
}

std::string name(const Dims& d) {
  return shape_str(d.lead) + " Lq " + std::to_string(d.Lq) + " Lk " + std::to_string(d.Lk) + " D " +
         std::to_string(d.D) + " Dv " + std::to_string(d.Dv);
}

// f's results in forward order, then the same bytes in reverse and random order.
void expect_schedule_independent(const std::function<std::vector<Tensor>()>& f, const std::string& what) {
  cortex::simt::set_schedule({cortex::simt::Order::forward, 0});
  std::vector<std::vector<unsigned char>> want;
  for (const Tensor& t : f()) want.push_back(bytes_of(t));
  for (const cortex::simt::Schedule s : {cortex::simt::Schedule{cortex::simt::Order::reverse, 0},
                                         cortex::simt::Schedule{cortex::simt::Order::random, 11}}) {
    cortex::simt::set_schedule(s);
    std::vector<Tensor> got = f();
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(bytes_of(got[i]), want[i]) << what << " result " << i;
  }
  cortex::simt::clear_schedule();
}

}  // namespace

// The float64 reference's backward and JVP against central differences of its forward, so the
// references the kernels meet are right themselves.
TEST_F(CudaAttention, ReferenceDerivativesMatchFiniteDifferences) {
  const Dims d{{2}, 3, 4, 3, 2};
  const double s = 0.7, h = 1e-6;
  std::vector<std::vector<double>> x = {vals(randn(d.s(d.Lq, d.D), 1)), vals(randn(d.s(d.Lk, d.D), 2)),
                                        vals(randn(d.s(d.Lk, d.Dv), 3))};
  std::vector<std::vector<double>> t = {vals(randn(d.s(d.Lq, d.D), 4)), vals(randn(d.s(d.Lk, d.D), 5)),
                                        vals(randn(d.s(d.Lk, d.Dv), 6))};
  const std::vector<double> g = vals(randn(d.s(d.Lq, d.Dv), 7));
  auto at = [&](double e) {
    std::vector<std::vector<double>> y = x;
    for (int a = 0; a < 3; ++a)
      for (size_t i = 0; i < y[a].size(); ++i) y[a][i] += e * t[a][i];
    return ref_forward(d, y[0], y[1], y[2], s).out;
  };
  const std::vector<double> hi = at(h), lo = at(-h);
  std::vector<double> fd(hi.size());
  for (size_t i = 0; i < fd.size(); ++i) fd[i] = (hi[i] - lo[i]) / (2 * h);
  EXPECT_LT(rel_err(ref_jvp(d, x, t, s), fd), 1e-8);
  // <g, J t> == <J^T g, t>
  const auto gx = ref_backward(d, x[0], x[1], x[2], g, s);
  double lhs = 0, rhs = 0;
  for (size_t i = 0; i < fd.size(); ++i) lhs += g[i] * fd[i];
  for (int a = 0; a < 3; ++a)
    for (size_t i = 0; i < t[a].size(); ++i) rhs += gx[a][i] * t[a][i];
  EXPECT_NEAR(lhs, rhs, 1e-8 * std::max(1.0, std::fabs(lhs)));
}

// Every forward version against the reference and the CPU, every shape, layout and dtype.
TEST_F(CudaAttention, ForwardEveryVersionMatchesTheReferenceAndTheCpu) {
  for (const Dims& d : shapes())
    for (DType dt : {DType::Float32, DType::Float64})
      for (const std::string layout : {"contiguous", "vit", "strided"}) {
        if (layout == "vit" && (d.Lq != d.Lk || d.D != d.Dv)) continue;
        const std::vector<Tensor> in = make_qkv(d, 100, dt, layout, kEmu);
        const std::vector<Tensor> cpu = make_qkv(d, 100, dt, layout, Device::cpu());
        const double s = 0.3;
        const RefFwd want = ref_forward(d, vals(in[0]), vals(in[1]), vals(in[2]), s);
        const K::Attention c = K::attention_forward(cpu[0], cpu[1], cpu[2], s);
        const std::string what = name(d) + " " + dtype_name(dt) + " " + layout;
        EXPECT_LT(rel_err(vals(c.out), want.out), tol(dt)) << "cpu " << what;
        EXPECT_LT(rel_err(vals(c.lse), want.lse), tol(dt)) << "cpu " << what;
        for (int ver = 1; ver <= K::kAttentionVersions; ++ver) {
          K::emu::set_attention_version(ver);
          const K::Attention r = K::attention_forward(in[0], in[1], in[2], s);
          ASSERT_EQ(r.out.device(), kEmu);
          EXPECT_EQ(r.out.shape(), c.out.shape()) << what;
          EXPECT_EQ(r.lse.shape(), c.lse.shape()) << what;
          EXPECT_LT(rel_err(vals(r.out), want.out), tol(dt)) << "v" << ver << " " << what;
          EXPECT_LT(rel_err(vals(r.lse), want.lse), tol(dt)) << "v" << ver << " " << what;
          EXPECT_LT(rel_err(vals(r.out), vals(c.out)), tol(dt)) << "v" << ver << " vs cpu " << what;
        }
      }
}

TEST_F(CudaAttention, BackwardMatchesTheReferenceAndTheCpu) {
  for (const Dims& d : shapes())
    for (DType dt : {DType::Float32, DType::Float64})
      for (const std::string layout : {"contiguous", "vit", "strided"}) {
        if (layout == "vit" && (d.Lq != d.Lk || d.D != d.Dv)) continue;
        const std::string what = name(d) + " " + dtype_name(dt) + " " + layout;
        const std::vector<Tensor> in = make_qkv(d, 200, dt, layout, kEmu);
        const std::vector<Tensor> cpu = make_qkv(d, 200, dt, layout, Device::cpu());
        const double s = 0.4;
        const Tensor g = randn(d.s(d.Lq, d.Dv), 210).to(dt);
        const Tensor gv = noncontig(g.to(kEmu));  // a strided cotangent too
        const auto want = ref_backward(d, vals(in[0]), vals(in[1]), vals(in[2]), vals(g), s);
        const K::Attention fc = K::attention_forward(cpu[0], cpu[1], cpu[2], s);
        const K::AttentionGrads c = K::attention_backward(cpu[0], cpu[1], cpu[2], fc.out, fc.lse, g, s);
        const K::Attention fe = K::attention_forward(in[0], in[1], in[2], s);
        const K::AttentionGrads r = K::attention_backward(in[0], in[1], in[2], fe.out, fe.lse, gv, s);
        const Tensor* got[3] = {&r.dq, &r.dk, &r.dv};
        const Tensor* cg[3] = {&c.dq, &c.dk, &c.dv};
        for (int a = 0; a < 3; ++a) {
          EXPECT_EQ(got[a]->shape(), in[a].shape()) << what;
          EXPECT_LT(rel_err(vals(*cg[a]), want[a]), 10 * tol(dt)) << "cpu d" << "qkv"[a] << " " << what;
          EXPECT_LT(rel_err(vals(*got[a]), want[a]), 10 * tol(dt)) << "emu d" << "qkv"[a] << " " << what;
        }
      }
}

TEST_F(CudaAttention, JvpMatchesTheReferenceAndTheCpu) {
  for (const Dims& d : shapes())
    for (DType dt : {DType::Float32, DType::Float64})
      for (const std::string layout : {"contiguous", "strided"}) {
        const std::string what = name(d) + " " + dtype_name(dt) + " " + layout;
        const std::vector<Tensor> in = make_qkv(d, 300, dt, layout, kEmu);
        const std::vector<Tensor> tin = make_qkv(d, 310, dt, layout, kEmu);
        const std::vector<Tensor> cpu = make_qkv(d, 300, dt, layout, Device::cpu());
        const std::vector<Tensor> tcpu = make_qkv(d, 310, dt, layout, Device::cpu());
        const double s = 0.5;
        const std::vector<double> want =
            ref_jvp(d, {vals(in[0]), vals(in[1]), vals(in[2])}, {vals(tin[0]), vals(tin[1]), vals(tin[2])}, s);
        const RefFwd wf = ref_forward(d, vals(in[0]), vals(in[1]), vals(in[2]), s);
        const K::AttentionJvp c = K::attention_jvp(cpu[0], cpu[1], cpu[2], tcpu[0], tcpu[1], tcpu[2], s);
        const K::AttentionJvp r = K::attention_jvp(in[0], in[1], in[2], tin[0], tin[1], tin[2], s);
        EXPECT_LT(rel_err(vals(c.tout), want), 10 * tol(dt)) << "cpu " << what;
        EXPECT_LT(rel_err(vals(c.out), wf.out), tol(dt)) << "cpu " << what;
        EXPECT_LT(rel_err(vals(r.tout), want), 10 * tol(dt)) << "emu " << what;
        EXPECT_LT(rel_err(vals(r.out), wf.out), tol(dt)) << "emu " << what;
      }
}

// No (Lq, Lk) tile overlaps another's output: the same bytes in every schedule order, for each
// forward version, the backward and the JVP, across several blocks and partial tiles.
TEST_F(CudaAttention, SameBytesInEveryScheduleOrder) {
  const Dims d{{2}, 45, 37, 12, 7};
  for (DType dt : {DType::Float32, DType::Float64}) {
    const std::vector<Tensor> in = make_qkv(d, 400, dt, "strided", kEmu);
    const std::vector<Tensor> tin = make_qkv(d, 410, dt, "contiguous", kEmu);
    const Tensor g = randn(d.s(d.Lq, d.Dv), 420).to(dt).to(kEmu);
    for (int ver = 1; ver <= K::kAttentionVersions; ++ver) {
      K::emu::set_attention_version(ver);
      expect_schedule_independent([&] {
        const K::Attention r = K::attention_forward(in[0], in[1], in[2], 0.3);
        return std::vector<Tensor>{r.out, r.lse};
      }, "forward v" + std::to_string(ver));
    }
    K::emu::set_attention_version(-1);
    const K::Attention f = K::attention_forward(in[0], in[1], in[2], 0.3);
    expect_schedule_independent([&] {
      const K::AttentionGrads r = K::attention_backward(in[0], in[1], in[2], f.out, f.lse, g, 0.3);
      return std::vector<Tensor>{r.dq, r.dk, r.dv};
    }, "backward");
    expect_schedule_independent([&] {
      const K::AttentionJvp r = K::attention_jvp(in[0], in[1], in[2], tin[0], tin[1], tin[2], 0.3);
      return std::vector<Tensor>{r.out, r.tout};
    }, "jvp");
  }
}

// Empty batch, Lq = 0 and Lk = 0 (the empty softmax: out 0, lse -inf, zero gradients) on both
// devices, and the argument checks.
TEST_F(CudaAttention, EmptyCasesAndErrors) {
  for (Device dev : {Device::cpu(), kEmu}) {
    const Tensor q = randn({2, 3, 4}, 1).to(DType::Float32).to(dev), k0 = zeros({2, 0, 4}, DType::Float32, dev),
                 v0 = zeros({2, 0, 5}, DType::Float32, dev);
    const K::Attention r = K::attention_forward(q, k0, v0, 0.5);
    EXPECT_EQ(r.out.shape(), (Shape{2, 3, 5}));
    for (double x : vals(r.out)) EXPECT_EQ(x, 0.0);
    for (double x : vals(r.lse)) EXPECT_EQ(x, -INFINITY);
    const K::AttentionGrads g = K::attention_backward(q, k0, v0, r.out, r.lse, r.out, 0.5);
    for (double x : vals(g.dq)) EXPECT_EQ(x, 0.0);
    EXPECT_EQ(g.dk.shape(), (Shape{2, 0, 4}));
    const Tensor qe = zeros({0, 3, 4}, DType::Float32, dev), ke = zeros({0, 2, 4}, DType::Float32, dev),
                 ve = zeros({0, 2, 5}, DType::Float32, dev);
    EXPECT_EQ(K::attention_forward(qe, ke, ve, 0.5).out.shape(), (Shape{0, 3, 5}));
    EXPECT_EQ(K::attention_jvp(qe, ke, ve, qe, ke, ve, 0.5).tout.shape(), (Shape{0, 3, 5}));
    const Tensor k = randn({2, 5, 4}, 2).to(DType::Float32).to(dev), v = randn({2, 5, 6}, 3).to(DType::Float32).to(dev);
    EXPECT_CORTEX_ERROR(K::attention_forward(q, randn({2, 5, 3}, 4).to(DType::Float32).to(dev), v, 0.5), "attention_forward: expected q");
    EXPECT_CORTEX_ERROR(K::attention_forward(q, k, randn({3, 5, 6}, 4).to(DType::Float32).to(dev), 0.5), "same leading dims");
    EXPECT_CORTEX_ERROR(K::attention_forward(q, k.to(DType::Float64), v, 0.5), "one dtype");
    EXPECT_CORTEX_ERROR(K::attention_forward(q, k, v, NAN), "finite scale");
    const K::Attention f = K::attention_forward(q, k, v, 0.5);
    EXPECT_CORTEX_ERROR(K::attention_backward(q, k, v, f.out, f.lse, f.out.narrow(-1, 0, 2), 0.5), "gout of shape");
    EXPECT_CORTEX_ERROR(K::attention_jvp(q, k, v, q, k, Tensor(), 0.5), "tv");
  }
  EXPECT_CORTEX_ERROR(K::emu::set_attention_version(4), "set_attention_version: expected -1 or 1..3");
}
