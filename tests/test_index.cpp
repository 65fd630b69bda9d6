// Index family (kernels/index.h): every kernel against a naive float64 loop written here, on random
// odd shapes drawn with Philox, in contiguous, gapped (testing::noncontig) and transposed layouts,
// with size-0/size-1 dims, negative dims, every dtype the op takes, and every input error.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/index.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::allclose;
namespace K = cortex::kernels;

namespace {

using Idx = std::vector<int64_t>;
const std::vector<DType> kAll = {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16,
                                 DType::Int32,   DType::Int64,   DType::UInt8,    DType::Bool};
const std::vector<DType> kNum = {DType::Float32, DType::Float64, DType::Int32, DType::Int64};
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Uniform integers in [lo, hi] from a Philox stream.
struct Rng {
  Generator g;
  explicit Rng(uint64_t seed) : g(seed) {}
  int64_t operator()(int64_t lo, int64_t hi) { return randint(lo, hi + 1, {1}, g).to_vector<int64_t>()[0]; }
  Shape shape(int64_t nd, int64_t lo, int64_t hi) {
    Shape s(nd);
    for (auto& v : s) v = (*this)(lo, hi);
    return s;
  }
};

Idx unravel(int64_t l, const Shape& s) {
  Idx i(s.size());
  for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) {
    i[d] = l % s[d];
    l /= s[d];
  }
  return i;
}
int64_t ravel(const Idx& i, const Shape& s) {
  int64_t l = 0;
  for (size_t d = 0; d < s.size(); ++d) l = l * s[d] + i[d];
  return l;
}
std::vector<double> vals(const Tensor& t) { return t.to(DType::Float64).to_vector<double>(); }
std::vector<int64_t> ivals(const Tensor& t) { return t.to(DType::Int64).to_vector<int64_t>(); }
Tensor f64(const std::vector<double>& v, const Shape& s) { return from_vector(v, s, DType::Float64); }

// Random values of dtype dt: normals for floats, small integers (negative too) for ints, 0/1 for bool.
Tensor rand_of(const Shape& s, uint64_t seed, DType dt) {
  Generator g(seed);
  switch (dt) {
    case DType::Int32:
    case DType::Int64: return randint(-50, 50, s, g).to(dt);
    case DType::UInt8: return randint(0, 250, s, g).to(dt);
    case DType::Bool: return randint(0, 2, s, g).to(dt);
    default: return cortex::randn(s, g, 0.0, 1.0, DType::Float64).to(dt);
  }
}

// Same values in three layouts: contiguous, gapped rows, transposed storage.
Tensor layout(const Tensor& t, int which) {
  if (which % 3 == 1) return cortex::testing::noncontig(t);
  if (which % 3 == 2 && t.dim() >= 2) return t.transpose(0, t.dim() - 1).contiguous().transpose(0, t.dim() - 1);
  return t;
}

// NumPy's order: NaN above every number, equal to itself.
bool ref_less(double a, double b) { return a < b || (std::isnan(b) && !std::isnan(a)); }

// Naive stable insertion sort of the positions of v (independent of std::sort).
std::vector<int64_t> ref_order(const std::vector<double>& v, bool descending) {
  std::vector<int64_t> p;
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    int64_t j = static_cast<int64_t>(p.size());
    p.push_back(i);
    auto before = [&](int64_t a, int64_t b) { return descending ? ref_less(v[b], v[a]) : ref_less(v[a], v[b]); };
    for (; j > 0 && before(i, p[j - 1]); --j) p[j] = p[j - 1];
    p[j] = i;
  }
  return p;
}

// The values of row `r` of shape s along dim d (r enumerates the other coordinates row-major).
Idx row_coords(int64_t r, const Shape& s, int64_t d) {
  Shape o = s;
  o.erase(o.begin() + d);
  Idx oi = unravel(r, o);
  oi.insert(oi.begin() + d, 0);
  return oi;
}
int64_t rows_of(const Shape& s, int64_t d) {
  int64_t n = 1;
  for (size_t k = 0; k < s.size(); ++k)
    if (static_cast<int64_t>(k) != d) n *= s[k];
  return n;
}

}  // namespace

// ------------------------------------------------------------------ concat / stack

TEST(Concat, RandomShapesLayoutsDtypes) {
  Rng r(1);
  int trial = 0;
  for (DType dt : kAll)
    for (int rep = 0; rep < 6; ++rep, ++trial) {
      const int64_t nd = r(1, 4), d = r(0, nd - 1);
      Shape base = r.shape(nd, 1, 5);
      if (rep == 5) base[(d + 1) % nd] = nd > 1 ? 0 : base[(d + 1) % nd];  // a size-0 dim elsewhere
      const int64_t n_in = r(1, 4);
      std::vector<Tensor> xs;
      for (int64_t i = 0; i < n_in; ++i) {
        Shape s = base;
        s[d] = r(0, 4);  // size 0 along dim allowed
        xs.push_back(layout(rand_of(s, 1000 + trial * 10 + i, dt), trial + i));
      }
      Tensor out = K::concat(xs, rep % 2 ? d - nd : d);
      Shape os = base;
      os[d] = 0;
      for (auto& x : xs) os[d] += x.size(d);
      ASSERT_EQ(out.shape(), os);
      EXPECT_EQ(out.dtype(), dt);
      EXPECT_TRUE(out.numel() == 0 || out.is_contiguous());
      std::vector<std::vector<double>> xv;
      for (auto& x : xs) xv.push_back(vals(x));
      std::vector<double> ref(shape_numel(os));
      for (int64_t l = 0; l < static_cast<int64_t>(ref.size()); ++l) {
        Idx p = unravel(l, os);
        size_t i = 0;
        while (p[d] >= xs[i].size(d)) p[d] -= xs[i++].size(d);
        ref[l] = xv[i][ravel(p, xs[i].shape())];
      }
      EXPECT_TRUE(allclose(out, f64(ref, os), 0, 0)) << dtype_name(dt) << " trial " << trial;
    }
}

TEST(Concat, LargeParallelAndSingleInputCopy) {
  // Big enough that strided_for splits rows over threads; one input transposed.
  Tensor a = cortex::testing::randn({300, 257}, 2, DType::Float32);
  Tensor b = cortex::testing::randn({100, 300}, 3, DType::Float32).t();  // (300, 100) transposed view
  Tensor out = K::concat({a, b}, 1);
  ASSERT_EQ(out.shape(), (Shape{300, 357}));
  EXPECT_TRUE(allclose(out.slice(1, 0, 257), a, 0, 0));
  EXPECT_TRUE(allclose(out.slice(1, 257, 357), b, 0, 0));
  // One input: a new tensor with the same values, not the input itself.
  Tensor c = K::concat({b}, 0);
  EXPECT_NE(c.storage(), b.storage());
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_TRUE(allclose(c, b, 0, 0));
  c.fill_(0);
  EXPECT_NE(b.at({0, 0}), 0.0);
}

TEST(Concat, Errors) {
  Tensor a = zeros({2, 3}), b = zeros({2, 4}), c = zeros({2, 3}, DType::Float64), d = zeros({2, 3, 1});
  EXPECT_CORTEX_ERROR(K::concat({}, 0), "at least one");
  EXPECT_CORTEX_ERROR(K::concat({a, b}, 0), "sizes must match except along dim 0");
  EXPECT_NO_THROW(K::concat({a, b}, 1));
  EXPECT_CORTEX_ERROR(K::concat({a, c}, 0), "one dtype");
  EXPECT_CORTEX_ERROR(K::concat({a, d}, 0), "dims");
  EXPECT_CORTEX_ERROR(K::concat({scalar(1.0), scalar(2.0)}, 0), "0-dim");
  EXPECT_CORTEX_ERROR(K::concat({a, a}, 2), "out of range");
  EXPECT_CORTEX_ERROR(K::concat({a, Tensor()}, 0), "undefined");
}

TEST(Stack, RandomShapesAndDims) {
  Rng r(4);
  int trial = 0;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64, DType::Bool, DType::BFloat16})
    for (int rep = 0; rep < 5; ++rep, ++trial) {
      const int64_t nd = r(0, 3), d = r(0, nd);
      const Shape s = r.shape(nd, 0, 4);
      const int64_t n_in = r(1, 3);
      std::vector<Tensor> xs;
      for (int64_t i = 0; i < n_in; ++i) xs.push_back(layout(rand_of(s, 2000 + trial * 10 + i, dt), trial + i));
      Tensor out = K::stack(xs, rep % 2 ? d - nd - 1 : d);
      Shape os = s;
      os.insert(os.begin() + d, n_in);
      ASSERT_EQ(out.shape(), os);
      std::vector<std::vector<double>> xv;
      for (auto& x : xs) xv.push_back(vals(x));
      std::vector<double> ref(shape_numel(os));
      for (int64_t l = 0; l < static_cast<int64_t>(ref.size()); ++l) {
        Idx p = unravel(l, os);
        const int64_t i = p[d];
        p.erase(p.begin() + d);
        ref[l] = xv[i][ravel(p, s)];
      }
      EXPECT_TRUE(allclose(out, f64(ref, os), 0, 0)) << "trial " << trial;
    }
  EXPECT_CORTEX_ERROR(K::stack({zeros({2, 3}), zeros({3, 2})}, 0), "one shape");
  EXPECT_CORTEX_ERROR(K::stack({zeros({2, 3})}, 3), "out of range");
  EXPECT_CORTEX_ERROR(K::stack({}, 0), "at least one");
}

// ------------------------------------------------------------------ split / chunk

TEST(SplitChunk, ViewsAndTorchChunkSemantics) {
  Tensor x = layout(cortex::testing::randn({5, 7, 3}, 5), 1);
  auto parts = K::split(x, {2, 0, 4, 1}, -2);
  ASSERT_EQ(parts.size(), 4u);
  int64_t at = 0;
  for (auto& p : parts) {
    EXPECT_EQ(p.storage(), x.storage());  // views, no copy
    EXPECT_EQ(p.size(0), 5);
    EXPECT_EQ(p.size(2), 3);
    EXPECT_TRUE(allclose(p, x.slice(1, at, at + p.size(1)), 0, 0));
    at += p.size(1);
  }
  auto sizes = [](const std::vector<Tensor>& ps, int64_t d) {
    Shape s;
    for (auto& p : ps) s.push_back(p.size(d));
    return s;
  };
  // torch.chunk: ceil(n / chunks) per piece, the last smaller, possibly fewer pieces.
  EXPECT_EQ(sizes(K::chunk(zeros({5}), 3, 0), 0), (Shape{2, 2, 1}));
  EXPECT_EQ(sizes(K::chunk(zeros({6}), 4, 0), 0), (Shape{2, 2, 2}));
  EXPECT_EQ(sizes(K::chunk(zeros({6}), 6, 0), 0), (Shape{1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(sizes(K::chunk(zeros({3}), 8, 0), 0), (Shape{1, 1, 1}));
  EXPECT_EQ(sizes(K::chunk(zeros({2, 0}), 3, -1), 1), (Shape{0, 0, 0}));
  EXPECT_EQ(sizes(K::chunk(zeros({1}), 1, 0), 0), (Shape{1}));
  auto cs = K::chunk(x, 2, 0);
  ASSERT_EQ(cs.size(), 2u);
  EXPECT_EQ(cs[1].storage(), x.storage());
  EXPECT_TRUE(allclose(cs[1], x.slice(0, 3, 5), 0, 0));

  EXPECT_CORTEX_ERROR(K::split(x, {2, 2}, 1), "sum to 4");
  EXPECT_CORTEX_ERROR(K::split(x, {8, -1}, 1), ">= 0");
  EXPECT_CORTEX_ERROR(K::split(x, {5}, 3), "out of range");
  EXPECT_CORTEX_ERROR(K::split(scalar(1.0), {1}, 0), "at least one dim");
  EXPECT_CORTEX_ERROR(K::chunk(x, 0, 0), "chunks > 0");
  EXPECT_CORTEX_ERROR(K::chunk(scalar(1.0), 1, 0), "at least one dim");
}

// ------------------------------------------------------------------ gather / scatter_add

namespace {
std::vector<double> ref_gather(const Tensor& x, int64_t d, const Tensor& index) {
  const auto xv = vals(x);
  const auto iv = ivals(index);
  std::vector<double> ref(iv.size());
  for (int64_t l = 0; l < static_cast<int64_t>(iv.size()); ++l) {
    Idx p = unravel(l, index.shape());
    p[d] = iv[l];
    ref[l] = xv[ravel(p, x.shape())];
  }
  return ref;
}
std::vector<double> ref_scatter_add(const Tensor& x, int64_t d, const Tensor& index, const Tensor& src) {
  auto out = vals(x);
  const auto iv = ivals(index);
  const auto sv = vals(src);
  for (int64_t l = 0; l < static_cast<int64_t>(iv.size()); ++l) {
    Idx p = unravel(l, index.shape());
    const double s = sv[ravel(p, src.shape())];
    p[d] = iv[l];
    out[ravel(p, x.shape())] += s;
  }
  return out;
}
}  // namespace

TEST(Gather, RandomShapesLayoutsDtypes) {
  Rng r(6);
  int trial = 0;
  for (DType dt : kAll)
    for (DType it : {DType::Int64, DType::Int32})
      for (int rep = 0; rep < 4; ++rep, ++trial) {
        const int64_t nd = r(1, 4), d = r(0, nd - 1);
        const Shape xs = r.shape(nd, 1, 5);
        Shape is(nd);
        for (int64_t k = 0; k < nd; ++k) is[k] = k == d ? r(0, 7) : r(rep == 3 ? 0 : 1, xs[k]);
        Tensor x = layout(rand_of(xs, 3000 + trial, dt), trial);
        Tensor idx = layout(randint(0, xs[d], is, r.g).to(it), trial / 3);
        Tensor out = K::gather(x, rep % 2 ? d - nd : d, idx);
        ASSERT_EQ(out.shape(), is);
        EXPECT_EQ(out.dtype(), dt);
        EXPECT_TRUE(allclose(out, f64(ref_gather(x, d, idx), is), 0, 0)) << dtype_name(dt) << " trial " << trial;
      }
  // Large enough for the parallel path, along each dim, index transposed.
  Tensor x = cortex::testing::randn({300, 257}, 7, DType::Float32);
  Tensor i1 = randint(0, 257, {300, 200}, r.g);
  EXPECT_TRUE(allclose(K::gather(x, 1, i1), f64(ref_gather(x, 1, i1), {300, 200}), 0, 0));
  Tensor i0 = randint(0, 300, {257, 500}, r.g).t();  // (500, 257) transposed view
  EXPECT_TRUE(allclose(K::gather(x, 0, i0), f64(ref_gather(x, 0, i0), {500, 257}), 0, 0));
  // 0-dim x and index
  EXPECT_EQ(K::gather(scalar(4.5), 0, scalar(0, DType::Int64)).item(), 4.5);
}

TEST(Gather, Errors) {
  Tensor x = zeros({4, 5});
  EXPECT_CORTEX_ERROR(K::gather(x, 1, from_vector(std::vector<int64_t>{0, 7, 1}, {1, 3})), "gather: index 7 is out of range for dim 1 of size 5");
  EXPECT_CORTEX_ERROR(K::gather(x, 0, from_vector(std::vector<int32_t>{-1}, {1, 1})), "gather: index -1");
  // Two bad values in a tensor big enough for the parallel path: the first one (row-major) is named.
  Tensor big = zeros({400, 300}, DType::Int64);
  big.select(0, 390).select(0, 1).fill_(9);
  big.select(0, 100).select(0, 3).fill_(-3);
  EXPECT_CORTEX_ERROR(K::gather(zeros({400, 5}), 1, big.slice(1, 0, 5)), "index -3");
  EXPECT_CORTEX_ERROR(K::gather(x, 1, zeros({4}, DType::Int64)), "dims");
  EXPECT_CORTEX_ERROR(K::gather(x, 1, zeros({5, 2}, DType::Int64)), "exceeds x shape");
  EXPECT_CORTEX_ERROR(K::gather(x, 1, zeros({2, 2}, DType::Float32)), "int64 or int32");
  EXPECT_CORTEX_ERROR(K::gather(x, 2, zeros({2, 2}, DType::Int64)), "out of range");
}

TEST(ScatterAdd, RandomShapesLayoutsDtypes) {
  Rng r(8);
  int trial = 0;
  for (DType dt : kNum)
    for (DType it : {DType::Int64, DType::Int32})
      for (int rep = 0; rep < 5; ++rep, ++trial) {
        const int64_t nd = r(1, 4), d = r(0, nd - 1);
        const Shape xs = r.shape(nd, 1, 5);
        Shape is(nd), ss(nd);
        for (int64_t k = 0; k < nd; ++k) {
          is[k] = k == d ? r(0, 9) : r(rep == 4 ? 0 : 1, xs[k]);
          ss[k] = is[k] + r(0, 2);  // src may be larger than index
        }
        Tensor x = layout(rand_of(xs, 4000 + trial, dt), trial);
        Tensor idx = layout(randint(0, xs[d], is, r.g).to(it), trial / 3);
        Tensor src = layout(rand_of(ss, 5000 + trial, dt), trial + 1);
        Tensor out = K::scatter_add(x, rep % 2 ? d - nd : d, idx, src);
        ASSERT_EQ(out.shape(), xs);
        EXPECT_EQ(out.dtype(), dt);
        const double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
        EXPECT_TRUE(allclose(out, f64(ref_scatter_add(x, d, idx, src), xs), tol, tol)) << dtype_name(dt) << " trial " << trial;
        EXPECT_FALSE(out.is_same(x));
      }
}

TEST(ScatterAdd, DeterministicWithManyDuplicates) {
  // Thousands of terms land on each of three rows/columns; the float32 sums must be bitwise the
  // same for every thread count and equal to adding the terms in index order.
  Rng r(9);
  for (int64_t d : {0, 1}) {
    const Shape xs = d == 0 ? Shape{3, 64} : Shape{64, 3};
    const Shape is = d == 0 ? Shape{6000, 64} : Shape{64, 6000};
    Tensor x = cortex::testing::randn(xs, 10, DType::Float32);
    Tensor idx = randint(0, 3, is, r.g);
    Tensor src = cortex::testing::randn(is, 11, DType::Float32);
    std::vector<float> ref = x.to_vector<float>();
    const auto iv = idx.to_vector<int64_t>();
    const auto sv = src.to_vector<float>();
    for (int64_t l = 0; l < static_cast<int64_t>(iv.size()); ++l) {
      Idx p = unravel(l, is);
      p[d] = iv[l];
      ref[ravel(p, xs)] += sv[l];
    }
    const int saved = omp_get_max_threads();
    for (int threads : {1, 2, 4}) {
      omp_set_num_threads(threads);
      const auto got = K::scatter_add(x, d, idx, src).to_vector<float>();
      ASSERT_EQ(got.size(), ref.size());
      for (size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(got[i], ref[i]) << "dim " << d << " threads " << threads << " at " << i;
    }
    omp_set_num_threads(saved);
  }
}

TEST(ScatterAdd, Errors) {
  Tensor x = zeros({4, 5}), src = ones({4, 5});
  EXPECT_CORTEX_ERROR(K::scatter_add(x, 0, from_vector(std::vector<int64_t>{0, 4}, {1, 2}), src), "scatter_add: index 4 is out of range for dim 0 of size 4");
  EXPECT_CORTEX_ERROR(K::scatter_add(x, 1, from_vector(std::vector<int32_t>{-2}, {1, 1}), src), "scatter_add: index -2");
  EXPECT_CORTEX_ERROR(K::scatter_add(x, 0, zeros({5, 5}, DType::Int64), src), "exceeds src shape");
  EXPECT_CORTEX_ERROR(K::scatter_add(x, 0, zeros({2, 6}, DType::Int64), ones({2, 6})), "exceeds x shape");
  EXPECT_CORTEX_ERROR(K::scatter_add(x, 0, zeros({2, 2}, DType::Int64), ones({4, 5}, DType::Float64)), "one dtype");
  EXPECT_CORTEX_ERROR(K::scatter_add(x, 0, zeros({2}, DType::Int64), src), "one ndim");
  EXPECT_CORTEX_ERROR(K::scatter_add(x, 0, zeros({2, 2}, DType::Float32), src), "int64 or int32");
  EXPECT_CORTEX_ERROR(K::scatter_add(x.to(DType::BFloat16), 0, zeros({2, 2}, DType::Int64), src.to(DType::BFloat16)),
                      "expected a float32, float64, int32 or int64");
}

// ------------------------------------------------------------------ index_select / index_add

TEST(IndexSelect, RandomShapesLayoutsDtypes) {
  Rng r(12);
  int trial = 0;
  for (DType dt : kAll)
    for (DType it : {DType::Int64, DType::Int32})
      for (int rep = 0; rep < 4; ++rep, ++trial) {
        const int64_t nd = r(1, 4), d = r(0, nd - 1);
        Shape xs = r.shape(nd, 1, 5);
        if (rep == 2) xs.back() = 37;  // inner blocks >= 64 bytes: the memcpy path when contiguous
        const int64_t m = rep == 3 ? 0 : r(1, 9);
        Tensor x = layout(rand_of(xs, 6000 + trial, dt), trial);
        Tensor idx = cortex::testing::noncontig(randint(0, xs[d], {m}, r.g).to(it));
        if (trial % 2) idx = idx.contiguous();
        Tensor out = K::index_select(x, rep % 2 ? d - nd : d, idx);
        Shape os = xs;
        os[d] = m;
        ASSERT_EQ(out.shape(), os);
        EXPECT_EQ(out.dtype(), dt);
        const auto xv = vals(x);
        const auto iv = ivals(idx);
        std::vector<double> ref(shape_numel(os));
        for (int64_t l = 0; l < static_cast<int64_t>(ref.size()); ++l) {
          Idx p = unravel(l, os);
          p[d] = iv[p[d]];
          ref[l] = xv[ravel(p, xs)];
        }
        EXPECT_TRUE(allclose(out, f64(ref, os), 0, 0)) << dtype_name(dt) << " trial " << trial;
      }
}

TEST(IndexSelect, Errors) {
  Tensor x = zeros({4, 5});
  EXPECT_CORTEX_ERROR(K::index_select(x, 1, from_vector(std::vector<int64_t>{0, 5})), "index_select: index 5 is out of range for dim 1 of size 5");
  EXPECT_CORTEX_ERROR(K::index_select(x, 0, from_vector(std::vector<int32_t>{1, -1})), "index_select: index -1");
  EXPECT_CORTEX_ERROR(K::index_select(x, 0, zeros({1, 2}, DType::Int64)), "1-D index");
  EXPECT_CORTEX_ERROR(K::index_select(x, 0, zeros({2}, DType::Float64)), "int64 or int32");
  EXPECT_CORTEX_ERROR(K::index_select(scalar(1.0), 0, zeros({1}, DType::Int64)), "at least one dim");
  EXPECT_CORTEX_ERROR(K::index_select(x, -3, zeros({1}, DType::Int64)), "out of range");
}

TEST(IndexAdd, RandomShapesLayoutsDtypes) {
  Rng r(13);
  int trial = 0;
  for (DType dt : kNum)
    for (DType it : {DType::Int64, DType::Int32})
      for (int rep = 0; rep < 5; ++rep, ++trial) {
        const int64_t nd = r(1, 4), d = r(0, nd - 1);
        Shape xs = r.shape(nd, 1, 5);
        if (rep == 4 && nd > 1) xs[(d + 1) % nd] = 0;
        const int64_t m = rep == 3 ? 0 : r(1, 12);  // duplicates are likely
        Shape ss = xs;
        ss[d] = m;
        Tensor x = layout(rand_of(xs, 7000 + trial, dt), trial);
        Tensor src = layout(rand_of(ss, 7500 + trial, dt), trial + 1);
        Tensor idx = randint(0, xs[d], {m}, r.g).to(it);
        Tensor out = K::index_add(x, rep % 2 ? d - nd : d, idx, src);
        ASSERT_EQ(out.shape(), xs);
        auto ref = vals(x);
        const auto sv = vals(src);
        const auto iv = ivals(idx);
        for (int64_t l = 0; l < static_cast<int64_t>(sv.size()); ++l) {
          Idx p = unravel(l, ss);
          p[d] = iv[p[d]];
          ref[ravel(p, xs)] += sv[l];
        }
        const double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
        EXPECT_TRUE(allclose(out, f64(ref, xs), tol, tol)) << dtype_name(dt) << " trial " << trial;
      }
}

TEST(IndexAdd, DeterministicAcrossThreads) {
  Rng r(14);
  Tensor x = cortex::testing::randn({5, 3, 700}, 15, DType::Float32);
  Tensor idx = randint(0, 3, {4000}, r.g);
  Tensor src = cortex::testing::randn({5, 4000, 701}, 16, DType::Float32).slice(2, 1, 701);  // non-contiguous
  std::vector<float> ref = x.to_vector<float>();
  const auto iv = idx.to_vector<int64_t>();
  const auto sv = src.to_vector<float>();
  for (int64_t o = 0; o < 5; ++o)
    for (int64_t i = 0; i < 4000; ++i)
      for (int64_t c = 0; c < 700; ++c) ref[(o * 3 + iv[i]) * 700 + c] += sv[(o * 4000 + i) * 700 + c];
  const int saved = omp_get_max_threads();
  for (int threads : {1, 3}) {
    omp_set_num_threads(threads);
    const auto got = K::index_add(x, 1, idx, src).to_vector<float>();
    for (size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(got[i], ref[i]) << "threads " << threads << " at " << i;
  }
  omp_set_num_threads(saved);
}

TEST(IndexAdd, Errors) {
  Tensor x = zeros({4, 5});
  EXPECT_CORTEX_ERROR(K::index_add(x, 0, from_vector(std::vector<int64_t>{4}), ones({1, 5})), "index_add: index 4 is out of range");
  EXPECT_CORTEX_ERROR(K::index_add(x, 0, from_vector(std::vector<int64_t>{-1}), ones({1, 5})), "index_add: index -1");
  EXPECT_CORTEX_ERROR(K::index_add(x, 0, from_vector(std::vector<int64_t>{1, 2}), ones({1, 5})), "expected src of shape [2, 5]");
  EXPECT_CORTEX_ERROR(K::index_add(x, 1, from_vector(std::vector<int64_t>{1}), ones({3, 1})), "expected src of shape [4, 1]");
  EXPECT_CORTEX_ERROR(K::index_add(x, 0, from_vector(std::vector<int64_t>{1}), ones({1, 5}, DType::Float64)), "one dtype");
  EXPECT_CORTEX_ERROR(K::index_add(x, 0, zeros({1, 1}, DType::Int64), ones({1, 5})), "1-D index");
  EXPECT_CORTEX_ERROR(K::index_add(x.to(DType::UInt8), 0, zeros({1}, DType::Int64), ones({1, 5}, DType::UInt8)),
                      "expected a float32, float64, int32 or int64");
}

// ------------------------------------------------------------------ topk / sort / argsort

namespace {
// Values with ties (small integers) and, for floats, some NaNs.
Tensor tied_values(const Shape& s, uint64_t seed, DType dt, bool nans) {
  Generator g(seed);
  auto v = vals(randint(-6, 7, s, g));
  if (nans && (dt == DType::Float32 || dt == DType::Float64))
    for (size_t i = 0; i < v.size(); i += 7) v[i] = kNaN;
  return f64(v, s).to(dt);
}

// Checks topk (or sort when k < 0) of x along d against the insertion-sort reference.
void check_ordered(const Tensor& x, int64_t d, int64_t k, bool largest_or_desc, const K::TopK& got, const std::string& what) {
  const Shape& s = x.shape();
  const int64_t n = s[d], kk = k < 0 ? n : k;
  Shape os = s;
  os[d] = kk;
  ASSERT_EQ(got.values.shape(), os) << what;
  ASSERT_EQ(got.indices.shape(), os) << what;
  ASSERT_EQ(got.indices.dtype(), DType::Int64);
  ASSERT_EQ(got.values.dtype(), x.dtype());
  const auto xv = vals(x);
  std::vector<double> rv(shape_numel(os));
  std::vector<int64_t> ri(rv.size());
  for (int64_t r = 0; r < rows_of(s, d); ++r) {
    Idx p = row_coords(r, s, d);
    std::vector<double> row(n);
    for (int64_t i = 0; i < n; ++i) {
      p[d] = i;
      row[i] = xv[ravel(p, s)];
    }
    const auto ord = ref_order(row, largest_or_desc);
    for (int64_t j = 0; j < kk; ++j) {
      p[d] = j;
      rv[ravel(p, os)] = row[ord[j]];
      ri[ravel(p, os)] = ord[j];
    }
  }
  EXPECT_TRUE(allclose(got.values, f64(rv, os), 0, 0)) << what;
  EXPECT_EQ(ivals(got.indices), ri) << what;
}
}  // namespace

TEST(TopK, RandomRowsTiesNaNsBothPaths) {
  Rng r(20);
  int trial = 0;
  for (DType dt : kNum)
    for (int rep = 0; rep < 8; ++rep, ++trial) {
      const int64_t nd = r(1, 3), d = r(0, nd - 1);
      Shape s = r.shape(nd, 1, 4);
      s[d] = rep < 4 ? r(1, 120) : r(33, 140);  // rows long enough for both paths
      // k small (insertion path) or large (> 32, nth_element path), including 0 and n
      const int64_t k = rep == 0 ? 0 : rep == 1 ? s[d] : rep < 4 ? r(1, std::min<int64_t>(s[d], 32)) : r(33, s[d]);
      const bool largest = rep % 2 == 0;
      Tensor x = layout(tied_values(s, 8000 + trial, dt, rep % 3 != 0), trial);
      K::TopK got = K::topk(x, k, rep % 2 ? d - nd : d, largest);
      check_ordered(x, d, k, largest, got, std::string(dtype_name(dt)) + " trial " + std::to_string(trial));
    }
}

TEST(TopK, ContiguousRowsBlockScan) {
  // Contiguous rows much longer than k take the blocked scan of the insertion path.
  int trial = 0;
  for (DType dt : kNum)
    for (int64_t k : {1, 5, 32})
      for (bool largest : {true, false}) {
        Tensor x = tied_values({3, 517}, 100 + trial++, dt, k == 5);  // NaNs would fill a small top k
        check_ordered(x, 1, k, largest, K::topk(x, k, 1, largest),
                      std::string(dtype_name(dt)) + " k " + std::to_string(k) + (largest ? " largest" : " smallest"));
      }
}

TEST(TopK, ExplicitTiesNaNsAndEdges) {
  Tensor x = from_vector(std::vector<double>{1, kNaN, 3, 3, kNaN, 1, 2});
  K::TopK a = K::topk(x, 4, 0, true);
  EXPECT_EQ(ivals(a.indices), (std::vector<int64_t>{1, 4, 2, 3}));  // NaN counts as largest; ties by index
  K::TopK b = K::topk(x, 3, 0, false);
  EXPECT_EQ(ivals(b.indices), (std::vector<int64_t>{0, 5, 6}));
  EXPECT_EQ(vals(b.values), (std::vector<double>{1, 1, 2}));
  // size-0 and size-1 dims, 0-dim input
  EXPECT_EQ(K::topk(zeros({0, 5}), 3, -1).values.shape(), (Shape{0, 3}));
  EXPECT_EQ(K::topk(zeros({4, 0}), 0, -1).indices.shape(), (Shape{4, 0}));
  K::TopK one = K::topk(from_vector(std::vector<float>{2, 5, 1}, {3, 1}), 1, 1);
  EXPECT_EQ(ivals(one.indices), (std::vector<int64_t>{0, 0, 0}));
  K::TopK sc = K::topk(scalar(7.0), 1);
  EXPECT_EQ(sc.values.dim(), 0);
  EXPECT_EQ(sc.values.item(), 7.0);
}

TEST(TopK, LongRowIsCorrectAndFast) {
  // A 1e6-long row, k = 10: one selection pass, not a full sort.
  Tensor x = cortex::testing::randn({1000000}, 21, DType::Float32);
  K::TopK got = K::topk(x, 10);
  auto v = x.to_vector<float>();
  std::vector<int64_t> want;
  for (int j = 0; j < 10; ++j) {  // naive: repeatedly take the largest not yet taken
    int64_t best = -1;
    for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i)
      if (v[i] != -INFINITY && (best < 0 || v[i] > v[best])) best = i;
    want.push_back(best);
    v[best] = -INFINITY;
  }
  EXPECT_EQ(ivals(got.indices), want);
  // Worst case for the insertion buffer: an ascending row makes every element enter.
  Tensor asc = arange(0, 200000, 1, DType::Float64);
  EXPECT_EQ(ivals(K::topk(asc, 32).indices)[31], 200000 - 32);
}

TEST(TopK, Errors) {
  Tensor x = zeros({2, 3});
  EXPECT_CORTEX_ERROR(K::topk(x, 4), "topk: k 4 is out of range for dim 1 of size 3");
  EXPECT_CORTEX_ERROR(K::topk(x, -1), "k -1 is out of range");
  EXPECT_CORTEX_ERROR(K::topk(x, 1, 2), "out of range");
  EXPECT_CORTEX_ERROR(K::topk(x.to(DType::Float16), 1), "expected a float32, float64, int32 or int64");
}

TEST(Sort, RandomStableNaNOrderBothDirections) {
  Rng r(22);
  int trial = 0;
  for (DType dt : kNum)
    for (int rep = 0; rep < 6; ++rep, ++trial) {
      const int64_t nd = r(1, 3), d = r(0, nd - 1);
      Shape s = r.shape(nd, 0, 5);
      s[d] = r(0, 30);
      const bool desc = rep % 2 == 1;
      Tensor x = layout(tied_values(s, 9000 + trial, dt, true), trial);
      const int64_t dd = rep % 3 == 0 ? d - nd : d;
      K::TopK got = K::sort(x, dd, desc);
      check_ordered(x, d, -1, desc, got, std::string(dtype_name(dt)) + " trial " + std::to_string(trial));
      EXPECT_EQ(ivals(K::argsort(x, dd, desc)), ivals(got.indices));
    }
  // Large enough for the parallel path
  Tensor big = tied_values({300, 200}, 23, DType::Float32, true).t();
  check_ordered(big, 0, -1, false, K::sort(big, 0), "big");
}

TEST(Sort, NumPyExamples) {
  Tensor x = from_vector(std::vector<double>{3, kNaN, 1, kNaN, 2});
  K::TopK a = K::sort(x);
  EXPECT_EQ(ivals(a.indices), (std::vector<int64_t>{2, 4, 0, 1, 3}));
  EXPECT_TRUE(allclose(a.values, from_vector(std::vector<double>{1, 2, 3, kNaN, kNaN}), 0, 0));
  K::TopK b = K::sort(x, 0, true);
  EXPECT_EQ(ivals(b.indices), (std::vector<int64_t>{1, 3, 0, 4, 2}));
  // stable: equal keys keep their order in both directions
  Tensor t = from_vector(std::vector<int32_t>{1, 0, 1, 0});
  EXPECT_EQ(ivals(K::argsort(t)), (std::vector<int64_t>{1, 3, 0, 2}));
  EXPECT_EQ(ivals(K::argsort(t, 0, true)), (std::vector<int64_t>{0, 2, 1, 3}));
  EXPECT_EQ(K::sort(scalar(2.0)).values.dim(), 0);
  EXPECT_EQ(K::argsort(scalar(2.0)).item(), 0.0);
  EXPECT_CORTEX_ERROR(K::sort(zeros({2}, DType::Bool)), "sort: expected a float32, float64, int32 or int64");
  EXPECT_CORTEX_ERROR(K::argsort(zeros({2}), 1), "out of range");
}

// ------------------------------------------------------------------ cumsum / flip / tril / triu

TEST(Cumsum, RandomShapesLayoutsDtypes) {
  Rng r(30);
  int trial = 0;
  for (DType dt : kNum)
    for (int rep = 0; rep < 6; ++rep, ++trial) {
      const int64_t nd = r(1, 4), d = r(0, nd - 1);
      Shape s = r.shape(nd, rep == 5 ? 0 : 1, 6);
      if (rep == 4) s[d] = 300;
      Tensor x = layout(rand_of(s, 10000 + trial, dt), trial);
      Tensor out = K::cumsum(x, rep % 2 ? d - nd : d);
      ASSERT_EQ(out.shape(), s);
      EXPECT_EQ(out.dtype(), dt);
      // float32 accumulates in double: the result is the double running sum rounded once, exactly
      const auto xv = vals(x);
      std::vector<double> ref(xv.size());
      for (int64_t rr = 0; rr < rows_of(s, d); ++rr) {
        Idx p = row_coords(rr, s, d);
        double acc = 0;
        for (int64_t i = 0; i < s[d]; ++i) {
          p[d] = i;
          acc += xv[ravel(p, s)];
          ref[ravel(p, s)] = acc;
        }
      }
      EXPECT_TRUE(allclose(out, f64(ref, s).to(dt), 0, 0)) << dtype_name(dt) << " trial " << trial;
    }
  // float32 running sum would stay at 1e8 (spacing 8); double accumulation gives 1e8 + 16.
  std::vector<float> v(17, 1.0f);
  v[0] = 1e8f;
  EXPECT_EQ(K::cumsum(from_vector(v), 0).to_vector<float>().back(), 100000016.0f);
  // along a middle dim of a big tensor (blocked path, parallel)
  Tensor b = cortex::testing::randn({3, 500, 300}, 31);
  const auto cb = K::cumsum(b, 1).to_vector<double>();
  const auto bv = b.to_vector<double>();
  double worst = 0;
  for (int64_t o = 0; o < 3; ++o)
    for (int64_t c = 0; c < 300; ++c) {
      double acc = 0;
      for (int64_t j = 0; j < 500; ++j) {
        acc += bv[(o * 500 + j) * 300 + c];
        worst = std::max(worst, std::abs(cb[(o * 500 + j) * 300 + c] - acc));
      }
    }
  EXPECT_EQ(worst, 0.0);
  EXPECT_EQ(K::cumsum(scalar(3.0), 0).dim(), 0);
  EXPECT_CORTEX_ERROR(K::cumsum(zeros({2}, DType::UInt8), 0), "cumsum: expected a float32, float64, int32 or int64");
  EXPECT_CORTEX_ERROR(K::cumsum(zeros({2}), 1), "out of range");
}

TEST(Flip, RandomShapesLayoutsDtypes) {
  Rng r(40);
  int trial = 0;
  for (DType dt : kAll)
    for (int rep = 0; rep < 4; ++rep, ++trial) {
      const int64_t nd = r(1, 4), d = r(0, nd - 1);
      const Shape s = r.shape(nd, rep == 3 ? 0 : 1, 5);
      Tensor x = layout(rand_of(s, 11000 + trial, dt), trial);
      Tensor out = K::flip(x, rep % 2 ? d - nd : d);
      ASSERT_EQ(out.shape(), s);
      EXPECT_EQ(out.dtype(), dt);
      const auto xv = vals(x);
      std::vector<double> ref(xv.size());
      for (int64_t l = 0; l < static_cast<int64_t>(ref.size()); ++l) {
        Idx p = unravel(l, s);
        p[d] = s[d] - 1 - p[d];
        ref[l] = xv[ravel(p, s)];
      }
      EXPECT_TRUE(allclose(out, f64(ref, s), 0, 0)) << dtype_name(dt) << " trial " << trial;
    }
  Tensor big = cortex::testing::randn({200, 301}, 41, DType::Float32);
  Tensor fb = K::flip(big, 1);
  EXPECT_TRUE(allclose(fb.select(1, 0), big.select(1, 300), 0, 0));
  EXPECT_TRUE(allclose(fb.select(1, 300), big.select(1, 0), 0, 0));
  EXPECT_EQ(K::flip(scalar(2.0), 0).item(), 2.0);
  EXPECT_CORTEX_ERROR(K::flip(zeros({2, 2}), 2), "flip: dim 2 is out of range");
}

TEST(TrilTriu, RandomShapesOffsetsLayoutsDtypes) {
  Rng r(50);
  int trial = 0;
  for (DType dt : kAll)
    for (int rep = 0; rep < 4; ++rep, ++trial) {
      const int64_t nd = r(2, 4);
      Shape s = r.shape(nd, 1, 6);
      if (rep == 3) s[0] = 0;
      Tensor x = layout(rand_of(s, 12000 + trial, dt), trial);
      const int64_t R = s[nd - 2], C = s[nd - 1];
      const auto xv = vals(x);
      for (int64_t k : {-R - 2, -R, int64_t{-1}, int64_t{0}, int64_t{1}, C - 1, C + 3,
                        std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()}) {
        for (bool upper : {false, true}) {
          Tensor out = upper ? K::triu(x, k) : K::tril(x, k);
          ASSERT_EQ(out.shape(), s);
          EXPECT_EQ(out.dtype(), dt);
          std::vector<double> ref(xv.size());
          for (int64_t l = 0; l < static_cast<int64_t>(ref.size()); ++l) {
            Idx p = unravel(l, s);
            const double diff = static_cast<double>(p[nd - 1]) - static_cast<double>(p[nd - 2]);  // j - i
            const bool keep = upper ? diff >= static_cast<double>(k) : diff <= static_cast<double>(k);
            ref[l] = keep ? xv[l] : 0.0;
          }
          EXPECT_TRUE(allclose(out, f64(ref, s), 0, 0)) << dtype_name(dt) << " k " << k << (upper ? " triu" : " tril");
        }
      }
    }
  Tensor big = cortex::testing::randn({4, 150, 130}, 51, DType::Float32).transpose(1, 2);  // (4, 130, 150)
  Tensor tb = K::tril(big, 2);
  EXPECT_EQ(tb.at({3, 10, 12}), big.at({3, 10, 12}));
  EXPECT_EQ(tb.at({3, 10, 13}), 0.0);
  EXPECT_CORTEX_ERROR(K::tril(zeros({3}), 0), "tril: expected a tensor with at least 2 dims");
  EXPECT_CORTEX_ERROR(K::triu(scalar(1.0), 0), "triu: expected a tensor with at least 2 dims");
}
