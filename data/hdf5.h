// NSD-style image bricks: one uint8 HDF5 dataset of images, (N, H, W, C) or (N, H, W) — NSD's
// nsd_stimuli.hdf5 holds "imgBrick", 73,000 x 425 x 425 x 3 (39 GB). Images are read one at a time
// (a hyperslab per image), so the brick never sits in memory.
//
// HDF5 is an optional dependency: CMake's CORTEX_HDF5=AUTO (default: used when libhdf5-dev is
// installed), ON (required) or OFF. Built without it, hdf5_available() is false and opening or
// writing a brick throws an Error saying so.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "tensor/tensor.h"

namespace cortex::data {

bool hdf5_available();

class ImageBrick {
 public:
  // Opens `dataset` in the HDF5 file at `path`; checks it is uint8 with 3 or 4 dims (C = 1 or 3).
  ImageBrick(const std::string& path, const std::string& dataset = "imgBrick");
  ~ImageBrick();
  ImageBrick(const ImageBrick&) = delete;
  ImageBrick& operator=(const ImageBrick&) = delete;

  int64_t size() const { return n_; }         // number of images
  int64_t height() const { return h_; }
  int64_t width() const { return w_; }
  int64_t channels() const { return c_; }
  const std::string& path() const { return path_; }
  // Image i as uint8 (H, W, C).
  Tensor read(int64_t i) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_, dataset_;
  int64_t n_ = 0, h_ = 0, w_ = 0, c_ = 0;
};

// Writes uint8 images (N, H, W, C) as `dataset` of a new HDF5 file at `path` (through a temporary
// file renamed at the end), chunked one image per chunk as NSD's brick is read.
void write_image_brick(const std::string& path, const std::string& dataset, const Tensor& images);

}  // namespace cortex::data
