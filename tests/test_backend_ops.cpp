// One test over every op and every backend (ggml's test-backend-ops is the model).
//
// A table of op cases (odd shapes, non-contiguous views, broadcasting, empty tensors, sizes that
// span several blocks and partial warps) runs in three modes on every device present (cpu and the
// emulated CUDA device always, cuda when a GPU is there):
//   value     cpu (float32) against a naive float64 reference (tests/reference.h) where one
//             exists, else against cpu in float64; every other device against cpu, normalised
//             mean squared error (NMSE) <= 1e-7 or the case's stated bound; on the emulated device
//             in forward, reverse and random schedule order, bit-identical for deterministic ops;
//   gradient  gradcheck (float64, finite differences, VJP/JVP transpose identity) on each device;
//   support   the table of which kernel op each backend has, printed, and the cases each device
//             could not run, printed, so nothing unsupported hides.
// Devices other than cpu run in strict device mode: an op without a kernel there throws instead
// of falling back to the host, and the case is listed as unsupported (a failure for the families
// that must run on the emulated device). Fused-vs-composed checks hold layer_norm, softmax,
// log_softmax and batch_norm to the same ops written from primitives.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "tests/reference.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::noncontig;
namespace ref = cortex::testing::ref;
using kernels::Unary;

namespace {

using Inputs = std::vector<Tensor>;
using OpFn = std::function<Inputs(const Inputs&)>;

struct OpCase {
  std::string name;
  std::function<Inputs(DType)> make;  // inputs on the cpu
  OpFn run;                            // with the differentiable ops
  OpFn reference;                      // float64 naive reference; null: cpu in float64
  double nmse = 1e-7;                  // device vs cpu, float32
  bool grad = true;                    // gradcheck on each device
  bool deterministic = true;           // bit-identical across schedule orders
};

Tensor rnd(const Shape& s, uint64_t seed, DType dt, double lo = -2, double hi = 2) {
  return cortex::testing::randu(s, seed, lo, hi, DType::Float64).to(dt);
}
// A view of a fresh [.., b, a] tensor transposed to [.., a, b]: same values, strided.
Tensor transposed(const Tensor& t) {
  if (t.dim() < 2) return noncontig(t);
  return t.transpose(-1, -2).contiguous().transpose(-1, -2);
}

double nmse(const Tensor& got, const Tensor& want) {
  const auto g = ref::values(got), w = ref::values(want);
  if (g.size() != w.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(w[i]) && std::isnan(g[i])) continue;
    num += (g[i] - w[i]) * (g[i] - w[i]);
    den += w[i] * w[i];
  }
  return den == 0 ? num : num / den;
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor x = a.to(Device::cpu()).contiguous(), y = b.to(Device::cpu()).contiguous();
  return std::memcmp(x.raw_data(), y.raw_data(), x.numel() * x.element_size()) == 0;
}

// Same values and strides on the device as `t` has on the cpu (for the non-contiguous cases).
Inputs to_device_strided(const Inputs& in, Device d) {
  Inputs out;
  for (const Tensor& t : in) {
    if (!t.defined() || t.is_contiguous() || t.numel() == 0) { out.push_back(t.defined() ? t.to(d) : t); continue; }
    // rebuild the same view on a device copy of the underlying storage span
    Tensor flat(t.storage(), {static_cast<int64_t>(t.storage()->nbytes / t.element_size())}, {1}, 0, t.dtype());
    Tensor dev = flat.to(d);
    out.push_back(Tensor(dev.storage(), t.shape(), t.strides(), t.offset(), t.dtype()));
  }
  return out;
}

// ---------------------------------------------------------------- the cases

OpFn unary_op(Unary op, double p) {
  return [op, p](const Inputs& in) -> Inputs {
    const Tensor& x = in[0];
    switch (op) {
      case Unary::Exp: return {exp(x)};
      case Unary::Log: return {log(x)};
      case Unary::Log1p: return {log1p(x)};
      case Unary::Expm1: return {expm1(x)};
      case Unary::Sqrt: return {sqrt(x)};
      case Unary::Rsqrt: return {rsqrt(x)};
      case Unary::Reciprocal: return {reciprocal(x)};
      case Unary::Square: return {square(x)};
      case Unary::Abs: return {abs(x)};
      case Unary::Sin: return {sin(x)};
      case Unary::Cos: return {cos(x)};
      case Unary::Tanh: return {tanh(x)};
      case Unary::Erf: return {erf(x)};
      case Unary::Sigmoid: return {sigmoid(x)};
      case Unary::Relu: return {relu(x)};
      case Unary::GeluErf: return {gelu(x)};
      case Unary::GeluTanh: return {gelu(x, GeluApprox::Tanh)};
      case Unary::QuickGelu: return {quick_gelu(x)};
      case Unary::Elu: return {elu(x, p)};
      case Unary::Softplus: return {softplus(x, p)};
      case Unary::PowScalar: return {pow(x, p)};
      case Unary::Neg: return {neg(x)};
      default: return {kernels::unary(op, x, p)};
    }
  };
}

std::vector<OpCase> cases() {
  std::vector<OpCase> cs;
  // -- elementwise, unary: [37, 45] spans 7 blocks of 256 with a partial warp; also strided and empty
  struct U { Unary op; double lo, hi, p; bool smooth; };
  const U us[] = {{Unary::Exp, -3, 3, 0, true},        {Unary::Log, 0.1, 5, 0, true},
                  {Unary::Log1p, -0.5, 5, 0, true},   {Unary::Expm1, -2, 2, 0, true},
                  {Unary::Sqrt, 0.1, 5, 0, true},     {Unary::Rsqrt, 0.1, 5, 0, true},
                  {Unary::Reciprocal, 0.5, 3, 0, true}, {Unary::Square, -2, 2, 0, true},
                  {Unary::Abs, -2, 2, 0, false},      {Unary::Sin, -3, 3, 0, true},
                  {Unary::Cos, -3, 3, 0, true},       {Unary::Tanh, -3, 3, 0, true},
                  {Unary::Erf, -2, 2, 0, true},       {Unary::Sigmoid, -5, 5, 0, true},
                  {Unary::Relu, -2, 2, 0, false},     {Unary::GeluErf, -3, 3, 0, true},
                  {Unary::GeluTanh, -3, 3, 0, true},  {Unary::QuickGelu, -3, 3, 0, true},
                  {Unary::Elu, -2, 2, 0.7, false},    {Unary::Softplus, -3, 3, 2.0, true},
                  {Unary::PowScalar, 0.2, 3, 1.7, true}, {Unary::Neg, -2, 2, 0, true}};
  uint64_t seed = 1;
  for (const U& u : us) {
    const std::string n = kernels::unary_name(u.op);
    const double lo = u.lo, hi = u.hi, p = u.p;
    const Unary op = u.op;
    auto refn = [op, p](const Inputs& in) -> Inputs {
      return {ref::map_ref(in[0], [op, p](double v) { return ref::unary_ref(op, v, p); }, DType::Float64)};
    };
    const uint64_t s = seed++;
    cs.push_back({n + " [37,45]", [=](DType dt) { return Inputs{rnd({37, 45}, s, dt, lo, hi)}; }, unary_op(op, p), refn,
                  1e-7, false});
    cs.push_back({n + " strided [9,7]", [=](DType dt) { return Inputs{transposed(rnd({9, 7}, s + 100, dt, lo, hi))}; },
                  unary_op(op, p), refn, 1e-7, u.smooth});
    cs.push_back({n + " empty [0,5]", [=](DType dt) { return Inputs{rnd({0, 5}, s, dt, lo, hi)}; }, unary_op(op, p), refn,
                  1e-7, false});
  }
  // -- elementwise, binary with broadcasting and strides
  struct B { const char* n; Tensor (*f)(const Tensor&, const Tensor&); double lo, hi; bool smooth; };
  const B bs[] = {{"add", add, -2, 2, true},           {"sub", sub, -2, 2, true},
                  {"mul", mul, -2, 2, true},           {"div", div, 0.5, 2, true},
                  {"pow", pow, 0.5, 2, true},          {"maximum", maximum, -2, 2, false},
                  {"minimum", minimum, -2, 2, false}};
  for (const B& b : bs) {
    auto f = b.f;
    const double lo = b.lo, hi = b.hi;
    auto run = [f](const Inputs& in) { return Inputs{f(in[0], in[1])}; };
    const uint64_t s = seed++;
    cs.push_back({std::string(b.n) + " [3,1,5]x[4,5]", [=](DType dt) {
                    return Inputs{rnd({3, 1, 5}, s, dt, lo, hi), rnd({4, 5}, s + 1, dt, lo, hi)};
                  }, run, nullptr, 1e-7, b.smooth});
    cs.push_back({std::string(b.n) + " strided [33,40]x[40]", [=](DType dt) {
                    return Inputs{transposed(rnd({33, 40}, s + 2, dt, lo, hi)), rnd({40}, s + 3, dt, lo, hi)};
                  }, run, nullptr, 1e-7, false});
    cs.push_back({std::string(b.n) + " empty [0,3]x[3]", [=](DType dt) {
                    return Inputs{rnd({0, 3}, s, dt, lo, hi), rnd({3}, s + 1, dt, lo, hi)};
                  }, run, nullptr, 1e-7, false});
  }
  cs.push_back({"where/gt [6,5]", [](DType dt) { return Inputs{rnd({6, 5}, 90, dt), rnd({5}, 91, dt)}; },
                [](const Inputs& in) { return Inputs{where(gt(in[0], in[1]), mul(in[0], 2.0), in[1])}; }, nullptr, 1e-7,
                false});
  cs.push_back({"clamp [300]", [](DType dt) { return Inputs{rnd({300}, 92, dt)}; },
                [](const Inputs& in) { return Inputs{clamp(in[0], -0.5, 0.7)}; }, nullptr, 1e-7, false});
  // -- reductions over several axis sets; [7, 130, 5] has rows longer than a block
  struct R { const char* n; Shape dims; bool keep; };
  const R rs[] = {{"all", {}, false}, {"dim1", {1}, false}, {"dims0,2 keep", {0, 2}, true}, {"last", {-1}, false}};
  for (const R& r : rs) {
    const Shape dims = r.dims;
    const bool keep = r.keep;
    auto mk = [](DType dt) { return Inputs{rnd({7, 130, 5}, 93, dt)}; };
    auto mks = [](DType dt) { return Inputs{transposed(rnd({7, 5, 130}, 94, dt))}; };
    for (auto [op, name] : {std::pair{kernels::Reduce::Sum, "sum"}, std::pair{kernels::Reduce::Mean, "mean"},
                            std::pair{kernels::Reduce::Max, "amax"}, std::pair{kernels::Reduce::LogSumExp, "logsumexp"}}) {
      auto run = [op, dims, keep](const Inputs& in) -> Inputs {
        switch (op) {
          case kernels::Reduce::Sum: return {sum(in[0], dims, keep)};
          case kernels::Reduce::Mean: return {mean(in[0], dims, keep)};
          case kernels::Reduce::Max: return {amax(in[0], dims, keep)};
          default: return {logsumexp(in[0], dims, keep)};
        }
      };
      auto refn = [op, dims, keep](const Inputs& in) {
        return Inputs{ref::ref_reduce(in[0], dims, keep, ref::ref_for(op), DType::Float64)};
      };
      cs.push_back({std::string(name) + " " + r.n + " [7,130,5]", mk, run, refn, 1e-7, false});
      cs.push_back({std::string(name) + " " + r.n + " strided", mks, run, refn, 1e-7, false});
    }
    cs.push_back({std::string("var ") + r.n, mk, [dims, keep](const Inputs& in) { return Inputs{var(in[0], dims, 1, keep)}; },
                  nullptr, 1e-7, false});
    cs.push_back({std::string("norm ") + r.n, mk,
                  [dims, keep](const Inputs& in) { return Inputs{norm(in[0], 2.0, dims, keep)}; }, nullptr, 1e-7, false});
  }
  cs.push_back({"sum small for gradcheck [3,4]", [](DType dt) { return Inputs{rnd({3, 4}, 95, dt)}; },
                [](const Inputs& in) { return Inputs{sum(in[0], {1}), mean(in[0], {0}), logsumexp(in[0], {1}), var(in[0], {0})}; },
                nullptr, 1e-7, true});
  cs.push_back({"argmax [9,33]", [](DType dt) { return Inputs{rnd({9, 33}, 96, dt)}; },
                [](const Inputs& in) { return Inputs{argmax(in[0], 1), argmin(in[0], 0)}; }, nullptr, 0, false});
  cs.push_back({"sum empty [0,4]", [](DType dt) { return Inputs{rnd({0, 4}, 97, dt)}; },
                [](const Inputs& in) { return Inputs{sum(in[0], {0}), mean(in[0], {1})}; }, nullptr, 1e-7, false});
  // -- softmax family and normalisation
  for (int64_t dim : {0, -1}) {
    auto refn = [dim](const Inputs& in) {
      const auto v = ref::values(in[0]);
      const int64_t d = dim < 0 ? dim + in[0].dim() : dim;
      return Inputs{from_vector(ref::ref_softmax(v, in[0].shape(), d, false), in[0].shape(), DType::Float64),
                    from_vector(ref::ref_softmax(v, in[0].shape(), d, true), in[0].shape(), DType::Float64)};
    };
    auto run = [dim](const Inputs& in) { return Inputs{softmax(in[0], dim), log_softmax(in[0], dim)}; };
    cs.push_back({"softmax dim " + std::to_string(dim) + " [37,70]", [](DType dt) { return Inputs{rnd({37, 70}, 98, dt, -4, 4)}; },
                  run, refn, 1e-7, false});
    cs.push_back({"softmax dim " + std::to_string(dim) + " small strided", [](DType dt) { return Inputs{transposed(rnd({4, 3}, 99, dt))}; },
                  run, refn, 1e-7, true});
  }
  cs.push_back({"layer_norm [5,37]", [](DType dt) {
                  return Inputs{rnd({5, 37}, 100, dt), rnd({37}, 101, dt), rnd({37}, 102, dt)};
                }, [](const Inputs& in) { return Inputs{layer_norm(in[0], {37}, in[1], in[2])}; },
                [](const Inputs& in) {
                  const auto w = ref::values(in[1]), b = ref::values(in[2]);
                  return Inputs{from_vector(ref::ref_layer_norm(ref::values(in[0]), 5, 37, &w, &b, 1e-5).y, {5, 37},
                                            DType::Float64)};
                }, 1e-7, false});
  cs.push_back({"layer_norm small [3,4]", [](DType dt) { return Inputs{rnd({3, 4}, 103, dt), rnd({4}, 104, dt), rnd({4}, 105, dt)}; },
                [](const Inputs& in) { return Inputs{layer_norm(in[0], {4}, in[1], in[2])}; }, nullptr, 1e-7, true});
  cs.push_back({"batch_norm [2,3,4,5]", [](DType dt) {
                  return Inputs{rnd({2, 3, 4, 5}, 106, dt), rnd({3}, 107, dt), rnd({3}, 108, dt, 0.5, 2), rnd({3}, 109, dt),
                                rnd({3}, 110, dt)};
                }, [](const Inputs& in) { return Inputs{batch_norm(in[0], in[1], in[2], in[3], in[4])}; }, nullptr, 1e-7, true});
  // -- matmul and linear
  cs.push_back({"matmul [33,65]x[65,17]", [](DType dt) { return Inputs{rnd({33, 65}, 111, dt), rnd({65, 17}, 112, dt)}; },
                [](const Inputs& in) { return Inputs{matmul(in[0], in[1])}; },
                [](const Inputs& in) { return Inputs{ref::ref_matmul(in[0], in[1])}; }, 1e-7, false});
  cs.push_back({"matmul batched broadcast [2,1,7,9]x[3,9,5]", [](DType dt) {
                  return Inputs{rnd({2, 1, 7, 9}, 113, dt), rnd({3, 9, 5}, 114, dt)};
                }, [](const Inputs& in) { return Inputs{matmul(in[0], in[1])}; },
                [](const Inputs& in) { return Inputs{ref::ref_matmul(in[0], in[1])}; }, 1e-7, false});
  cs.push_back({"matmul transposed [6,5]^T x [6,4]", [](DType dt) { return Inputs{rnd({6, 5}, 115, dt), rnd({6, 4}, 116, dt)}; },
                [](const Inputs& in) { return Inputs{matmul(in[0].t(), in[1])}; }, nullptr, 1e-7, true});
  cs.push_back({"matmul vector [7]x[7,3]", [](DType dt) { return Inputs{rnd({7}, 117, dt), rnd({7, 3}, 118, dt)}; },
                [](const Inputs& in) { return Inputs{matmul(in[0], in[1])}; },
                [](const Inputs& in) { return Inputs{ref::ref_matmul(in[0], in[1])}; }, 1e-7, true});
  cs.push_back({"linear [4,6]x[5,6]^T+[5]", [](DType dt) { return Inputs{rnd({4, 6}, 119, dt), rnd({5, 6}, 120, dt), rnd({5}, 121, dt)}; },
                [](const Inputs& in) { return Inputs{linear(in[0], in[1], in[2])}; }, nullptr, 1e-7, true});
  // -- families that come later on the CUDA side (listed as unsupported there until they land)
  cs.push_back({"max_pool2d/avg_pool2d [1,2,7,6]", [](DType dt) { return Inputs{rnd({1, 2, 7, 6}, 124, dt)}; },
                [](const Inputs& in) {
                  Pool2dParams p;
                  p.kernel_h = p.kernel_w = 3;
                  p.stride_h = p.stride_w = 2;
                  return Inputs{max_pool2d(in[0], p), avg_pool2d(in[0], p), adaptive_avg_pool2d(in[0], 2, 3)};
                }, nullptr, 1e-7, false});
  cs.push_back({"gather/index_select/concat [4,6]", [](DType dt) { return Inputs{rnd({4, 6}, 125, dt)}; },
                [](const Inputs& in) {
                  Tensor idx = from_vector(std::vector<int64_t>{2, 0, 3}, {3}, DType::Int64, in[0].device());
                  return Inputs{index_select(in[0], 0, idx), concat({in[0], mul(in[0], 2.0)}, 1), cumsum(in[0], 1)};
                }, nullptr, 1e-7, false});
  // -- conv: implicit GEMM (groups, stride, padding, dilation, bias, strided x), the depthwise
  // kernels, both adjoints called directly, an empty batch; gradient mode on the small ones
  // (gradcheck runs the VJP and JVP, so conv2d_input_grad and conv2d_weight_grad, on each device).
  auto conv_params = [](int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t groups) {
    Conv2dParams p;
    p.stride_h = sh, p.stride_w = sw, p.pad_h = ph, p.pad_w = pw, p.dilation_h = dh, p.dilation_w = dw;
    p.groups = groups;
    return p;
  };
  cs.push_back({"conv2d [2,3,9,8]x[4,3,3,3]+b s2 p1", [](DType dt) {
                  return Inputs{rnd({2, 3, 9, 8}, 122, dt), rnd({4, 3, 3, 3}, 123, dt), rnd({4}, 138, dt)};
                }, [=](const Inputs& in) { return Inputs{conv2d(in[0], in[1], in[2], conv_params(2, 2, 1, 1, 1, 1, 1))}; },
                nullptr, 1e-7, true});
  cs.push_back({"conv2d strided x [1,4,6,7]x[4,2,2,3] s(1,2) p(1,0) d2 g2", [](DType dt) {
                  return Inputs{transposed(rnd({1, 4, 7, 6}, 139, dt)), rnd({4, 2, 2, 3}, 140, dt)};
                }, [=](const Inputs& in) { return Inputs{conv2d(in[0], in[1], Tensor(), conv_params(1, 2, 1, 0, 2, 2, 2))}; },
                nullptr, 1e-7, true});
  cs.push_back({"conv2d depthwise [2,3,7,6]x[3,1,3,3]+b s2 p1", [](DType dt) {
                  return Inputs{rnd({2, 3, 7, 6}, 141, dt), rnd({3, 1, 3, 3}, 142, dt), rnd({3}, 143, dt)};
                }, [=](const Inputs& in) { return Inputs{conv2d(in[0], in[1], in[2], conv_params(2, 2, 1, 1, 1, 1, 3))}; },
                nullptr, 1e-7, true});
  cs.push_back({"conv2d_input_grad/conv2d_weight_grad [3,4,11,9] k3 s2 p1 g2", [](DType dt) {
                  return Inputs{rnd({3, 6, 6, 5}, 144, dt), rnd({6, 2, 3, 3}, 145, dt), rnd({3, 4, 11, 9}, 146, dt)};
                }, [=](const Inputs& in) {
                  const Conv2dParams p = conv_params(2, 2, 1, 1, 1, 1, 2);
                  return Inputs{kernels::conv2d_input_grad(in[0], in[1], in[2].shape(), p),
                                kernels::conv2d_weight_grad(in[2], in[0], in[1].shape(), p)};
                }, nullptr, 1e-7, false});
  cs.push_back({"conv2d 1x1 and 7x7, empty batch [0,3,9,9]", [](DType dt) {
                  return Inputs{rnd({0, 3, 9, 9}, 147, dt), rnd({5, 3, 1, 1}, 148, dt), rnd({2, 3, 7, 7}, 149, dt)};
                }, [=](const Inputs& in) {
                  return Inputs{conv2d(in[0], in[1], Tensor(), conv_params(1, 1, 0, 0, 1, 1, 1)),
                                conv2d(in[0], in[2], Tensor(), conv_params(2, 2, 3, 3, 1, 1, 1))};
                }, nullptr, 1e-7, false});
  // -- sample
  {
    using kernels::GridMode;
    using kernels::GridPadding;
    using kernels::PadMode;
    // Grid points at pixel + 0.3 .. 0.6 (shift -0.5: 0.2 px or more from nearest's rounding
    // boundaries), from one pixel before the image to one after: finite differences see no kink.
    auto safe_grid = [](int64_t N, int64_t Ho, int64_t Wo, int64_t H, int64_t W, bool align, double shift,
                        DType dt) {
      std::vector<double> v;
      for (int64_t i = 0; i < N * Ho * Wo; ++i)
        for (int64_t k = 0; k < 2; ++k) {
          const int64_t size = k == 0 ? W : H;
          const double src = static_cast<double>((i * (3 + k)) % (size + 2) - 1) + 0.3 + 0.1 * ((i + k) % 4) + shift;
          v.push_back(align ? 2.0 * src / static_cast<double>(size - 1) - 1.0
                            : (2.0 * src + 1.0) / static_cast<double>(size) - 1.0);
        }
      return from_vector(v, {N, Ho, Wo, 2}, DType::Float64).to(dt);
    };
    cs.push_back({"grid_sample modes/paddings [2,3,5,7]", [](DType dt) {
                    return Inputs{transposed(rnd({2, 3, 5, 7}, 126, dt)), rnd({2, 4, 6, 2}, 127, dt, -1.4, 1.4)};
                  }, [](const Inputs& in) {
                    Inputs out;
                    for (GridMode m : {GridMode::Bilinear, GridMode::Nearest})
                      for (GridPadding p : {GridPadding::Zeros, GridPadding::Border})
                        for (bool align : {false, true}) out.push_back(grid_sample(in[0], in[1], align, p, m));
                    return out;
                  }, nullptr, 1e-7, false});
    cs.push_back({"grid_sample gradient [1,2,4,5]", [safe_grid](DType dt) {
                    return Inputs{rnd({1, 2, 4, 5}, 128, dt), safe_grid(1, 3, 2, 4, 5, false, 0.0, dt),
                                  safe_grid(1, 3, 2, 4, 5, true, -0.5, dt)};
                  }, [](const Inputs& in) {
                    return Inputs{grid_sample(in[0], in[1], false, GridPadding::Zeros),
                                  grid_sample(in[0], in[1], false, GridPadding::Border),
                                  grid_sample(in[0], in[2], true, GridPadding::Zeros, GridMode::Nearest)};
                  }, nullptr, 1e-7, true});
    cs.push_back({"resize_bilinear [2,3,5,7]", [](DType dt) { return Inputs{transposed(rnd({2, 3, 5, 7}, 129, dt))}; },
                  [](const Inputs& in) {
                    return Inputs{resize_bilinear(in[0], 9, 4, false), resize_bilinear(in[0], 3, 11, true),
                                  resize_bilinear(in[0], 1, 1, false)};
                  }, nullptr, 1e-7, true});
    cs.push_back({"pad [2,3,5,7]", [](DType dt) { return Inputs{transposed(rnd({2, 3, 5, 7}, 133, dt))}; },
                  [](const Inputs& in) {
                    return Inputs{pad(in[0], {1, 2, 3, 0}, PadMode::Constant, 0.5),
                                  pad(in[0], {2, 3, 4, 1}, PadMode::Reflect),
                                  pad(in[0], {3, -1, 0, 5, 1, 1}, PadMode::Replicate)};
                  }, nullptr, 1e-7, true});
  }
  // -- index: topk and sort
  // Values rounded to quarters: many ties (broken by index), and the same numbers in float32 and
  // float64, so the orders (indices) of both dtypes agree exactly. Bit-identical on every device.
  const auto ties = [](const Shape& s, uint64_t seed, DType dt) {
    std::vector<double> v = rnd(s, seed, DType::Float64).to_vector<double>();
    for (double& e : v) e = std::round(e * 4) / 4;
    return from_vector(v, s, dt);
  };
  cs.push_back({"topk/sort/argsort [5,37] along both dims", [ties](DType dt) { return Inputs{ties({5, 37}, 150, dt)}; },
                [](const Inputs& in) {
                  const kernels::TopK a = topk(in[0], 4, 1, true), b = topk(in[0], 2, 0, false);
                  const kernels::TopK c = sort(in[0], 0, true);
                  return Inputs{a.values, a.indices, b.values, b.indices, c.values, c.indices,
                                kernels::argsort(in[0], 1, false)};
                }, nullptr, 0, false});
  cs.push_back({"topk k=1024 / sort of rows longer than a block [3,2600]",
                [ties](DType dt) { return Inputs{ties({3, 2600}, 151, dt)}; },
                [](const Inputs& in) {
                  const kernels::TopK a = topk(in[0], 1024, 1, false), c = sort(in[0], 1, false);
                  return Inputs{a.values, a.indices, c.values, c.indices};
                }, nullptr, 0, false});
  // -- optim
  // adam_step writes in place: the case runs it on clones of (param, exp_avg, exp_avg_sq) and
  // returns them. Same roundings everywhere, so bit-identical on every device.
  cs.push_back({"adam_step AdamW [9,130], Adam [9,130]", [](DType dt) {
                  return Inputs{rnd({9, 130}, 160, dt), rnd({9, 130}, 161, dt), rnd({9, 130}, 162, dt),
                                rnd({9, 130}, 163, dt, 0, 1)};
                }, [](const Inputs& in) {
                  Inputs out;
                  for (bool decoupled : {true, false}) {
                    Tensor p = in[0].clone(), m = in[2].clone(), v = in[3].clone();
                    AdamStep s;
                    s.lr = 0.01, s.weight_decay = 0.1, s.decoupled = decoupled, s.step = 3;
                    kernels::adam_step(p, in[1], m, v, s);
                    out.insert(out.end(), {p, m, v});
                  }
                  return out;
                }, nullptr, 0, false});
  // -- attention: the fused op (kernels/attention.h) through scaled_dot_product_attention; q is a
  // strided view, Lq != Lk, D != Dv; the reference is softmax(q k^T / sqrt(D)) v as float64 loops.
  cs.push_back({"attention [2,3,5,4]x[2,3,7,4]x[2,3,7,6]", [](DType dt) {
                  return Inputs{transposed(rnd({2, 3, 5, 4}, 140, dt)), rnd({2, 3, 7, 4}, 141, dt),
                                rnd({2, 3, 7, 6}, 142, dt)};
                }, [](const Inputs& in) { return Inputs{scaled_dot_product_attention(in[0], in[1], in[2])}; },
                [](const Inputs& in) {
                  const std::vector<double> q = ref::values(in[0]), k = ref::values(in[1]), v = ref::values(in[2]);
                  const int64_t nb = 6, Lq = 5, Lk = 7, D = 4, Dv = 6;
                  std::vector<double> out(nb * Lq * Dv, 0.0);
                  for (int64_t b = 0; b < nb; ++b)
                    for (int64_t i = 0; i < Lq; ++i) {
                      std::vector<double> p(Lk);
                      double m = -INFINITY, l = 0;
                      for (int64_t j = 0; j < Lk; ++j) {
                        double acc = 0;
                        for (int64_t c = 0; c < D; ++c) acc += q[(b * Lq + i) * D + c] * k[(b * Lk + j) * D + c];
                        p[j] = acc / 2.0;  // 1 / sqrt(4)
                        m = std::max(m, p[j]);
                      }
                      for (double& x : p) l += (x = std::exp(x - m));
                      for (int64_t j = 0; j < Lk; ++j)
                        for (int64_t e = 0; e < Dv; ++e) out[(b * Lq + i) * Dv + e] += p[j] / l * v[(b * Lk + j) * Dv + e];
                    }
                  return Inputs{from_vector(out, {2, 3, Lq, Dv}, DType::Float64)};
                }, 1e-7, true});
  // -- spectral: the K nearest samples by affinity (cosine and rbf) and the KNN propagation; the
  // indices must agree exactly (no near-ties in these inputs), values within rounding
  cs.push_back({"knn_affinity/knn_propagate [19,6] vs [11,6], k 3", [](DType dt) {
                  return Inputs{rnd({19, 6}, 128, dt), rnd({11, 6}, 129, dt), rnd({11, 4}, 130, dt)};
                }, [](const Inputs& in) {
                  const kernels::KnnAffinity c = kernels::knn_affinity(in[0], in[1], 3, {KnnKernel::Cosine, 0.5});
                  const kernels::KnnAffinity r = kernels::knn_affinity(in[0], in[1], 3, {KnnKernel::Rbf, 1.5});
                  return Inputs{c.values, c.indices, r.values, r.indices, kernels::knn_propagate(r.values, r.indices, in[2])};
                }, nullptr, 1e-7, false});
  // -- linalg: cholesky and cholesky_solve have kernels (one matrix and a batch, rhs with many
  //    columns); eigh, eigh_topk, svd, qr and solve fall back on emu by design (test below)
  cs.push_back({"cholesky/cholesky_solve [7,7], [2,5,5]", [](DType dt) {
                  // x x^T + n I: symmetric positive definite, well conditioned
                  auto spd = [dt](const Shape& s, uint64_t seed) {
                    const Tensor x = rnd(s, seed, DType::Float64);
                    const int64_t n = s.back();
                    return add(matmul(x, x.transpose(-1, -2)), mul(eye(n, -1, DType::Float64), static_cast<double>(n))).to(dt);
                  };
                  return Inputs{spd({7, 7}, 140), rnd({7, 33}, 141, dt), spd({2, 5, 5}, 142), rnd({2, 5, 3}, 143, dt)};
                }, [](const Inputs& in) {
                  const Tensor l = kernels::cholesky(in[0]), lb = kernels::cholesky(in[2]);
                  return Inputs{l, kernels::cholesky_solve(l, in[1]), lb, kernels::cholesky_solve(lb, in[3])};
                }, nullptr, 1e-7, false});
  // -- bf16: matmul, conv2d and attention with bf16 operands (tests/test_bf16.cpp has the rules):
  //    inputs rounded to bf16, the bf16 kernel, the result back in the input dtype; no fallback on emu
  cs.push_back({"bf16 matmul/conv2d/attention", [](DType dt) {
                  return Inputs{rnd({2, 9, 13}, 150, dt), rnd({13, 7}, 151, dt), rnd({1, 3, 9, 8}, 152, dt),
                                rnd({4, 3, 3, 3}, 153, dt), rnd({2, 2, 5, 8}, 154, dt)};
                }, [](const Inputs& in) {
                  auto b = [](const Tensor& t) { return t.to(DType::BFloat16); };
                  const DType dt = in[0].dtype();
                  const Tensor q = b(in[4]);
                  return Inputs{kernels::matmul(b(in[0]), b(in[1])).to(dt),
                                kernels::conv2d(b(in[2]), b(in[3]), Tensor(), Conv2dParams{}).to(dt),
                                kernels::attention_forward(q, q, q, 0.5).out.to(dt)};
                }, nullptr, 1e-6, false});
  // -- nn in training mode: batch_norm_train (batch statistics; the running statistics updated in
  // place are outputs too) and dropout (its Philox mask is drawn on the tensor's device, so the same
  // seed must give the host's mask there)
  cs.push_back({"batch_norm_train [3,4,5,2] + running stats", [](DType dt) {
                  return Inputs{rnd({3, 4, 5, 2}, 160, dt), rnd({4}, 161, dt), rnd({4}, 162, dt), rnd({4}, 163, dt),
                                rnd({4}, 164, dt, 0.5, 2)};
                }, [](const Inputs& in) {
                  Tensor rm = in[3].clone(), rv = in[4].clone();
                  const Tensor y = batch_norm_train(in[0], in[1], in[2], rm, rv, 0.1, 1e-5);
                  return Inputs{y, rm, rv};
                }, nullptr, 1e-7, false});
  cs.push_back({"batch_norm_train small [2,3,2,2]", [](DType dt) {
                  return Inputs{rnd({2, 3, 2, 2}, 165, dt), rnd({3}, 166, dt), rnd({3}, 167, dt)};
                }, [](const Inputs& in) { return Inputs{batch_norm_train(in[0], in[1], in[2], Tensor(), Tensor(), 0.0)}; },
                nullptr, 1e-7, true});
  cs.push_back({"dropout p=0.3 [37,45]", [](DType dt) { return Inputs{rnd({37, 45}, 168, dt)}; },
                [](const Inputs& in) {
                  Generator g(2024);
                  return Inputs{dropout(in[0], 0.3, true, g)};
                }, nullptr, 1e-7, false});
  // -- fft: the 2-D real DFT pair (autograd/ops_fft.cpp): an FFT on the cpu (kernels/fft.h), products
  //    with cos/sin matrices on the other devices, so this compares the two; odd and even widths
  //    share the half-spectrum width 4; tests/test_dft.cpp checks values against numpy, test_fft.cpp
  //    against a float64 direct sum (small: the gradient mode's finite differences run every input
  //    element through the emulator)
  cs.push_back({"rfft2/irfft2 [2,3,5], [3,4] to widths 6 and 7", [](DType dt) {
                  return Inputs{transposed(rnd({2, 3, 5}, 170, dt)), rnd({3, 4}, 171, dt), rnd({3, 4}, 172, dt)};
                }, [](const Inputs& in) {
                  const Spectrum2 y = rfft2(in[0]);
                  return Inputs{y.re, y.im, irfft2(in[1], in[2], 6, FftNorm::Ortho), irfft2(in[1], in[2], 7)};
                }, nullptr, 1e-7, true});
  return cs;
}

// The families whose every kernel op must run on the emulated device with no fallback (issue 12).
const std::set<std::string> kRequiredOnEmu = {"elementwise", "matmul", "reduce", "nn", "pool", "conv", "sample", "index", "optim", "attention", "spectral"};

std::vector<Device> devices() {
  std::vector<Device> ds{Device::cpu(), Device::emu()};
  if (cuda_available()) ds.push_back(Device::cuda());
  return ds;
}

struct Strict {
  bool prev = kernels::strict_device();
  explicit Strict(bool on) { kernels::set_strict_device(on); }
  ~Strict() { kernels::set_strict_device(prev); }
};
bool is_fallback_refusal(const Error& e) { return std::string(e.what()).find("strict device mode") != std::string::npos; }

// Unsupported (device, case) pairs seen by the modes, printed by the listing.
std::map<std::string, std::vector<std::string>>& unsupported() {
  static std::map<std::string, std::vector<std::string>> u;
  return u;
}
void note_unsupported(Device d, const std::string& c, const Error& e) {
  std::string what = e.what();
  unsupported()[d.str()].push_back(c + "  (" + what.substr(0, what.find(':')) + ")");
}

}  // namespace

// ---------------------------------------------------------------- value mode

TEST(BackendOps, ValuesOnEveryDevice) {
  int compared = 0;
  for (const OpCase& c : cases()) {
    SCOPED_TRACE(c.name);
    // cpu float32 against the float64 reference
    const Inputs in64 = c.make(DType::Float64), in32 = c.make(DType::Float32);
    const Inputs want = c.reference ? c.reference(in64) : c.run(in64);
    const Inputs cpu = c.run(in32);
    ASSERT_EQ(cpu.size(), want.size());
    for (size_t k = 0; k < cpu.size(); ++k) {
      if (!is_floating(cpu[k].dtype())) {
        EXPECT_TRUE(bit_identical(cpu[k], want[k].to(cpu[k].dtype()))) << "output " << k;
        continue;
      }
      EXPECT_LE(nmse(cpu[k], want[k]), 1e-10) << "cpu vs float64 reference, output " << k;
    }
    for (Device d : devices()) {
      if (d.is_cpu()) continue;
      Strict strict(true);
      for (const Inputs& src : {in32, in64}) {
        Inputs got;
        try {
          got = c.run(to_device_strided(src, d));
        } catch (const Error& e) {
          if (!is_fallback_refusal(e)) throw;
          if (src[0].dtype() == DType::Float32) note_unsupported(d, c.name, e);
          continue;
        }
        const Inputs base = c.run(src);
        for (size_t k = 0; k < got.size(); ++k) {
          EXPECT_EQ(got[k].device(), d) << "output " << k;
          EXPECT_EQ(got[k].shape(), base[k].shape()) << "output " << k;
          if (!is_floating(base[k].dtype()) || c.nmse == 0) {
            EXPECT_TRUE(bit_identical(got[k], base[k])) << d.str() << " output " << k;
          } else {
            const double bound = src[0].dtype() == DType::Float64 ? 1e-20 : c.nmse;
            EXPECT_LE(nmse(got[k].to(Device::cpu()), base[k]), bound) << d.str() << " vs cpu, output " << k;
          }
        }
        ++compared;
        // every schedule order of the emulated device gives the same bits
        if (d == Device::emu() && c.deterministic) {
          for (auto order : {simt::Order::reverse, simt::Order::random}) {
            simt::set_schedule({order, 1234});
            const Inputs again = c.run(to_device_strided(src, d));
            simt::clear_schedule();
            for (size_t k = 0; k < got.size(); ++k)
              EXPECT_TRUE(bit_identical(again[k], got[k])) << "schedule order " << static_cast<int>(order) << ", output " << k;
          }
        }
      }
    }
  }
  std::printf("[ backend ] %d (case, device, dtype) runs compared with the cpu\n", compared);
}

// ---------------------------------------------------------------- gradient mode

TEST(BackendOps, GradcheckOnEveryDevice) {
  for (const OpCase& c : cases()) {
    if (!c.grad) continue;
    SCOPED_TRACE(c.name);
    for (Device d : devices()) {
      if (d.is_cuda()) continue;  // gradcheck perturbs inputs through host pointers
      Strict strict(!d.is_cpu());
      const Inputs in = to_device_strided(c.make(DType::Float64), d);
      GradcheckOptions o;
      o.atol = 1e-5;
      o.rtol = 1e-4;
      std::string err;
      try {
        err = gradcheck(c.run, in, o);
      } catch (const Error& e) {
        if (!is_fallback_refusal(e)) throw;
        note_unsupported(d, c.name + " (gradient)", e);
        continue;
      }
      EXPECT_EQ(err, "") << d.str();
    }
  }
}

// ---------------------------------------------------------------- fused vs composed

TEST(BackendOps, FusedOpsEqualTheirComposition) {
  for (Device d : devices()) {
    if (d.is_cuda()) continue;
    for (DType dt : {DType::Float32, DType::Float64}) {
      const Tensor x = to_device_strided({rnd({6, 11}, 130, dt)}, d)[0];
      const Tensor w = rnd({11}, 131, dt).to(d), b = rnd({11}, 132, dt).to(d);
      const double tol = dt == DType::Float32 ? 1e-10 : 1e-24;
      auto run = [&](const std::function<Inputs()>& f) -> Inputs {
        try {
          return f();
        } catch (const Error& e) {
          if (!is_fallback_refusal(e)) throw;
          note_unsupported(d, "fused vs composed", e);
          return {};
        }
      };
      Strict strict(!d.is_cpu());
      Inputs fused = run([&] {
        return Inputs{layer_norm(x, {11}, w, b), softmax(x, 1), log_softmax(x, 0)};
      });
      Inputs composed = run([&] {
        Tensor mu = mean(x, {1}, true), v = var(x, {1}, 0, true);
        Tensor ln = add(mul(div(sub(x, mu), sqrt(add(v, 1e-5))), w), b);
        return Inputs{ln, exp(sub(x, logsumexp(x, {1}, true))), sub(x, logsumexp(x, {0}, true))};
      });
      if (fused.empty() || composed.empty()) continue;
      for (size_t k = 0; k < fused.size(); ++k)
        EXPECT_LE(nmse(fused[k].to(Device::cpu()), composed[k].to(Device::cpu())), tol) << d.str() << " output " << k;
      // batch norm (inference) as (x - m) / sqrt(v + eps) * w + b per channel
      const Tensor xb = rnd({2, 3, 4, 5}, 133, dt).to(d);
      const Tensor m = rnd({3}, 134, dt).to(d), vv = rnd({3}, 135, dt, 0.5, 2).to(d), wb = rnd({3}, 136, dt).to(d),
                   bb = rnd({3}, 137, dt).to(d);
      Inputs bn = run([&] { return Inputs{batch_norm(xb, m, vv, wb, bb)}; });
      Inputs bnc = run([&] {
        auto c4 = [](const Tensor& t) { return t.reshape({3, 1, 1}); };
        return Inputs{add(mul(div(sub(xb, c4(m)), sqrt(add(c4(vv), 1e-5))), c4(wb)), c4(bb))};
      });
      if (!bn.empty() && !bnc.empty()) EXPECT_LE(nmse(bn[0].to(Device::cpu()), bnc[0].to(Device::cpu())), tol) << d.str();
      // and the gradients of both forms agree
      if (dt == DType::Float64) {
        auto gfused = run([&] {
          return Inputs{grad([&](const Tensor& y) { return sum(mul(layer_norm(y, {11}, w, b), softmax(y, 1))); }, x)};
        });
        auto gcomp = run([&] {
          return Inputs{grad([&](const Tensor& y) {
            Tensor mu = mean(y, {1}, true), v = var(y, {1}, 0, true);
            Tensor ln = add(mul(div(sub(y, mu), sqrt(add(v, 1e-5))), w), b);
            return sum(mul(ln, exp(sub(y, logsumexp(y, {1}, true)))));
          }, x)};
        });
        if (!gfused.empty() && !gcomp.empty())
          EXPECT_LE(nmse(gfused[0].to(Device::cpu()), gcomp[0].to(Device::cpu())), 1e-20) << d.str();
      }
    }
  }
}

// ---------------------------------------------------------------- support listing

TEST(BackendOps, SupportListing) {
  const auto ops = kernels::op_list();
  std::map<std::string, std::pair<int, int>> per_family;  // family -> (ops, on emu)
  std::printf("[ backend ] kernel op support (cpu / emu / cuda):\n");
  for (const auto& op : ops) {
    std::printf("[ backend ]   %-12s %-26s %s %s %s\n", op.family, op.name, op.cpu ? "cpu" : "---", op.emu ? "emu" : "---",
                op.cuda ? "cuda" : "----");
    auto& f = per_family[op.family];
    ++f.first;
    f.second += op.emu;
    EXPECT_TRUE(op.cpu) << op.name << " has no CPU kernel";
    if (kRequiredOnEmu.count(op.family)) EXPECT_TRUE(op.emu) << op.family << "::" << op.name << " must run on emu";
  }
  for (const auto& [fam, n] : per_family)
    std::printf("[ backend ] family %-12s %d/%d ops on the emulated device\n", fam.c_str(), n.second, n.first);
  for (const auto& [dev, list] : unsupported()) {
    std::printf("[ backend ] cases %s could not run without a host fallback (%zu):\n", dev.c_str(), list.size());
    for (const auto& c : list) std::printf("[ backend ]   %s\n", c.c_str());
  }
}

// linalg on the emulated device (issue 13): every op has a kernel except the dense eigensolvers,
// svd, qr and solve, which run the CPU kernel there, counted as fallbacks (../shared/SIMT.md).
TEST(BackendOps, LinalgFallsBackOnlyForEighSvdQrAndSolve) {
  const std::set<std::string> host_only = {"eigh", "eigh_topk", "svd", "qr", "solve"};
  int seen = 0;
  for (const auto& op : kernels::op_list()) {
    if (std::string(op.family) != "linalg") continue;
    ++seen;
    EXPECT_EQ(op.emu, !host_only.count(op.name)) << "linalg::" << op.name;
  }
  EXPECT_EQ(seen, 7);
}
