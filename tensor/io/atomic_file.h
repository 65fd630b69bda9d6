// File plumbing shared by the readers and writers of tensor/io: atomic writes (a temporary file in
// the same folder, renamed over the target once complete) and read-only views of whole files
// (a private memory mapping, or a plain read for small files).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cortex::io {

// Writes `path` so that an interrupted job never leaves a half-written file: the bytes go to
// `path.tmp.<pid>` in the same folder (so the rename cannot cross file systems), are flushed and
// fsync'd, then renamed over `path`. If commit() is never reached (an exception, a crash) the
// destructor removes the temporary file and `path` keeps its old content.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // throws cortex::Error naming the path when it cannot create the file
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);  // throws on a short write (disk full), naming the path
  void commit();                           // flush, fsync, close, rename; throws on failure
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }
  uint64_t bytes_written() const { return written_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// One-shot form of AtomicFile.
void write_file_atomic(const std::string& path, const void* data, size_t n);

// A whole file mapped read-only into memory (MAP_PRIVATE, so tensors that view it may even be
// written to: the pages are copied on write and the file never changes). Keep it in a shared_ptr
// and hand that to Storage::wrap as the owner; the mapping lives as long as any tensor viewing it.
// An empty file maps to data() == nullptr, size() == 0.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);  // throws naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Reads a whole (small) file into memory; throws naming the path.
std::vector<uint8_t> read_file_bytes(const std::string& path);

}  // namespace cortex::io
