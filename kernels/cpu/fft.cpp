// CPU 2-D real FFT (kernels/fft.h); the algorithm and its cost are in docs/fft.md.
//
// Each 1-D pass is a Stockham autosort FFT run on many signals at once: the data of one pass is an
// (n, L) array, split into real and imaginary arrays, holding L signals of length n along axis 0,
// and every butterfly loops over the L (times the stride) contiguous values, which the compiler
// vectorises. The radices are 8, 4, 2 and the odd prime factors of n; an odd radix p runs the
// symmetric p-point DFT (pairs r, p - r), so any length is handled (a large prime factor p costs
// O(p) per point instead of O(log p)). Twiddles are computed once per length in double, rounded to
// the dtype, and cached.
//
// rfft2 of one (H, W) plane: the plane is transposed into (W, ceil(H/2)) with rows l and
// l + ceil(H/2) as the real and imaginary parts of one complex signal (two real FFTs for the price of
// one), the FFT over W separates them into the half spectra of both rows, written as (H, W/2 + 1),
// and the FFT over H runs on that. irfft2 runs the inverse steps in reverse order. Planes (leading
// dims) run in parallel (parallel::for_each: small planes grouped by size), one owner per plane, so
// the bytes do not depend on the thread count.
#include "kernels/cpu/fft.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace cortex::kernels::cpu {
namespace {

// The radices of a length-n FFT, in the order the stages run: 8s, then a 4 or a 2, then odd primes
// ascending (fewer stages: each is one pass over the data).
std::vector<int64_t> factor(int64_t n) {
  std::vector<int64_t> f;
  for (; n % 8 == 0; n /= 8) f.push_back(8);
  for (int64_t p : {4, 2})
    if (n % p == 0) {
      f.push_back(p);
      n /= p;
    }
  for (int64_t p = 3; p * p <= n; p += 2)
    for (; n % p == 0; n /= p) f.push_back(p);
  if (n > 1) f.push_back(n);
  return f;
}

template <class T>
struct Stage {
  int64_t p = 0, m = 0;  // radix, and m = (the signal length at this stage) / p
  std::vector<T> wr, wi;  // cos and sin of 2 pi j t / (p m) at j * p + t: the twiddles
  std::vector<T> cr, ci;  // cos and sin of 2 pi k / p, k < p: the p-point DFT
};

template <class T>
struct Plan {
  int64_t n = 0;
  std::vector<Stage<T>> stages;
};

template <class T>
std::shared_ptr<const Plan<T>> make_plan(int64_t n) {
  // cos, sin of 2 pi q / n for q < n, in double; every angle below is one of these (its index is an
  // exact integer), so each twiddle is rounded once, to the dtype.
  std::vector<double> c(static_cast<size_t>(n)), s(static_cast<size_t>(n));
  for (int64_t q = 0; q < n; ++q) {
    const double a = 2.0 * M_PI * static_cast<double>(q) / static_cast<double>(n);
    c[static_cast<size_t>(q)] = std::cos(a);
    s[static_cast<size_t>(q)] = std::sin(a);
  }
  auto plan = std::make_shared<Plan<T>>();
  plan->n = n;
  int64_t len = n;
  for (int64_t p : factor(n)) {
    Stage<T> st;
    st.p = p;
    st.m = len / p;
    const int64_t step = n / len;  // 2 pi q / len = 2 pi (q step) / n
    st.wr.resize(static_cast<size_t>(len));
    st.wi.resize(static_cast<size_t>(len));
    for (int64_t j = 0; j < st.m; ++j)
      for (int64_t t = 0; t < p; ++t) {
        const size_t q = static_cast<size_t>(j * t * step), at = static_cast<size_t>(j * p + t);  // j t < len
        st.wr[at] = static_cast<T>(c[q]);
        st.wi[at] = static_cast<T>(s[q]);
      }
    st.cr.resize(static_cast<size_t>(p));
    st.ci.resize(static_cast<size_t>(p));
    for (int64_t k = 0; k < p; ++k) {
      const size_t q = static_cast<size_t>(k * (n / p));
      st.cr[static_cast<size_t>(k)] = static_cast<T>(c[q]);
      st.ci[static_cast<size_t>(k)] = static_cast<T>(s[q]);
    }
    len = st.m;
    plan->stages.push_back(std::move(st));
  }
  return plan;
}

// The plan of length n, made on first use and kept for the process (a few lengths in practice: the
// image sizes used); the lock makes concurrent first uses safe.
template <class T>
std::shared_ptr<const Plan<T>> plan_for(int64_t n) {
  static std::mutex mu;
  static std::map<int64_t, std::shared_ptr<const Plan<T>>> cache;
  std::lock_guard<std::mutex> lock(mu);
  std::shared_ptr<const Plan<T>>& p = cache[n];
  if (!p) p = make_plan<T>(n);
  return p;
}

// One Stockham stage of radix p over vectors of U = s * L values (s: the product of the earlier
// radices): input r of butterfly j is the vector j + r m of x, output t goes to vector p j + t of y,
// times the twiddle exp(sg 2 pi i j t / (p m)). sg = -1 forward, +1 inverse (unscaled). The vectors
// a loop touches are one array at offsets that are multiples of U, which the compiler cannot prove
// disjoint: `#pragma GCC ivdep` lets it vectorise them (x and y never overlap, and within each the
// vectors are distinct because U >= 1).
template <class T>
void radix2(const Stage<T>& st, int64_t U, const T* __restrict xr, const T* __restrict xi, T* __restrict yr,
            T* __restrict yi, T sg) {
  const int64_t m = st.m;
  for (int64_t j = 0; j < m; ++j) {
    const T w1r = st.wr[static_cast<size_t>(2 * j + 1)], w1i = sg * st.wi[static_cast<size_t>(2 * j + 1)];
    const T *a0r = xr + j * U, *a0i = xi + j * U, *a1r = xr + (j + m) * U, *a1i = xi + (j + m) * U;
    T *y0r = yr + 2 * j * U, *y0i = yi + 2 * j * U, *y1r = y0r + U, *y1i = y0i + U;
#pragma GCC ivdep
    for (int64_t u = 0; u < U; ++u) {
      const T dr = a0r[u] - a1r[u], di = a0i[u] - a1i[u];
      y0r[u] = a0r[u] + a1r[u];
      y0i[u] = a0i[u] + a1i[u];
      y1r[u] = dr * w1r - di * w1i;
      y1i[u] = dr * w1i + di * w1r;
    }
  }
}

template <class T>
void radix4(const Stage<T>& st, int64_t U, const T* __restrict xr, const T* __restrict xi, T* __restrict yr,
            T* __restrict yi, T sg) {
  const int64_t m = st.m;
  for (int64_t j = 0; j < m; ++j) {
    const T* w = st.wr.data() + 4 * j;
    const T* v = st.wi.data() + 4 * j;
    const T w1r = w[1], w1i = sg * v[1], w2r = w[2], w2i = sg * v[2], w3r = w[3], w3i = sg * v[3];
    const T *a0r = xr + j * U, *a1r = xr + (j + m) * U, *a2r = xr + (j + 2 * m) * U, *a3r = xr + (j + 3 * m) * U;
    const T *a0i = xi + j * U, *a1i = xi + (j + m) * U, *a2i = xi + (j + 2 * m) * U, *a3i = xi + (j + 3 * m) * U;
    T *y0r = yr + 4 * j * U, *y1r = y0r + U, *y2r = y1r + U, *y3r = y2r + U;
    T *y0i = yi + 4 * j * U, *y1i = y0i + U, *y2i = y1i + U, *y3i = y2i + U;
#pragma GCC ivdep
    for (int64_t u = 0; u < U; ++u) {
      const T t0r = a0r[u] + a2r[u], t0i = a0i[u] + a2i[u], t1r = a0r[u] - a2r[u], t1i = a0i[u] - a2i[u];
      const T t2r = a1r[u] + a3r[u], t2i = a1i[u] + a3i[u], t3r = a1r[u] - a3r[u], t3i = a1i[u] - a3i[u];
      // b1 = t1 + sg i t3, b3 = t1 - sg i t3 (forward: a0 - i a1 - a2 + i a3 for b1)
      const T b1r = t1r - sg * t3i, b1i = t1i + sg * t3r, b3r = t1r + sg * t3i, b3i = t1i - sg * t3r;
      const T b2r = t0r - t2r, b2i = t0i - t2i;
      y0r[u] = t0r + t2r;
      y0i[u] = t0i + t2i;
      y1r[u] = b1r * w1r - b1i * w1i;
      y1i[u] = b1r * w1i + b1i * w1r;
      y2r[u] = b2r * w2r - b2i * w2i;
      y2i[u] = b2r * w2i + b2i * w2r;
      y3r[u] = b3r * w3r - b3i * w3i;
      y3i[u] = b3r * w3i + b3i * w3r;
    }
  }
}

// Radix 8 as a radix-2 step then two 4-point DFTs (decimation in frequency): with
// u_r = a_r + a_{r+4}, v_r = (a_r - a_{r+4}) e^{sg 2 pi i r / 8} (r < 4), b_{2t} = DFT4(u)_t and
// b_{2t+1} = DFT4(v)_t.
template <class T>
void radix8(const Stage<T>& st, int64_t U, const T* __restrict xr, const T* __restrict xi, T* __restrict yr,
            T* __restrict yi, T sg) {
  const int64_t m = st.m;
  const T h = static_cast<T>(std::sqrt(0.5));
  for (int64_t j = 0; j < m; ++j) {
    T wr[8], wi[8];
    for (int t = 0; t < 8; ++t) {
      wr[t] = st.wr[static_cast<size_t>(8 * j + t)];
      wi[t] = sg * st.wi[static_cast<size_t>(8 * j + t)];
    }
    const T* x0r = xr + j * U;
    const T* x0i = xi + j * U;
    T* y0r = yr + 8 * j * U;
    T* y0i = yi + 8 * j * U;
    const int64_t mU = m * U;
#pragma GCC ivdep
    for (int64_t u = 0; u < U; ++u) {
      T ur[4], ui[4], vr[4], vi[4];
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) {
        const T pr = x0r[r * mU + u], pi = x0i[r * mU + u], qr = x0r[(r + 4) * mU + u], qi = x0i[(r + 4) * mU + u];
        ur[r] = pr + qr, ui[r] = pi + qi, vr[r] = pr - qr, vi[r] = pi - qi;
      }
      // v1 *= (h, sg h), v2 *= (0, sg), v3 *= (-h, sg h)
      const T v1r = h * (vr[1] - sg * vi[1]), v1i = h * (vi[1] + sg * vr[1]);
      const T v2r = -sg * vi[2], v2i = sg * vr[2];
      const T v3r = -h * (vr[3] + sg * vi[3]), v3i = h * (sg * vr[3] - vi[3]);
      vr[1] = v1r, vi[1] = v1i, vr[2] = v2r, vi[2] = v2i, vr[3] = v3r, vi[3] = v3i;
      T br[8], bi[8];
#pragma GCC unroll 2
      for (int e = 0; e < 2; ++e) {
        const T* cr = e ? vr : ur;
        const T* ci = e ? vi : ui;
        const T t0r = cr[0] + cr[2], t0i = ci[0] + ci[2], t1r = cr[0] - cr[2], t1i = ci[0] - ci[2];
        const T t2r = cr[1] + cr[3], t2i = ci[1] + ci[3], t3r = cr[1] - cr[3], t3i = ci[1] - ci[3];
        br[e] = t0r + t2r, bi[e] = t0i + t2i;
        br[e + 2] = t1r - sg * t3i, bi[e + 2] = t1i + sg * t3r;
        br[e + 4] = t0r - t2r, bi[e + 4] = t0i - t2i;
        br[e + 6] = t1r + sg * t3i, bi[e + 6] = t1i - sg * t3r;
      }
      y0r[u] = br[0];
      y0i[u] = bi[0];
#pragma GCC unroll 7
      for (int t = 1; t < 8; ++t) {
        y0r[t * U + u] = br[t] * wr[t] - bi[t] * wi[t];
        y0i[t * U + u] = br[t] * wi[t] + bi[t] * wr[t];
      }
    }
  }
}

// Odd p: with s_r = a_r + a_{p-r}, d_r = a_r - a_{p-r} (r = 1 .. h, h = (p - 1) / 2),
//   b_0 = a_0 + sum_r s_r,  b_t = A_t + sg i B_t,  b_{p-t} = A_t - sg i B_t   (t = 1 .. h)
// with A_t = a_0 + sum_r cos(2 pi r t / p) s_r and B_t = sum_r sin(2 pi r t / p) d_r. The vectors are
// cut into blocks of kBlock values so that s, d, A and B stay in L1.
template <class T>
void radix_odd(const Stage<T>& st, int64_t U, const T* __restrict xr, const T* __restrict xi, T* __restrict yr,
               T* __restrict yi, T sg, std::vector<T>& scratch) {
  constexpr int64_t kBlock = 64;
  const int64_t p = st.p, m = st.m, h = (p - 1) / 2;
  scratch.resize(static_cast<size_t>((4 * h + 4) * kBlock));
  T* const sr = scratch.data();  // s_r at (r - 1) * kBlock
  T* const si = sr + h * kBlock;
  T* const dr = si + h * kBlock;
  T* const di = dr + h * kBlock;
  T* const ar = di + h * kBlock;  // A_t, B_t
  T* const ai = ar + kBlock;
  T* const br = ai + kBlock;
  T* const bi = br + kBlock;
  for (int64_t j = 0; j < m; ++j) {
    for (int64_t u0 = 0; u0 < U; u0 += kBlock) {
      const int64_t nb = std::min(kBlock, U - u0);
      const T *a0r = xr + j * U + u0, *a0i = xi + j * U + u0;
      for (int64_t r = 1; r <= h; ++r) {
        const T *pr = xr + (j + r * m) * U + u0, *pi = xi + (j + r * m) * U + u0;
        const T *qr = xr + (j + (p - r) * m) * U + u0, *qi = xi + (j + (p - r) * m) * U + u0;
        T *s_r = sr + (r - 1) * kBlock, *s_i = si + (r - 1) * kBlock, *d_r = dr + (r - 1) * kBlock,
          *d_i = di + (r - 1) * kBlock;
#pragma GCC ivdep
        for (int64_t b = 0; b < nb; ++b) {
          s_r[b] = pr[b] + qr[b];
          s_i[b] = pi[b] + qi[b];
          d_r[b] = pr[b] - qr[b];
          d_i[b] = pi[b] - qi[b];
        }
      }
      T *y0r = yr + p * j * U + u0, *y0i = yi + p * j * U + u0;
      for (int64_t b = 0; b < nb; ++b) {
        y0r[b] = a0r[b];
        y0i[b] = a0i[b];
      }
      for (int64_t r = 0; r < h; ++r)
#pragma GCC ivdep
        for (int64_t b = 0; b < nb; ++b) {
          y0r[b] += sr[r * kBlock + b];
          y0i[b] += si[r * kBlock + b];
        }
      for (int64_t t = 1; t <= h; ++t) {
#pragma GCC ivdep
        for (int64_t b = 0; b < nb; ++b) {
          ar[b] = a0r[b];
          ai[b] = a0i[b];
          br[b] = 0;
          bi[b] = 0;
        }
        for (int64_t r = 1; r <= h; ++r) {
          const size_t k = static_cast<size_t>((r * t) % p);
          const T c = st.cr[k], s = st.ci[k];
          const T *s_r = sr + (r - 1) * kBlock, *s_i = si + (r - 1) * kBlock, *d_r = dr + (r - 1) * kBlock,
                  *d_i = di + (r - 1) * kBlock;
  #pragma GCC ivdep
        for (int64_t b = 0; b < nb; ++b) {
            ar[b] += c * s_r[b];
            ai[b] += c * s_i[b];
            br[b] += s * d_r[b];
            bi[b] += s * d_i[b];
          }
        }
        const size_t at = static_cast<size_t>(j * p + t), am = static_cast<size_t>(j * p + p - t);
        const T wtr = st.wr[at], wti = sg * st.wi[at], wmr = st.wr[am], wmi = sg * st.wi[am];
        T *ytr = yr + (p * j + t) * U + u0, *yti = yi + (p * j + t) * U + u0;
        T *ymr = yr + (p * j + p - t) * U + u0, *ymi = yi + (p * j + p - t) * U + u0;
#pragma GCC ivdep
        for (int64_t b = 0; b < nb; ++b) {
          const T btr = ar[b] - sg * bi[b], bti = ai[b] + sg * br[b];
          const T bmr = ar[b] + sg * bi[b], bmi = ai[b] - sg * br[b];
          ytr[b] = btr * wtr - bti * wti;
          yti[b] = btr * wti + bti * wtr;
          ymr[b] = bmr * wmr - bmi * wmi;
          ymi[b] = bmr * wmi + bmi * wmr;
        }
      }
    }
  }
}

// radix_odd with p = P known at compile time (3, 5, 7): the same sums, kept in registers for each
// value u instead of blocks in memory (the generic loop is bound by its loads and stores).
template <class T, int P>
void radix_odd_fixed(const Stage<T>& st, int64_t U, const T* __restrict xr, const T* __restrict xi, T* __restrict yr,
                     T* __restrict yi, T sg) {
  constexpr int H = (P - 1) / 2;
  const int64_t m = st.m;
  T c[H + 1][H + 1], s[H + 1][H + 1];  // c[t][r] = cos(2 pi r t / P), s likewise
  for (int t = 1; t <= H; ++t)
    for (int r = 1; r <= H; ++r) {
      c[t][r] = st.cr[static_cast<size_t>((r * t) % P)];
      s[t][r] = st.ci[static_cast<size_t>((r * t) % P)];
    }
  for (int64_t j = 0; j < m; ++j) {
    T wr[P], wi[P];
    for (int t = 0; t < P; ++t) {
      wr[t] = st.wr[static_cast<size_t>(j * P + t)];
      wi[t] = sg * st.wi[static_cast<size_t>(j * P + t)];
    }
    const T* xr0 = xr + j * U;
    const T* xi0 = xi + j * U;
    T* yr0 = yr + P * j * U;
    T* yi0 = yi + P * j * U;
#pragma GCC ivdep
    for (int64_t u = 0; u < U; ++u) {
      T sr[H + 1], si[H + 1], dr[H + 1], di[H + 1];
      const T a0r = xr0[u], a0i = xi0[u];
      T y0r = a0r, y0i = a0i;
#pragma GCC unroll 8
      for (int r = 1; r <= H; ++r) {
        const T pr = xr0[r * m * U + u], pi = xi0[r * m * U + u];
        const T qr = xr0[(P - r) * m * U + u], qi = xi0[(P - r) * m * U + u];
        sr[r] = pr + qr, si[r] = pi + qi, dr[r] = pr - qr, di[r] = pi - qi;
        y0r += sr[r], y0i += si[r];
      }
      yr0[u] = y0r;
      yi0[u] = y0i;
#pragma GCC unroll 8
      for (int t = 1; t <= H; ++t) {
        T ar = a0r, ai = a0i, br = 0, bi = 0;
#pragma GCC unroll 8
        for (int r = 1; r <= H; ++r) {
          ar += c[t][r] * sr[r];
          ai += c[t][r] * si[r];
          br += s[t][r] * dr[r];
          bi += s[t][r] * di[r];
        }
        const T btr = ar - sg * bi, bti = ai + sg * br, bmr = ar + sg * bi, bmi = ai - sg * br;
        yr0[t * U + u] = btr * wr[t] - bti * wi[t];
        yi0[t * U + u] = btr * wi[t] + bti * wr[t];
        yr0[(P - t) * U + u] = bmr * wr[P - t] - bmi * wi[P - t];
        yi0[(P - t) * U + u] = bmr * wi[P - t] + bmi * wr[P - t];
      }
    }
  }
}

template <class T>
struct CSpan {
  const T* re;
  const T* im;
};

// The FFT (sg = -1) or unscaled inverse FFT (sg = +1) along axis 0 of the (n, L) signals in
// (inr, ini): stage 1 writes a, stage 2 b, stage 3 a, ...; returns the arrays holding the result
// (the input itself when n == 1). `scratch` serves the odd radices.
template <class T>
CSpan<T> fft_axis0(const Plan<T>& plan, int64_t L, const T* inr, const T* ini, T* ar, T* ai, T* br, T* bi, T sg,
                   std::vector<T>& scratch) {
  const T *xr = inr, *xi = ini;
  T *yr = ar, *yi = ai, *zr = br, *zi = bi;
  int64_t s = 1;
  for (const Stage<T>& st : plan.stages) {
    const int64_t U = s * L;
    if (st.p == 8)
      radix8(st, U, xr, xi, yr, yi, sg);
    else if (st.p == 4)
      radix4(st, U, xr, xi, yr, yi, sg);
    else if (st.p == 2)
      radix2(st, U, xr, xi, yr, yi, sg);
    else if (st.p == 3)
      radix_odd_fixed<T, 3>(st, U, xr, xi, yr, yi, sg);
    else if (st.p == 5)
      radix_odd_fixed<T, 5>(st, U, xr, xi, yr, yi, sg);
    else if (st.p == 7)
      radix_odd_fixed<T, 7>(st, U, xr, xi, yr, yi, sg);
    else
      radix_odd(st, U, xr, xi, yr, yi, sg, scratch);
    xr = yr, xi = yi;
    std::swap(yr, zr);
    std::swap(yi, zi);
    s *= st.p;
  }
  return {xr, xi};
}

// Work buffers: those of up to kKeep values are the calling thread's, kept between calls, so that
// the planes of the usual image sizes do not allocate and fault in fresh pages every time (at most
// kKeep values of each dtype per thread stay allocated); a larger plane gets its own buffer, freed
// when it is done.
constexpr size_t kKeep = size_t{1} << 20;
template <class T>
class Scratch {
 public:
  // n values for the plane being transformed.
  T* get(size_t n) {
    thread_local std::vector<T> kept;
    std::vector<T>& v = n <= kKeep ? kept : own_;
    if (v.size() < n) v.resize(n);
    return v.data();
  }
  std::vector<T> odd;  // the blocks of the generic odd radix

 private:
  std::vector<T> own_;
};

// rfft2 of one (h, w) plane x (contiguous) into ore, oim (h, wf), times scale.
template <class T>
void rfft2_plane(const T* x, int64_t h, int64_t w, T scale, const Plan<T>& ph, const Plan<T>& pw, T* ore, T* oim) {
  const int64_t wf = w / 2 + 1, h2 = (h + 1) / 2;
  const int64_t sz = std::max(w * h2, h * wf);
  Scratch<T> sc;
  T* const pr = sc.get(static_cast<size_t>(8 * sz));
  T *pi = pr + sz, *ar = pi + sz, *ai = ar + sz, *br = ai + sz, *bi = br + sz, *sr = bi + sz, *si = sr + sz;
  // (w, h2): signal l is row l of x (real part) and row l + h2 (imaginary part, zero past the end)
  for (int64_t c = 0; c < w; ++c)
    for (int64_t l = 0; l < h2; ++l) {
      pr[c * h2 + l] = x[l * w + c];
      pi[c * h2 + l] = l + h2 < h ? x[(l + h2) * w + c] : T(0);
    }
  const CSpan<T> z = fft_axis0(pw, h2, pr, pi, ar, ai, br, bi, T(-1), sc.odd);
  // Z = Xa + i Xb with Xa, Xb the spectra of the two real rows: Xa[k] = (Z[k] + conj Z[w-k]) / 2,
  // Xb[k] = (Z[k] - conj Z[w-k]) / 2i. Written as (h, wf), the scale and the halving folded in.
  const T half = scale / T(2);
  for (int64_t k = 0; k < wf; ++k) {
    const int64_t km = (w - k) % w;
    for (int64_t l = 0; l < h2; ++l) {
      const T zkr = z.re[k * h2 + l], zki = z.im[k * h2 + l], zmr = z.re[km * h2 + l], zmi = z.im[km * h2 + l];
      sr[l * wf + k] = half * (zkr + zmr);
      si[l * wf + k] = half * (zki - zmi);
      if (l + h2 < h) {
        sr[(l + h2) * wf + k] = half * (zki + zmi);
        si[(l + h2) * wf + k] = half * (zmr - zkr);
      }
    }
  }
  // Over h, with the output as one of the two stage buffers, picked so that the last stage writes it.
  const size_t nh = ph.stages.size();
  if (nh == 0) {
    std::copy(sr, sr + h * wf, ore);
    std::copy(si, si + h * wf, oim);
    return;
  }
  if (nh % 2 == 1)
    fft_axis0(ph, wf, sr, si, ore, oim, ar, ai, T(-1), sc.odd);
  else
    fft_axis0(ph, wf, sr, si, ar, ai, ore, oim, T(-1), sc.odd);
}

// irfft2 of one half-spectrum plane (yr, yi) (h, wf) (contiguous) into x (h, w), times scale.
template <class T>
void irfft2_plane(const T* yr, const T* yi, int64_t h, int64_t w, T scale, const Plan<T>& ph, const Plan<T>& pw,
                  T* x) {
  const int64_t wf = w / 2 + 1, h2 = (h + 1) / 2;
  const int64_t sz = std::max(w * h2, h * wf);
  Scratch<T> sc;
  T* const pr = sc.get(static_cast<size_t>(6 * sz));
  T *pi = pr + sz, *ar = pi + sz, *ai = ar + sz, *br = ai + sz, *bi = br + sz;
  const CSpan<T> y = fft_axis0(ph, wf, yr, yi, ar, ai, br, bi, T(1), sc.odd);
  // The full spectrum of rows l and l + h2 along w, as Z = Ya + i Yb (w, h2): column k >= wf is
  // conj(column w - k); the imaginary parts of the DC and (w even) Nyquist columns are dropped, as
  // numpy does, which makes each row's spectrum exactly Hermitian so that both rows come back real.
  for (int64_t k = 0; k < w; ++k) {
    const bool mirror = k >= wf;
    const int64_t kk = mirror ? w - k : k;
    const bool real_col = kk == 0 || (w % 2 == 0 && kk == w / 2);
    const T conj = mirror ? T(-1) : T(1);
    for (int64_t l = 0; l < h2; ++l) {
      const T yar = y.re[l * wf + kk], yai = real_col ? T(0) : conj * y.im[l * wf + kk];
      T ybr = 0, ybi = 0;
      if (l + h2 < h) {
        ybr = y.re[(l + h2) * wf + kk];
        ybi = real_col ? T(0) : conj * y.im[(l + h2) * wf + kk];
      }
      pr[k * h2 + l] = yar - ybi;
      pi[k * h2 + l] = yai + ybr;
    }
  }
  const CSpan<T> z = fft_axis0(pw, h2, pr, pi, ar, ai, br, bi, T(1), sc.odd);
  for (int64_t l = 0; l < h2; ++l) {
    for (int64_t c = 0; c < w; ++c) x[l * w + c] = scale * z.re[c * h2 + l];
    if (l + h2 < h)
      for (int64_t c = 0; c < w; ++c) x[(l + h2) * w + c] = scale * z.im[c * h2 + l];
  }
}

// About the multiply-adds of one plane's transform, for the threading grain.
double plane_work(int64_t h, int64_t w) {
  return 5.0 * static_cast<double>(h * w) * (std::log2(static_cast<double>(h * w)) + 1.0);
}

}  // namespace

RealSpectrum rfft2(const Tensor& x, double scale) {
  const int64_t h = x.size(-2), w = x.size(-1), wf = w / 2 + 1;
  Shape out_shape = x.shape();
  out_shape.back() = wf;
  RealSpectrum y{empty(out_shape, x.dtype()), empty(out_shape, x.dtype())};
  const int64_t planes = x.numel() / (h * w);
  if (planes == 0) return y;
  const Tensor xc = x.contiguous();
  dispatch_float(x.dtype(), "rfft2", [&](auto tag) {
    using T = decltype(tag);
    const std::shared_ptr<const Plan<T>> ph = plan_for<T>(h), pw = plan_for<T>(w);
    const T* xp = xc.data<T>();
    T *re = y.re.data<T>(), *im = y.im.data<T>();
    parallel::for_each(planes, static_cast<double>(planes) * plane_work(h, w), [&](int64_t b) {
      rfft2_plane<T>(xp + b * h * w, h, w, static_cast<T>(scale), *ph, *pw, re + b * h * wf, im + b * h * wf);
    });
  });
  return y;
}

Tensor irfft2(const Tensor& re, const Tensor& im, int64_t w, double scale) {
  const int64_t h = re.size(-2), wf = w / 2 + 1;
  Shape out_shape = re.shape();
  out_shape.back() = w;
  Tensor x = empty(out_shape, re.dtype());
  const int64_t planes = re.numel() / (h * wf);
  if (planes == 0) return x;
  const Tensor rc = re.contiguous(), ic = im.contiguous();
  dispatch_float(re.dtype(), "irfft2", [&](auto tag) {
    using T = decltype(tag);
    const std::shared_ptr<const Plan<T>> ph = plan_for<T>(h), pw = plan_for<T>(w);
    const T *rp = rc.data<T>(), *ip = ic.data<T>();
    T* xp = x.data<T>();
    parallel::for_each(planes, static_cast<double>(planes) * plane_work(h, w), [&](int64_t b) {
      irfft2_plane<T>(rp + b * h * wf, ip + b * h * wf, h, w, static_cast<T>(scale), *ph, *pw, xp + b * h * w);
    });
  });
  return x;
}

}  // namespace cortex::kernels::cpu
