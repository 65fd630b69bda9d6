#include "encoding/model_file.h"

#include <cstdlib>

#include "tensor/io/safetensors.h"

namespace cortex::encoding {
namespace {

const std::string& need(const std::map<std::string, std::string>& meta, const std::string& path, const char* key) {
  auto it = meta.find(key);
  CORTEX_CHECK(it != meta.end(), "model file ", path, ": no '", key, "' in its metadata (format_version ",
               kModelFormatVersion, " needs every key of docs/model-file.md); refit it with this cortex");
  return it->second;
}

int64_t integer(const std::map<std::string, std::string>& meta, const std::string& path, const char* key) {
  const std::string& v = need(meta, path, key);
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  CORTEX_CHECK(!v.empty() && end && *end == '\0', "model file ", path, ": metadata '", key,
               "' is not an integer: '", v, "'");
  return static_cast<int64_t>(x);
}

}  // namespace

std::map<std::string, std::string> model_metadata(const ModelSettings& s) {
  return {{"format_version", std::to_string(kModelFormatVersion)},
          {"readout", s.readout},
          {"arch", s.arch},
          {"config", s.config},
          {"tap", s.tap},
          {"pool", std::to_string(s.pool)},
          {"image_size", std::to_string(s.image_size)},
          {"hemi", s.hemi},
          {"weights", s.weights},
          {"core_size", std::to_string(s.core_size)},
          {"hidden", std::to_string(s.hidden)},
          {"loss", s.loss},
          {"finetune", s.finetune ? "1" : "0"},
          {"gaussian_sigma", s.gaussian_sigma},
          {"shared_features", std::to_string(s.shared_features)},
          {"position_mlp", s.position_mlp ? "1" : "0"},
          {"dtype", s.dtype}};
}

ModelSettings model_settings(const std::map<std::string, std::string>& meta, const std::string& path) {
  auto v = meta.find("format_version");
  CORTEX_CHECK(v != meta.end(), "model file ", path, ": no 'format_version' in its metadata; not a model file of ",
               "cortex fit, or one written before the format was versioned (refit it)");
  CORTEX_CHECK(v->second == std::to_string(kModelFormatVersion), "model file ", path, ": format_version '", v->second,
               "', this cortex reads version ", kModelFormatVersion, " (docs/model-file.md)");
  ModelSettings s;
  s.readout = need(meta, path, "readout");
  s.arch = need(meta, path, "arch");
  s.config = need(meta, path, "config");
  s.tap = need(meta, path, "tap");
  s.weights = need(meta, path, "weights");
  s.hemi = need(meta, path, "hemi");
  s.loss = need(meta, path, "loss");
  s.pool = integer(meta, path, "pool");
  s.image_size = integer(meta, path, "image_size");
  s.core_size = integer(meta, path, "core_size");
  s.hidden = integer(meta, path, "hidden");
  const std::string& f = need(meta, path, "finetune");
  CORTEX_CHECK(f == "0" || f == "1", "model file ", path, ": metadata 'finetune' must be 0 or 1, found '", f, "'");
  s.finetune = f == "1";
  // Optional keys (added within format_version 1; a file without them had the defaults).
  if (meta.count("gaussian_sigma")) s.gaussian_sigma = meta.at("gaussian_sigma");
  CORTEX_CHECK(s.gaussian_sigma == "full" || s.gaussian_sigma == "uncorrelated" || s.gaussian_sigma == "isotropic",
               "model file ", path, ": metadata 'gaussian_sigma' must be full, uncorrelated or isotropic, found '",
               s.gaussian_sigma, "'");
  if (meta.count("shared_features")) s.shared_features = integer(meta, path, "shared_features");
  CORTEX_CHECK(s.shared_features >= 0, "model file ", path, ": metadata 'shared_features' must be >= 0");
  if (meta.count("position_mlp")) {
    const std::string& pm = meta.at("position_mlp");
    CORTEX_CHECK(pm == "0" || pm == "1", "model file ", path, ": metadata 'position_mlp' must be 0 or 1, found '", pm, "'");
    s.position_mlp = pm == "1";
  }
  if (meta.count("dtype")) s.dtype = meta.at("dtype");
  CORTEX_CHECK(s.dtype == "fp32" || s.dtype == "bf16", "model file ", path, ": metadata 'dtype' must be fp32 or bf16, found '",
               s.dtype, "'");
  CORTEX_CHECK(s.pool >= 1 && s.image_size >= 1 && s.core_size >= 1 && s.hidden >= 1, "model file ", path,
               ": pool, image_size, core_size and hidden must be >= 1");
  return s;
}

void write_model_file(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const ModelSettings& s) {
  io::write_safetensors(path, tensors, model_metadata(s));
}

std::pair<std::map<std::string, Tensor>, ModelSettings> read_model_file(const std::string& path) {
  const ModelSettings s = model_settings(io::SafeTensors::open(path).metadata(), path);
  return {io::load_safetensors(path), s};
}

}  // namespace cortex::encoding
