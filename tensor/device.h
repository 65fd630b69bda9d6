#pragma once
#include <cstdint>
#include <string>

namespace cortex {

// Where a tensor's storage lives and which backend table runs its ops (kernels/dispatch.h).
//   CPU:  host memory, the CPU kernels.
//   CUDA: GPU memory, the CUDA kernels.
//   EMU:  the emulated CUDA device: host memory (the host allocator, so copies to and from the CPU
//         are memcpy and data pointers are readable on the host), but its ops run the CUDA kernel
//         sources on the SIMT emulator (../shared/SIMT.md). It exists in every build, with or
//         without a CUDA toolkit, so the CUDA kernels are tested where there is no GPU.
struct Device {
  enum class Type : uint8_t { CPU, CUDA, EMU };
  Type type = Type::CPU;
  int index = 0;

  static Device cpu() { return {Type::CPU, 0}; }
  static Device cuda(int i = 0) { return {Type::CUDA, i}; }
  static Device emu() { return {Type::EMU, 0}; }
  static Device parse(const std::string& s);  // "cpu", "emu", "cuda", "cuda:1"
  bool is_cpu() const { return type == Type::CPU; }
  bool is_cuda() const { return type == Type::CUDA; }
  bool is_emu() const { return type == Type::EMU; }
  // True when the storage is host memory that plain C++ may read and write (CPU and EMU).
  bool is_host_memory() const { return type != Type::CUDA; }
  bool operator==(const Device&) const = default;
  std::string str() const {
    switch (type) {
      case Type::CPU: return "cpu";
      case Type::EMU: return "emu";
      case Type::CUDA: break;
    }
    return "cuda:" + std::to_string(index);
  }
};

// True when this build has the CUDA backend and a device is present (the tests skip otherwise).
bool cuda_available();
int cuda_device_count();

}  // namespace cortex
