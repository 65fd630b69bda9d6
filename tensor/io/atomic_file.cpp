#include "tensor/io/atomic_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "tensor/error.h"

namespace cortex::io {

namespace {
std::string errno_str() { return std::strerror(errno); }

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Opens `path` for reading and returns its size; refuses folders and other non-regular files,
// whose "size" means nothing to a parser.
int open_regular(const std::string& path, size_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  CORTEX_CHECK(fd >= 0, path, ": cannot open for reading: ", errno_str());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string why = errno_str();
    ::close(fd);
    throw Error(detail::cat(path, ": cannot stat: ", why));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(detail::cat(path, ": not a regular file"));
  }
  *size = static_cast<size_t>(st.st_size);
  return fd;
}
}  // namespace

// ---------------------------------------------------------------- AtomicFile

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  CORTEX_CHECK(!path_.empty(), "cannot write a file with an empty path");
  tmp_ = path_ + ".tmp." + std::to_string(::getpid());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CORTEX_CHECK(fd_ >= 0, path_, ": cannot create the temporary file '", tmp_, "': ", errno_str());
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  CORTEX_CHECK(fd_ >= 0, path_, ": write after commit");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    // Large tensors go in 1 GiB pieces: write(2) may transfer less than asked anyway.
    const size_t chunk = std::min<size_t>(n, size_t(1) << 30);
    const ssize_t w = ::write(fd_, p, chunk);
    if (w < 0 && errno == EINTR) continue;
    CORTEX_CHECK(w > 0, path_, ": write failed after ", written_, " bytes: ", w < 0 ? errno_str() : "no progress");
    p += w;
    n -= static_cast<size_t>(w);
    written_ += static_cast<uint64_t>(w);
  }
}

void AtomicFile::commit() {
  CORTEX_CHECK(fd_ >= 0 && !committed_, path_, ": commit called twice");
  CORTEX_CHECK(::fsync(fd_) == 0, path_, ": fsync of '", tmp_, "' failed: ", errno_str());
  const int rc = ::close(fd_);
  fd_ = -1;
  CORTEX_CHECK(rc == 0, path_, ": close of '", tmp_, "' failed: ", errno_str());
  CORTEX_CHECK(::rename(tmp_.c_str(), path_.c_str()) == 0, path_, ": cannot rename '", tmp_, "' over it: ",
               errno_str());
  committed_ = true;
  // Make the rename itself durable; a failure here loses nothing already written, so it is ignored.
  const int dfd = ::open(parent_dir(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, const void* data, size_t n) {
  AtomicFile f(path);
  f.write(data, n);
  f.commit();
}

// ---------------------------------------------------------------- MappedFile

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  size_t size = 0;
  const int fd = open_regular(path, &size);
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = size;
  if (size > 0) {
    // Private and writable: tensors viewing the mapping may be modified in place without ever
    // touching the file (copy on write) and without a segfault on a read-only page.
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    const std::string why = p == MAP_FAILED ? errno_str() : "";
    ::close(fd);
    CORTEX_CHECK(p != MAP_FAILED, path, ": cannot map ", size, " bytes: ", why);
    m->data_ = static_cast<uint8_t*>(p);
  } else {
    ::close(fd);
  }
  return m;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  size_t size = 0;
  const int fd = open_regular(path, &size);
  std::vector<uint8_t> buf(size);
  size_t got = 0;
  while (got < size) {
    const ssize_t r = ::read(fd, buf.data() + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      const std::string why = r < 0 ? errno_str() : "file shrank while reading";
      ::close(fd);
      throw Error(detail::cat(path, ": read failed after ", got, " of ", size, " bytes: ", why));
    }
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  return buf;
}

}  // namespace cortex::io
