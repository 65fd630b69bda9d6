#include "dist/comm.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <unistd.h>

#ifdef CORTEX_WITH_MPI
#include <mpi.h>
#endif

namespace cortex::dist {
namespace {

int g_rank = 0, g_size = 1;
bool g_started = false;  // this process called MPI_Init
int64_t g_sent = 0, g_received = 0;

// MPI counts are int: large payloads go in pieces of at most 1 GiB.
constexpr size_t kPiece = size_t{1} << 30;

#ifdef CORTEX_WITH_MPI
void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(std::string("dist: ") + what + " failed: " + std::string(msg, static_cast<size_t>(len)));
}

void send_bytes(const char* p, size_t n, int to) {
  uint64_t len = n;
  check_mpi(MPI_Send(&len, 1, MPI_UINT64_T, to, 0, MPI_COMM_WORLD), "MPI_Send");
  for (size_t o = 0; o < n; o += kPiece)
    check_mpi(MPI_Send(p + o, static_cast<int>(std::min(kPiece, n - o)), MPI_BYTE, to, 1, MPI_COMM_WORLD), "MPI_Send");
  g_sent += static_cast<int64_t>(n + sizeof len);
}

std::vector<char> recv_bytes(int from) {
  uint64_t len = 0;
  check_mpi(MPI_Recv(&len, 1, MPI_UINT64_T, from, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv");
  std::vector<char> b(len);
  for (size_t o = 0; o < len; o += kPiece)
    check_mpi(MPI_Recv(b.data() + o, static_cast<int>(std::min<size_t>(kPiece, len - o)), MPI_BYTE, from, 1,
                       MPI_COMM_WORLD, MPI_STATUS_IGNORE),
              "MPI_Recv");
  g_received += static_cast<int64_t>(len + sizeof len);
  return b;
}
#endif

template <class T>
void put(std::vector<char>& b, T v) {
  const char* p = reinterpret_cast<const char*>(&v);
  b.insert(b.end(), p, p + sizeof v);
}
template <class T>
T take(const std::vector<char>& b, size_t& pos) {
  CORTEX_CHECK(pos + sizeof(T) <= b.size(), "dist: unpack: truncated buffer (", b.size(), " bytes)");
  T v;
  std::memcpy(&v, b.data() + pos, sizeof v);
  pos += sizeof v;
  return v;
}

uint64_t binary_hash() {
  std::ifstream f("/proc/self/exe", std::ios::binary);
  CORTEX_CHECK(f, "dist: cannot read /proc/self/exe to compare the ranks' binaries");
  uint64_t h = fnv1a(nullptr, 0);
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h = fnv1a(buf.data(), static_cast<size_t>(f.gcount()), h);
  }
  return h;
}

}  // namespace

Range block(int64_t count, int size, int rank) {
  CORTEX_CHECK(count >= 0 && size > 0 && rank >= 0 && rank < size, "dist::block: expected count >= 0 and 0 <= rank < ",
               "size, found count=", count, ", rank=", rank, ", size=", size);
  return {count * rank / size, count * (rank + 1) / size};
}

std::vector<double> ordered_sum(const std::vector<std::vector<double>>& parts, size_t n) {
  std::vector<double> s(n, 0.0);
  for (size_t k = 0; k < parts.size(); ++k) {
    CORTEX_CHECK(parts[k].size() == n, "dist::ordered_sum: expected parts of ", n, " values, part ", k, " has ",
                 parts[k].size());
    for (size_t i = 0; i < s.size(); ++i) s[i] += parts[k][i];
  }
  return s;
}

uint64_t fnv1a(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

std::vector<char> pack(const std::vector<Tensor>& ts) {
  std::vector<char> b;
  put<uint64_t>(b, ts.size());
  for (const Tensor& t0 : ts) {
    CORTEX_CHECK(t0.defined(), "dist: pack: expected defined tensors, found an undefined one");
    const Tensor t = t0.to(Device::cpu()).contiguous();
    put<int32_t>(b, static_cast<int32_t>(t.dtype()));
    put<uint64_t>(b, static_cast<uint64_t>(t.dim()));
    for (int64_t d = 0; d < t.dim(); ++d) put<int64_t>(b, t.size(d));
    const size_t n = static_cast<size_t>(t.numel()) * t.element_size();
    const char* p = static_cast<const char*>(t.raw_data());
    if (n) b.insert(b.end(), p, p + n);
  }
  return b;
}

void unpack(const std::vector<char>& b, std::vector<Tensor>& out) {
  size_t pos = 0;
  const uint64_t count = take<uint64_t>(b, pos);
  for (uint64_t k = 0; k < count; ++k) {
    const auto dt = static_cast<DType>(take<int32_t>(b, pos));
    const uint64_t nd = take<uint64_t>(b, pos);
    CORTEX_CHECK(nd <= 16, "dist: unpack: expected at most 16 dims, found ", nd);
    Shape shape;
    for (uint64_t d = 0; d < nd; ++d) shape.push_back(take<int64_t>(b, pos));
    Tensor t = empty(shape, dt);
    const size_t n = static_cast<size_t>(t.numel()) * t.element_size();
    CORTEX_CHECK(pos + n <= b.size(), "dist: unpack: truncated buffer (", b.size(), " bytes, need ", pos + n, ")");
    if (n) std::memcpy(t.raw_data(), b.data() + pos, n);
    pos += n;
    out.push_back(t);
  }
  CORTEX_CHECK(pos == b.size(), "dist: unpack: ", b.size() - pos, " bytes left over");
}

bool compiled() {
#ifdef CORTEX_WITH_MPI
  return true;
#else
  return false;
#endif
}

bool launched() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

void init(int argc, char** argv) {
#ifdef CORTEX_WITH_MPI
  if (g_started || !launched()) return;
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) check_mpi(MPI_Init(&argc, &argv), "MPI_Init");
  g_started = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
#else
  (void)argc, (void)argv;
#endif
}

void finalize() {
#ifdef CORTEX_WITH_MPI
  if (g_started) MPI_Finalize();
  g_started = false;
#endif
}

int rank() { return g_rank; }
int size() { return g_size; }

void check_same_job(int argc, char** argv) {
  if (size() == 1) return;
  // Argument hash and binary hash of every rank, on every rank, compared with rank 0's.
  uint64_t mine[2] = {fnv1a(nullptr, 0), binary_hash()};
  for (int i = 0; i < argc; ++i) mine[0] = fnv1a(argv[i], std::strlen(argv[i]) + 1, mine[0]);
  std::vector<char> b(sizeof mine);
  std::memcpy(b.data(), mine, sizeof mine);
  const auto all = gather(b, true);
  for (int r = 1; r < size(); ++r) {
    uint64_t theirs[2];
    std::memcpy(theirs, all[r].data(), sizeof theirs);
    const uint64_t* root = reinterpret_cast<const uint64_t*>(all[0].data());
    CORTEX_CHECK(theirs[1] == root[1], "refused: rank ", r, " runs a different cortex binary from rank 0's ",
                 "(every rank must run the same build)");
    CORTEX_CHECK(theirs[0] == root[0], "refused: rank ", r, " was started with different arguments from rank 0's ",
                 "(every rank must get the same command line)");
  }
}

RankFailed::RankFailed(int r)
    : Error("rank " + std::to_string(r) + " failed (its error is on its own line)"), failed_rank(r) {}

namespace {
bool g_failed = false;  // this rank has told the others it failed: no collective may follow

// The all-reduce every collective starts with (comm.h, "How a failure ends every rank"): the
// highest failed rank + 1, or 0 when none failed.
void agree(bool failed) {
#ifdef CORTEX_WITH_MPI
  if (!g_started || size() == 1) return;
  CORTEX_CHECK(!g_failed, "dist: a collective after this rank failed");
  int mine = failed ? rank() + 1 : 0, worst = 0;
  check_mpi(MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  if (failed) {
    g_failed = true;
    return;
  }
  if (worst) {
    g_failed = true;
    throw RankFailed(worst - 1);
  }
#else
  (void)failed;
#endif
}
}  // namespace

void fail_job(const std::string& message) {
  std::string line = message;
  for (char& c : line)
    if (c == '\n') c = ' ';
  std::fprintf(stderr, "cortex: rank %d: %s\n", rank(), line.c_str());  // one write: ranks share stderr
  std::fflush(stderr);
  if (!g_failed) agree(true);
}

void finish_job() { agree(false); }

void barrier() {
#ifdef CORTEX_WITH_MPI
  // The all-reduce of agree is itself a barrier: no rank leaves it before every rank entered it.
  if (size() > 1) agree(false);
#endif
}

void broadcast(std::vector<char>& bytes, int root) {
#ifdef CORTEX_WITH_MPI
  if (size() == 1) return;
  agree(false);
  uint64_t len = bytes.size();
  check_mpi(MPI_Bcast(&len, 1, MPI_UINT64_T, root, MPI_COMM_WORLD), "MPI_Bcast");
  if (rank() != root) bytes.resize(len);
  for (size_t o = 0; o < len; o += kPiece)
    check_mpi(MPI_Bcast(bytes.data() + o, static_cast<int>(std::min<size_t>(kPiece, len - o)), MPI_BYTE, root,
                        MPI_COMM_WORLD),
              "MPI_Bcast");
  // Counted as if the root sent its bytes to each other rank (what a flat broadcast moves).
  if (rank() == root)
    g_sent += static_cast<int64_t>((len + sizeof len) * static_cast<uint64_t>(size() - 1));
  else
    g_received += static_cast<int64_t>(len + sizeof len);
#else
  (void)bytes, (void)root;
#endif
}

void broadcast(std::vector<Tensor>& ts, int root) {
  if (size() == 1) return;
  std::vector<char> b;
  if (rank() == root) b = pack(ts);
  broadcast(b, root);
  if (rank() != root) {
    ts.clear();
    unpack(b, ts);
  }
}

std::vector<std::vector<char>> gather(const std::vector<char>& mine, bool all) {
  if (size() == 1) return {mine};
  std::vector<std::vector<char>> out;
#ifdef CORTEX_WITH_MPI
  // Rank 0 receives from ranks 1, 2, ... in order; then (all) broadcasts the whole list.
  agree(false);
  if (rank() == 0) {
    out.push_back(mine);
    for (int r = 1; r < size(); ++r) out.push_back(recv_bytes(r));
  } else {
    send_bytes(mine.data(), mine.size(), 0);
  }
  if (all) {
    std::vector<char> joined;
    if (rank() == 0) {
      put<uint64_t>(joined, out.size());
      for (const auto& b : out) {
        put<uint64_t>(joined, b.size());
        joined.insert(joined.end(), b.begin(), b.end());
      }
    }
    broadcast(joined, 0);
    if (rank() != 0) {
      size_t pos = 0;
      const uint64_t n = take<uint64_t>(joined, pos);
      for (uint64_t r = 0; r < n; ++r) {
        const uint64_t len = take<uint64_t>(joined, pos);
        out.emplace_back(joined.begin() + static_cast<int64_t>(pos), joined.begin() + static_cast<int64_t>(pos + len));
        pos += len;
      }
    }
  }
#else
  (void)all;
#endif
  return out;
}

std::vector<Tensor> gather(const std::vector<Tensor>& mine, bool all) {
  if (size() == 1) return mine;
  std::vector<Tensor> out;
  for (const auto& b : gather(pack(mine), all)) unpack(b, out);
  return out;
}

void for_units(int64_t count, const std::function<std::vector<Tensor>(int64_t)>& unit,
               const std::function<void(int64_t, std::vector<Tensor>&)>& consume, bool all, Device device) {
  CORTEX_CHECK(count >= 0, "dist::for_units: expected count >= 0, found ", count);
  if (size() == 1) {
    for (int64_t u = 0; u < count; ++u) {
      std::vector<Tensor> ts = unit(u);
      consume(u, ts);
    }
    return;
  }
  // Each unit's packed tensors go behind their length, so units may return lists of any length.
  const Range mine = block(count, size(), rank());
  std::vector<char> bytes;
  for (int64_t u = mine.lo; u < mine.hi; ++u) {
    const std::vector<char> b = pack(unit(u));
    put<uint64_t>(bytes, b.size());
    bytes.insert(bytes.end(), b.begin(), b.end());
  }
  const auto got = gather(bytes, all);
  if (!all && rank() != 0) return;
  int64_t u = 0;
  for (const auto& b : got) {
    size_t pos = 0;
    while (pos < b.size()) {
      const uint64_t len = take<uint64_t>(b, pos);
      CORTEX_CHECK(pos + len <= b.size(), "dist::for_units: truncated unit (", b.size(), " bytes)");
      std::vector<Tensor> ts;
      unpack(std::vector<char>(b.begin() + static_cast<int64_t>(pos), b.begin() + static_cast<int64_t>(pos + len)), ts);
      pos += len;
      if (!(device == Device::cpu()))
        for (Tensor& t : ts) t = t.to(device);
      CORTEX_CHECK(u < count, "dist::for_units: gathered more than the ", count, " units");
      consume(u++, ts);
    }
  }
  CORTEX_CHECK(u == count, "dist::for_units: expected ", count, " units, gathered ", u);
}

std::vector<std::vector<Tensor>> run_units(int64_t count, const std::function<std::vector<Tensor>(int64_t)>& unit,
                                           bool all, Device device) {
  std::vector<std::vector<Tensor>> out;
  for_units(count, unit, [&](int64_t, std::vector<Tensor>& ts) { out.push_back(std::move(ts)); }, all, device);
  return out;
}

int64_t bytes_sent() { return g_sent; }
int64_t bytes_received() { return g_received; }
void reset_counters() { g_sent = g_received = 0; }

std::string traffic_line() {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(3);
  os << "rank " << rank() << "/" << size() << ": sent " << static_cast<double>(g_sent) / 1e6 << " MB, received "
     << static_cast<double>(g_received) / 1e6 << " MB";
  return os.str();
}

}  // namespace cortex::dist
