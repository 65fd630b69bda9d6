#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/ops.h"
#include "kernels/index.h"
#include "tensor/random.h"

namespace cortex {
namespace {

std::vector<double> flat(const std::vector<Tensor>& ts) {
  std::vector<double> out;
  for (const Tensor& t : ts) {
    auto v = t.to(DType::Float64).to_vector<double>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

// f at xs, as plain values. The inputs are fresh leaves that require grad, so f may itself take
// gradients with respect to them (f = a VJP, when checking second derivatives through grad).
std::vector<Tensor> eval(const Fn& f, const std::vector<Tensor>& xs) {
  std::vector<Tensor> leaves;
  for (const Tensor& x : xs) leaves.push_back(with_grad(x));
  std::vector<Tensor> outs;
  for (const Tensor& y : f(leaves)) outs.push_back(y.defined() ? detach(y) : y);
  return outs;
}

// Numeric Jacobian J[o][i] (rows over all output elements, columns over all input elements).
std::vector<std::vector<double>> numeric_jacobian(const Fn& f, const std::vector<Tensor>& xs, double eps,
                                                  size_t& m_out) {
  std::vector<std::vector<double>> cols;
  for (size_t k = 0; k < xs.size(); ++k) {
    Tensor base = xs[k].contiguous().clone();
    for (int64_t j = 0; j < base.numel(); ++j) {
      std::vector<Tensor> plus = xs, minus = xs;
      Tensor p = base.clone(), m = base.clone();
      p.data<double>()[j] += eps;
      m.data<double>()[j] -= eps;
      plus[k] = p.view(xs[k].shape());
      minus[k] = m.view(xs[k].shape());
      auto fp = flat(eval(f, plus)), fm = flat(eval(f, minus));
      std::vector<double> col(fp.size());
      for (size_t i = 0; i < fp.size(); ++i) col[i] = (fp[i] - fm[i]) / (2 * eps);
      cols.push_back(col);
    }
  }
  m_out = cols.empty() ? flat(eval(f, xs)).size() : cols[0].size();
  return cols;  // cols[input element][output element]
}

bool close(double a, double b, const GradcheckOptions& o) { return std::abs(a - b) <= o.atol + o.rtol * std::abs(b); }

std::string compare(const std::vector<double>& got, const std::vector<double>& want, const char* what,
                    const GradcheckOptions& o) {
  if (got.size() != want.size()) {
    std::ostringstream os;
    os << what << ": " << got.size() << " values, expected " << want.size();
    return os.str();
  }
  for (size_t i = 0; i < got.size(); ++i)
    if (!close(got[i], want[i], o)) {
      std::ostringstream os;
      os.precision(10);
      os << what << ": element " << i << " is " << got[i] << ", finite differences give " << want[i];
      return os.str();
    }
  return "";
}

}  // namespace

std::string gradcheck(const Fn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt) {
  for (const Tensor& x : inputs) {
    if (x.dtype() != DType::Float64) return "gradcheck: inputs must be float64";
    if (!x.device().is_host_memory()) return "gradcheck: inputs must be on cpu or emu (it perturbs them in place), found " + x.device().str();
  }
  Generator gen(opt.seed);
  size_t m = 0;
  auto J = numeric_jacobian(f, inputs, opt.eps, m);  // J[j][i] = d out_i / d in_j
  const size_t n = J.size();
  std::vector<Tensor> y0 = eval(f, inputs);

  // 1. VJP
  std::vector<Tensor> leaves;
  for (const Tensor& x : inputs) leaves.push_back(with_grad(x));
  std::vector<Tensor> outs = f(leaves);
  std::vector<Tensor> v;
  for (const Tensor& y : outs) v.push_back(randn(y.shape(), gen, 0, 1, DType::Float64).to(y.device()));
  auto vf = flat(v);
  std::vector<Tensor> diff_outs, diff_v;
  for (size_t i = 0; i < outs.size(); ++i)
    if (requires_grad(outs[i])) { diff_outs.push_back(outs[i]); diff_v.push_back(v[i]); }
  std::vector<double> jtv(n, 0.0);
  {
    std::vector<double> want(n, 0.0);
    for (size_t j = 0; j < n; ++j)
      for (size_t i = 0; i < m; ++i) want[j] += J[j][i] * vf[i];
    std::vector<Tensor> g;
    if (!diff_outs.empty()) {
      // keep v aligned with all outputs: outputs that do not require grad contribute nothing
      std::vector<double> vmask = vf;
      size_t off = 0;
      for (size_t i = 0; i < outs.size(); ++i) {
        if (!requires_grad(outs[i]))
          for (int64_t k = 0; k < outs[i].numel(); ++k) vmask[off + k] = 0;
        off += outs[i].numel();
      }
      std::fill(want.begin(), want.end(), 0.0);
      for (size_t j = 0; j < n; ++j)
        for (size_t i = 0; i < m; ++i) want[j] += J[j][i] * vmask[i];
      g = grad(diff_outs, leaves, diff_v, false, true);
    } else {
      for (const Tensor& x : inputs) g.push_back(zeros(x.shape(), DType::Float64, x.device()));
    }
    jtv = flat(g);
    if (auto e = compare(jtv, want, "VJP (J^T v)", opt); !e.empty()) return e;
  }

  // 2. JVP and 3. transpose identity
  if (opt.check_jvp) {
    std::vector<Tensor> t;
    for (const Tensor& x : inputs) t.push_back(randn(x.shape(), gen, 0, 1, DType::Float64).to(x.device()));
    auto tf = flat(t);
    std::vector<double> want(m, 0.0);
    for (size_t j = 0; j < n; ++j)
      for (size_t i = 0; i < m; ++i) want[i] += J[j][i] * tf[j];
    JvpResult r = jvp(f, inputs, t);
    auto jt = flat(r.tangents);
    if (auto e = compare(jt, want, "JVP (J t)", opt); !e.empty()) return e;
    if (auto e = compare(flat(r.outputs), flat(y0), "JVP primal output", opt); !e.empty()) return e;
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < m; ++i) lhs += vf[i] * jt[i];
    for (size_t j = 0; j < n; ++j) rhs += jtv[j] * tf[j];
    if (diff_outs.size() == outs.size() && !close(lhs, rhs, opt)) {
      std::ostringstream os;
      os.precision(12);
      os << "transpose identity: <v, J t> = " << lhs << " but <J^T v, t> = " << rhs;
      return os.str();
    }
  }

  // 4. batched modes, one (input, output) pair at a time
  if (opt.check_batched && n <= static_cast<size_t>(opt.max_batched) && m <= static_cast<size_t>(opt.max_batched)) {
    size_t col0 = 0;
    for (size_t k = 0; k < inputs.size(); ++k) {
      const int64_t nk = inputs[k].numel();
      size_t row0 = 0;
      for (size_t o = 0; o < outs.size(); ++o) {
        const int64_t mo = outs[o].numel();
        if (nk > 0 && mo > 0) {
          std::vector<double> want;  // (mo, nk) row-major
          for (int64_t i = 0; i < mo; ++i)
            for (int64_t j = 0; j < nk; ++j) want.push_back(J[col0 + j][row0 + i]);
          // reverse: stacked cotangents e_i
          if (requires_grad(outs[o])) {
            Tensor basis = eye(mo, mo, DType::Float64, outs[o].device());
            Shape bs{mo};
            bs.insert(bs.end(), outs[o].shape().begin(), outs[o].shape().end());
            BatchedScope scope(1);
            auto g = grad({outs[o]}, {leaves[k]}, {basis.view(bs)}, false, true);
            if (auto e = compare(flat(g), want, "batched VJP (Jacobian rows)", opt); !e.empty())
              return e + " [input " + std::to_string(k) + ", output " + std::to_string(o) + "]";
          }
          if (opt.check_jvp) {
            // forward: stacked tangents e_j on input k, zeros elsewhere
            std::vector<Tensor> ts;
            for (size_t q = 0; q < inputs.size(); ++q) {
              Shape s{nk};
              s.insert(s.end(), inputs[q].shape().begin(), inputs[q].shape().end());
              const Device qd = inputs[q].device();
              ts.push_back(q == k ? eye(nk, nk, DType::Float64, qd).view(s) : zeros(s, DType::Float64, qd));
            }
            BatchedScope scope(1);
            JvpResult r = jvp(f, inputs, ts);
            // r.tangents[o] is (nk, *out): column j of the block; transpose to rows
            Tensor cols = r.tangents[o].reshape({nk, mo}).t();
            if (auto e = compare(flat({cols}), want, "batched JVP (Jacobian columns)", opt); !e.empty())
              return e + " [input " + std::to_string(k) + ", output " + std::to_string(o) + "]";
          }
        }
        row0 += mo;
      }
      col0 += nk;
    }
  }

  // 5. second order: h(x) = J(x)^T v, differentiated in reverse mode, against finite differences of h
  if (opt.check_second_order && !diff_outs.empty()) {
    // h takes leaves that require grad.
    Fn h = [&](const std::vector<Tensor>& ls) {
      std::vector<Tensor> os = f(ls);
      std::vector<Tensor> dos, dv;
      for (size_t i = 0; i < os.size(); ++i)
        if (requires_grad(os[i])) { dos.push_back(os[i]); dv.push_back(v[i]); }
      return grad(dos, ls, dv, /*create_graph=*/true);
    };
    // numeric: finite differences of h with grad mode on (h needs it to run)
    size_t mh = 0;
    std::vector<std::vector<double>> H;
    for (size_t k = 0; k < inputs.size(); ++k) {
      Tensor base = inputs[k].contiguous().clone();
      for (int64_t j = 0; j < base.numel(); ++j) {
        std::vector<Tensor> plus = inputs, minus = inputs;
        Tensor p = base.clone(), mm = base.clone();
        p.data<double>()[j] += opt.eps;
        mm.data<double>()[j] -= opt.eps;
        plus[k] = with_grad(p.view(inputs[k].shape()));
        minus[k] = with_grad(mm.view(inputs[k].shape()));
        for (size_t q = 0; q < inputs.size(); ++q)
          if (q != k) { plus[q] = with_grad(inputs[q]); minus[q] = with_grad(inputs[q]); }
        auto hp = flat(h(plus)), hm = flat(h(minus));
        std::vector<double> col(hp.size());
        for (size_t i = 0; i < hp.size(); ++i) col[i] = (hp[i] - hm[i]) / (2 * opt.eps);
        H.push_back(col);
        mh = col.size();
      }
    }
    std::vector<Tensor> ls;
    for (const Tensor& x : inputs) ls.push_back(with_grad(x));
    std::vector<Tensor> hx = h(ls);
    std::vector<Tensor> w, dh, dw;
    for (const Tensor& t : hx) w.push_back(randn(t.shape(), gen, 0, 1, DType::Float64).to(t.device()));
    for (size_t i = 0; i < hx.size(); ++i)
      if (requires_grad(hx[i])) { dh.push_back(hx[i]); dw.push_back(w[i]); }
    auto wf = flat(w);
    std::vector<double> want(H.size(), 0.0);
    for (size_t j = 0; j < H.size(); ++j)
      for (size_t i = 0; i < mh; ++i) want[j] += H[j][i] * wf[i];
    std::vector<double> got(H.size(), 0.0);
    if (!dh.empty()) got = flat(grad(dh, ls, dw));
    GradcheckOptions o2 = opt;
    o2.atol = std::max(opt.atol, 1e-5);
    o2.rtol = std::max(opt.rtol, 1e-4);
    if (auto e = compare(got, want, "second order (grad of grad)", o2); !e.empty()) return e;
  }
  return "";
}

}  // namespace cortex
