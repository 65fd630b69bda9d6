#include "tensor/tensor.h"

#include "tensor/host_allocator.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <limits>
#include <numeric>
#include <ostream>
#include <sstream>

#include "tensor/cuda_runtime.h"
#include "tensor/device_ops.h"
#include "tensor/ramp.h"
#include "tensor/strided.h"

namespace cortex {

// ---------------------------------------------------------------- dtypes and devices

size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::Float32: case DType::Int32: return 4;
    case DType::Float64: case DType::Int64: return 8;
    case DType::BFloat16: case DType::Float16: return 2;
    case DType::UInt8: case DType::Bool: return 1;
  }
  return 0;
}

const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::BFloat16: return "bfloat16";
    case DType::Float16: return "float16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
    case DType::Bool: return "bool";
  }
  return "?";
}

DType dtype_from_name(const std::string& n) {
  if (n == "float32" || n == "f32" || n == "fp32") return DType::Float32;
  if (n == "float64" || n == "f64" || n == "fp64") return DType::Float64;
  if (n == "bfloat16" || n == "bf16") return DType::BFloat16;
  if (n == "float16" || n == "f16" || n == "fp16" || n == "half") return DType::Float16;
  if (n == "int32" || n == "i32") return DType::Int32;
  if (n == "int64" || n == "i64") return DType::Int64;
  if (n == "uint8" || n == "u8") return DType::UInt8;
  if (n == "bool") return DType::Bool;
  throw Error("unknown dtype '" + n + "': expected one of float32, float64, bfloat16, float16, int32, int64, uint8, bool");
}

float16::float16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) { bits = static_cast<uint16_t>(sign | 0x7e00u); return; }   // NaN
  if (absx >= 0x47800000u) { bits = static_cast<uint16_t>(sign | 0x7c00u); return; }  // overflow -> inf
  if (absx < 0x38800000u) {  // result is subnormal or zero: value = m * 2^-24
    float a;
    std::memcpy(&a, &absx, 4);
    // nearbyint rounds to nearest even under the default rounding mode.
    bits = static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0f)));
    return;
  }
  uint32_t mant = absx & 0x7fffffu;
  uint32_t exp = (absx >> 23) - 112;
  uint32_t h = (exp << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // round to nearest even; may carry into exp
  bits = static_cast<uint16_t>(sign | h);
}

float16::operator float() const {
  const uint32_t sign = (static_cast<uint32_t>(bits) & 0x8000u) << 16;
  const uint32_t exp = (bits >> 10) & 0x1fu;
  const uint32_t mant = bits & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "emu") return emu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    const std::string idx = s.substr(5);
    CORTEX_CHECK(!idx.empty() && idx.size() <= 4 && std::all_of(idx.begin(), idx.end(), ::isdigit),
                 "device: expected 'cpu', 'emu', 'cuda' or 'cuda:N', found '", s, "'");
    return cuda(std::stoi(idx));
  }
  throw Error("device: expected 'cpu', 'emu', 'cuda' or 'cuda:N', found '" + s + "'");
}

bool cuda_available() { return cuda::built_with_cuda() && cuda::device_count() > 0; }
int cuda_device_count() { return cuda::device_count(); }

// ---------------------------------------------------------------- shapes

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    CORTEX_CHECK(d >= 0, "shape ", shape_str(s), " has a negative size");
    CORTEX_CHECK(d == 0 || n <= std::numeric_limits<int64_t>::max() / d,
                 "shape ", shape_str(s), " has more elements than int64 can count");
    n *= d;
  }
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) {
    st[d] = acc;
    acc *= std::max<int64_t>(s[d], 1);
  }
  return st;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    CORTEX_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
                 " cannot be broadcast together (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  const int64_t lim = std::max<int64_t>(ndim, 1);
  CORTEX_CHECK(dim >= -lim && dim < lim, op, ": dim ", dim, " is out of range for a tensor with ", ndim,
               " dims");
  return dim < 0 ? dim + lim : dim;
}

// ---------------------------------------------------------------- device ops (tensor/device_ops.h)

namespace {
DeviceTensorOps& ops_slot(Device::Type type) {
  static DeviceTensorOps table[3];  // CPU (never used), CUDA, EMU: a function-local static, so it
                                    // exists when kernels/ registers from its static initialisers
  return table[static_cast<int>(type)];
}
}  // namespace

void set_device_tensor_ops(Device::Type type, const DeviceTensorOps& ops) { ops_slot(type) = ops; }
const DeviceTensorOps& device_tensor_ops(Device::Type type) { return ops_slot(type); }

// ---------------------------------------------------------------- storage

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  auto s = std::make_shared<Storage>();
  s->nbytes = nbytes;
  s->device = device;
  if (device.is_host_memory()) {
    // CPU and emulated-device tensors alike: 64-byte aligned (Eigen maps, SIMD loads), never null; large blocks are reused (host_allocator.h).
    void* p = host::allocate(nbytes);
    s->data = p;
    s->owner = std::shared_ptr<void>(p, [nbytes](void* q) { host::deallocate(q, nbytes); });
  } else {
    const int dev = device.index;
    void* p = cuda::device_alloc(nbytes, dev);
    s->data = p;
    s->owner = std::shared_ptr<void>(p, [nbytes, dev](void* q) { cuda::device_free(q, nbytes, dev); });
  }
  return s;
}

std::shared_ptr<Storage> Storage::wrap(void* data, size_t nbytes, Device device, std::shared_ptr<void> owner) {
  auto s = std::make_shared<Storage>();
  s->data = data;
  s->nbytes = nbytes;
  s->device = device;
  s->owner = std::move(owner);
  return s;
}

// ---------------------------------------------------------------- tensor basics

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype) {
  CORTEX_CHECK(shape.size() == strides.size(), "Tensor: shape ", shape_str(shape), " and strides ",
               shape_str(strides), " differ in length");
  impl_ = std::make_shared<TensorImpl>();
  impl_->storage = std::move(storage);
  impl_->shape = std::move(shape);
  impl_->strides = std::move(strides);
  impl_->offset = offset;
  impl_->dtype = dtype;
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }
int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape()) n *= s;
  return n;
}

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // no element to be out of place (a [3, 0, 4] slice keeps odd strides)
  int64_t acc = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    if (shape()[d] == 1) continue;
    if (strides()[d] != acc) return false;
    acc *= shape()[d];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data) + offset() * static_cast<int64_t>(element_size());
}

// ---------------------------------------------------------------- autograd hooks

namespace {
DerivedHooks g_hooks;
thread_local int t_hooks_off = 0;
bool hooks_on() { return t_hooks_off == 0; }
}  // namespace
void set_derived_hooks(const DerivedHooks& hooks) { g_hooks = hooks; }
HooksOff::HooksOff() { ++t_hooks_off; }
HooksOff::~HooksOff() { --t_hooks_off; }

// ---------------------------------------------------------------- views

namespace {
Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  return Tensor(base.storage(), std::move(shape), std::move(strides), offset, base.dtype());
}
// Tells autograd about a view of a tensor that carries autograd state.
Tensor tracked(const Tensor& base, Tensor view, const ViewFn& reapply) {
  if (base.autograd_meta() && g_hooks.on_view && hooks_on()) g_hooks.on_view(base, view, reapply);
  return view;
}

Shape infer_shape(Shape shape, int64_t numel, const char* op) {
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      CORTEX_CHECK(infer < 0, op, ": only one dimension may be -1, found ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      CORTEX_CHECK(shape[i] >= 0, op, ": invalid size ", shape[i], " in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    CORTEX_CHECK(known != 0 && numel % known == 0, op, ": cannot infer -1 in ", shape_str(shape), " for ",
                 numel, " elements");
    shape[infer] = numel / known;
  }
  CORTEX_CHECK(shape_numel(shape) == numel, op, ": shape ", shape_str(shape), " is invalid for ", numel,
               " elements");
  return shape;
}

// Strides for viewing (old_shape, old_strides) as new_shape without copying, if possible
// (the same algorithm as NumPy's _attempt_nocopy_reshape). Empty optional when impossible.
bool view_strides(const Shape& os, const Shape& ost, const Shape& ns, Shape& nst) {
  nst.assign(ns.size(), 0);
  if (shape_numel(os) == 0) {
    nst = contiguous_strides(ns);
    return true;
  }
  Shape s, st;  // drop size-1 dims of the old shape
  for (size_t i = 0; i < os.size(); ++i)
    if (os[i] != 1) { s.push_back(os[i]); st.push_back(ost[i]); }
  size_t oi = 0, oj = 1, ni = 0, nj = 1;
  const size_t on = s.size(), nn = ns.size();
  while (ni < nn && oi < on) {
    int64_t np = ns[ni], op = s[oi];
    while (np != op) {
      if (np < op) np *= ns[nj++];
      else op *= s[oj++];
    }
    for (size_t k = oi; k + 1 < oj; ++k)
      if (st[k] != st[k + 1] * s[k + 1]) return false;
    nst[nj - 1] = st[oj - 1];
    for (size_t k = nj - 1; k > ni; --k) nst[k - 1] = nst[k] * ns[k];
    ni = nj++;
    oi = oj++;
  }
  // trailing size-1 dims of the new shape
  int64_t last = ni > 0 ? nst[ni - 1] : 1;
  for (size_t k = ni; k < nn; ++k) nst[k] = last;
  return true;
}
}  // namespace

Tensor Tensor::view(Shape shape) const {
  shape = infer_shape(std::move(shape), numel(), "view");
  Shape st;
  CORTEX_CHECK(view_strides(this->shape(), strides(), shape, st), "view: cannot view a tensor of shape ",
               shape_str(this->shape()), " with strides ", shape_str(strides()), " as ", shape_str(shape),
               " without a copy (use reshape)");
  Tensor v = make_view(*this, shape, std::move(st), offset());
  return tracked(*this, v, [shape](const Tensor& t) { return t.view(shape); });
}

Tensor Tensor::reshape(Shape shape) const {
  shape = infer_shape(std::move(shape), numel(), "reshape");
  Shape st;
  if (view_strides(this->shape(), strides(), shape, st)) {
    Tensor v = make_view(*this, shape, std::move(st), offset());
    return tracked(*this, v, [shape](const Tensor& t) { return t.reshape(shape); });
  }
  return contiguous().view(std::move(shape));
}

Tensor Tensor::permute(const Shape& dims) const {
  CORTEX_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: expected ", dim(), " dims, found ",
               shape_str(dims));
  Shape ns(dims.size()), nst(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    CORTEX_CHECK(!seen[d], "permute: dim ", d, " repeated in ", shape_str(dims));
    seen[d] = true;
    ns[i] = shape()[d];
    nst[i] = strides()[d];
  }
  return tracked(*this, make_view(*this, std::move(ns), std::move(nst), offset()),
                 [dims](const Tensor& t) { return t.permute(dims); });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  Shape p(dim());
  std::iota(p.begin(), p.end(), 0);
  if (dim() == 0) return *this;
  std::swap(p[wrap_dim(d0, dim(), "transpose")], p[wrap_dim(d1, dim(), "transpose")]);
  return permute(p);
}

Tensor Tensor::t() const {
  CORTEX_CHECK(dim() == 2, "t: expected a 2-D tensor, found shape ", shape_str(shape()));
  return transpose(0, 1);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t stop, int64_t step) const {
  d = wrap_dim(d, dim(), "slice");
  CORTEX_CHECK(step > 0, "slice: step must be positive, found ", step);
  const int64_t n = shape()[d];
  const int64_t start0 = start, stop0 = stop;
  auto clampi = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
  start = clampi(start);
  stop = std::max(clampi(stop), start);
  Shape ns = shape(), nst = strides();
  ns[d] = (stop - start + step - 1) / step;
  nst[d] = strides()[d] * step;
  return tracked(*this, make_view(*this, std::move(ns), std::move(nst), offset() + start * strides()[d]),
                 [d, start0, stop0, step](const Tensor& t) { return t.slice(d, start0, stop0, step); });
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  CORTEX_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d], "narrow: range [", start, ", ",
               start + length, ") is outside dim ", d, " of size ", shape()[d]);
  return slice(d, start, start + length);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  const int64_t n = shape()[d];
  CORTEX_CHECK(index >= -n && index < n, "select: index ", index, " is out of range for dim ", d, " of size ", n);
  if (index < 0) index += n;
  Shape ns = shape(), nst = strides();
  ns.erase(ns.begin() + d);
  nst.erase(nst.begin() + d);
  return tracked(*this, make_view(*this, std::move(ns), std::move(nst), offset() + index * strides()[d]),
                 [d, index](const Tensor& t) { return t.select(d, index); });
}

Tensor Tensor::expand(const Shape& target) const {
  CORTEX_CHECK(static_cast<int64_t>(target.size()) >= dim(), "expand: cannot expand shape ", shape_str(shape()),
               " to fewer dims ", shape_str(target));
  const size_t lead = target.size() - shape().size();
  Shape ns(target.size()), nst(target.size());
  for (size_t i = 0; i < target.size(); ++i) {
    if (i < lead) {
      CORTEX_CHECK(target[i] >= 0, "expand: invalid size ", target[i], " in ", shape_str(target));
      ns[i] = target[i];
      nst[i] = 0;
      continue;
    }
    const int64_t cur = shape()[i - lead];
    const int64_t want = target[i] == -1 ? cur : target[i];
    CORTEX_CHECK(cur == want || cur == 1, "expand: cannot expand shape ", shape_str(shape()), " to ",
                 shape_str(target));
    ns[i] = want;
    nst[i] = cur == want ? strides()[i - lead] : 0;
  }
  return tracked(*this, make_view(*this, std::move(ns), std::move(nst), offset()),
                 [target](const Tensor& t) { return t.expand(target); });
}

Tensor Tensor::squeeze() const {
  Shape ns, nst;
  for (int64_t i = 0; i < dim(); ++i)
    if (shape()[i] != 1) { ns.push_back(shape()[i]); nst.push_back(strides()[i]); }
  return tracked(*this, make_view(*this, std::move(ns), std::move(nst), offset()),
                 [](const Tensor& t) { return t.squeeze(); });
}

Tensor Tensor::squeeze(int64_t d) const {
  if (dim() == 0) return *this;
  d = wrap_dim(d, dim(), "squeeze");
  if (shape()[d] != 1) return *this;
  Shape ns = shape(), nst = strides();
  ns.erase(ns.begin() + d);
  nst.erase(nst.begin() + d);
  return tracked(*this, make_view(*this, std::move(ns), std::move(nst), offset()),
                 [d](const Tensor& t) { return t.squeeze(d); });
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape ns = shape(), nst = strides();
  const int64_t st = d < dim() ? strides()[d] * shape()[d] : 1;
  ns.insert(ns.begin() + d, 1);
  nst.insert(nst.begin() + d, st);
  return tracked(*this, make_view(*this, std::move(ns), std::move(nst), offset()),
                 [d](const Tensor& t) { return t.unsqueeze(d); });
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  start = wrap_dim(start, dim(), "flatten");
  end = wrap_dim(end, dim(), "flatten");
  CORTEX_CHECK(start <= end, "flatten: start dim ", start, " is after end dim ", end);
  Shape ns(shape().begin(), shape().begin() + start);
  int64_t m = 1;
  for (int64_t i = start; i <= end; ++i) m *= shape()[i];
  ns.push_back(m);
  ns.insert(ns.end(), shape().begin() + end + 1, shape().end());
  return reshape(ns);
}

Tensor Tensor::diagonal() const {
  CORTEX_CHECK(dim() == 2, "diagonal: expected a 2-D tensor, found shape ", shape_str(shape()));
  return tracked(*this, make_view(*this, {std::min(shape()[0], shape()[1])}, {strides()[0] + strides()[1]}, offset()),
                 [](const Tensor& t) { return t.diagonal(); });
}

// ---------------------------------------------------------------- copies

namespace {

template <class D, class S>
inline D convert(S s) {
  if constexpr (std::is_same_v<S, bfloat16> || std::is_same_v<S, float16>) {
    return convert<D>(static_cast<float>(s));
  } else if constexpr (std::is_same_v<D, bfloat16> || std::is_same_v<D, float16>) {
    return D(static_cast<float>(s));
  } else if constexpr (std::is_same_v<D, bool>) {
    return s != S(0);
  } else {
    return static_cast<D>(s);
  }
}

// CPU strided copy with conversion; dst and src have the same shape (src may be a broadcast view).
void cpu_copy(const Tensor& dst, const Tensor& src) {
  auto plan = make_plan<2>(dst.shape(), std::array<const Tensor*, 2>{&dst, &src});
  dispatch(dst.dtype(), [&](auto dt) {
    using D = decltype(dt);
    dispatch(src.dtype(), [&](auto st) {
      using S = decltype(st);
      D* d = static_cast<D*>(dst.raw_data());
      const S* s = static_cast<const S*>(src.raw_data());
      strided_for(plan, [&](int64_t n, const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& inc) {
        D* dp = d + off[0];
        const S* sp = s + off[1];
        if (inc[0] == 1 && inc[1] == 1) {
          for (int64_t i = 0; i < n; ++i) dp[i] = convert<D>(sp[i]);
        } else {
          for (int64_t i = 0; i < n; ++i) dp[i * inc[0]] = convert<D>(sp[i * inc[1]]);
        }
      });
    });
  });
}

// Bounds (in elements, relative to storage start) of the storage a view touches.
std::pair<int64_t, int64_t> storage_span(const Tensor& t) {
  int64_t lo = t.offset(), hi = t.offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.shape()[d] == 0) return {t.offset(), t.offset()};
    const int64_t ext = (t.shape()[d] - 1) * t.strides()[d];
    (ext < 0 ? lo : hi) += ext;
  }
  return {lo, hi + 1};
}

// Copies the storage span a CUDA view touches to the host and returns the same view over it.
Tensor cuda_view_to_host(const Tensor& t) {
  auto [lo, hi] = storage_span(t);
  const size_t es = t.element_size();
  auto st = Storage::allocate(static_cast<size_t>(hi - lo) * es, Device::cpu());
  if (hi > lo)
    cuda::copy_device_to_host(st->data, static_cast<char*>(t.storage()->data) + lo * es, (hi - lo) * es,
                              t.device().index);
  return Tensor(st, t.shape(), t.strides(), t.offset() - lo, t.dtype());
}
}  // namespace

void copy_bytes(const Tensor& dst, const Tensor& src) {
  CORTEX_CHECK(dst.dtype() == src.dtype() && dst.numel() == src.numel() && dst.is_contiguous() &&
                   src.is_contiguous(),
               "copy_bytes: expects contiguous tensors of one dtype and size");
  const size_t n = static_cast<size_t>(src.numel()) * src.element_size();
  if (n == 0) return;
  const Device dd = dst.device(), sd = src.device();
  if (dd.is_host_memory() && sd.is_host_memory()) std::memcpy(dst.raw_data(), src.raw_data(), n);
  else if (dd.is_cuda() && sd.is_host_memory()) cuda::copy_host_to_device(dst.raw_data(), src.raw_data(), n, dd.index);
  else if (dd.is_host_memory() && sd.is_cuda()) cuda::copy_device_to_host(dst.raw_data(), src.raw_data(), n, sd.index);
  else {
    CORTEX_CHECK(dd.index == sd.index, "copy between two CUDA devices (", sd.str(), " -> ", dd.str(),
                 ") goes through the host: use .to(cpu) first");
    cuda::copy_device_to_device(dst.raw_data(), src.raw_data(), n, dd.index);
  }
}

namespace {
// Copies the storage span a host-memory view touches to CUDA device `dev` and returns the same
// view over it, so a device kernel can read it.
Tensor host_view_to_cuda(const Tensor& t, int dev) {
  auto [lo, hi] = storage_span(t);
  const size_t es = t.element_size();
  auto st = Storage::allocate(static_cast<size_t>(hi - lo) * es, Device::cuda(dev));
  if (hi > lo)
    cuda::copy_host_to_device(st->data, static_cast<char*>(t.storage()->data) + lo * es, (hi - lo) * es, dev);
  return Tensor(st, t.shape(), t.strides(), t.offset() - lo, t.dtype());
}

// The same view over the same host memory, seen as an emulated-device tensor (no copy).
Tensor host_view_as_emu(const Tensor& t) {
  auto st = Storage::wrap(t.storage()->data, t.storage()->nbytes, Device::emu(), t.storage());
  return Tensor(st, t.shape(), t.strides(), t.offset(), t.dtype());
}

// src (already at dst's shape) brought to dst's device for a device copy kernel: a CUDA source on
// another device or a host source is staged, a host source for the emulated device is only
// relabelled.
Tensor on_device_of(const Tensor& dst, const Tensor& s) {
  const Device dd = dst.device(), sd = s.device();
  if (sd == dd) return s;
  if (dd.is_emu()) return host_view_as_emu(sd.is_cuda() ? cuda_view_to_host(s) : s);
  return host_view_to_cuda(sd.is_cuda() ? cuda_view_to_host(s) : s, dd.index);  // another GPU: via the host
}

// Moves src's values (broadcast to dst's shape, converted to dst's dtype) into dst. No hooks.
void copy_values(const Tensor& dst, const Tensor& src_in) {
  const Tensor& self = dst;
  Tensor s = Tensor(src_in.storage(), src_in.shape(), src_in.strides(), src_in.offset(), src_in.dtype()).expand(self.shape());
  // The device that holds dst does the work: a registered device copy on emu and CUDA.
  if (!self.device().is_cpu()) {
    const DeviceTensorOps& ops = device_tensor_ops(self.device().type);
    if (ops.copy) {
      if (self.numel() > 0) ops.copy(self, on_device_of(self, s));
      return;
    }
    if (ops.note_fallback) ops.note_fallback("copy", self.device());
  }
  // CPU and emulated-device memory are both host memory: cpu_copy reads and writes them directly.
  if (self.device().is_host_memory() && s.device().is_host_memory()) {
    cpu_copy(self, s);
  } else if (self.device().is_host_memory()) {
    cpu_copy(self, cuda_view_to_host(s));
  } else {
    // Build the values on the host in this tensor's dtype and layout, then upload the span.
    Tensor host = cuda_view_to_host(self);
    cpu_copy(host, s.device().is_host_memory() ? s : cuda_view_to_host(s));
    auto [lo, hi] = storage_span(self);
    const size_t es = self.element_size();
    if (hi > lo)
      cuda::copy_host_to_device(static_cast<char*>(self.storage()->data) + lo * es, host.storage()->data,
                                (hi - lo) * es, self.device().index);
  }
}
Tensor plain(const Tensor& t) { return Tensor(t.storage(), t.shape(), t.strides(), t.offset(), t.dtype()); }
}  // namespace

Tensor& Tensor::copy_(const Tensor& src) {
  CORTEX_CHECK(src.defined(), "copy_: source tensor is undefined");
  if ((autograd_meta() || src.autograd_meta()) && g_hooks.on_inplace && hooks_on()) g_hooks.on_inplace(*this, src);
  copy_values(*this, src);
  storage()->version++;
  return *this;
}

Tensor& Tensor::fill_(double value) {
  if (!device().is_cpu()) {
    if (void (*fill)(const Tensor&, double) = device_tensor_ops(device().type).fill) {
      if (autograd_meta() && g_hooks.on_inplace && hooks_on()) g_hooks.on_inplace(*this, scalar(value, DType::Float64));
      if (numel() > 0) fill(*this, value);
      storage()->version++;
      return *this;
    }
  }
  return copy_(scalar(value, DType::Float64));
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  const DeviceTensorOps* ops = device().is_cpu() ? nullptr : &device_tensor_ops(device().type);
  if (ops && ops->copy) {
    if (numel() > 0) ops->copy(out, *this);
  } else if (device().is_host_memory()) {
    if (ops && ops->note_fallback) ops->note_fallback("clone", device());
    cpu_copy(out, *this);
  } else {
    if (ops && ops->note_fallback) ops->note_fallback("clone", device());
    Tensor host = plain(cuda_view_to_host(*this)).contiguous();
    copy_bytes(out, host);
  }
  if (autograd_meta() && g_hooks.on_copy && hooks_on()) g_hooks.on_copy(*this, out);
  return out;
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  Tensor out = empty(shape(), dt, device());
  copy_values(out, *this);
  if (autograd_meta() && g_hooks.on_copy && hooks_on()) g_hooks.on_copy(*this, out);
  return out;
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  if (dev.is_cuda()) CORTEX_CHECK(cuda::built_with_cuda(), "to(", dev.str(), "): cortexgrad was built without CUDA");
  // src: the values, contiguous, in host memory (a fresh CPU copy when they came from CUDA).
  const bool from_cuda = device().is_cuda();
  Tensor src = from_cuda ? cuda_view_to_host(*this).contiguous() : plain(*this).contiguous();
  Tensor out = src;
  // Every move but CUDA -> CPU needs new storage on dev: between CPU and the emulated device that
  // is one memcpy (a tensor never shares storage with a tensor on another device).
  if (!(from_cuda && dev.is_cpu())) {
    out = empty(shape(), dtype(), dev);
    copy_bytes(out, src);
  }
  if (autograd_meta() && g_hooks.on_copy && hooks_on()) g_hooks.on_copy(*this, out);
  return out;
}

double Tensor::item() const {
  CORTEX_CHECK(numel() == 1, "item: expected a tensor with one element, found shape ", shape_str(shape()));
  return at(Shape(dim(), 0));
}

double Tensor::at(const Shape& index) const {
  CORTEX_CHECK(static_cast<int64_t>(index.size()) == dim(), "at: expected ", dim(), " indices, found ",
               index.size());
  int64_t off = 0;
  for (int64_t d = 0; d < dim(); ++d) {
    CORTEX_CHECK(index[d] >= 0 && index[d] < shape()[d], "at: index ", shape_str(index),
                 " out of range for shape ", shape_str(shape()));
    off += index[d] * strides()[d];
  }
  if (device().is_cuda()) {
    Tensor one(storage(), {}, {}, offset() + off, dtype());
    return one.to(Device::cpu()).at({});
  }
  return dispatch(dtype(), [&](auto t) {
    using T = decltype(t);
    return convert<double>(static_cast<const T*>(raw_data())[off]);
  });
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = to(Device::cpu()).to(dtype_of<T>()).contiguous();
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

// ---------------------------------------------------------------- creation

Tensor empty(const Shape& shape, DType dtype, Device device) {
  const int64_t n = shape_numel(shape);
  const size_t es = dtype_size(dtype);
  CORTEX_CHECK(n <= static_cast<int64_t>(std::numeric_limits<int64_t>::max() / static_cast<int64_t>(es)),
               "empty: shape ", shape_str(shape), " is too large");
  return Tensor(Storage::allocate(static_cast<size_t>(n) * es, device), shape, contiguous_strides(shape), 0, dtype);
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  if (!device.is_cpu()) {
    const DeviceTensorOps& ops = device_tensor_ops(device.type);
    if (ops.fill) {
      Tensor out = empty(shape, dtype, device);
      if (out.numel() > 0) ops.fill(out, value);
      return out;
    }
    if (ops.note_fallback) ops.note_fallback("full", device);
  }
  Tensor host = empty(shape, dtype, Device::cpu());
  const int64_t n = host.numel();
  dispatch(dtype, [&](auto t) {
    using T = decltype(t);
    T v = convert<T>(value);
    T* p = static_cast<T*>(host.raw_data());
    std::fill(p, p + n, v);
  });
  return host.to(device);
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }

Tensor arange(double start, double stop, double step, DType dtype, Device device) {
  CORTEX_CHECK(step != 0 && std::isfinite(start) && std::isfinite(stop) && std::isfinite(step),
               "arange: expected finite start/stop and a non-zero step, found ", start, ", ", stop, ", ", step);
  const int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((stop - start) / step)));
  if (!device.is_cpu()) {
    const DeviceTensorOps& ops = device_tensor_ops(device.type);
    if (ops.arange) {
      Tensor out = empty({n}, dtype, device);
      if (n > 0) ops.arange(out, start, step);
      return out;
    }
    if (ops.note_fallback) ops.note_fallback("arange", device);
  }
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = arange_value(start, step, i);
  return from_vector(v, {n}, dtype, device);
}

Tensor linspace(double start, double stop, int64_t steps, DType dtype, Device device) {
  CORTEX_CHECK(steps >= 0, "linspace: steps must be >= 0, found ", steps);
  if (!device.is_cpu()) {
    const DeviceTensorOps& ops = device_tensor_ops(device.type);
    if (ops.linspace) {
      Tensor out = empty({steps}, dtype, device);
      if (steps > 0) ops.linspace(out, start, stop);
      return out;
    }
    if (ops.note_fallback) ops.note_fallback("linspace", device);
  }
  std::vector<double> v(steps);
  for (int64_t i = 0; i < steps; ++i) v[i] = linspace_value(start, stop, steps, i);
  return from_vector(v, {steps}, dtype, device);
}

Tensor eye(int64_t n, int64_t m, DType dtype, Device device) {
  if (m < 0) m = n;
  CORTEX_CHECK(n >= 0, "eye: n must be >= 0, found ", n);
  if (!device.is_cpu()) {
    const DeviceTensorOps& ops = device_tensor_ops(device.type);
    if (ops.fill) {
      // zeros and the diagonal's fill_ both run the device fill.
      Tensor t = zeros({n, m}, dtype, device);
      t.diagonal().fill_(1.0);
      t.storage()->version = 0;
      return t;
    }
    if (ops.note_fallback) ops.note_fallback("eye", device);
  }
  Tensor t = zeros({n, m}, dtype, Device::cpu());
  t.diagonal().fill_(1.0);
  t.storage()->version = 0;
  return t.to(device);
}

template <class T>
Tensor from_vector(const std::vector<T>& values, Shape shape, DType dtype, Device device) {
  CORTEX_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()), "from_vector: ", values.size(),
               " values do not fill shape ", shape_str(shape));
  Tensor host = empty(shape, dtype, Device::cpu());
  dispatch(dtype, [&](auto t) {
    using D = decltype(t);
    D* p = static_cast<D*>(host.raw_data());
    for (size_t i = 0; i < values.size(); ++i) p[i] = convert<D>(values[i]);
  });
  return host.to(device);
}
template Tensor from_vector<float>(const std::vector<float>&, Shape, DType, Device);
template Tensor from_vector<double>(const std::vector<double>&, Shape, DType, Device);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, Shape, DType, Device);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, Shape, DType, Device);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, Shape, DType, Device);

// ---------------------------------------------------------------- printing

namespace {
void print_rec(std::ostream& os, const Tensor& t, std::vector<int64_t>& idx, int64_t d, int64_t maxn,
               int indent, bool is_float) {
  const int64_t n = t.shape()[d];
  os << "[";
  const bool summarize = n > maxn;
  const int64_t half = maxn / 2;
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && i == half) {
      os << (d + 1 == t.dim() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - half;
    }
    idx[d] = i;
    if (d + 1 == t.dim()) {
      const double v = t.at(idx);
      if (is_float) os << std::setw(10) << std::setprecision(4) << std::fixed << v;
      else os << static_cast<int64_t>(v);
    } else {
      print_rec(os, t, idx, d + 1, maxn, indent + 1, is_float);
    }
    if (i + 1 < n) os << (d + 1 == t.dim() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << "]";
}
}  // namespace

std::string Tensor::str(int64_t max_per_dim) const {
  if (!defined()) return "tensor(undefined)";
  std::ostringstream os;
  os << "tensor(";
  Tensor host = to(Device::cpu());
  if (dim() == 0) {
    os << host.item();
  } else if (numel() == 0) {
    os << "[]";
  } else {
    std::vector<int64_t> idx(dim(), 0);
    print_rec(os, host, idx, 0, max_per_dim, 7, is_floating(dtype()));
  }
  os << ", shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype());
  if (!device().is_cpu()) os << ", device=" << device().str();
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace cortex
