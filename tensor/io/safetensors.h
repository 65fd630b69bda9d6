// safetensors files: an 8-byte little-endian header length N, N bytes of JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the
// raw little-endian bytes, offsets counted from the end of the header.
//
// Reading is memory-mapped and lazy: SafeTensors::open maps the file and parses only the header;
// get(name) returns a tensor that views the mapping without copying (the mapping stays alive while
// any such tensor does, and writing to the tensor copies the touched pages, never the file). A
// tensor whose bytes are not aligned to its element size, an I16/I8 tensor (read into int32) and a
// BOOL tensor holding bytes other than 0/1 are copied instead.
//
// The header is validated before any tensor is touched: header length within the file, valid
// UTF-8 JSON, known dtypes, shapes whose element count fits int64, offsets inside the data
// section, end - begin == numel * dtype size, no two tensors overlapping. Any violation is a
// cortex::Error "<file>: <problem>". Writing goes through AtomicFile.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::io {

struct SafeTensorInfo {
  std::string dtype_name;  // as in the file: "F32", "BF16", "I16", ...
  DType dtype;             // dtype of the tensor get() returns (I16 and I8 become Int32)
  Shape shape;
  uint64_t begin = 0, end = 0;  // data_offsets, relative to the start of the data section
};

class SafeTensors {
 public:
  // Maps `path` and validates its header.
  static SafeTensors open(const std::string& path);
  // Parses an in-memory file (the bytes are copied once into an owned buffer); `name` is used in
  // error messages.
  static SafeTensors from_bytes(const uint8_t* data, size_t n, const std::string& name);

  const std::vector<std::string>& keys() const;  // sorted, as the Python library lists them
  bool contains(const std::string& key) const;
  size_t size() const;
  const SafeTensorInfo& info(const std::string& key) const;  // throws naming the file and key
  Tensor get(const std::string& key) const;                  // CPU tensor; .to(device) as needed
  std::map<std::string, Tensor> get_all() const;
  const std::map<std::string, std::string>& metadata() const;  // "__metadata__", empty if absent
  const std::string& path() const;

  struct State;  // opaque: the mapping and the parsed header, shared by copies of this handle

 private:
  explicit SafeTensors(std::shared_ptr<const State> s) : s_(std::move(s)) {}
  std::shared_ptr<const State> s_;
};

// Every tensor of a file (views of one mapping).
std::map<std::string, Tensor> load_safetensors(const std::string& path);

// Writes the tensors (views made contiguous, CUDA tensors copied to the host) like the Python
// library does: data laid out by decreasing element size then name, so every tensor is aligned
// to its element size; "__metadata__" first in the header, then the tensors in data order; the
// header padded with spaces to a multiple of 8 bytes. Duplicate names and the name
// "__metadata__" are refused.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// The map overload is a template so that a braced list {{"w", t}, ...} picks the vector one.
template <class Map>
  requires std::is_same_v<Map, std::map<std::string, Tensor>>
void write_safetensors(const std::string& path, const Map& tensors,
                       const std::map<std::string, std::string>& metadata = {}) {
  write_safetensors(path, std::vector<std::pair<std::string, Tensor>>(tensors.begin(), tensors.end()), metadata);
}
std::vector<uint8_t> safetensors_bytes(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                       const std::map<std::string, std::string>& metadata = {});

}  // namespace cortex::io
