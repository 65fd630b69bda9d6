// How a kernel entry picks its backend: by table (ARCHITECTURE.md: the device of the inputs decides).
//
// Every kernel op is one line of kernels/ops.def. A Table holds one function pointer per op; there
// is one table per backend (kernels/table.cpp):
//   cpu   every op (kernels/cpu/<family>.cpp);
//   emu   the emulated CUDA device: the ops listed in kernels/cuda/ops.def, their CUDA kernel
//         sources built by the host compiler;
//   cuda  the same ops built by nvcc (CUDA builds).
// A null slot means the backend lacks the op. An entry (kernels/<family>.cpp) checks its
// arguments, then makes ONE call, call(&Table::<op>, "<name>", args...), which finds the
// device shared by every tensor argument (an error names both devices when they differ) and runs
// that device's kernel. When the slot is null it falls back to the host CPU kernel:
//   emu:  directly on the tensors' host memory (no copies), the results handed back as emu tensors;
//   cuda: inputs copied to the host, results copied back (an in-place op, one that returns void,
//         gets its Tensor& arguments copied back instead).
// Every fallback is counted per op (fallback_stats), and refused with a cortex::Error naming the
// op and the device in strict mode (CORTEX_STRICT_DEVICE=1, or set_strict_device(true)), so that
// tests can prove an op really runs on a device.
#pragma once
#include <cstdint>
#include <map>
#include <tuple>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/attention.h"
#include "kernels/conv.h"
#include "kernels/elementwise.h"
#include "kernels/fft.h"
#include "kernels/index.h"
#include "kernels/linalg.h"
#include "kernels/matmul.h"
#include "kernels/nn.h"
#include "kernels/optim.h"
#include "kernels/pool.h"
#include "kernels/reduce.h"
#include "kernels/sample.h"
#include "kernels/spectral.h"
#include "tensor/tensor.h"

namespace cortex::kernels {

// One function pointer per op of kernels/ops.def, null when the backend lacks the op.
struct Table {
#define CORTEX_OP(family, name, ret, params) ret(*name) params = nullptr;
#include "kernels/ops.def"
#undef CORTEX_OP
};

// The backend tables (kernels/table.cpp). table_for(Device::cuda(i)) serves every CUDA device.
const Table& cpu_table();
const Table& emu_table();
const Table& cuda_table();
const Table& table_for(Device device);

// Every op of kernels/ops.def in list order: its family, its name, and whether each backend has it.
struct OpInfo {
  const char* family;
  const char* name;
  bool cpu, emu, cuda;
};
std::vector<OpInfo> op_list();

// Host fallbacks so far, by op name (the name the entry gives: "exp", "sum", "conv2d", ...), for
// every device together. The CLI prints them under --verbose.
std::map<std::string, int64_t> fallback_stats();
void reset_fallback_stats();
// Strict mode: a fallback throws instead of running. Starts as CORTEX_STRICT_DEVICE=1 in the
// environment says (unset or 0: off); set_strict_device overrides it for the whole process.
void set_strict_device(bool strict);
bool strict_device();

namespace detail {

// Counts a fallback of `op` from `device` to the host; throws in strict mode.
void note_fallback(const char* op, Device device);

// ---- the device of the arguments ----
struct DeviceFinder {
  const char* op;
  const Tensor* first = nullptr;
  void see(const Tensor& t) {
    if (!t.defined()) return;
    if (!first) {
      first = &t;
      return;
    }
    CORTEX_CHECK(t.device() == first->device(), op, ": expected all tensors on one device, found ",
                 first->device().str(), " and ", t.device().str());
  }
  void see(const std::vector<Tensor>& ts) {
    for (const Tensor& t : ts) see(t);
  }
  template <class T>
  void see(const T&) {}  // not a tensor
};

// ---- moving arguments to the host and results back ----

// Emulated device: the same host memory seen as CPU tensors (no copy), and the results seen as emu
// tensors. Arguments that share a storage share one alias of it, and a result that is (a view of)
// an argument gets the argument's own storage back.
class EmuOnHost {
 public:
  Tensor arg(const Tensor& t) {
    if (!t.defined()) return t;
    const std::shared_ptr<Storage>& st = t.storage();
    std::shared_ptr<Storage> alias;
    for (const auto& [a, original] : aliases_)
      if (original == st) alias = a;
    if (!alias) {
      alias = Storage::wrap(st->data, st->nbytes, Device::cpu(), st);
      aliases_.emplace_back(alias, st);
    }
    return Tensor(alias, t.shape(), t.strides(), t.offset(), t.dtype());
  }
  std::vector<Tensor> arg(const std::vector<Tensor>& ts) {
    std::vector<Tensor> out;
    out.reserve(ts.size());
    for (const Tensor& t : ts) out.push_back(arg(t));
    return out;
  }
  template <class T>
  const T& arg(const T& v) {
    return v;
  }
  Tensor result(const Tensor& t) const {
    if (!t.defined()) return t;
    std::shared_ptr<Storage> st;
    for (const auto& [alias, original] : aliases_)
      if (alias == t.storage()) st = original;
    if (!st) st = Storage::wrap(t.storage()->data, t.storage()->nbytes, Device::emu(), t.storage());
    return Tensor(st, t.shape(), t.strides(), t.offset(), t.dtype());
  }

 private:
  std::vector<std::pair<std::shared_ptr<Storage>, std::shared_ptr<Storage>>> aliases_;  // (alias, original)
};

// CUDA: inputs copied to the host, results copied back to `device`.
struct CudaOnHost {
  Device device;
  Tensor arg(const Tensor& t) const { return t.defined() ? t.to(Device::cpu()) : t; }
  std::vector<Tensor> arg(const std::vector<Tensor>& ts) const {
    std::vector<Tensor> out;
    out.reserve(ts.size());
    for (const Tensor& t : ts) out.push_back(arg(t));
    return out;
  }
  template <class T>
  const T& arg(const T& v) const {
    return v;
  }
  Tensor result(const Tensor& t) const { return t.defined() ? t.to(device) : t; }
};

// Applies `move.result` to every tensor of a result: a Tensor, or a struct of tensors that says
// which (its for_each_tensor, e.g. kernels::TopK).
template <class R, class Move>
R results_to(R r, const Move& move) {
  if constexpr (std::is_same_v<R, Tensor>) {
    return move.result(r);
  } else {
    r.for_each_tensor([&](Tensor& t) { t = move.result(t); });
    return r;
  }
}

// After a host fallback of an in-place op from CUDA: the arguments the op writes (its Tensor&
// parameters) get the host copy's values back.
template <class P, class H, class A>
void write_back(const H& host, A& arg) {
  if constexpr (std::is_same_v<P, Tensor&>) arg.copy_(host);
}

}  // namespace detail

// The one generic call of the entries: runs op `slot` on the device of the tensor arguments (see
// the top of this file). `name` is the op's name in errors and fallback counts. An op that
// returns void writes into its Tensor& arguments (in-place ops such as adam_step).
template <class R, class... P, class... A>
R call(R (*Table::*slot)(P...), const char* name, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "call: the number of arguments differs from the op's parameters");
  detail::DeviceFinder finder{name};
  (finder.see(args), ...);
  const Device device = finder.first ? finder.first->device() : Device::cpu();
  if (R (*kernel)(P...) = table_for(device).*slot) return kernel(args...);
  R (*host_kernel)(P...) = cpu_table().*slot;
  CORTEX_CHECK(host_kernel != nullptr, name, ": no CPU kernel in the table (kernels/table.cpp)");
  detail::note_fallback(name, device);
  if constexpr (std::is_void_v<R>) {
    // The host kernel writes into host views of the arguments: on emu they alias the arguments'
    // memory; from CUDA they are copies, written back afterwards.
    if (device.is_emu()) {
      detail::EmuOnHost move;
      std::tuple<std::decay_t<decltype(move.arg(args))>...> host(move.arg(args)...);
      std::apply(host_kernel, host);
      return;
    }
    const detail::CudaOnHost move{device};
    std::tuple<std::decay_t<decltype(move.arg(args))>...> host(move.arg(args)...);
    std::apply(host_kernel, host);
    [&]<size_t... I>(std::index_sequence<I...>) {
      (detail::write_back<P>(std::get<I>(host), args), ...);
    }(std::index_sequence_for<A...>{});
    return;
  } else {
    if (device.is_emu()) {
      detail::EmuOnHost move;
      return detail::results_to(host_kernel(move.arg(args)...), move);
    }
    const detail::CudaOnHost move{device};
    return detail::results_to(host_kernel(move.arg(args)...), move);
  }
}

// The kernels that kernels/cuda/ops.def may name, one per op of kernels/ops.def. A kernel file
// defines its op with the qualified name (Tensor cortex::kernels::cuda::unary(...) { ... }), so a
// signature that differs from kernels/ops.def is a compile error, not a silent overload.
namespace emu {
#define CORTEX_OP(family, name, ret, params) ret name params;
#include "kernels/ops.def"
#undef CORTEX_OP
}  // namespace emu
namespace cuda {
#define CORTEX_OP(family, name, ret, params) ret name params;
#include "kernels/ops.def"
#undef CORTEX_OP
}  // namespace cuda

}  // namespace cortex::kernels
