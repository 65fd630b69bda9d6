// The profiler's named kernels (cases.h). This file, and only this file, is compiled with the
// load/store instrumentation (kernels/cuda/simt/profile/CMakeLists.txt): the kernel sources it
// includes are what the profiler counts. The launch configurations are those of the library's
// launchers (kernels/cuda/matmul.cu's gemm(), kernels/cuda/attention.cu's attention_forward()).
#include "kernels/cuda/simt/profile/cases.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "kernels/cuda/gemm.h"
#include "tensor/error.h"
// (last: the kernels, which include kernels/cuda/common.cuh)
#include "kernels/cuda/attention/3_tiled.cuh"
#include "kernels/cuda/gemm/7_warptile.cuh"

namespace cortex::kernels::emu {
namespace {

// ---- the known-answer kernels (tests/simt_profile_tests.cpp)

// out[i] = in[i]: a warp reads and writes 32 consecutive floats, 128 bytes = 4 sectors each.
__global__ void prof_copy(const float* __restrict__ in, float* __restrict__ out, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i];
}

// out[i] = in[32 i]: each lane of a warp reads its own sector (32 per request); the store is coalesced.
__global__ void prof_stride32(const float* __restrict__ in, float* __restrict__ out, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i * 32];
}

// out = in^T through a 32 x 32 shared tile, block 32 x 32 (warp = one row ty). The tile is written
// along a row (32 banks) and read down a column: with 32 columns a column is one bank (32-way
// conflict); with 33, consecutive rows shift by one bank (no conflict).
template <int kCols>
__global__ void prof_transpose(const float* __restrict__ in, float* __restrict__ out, int64_t n) {
  __shared__ float tile[32][kCols];
  const int64_t x = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x, y = static_cast<int64_t>(blockIdx.y) * 32 + threadIdx.y;
  tile[threadIdx.y][threadIdx.x] = in[y * n + x];
  __syncthreads();
  const int64_t ox = static_cast<int64_t>(blockIdx.y) * 32 + threadIdx.x, oy = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.y;
  out[oy * n + ox] = tile[threadIdx.x][threadIdx.y];
}

}  // namespace
}  // namespace cortex::kernels::emu

namespace cortex::simt::profile {
namespace {

using namespace cortex::kernels;
using namespace cortex::kernels::emu;

// A cudaMalloc-like buffer: 256-byte aligned, random floats in [-1, 1).
struct Buffer {
  float* p = nullptr;
  explicit Buffer(int64_t n, std::uint64_t seed) {
    const std::size_t bytes = (static_cast<std::size_t>(n) * sizeof(float) + 255) / 256 * 256;
    p = static_cast<float*>(std::aligned_alloc(256, bytes ? bytes : 256));
    CORTEX_CHECK(p != nullptr, "profile: could not allocate ", bytes, " bytes");
    std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; ++i) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      p[i] = static_cast<float>(static_cast<double>(s >> 11) / 9007199254740992.0 * 2 - 1);
    }
  }
  ~Buffer() { std::free(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

// Dims must be >= 1 and small enough that an emulated run finishes (and int indices hold).
void check_dims(const std::string& name, const std::vector<int64_t>& shape, int64_t limit) {
  for (int64_t d : shape)
    CORTEX_CHECK(d >= 1 && d <= limit, "profile ", name, ": expected every size in [1, ", limit, "], found ", d);
}

std::vector<KernelProfile> gemm_case(int version, const std::vector<int64_t>& s) {
  const int64_t M = s[0], N = s[1], K = s[2];
  Buffer A(M * K, 1), B(K * N, 2), C(M * N, 3);
  GemmArgs<float> g;
  g.M = M, g.N = N, g.K = K;
  g.A = A.p, g.a_rs = K, g.a_cs = 1;
  g.B = B.p, g.b_rs = N, g.b_cs = 1;
  g.C = C.p, g.ldc = N;
  auto grid = [&](int tm, int tn) { return dim3(blocks_for(M, tm), blocks_for(N, tn)); };
  start();
  declare_flops(2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K));
  switch (version) {
    case 1: CORTEX_LAUNCH(gemm1_naive<float>, grid(kNaiveBlock, kNaiveBlock), dim3(kNaiveBlock, kNaiveBlock), 0, nullptr, g); break;
    case 2: CORTEX_LAUNCH(gemm2_coalesced<float>, grid(kCoalescedTile, kCoalescedTile), kCoalescedTile * kCoalescedTile, 0, nullptr, g); break;
    case 3: CORTEX_LAUNCH(gemm3_smem_tiles<float>, grid(kSmemTile, kSmemTile), kSmemTile * kSmemTile, 0, nullptr, g); break;
    case 4: CORTEX_LAUNCH(gemm4_blocktile_1d, grid(bt1::BM, bt1::BN), bt1::kThreads, 0, nullptr, g); break;
    case 5: CORTEX_LAUNCH(gemm5_blocktile_2d, grid(bt2::BM, bt2::BN), bt2::kThreads, 0, nullptr, g); break;
    case 6: CORTEX_LAUNCH(gemm6_vectorized, grid(vec::BM, vec::BN), vec::kThreads, 0, nullptr, g); break;
    default: CORTEX_LAUNCH(gemm7_warptile, grid(wt::BM, wt::BN), wt::kThreads, 0, nullptr, g); break;
  }
  return stop();
}

// As kernels/cuda/attention.cu's tile_rows: the largest of 32, 16, 8 rows whose tiles fit.
int tile_rows(int64_t per_row, int64_t per_sq, std::size_t& bytes) {
  for (std::size_t limit : {kDefaultDynamicSmemBytes, kMaxDynamicSmemBytes})
    for (int br : {32, 16, 8}) {
      bytes = static_cast<std::size_t>(br * per_row + int64_t{br} * br * per_sq) * sizeof(float);
      if (bytes <= limit) return br;
    }
  throw Error("profile attention: D too large for the tiled kernel's shared memory");
}

std::vector<KernelProfile> attention_case(int version, const std::vector<int64_t>& s) {
  const int64_t nb = s[0], L = s[1], D = s[2];
  Buffer q(nb * L * D, 4), k(nb * L * D, 5), v(nb * L * D, 6), out(nb * L * D, 7), lse(nb * L, 8);
  AttnFwdArgs<float> a{};
  a.n = AttnDims{nb, L, L, D, D};
  a.lead.nd = 1;
  a.lead.size[0] = nb;
  for (int op = 0; op < 3; ++op) a.lead.st[op][0] = L * D;
  a.q = AttnMat<float>{q.p, D, 1};
  a.k = AttnMat<float>{k.p, D, 1};
  a.v = AttnMat<float>{v.p, D, 1};
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  a.out = out.p;
  a.lse = lse.p;
  start();
  // Q K^T and P V: 2 D + 2 Dv FLOPs per (query, key) pair (the softmax's exp and sums not counted).
  declare_flops(static_cast<double>(nb) * static_cast<double>(L) * static_cast<double>(L) * 4.0 * static_cast<double>(D));
  if (version == 1) {
    CORTEX_LAUNCH(attn1_naive<float>, blocks_for(nb * L, kNaiveThreads), kNaiveThreads, 0, nullptr, a);
  } else if (version == 2) {
    const std::size_t smem = static_cast<std::size_t>(D + kRowThreads + D + kRowWarps) * sizeof(float);
    CORTEX_LAUNCH(attn2_row_block<float>, static_cast<unsigned>(nb * L), kRowThreads, smem, nullptr, a);
  } else {
    std::size_t smem = 0;
    const int br = tile_rows(4 * D + kTilePad, 1, smem);  // as attention_forward: K rows padded
    CORTEX_LAUNCH(attn3_tiled<float>, static_cast<unsigned>(nb * ((L + br - 1) / br)), kTiledThreads, smem, nullptr, a, br);
  }
  return stop();
}

}  // namespace

const std::vector<Case>& cases() {
  static const std::vector<Case> table = [] {
    std::vector<Case> t = {
        {"copy", "N", {1 << 16}, "out[i] = in[i], 256 threads a block (coalesced: 4 sectors per request)"},
        {"stride32", "N", {1 << 14}, "out[i] = in[32 i] (strided read: 32 sectors per request)"},
        {"transpose", "N", {256}, "N x N transpose through a 32 x 32 shared tile (32-way bank conflicts)"},
        {"transpose_padded", "N", {256}, "the same with a 32 x 33 tile (no bank conflict)"},
    };
    const char* gemm_what[] = {"naive", "coalesced", "shared-memory tiles", "1-D block tiling", "2-D block tiling",
                               "vectorised (float4)", "warp tiling"};
    for (int v = 1; v <= kGemmVersions; ++v)
      t.push_back({"gemm" + std::to_string(v), "M,N,K", {256, 256, 256},
                   std::string("GEMM version ") + std::to_string(v) + ", " + gemm_what[v - 1] +
                       " (kernels/cuda/gemm/, float32, row-major)"});
    const char* attn_what[] = {"naive", "row block", "tiled"};
    for (int v = 1; v <= 3; ++v)
      t.push_back({"attn" + std::to_string(v), "B,L,D", {1, 256, 64},
                   std::string("attention forward version ") + std::to_string(v) + ", " + attn_what[v - 1] +
                       " (kernels/cuda/attention/, float32, Lq = Lk = L, D = Dv)"});
    return t;
  }();
  return table;
}

std::vector<KernelProfile> run_case(const std::string& name, std::vector<int64_t> shape) {
  const Case* c = nullptr;
  for (const Case& k : cases())
    if (k.name == name) c = &k;
  if (c == nullptr) {
    std::string names;
    for (const Case& k : cases()) names += (names.empty() ? "" : ", ") + k.name;
    throw Error("profile: unknown kernel \"" + name + "\"; expected one of " + names);
  }
  if (shape.empty()) shape = c->default_shape;
  CORTEX_CHECK(shape.size() == c->default_shape.size(), "profile ", name, ": expected --shape ", c->shape, " (",
               c->default_shape.size(), " sizes), found ", shape.size(), " sizes");
  if (name == "copy" || name == "stride32") {
    check_dims(name, shape, int64_t{1} << 24);
    const int64_t n = shape[0];
    Buffer in(name == "copy" ? n : 32 * n, 1), out(n, 2);
    start();
    if (name == "copy")
      CORTEX_LAUNCH(prof_copy, blocks_for(n, 256), 256, 0, nullptr, in.p, out.p, n);
    else
      CORTEX_LAUNCH(prof_stride32, blocks_for(n, 256), 256, 0, nullptr, in.p, out.p, n);
    return stop();
  }
  if (name == "transpose" || name == "transpose_padded") {
    check_dims(name, shape, 4096);
    const int64_t n = shape[0];
    CORTEX_CHECK(n % 32 == 0, "profile ", name, ": expected N a multiple of 32, found ", n);
    Buffer in(n * n, 1), out(n * n, 2);
    const dim3 grid(static_cast<unsigned>(n / 32), static_cast<unsigned>(n / 32)), block(32, 32);
    start();
    if (name == "transpose")
      CORTEX_LAUNCH(prof_transpose<32>, grid, block, 0, nullptr, in.p, out.p, n);
    else
      CORTEX_LAUNCH(prof_transpose<33>, grid, block, 0, nullptr, in.p, out.p, n);
    return stop();
  }
  if (name.rfind("gemm", 0) == 0) {
    check_dims(name, shape, 4096);
    return gemm_case(name[4] - '0', shape);
  }
  check_dims(name, shape, 4096);
  return attention_case(name[4] - '0', shape);
}

}  // namespace cortex::simt::profile
