// Datasets on disk: the Algonauts 2023 layout (DATA.md) and plain (images, responses) pairs,
// train/val/test splits and batch streaming.
//
// Memory: responses are read once into memory as float32 (N, V) (an Algonauts hemisphere is
// ~0.8 GB at most); images stay on disk as file paths and are decoded per batch, or, for an
// images.npy, are read once as uint8 (N, H, W, C).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::data {

class ImageBrick;

// One set of (images, responses) rows.
struct Dataset {
  std::string name;                          // what the errors and reports call it
  std::vector<std::string> image_paths;      // one PNG/JPEG per row, or empty when `images` is set
  Tensor images;                             // uint8 (N, H, W, C) when the images came as one array
  std::shared_ptr<const ImageBrick> brick;   // or an HDF5 image brick (data/hdf5.h), read per image,
  std::vector<int64_t> brick_rows;           // with the brick image of each kept row
  Tensor responses;                          // float32 (N, V); undefined when the split has none
  Tensor noise_ceiling;                      // float64 (V,) as a fraction in [0, 1]; undefined if absent
  bool noise_ceiling_was_percent = false;    // the file held percent (LoadOptions::nc_units), divided by 100
  std::map<std::string, std::vector<int64_t>> rois;  // ROI name -> response columns
  std::vector<int64_t> rows;                 // original row of each kept row (drop_nan may skip some)
  int64_t source_rows = 0;                   // rows on disk, before drop_nan
  int64_t lh_voxels = -1;                    // with hemi "both": columns [0, lh_voxels) are lh
  bool exif_transpose = false;               // image files: apply their EXIF orientation (io::read_image)

  int64_t size() const { return static_cast<int64_t>(rows.size()); }
  int64_t voxels() const { return responses.defined() ? responses.size(1) : 0; }
  Tensor image(int64_t i) const;             // uint8 (H, W, 3) of kept row i
};

// The units of a noise-ceiling file. The challenge released percent (0-100), NSD's own maps and our
// simulator write fractions (0-1). Auto: percent when the largest finite value of the ceiling (both
// hemispheres together) exceeds 1.5, else a fraction (a fraction cannot exceed 1; a percent ceiling
// whose every vertex is below 1.5 % needs Percent). Fraction refuses a value above 1, Percent one
// above 100. The dataset always holds the fraction.
enum class NcUnits { Auto, Fraction, Percent };
NcUnits parse_nc_units(const std::string& s);  // "auto", "fraction" or "percent"; else a cortex::Error

struct LoadOptions {
  std::string hemi = "lh";  // "lh", "rh" or "both" (lh columns first, then rh)
  NcUnits nc_units = NcUnits::Auto;
  bool drop_nan = false;    // skip rows with NaN responses instead of refusing them
  bool rois = true;         // read roi_masks/ (Algonauts) or rois.json (pairs)
};

// subjXX/ of the Algonauts 2023 layout. split "train" reads training_split/, "test" reads
// test_split/ (test_fmri and noise_ceiling are read when present: the challenge withholds the fMRI).
Dataset load_algonauts(const std::string& subject_dir, const std::string& split, const LoadOptions& opt = {});

// One ROI file set: roi_masks/<hemi>.<roi>_challenge_space.npy (int labels per vertex) with the
// label names from mapping_<roi>.json ({"0": "Unknown", "1": "V1v", ...}). Returns name -> columns.
std::map<std::string, std::vector<int64_t>> load_roi(const std::string& subject_dir, const std::string& hemi,
                                                     const std::string& roi);

// The PNG/JPEG files of a folder (extension in any case), sorted by name.
std::vector<std::string> list_images(const std::string& dir);

// Images alone (inference: cortex predict, cortex features): a folder of PNG/JPEG files (sorted by
// name), a uint8 (N, H, W[, C]) .npy, or an HDF5 brick (.hdf5/.h5, dataset "imgBrick"). No
// responses; rows 0..N-1 (N may be 0 for an empty .npy or brick).
Dataset load_images(const std::string& path);

// Plain pairs in `dir`: images.npy (uint8 (N, H, W[, C])), an images/ folder of PNG/JPEG files
// (sorted by name), or images.hdf5 (an NSD-style brick: dataset "imgBrick", uint8 (M, H, W[, C]),
// needs a build with HDF5) with optional image_ids.npy (N integers in [0, M): the brick image of
// each response row, as NSD's 73k ids; without it row i is image i); responses.npy (N, V); and
// optionally rois.json ({"name": [column, ...]}).
Dataset load_pairs(const std::string& dir, const LoadOptions& opt = {});

// Row indices of a split. Each vector is sorted.
struct Split {
  std::vector<int64_t> train, val, test;
};
// A seeded random partition of 0..n-1: round(n * val_fraction) rows to val, round(n * test_fraction)
// to test, the rest to train.
Split split_fraction(int64_t n, double val_fraction, double test_fraction, uint64_t seed);
// A split from index files: each a 1-D integer .npy ("" for none); indices must be in [0, n) and disjoint.
Split split_from_files(int64_t n, const std::string& train_npy, const std::string& val_npy,
                       const std::string& test_npy);

// Keeps rows `idx` of a dataset (images, responses and `rows` follow; ROIs and noise ceiling stay).
Dataset subset(const Dataset& d, const std::vector<int64_t>& idx);

struct Batch {
  Tensor images;     // uint8 (B, H, W, 3)
  Tensor responses;  // float32 (B, V), undefined when the dataset has none
  std::vector<int64_t> index;  // dataset rows of the batch
};

// Streams batches of a dataset over `order` (all rows in order when empty), decoding images
// per batch. All images of a batch must share their size. The dataset must outlive the stream.
class BatchStream {
 public:
  BatchStream(const Dataset& d, int64_t batch_size, std::vector<int64_t> order = {});
  bool next(Batch& out);  // false when done
  void reset() { pos_ = 0; }
  int64_t batches() const;

 private:
  const Dataset* d_;
  int64_t batch_;
  std::vector<int64_t> order_;
  size_t pos_ = 0;
};

}  // namespace cortex::data
