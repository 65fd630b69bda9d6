#include "tensor/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>

#include "tensor/io/atomic_file.h"

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian and is viewed in place");

namespace cortex::io {

namespace {

using json = nlohmann::json;

// The Python library refuses headers over 100 MB; so do we (a larger one is a corrupt length).
constexpr uint64_t kMaxHeader = 100'000'000;

// One printable line, whatever bytes a message quotes.
std::string printable(const std::string& s, size_t max = 120) {
  std::string out;
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
  return out;
}

struct FileType {
  const char* name;
  DType out;
  int size;  // bytes per element in the file
};
constexpr FileType kTypes[] = {
    {"F64", DType::Float64, 8}, {"F32", DType::Float32, 4}, {"F16", DType::Float16, 2},
    {"BF16", DType::BFloat16, 2}, {"I64", DType::Int64, 8}, {"I32", DType::Int32, 4},
    {"I16", DType::Int32, 2},   {"I8", DType::Int32, 1},    {"U8", DType::UInt8, 1},
    {"BOOL", DType::Bool, 1},
};

const char* file_dtype(DType dt) {
  switch (dt) {
    case DType::Float64: return "F64";
    case DType::Float32: return "F32";
    case DType::Float16: return "F16";
    case DType::BFloat16: return "BF16";
    case DType::Int64: return "I64";
    case DType::Int32: return "I32";
    case DType::UInt8: return "U8";
    case DType::Bool: return "BOOL";
  }
  throw Error("write_safetensors: unknown dtype");
}

int file_size_of(const std::string& dtype_name) {
  for (const FileType& t : kTypes)
    if (dtype_name == t.name) return t.size;
  return 0;
}

uint64_t checked_u64(const json& v, const std::string& where, const char* what) {
  CORTEX_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), where, ": ", what,
               " must hold non-negative integers, found ", printable(v.dump()));
  return v.get<uint64_t>();
}

}  // namespace

struct SafeTensors::State {
  std::string path;
  std::shared_ptr<void> owner;  // the mapping or buffer that holds the bytes
  const uint8_t* data = nullptr;  // start of the data section
  uint64_t data_size = 0;
  std::map<std::string, SafeTensorInfo> infos;
  std::vector<std::string> keys;
  std::map<std::string, std::string> metadata;
};

namespace {

std::shared_ptr<SafeTensors::State> parse(const uint8_t* p, size_t n, const std::string& name) {
  auto s = std::make_shared<SafeTensors::State>();
  s->path = name;
  CORTEX_CHECK(n >= 8, name, ": truncated safetensors file: ", n, " bytes, shorter than the 8-byte header length");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | p[i];
  CORTEX_CHECK(hlen <= n - 8, name, ": header length ", hlen, " exceeds the file (", n,
               " bytes): truncated, or not a safetensors file");
  CORTEX_CHECK(hlen <= kMaxHeader, name, ": header length ", hlen, " is over the 100 MB limit");
  const char* h = reinterpret_cast<const char*>(p + 8);
  CORTEX_CHECK(hlen >= 2 && h[0] == '{', name, ": header does not start with '{' (not a safetensors file?)");
  json doc;
  try {
    doc = json::parse(h, h + hlen);
  } catch (const json::exception& e) {
    throw Error(detail::cat(name, ": invalid JSON header: ", printable(e.what(), 240)));
  }
  CORTEX_CHECK(doc.is_object(), name, ": the JSON header is not an object");
  s->data = p + 8 + hlen;
  s->data_size = n - 8 - hlen;

  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    const std::string where = detail::cat(name, ": tensor '", printable(key), "'");
    if (key == "__metadata__") {
      CORTEX_CHECK(v.is_object(), name, ": __metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        CORTEX_CHECK(m.value().is_string(), name, ": __metadata__ value for '", printable(m.key()),
                     "' must be a string, found ", printable(m.value().dump()));
        s->metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    CORTEX_CHECK(v.is_object(), where, ": entry must be an object with dtype, shape and data_offsets");
    const auto dt = v.find("dtype"), sh = v.find("shape"), off = v.find("data_offsets");
    CORTEX_CHECK(dt != v.end() && dt->is_string(), where, ": missing or non-string 'dtype'");
    CORTEX_CHECK(sh != v.end() && sh->is_array(), where, ": missing or non-array 'shape'");
    CORTEX_CHECK(off != v.end() && off->is_array() && off->size() == 2, where,
                 ": 'data_offsets' must be [begin, end]");
    SafeTensorInfo info;
    info.dtype_name = dt->get<std::string>();
    const int es = file_size_of(info.dtype_name);
    CORTEX_CHECK(es > 0, where, ": unsupported dtype '", printable(info.dtype_name),
                 "' (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
    for (const FileType& t : kTypes)
      if (info.dtype_name == t.name) info.dtype = t.out;
    CORTEX_CHECK(sh->size() <= 64, where, ": shape has ", sh->size(), " dimensions (at most 64 supported)");
    uint64_t numel = 1, span = 1;
    for (const json& d : *sh) {
      const uint64_t u = checked_u64(d, where, "'shape'");
      CORTEX_CHECK(u <= static_cast<uint64_t>(INT64_MAX), where, ": shape entry ", u, " does not fit int64");
      info.shape.push_back(static_cast<int64_t>(u));
      // span (zeros counted as 1) bounds the strides, so it must fit int64 too.
      CORTEX_CHECK(!__builtin_mul_overflow(numel, u, &numel) && numel <= static_cast<uint64_t>(INT64_MAX) &&
                       !__builtin_mul_overflow(span, std::max<uint64_t>(u, 1), &span) &&
                       span <= static_cast<uint64_t>(INT64_MAX),
                   where, ": shape ", printable(sh->dump()), " has more elements than int64 can count");
    }
    uint64_t nbytes = 0;
    CORTEX_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(es), &nbytes), where, ": shape ",
                 shape_str(info.shape), " of ", info.dtype_name, " overflows the byte count");
    info.begin = checked_u64((*off)[0], where, "'data_offsets'");
    info.end = checked_u64((*off)[1], where, "'data_offsets'");
    CORTEX_CHECK(info.begin <= info.end && info.end <= s->data_size, where, ": data_offsets [", info.begin, ", ",
                 info.end, "] lie outside the data section of ", s->data_size, " bytes (truncated?)");
    CORTEX_CHECK(info.end - info.begin == nbytes, where, ": data_offsets [", info.begin, ", ", info.end, "] span ",
                 info.end - info.begin, " bytes but shape ", shape_str(info.shape), " of ", info.dtype_name, " needs ",
                 nbytes);
    s->infos.emplace(key, std::move(info));
  }

  // No two tensors may share bytes (empty tensors occupy nothing).
  std::vector<std::pair<const std::string*, const SafeTensorInfo*>> order;
  for (const auto& [k, info] : s->infos) {
    s->keys.push_back(k);
    if (info.end > info.begin) order.emplace_back(&k, &info);
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
  for (size_t i = 1; i < order.size(); ++i)
    CORTEX_CHECK(order[i - 1].second->end <= order[i].second->begin, name, ": tensors '", printable(*order[i - 1].first),
                 "' and '", printable(*order[i].first), "' overlap in the data section");
  return s;
}

}  // namespace

SafeTensors SafeTensors::open(const std::string& path) {
  auto m = MappedFile::open(path);
  auto s = parse(m->data(), m->size(), path);
  s->owner = m;
  return SafeTensors(s);
}

SafeTensors SafeTensors::from_bytes(const uint8_t* data, size_t n, const std::string& name) {
  auto buf = Storage::allocate(n, Device::cpu());
  if (n > 0) std::memcpy(buf->data, data, n);
  auto s = parse(static_cast<const uint8_t*>(buf->data), n, name);
  s->owner = buf->owner;
  return SafeTensors(s);
}

const std::vector<std::string>& SafeTensors::keys() const { return s_->keys; }
bool SafeTensors::contains(const std::string& key) const { return s_->infos.count(key) != 0; }
size_t SafeTensors::size() const { return s_->infos.size(); }
const std::map<std::string, std::string>& SafeTensors::metadata() const { return s_->metadata; }
const std::string& SafeTensors::path() const { return s_->path; }

const SafeTensorInfo& SafeTensors::info(const std::string& key) const {
  auto it = s_->infos.find(key);
  if (it == s_->infos.end()) {
    std::string near;
    for (const auto& k : s_->keys)
      if (near.size() < 200) near += (near.empty() ? "" : ", ") + k;
    throw Error(detail::cat(s_->path, ": no tensor named '", printable(key), "' (", s_->keys.size(), " tensors: ",
                            printable(near, 200), ")"));
  }
  return it->second;
}

Tensor SafeTensors::get(const std::string& key) const {
  const SafeTensorInfo& info = this->info(key);
  const uint8_t* src = s_->data + info.begin;
  const size_t nbytes = static_cast<size_t>(info.end - info.begin);
  const int fsize = file_size_of(info.dtype_name);
  const size_t n = fsize > 0 ? nbytes / static_cast<size_t>(fsize) : 0;
  const Shape strides = contiguous_strides(info.shape);
  const size_t out_es = dtype_size(info.dtype);

  bool view = out_es == static_cast<size_t>(fsize) && reinterpret_cast<uintptr_t>(src) % out_es == 0;
  if (view && info.dtype == DType::Bool) view = std::all_of(src, src + nbytes, [](uint8_t b) { return b <= 1; });
  if (view) {
    // Zero copy: the storage shares ownership of the mapping.
    auto st = Storage::wrap(const_cast<uint8_t*>(src), nbytes, Device::cpu(), s_->owner);
    return Tensor(st, info.shape, strides, 0, info.dtype);
  }
  auto st = Storage::allocate(n * out_es, Device::cpu());
  if (info.dtype_name == "I16" || info.dtype_name == "I8") {
    auto* o = static_cast<int32_t*>(st->data);
    for (size_t i = 0; i < n; ++i) {
      if (fsize == 2) {
        int16_t v;
        std::memcpy(&v, src + 2 * i, 2);
        o[i] = v;
      } else {
        o[i] = static_cast<int8_t>(src[i]);
      }
    }
  } else if (info.dtype == DType::Bool) {
    auto* o = static_cast<bool*>(st->data);
    for (size_t i = 0; i < n; ++i) o[i] = src[i] != 0;
  } else if (nbytes > 0) {
    std::memcpy(st->data, src, nbytes);  // unaligned in the file: this one tensor is copied
  }
  return Tensor(st, info.shape, strides, 0, info.dtype);
}

std::map<std::string, Tensor> SafeTensors::get_all() const {
  std::map<std::string, Tensor> out;
  for (const auto& k : s_->keys) out.emplace(k, get(k));
  return out;
}

std::map<std::string, Tensor> load_safetensors(const std::string& path) { return SafeTensors::open(path).get_all(); }

// ---------------------------------------------------------------- writing

namespace {

struct Prepared {
  std::string header;  // 8-byte length + padded JSON
  std::vector<std::pair<std::string, Tensor>> ordered;  // host-contiguous, in data order
};

Prepared prepare(const std::vector<std::pair<std::string, Tensor>>& tensors,
                 const std::map<std::string, std::string>& metadata, const std::string& where) {
  Prepared p;
  for (const auto& [k, t] : tensors) {
    CORTEX_CHECK(k != "__metadata__", where, ": '__metadata__' cannot name a tensor");
    CORTEX_CHECK(t.defined(), where, ": tensor '", k, "' is undefined");
    p.ordered.emplace_back(k, t.to(Device::cpu()).contiguous());
  }
  // Larger elements first, then by name, as the Python library does: with the data section starting
  // on an 8-byte boundary every tensor is then aligned to its element size.
  std::sort(p.ordered.begin(), p.ordered.end(), [](const auto& a, const auto& b) {
    const size_t ea = a.second.element_size(), eb = b.second.element_size();
    return ea != eb ? ea > eb : a.first < b.first;
  });
  for (size_t i = 1; i < p.ordered.size(); ++i)
    CORTEX_CHECK(p.ordered[i - 1].first != p.ordered[i].first, where, ": duplicate tensor name '", p.ordered[i].first,
                 "'");
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& [k, t] : p.ordered) {
    const uint64_t nb = static_cast<uint64_t>(t.numel()) * t.element_size();
    h[k] = {{"dtype", file_dtype(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {off, off + nb}}};
    off += nb;
  }
  std::string text;
  try {
    text = h.dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::cat(where, ": cannot encode the header (names and metadata must be UTF-8): ", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) p.header.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  p.header += text;
  return p;
}

}  // namespace

std::vector<uint8_t> safetensors_bytes(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                       const std::map<std::string, std::string>& metadata) {
  const Prepared p = prepare(tensors, metadata, "safetensors_bytes");
  std::vector<uint8_t> out(p.header.begin(), p.header.end());
  for (const auto& [k, t] : p.ordered) {
    const auto* raw = static_cast<const uint8_t*>(t.raw_data());
    out.insert(out.end(), raw, raw + static_cast<size_t>(t.numel()) * t.element_size());
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const Prepared p = prepare(tensors, metadata, "write_safetensors: " + path);
  AtomicFile f(path);
  f.write(p.header.data(), p.header.size());
  for (const auto& [k, t] : p.ordered) f.write(t.raw_data(), static_cast<size_t>(t.numel()) * t.element_size());
  f.commit();
}

}  // namespace cortex::io
