#include "data/hdf5.h"

#include <filesystem>
#include <unistd.h>

#if CORTEX_HAVE_HDF5
#include <hdf5.h>
#endif

namespace fs = std::filesystem;

namespace cortex::data {

#if CORTEX_HAVE_HDF5

namespace {

// HDF5 prints its whole error stack to stderr unless told not to; here every failure becomes one
// Error line instead.
void quiet_hdf5() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

// Closes an HDF5 handle on scope exit.
class Hid {
 public:
  Hid(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Hid() {
    if (id_ >= 0) close_(id_);
  }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

}  // namespace

struct ImageBrick::Impl {
  hid_t file = -1, dset = -1;
  ~Impl() {
    if (dset >= 0) H5Dclose(dset);
    if (file >= 0) H5Fclose(file);
  }
};

bool hdf5_available() { return true; }

ImageBrick::ImageBrick(const std::string& path, const std::string& dataset)
    : impl_(std::make_unique<Impl>()), path_(path), dataset_(dataset) {
  quiet_hdf5();
  CORTEX_CHECK(fs::is_regular_file(path), "ImageBrick: no file at ", path);
#if H5_VERSION_GE(1, 12, 0)
  const htri_t is_hdf5 = H5Fis_accessible(path.c_str(), H5P_DEFAULT);
#else
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());  // Debian 12 ships HDF5 1.10
#endif
  CORTEX_CHECK(is_hdf5 > 0, "ImageBrick: ", path, " is not an HDF5 file");
  impl_->file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  CORTEX_CHECK(impl_->file >= 0, "ImageBrick: cannot open ", path, " (truncated or damaged?)");
  CORTEX_CHECK(H5Lexists(impl_->file, dataset.c_str(), H5P_DEFAULT) > 0, "ImageBrick: ", path, " has no dataset '",
               dataset, "'");
  impl_->dset = H5Dopen2(impl_->file, dataset.c_str(), H5P_DEFAULT);
  CORTEX_CHECK(impl_->dset >= 0, "ImageBrick: ", path, ": '", dataset, "' is not a dataset");
  {
    const Hid type(H5Dget_type(impl_->dset), H5Tclose);
    CORTEX_CHECK(type.ok(), "ImageBrick: ", path, ": cannot read the type of '", dataset, "'");
    const bool u8 = H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == 1 &&
                    H5Tget_sign(type.get()) == H5T_SGN_NONE;
    CORTEX_CHECK(u8, "ImageBrick: ", path, ": expected '", dataset, "' to hold uint8 images, found another type");
  }
  const Hid space(H5Dget_space(impl_->dset), H5Sclose);
  const int rank = space.ok() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  CORTEX_CHECK(rank == 3 || rank == 4, "ImageBrick: ", path, ": expected '", dataset,
               "' of shape (N, H, W[, C]), found ", rank, " dims");
  hsize_t dims[4] = {0, 0, 0, 1};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  n_ = static_cast<int64_t>(dims[0]), h_ = static_cast<int64_t>(dims[1]), w_ = static_cast<int64_t>(dims[2]);
  c_ = static_cast<int64_t>(dims[3]);
  CORTEX_CHECK(c_ == 1 || c_ == 3, "ImageBrick: ", path, ": expected 1 or 3 channels in '", dataset, "', found ", c_);
  CORTEX_CHECK(h_ > 0 && w_ > 0, "ImageBrick: ", path, ": '", dataset, "' has empty images");
}

ImageBrick::~ImageBrick() = default;

Tensor ImageBrick::read(int64_t i) const {
  CORTEX_CHECK(i >= 0 && i < n_, "ImageBrick: ", path_, ": image ", i, " out of range [0, ", n_, ")");
  Tensor out = empty({h_, w_, c_}, DType::UInt8);
  const Hid file_space(H5Dget_space(impl_->dset), H5Sclose);
  const hsize_t start[4] = {static_cast<hsize_t>(i), 0, 0, 0};
  const hsize_t count[4] = {1, static_cast<hsize_t>(h_), static_cast<hsize_t>(w_), static_cast<hsize_t>(c_)};
  const int rank = H5Sget_simple_extent_ndims(file_space.get());
  herr_t st = H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
  const hsize_t mem_dims[1] = {static_cast<hsize_t>(h_ * w_ * c_)};
  const Hid mem(H5Screate_simple(1, mem_dims, nullptr), H5Sclose);
  if (st >= 0 && rank >= 3)
    st = H5Dread(impl_->dset, H5T_NATIVE_UINT8, mem.get(), file_space.get(), H5P_DEFAULT, out.data<uint8_t>());
  CORTEX_CHECK(st >= 0, "ImageBrick: ", path_, ": reading image ", i, " of '", dataset_, "' failed (a truncated file?)");
  return out;
}

void write_image_brick(const std::string& path, const std::string& dataset, const Tensor& images) {
  quiet_hdf5();
  CORTEX_CHECK(images.defined() && images.dtype() == DType::UInt8 && images.dim() == 4,
               "write_image_brick: expected uint8 images (N, H, W, C), found ",
               images.defined() ? std::string(dtype_name(images.dtype())) + " " + shape_str(images.shape())
                                : std::string("undefined"));
  CORTEX_CHECK(!dataset.empty(), "write_image_brick: expected a dataset name");
  const Tensor im = images.contiguous();
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    const Hid file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    CORTEX_CHECK(file.ok(), "write_image_brick: cannot create ", tmp);
    hsize_t dims[4];
    for (int k = 0; k < 4; ++k) dims[k] = static_cast<hsize_t>(im.size(k));
    const Hid space(H5Screate_simple(4, dims, nullptr), H5Sclose);
    const Hid dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    if (im.size(0) > 0) {  // one image per chunk, as it is read
      const hsize_t chunk[4] = {1, dims[1] ? dims[1] : 1, dims[2] ? dims[2] : 1, dims[3] ? dims[3] : 1};
      H5Pset_chunk(dcpl.get(), 4, chunk);
    }
    const Hid dset(H5Dcreate2(file.get(), dataset.c_str(), H5T_STD_U8LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                   H5Dclose);
    const bool ok = dset.ok() && (im.numel() == 0 || H5Dwrite(dset.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                                               im.data<uint8_t>()) >= 0);
    if (!ok) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw Error("write_image_brick: writing '" + dataset + "' to " + tmp + " failed");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  CORTEX_CHECK(!ec, "write_image_brick: cannot rename ", tmp, " to ", path, ": ", ec.message());
}

#else  // built without HDF5

struct ImageBrick::Impl {};

bool hdf5_available() { return false; }

ImageBrick::ImageBrick(const std::string& path, const std::string& dataset) : path_(path), dataset_(dataset) {
  throw Error("ImageBrick: " + path + ": this build has no HDF5 support (install libhdf5-dev and reconfigure with "
              "-DCORTEX_HDF5=ON)");
}

ImageBrick::~ImageBrick() = default;

Tensor ImageBrick::read(int64_t) const { throw Error("ImageBrick: this build has no HDF5 support"); }

void write_image_brick(const std::string& path, const std::string&, const Tensor&) {
  throw Error("write_image_brick: " + path + ": this build has no HDF5 support (install libhdf5-dev and reconfigure "
              "with -DCORTEX_HDF5=ON)");
}

#endif

}  // namespace cortex::data
