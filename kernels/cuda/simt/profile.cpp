// The memory-traffic profiler of the emulated CUDA device (kernels/cuda/simt/profile.h,
// docs/profile.md). Compiled only in the profiling build (CORTEX_SIMT_PROFILE, clang): every other
// build gets an empty translation unit, and the runtime has no hook.
//
// How it counts. Kernel sources compiled with -fsanitize-coverage=trace-pc-guard,trace-loads,
// trace-stores call __sanitizer_cov_loadN / __sanitizer_cov_storeN(addr) before each load and store.
// The call's return address names the instruction (its call site). While a block runs, each access
// is classified by address:
//   - the runtime's own objects (the threads' index views, the block view, the TLS pointers to
//     them, the packed kernel arguments: CUDA's parameter space) and the fibers' stacks (a CUDA
//     thread's registers and local memory) are ignored;
//   - the block's dynamic shared memory and static TLS (where __shared__ arrays live: thread_local
//     on the host) are shared memory;
//   - everything else is global memory.
// and appended to the running CUDA thread's list. At block end the lists of each warp are grouped
// into warp-level requests: the k-th execution of one instruction by the warp's lanes. A global
// request costs the distinct 32-byte sectors its lanes touch; a shared request is served in phases
// (all 32 lanes for accesses of up to 4 bytes, 16 lanes for 8 bytes, 8 lanes for 16 bytes), each
// phase taking as many wavefronts as the most distinct 4-byte words any one of the 32 banks holds
// (lanes reading the same word share it: a broadcast, not a conflict).
#ifdef CORTEX_SIMT_PROFILE

#include "kernels/cuda/simt/profile.h"

#include <link.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "kernels/cuda/simt/runtime.h"
#include "tensor/error.h"

namespace cortex::simt::profile {
namespace {

struct Range {
  std::uintptr_t lo = 0, hi = 0;  // [lo, hi)
  bool has(std::uintptr_t a) const { return a >= lo && a < hi; }
};
Range range_of(const void* p, std::size_t bytes) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  return Range{a, a + bytes};
}

struct Event {
  std::uintptr_t pc;
  std::uintptr_t addr;
  std::uint8_t size;
  bool store;
  bool shared;
};

// Recording state of the OS thread that runs the launches (recording forces one).
struct Recorder {
  bool on = false;
  double pending_flops = 0;
  bool have_flops = false;
  Range args;                       // the next launch's packed arguments
  std::vector<KernelProfile> done;  // finished launches
  KernelProfile cur;
  bool in_launch = false, in_block = false;
  // The block being run.
  std::uintptr_t threads_base = 0;
  std::size_t thread_stride = 1;
  unsigned nthreads = 0;
  Range threads, block_view, dyn_smem, tl_ptrs[2];
  std::vector<Range> tls;  // static TLS blocks of every module, for this OS thread
  std::vector<std::vector<Event>> events;  // per thread of the block
  // Distinct global bytes of the launch: sector -> mask of its 32 bytes.
  std::unordered_map<std::uintptr_t, std::uint32_t> read_bytes, written_bytes;
};
thread_local Recorder tl_rec;
// Fiber stacks of this OS thread (workers are pooled per OS thread), sorted by address.
thread_local std::vector<Range> tl_stacks;
std::atomic<bool> g_saw{false};

bool on_stack(std::uintptr_t a) {
  const auto& s = tl_stacks;
  auto it = std::upper_bound(s.begin(), s.end(), a, [](std::uintptr_t v, const Range& r) { return v < r.lo; });
  return it != s.begin() && std::prev(it)->has(a);
}

int collect_tls(dl_phdr_info* info, std::size_t, void* out) {
  auto& v = *static_cast<std::vector<Range>*>(out);
  if (info->dlpi_tls_data == nullptr) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_TLS) v.push_back(range_of(info->dlpi_tls_data, info->dlpi_phdr[i].p_memsz));
  return 0;
}

inline void record(const void* p, unsigned size, bool store, std::uintptr_t pc) {
  if (!g_saw.load(std::memory_order_relaxed)) g_saw.store(true, std::memory_order_relaxed);
  Recorder& r = tl_rec;
  if (!r.in_block) return;
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  if (r.threads.has(a) || r.block_view.has(a) || r.tl_ptrs[0].has(a) || r.tl_ptrs[1].has(a) || r.args.has(a) ||
      on_stack(a))
    return;
  bool shared = r.dyn_smem.has(a);
  if (!shared)
    for (const Range& t : r.tls)
      if (t.has(a)) {
        shared = true;
        break;
      }
  const auto t = (reinterpret_cast<std::uintptr_t>(cortex::simt::detail::tl_thread) - r.threads_base) / r.thread_stride;
  if (t >= r.nthreads) return;  // not inside a CUDA thread (cannot happen while a block runs)
  r.events[t].push_back(Event{pc, a, static_cast<std::uint8_t>(size), store, shared});
}

void mark_bytes(std::unordered_map<std::uintptr_t, std::uint32_t>& m, std::uintptr_t a, unsigned size) {
  for (std::uintptr_t b = a; b < a + size; ++b) m[b >> 5] |= 1u << (b & 31);
}

std::uint64_t count_bytes(const std::unordered_map<std::uintptr_t, std::uint32_t>& m) {
  std::uint64_t n = 0;
  for (const auto& [s, mask] : m) n += static_cast<std::uint64_t>(__builtin_popcount(mask));
  return n;
}

struct Lane {
  unsigned lane;
  std::uintptr_t addr;
  unsigned size;
};

// One warp-level global request: its distinct sectors.
void global_request(AccessCounts& c, const std::vector<Lane>& lanes, std::vector<std::uintptr_t>& scratch) {
  scratch.clear();
  for (const Lane& l : lanes) {
    for (std::uintptr_t s = l.addr >> 5; s <= (l.addr + l.size - 1) >> 5; ++s) scratch.push_back(s);
    c.bytes += l.size;
  }
  std::sort(scratch.begin(), scratch.end());
  c.sectors += static_cast<std::uint64_t>(std::unique(scratch.begin(), scratch.end()) - scratch.begin());
  c.accesses += lanes.size();
  c.requests += 1;
}

// One warp-level shared request: wavefronts per phase = the most distinct words in one bank.
void shared_request(AccessCounts& c, const std::vector<Lane>& lanes, std::vector<std::uintptr_t>& scratch) {
  const unsigned size = lanes.front().size;
  const unsigned per_phase = size <= 4 ? 32 : size <= 8 ? 16 : 8;
  for (unsigned phase = 0; phase < 32 / per_phase; ++phase) {
    scratch.clear();
    for (const Lane& l : lanes) {
      if (l.lane / per_phase != phase) continue;
      for (std::uintptr_t w = l.addr >> 2; w <= (l.addr + l.size - 1) >> 2; ++w) scratch.push_back(w);
    }
    if (scratch.empty()) continue;
    // Distinct words, then the most in one bank.
    std::sort(scratch.begin(), scratch.end());
    scratch.erase(std::unique(scratch.begin(), scratch.end()), scratch.end());
    unsigned per_bank[32] = {};
    unsigned most = 0;
    for (std::uintptr_t w : scratch) most = std::max(most, ++per_bank[w & 31]);
    c.wavefronts += most;
    c.ideal_wavefronts += 1;
    c.max_ways = std::max<std::uint64_t>(c.max_ways, most);
  }
  for (const Lane& l : lanes) c.bytes += l.size;
  c.accesses += lanes.size();
  c.requests += 1;
}

struct KeyHash {
  std::size_t operator()(const std::pair<std::uintptr_t, std::uint64_t>& k) const {
    return std::hash<std::uintptr_t>()(k.first * 0x9E3779B97F4A7C15ull ^ k.second);
  }
};

// Groups the block's accesses into warp-level requests and counts them.
void analyse_block(Recorder& r) {
  std::unordered_map<std::uintptr_t, std::uint64_t> executed;  // per lane: pc -> executions so far
  std::unordered_map<std::pair<std::uintptr_t, std::uint64_t>, std::size_t, KeyHash> index;
  struct Group {
    bool store, shared;
    std::vector<Lane> lanes;
  };
  std::vector<Group> groups;
  std::vector<std::uintptr_t> scratch;
  for (unsigned w0 = 0; w0 < r.nthreads; w0 += 32) {
    index.clear();
    groups.clear();
    for (unsigned t = w0; t < std::min(w0 + 32, r.nthreads); ++t) {
      executed.clear();
      for (const Event& e : r.events[t]) {
        // The same instruction may reach shared or global memory (a generic pointer): separate
        // requests, as the GPU's generic loads split them.
        const std::uintptr_t pc = e.pc * 2 + (e.shared ? 1 : 0);
        const std::uint64_t k = executed[pc]++;
        auto [it, fresh] = index.try_emplace({pc, k}, groups.size());
        if (fresh) groups.push_back(Group{e.store, e.shared, {}});
        groups[it->second].lanes.push_back(Lane{t - w0, e.addr, e.size});
        if (!e.shared) mark_bytes(e.store ? r.written_bytes : r.read_bytes, e.addr, e.size);
      }
    }
    for (const Group& g : groups) {
      if (g.shared)
        shared_request(g.store ? r.cur.shared_store : r.cur.shared_load, g.lanes, scratch);
      else
        global_request(g.store ? r.cur.global_store : r.cur.global_load, g.lanes, scratch);
    }
  }
}

std::string human(double v, const char* unit) {
  const char* prefix[] = {"", "k", "M", "G", "T", "P"};
  int i = 0;
  while (v >= 1000 && i < 5) v /= 1000, ++i;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g %s%s", v, prefix[i], unit);
  return buf;
}

std::string seconds(double s) {
  char buf[64];
  if (s >= 1e-3) std::snprintf(buf, sizeof buf, "%.3g ms", s * 1e3);
  else std::snprintf(buf, sizeof buf, "%.3g us", s * 1e6);
  return buf;
}

}  // namespace

// ---- the GPU table. Peak FP32 is the non-tensor-core FMA rate (2 FLOPs per FMA).
// H100 SXM5: 67 TFLOP/s FP32 and 3.35 TB/s HBM3: NVIDIA H100 Tensor Core GPU datasheet, "H100 SXM"
//   column (https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet);
//   50 MB L2 and 132 SMs of 128 FP32 lanes: NVIDIA H100 Tensor Core GPU Architecture whitepaper
//   ("H100 SXM5", https://resources.nvidia.com/en-us-tensor-core/gtc22-whitepaper-hopper).
// H200 SXM: 67 TFLOP/s FP32 and 4.8 TB/s HBM3e: NVIDIA H200 Tensor Core GPU datasheet / product page,
//   "H200 SXM" column (https://www.nvidia.com/en-us/data-center/h200/); the same GH100 die as H100 SXM5
//   (same FP32 peak, hence the same 132 SMs and clock), so 50 MB L2 as in the Hopper whitepaper above.
// Shared memory: 32 banks of 4 bytes, each serving one 32-bit word per clock (CUDA C++ Programming
//   Guide, "Shared Memory" of compute capability 5.x and later), i.e. one wavefront per clock per SM.
const Gpu& gpu(const std::string& name) {
  static const std::vector<Gpu> table = {
      {"h100", 67e12, 3.35e12, 50e6, 132},
      {"h200", 67e12, 4.8e12, 50e6, 132},
  };
  for (const Gpu& g : table)
    if (g.name == name) return g;
  throw Error("profile: expected a GPU name h100 or h200, found \"" + name + "\"");
}

std::vector<std::string> gpu_names() { return {"h100", "h200"}; }

Roofline roofline(const KernelProfile& p, const Gpu& g) {
  Roofline r;
  const double per_clock = static_cast<double>(g.sms) * g.clock_hz();
  r.compute_s = p.flops / g.fp32_flops;
  r.compulsory_s = static_cast<double>(p.distinct_bytes) / g.dram_bytes_s;
  const double sectors = static_cast<double>(p.global_load.sectors + p.global_store.sectors);
  r.sectors_s = 32.0 * sectors / g.dram_bytes_s;
  r.fits_l2 = static_cast<double>(p.distinct_bytes) <= g.l2_bytes;
  r.dram_s = r.fits_l2 ? r.compulsory_s : r.sectors_s;
  r.shared_s = static_cast<double>(p.shared_load.wavefronts + p.shared_store.wavefronts) / per_clock;
  r.l1_s = sectors / (4.0 * per_clock);
  const std::pair<double, const char*> terms[] = {
      {r.compute_s, "compute"}, {r.dram_s, "dram"}, {r.shared_s, "shared"}, {r.l1_s, "l1"}};
  for (const auto& [t, name] : terms)
    if (t >= r.bound_s) r.bound_s = t, r.limiter = name;
  r.intensity = p.distinct_bytes ? p.flops / static_cast<double>(p.distinct_bytes) : 0;
  r.ridge = g.fp32_flops / g.dram_bytes_s;
  return r;
}

std::string format(const KernelProfile& p, const Gpu& g) {
  std::ostringstream o;
  char line[256];
  o << "kernel " << p.kernel << "  grid (" << p.grid.x << "," << p.grid.y << "," << p.grid.z << ")  block ("
    << p.block.x << "," << p.block.y << "," << p.block.z << ")  dynamic smem " << p.dynamic_smem_bytes << " B  ("
    << p.blocks << " blocks, " << p.threads << " threads)\n";
  // useful: the requested bytes over the bytes of the sectors moved (Nsight's sector efficiency).
  std::snprintf(line, sizeof line, "  %-14s %12s %12s %14s %12s %10s %10s\n", "", "requests", "lane access",
                "bytes", "sectors", "sect/req", "useful %");
  o << line;
  auto grow = [&](const char* name, const AccessCounts& c) {
    std::snprintf(line, sizeof line, "  %-14s %12llu %12llu %14llu %12llu %10.2f %10.1f\n", name,
                  static_cast<unsigned long long>(c.requests), static_cast<unsigned long long>(c.accesses),
                  static_cast<unsigned long long>(c.bytes), static_cast<unsigned long long>(c.sectors),
                  c.requests ? static_cast<double>(c.sectors) / static_cast<double>(c.requests) : 0.0,
                  c.sectors ? 100.0 * static_cast<double>(c.bytes) / (32.0 * static_cast<double>(c.sectors)) : 0.0);
    o << line;
  };
  grow("global load", p.global_load);
  grow("global store", p.global_store);
  std::snprintf(line, sizeof line, "  %-14s %12s %12s %14s %12s %10s %10s\n", "", "requests", "lane access",
                "bytes", "wavefronts", "conflicts", "max ways");
  o << line;
  auto srow = [&](const char* name, const AccessCounts& c) {
    std::snprintf(line, sizeof line, "  %-14s %12llu %12llu %14llu %12llu %10llu %10llu\n", name,
                  static_cast<unsigned long long>(c.requests), static_cast<unsigned long long>(c.accesses),
                  static_cast<unsigned long long>(c.bytes), static_cast<unsigned long long>(c.wavefronts),
                  static_cast<unsigned long long>(c.conflicts()), static_cast<unsigned long long>(c.max_ways));
    o << line;
  };
  srow("shared load", p.shared_load);
  srow("shared store", p.shared_store);
  o << "  distinct global bytes: " << p.distinct_bytes << " (read " << p.distinct_read_bytes << ", written "
    << p.distinct_written_bytes << ")\n";
  o << "  barriers (per block, summed): " << p.barriers << "   shuffles (per warp, summed): " << p.shuffles
    << "   other warp ops: " << p.warp_votes << "\n";
  o << "  declared FLOPs: " << (p.flops > 0 ? human(p.flops, "FLOP") : std::string("none declared")) << "\n";
  const Roofline r = roofline(p, g);
  o << "  ESTIMATE for " << g.name << " (roofline from these counts; no latency, occupancy or cache-hit model):\n";
  std::snprintf(line, sizeof line, "    compute %s (%s/s); DRAM %s compulsory, %s if every sector came from DRAM\n",
                seconds(r.compute_s).c_str(), human(g.fp32_flops, "FLOP").c_str(), seconds(r.compulsory_s).c_str(),
                seconds(r.sectors_s).c_str());
  o << line;
  std::snprintf(line, sizeof line, "    shared wavefronts %s (1 per clock per SM); L1 sectors %s (4 per clock per SM)\n",
                seconds(r.shared_s).c_str(), seconds(r.l1_s).c_str());
  o << line;
  std::snprintf(line, sizeof line,
                "    intensity %.3g FLOP/B (ridge %.3g); distinct bytes %s L2 (%s); estimate %s, %s-bound\n",
                r.intensity, r.ridge, r.fits_l2 ? "fit" : "exceed", human(g.l2_bytes, "B").c_str(),
                seconds(r.bound_s).c_str(), r.limiter);
  o << line;
  return o.str();
}

void start() {
  Recorder& r = tl_rec;
  CORTEX_CHECK(!r.on, "profile::start: recording is already on (call stop first)");
  r.on = true;
  r.done.clear();
}

std::vector<KernelProfile> stop() {
  Recorder& r = tl_rec;
  CORTEX_CHECK(r.on, "profile::stop: recording is off (call start first)");
  r.on = false;
  r.have_flops = false;
  return std::move(r.done);
}

void declare_flops(double flops) {
  CORTEX_CHECK(flops >= 0, "profile::declare_flops: expected a FLOP count >= 0, found ", flops);
  tl_rec.pending_flops = flops;
  tl_rec.have_flops = true;
}

bool saw_instrumented_code() { return g_saw.load(); }

namespace detail {

bool active() { return tl_rec.on; }

void kernel_args(const void* p, std::size_t bytes) { tl_rec.args = range_of(p, bytes); }

void launch_begin(const char* kernel, dim3 grid, dim3 block, std::size_t smem_bytes) {
  Recorder& r = tl_rec;
  if (!r.on) return;
  r.cur = KernelProfile{};
  r.cur.kernel = kernel;
  r.cur.grid = grid;
  r.cur.block = block;
  r.cur.dynamic_smem_bytes = smem_bytes;
  r.cur.flops = r.have_flops ? r.pending_flops : 0;
  r.have_flops = false;
  r.read_bytes.clear();
  r.written_bytes.clear();
  r.tls.clear();
  dl_iterate_phdr(&collect_tls, &r.tls);
  r.tl_ptrs[0] = range_of(&cortex::simt::detail::tl_thread, sizeof(void*));
  r.tl_ptrs[1] = range_of(&cortex::simt::detail::tl_block, sizeof(void*));
  r.in_launch = true;
}

void launch_end() {
  Recorder& r = tl_rec;
  r.args = Range{};
  if (!r.in_launch) return;
  r.in_launch = false;
  r.cur.distinct_read_bytes = count_bytes(r.read_bytes);
  r.cur.distinct_written_bytes = count_bytes(r.written_bytes);
  auto all = r.read_bytes;
  for (const auto& [s, mask] : r.written_bytes) all[s] |= mask;
  r.cur.distinct_bytes = count_bytes(all);
  r.done.push_back(std::move(r.cur));
}

void block_begin(const void* threads, std::size_t thread_stride, unsigned nthreads, const void* block_view,
                 std::size_t block_view_bytes, const void* dynamic_smem, std::size_t dynamic_smem_bytes) {
  Recorder& r = tl_rec;
  if (!r.in_launch) return;
  r.threads_base = reinterpret_cast<std::uintptr_t>(threads);
  r.thread_stride = thread_stride;
  r.nthreads = nthreads;
  r.threads = range_of(threads, thread_stride * nthreads);
  r.block_view = range_of(block_view, block_view_bytes);
  r.dyn_smem = range_of(dynamic_smem, dynamic_smem_bytes);
  if (r.events.size() < nthreads) r.events.resize(nthreads);
  for (unsigned t = 0; t < nthreads; ++t) r.events[t].clear();
  r.in_block = true;
  r.cur.blocks += 1;
  r.cur.threads += nthreads;
}

void block_end() {
  Recorder& r = tl_rec;
  if (!r.in_block) return;
  r.in_block = false;
  analyse_block(r);
}

void fiber_stack(const void* lo, std::size_t bytes) {
  const Range s = range_of(lo, bytes);
  auto& v = tl_stacks;
  v.insert(std::upper_bound(v.begin(), v.end(), s, [](const Range& a, const Range& b) { return a.lo < b.lo; }), s);
}

void barrier_completed() {
  if (tl_rec.in_block) tl_rec.cur.barriers += 1;
}
void shuffle_completed() {
  if (tl_rec.in_block) tl_rec.cur.shuffles += 1;
}
void warp_vote_completed() {
  if (tl_rec.in_block) tl_rec.cur.warp_votes += 1;
}

}  // namespace detail
}  // namespace cortex::simt::profile

// ---- the callbacks of -fsanitize-coverage (clang's SanitizerCoverage). trace-loads/trace-stores
// need a coverage kind; trace-pc-guard's callbacks do nothing here.
#define CORTEX_PC reinterpret_cast<std::uintptr_t>(__builtin_return_address(0))
extern "C" {
void __sanitizer_cov_trace_pc_guard_init(std::uint32_t*, std::uint32_t*) {}
void __sanitizer_cov_trace_pc_guard(std::uint32_t*) {}
void __sanitizer_cov_load1(void* p) { cortex::simt::profile::record(p, 1, false, CORTEX_PC); }
void __sanitizer_cov_load2(void* p) { cortex::simt::profile::record(p, 2, false, CORTEX_PC); }
void __sanitizer_cov_load4(void* p) { cortex::simt::profile::record(p, 4, false, CORTEX_PC); }
void __sanitizer_cov_load8(void* p) { cortex::simt::profile::record(p, 8, false, CORTEX_PC); }
void __sanitizer_cov_load16(void* p) { cortex::simt::profile::record(p, 16, false, CORTEX_PC); }
void __sanitizer_cov_store1(void* p) { cortex::simt::profile::record(p, 1, true, CORTEX_PC); }
void __sanitizer_cov_store2(void* p) { cortex::simt::profile::record(p, 2, true, CORTEX_PC); }
void __sanitizer_cov_store4(void* p) { cortex::simt::profile::record(p, 4, true, CORTEX_PC); }
void __sanitizer_cov_store8(void* p) { cortex::simt::profile::record(p, 8, true, CORTEX_PC); }
void __sanitizer_cov_store16(void* p) { cortex::simt::profile::record(p, 16, true, CORTEX_PC); }
}
#undef CORTEX_PC

#endif  // CORTEX_SIMT_PROFILE
