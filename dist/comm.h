// The ranks of a job launched by mpirun or srun, and the few collectives the sharded jobs need
// (docs/distributed.md). Without MPI compiled in (-DCORTEX_MPI=OFF, or OpenMPI absent) or when no
// launcher started this process, size() == 1 and every call is a no-op on the local data: plain
// `cortex` never touches MPI.
//
// Every reduction here is deterministic: partials are gathered and combined in a fixed order
// (rank order, unit order), never by MPI_Reduce, whose combining order is unspecified, so a
// result does not depend on the number of ranks when the work is cut into units fixed by the
// problem size (block() below) and each unit is computed whole by one rank.
//
// Bytes sent and received by this rank through these calls are counted (bytes_sent(),
// bytes_received()): the payload this rank hands to MPI or gets from it, headers included.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::dist {

// ---- pure logic, no MPI (tests/test_dist.cpp) ----

// Units [lo, hi) owned by `rank` of `size` when `count` units are cut into contiguous blocks in
// rank order, with boundaries floor(count * r / size): every rank gets count / size units rounded
// down or up, and a rank may get none when count < size.
struct Range {
  int64_t lo = 0, hi = 0;
  int64_t size() const { return hi - lo; }
};
Range block(int64_t count, int size, int rank);

// The left-to-right sum ((0 + p0) + p1) + p2 ... of equal-length float64 parts (zeros of length n
// when there are none), the order every deterministic sum here follows: the same bits as a loop
// `acc += part` over the parts in order. Throws on parts of another length.
std::vector<double> ordered_sum(const std::vector<std::vector<double>>& parts, size_t n);

// Serialisation of tensors (dtype, shape, bytes of a contiguous host copy) for the collectives.
std::vector<char> pack(const std::vector<Tensor>& ts);
// Appends the tensors of `bytes` to `out` (host tensors); throws on a truncated or bad buffer.
void unpack(const std::vector<char>& bytes, std::vector<Tensor>& out);

// FNV-1a 64 of bytes, chained from h.
uint64_t fnv1a(const void* data, size_t n, uint64_t h = 14695981039346656037ULL);

// ---- the ranks ----

// True when this build has MPI.
bool compiled();
// True when a launcher (mpirun: OMPI_COMM_WORLD_SIZE; srun or any PMIx/PMI launcher: PMIX_RANK,
// PMI_RANK, PMI_SIZE) started this process.
bool launched();
// Initialises MPI when compiled() and launched() (idempotent); then rank() and size() are the
// world's. Called by cortex's main before any job.
void init(int argc, char** argv);
// MPI_Finalize when init started MPI.
void finalize();
int rank();
int size();
inline bool is_root() { return rank() == 0; }

// Refuses a job whose ranks differ: every rank's arguments and a hash of its binary
// (/proc/self/exe) are compared with rank 0's. On a mismatch every rank throws the same kind of
// one-line cortex::Error naming the first differing rank and what differs. No-op with one rank.
void check_same_job(int argc, char** argv);

// How a failure ends every rank without a launcher's help (docs/distributed.md, "Failures").
// Every collective below starts with the same small all-reduce, in which each rank says whether
// it has failed. A rank that throws calls fail_job: it prints its one line and joins the next
// collective's all-reduce with "failed", which is the one every other rank is waiting in (or
// reaches); there each of them throws RankFailed instead of waiting for data that will not come.
// finish_job is the last such all-reduce of a run, so a rank that fails after the last collective
// (rank 0 writing the output) still ends the others. Then every rank calls MPI_Finalize and exits 1:
// no rank is killed, so mpirun (or srun) needs no abort path.

// Thrown on the ranks that did not fail when `failed_rank` (the highest one that failed) did;
// main ends them quietly with exit 1, the failed rank having printed the error.
class RankFailed : public Error {
 public:
  explicit RankFailed(int failed_rank);
  int failed_rank;
};

// Prints "cortex: rank R: <message>" on one line to stderr and, with several ranks, tells the
// others (above); returns so that the caller can finalize and exit 1. Nothing is printed for a
// RankFailed (call it only for this rank's own error).
void fail_job(const std::string& message);
// The last all-reduce of a run that succeeded on this rank; throws RankFailed when another rank
// failed. No-op with one rank.
void finish_job();

void barrier();
// root's bytes to every rank (resized on the others).
void broadcast(std::vector<char>& bytes, int root = 0);
// root's tensors to every rank (host tensors on the others, root's unchanged).
void broadcast(std::vector<Tensor>& ts, int root = 0);
// Every rank's bytes, in rank order, on every rank (all = true) or on rank 0 only (the others get
// an empty list).
std::vector<std::vector<char>> gather(const std::vector<char>& mine, bool all);
// Every rank's tensors, the lists joined in rank order (not concatenated along a dim), on every
// rank (all = true) or on rank 0 only (the others get an empty list).
std::vector<Tensor> gather(const std::vector<Tensor>& mine, bool all);

// Runs unit(u) for the units this rank owns (block(count, size(), rank())) and returns every
// unit's tensors, in unit order, on every rank (all = true; tensors moved to `device`) or on rank
// 0 only (the others get an empty list). With one rank it is the plain loop over units, so a
// sharded job computes the same units, in the same way, whatever the number of ranks.
std::vector<std::vector<Tensor>> run_units(int64_t count, const std::function<std::vector<Tensor>(int64_t)>& unit,
                                           bool all = true, Device device = Device::cpu());

// The same, streamed: consume(u, tensors) is called for every unit in unit order, on every rank
// (all) or on rank 0 only; with one rank right after unit(u), so nothing accumulates in memory.
void for_units(int64_t count, const std::function<std::vector<Tensor>(int64_t)>& unit,
               const std::function<void(int64_t, std::vector<Tensor>&)>& consume, bool all = true,
               Device device = Device::cpu());

// Bytes this rank sent and received through the calls above since start (or since reset).
int64_t bytes_sent();
int64_t bytes_received();
void reset_counters();
// "rank R/S: sent X MB, received Y MB" for --verbose-style progress lines.
std::string traffic_line();

}  // namespace cortex::dist
