// Determinism across thread counts (docs/determinism.md): every CPU op below is run with 1, 2, 3
// and 8 OpenMP threads and its outputs must be the same bytes each time. Sizes are chosen so the
// parallel paths are taken (above each kernel's grain) and include odd sizes, non-contiguous views
// and reductions that split one long output into pieces.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "analysis/metrics.h"
#include "analysis/spectral/ncut.h"
#include "autograd/autograd.h"
#include "autograd/losses.h"
#include "autograd/ops.h"
#include "autograd/optim.h"
#include "kernels/attention.h"
#include "kernels/cuda/simt/runtime.h"
#include "kernels/determinism.h"
#include "kernels/cpu/parallel.h"
#include "kernels/index.h"
#include "kernels/linalg.h"
#include "kernels/matmul.h"
#include "kernels/nn.h"
#include "kernels/reduce.h"
#include "kernels/sample.h"
#include "models/readouts/ridge.h"
#include "tests/test_util.h"

using namespace cortex;
namespace K = cortex::kernels;

namespace {

Tensor rn(const Shape& s, uint64_t seed) { return cortex::testing::randn(s, seed, DType::Float32); }
Tensor rn64(const Shape& s, uint64_t seed) { return cortex::testing::randn(s, seed, DType::Float64); }

std::vector<uint8_t> bytes_of(const Tensor& t) {
  const Tensor c = t.to(Device::cpu()).contiguous();
  const auto* p = static_cast<const uint8_t*>(c.raw_data());
  return std::vector<uint8_t>(p, p + c.numel() * c.element_size());
}

// Runs f with each thread count and requires every output to be bit-identical to the 1-thread run.
void expect_same_bytes(const char* what, const std::function<std::vector<Tensor>()>& f) {
  const int saved = omp_get_max_threads();
  std::vector<std::vector<uint8_t>> ref;
  for (int nt : {1, 2, 3, 8}) {
    omp_set_num_threads(nt);
    const std::vector<Tensor> outs = f();
    if (nt == 1) {
      for (const Tensor& t : outs) ref.push_back(bytes_of(t));
      continue;
    }
    ASSERT_EQ(outs.size(), ref.size()) << what;
    for (size_t i = 0; i < outs.size(); ++i)
      EXPECT_TRUE(bytes_of(outs[i]) == ref[i]) << what << ": output " << i << " differs between 1 and " << nt
                                               << " threads";
  }
  omp_set_num_threads(saved);
}

Tensor leaf(Tensor t) {
  set_requires_grad(t);
  return t;
}

}  // namespace

TEST(Determinism, Reductions) {
  const Tensor big = rn({1000003}, 1);                 // one long output, split into pieces
  const Tensor m = rn({257, 1031}, 2);                 // odd sizes, rows and cols loops
  const Tensor tall = rn({100003, 7}, 3);              // few columns, many rows
  const Tensor t3 = rn({31, 129, 65}, 4).transpose(0, 2);  // a non-contiguous view
  const Tensor d64 = rn64({3, 70001}, 5);
  expect_same_bytes("reduce", [&] {
    return std::vector<Tensor>{K::reduce(K::Reduce::Sum, big),
                               K::reduce(K::Reduce::Mean, big),
                               K::reduce(K::Reduce::Sum, m, {1}),
                               K::reduce(K::Reduce::Sum, m, {0}),
                               K::reduce(K::Reduce::Sum, tall, {0}),
                               K::reduce(K::Reduce::Mean, t3, {0, 2}),
                               K::reduce(K::Reduce::Sum, t3, {1}),
                               K::reduce(K::Reduce::Prod, K::reduce(K::Reduce::Mean, m, {1}), {0}),
                               K::reduce(K::Reduce::Sum, d64, {1}),
                               K::var(big),
                               K::var(tall, {0}),
                               K::std(m, {1}),
                               K::norm(big),
                               K::norm(m, 1.0, {0}),
                               K::argmax(m, 1)};
  });
}

TEST(Determinism, SoftmaxAndNormalisation) {
  const Tensor x = rn({67, 1029}, 6), x3 = rn({5, 301, 97}, 7);
  expect_same_bytes("softmax", [&] {
    return std::vector<Tensor>{K::softmax(x, 1), K::log_softmax(x, 0), K::softmax(x3, 1), K::softmax(x3.transpose(1, 2), 2)};
  });
  const Tensor xin = rn({16, 6, 37, 29}, 8), w = rn({6}, 9), b = rn({6}, 10), go = rn({16, 6, 37, 29}, 11);
  expect_same_bytes("batch_norm_train forward+backward", [&] {
    Tensor xl = leaf(xin.clone()), wl = leaf(w.clone()), bl = leaf(b.clone());
    Tensor rm = zeros({6}, DType::Float32), rv = ones({6}, DType::Float32);
    Tensor y = batch_norm_train(xl, wl, bl, rm, rv);
    backward(y, go);
    return std::vector<Tensor>{y, grad_of(xl), grad_of(wl), grad_of(bl), rm, rv};
  });
  const Tensor xl_in = rn({97, 33, 130}, 12), lw = rn({130}, 13), lb = rn({130}, 14), lgo = rn({97, 33, 130}, 15);
  expect_same_bytes("layer_norm forward+backward", [&] {
    Tensor xl = leaf(xl_in.clone()), wl = leaf(lw.clone()), bl = leaf(lb.clone());
    Tensor y = layer_norm(xl, {130}, wl, bl);
    backward(y, lgo);
    return std::vector<Tensor>{y, grad_of(xl), grad_of(wl), grad_of(bl)};
  });
}

TEST(Determinism, Attention) {
  const Tensor q = rn({2, 3, 197, 64}, 16), k = rn({2, 3, 150, 64}, 17), v = rn({2, 3, 150, 64}, 18);
  const Tensor go = rn({2, 3, 197, 64}, 19);
  expect_same_bytes("attention forward+backward", [&] {
    Tensor ql = leaf(q.clone()), kl = leaf(k.clone()), vl = leaf(v.clone());
    Tensor y = scaled_dot_product_attention(ql, kl, vl);
    backward(y, go);
    return std::vector<Tensor>{y, grad_of(ql), grad_of(kl), grad_of(vl)};
  });
  // One batch item: the backward's dk/dv accumulation cannot be split over batches.
  const Tensor q1 = rn({1, 1, 509, 32}, 20), k1 = rn({1, 1, 509, 32}, 21), g1 = rn({1, 1, 509, 32}, 22);
  expect_same_bytes("attention backward, one batch", [&] {
    Tensor ql = leaf(q1.clone()), kl = leaf(k1.clone()), vl = leaf(q1.clone());
    Tensor y = scaled_dot_product_attention(ql, kl, vl);
    backward(y, g1);
    return std::vector<Tensor>{y, grad_of(ql), grad_of(kl), grad_of(vl)};
  });
}

TEST(Determinism, IndexScatterGather) {
  const Tensor src = rn({4099, 33}, 23), x = rn({301, 33}, 24);
  // Many rows scatter into few: every destination receives from many sources.
  std::vector<int64_t> iv(4099), gv(4099 * 33);
  for (int64_t i = 0; i < 4099; ++i) iv[i] = (i * 7919) % 301;
  for (int64_t i = 0; i < 4099 * 33; ++i) gv[i] = (i * 104729) % 301;
  const Tensor index = from_vector(iv), gidx = from_vector(gv, {4099, 33});
  expect_same_bytes("index_add / scatter_add / gather backward", [&] {
    Tensor xl = leaf(x.clone());
    Tensor g = gather(xl, 0, gidx);
    Tensor s = index_select(xl, 0, index);
    backward(sum(g * src) + sum(s * src));
    return std::vector<Tensor>{K::index_add(x, 0, index, src), K::scatter_add(x, 0, gidx, src), grad_of(xl)};
  });
}

TEST(Determinism, PoolAndGridSampleBackward) {
  const Tensor x = rn({8, 5, 67, 61}, 25);
  const Tensor grid = cortex::testing::randu({8, 41, 43, 2}, 26, -1.1, 1.1, DType::Float32);
  Pool2dParams mp;
  mp.kernel_h = mp.kernel_w = 3;
  mp.stride_h = mp.stride_w = 2;
  mp.pad_h = mp.pad_w = 1;
  expect_same_bytes("pool backward", [&] {
    Tensor xl = leaf(x.clone());
    Tensor y = sum(max_pool2d(xl, mp) * 1.5) + sum(avg_pool2d(xl, mp)) + sum(adaptive_avg_pool2d(xl, 7, 5) * 0.5);
    backward(y);
    return std::vector<Tensor>{y, grad_of(xl)};
  });
  expect_same_bytes("grid_sample backward", [&] {
    Tensor xl = leaf(x.clone()), gl = leaf(grid.clone());
    Tensor y = grid_sample(xl, gl, false);
    backward(sum(y * y));
    return std::vector<Tensor>{y, grad_of(xl), grad_of(gl)};
  });
}

TEST(Determinism, MatmulAndLinalg) {
  const Tensor a = rn({301, 517}, 27), b = rn({517, 263}, 28), bb = rn({7, 65, 129}, 29), bw = rn({129, 33}, 30);
  expect_same_bytes("matmul", [&] {
    return std::vector<Tensor>{K::matmul(a, b), K::matmul(b.t(), a.t()), K::matmul(bb, bw)};
  });
  const Tensor g = rn64({400, 300}, 31);
  const Tensor spd = K::matmul(g.t(), g);
  const Tensor rhs = rn64({300, 41}, 32);
  expect_same_bytes("linalg", [&] {
    const auto e = K::eigh(spd);
    const auto s = K::svd(g);
    const Tensor l = K::cholesky(spd);
    return std::vector<Tensor>{e.values, e.vectors, s.s, s.u, l, K::cholesky_solve(l, rhs), K::solve(spd, rhs)};
  });
}

TEST(Determinism, MetricsAndSpectral) {
  const Tensor p = rn64({503, 97}, 33), t = rn64({503, 97}, 34);
  expect_same_bytes("metrics", [&] {
    return std::vector<Tensor>{analysis::pearson_r(p, t), analysis::r2_score(p, t),
                               analysis::permutation_pvalues(p, t, 50, 1)};
  });
  const Tensor f = rn({1500, 24}, 35);
  for (auto method : {analysis::spectral::NcutMethod::Exact, analysis::spectral::NcutMethod::Nystrom}) {
    expect_same_bytes(analysis::spectral::method_name(method), [&] {
      analysis::spectral::NcutOptions o;
      o.k = 6;
      o.method = method;
      o.samples = 400;
      const auto r = analysis::spectral::ncut(f, o);
      return std::vector<Tensor>{r.eigenvalues, r.eigenvectors};
    });
  }
}

TEST(Determinism, RidgeCV) {
  const Tensor X = rn({301, 150}, 36), Y = rn({301, 67}, 37);
  expect_same_bytes("fit_ridge_cv", [&] {
    const auto r = models::fit_ridge_cv(X, Y, {0.1, 10, 1000}, 3, 5);
    return std::vector<Tensor>{r.weights, r.intercept, r.best_alpha};
  });
}

// A training step of a small conv model: forward, backward and Adam, three times.
TEST(Determinism, TrainingStep) {
  const Tensor x = rn({12, 3, 33, 31}, 40), target = rn({12, 10}, 41);
  const Tensor w1 = rn({16, 3, 3, 3}, 42) * 0.2, b1 = rn({16}, 43), w2 = rn({10, 16 * 16 * 15}, 44) * 0.05;
  expect_same_bytes("training step", [&] {
    Tensor cw = leaf(w1.clone()), cb = leaf(b1.clone()), lw = leaf(w2.clone());
    Tensor g = leaf(ones({16}, DType::Float32)), be = leaf(zeros({16}, DType::Float32));
    Adam opt({cw, cb, lw, g, be}, AdamOptions{});
    Tensor loss;
    for (int step = 0; step < 3; ++step) {
      opt.zero_grad();
      Conv2dParams cp;
      cp.pad_h = cp.pad_w = 1;
      Pool2dParams pp;
      pp.kernel_h = pp.kernel_w = pp.stride_h = pp.stride_w = 2;
      Tensor h = relu(batch_norm_train(conv2d(x, cw, cb, cp), g, be, Tensor(), Tensor()));
      h = max_pool2d(h, pp).reshape({12, -1});
      Tensor y = layer_norm(linear(h, lw), {10});
      loss = mse_loss(softmax(y, 1), softmax(target, 1)) + mse_loss(y, target);
      backward(loss);
      opt.step();
    }
    return std::vector<Tensor>{loss, cw, cb, lw, g, be};
  });
}

// The helper itself: chunks depend only on the sizes, and the reduction combines them in order.
TEST(Determinism, ParallelHelper) {
  std::vector<double> v(100003);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 1.0 / (1.0 + static_cast<double>(i % 977));
  double first = 0;
  for (int nt : {1, 2, 3, 8}) {
    omp_set_num_threads(nt);
    const double s = parallel::reduce_chunks(
        static_cast<int64_t>(v.size()), 1000, 0.0,
        [&](int64_t lo, int64_t hi) {
          double a = 0;
          for (int64_t i = lo; i < hi; ++i) a += v[i];
          return a;
        },
        [](double a, double b) { return a + b; });
    if (nt == 1) first = s;
    EXPECT_EQ(std::memcmp(&s, &first, sizeof s), 0) << nt << " threads";
  }
  omp_set_num_threads(2);
  // An exception thrown in a chunk reaches the caller (it cannot leave an OpenMP region itself).
  EXPECT_THROW(parallel::for_chunks(1 << 20, 1024, 1 << 20,
                                    [](int64_t lo, int64_t) {
                                      if (lo == 4096) throw Error("chunk failed");
                                    }),
               Error);
  // Inside a chunk, nested OpenMP and Eigen run on one thread; the caller's setting is restored.
  int inner = -1;
  parallel::for_chunks(4, 1, 1 << 30, [&](int64_t lo, int64_t) {
    if (lo == 0) inner = omp_get_max_threads();
  });
  EXPECT_EQ(inner, 1);
  EXPECT_EQ(omp_get_max_threads(), 2);
}

// The emulated CUDA device: grid_sample_backward's input gradient uses atomicAdd, whose order follows
// the schedule; deterministic mode takes the per-plane path, whose bytes are the same in every
// schedule order and which agrees with the CPU.
TEST(Determinism, GridSampleBackwardOnTheDeviceInDeterministicMode) {
  const Tensor x = rn({2, 3, 23, 19}, 50), gy = rn({2, 3, 17, 29}, 51);
  const Tensor grid = cortex::testing::randu({2, 17, 29, 2}, 52, -1.05, 1.05, DType::Float32);
  const auto cpu = K::grid_sample_backward(gy, x, grid, false, K::GridPadding::Zeros, K::GridMode::Bilinear);
  K::set_deterministic(true);
  std::vector<std::vector<uint8_t>> runs;
  for (const simt::Schedule& order : {simt::Schedule{simt::Order::forward, 0}, simt::Schedule{simt::Order::reverse, 0},
                                      simt::Schedule{simt::Order::random, 7}}) {
    simt::set_schedule(order);
    const auto r = K::grid_sample_backward(gy.to(Device::emu()), x.to(Device::emu()), grid.to(Device::emu()), false,
                                           K::GridPadding::Zeros, K::GridMode::Bilinear);
    EXPECT_TRUE(cortex::testing::allclose(r.input.to(Device::cpu()), cpu.input, 1e-5, 1e-6));
    runs.push_back(bytes_of(r.input));
    runs.push_back(bytes_of(r.grid));
  }
  simt::clear_schedule();
  K::set_deterministic(false);
  for (size_t i = 2; i < runs.size(); ++i) EXPECT_TRUE(runs[i] == runs[i % 2]) << "run " << i / 2 << ", output " << i % 2;
}
