// The backend tables of kernels/dispatch.h, and the fallback counters.
//
// How to add a kernel to a backend:
//   CUDA and the emulated device: write kernels/cuda/<family>.cu, defining
//     cortex::kernels::cuda::<op> (nvcc build) and cortex::kernels::emu::<op> (host build for the
//     SIMT emulator) with the signature of the op's line in kernels/ops.def, and add ONE line,
//     CORTEX_CUDA_OP(<family>, <op>), to kernels/cuda/ops.def. That line fills the op's slot in
//     the emu table and, in CUDA builds, the cuda table below. No entry (kernels/<family>.cpp) and
//     no other line changes: the entries already call call(&Table::<op>, ...).
//   CPU: every op of kernels/ops.def has its CPU kernel cpu::<op> (kernels/cpu/<family>.h); the
//     CPU table is filled from that list, so a missing one does not link.
//   A vendor-only op on CUDA (cuSOLVER's eigensolvers): one line in kernels/cuda/vendor_ops.def
//     fills the cuda table alone; emu keeps the CPU kernel, counted as a fallback.
//   A new op: one line in kernels/ops.def, its CPU kernel, and its entry.
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string_view>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/fft.h"
#include "kernels/cpu/index.h"
#include "kernels/cpu/linalg.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/nn.h"
#include "kernels/cpu/optim.h"
#include "kernels/cpu/pool.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cpu/sample.h"
#include "kernels/cpu/spectral.h"
#include "kernels/determinism.h"
#include "kernels/dispatch.h"

namespace cortex::kernels {
namespace {

// Whether this build compiles the family's kernels. A CORTEX_ONLY developer build (CMakeLists.txt)
// compiles some families only; kernels/CMakeLists.txt then names them in CORTEX_BUILT_FAMILIES
// (",elementwise,index,") and the others' slots stay null. Naming a function in a discarded
// `if constexpr` branch does not need its definition, so such a build links.
constexpr bool built(std::string_view family) {
#ifdef CORTEX_BUILT_FAMILIES
  const std::string_view list = CORTEX_BUILT_FAMILIES;  // ",elementwise,index,"
  for (size_t at = list.find(family); at != std::string_view::npos; at = list.find(family, at + 1))
    if (at > 0 && list[at - 1] == ',' && at + family.size() < list.size() && list[at + family.size()] == ',')
      return true;
  return false;
#else
  (void)family;
  return true;
#endif
}

}  // namespace

const Table& cpu_table() {
  static const Table table = [] {
    Table t;
#define CORTEX_OP(family, name, ret, params) \
  if constexpr (built(#family)) t.name = &cpu::name;
#include "kernels/ops.def"
#undef CORTEX_OP
    return t;
  }();
  return table;
}

const Table& emu_table() {
  static const Table table = [] {
    Table t;
#define CORTEX_CUDA_OP(family, name) \
  if constexpr (built(#family)) t.name = &emu::name;
#include "kernels/cuda/ops.def"
#undef CORTEX_CUDA_OP
    return t;
  }();
  return table;
}

const Table& cuda_table() {
  static const Table table = [] {
    Table t;
#if CORTEX_WITH_CUDA
#define CORTEX_CUDA_OP(family, name) \
  if constexpr (built(#family)) t.name = &cuda::name;
#include "kernels/cuda/ops.def"
#undef CORTEX_CUDA_OP
#define CORTEX_CUDA_VENDOR_OP(family, name) \
  if constexpr (built(#family)) t.name = &cuda::name;
#include "kernels/cuda/vendor_ops.def"
#undef CORTEX_CUDA_VENDOR_OP
#endif
    return t;
  }();
  return table;
}

const Table& table_for(Device device) {
  switch (device.type) {
    case Device::Type::CPU: return cpu_table();
    case Device::Type::EMU: return emu_table();
    case Device::Type::CUDA: return cuda_table();
  }
  throw Error("table_for: unknown device type " + std::to_string(static_cast<int>(device.type)));
}

std::vector<OpInfo> op_list() {
  std::vector<OpInfo> ops;
#define CORTEX_OP(family, name, ret, params) \
  ops.push_back({#family, #name, cpu_table().name != nullptr, emu_table().name != nullptr, cuda_table().name != nullptr});
#include "kernels/ops.def"
#undef CORTEX_OP
  return ops;
}

// ---------------------------------------------------------------- fallbacks

namespace {

std::mutex g_stats_mutex;
std::map<std::string, int64_t> g_stats;
// -1: not decided yet (read CORTEX_STRICT_DEVICE on first use); 0 or 1 after.
std::atomic<int> g_strict{-1};

}  // namespace

std::map<std::string, int64_t> fallback_stats() {
  std::lock_guard<std::mutex> lock(g_stats_mutex);
  return g_stats;
}

void reset_fallback_stats() {
  std::lock_guard<std::mutex> lock(g_stats_mutex);
  g_stats.clear();
}

namespace {
// A process-wide on/off switch: set by its setter, else read once from the environment variable
// `name` (unset or 0: off, 1: on, anything else an error). -1 in `flag`: not decided yet.
bool env_switch(std::atomic<int>& flag, const char* name) {
  int s = flag.load();
  if (s < 0) {
    const char* env = std::getenv(name);
    const std::string v = env ? env : "";
    CORTEX_CHECK(v.empty() || v == "0" || v == "1", name, ": expected 0 or 1, found '", v, "'");
    int expected = -1;
    flag.compare_exchange_strong(expected, v == "1" ? 1 : 0);
    s = flag.load();
  }
  return s == 1;
}

}  // namespace

void set_strict_device(bool strict) { g_strict = strict ? 1 : 0; }

bool strict_device() { return env_switch(g_strict, "CORTEX_STRICT_DEVICE"); }

namespace {
std::atomic<int> g_deterministic{-1};  // -1: follow CORTEX_DETERMINISTIC
}  // namespace

void set_deterministic(bool on) { g_deterministic = on ? 1 : 0; }

bool deterministic() { return env_switch(g_deterministic, "CORTEX_DETERMINISTIC"); }

void detail::note_fallback(const char* op, Device device) {
  CORTEX_CHECK(!strict_device(), op, ": no ", device.str(), " kernel, and strict device mode ",
               "(CORTEX_STRICT_DEVICE=1) refuses to run it on the host");
  std::lock_guard<std::mutex> lock(g_stats_mutex);
  ++g_stats[op];
}

}  // namespace cortex::kernels
