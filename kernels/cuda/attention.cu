// Fused attention on CUDA and the emulated CUDA device: the launchers of the forward versions
// (kernels/cuda/attention/1_naive.cuh .. 3_tiled.cuh), the tiled backward (two kernels, no atomics)
// and the tiled one-pass JVP. Semantics are kernels/cpu/attention.cpp's; docs/attention.md explains
// each version. The forward version comes from set_attention_version, else CORTEX_ATTENTION=1..3,
// else 3 (kernels/cuda/attention.h). q, k, v are read in place through any leading dims and strides.
#include <atomic>
#include <cstdlib>
#include <string>

#include "kernels/attention.h"
#include "kernels/cuda/attention.h"
// (last: the kernels, which include kernels/cuda/common.cuh)
#include "kernels/cuda/attention/tiled_backward.cuh"
#include "kernels/cuda/attention/tiled_jvp.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

constexpr int kBestVersion = 3;
std::atomic<int> g_version{-1};  // -1: follow CORTEX_ATTENTION

int env_version() {
  const char* e = std::getenv("CORTEX_ATTENTION");
  if (e == nullptr || *e == '\0') return kBestVersion;
  const std::string s(e);
  CORTEX_CHECK(s.size() == 1 && s[0] >= '1' && s[0] <= '0' + kAttentionVersions, "CORTEX_ATTENTION: expected 1..",
               kAttentionVersions, ", found '", s, "'");
  return s[0] - '0';
}

// The leading dims of the operands (all of q's leading shape), strides per operand.
AttnLead lead_of(std::initializer_list<const Tensor*> ops) {
  const Tensor& q = **ops.begin();
  AttnLead L;
  L.nd = static_cast<int>(q.dim()) - 2;
  CORTEX_CHECK(L.nd <= kAttnMaxLead, "attention: at most ", kAttnMaxLead, " leading dims on a CUDA device, found ",
               L.nd, " (q ", shape_str(q.shape()), ")");
  int k = 0;
  for (const Tensor* t : ops) {
    for (int d = 0; d < L.nd; ++d) {
      L.size[d] = q.size(d);
      // lse has one dim fewer: its matrix is (Lq, 1), its leading strides are its own.
      L.st[k][d] = t->stride(d);
    }
    ++k;
  }
  return L;
}
template <class T>
AttnMat<T> mat(const Tensor& t) {
  return {static_cast<const T*>(t.raw_data()), t.stride(-2), t.stride(-1)};
}
// lse (*lead, Lq) as a (Lq, 1) matrix.
template <class T>
AttnMat<T> col(const Tensor& t) {
  return {static_cast<const T*>(t.raw_data()), t.stride(-1), 0};
}
AttnDims dims_of(const Tensor& q, const Tensor& k, const Tensor& v) {
  return {shape_numel(Shape(q.shape().begin(), q.shape().end() - 2)), q.size(-2), k.size(-2), q.size(-1), v.size(-1)};
}

// The tile rows br (= bc) for `floats` elements of shared memory per unit of br (and `sq` per
// br^2): the largest of 32, 16, 8 that fits the default 48 KB, else the largest that fits the opt-in
// maximum. Every br keeps a row's lanes (kTiledThreads / br) inside one warp.
int tile_rows(const char* op, int64_t per_row, int64_t per_sq, size_t elem, size_t& bytes) {
  for (size_t limit : {kDefaultDynamicSmemBytes, kMaxDynamicSmemBytes})
    for (int br : {32, 16, 8}) {
      bytes = static_cast<size_t>(br * per_row + int64_t{br} * br * per_sq) * elem;
      if (bytes <= limit) return br;
    }
  throw Error(detail::cat(op, ": D and Dv too large for the tiled kernel's shared memory (", bytes, " bytes at 8 rows, at most ",
                          kMaxDynamicSmemBytes, ")"));
}

unsigned grid_of(int64_t n, const char* op) {
  CORTEX_CHECK(n >= 1 && n <= 2147483647, op, ": ", n, " blocks do not fit a grid");
  return static_cast<unsigned>(n);
}

}  // namespace

int attention_version() {
  const int v = g_version.load();
  return v >= 0 ? v : env_version();
}

void set_attention_version(int v) {
  CORTEX_CHECK(v == -1 || (v >= 1 && v <= kAttentionVersions), "set_attention_version: expected -1 or 1..",
               kAttentionVersions, ", found ", v);
  g_version.store(v);
}

Attention attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  const char* op = "attention_forward";
  const AttnDims n = dims_of(q, k, v);
  Shape os = q.shape();
  os.back() = n.Dv;
  Tensor out = empty(os, q.dtype(), q.device());
  Tensor lse = empty(Shape(q.shape().begin(), q.shape().end() - 1), q.dtype(), q.device());
  const int version = attention_version();
  dispatch_float(q.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const AttnFwdArgs<T> a{n,         lead_of({&q, &k, &v}), mat<T>(q), mat<T>(k), mat<T>(v), static_cast<T>(scale),
                           static_cast<T*>(out.raw_data()), static_cast<T*>(lse.raw_data())};
    if (version == 1) {
      CORTEX_LAUNCH(attn1_naive<T>, blocks_for(n.nb * n.Lq, kNaiveThreads), kNaiveThreads, 0, stream(), a);
    } else if (version == 2) {
      const size_t smem = static_cast<size_t>(n.D + kRowThreads + n.Dv + kRowWarps) * sizeof(T);
      CORTEX_LAUNCH(attn2_row_block<T>, grid_of(n.nb * n.Lq, op), kRowThreads, smem, stream(), a);
    } else {
      // q, o tiles (br, D), (br, Dv); k tile (bc, D + kTilePad), v tile (bc, Dv); scores (br, bc).
      size_t smem = 0;
      const int br = tile_rows(op, 2 * n.D + kTilePad + 2 * n.Dv, 1, sizeof(T), smem);
      CORTEX_LAUNCH(attn3_tiled<T>, grid_of(n.nb * ((n.Lq + br - 1) / br), op), kTiledThreads, smem, stream(), a, br);
    }
  });
  return {out, lse};
}

AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                  const Tensor& lse, const Tensor& gout, double scale) {
  const char* op = "attention_backward";
  const AttnDims n = dims_of(q, k, v);
  Tensor dq = empty(q.shape(), q.dtype(), q.device());
  Tensor dk = empty(k.shape(), q.dtype(), q.device());
  Tensor dv = empty(v.shape(), q.dtype(), q.device());
  dispatch_float(q.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const AttnBwdArgs<T> a{n,
                           lead_of({&q, &k, &v, &out, &lse, &gout}),
                           mat<T>(q),
                           mat<T>(k),
                           mat<T>(v),
                           mat<T>(out),
                           col<T>(lse),
                           mat<T>(gout),
                           static_cast<T>(scale),
                           static_cast<T*>(dq.raw_data()),
                           static_cast<T*>(dk.raw_data()),
                           static_cast<T*>(dv.raw_data())};
    // Both kernels: q, gout tiles (br, D + Dv), k, v tiles (bc, D + Dv + 2 kTilePad), dS (and P)
    // (br, bc), Ls, Ds.
    size_t smem = 0;
    const int br = tile_rows(op, 2 * n.D + 2 * n.Dv + 2 * kTilePad + 2, 2, sizeof(T), smem);
    CORTEX_LAUNCH(attn_bwd_dq<T>, grid_of(n.nb * ((n.Lq + br - 1) / br), op), kTiledThreads, smem, stream(), a, br);
    CORTEX_LAUNCH(attn_bwd_dkv<T>, grid_of(n.nb * ((n.Lk + br - 1) / br), op), kTiledThreads, smem, stream(), a, br);
  });
  return {dq, dk, dv};
}

AttentionJvp attention_jvp(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& tq, const Tensor& tk,
                           const Tensor& tv, double scale) {
  const char* op = "attention_jvp";
  const AttnDims n = dims_of(q, k, v);
  Shape os = q.shape();
  os.back() = n.Dv;
  Tensor out = empty(os, q.dtype(), q.device()), tout = empty(os, q.dtype(), q.device());
  dispatch_float(q.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const AttnJvpArgs<T> a{n,          lead_of({&q, &k, &v, &tq, &tk, &tv}),
                           mat<T>(q),  mat<T>(k),
                           mat<T>(v),  mat<T>(tq),
                           mat<T>(tk), mat<T>(tv),
                           static_cast<T>(scale), static_cast<T*>(out.raw_data()),
                           static_cast<T*>(tout.raw_data())};
    // q, tq tiles (br, D); k, tk tiles (bc, D + kTilePad); v, tv, o, a tiles (., Dv); S, tS (br, bc).
    size_t smem = 0;
    const int br = tile_rows(op, 4 * n.D + 2 * kTilePad + 4 * n.Dv, 2, sizeof(T), smem);
    CORTEX_LAUNCH(attn_jvp_tiled<T>, grid_of(n.nb * ((n.Lq + br - 1) / br), op), kTiledThreads, smem, stream(), a, br);
  });
  return {out, tout};
}

}  // namespace cortex::kernels::CORTEX_BACKEND
