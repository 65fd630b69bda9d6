#include "tensor/io/npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>  // inflate: raw DEFLATE for .npz members

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstring>
#include <functional>
#include <set>

#include "tensor/io/atomic_file.h"

// Defined in stb_image_write's implementation (tensor/io/stb_impl.cpp) but not declared in its public
// part. Returns a malloc'd zlib stream (2-byte header, raw DEFLATE, 4-byte Adler-32).
extern "C" unsigned char* stbi_zlib_compress(unsigned char* data, int data_len, int* out_len, int quality);

static_assert(std::endian::native == std::endian::little,
              "the .npy/.npz readers copy little-endian file bytes straight into tensors");

namespace cortex::io {

namespace {

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t rd64(const uint8_t* p) { return rd32(p) | (static_cast<uint64_t>(rd32(p + 4)) << 32); }
void put16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>(v >> 8));
}
void put32(std::string& s, uint32_t v) {
  put16(s, static_cast<uint16_t>(v & 0xffff));
  put16(s, static_cast<uint16_t>(v >> 16));
}
void put64(std::string& s, uint64_t v) {
  put32(s, static_cast<uint32_t>(v & 0xffffffffu));
  put32(s, static_cast<uint32_t>(v >> 32));
}

// Header text quoted for an error message: at most `max` characters, non-printables escaped, so
// the message stays one printable line whatever the file holds.
std::string quoted(const std::string& s, size_t max = 80) {
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  if (s.size() > max) out += "...";
  return out + "'";
}

// ---------------------------------------------------------------- the header's Python literal

// The .npy header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }.
// This is a small parser for the literal subset NumPy writes (strings, integers with an optional
// Python 2 'L', True/False/None, tuples, lists, dicts), tolerant of spacing and trailing commas.
struct PyValue {
  enum Kind { Str, Int, Bool, None, Tuple, List, Dict } kind = None;
  std::string s;
  int64_t i = 0;
  bool b = false;
  std::vector<PyValue> items;  // Tuple/List elements; Dict: key, value, key, value, ...
};

class PyParser {
 public:
  PyParser(const std::string& text, const std::string& name) : t_(text), name_(name) {}

  PyValue parse() {
    PyValue v = value(0);
    skip_ws();
    if (pos_ != t_.size()) fail("unexpected text after the dict");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(detail::cat(name_, ": malformed .npy header (", what, " at offset ", pos_, "): ", quoted(t_)));
  }
  void skip_ws() {
    while (pos_ < t_.size() && (t_[pos_] == ' ' || t_[pos_] == '\t' || t_[pos_] == '\n' || t_[pos_] == '\r'))
      ++pos_;
  }
  char peek() {
    skip_ws();
    if (pos_ >= t_.size()) fail("header ends early");
    return t_[pos_];
  }

  PyValue value(int depth) {
    // Bounded so a hostile header like "((((((..." cannot exhaust the stack.
    if (depth > 8) fail("nesting too deep");
    const char c = peek();
    if (c == '{') return sequence('}', PyValue::Dict, depth);
    if (c == '(') return sequence(')', PyValue::Tuple, depth);
    if (c == '[') return sequence(']', PyValue::List, depth);
    if (c == '\'' || c == '"') return string();
    if ((c >= '0' && c <= '9') || c == '-' || c == '+') return integer();
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) return word();
    fail(detail::cat("unexpected character ", quoted(std::string(1, c))));
  }

  PyValue sequence(char close, PyValue::Kind kind, int depth) {
    PyValue v;
    v.kind = kind;
    ++pos_;  // the opening bracket
    while (true) {
      if (peek() == close) {
        ++pos_;
        return v;
      }
      v.items.push_back(value(depth + 1));
      if (kind == PyValue::Dict) {
        if (peek() != ':') fail("expected ':' in dict");
        ++pos_;
        v.items.push_back(value(depth + 1));
      }
      const char c = peek();
      if (c == ',') {
        ++pos_;
      } else if (c != close) {
        fail(detail::cat("expected ',' or '", close, "'"));
      }
    }
  }

  PyValue string() {
    PyValue v;
    v.kind = PyValue::Str;
    const char q = t_[pos_++];
    while (true) {
      if (pos_ >= t_.size()) fail("unterminated string");
      char c = t_[pos_++];
      if (c == q) return v;
      if (c == '\\') {
        if (pos_ >= t_.size()) fail("unterminated string");
        c = t_[pos_++];
      }
      v.s.push_back(c);
    }
  }

  PyValue integer() {
    PyValue v;
    v.kind = PyValue::Int;
    bool neg = false;
    if (t_[pos_] == '-' || t_[pos_] == '+') neg = t_[pos_++] == '-';
    const size_t start = pos_;
    uint64_t x = 0;
    while (pos_ < t_.size() && t_[pos_] >= '0' && t_[pos_] <= '9') {
      const uint64_t d = static_cast<uint64_t>(t_[pos_] - '0');
      if (x > (static_cast<uint64_t>(INT64_MAX) - d) / 10) fail("integer larger than int64");
      x = x * 10 + d;
      ++pos_;
    }
    if (pos_ == start) fail("expected digits");
    if (pos_ < t_.size() && (t_[pos_] == 'L' || t_[pos_] == 'l')) ++pos_;  // Python 2 long
    v.i = neg ? -static_cast<int64_t>(x) : static_cast<int64_t>(x);
    return v;
  }

  PyValue word() {
    const size_t start = pos_;
    while (pos_ < t_.size() && ((t_[pos_] >= 'A' && t_[pos_] <= 'Z') || (t_[pos_] >= 'a' && t_[pos_] <= 'z'))) ++pos_;
    const std::string w = t_.substr(start, pos_ - start);
    PyValue v;
    if (w == "True" || w == "False") {
      v.kind = PyValue::Bool;
      v.b = w == "True";
    } else if (w == "None") {
      v.kind = PyValue::None;
    } else {
      pos_ = start;
      fail(detail::cat("unknown word ", quoted(w)));
    }
    return v;
  }

  const std::string& t_;
  const std::string& name_;
  size_t pos_ = 0;
};

// ---------------------------------------------------------------- dtypes

// How the file stores an element and what the tensor gets.
enum class Src { F4, F8, F2, I4, I8, U1, B1, I2, I1, U2, U4 };
struct SrcType {
  const char* code;  // descr without the byte-order character
  Src src;
  int size;
  DType out;
};
constexpr SrcType kTypes[] = {
    {"f4", Src::F4, 4, DType::Float32}, {"f8", Src::F8, 8, DType::Float64}, {"f2", Src::F2, 2, DType::Float16},
    {"i4", Src::I4, 4, DType::Int32},   {"i8", Src::I8, 8, DType::Int64},   {"u1", Src::U1, 1, DType::UInt8},
    {"b1", Src::B1, 1, DType::Bool},    {"i2", Src::I2, 2, DType::Int32},   {"i1", Src::I1, 1, DType::Int32},
    {"u2", Src::U2, 2, DType::Int32},   {"u4", Src::U4, 4, DType::Int64},
};

SrcType parse_descr(const std::string& descr, const std::string& name) {
  std::string code = descr;
  char order = '=';
  if (!code.empty() && (code[0] == '<' || code[0] == '>' || code[0] == '|' || code[0] == '=')) {
    order = code[0];
    code = code.substr(1);
  }
  const SrcType* found = nullptr;
  for (const SrcType& t : kTypes)
    if (code == t.code) found = &t;
  if (found == nullptr) {
    const std::string supported = "'<f4' '<f8' '<f2' '<i4' '<i8' '|u1' '|b1' '<i2' '|i1' '<u2' '<u4'";
    if (!code.empty() && code[0] == 'O')
      throw Error(detail::cat(name, ": unsupported dtype ", quoted(descr),
                              " in field 'descr': object arrays hold pickled Python objects (supported: ", supported,
                              ")"));
    throw Error(detail::cat(name, ": unsupported dtype ", quoted(descr), " in field 'descr' (supported: ", supported,
                            ")"));
  }
  if (order == '>' && found->size > 1)
    throw Error(detail::cat(name, ": big-endian dtype ", quoted(descr),
                            " in field 'descr' is not supported; save it little-endian (arr.astype('<",
                            found->code, "'))"));
  if (order == '|' && found->size > 1)
    throw Error(detail::cat(name, ": invalid dtype ", quoted(descr),
                            " in field 'descr': '|' (no byte order) on a multi-byte type"));
  return *found;
}

const char* npy_descr(DType dt) {
  switch (dt) {
    case DType::Float32: return "<f4";
    case DType::Float64: return "<f8";
    case DType::Float16: return "<f2";
    case DType::Int32: return "<i4";
    case DType::Int64: return "<i8";
    case DType::UInt8: return "|u1";
    case DType::Bool: return "|b1";
    case DType::BFloat16: break;
  }
  throw Error(
      "write_npy: bfloat16 has no NumPy dtype; convert with .to(DType::Float32) first or write safetensors, which "
      "keeps bfloat16");
}

// ---------------------------------------------------------------- header parsing

struct Parsed {
  NpyInfo info;
  SrcType type;
  uint64_t numel = 0;
};

// Checks the magic and version of the first `avail` bytes and returns the header's end (= the data
// offset), checked against the total size `total`.
uint64_t npy_header_end(const uint8_t* p, size_t avail, uint64_t total, const std::string& name, int* major,
                        int* minor, size_t* prelude) {
  static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  const size_t m = std::min<size_t>(avail, 6);
  if (m == 0 || std::memcmp(p, magic, m) != 0) {
    if (avail >= 4 && rd32(p) == 0x04034b50)
      throw Error(detail::cat(name, ": not an .npy file (this is a zip archive: read it as .npz)"));
    throw Error(detail::cat(name, ": not an .npy file (wrong magic; expected \\x93NUMPY, found ",
                            quoted(std::string(reinterpret_cast<const char*>(p), m)), ")"));
  }
  CORTEX_CHECK(avail >= 10, name, ": truncated .npy file: ", total, " bytes, shorter than the 10-byte preamble");
  *major = p[6];
  *minor = p[7];
  CORTEX_CHECK((*major >= 1 && *major <= 3) && *minor == 0, name, ": unsupported .npy format version ", *major, ".",
               *minor, " (supported: 1.0, 2.0, 3.0)");
  uint64_t hlen;
  if (*major == 1) {
    *prelude = 10;
    hlen = rd16(p + 8);
  } else {
    CORTEX_CHECK(avail >= 12, name, ": truncated .npy file: ", total, " bytes, shorter than the 12-byte preamble");
    *prelude = 12;
    hlen = rd32(p + 8);
  }
  CORTEX_CHECK(hlen <= total - *prelude, name, ": truncated .npy file: the header claims ", hlen,
               " bytes but only ", total - *prelude, " follow the preamble");
  return *prelude + hlen;
}

// Parses the whole header; `p` holds at least npy_header_end bytes, `total` is the file size.
Parsed parse_npy(const uint8_t* p, size_t avail, uint64_t total, const std::string& name) {
  Parsed r;
  size_t prelude = 0;
  const uint64_t end = npy_header_end(p, avail, total, name, &r.info.version_major, &r.info.version_minor, &prelude);
  CORTEX_CHECK(end <= avail, name, ": truncated .npy header");
  const std::string text(reinterpret_cast<const char*>(p + prelude), end - prelude);
  const PyValue d = PyParser(text, name).parse();
  CORTEX_CHECK(d.kind == PyValue::Dict, name, ": malformed .npy header (not a dict): ", quoted(text));
  const PyValue *descr = nullptr, *fortran = nullptr, *shape = nullptr;
  for (size_t i = 0; i + 1 < d.items.size(); i += 2) {
    const PyValue& k = d.items[i];
    if (k.kind != PyValue::Str) continue;
    if (k.s == "descr") descr = &d.items[i + 1];
    if (k.s == "fortran_order") fortran = &d.items[i + 1];
    if (k.s == "shape") shape = &d.items[i + 1];
  }
  CORTEX_CHECK(descr != nullptr, name, ": .npy header has no 'descr' field: ", quoted(text));
  CORTEX_CHECK(fortran != nullptr, name, ": .npy header has no 'fortran_order' field: ", quoted(text));
  CORTEX_CHECK(shape != nullptr, name, ": .npy header has no 'shape' field: ", quoted(text));

  if (descr->kind == PyValue::List)
    throw Error(detail::cat(name, ": unsupported dtype in field 'descr': structured (record) arrays are not supported"));
  CORTEX_CHECK(descr->kind == PyValue::Str, name, ": field 'descr' must be a string: ", quoted(text));
  r.type = parse_descr(descr->s, name);
  r.info.descr = descr->s;
  r.info.dtype = r.type.out;

  CORTEX_CHECK(fortran->kind == PyValue::Bool, name, ": field 'fortran_order' must be True or False: ", quoted(text));
  r.info.fortran_order = fortran->b;

  CORTEX_CHECK(shape->kind == PyValue::Tuple || shape->kind == PyValue::List, name,
               ": field 'shape' must be a tuple of integers: ", quoted(text));
  CORTEX_CHECK(shape->items.size() <= 64, name, ": field 'shape' has ", shape->items.size(),
               " dimensions (at most 64 supported)");
  for (const PyValue& s : shape->items) {
    CORTEX_CHECK(s.kind == PyValue::Int, name, ": field 'shape' must be a tuple of integers: ", quoted(text));
    CORTEX_CHECK(s.i >= 0, name, ": field 'shape' has a negative size ", s.i);
    r.info.shape.push_back(s.i);
  }
  // `span` (sizes with 0 counted as 1) bounds every stride, so it must fit int64 as well as numel.
  uint64_t numel = 1, span = 1;
  for (int64_t s : r.info.shape) {
    const uint64_t u = static_cast<uint64_t>(s);
    CORTEX_CHECK(!__builtin_mul_overflow(numel, u, &numel) && numel <= static_cast<uint64_t>(INT64_MAX) &&
                     !__builtin_mul_overflow(span, std::max<uint64_t>(u, 1), &span) &&
                     span <= static_cast<uint64_t>(INT64_MAX),
                 name, ": field 'shape' ", shape_str(r.info.shape), " has more elements than int64 can count");
  }
  r.numel = numel;
  uint64_t nbytes = 0;
  CORTEX_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(r.type.size), &nbytes) &&
                   nbytes <= static_cast<uint64_t>(INT64_MAX),
               name, ": shape ", shape_str(r.info.shape), " of ", quoted(r.info.descr), " overflows the byte count");
  r.info.data_offset = end;
  r.info.data_nbytes = nbytes;
  CORTEX_CHECK(nbytes <= total - end, name, ": truncated .npy file: shape ", shape_str(r.info.shape), " of ",
               quoted(r.info.descr), " needs ", nbytes, " data bytes but only ", total - end, " follow the header");
  return r;
}

// ---------------------------------------------------------------- data

// Converts `count` file elements at `in` into tensor elements at `out` (types that differ).
void convert(Src src, const uint8_t* in, size_t count, void* out) {
  auto widen = [&](auto file_type, auto tensor_type) {
    using F = decltype(file_type);
    using T = decltype(tensor_type);
    T* o = static_cast<T*>(out);
    for (size_t i = 0; i < count; ++i) {
      F v;
      std::memcpy(&v, in + i * sizeof(F), sizeof(F));  // the file bytes need not be aligned
      o[i] = static_cast<T>(v);
    }
  };
  switch (src) {
    case Src::I2: widen(int16_t{}, int32_t{}); break;
    case Src::I1: widen(int8_t{}, int32_t{}); break;
    case Src::U2: widen(uint16_t{}, int32_t{}); break;
    case Src::U4: widen(uint32_t{}, int64_t{}); break;
    case Src::B1: {
      // Any non-zero byte is True, as NumPy reads it; a bool tensor must only ever hold 0 or 1.
      bool* o = static_cast<bool*>(out);
      for (size_t i = 0; i < count; ++i) o[i] = in[i] != 0;
      break;
    }
    default: throw Error("npy: internal error, no conversion needed");
  }
}

// Builds the tensor; `read(dst, offset, n)` copies n data bytes starting at `offset` into dst.
Tensor build_tensor(const Parsed& h, const std::function<void(void*, uint64_t, size_t)>& read) {
  const Shape& shape = h.info.shape;
  auto storage = Storage::allocate(static_cast<size_t>(h.numel) * dtype_size(h.type.out), Device::cpu());
  const bool direct = h.type.src != Src::B1 && dtype_size(h.type.out) == static_cast<size_t>(h.type.size);
  if (direct) {
    if (h.info.data_nbytes > 0) read(storage->data, 0, static_cast<size_t>(h.info.data_nbytes));
  } else {
    // Convert in pieces so a large int16 file never needs a second full-size buffer.
    const size_t chunk = (size_t(1) << 20);
    std::vector<uint8_t> buf(std::min<uint64_t>(h.info.data_nbytes, chunk * h.type.size));
    for (uint64_t i = 0; i < h.numel; i += chunk) {
      const size_t cnt = static_cast<size_t>(std::min<uint64_t>(chunk, h.numel - i));
      read(buf.data(), i * h.type.size, cnt * h.type.size);
      convert(h.type.src, buf.data(), cnt, static_cast<char*>(storage->data) + i * dtype_size(h.type.out));
    }
  }
  if (!h.info.fortran_order || shape.size() <= 1)
    return Tensor(storage, shape, contiguous_strides(shape), 0, h.type.out);
  // Fortran order: the first index varies fastest. View it with column-major strides, then copy
  // into C order so every consumer sees an ordinary contiguous tensor.
  Shape fstrides(shape.size());
  int64_t acc = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    fstrides[d] = acc;
    acc *= std::max<int64_t>(shape[d], 1);
  }
  Tensor f(storage, shape, fstrides, 0, h.type.out);
  if (f.is_contiguous()) return Tensor(storage, shape, contiguous_strides(shape), 0, h.type.out);
  return f.clone();
}

// pread until done; the file size was checked against the header, so a short read means the file
// changed under us.
void pread_all(int fd, void* dst, uint64_t offset, size_t n, const std::string& name) {
  char* p = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, std::min<size_t>(n, size_t(1) << 30), static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    CORTEX_CHECK(r > 0, name, ": read failed at byte ", offset, ": ", r < 0 ? std::strerror(errno) : "file shrank");
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

// An open file descriptor that closes itself.
struct Fd {
  int fd = -1;
  uint64_t size = 0;
  Fd(const std::string& path) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    CORTEX_CHECK(fd >= 0, path, ": cannot open for reading: ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      throw Error(detail::cat(path, ": not a regular file"));
    }
    size = static_cast<uint64_t>(st.st_size);
  }
  ~Fd() { ::close(fd); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

// Reads the preamble and header of an open .npy file.
Parsed parse_npy_file(const Fd& f, const std::string& path) {
  uint8_t pre[12];
  const size_t n0 = static_cast<size_t>(std::min<uint64_t>(f.size, sizeof pre));
  if (n0 > 0) pread_all(f.fd, pre, 0, n0, path);
  int major = 0, minor = 0;
  size_t prelude = 0;
  const uint64_t end = npy_header_end(pre, n0, f.size, path, &major, &minor, &prelude);
  std::vector<uint8_t> head(static_cast<size_t>(end));
  pread_all(f.fd, head.data(), 0, head.size(), path);
  return parse_npy(head.data(), head.size(), f.size, path);
}

std::string header_bytes(const Tensor& t) {
  const char* descr = npy_descr(t.dtype());
  std::string dict = detail::cat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (");
  for (int64_t d = 0; d < t.dim(); ++d) dict += detail::cat(d ? ", " : "", t.shape()[d]);
  if (t.dim() == 1) dict += ",";
  dict += "), }";
  // NumPy pads with spaces and ends with '\n' so the data starts on a 64-byte boundary.
  auto padded = [&](size_t prelude) {
    const size_t unpadded = prelude + dict.size() + 1;
    return dict + std::string((64 - unpadded % 64) % 64, ' ') + "\n";
  };
  std::string head = padded(10);
  std::string out("\x93NUMPY", 6);
  if (head.size() <= 65535) {
    out += '\x01';
    out += '\x00';
    put16(out, static_cast<uint16_t>(head.size()));
  } else {
    head = padded(12);
    out += '\x02';
    out += '\x00';
    put32(out, static_cast<uint32_t>(head.size()));
  }
  return out + head;
}

Tensor host_contiguous(const Tensor& t, const char* op) {
  CORTEX_CHECK(t.defined(), op, ": the tensor is undefined");
  return t.to(Device::cpu()).contiguous();
}

// ---------------------------------------------------------------- CRC-32

// Slicing-by-8 tables: table[0] is the classic byte table, table[k] advances k more zero bytes.
constexpr std::array<std::array<uint32_t, 256>, 8> make_crc_tables() {
  std::array<std::array<uint32_t, 256>, 8> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i)
    for (int k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
  return t;
}
constexpr auto kCrc = make_crc_tables();

// ---------------------------------------------------------------- zip

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50, kZip64LocSig = 0x07064b50;

struct ZipEntry {
  std::string name;
  uint16_t flags = 0, method = 0;
  uint32_t crc = 0;
  uint64_t csize = 0, usize = 0, offset = 0;
};

std::vector<ZipEntry> central_directory(const uint8_t* p, size_t n, const std::string& name) {
  if (n >= 6 && std::memcmp(p, "\x93NUMPY", 6) == 0)
    throw Error(detail::cat(name, ": not an .npz archive (this is an .npy file: read it with read_npy)"));
  CORTEX_CHECK(n >= 22, name, ": not an .npz/zip archive (", n,
               " bytes, shorter than a zip end-of-central-directory record)");
  // The end record sits in the last 22 + 65535 (longest comment) bytes; search backwards.
  const size_t lo = n > 22 + 65535 ? n - 22 - 65535 : 0;
  size_t eocd = SIZE_MAX;
  for (size_t i = n - 22 + 1; i-- > lo;)
    if (rd32(p + i) == kEndSig) {
      eocd = i;
      break;
    }
  if (eocd == SIZE_MAX) {
    if (rd32(p) == kLocalSig)
      throw Error(detail::cat(name, ": truncated zip archive (no end-of-central-directory record)"));
    throw Error(detail::cat(name, ": not an .npz/zip archive (wrong magic and no end-of-central-directory record)"));
  }
  uint32_t disk = rd16(p + eocd + 4), cd_disk = rd16(p + eocd + 6);
  uint64_t entries = rd16(p + eocd + 10), cd_size = rd32(p + eocd + 12), cd_off = rd32(p + eocd + 16);
  if (eocd >= 20 && rd32(p + eocd - 20) == kZip64LocSig) {
    const uint64_t z = rd64(p + eocd - 20 + 8);
    CORTEX_CHECK(z <= eocd - 20 && eocd - 20 - z >= 56, name, ": zip64 end record offset ", z,
                 " lies outside the archive");
    CORTEX_CHECK(rd32(p + z) == kZip64EndSig, name, ": bad zip64 end record signature");
    disk = rd32(p + z + 16);
    cd_disk = rd32(p + z + 20);
    entries = rd64(p + z + 32);
    cd_size = rd64(p + z + 40);
    cd_off = rd64(p + z + 48);
  }
  CORTEX_CHECK(disk == 0 && cd_disk == 0, name, ": multi-disk zip archives are not supported");
  CORTEX_CHECK(cd_off <= eocd && cd_size <= eocd - cd_off, name, ": central directory (offset ", cd_off, ", ",
               cd_size, " bytes) lies outside the archive of ", n, " bytes (truncated?)");

  std::vector<ZipEntry> out;
  uint64_t pos = cd_off;
  const uint64_t end = cd_off + cd_size;
  for (uint64_t k = 0; k < entries; ++k) {
    CORTEX_CHECK(end - pos >= 46 && rd32(p + pos) == kCentralSig, name, ": central directory entry ", k, " of ",
                 entries, " is missing or corrupt");
    const uint8_t* e = p + pos;
    ZipEntry z;
    z.flags = rd16(e + 8);
    z.method = rd16(e + 10);
    z.crc = rd32(e + 16);
    z.csize = rd32(e + 20);
    z.usize = rd32(e + 24);
    const uint16_t nl = rd16(e + 28), el = rd16(e + 30), cl = rd16(e + 32);
    const uint32_t start_disk = rd16(e + 34);
    z.offset = rd32(e + 42);
    CORTEX_CHECK(end - pos >= uint64_t(46) + nl + el + cl, name, ": central directory entry ", k,
                 " runs past the directory");
    z.name.assign(reinterpret_cast<const char*>(e + 46), nl);
    // Zip64 extra field: 64-bit values for exactly those fields whose 32-bit slot is all ones.
    const uint8_t* x = e + 46 + nl;
    const uint8_t* xend = x + el;
    while (xend - x >= 4) {
      const uint16_t id = rd16(x), sz = rd16(x + 2);
      CORTEX_CHECK(xend - x - 4 >= sz, name, ": member ", quoted(z.name), ": extra field runs past its entry");
      if (id == 0x0001) {
        const uint8_t* q = x + 4;
        const uint8_t* qend = q + sz;
        auto take = [&](uint64_t& v) {
          if (v != 0xffffffffu) return;
          CORTEX_CHECK(qend - q >= 8, name, ": member ", quoted(z.name), ": zip64 extra field is too short");
          v = rd64(q);
          q += 8;
        };
        take(z.usize);
        take(z.csize);
        take(z.offset);
      }
      x += 4 + sz;
    }
    CORTEX_CHECK(start_disk == 0 || start_disk == 0xffff, name, ": member ", quoted(z.name),
                 ": multi-disk archives are not supported");
    out.push_back(std::move(z));
    pos += uint64_t(46) + nl + el + cl;
  }
  return out;
}

// Reads one member's bytes (decompressed, CRC-checked) and parses it as .npy.
Tensor read_member(const uint8_t* p, size_t n, const ZipEntry& z, const std::string& name) {
  const std::string where = detail::cat(name, ": member ", quoted(z.name));
  CORTEX_CHECK((z.flags & 1) == 0, where, ": encrypted members are not supported");
  CORTEX_CHECK(z.offset <= n && n - z.offset >= 30, where, ": local header offset ", z.offset,
               " lies outside the archive of ", n, " bytes");
  const uint8_t* lh = p + z.offset;
  CORTEX_CHECK(rd32(lh) == kLocalSig, where, ": bad local header signature");
  const uint64_t data = z.offset + 30 + rd16(lh + 26) + rd16(lh + 28);
  CORTEX_CHECK(data <= n && z.csize <= n - data, where, ": data (", z.csize, " bytes at offset ", data,
               ") runs past the end of the archive (", n, " bytes; truncated?)");
  const uint8_t* src = p + data;
  std::vector<uint8_t> inflated;
  if (z.method == 0) {
    CORTEX_CHECK(z.csize == z.usize, where, ": stored member has compressed size ", z.csize, " but size ", z.usize);
  } else if (z.method == 8) {
    CORTEX_CHECK(z.csize <= INT_MAX && z.usize <= INT_MAX, where,
                 ": deflated members over 2 GiB are not supported by the built-in inflater (save with np.savez, "
                 "which stores members uncompressed)");
    // DEFLATE cannot expand more than 1032:1; a larger claim is a lie (or a bomb), refused before allocating.
    CORTEX_CHECK(z.usize <= z.csize * 1032 + 1024, where, ": claims ", z.usize, " bytes from ", z.csize,
                 " compressed bytes, more than DEFLATE can expand");
    CORTEX_CHECK(z.csize <= INT_MAX - 8, where, ": deflated member too large");
    inflated.resize(static_cast<size_t>(z.usize) + 1);  // +1 so an over-long stream is detected, not clipped
    z_stream zs{};
    CORTEX_CHECK(inflateInit2(&zs, -MAX_WBITS) == Z_OK, where, ": zlib could not start inflating");  // raw DEFLATE
    zs.next_in = const_cast<Bytef*>(src);
    zs.avail_in = static_cast<uInt>(z.csize);
    zs.next_out = inflated.data();
    zs.avail_out = static_cast<uInt>(inflated.size());
    const int rc = inflate(&zs, Z_FINISH);
    const uint64_t got = zs.total_out;
    const std::string why = zs.msg != nullptr ? zs.msg : rc == Z_BUF_ERROR ? "the stream ends early" : "no reason given";
    inflateEnd(&zs);
    CORTEX_CHECK(rc == Z_STREAM_END, where, ": corrupt deflate data (zlib: ", why, ")");
    CORTEX_CHECK(got == z.usize, where, ": inflates to ", got, " bytes, the directory says ", z.usize);
    src = inflated.data();
  } else {
    throw Error(detail::cat(where, ": unsupported compression method ", z.method, " (supported: 0 stored, 8 deflate)"));
  }
  const uint32_t c = crc32(src, static_cast<size_t>(z.usize));
  CORTEX_CHECK(c == z.crc, where, ": CRC-32 mismatch (the directory says 0x", std::hex, z.crc, ", the data gives 0x",
               c, "); the file is corrupt");
  return read_npy_bytes(src, static_cast<size_t>(z.usize), where);
}

// Writes a zip of .npy members through an AtomicFile.
class ZipWriter {
 public:
  explicit ZipWriter(const std::string& path) : f_(path) {}

  void add(const std::string& name, const std::string& head, const Tensor& data, bool compress) {
    for (const auto& e : entries_)
      CORTEX_CHECK(e.name != name, "write_npz: ", f_.path(), ": duplicate key ", quoted(name));
    CORTEX_CHECK(name.size() <= 65535, "write_npz: ", f_.path(), ": key too long");
    const uint8_t* raw = static_cast<const uint8_t*>(data.raw_data());
    const size_t nraw = static_cast<size_t>(data.numel()) * data.element_size();
    ZipEntry z;
    z.name = name;
    z.offset = f_.bytes_written();
    z.usize = head.size() + nraw;
    z.crc = crc32(raw, nraw, crc32(head.data(), head.size()));
    std::string deflated;
    // stb's compressor works in int and allocates about 2x; very large members are stored.
    if (compress && z.usize <= (uint64_t(1) << 30)) {
      std::string whole = head;
      whole.append(reinterpret_cast<const char*>(raw), nraw);
      int zlen = 0;
      unsigned char* zs = stbi_zlib_compress(reinterpret_cast<unsigned char*>(whole.data()),
                                             static_cast<int>(whole.size()), &zlen, 8);
      CORTEX_CHECK(zs != nullptr, "write_npz: ", f_.path(), ": compression of ", quoted(name), " failed");
      // Keep only the raw DEFLATE stream: drop the 2-byte zlib header and the 4-byte Adler-32.
      if (zlen > 6 && static_cast<uint64_t>(zlen - 6) < z.usize) deflated.assign(reinterpret_cast<char*>(zs) + 2, zlen - 6);
      std::free(zs);
    }
    const bool deflate = !deflated.empty();
    z.method = deflate ? 8 : 0;
    z.csize = deflate ? deflated.size() : z.usize;
    const bool big = z.usize > kLimit || z.csize > kLimit;
    std::string lh;
    put32(lh, kLocalSig);
    put16(lh, big ? 45 : 20);
    put16(lh, utf8_flag(name));
    put16(lh, z.method);
    put16(lh, 0);       // time 00:00:00
    put16(lh, 0x21);    // date 1980-01-01: fixed, so equal inputs give byte-identical files
    put32(lh, z.crc);
    put32(lh, big ? 0xffffffffu : static_cast<uint32_t>(z.csize));
    put32(lh, big ? 0xffffffffu : static_cast<uint32_t>(z.usize));
    put16(lh, static_cast<uint16_t>(name.size()));
    put16(lh, big ? 20 : 0);
    lh += name;
    if (big) {
      put16(lh, 0x0001);
      put16(lh, 16);
      put64(lh, z.usize);
      put64(lh, z.csize);
    }
    f_.write(lh.data(), lh.size());
    if (deflate) {
      f_.write(deflated.data(), deflated.size());
    } else {
      f_.write(head.data(), head.size());
      f_.write(raw, nraw);
    }
    entries_.push_back(std::move(z));
  }

  void finish() {
    const uint64_t cd_off = f_.bytes_written();
    std::string cd;
    for (const ZipEntry& z : entries_) {
      const bool big_size = z.usize > kLimit || z.csize > kLimit, big_off = z.offset > kLimit;
      std::string extra;
      if (big_size || big_off) {
        std::string vals;
        if (big_size) {
          put64(vals, z.usize);
          put64(vals, z.csize);
        }
        if (big_off) put64(vals, z.offset);
        put16(extra, 0x0001);
        put16(extra, static_cast<uint16_t>(vals.size()));
        extra += vals;
      }
      put32(cd, kCentralSig);
      put16(cd, 0x0300 | 45);  // made by: Unix, spec 4.5
      put16(cd, extra.empty() ? 20 : 45);
      put16(cd, utf8_flag(z.name));
      put16(cd, z.method);
      put16(cd, 0);
      put16(cd, 0x21);
      put32(cd, z.crc);
      put32(cd, big_size ? 0xffffffffu : static_cast<uint32_t>(z.csize));
      put32(cd, big_size ? 0xffffffffu : static_cast<uint32_t>(z.usize));
      put16(cd, static_cast<uint16_t>(z.name.size()));
      put16(cd, static_cast<uint16_t>(extra.size()));
      put16(cd, 0);  // comment
      put16(cd, 0);  // disk
      put16(cd, 0);  // internal attributes
      put32(cd, 0644u << 16);  // Unix permissions rw-r--r--
      put32(cd, big_off ? 0xffffffffu : static_cast<uint32_t>(z.offset));
      cd += z.name;
      cd += extra;
    }
    const uint64_t cd_size = cd.size(), count = entries_.size();
    const bool z64 = count >= 0xffff || cd_off > kLimit || cd_size > kLimit;
    if (z64) {
      const uint64_t z64_off = cd_off + cd_size;
      put32(cd, kZip64EndSig);
      put64(cd, 44);  // size of the rest of this record
      put16(cd, 0x0300 | 45);
      put16(cd, 45);
      put32(cd, 0);
      put32(cd, 0);
      put64(cd, count);
      put64(cd, count);
      put64(cd, cd_size);
      put64(cd, cd_off);
      put32(cd, kZip64LocSig);
      put32(cd, 0);
      put64(cd, z64_off);
      put32(cd, 1);
    }
    put32(cd, kEndSig);
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, z64 ? 0xffff : static_cast<uint16_t>(count));
    put16(cd, z64 ? 0xffff : static_cast<uint16_t>(count));
    put32(cd, z64 ? 0xffffffffu : static_cast<uint32_t>(cd_size));
    put32(cd, z64 ? 0xffffffffu : static_cast<uint32_t>(cd_off));
    put16(cd, 0);
    f_.write(cd.data(), cd.size());
    f_.commit();
  }

 private:
  // Python's zipfile switches to zip64 above 2^31 - 1 (some readers treat sizes as signed); so do we.
  static constexpr uint64_t kLimit = 0x7fffffffu;
  static uint16_t utf8_flag(const std::string& s) {
    for (unsigned char c : s)
      if (c >= 0x80) return 0x0800;
    return 0;
  }
  AtomicFile f_;
  std::vector<ZipEntry> entries_;
};

}  // namespace

// ---------------------------------------------------------------- public: CRC

uint32_t crc32(const void* data, size_t n, uint32_t crc) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  while (n >= 8) {
    const uint32_t lo = c ^ rd32(p), hi = rd32(p + 4);
    c = kCrc[7][lo & 0xff] ^ kCrc[6][(lo >> 8) & 0xff] ^ kCrc[5][(lo >> 16) & 0xff] ^ kCrc[4][lo >> 24] ^
        kCrc[3][hi & 0xff] ^ kCrc[2][(hi >> 8) & 0xff] ^ kCrc[1][(hi >> 16) & 0xff] ^ kCrc[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = kCrc[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

// ---------------------------------------------------------------- public: .npy

NpyInfo npy_info_bytes(const uint8_t* data, size_t n, const std::string& name) {
  return parse_npy(data, n, n, name).info;
}

NpyInfo npy_info(const std::string& path) {
  Fd f(path);
  return parse_npy_file(f, path).info;
}

Tensor read_npy_bytes(const uint8_t* data, size_t n, const std::string& name) {
  const Parsed h = parse_npy(data, n, n, name);
  const uint8_t* base = data + h.info.data_offset;
  return build_tensor(h, [&](void* dst, uint64_t off, size_t len) { std::memcpy(dst, base + off, len); });
}

Tensor read_npy(const std::string& path) {
  Fd f(path);
  const Parsed h = parse_npy_file(f, path);
  return build_tensor(h, [&](void* dst, uint64_t off, size_t len) {
    pread_all(f.fd, dst, h.info.data_offset + off, len, path);
  });
}

std::vector<uint8_t> npy_bytes(const Tensor& t) {
  const Tensor c = host_contiguous(t, "npy_bytes");
  const std::string head = header_bytes(c);
  std::vector<uint8_t> out(head.begin(), head.end());
  const auto* raw = static_cast<const uint8_t*>(c.raw_data());
  out.insert(out.end(), raw, raw + static_cast<size_t>(c.numel()) * c.element_size());
  return out;
}

void write_npy(const std::string& path, const Tensor& t) {
  const Tensor c = host_contiguous(t, "write_npy");
  const std::string head = header_bytes(c);  // throws for bfloat16 before any file is created
  AtomicFile f(path);
  f.write(head.data(), head.size());
  f.write(c.raw_data(), static_cast<size_t>(c.numel()) * c.element_size());
  f.commit();
}

// ---------------------------------------------------------------- public: .npz

std::map<std::string, Tensor> read_npz_bytes(const uint8_t* data, size_t n, const std::string& name) {
  std::map<std::string, Tensor> out;
  for (const ZipEntry& z : central_directory(data, n, name)) {
    const std::string& m = z.name;
    if (m.size() < 4 || m.compare(m.size() - 4, 4, ".npy") != 0) continue;  // folders, non-array members
    const std::string key = m.substr(0, m.size() - 4);
    CORTEX_CHECK(out.count(key) == 0, name, ": duplicate member ", quoted(m));
    out.emplace(key, read_member(data, n, z, name));
  }
  return out;
}

std::map<std::string, Tensor> read_npz(const std::string& path) {
  auto m = MappedFile::open(path);
  return read_npz_bytes(m->data(), m->size(), path);
}

void write_npz(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& arrays, bool compress) {
  // Headers first: every error (bfloat16, undefined tensor) surfaces before a file is created.
  std::vector<std::pair<std::string, Tensor>> prepared;
  std::vector<std::string> heads;
  for (const auto& [key, t] : arrays) {
    prepared.emplace_back(key + ".npy", host_contiguous(t, "write_npz"));
    try {
      heads.push_back(header_bytes(prepared.back().second));
    } catch (const Error& e) {
      throw Error(detail::cat("write_npz: ", path, ": key ", quoted(key), ": ", e.what()));
    }
  }
  ZipWriter w(path);
  for (size_t i = 0; i < prepared.size(); ++i) w.add(prepared[i].first, heads[i], prepared[i].second, compress);
  w.finish();
}

}  // namespace cortex::io
