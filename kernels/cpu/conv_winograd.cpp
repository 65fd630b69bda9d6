#include "kernels/cpu/conv_winograd.h"

#ifdef CORTEX_CONV_GEMM
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/scratch.h"
#include "tensor/error.h"

namespace cortex::kernels::cpu::winograd {
namespace cg = conv_gemm;
namespace {

constexpr int64_t kXi = 16;  // positions of a transformed 4x4 tile
// A piece of the batch holds about this many floats per (position, input channel) pair: its
// columns (tiles) are kPieceFloats / C, so one V_xi (C x columns) is 256 KB and stays in L2
// while its GEMM runs.
constexpr int64_t kPieceFloats = 1 << 16;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool env_switch() {
  const char* e = std::getenv("CORTEX_CONV_WINOGRAD");
  if (!e || !*e) return true;
  const std::string s(e);
  CORTEX_CHECK(s == "0" || s == "1", "CORTEX_CONV_WINOGRAD: expected 0 or 1, found '", s, "'");
  return s == "1";
}

std::atomic<bool>& the_switch() {
  static std::atomic<bool> on{env_switch()};
  return on;
}

// Tiles of 2x2 outputs: TH rows of TW, each row padded to TWp (a whole number of 8-tile vectors;
// the padding tiles read zeros and are computed, never stored).
struct Tiles {
  int64_t TH, TW, TWp;
};
Tiles tiles_of(const Geometry& g) {
  const int64_t TW = ceil_div(g.OW, 2);
  return {ceil_div(g.OH, 2), TW, ceil_div(TW, 8) * 8};
}

// Images [n0, n1) and their tile rows [th0, th1) (all rows when there are several images).
struct Piece {
  int64_t n0, n1, th0, th1;
  int64_t cols(const Tiles& t) const { return (n1 - n0) * (th1 - th0) * t.TWp; }
};

std::vector<Piece> pieces_of(const Geometry& g, const Tiles& t) {
  const int64_t budget = std::max(t.TWp, kPieceFloats / g.C), per_image = t.TH * t.TWp;
  std::vector<Piece> out;
  if (per_image <= budget) {
    const int64_t k = std::max<int64_t>(1, budget / per_image);
    for (int64_t n = 0; n < g.N; n += k) out.push_back({n, std::min(g.N, n + k), 0, t.TH});
  } else {
    const int64_t bands = ceil_div(t.TH, std::max<int64_t>(1, budget / t.TWp)), rows = ceil_div(t.TH, bands);
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t th = 0; th < t.TH; th += rows) out.push_back({n, n + 1, th, std::min(t.TH, th + rows)});
  }
  return out;
}

// 8 rows of 8 floats transposed in registers: r[j] becomes element j of every row, in row order.
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int h = 0; h < 8; h += 4) {
    u[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
    u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);
    u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
    u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

// Lanes 0, 2, 4, ... (or 1, 3, 5, ...) of the 16 floats a, b.
inline __m256 evens(__m256 a, __m256 b) {
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
}
inline __m256 odds(__m256 a, __m256 b) {
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

// The 1-D transforms, applied along the rows and then the columns of a 4x4 (or 4x3) tile:
//   inputs  (B^T d):  d0 - d2, d1 + d2, d2 - d1, d1 - d3
//   filters (G g):    g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2
//   outputs (A^T m):  m0 + m1 + m2, m1 - m2 - m3
inline void input_1d(__m256 d0, __m256 d1, __m256 d2, __m256 d3, __m256 out[4]) {
  out[0] = _mm256_sub_ps(d0, d2);
  out[1] = _mm256_add_ps(d1, d2);
  out[2] = _mm256_sub_ps(d2, d1);
  out[3] = _mm256_sub_ps(d1, d3);
}
inline void filter_1d(__m256 g0, __m256 g1, __m256 g2, __m256 out[4]) {
  const __m256 half = _mm256_set1_ps(0.5f);
  out[0] = g0;
  out[1] = _mm256_mul_ps(_mm256_add_ps(_mm256_add_ps(g0, g1), g2), half);
  out[2] = _mm256_mul_ps(_mm256_add_ps(_mm256_sub_ps(g0, g1), g2), half);
  out[3] = g2;
}
inline void output_1d(__m256 m0, __m256 m1, __m256 m2, __m256 m3, __m256 out[2]) {
  out[0] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
  out[1] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
}

// U_xi = (G g G^T)[xi] for every (output, input) channel pair, block xi at u + xi usz, each the
// packed kernel's A panels of (O, C): panel p holds outputs [8p, 8p + 8) as (C, 8), outputs past O
// zero. Eight outputs per vector: their 3x3 filters at one input channel, transposed.
void transform_filters(const Geometry& g, const float* w, float* u, int64_t usz) {
  static const float kZeros[16] = {};
  const int64_t panels = ceil_div(g.O, cg::kMR);
  parallel::for_chunks(panels, 1, static_cast<double>(g.O) * static_cast<double>(g.C) * 40.0, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p)
      for (int64_t c = 0; c < g.C; ++c) {
        const float* src[8];
        for (int r = 0; r < 8; ++r) {
          const int64_t o = p * cg::kMR + r;
          src[r] = o < g.O ? w + (o * g.C + c) * 9 : kZeros;
        }
        __m256 tap[9];
        for (int r = 0; r < 8; ++r) tap[r] = _mm256_loadu_ps(src[r]);  // taps 0-7 of output r
        transpose8(tap);                                                // tap[k]: tap k of each output
        tap[8] = _mm256_setr_ps(src[0][8], src[1][8], src[2][8], src[3][8], src[4][8], src[5][8], src[6][8], src[7][8]);
        __m256 s[4][3], row[4];
        for (int b = 0; b < 3; ++b) {  // along the filter's rows: s = G g
          filter_1d(tap[b], tap[3 + b], tap[6 + b], row);
          for (int i = 0; i < 4; ++i) s[i][b] = row[i];
        }
        float* dst = u + p * g.C * cg::kMR + c * cg::kMR;
        for (int i = 0; i < 4; ++i) {  // along its columns: U = s G^T
          filter_1d(s[i][0], s[i][1], s[i][2], row);
          for (int j = 0; j < 4; ++j) _mm256_storeu_ps(dst + (4 * i + j) * usz, row[j]);
        }
      }
  });
}

// Where (input channel c, tile column t) of V_xi lies: the packed kernel's B strips, depth pass by
// depth pass (pass k0 at k0 npad, its sub-strips of kSub columns one after the other). t is a
// multiple of 8, so 8 tiles are 8 contiguous floats.
inline int64_t v_index(int64_t c, int64_t t, int64_t C, int64_t npad) {
  const int64_t k0 = c / cg::kKC * cg::kKC, kc = std::min(cg::kKC, C - k0);
  return k0 * npad + t / cg::kSub * kc * cg::kSub + (c - k0) * cg::kSub + t % cg::kSub;
}

// V_xi = (B^T d B)[xi] for the piece's tiles and every input channel, block xi at v + xi vsz.
void transform_inputs(const Geometry& g, const Tiles& t, const Piece& pc, const float* x, float* v, int64_t vsz,
                      int64_t npad) {
  const int64_t rows = pc.th1 - pc.th0, cols = pc.cols(t);
  // The last strip's columns past the piece must be finite (they are computed, never stored).
  if (cols % cg::kNR)
    for (int64_t xi = 0; xi < kXi; ++xi)
      for (int64_t k0 = 0; k0 < g.C; k0 += cg::kKC) {
        const int64_t kc = std::min(cg::kKC, g.C - k0);
        std::fill_n(v + xi * vsz + k0 * npad + cg::b_strip_offset(npad / cg::kNR - 1, kc), kc * cg::kNR, 0.0f);
      }
  // The rows of one input channel that the piece's tile rows read, zero-padded: plane row r is
  // input row 2 th0 - ph + r, plane column q is input column q - pw; 2 TWp + 2 columns cover the
  // last vector's loads.
  const int64_t PH = 2 * rows + 2, PW = 2 * t.TWp + 2;
  parallel::for_chunks(g.C, 4, static_cast<double>(g.C) * static_cast<double>(cols) * 16.0, [&](int64_t lo, int64_t hi) {
    static thread_local Scratch<float> plane_buf;
    float* plane = plane_buf.get(PH * PW);
    for (int64_t c = lo; c < hi; ++c)
      for (int64_t n = pc.n0; n < pc.n1; ++n) {
        const float* xc = x + (n * g.C + c) * g.H * g.W;
        for (int64_t r = 0; r < PH; ++r) {
          float* row = plane + r * PW;
          const int64_t ih = 2 * pc.th0 - g.ph + r;
          if (ih < 0 || ih >= g.H) {
            std::fill_n(row, PW, 0.0f);
            continue;
          }
          std::fill_n(row, g.pw, 0.0f);
          std::memcpy(row + g.pw, xc + ih * g.W, static_cast<size_t>(g.W) * sizeof(float));
          std::fill(row + g.pw + g.W, row + PW, 0.0f);
        }
        for (int64_t th = pc.th0; th < pc.th1; ++th)
          for (int64_t tw0 = 0; tw0 < t.TWp; tw0 += 8) {
            // d[i][j]: input row i, column j of the 8 tiles' 4x4 blocks (lane = tile).
            __m256 d[4][4];
            const float* base = plane + 2 * (th - pc.th0) * PW + 2 * tw0;
            for (int i = 0; i < 4; ++i) {
              const float* r = base + i * PW;
              const __m256 a = _mm256_loadu_ps(r), b = _mm256_loadu_ps(r + 8);
              const __m256 a2 = _mm256_loadu_ps(r + 2), b2 = _mm256_loadu_ps(r + 10);
              d[i][0] = evens(a, b), d[i][1] = odds(a, b), d[i][2] = evens(a2, b2), d[i][3] = odds(a2, b2);
            }
            __m256 s[4][4], out[4];
            for (int j = 0; j < 4; ++j) {  // along the rows: s = B^T d
              input_1d(d[0][j], d[1][j], d[2][j], d[3][j], out);
              for (int i = 0; i < 4; ++i) s[i][j] = out[i];
            }
            const int64_t col = ((n - pc.n0) * rows + (th - pc.th0)) * t.TWp + tw0;
            float* dst = v + v_index(c, col, g.C, npad);
            for (int i = 0; i < 4; ++i) {  // along the columns: V = s B
              input_1d(s[i][0], s[i][1], s[i][2], s[i][3], out);
              for (int j = 0; j < 4; ++j) _mm256_storeu_ps(dst + (4 * i + j) * vsz, out[j]);
            }
          }
      }
  });
}

// y = A^T M A + bias for the piece's tiles, M_xi (O, cols) at m + xi msz.
void transform_outputs(const Geometry& g, const Tiles& t, const Piece& pc, const float* m, int64_t msz,
                       const float* bias, float* y) {
  const int64_t rows = pc.th1 - pc.th0, cols = pc.cols(t);
  parallel::for_chunks(g.O, 4, static_cast<double>(g.O) * static_cast<double>(cols) * 16.0, [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o) {
      const __m256 b = _mm256_set1_ps(bias ? bias[o] : 0.0f);
      for (int64_t n = pc.n0; n < pc.n1; ++n) {
        float* yo = y + (n * g.O + o) * g.OH * g.OW;
        for (int64_t th = pc.th0; th < pc.th1; ++th)
          for (int64_t tw0 = 0; tw0 < t.TWp; tw0 += 8) {
            const float* src = m + o * cols + ((n - pc.n0) * rows + (th - pc.th0)) * t.TWp + tw0;
            __m256 s[2][4], out[2];
            for (int j = 0; j < 4; ++j) {  // along the rows: s = A^T M
              output_1d(_mm256_loadu_ps(src + j * msz), _mm256_loadu_ps(src + (4 + j) * msz),
                        _mm256_loadu_ps(src + (8 + j) * msz), _mm256_loadu_ps(src + (12 + j) * msz), out);
              s[0][j] = out[0], s[1][j] = out[1];
            }
            const int64_t ow0 = 2 * tw0, len = std::min<int64_t>(16, g.OW - ow0);
            for (int a = 0; a < 2 && 2 * th + a < g.OH; ++a) {  // along the columns: Y = s A
              output_1d(s[a][0], s[a][1], s[a][2], s[a][3], out);
              const __m256 y0 = _mm256_add_ps(out[0], b), y1 = _mm256_add_ps(out[1], b);
              // Lane k holds tile tw0 + k: outputs (2k, 2k + 1) of the row, interleaved.
              const __m256 lo4 = _mm256_unpacklo_ps(y0, y1), hi4 = _mm256_unpackhi_ps(y0, y1);
              float* dst = yo + (2 * th + a) * g.OW + ow0;
              cg::store_lanes8(dst, _mm256_permute2f128_ps(lo4, hi4, 0x20), 0, len);
              cg::store_lanes8(dst + 8, _mm256_permute2f128_ps(lo4, hi4, 0x31), 0, len - 8);
            }
          }
      }
    }
  });
}

}  // namespace

bool enabled() { return the_switch().load(); }
void set_enabled(bool on) { the_switch().store(on); }

bool pays(const Geometry& g) {
  if (!enabled() || g.C < 16 || g.O < 16 || g.OH < 2 || g.OW < 2) return false;
  const Tiles t = tiles_of(g);
  // Rows padded by more than an eighth (maps under 13 wide, or 17-24 wide) lose more to the
  // padding tiles than the fewer multiplies save; so do maps of fewer than 32 tiles, where
  // transforming the filters costs more than it saves at batch 1. Per image, not per batch: an
  // image's outputs then take the same path, so the same bits, whatever batch it comes in.
  return 7 * t.TWp <= 8 * t.TW && t.TH * t.TWp >= 32;
}

void conv3x3(const Geometry& g, const float* x, const float* w, const float* bias, float* y) {
  const Tiles t = tiles_of(g);
  const int64_t usz = cg::packed_a_size(g.O, g.C);
  static thread_local Scratch<float> u_buf;
  float* u = u_buf.get(kXi * usz);
  transform_filters(g, w, u, usz);

  const std::vector<Piece> pieces = pieces_of(g, t);
  const int64_t np = static_cast<int64_t>(pieces.size());
  // One piece: its inputs' transforms, the 16 GEMMs, its outputs' transforms. Each stage spreads
  // over the threads by itself unless the pieces already do (for_chunks runs serially inside).
  auto run = [&](const Piece& pc) {
    static thread_local Scratch<float> v_buf, m_buf;
    const int64_t cols = pc.cols(t), npad = cg::b_strips(cols) * cg::kNR;
    const int64_t vsz = g.C * npad, msz = g.O * cols;
    float* v = v_buf.get(kXi * vsz);
    float* m = m_buf.get(kXi * msz);
    transform_inputs(g, t, pc, x, v, vsz, npad);
    parallel::for_chunks(kXi, 1, static_cast<double>(kXi) * double(g.O) * double(g.C) * double(cols), [&](int64_t lo, int64_t hi) {
      for (int64_t xi = lo; xi < hi; ++xi)
        for (int64_t k0 = 0; k0 < g.C; k0 += cg::kKC)
          cg::gemm_pass(g.O, cols, g.C, k0, std::min(cg::kKC, g.C - k0), u + xi * usz, v + xi * vsz + k0 * npad,
                        nullptr, m + xi * msz, cols);
    });
    transform_outputs(g, t, pc, m, msz, bias, y);
  };
  if (np >= parallel::max_threads() && np > 1)
    parallel::for_chunks(np, 1, static_cast<double>(g.N) * double(g.O) * double(g.C) * double(g.OH * g.OW),
                         [&](int64_t lo, int64_t hi) {
                           for (int64_t i = lo; i < hi; ++i) run(pieces[i]);
                         });
  else
    for (const Piece& pc : pieces) run(pc);
}

}  // namespace cortex::kernels::cpu::winograd
#endif  // CORTEX_CONV_GEMM
