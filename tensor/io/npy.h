// NumPy .npy and .npz files.
//
// .npy: format versions 1.0, 2.0 and 3.0; little-endian (or byte-order-free) dtypes
//   '<f4' '<f8' '<f2' '<i4' '<i8' '|u1' '|b1' read as float32 float64 float16 int32 int64 uint8 bool,
//   and the narrow integers '<i2' (NSD's int16 betas) '|i1' '<u2' read into int32, '<u4' into int64.
//   C and Fortran order; a Fortran-order file gives the same C-contiguous tensor NumPy would show.
//   Anything else (big-endian, object/pickled, strings, structured, complex, '<u8') is refused with a
//   cortex::Error naming the file and the field.
// .npz: a zip archive of .npy members (stored or deflated, zip64 aware, CRC-32 checked); keys are
//   the member names without ".npy", as in np.load. Members whose names do not end in ".npy" are
//   skipped (np.load returns those as raw bytes, which have no tensor meaning).
//
// Every reader checks sizes before touching data: a truncated file, a wrong magic, a header whose
// sizes lie, an unsupported dtype or a shape whose product overflows gives a cortex::Error of the
// form "<file>: <problem>", never a crash or an out-of-bounds read. Writers go through AtomicFile.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::io {

// What an .npy header says, without reading the data.
struct NpyInfo {
  std::string descr;       // as written in the file, e.g. "<f4"
  DType dtype;             // dtype of the tensor read_npy returns
  Shape shape;
  bool fortran_order = false;
  int version_major = 1, version_minor = 0;
  uint64_t data_offset = 0;  // bytes from the start of the file to the first element
  uint64_t data_nbytes = 0;  // numel * item size in the file
};

// ---- .npy ----
Tensor read_npy(const std::string& path);
// Parses an in-memory .npy file; `name` is used in error messages (a path, "x.npz: member 'a.npy'").
Tensor read_npy_bytes(const uint8_t* data, size_t n, const std::string& name);
NpyInfo npy_info(const std::string& path);  // reads only the header
NpyInfo npy_info_bytes(const uint8_t* data, size_t n, const std::string& name);
// Writes format 1.0 (2.0 when the header needs more than 65535 bytes), C order. Any tensor: views are
// made contiguous and CUDA tensors copied to the host first. bfloat16 has no NumPy dtype and is
// refused (convert with .to(DType::Float32) or use safetensors).
void write_npy(const std::string& path, const Tensor& t);
std::vector<uint8_t> npy_bytes(const Tensor& t);  // the bytes write_npy would write

// ---- .npz ----
std::map<std::string, Tensor> read_npz(const std::string& path);
std::map<std::string, Tensor> read_npz_bytes(const uint8_t* data, size_t n, const std::string& name);
// Keys become member names key + ".npy". compress=false is np.savez (stored members),
// compress=true is np.savez_compressed (deflated; a member that would not shrink, or one over
// 1 GiB, is stored instead). Zip64 records are written when sizes or offsets need them.
void write_npz(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& arrays,
               bool compress = false);
// The map overload is a template so that a braced list {{"a", t}, ...} picks the vector one.
template <class Map>
  requires std::is_same_v<Map, std::map<std::string, Tensor>>
void write_npz(const std::string& path, const Map& arrays, bool compress = false) {
  write_npz(path, std::vector<std::pair<std::string, Tensor>>(arrays.begin(), arrays.end()), compress);
}

// CRC-32 (the zip/PNG polynomial 0xEDB88320), continuing from `crc` (0 to start).
uint32_t crc32(const void* data, size_t n, uint32_t crc = 0);

}  // namespace cortex::io
