// Tensor: a refcounted handle to (storage, shape, strides, offset, dtype). Copies of a Tensor share
// everything (like PyTorch's Tensor); views share the storage. Strides and offset count elements.
#pragma once
#include <atomic>
#include <functional>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/error.h"

namespace cortex {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& s);     // throws on negative sizes or overflow of int64
Shape contiguous_strides(const Shape& s);
// NumPy broadcasting of two shapes; `op` names the caller in the error.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op = "broadcast");
// Maps a possibly negative dim into [0, ndim); `op` names the caller in the error.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op = "dim");

// A block of memory on one device. `owner` keeps it alive: a malloc'd block, an mmap'd file, a
// CUDA allocation. `version` counts in-place writes so autograd can refuse stale saved tensors.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  std::shared_ptr<void> owner;
  std::atomic<uint64_t> version{0};

  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device);
  // Wraps memory someone else owns (an mmap'd safetensors file); `owner` keeps it alive.
  static std::shared_ptr<Storage> wrap(void* data, size_t nbytes, Device device, std::shared_ptr<void> owner);
};

struct AutogradMeta;  // defined by autograd/; the tensor layer only carries the pointer

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;
  int64_t offset = 0;
  DType dtype = DType::Float32;
  std::shared_ptr<AutogradMeta> autograd;
};

class Tensor {
 public:
  Tensor() = default;  // undefined tensor (defined() == false)
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
  // A tensor over existing storage (used by views and loaders).
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;    // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t offset() const { return impl().offset; }
  int64_t numel() const;
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device; }
  size_t element_size() const { return dtype_size(dtype()); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }

  // Pointer to the first element (storage + offset). data<T>() checks that T matches the dtype.
  void* raw_data() const;
  template <class T> T* data() const {
    CORTEX_CHECK(dtype_of<T>() == dtype(), "Tensor::data: requested ", dtype_name(dtype_of<T>()),
                 " but the tensor is ", dtype_name(dtype()));
    return static_cast<T*>(raw_data());
  }

  // ---- views: no copy, share storage ----
  Tensor view(Shape shape) const;      // needs compatible strides; one -1 allowed
  Tensor reshape(Shape shape) const;   // a view when possible, else a contiguous copy
  Tensor permute(const Shape& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;                    // transpose of a 2-D tensor
  Tensor slice(int64_t dim, int64_t start, int64_t stop, int64_t step = 1) const;  // Python semantics, clamped
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;  // removes dim
  Tensor expand(const Shape& shape) const;          // NumPy broadcast to shape; -1 keeps a size
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;
  Tensor diagonal() const;  // of a 2-D tensor

  // ---- copies ----
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;       // always a new contiguous copy
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  // In place: copies src (broadcast to this shape, converted to this dtype) into this tensor's
  // elements. Bumps the storage version.
  Tensor& copy_(const Tensor& src);
  Tensor& fill_(double value);

  // ---- element access (CPU; for tests, printing and small host-side logic) ----
  double item() const;  // one-element tensor as double
  template <class T> T item() const { return static_cast<T>(item()); }
  double at(const Shape& index) const;  // element as double
  template <class T> std::vector<T> to_vector() const;  // contiguous CPU copy, converted to T

  std::string str(int64_t max_per_dim = 6) const;  // readable printing, like PyTorch's repr

  // Autograd bookkeeping lives here so that every copy of the handle sees it.
  std::shared_ptr<AutogradMeta>& autograd_meta() const { return impl().autograd; }
  TensorImpl* impl_ptr() const { return impl_.get(); }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  TensorImpl& impl() const {
    CORTEX_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- creation ----
Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor scalar(double value, DType dtype = DType::Float32, Device device = Device::cpu());  // 0-dim
Tensor arange(double start, double stop, double step = 1, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor linspace(double start, double stop, int64_t steps, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor eye(int64_t n, int64_t m = -1, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
// From host values (any arithmetic T), converted to dtype, with the given shape ({} is 0-dim).
template <class T>
Tensor from_vector(const std::vector<T>& values, Shape shape, DType dtype = dtype_of<T>(),
                   Device device = Device::cpu());
// A 1-D tensor of the values.
template <class T>
Tensor from_vector(const std::vector<T>& values) {
  return from_vector(values, Shape{static_cast<int64_t>(values.size())}, dtype_of<T>(), Device::cpu());
}

// ---- autograd hooks ----
// The tensor layer knows nothing of autograd, but views and copies made by Tensor methods must
// join the tape (x.reshape(...) on a tensor that requires grad must not silently drop the
// gradient). autograd/ installs these hooks; they are called only for tensors that carry
// autograd state (TensorImpl::autograd != null), so plain tensors pay nothing.
// `reapply` re-applies the same view to any tensor of the base's shape.
using ViewFn = std::function<Tensor(const Tensor&)>;
struct DerivedHooks {
  void (*on_view)(const Tensor& base, const Tensor& view, const ViewFn& reapply) = nullptr;
  void (*on_copy)(const Tensor& src, const Tensor& out) = nullptr;      // clone, to(dtype), to(device)
  void (*on_inplace)(const Tensor& dst, const Tensor& src) = nullptr;   // copy_, fill_: may refuse
};
void set_derived_hooks(const DerivedHooks& hooks);
// While one of these lives on a thread, the hooks are not called there: the views and copies a
// kernel makes internally are plumbing, not part of the differentiated computation.
class HooksOff {
 public:
  HooksOff();
  ~HooksOff();
  HooksOff(const HooksOff&) = delete;
  HooksOff& operator=(const HooksOff&) = delete;
};

// Bytes-level copy between two contiguous tensors of the same dtype and numel on any devices.
void copy_bytes(const Tensor& dst, const Tensor& src);

}  // namespace cortex
