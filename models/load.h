// Loading weights into a module tree by state_dict name, strictly: every key the model expects must
// be in the file with the same shape and dtype, and every key of the file (under the prefix, not
// ignored) must be used. All problems are collected and reported in one cortex::Error that names
// each key.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "models/module.h"
#include "tensor/io/safetensors.h"

namespace cortex::models {

struct LoadOptions {
  // Only file keys starting with this are considered, with the prefix removed ("visual." for a
  // whole CLIP checkpoint); the others are ignored.
  std::string prefix;
  // Key rewrites applied after the prefix is removed: a key equal to `from`, or starting with
  // `from` + ".", gets `from` replaced by `to` (per-family name maps). First match wins.
  std::vector<std::pair<std::string, std::string>> rename;
  // Keys (after prefix and rename) starting with one of these are skipped (e.g. MAE's "decoder").
  std::vector<std::string> ignore;
};

// The file key -> model key map of `opts` applied to one key; empty when the key is skipped.
std::string map_key(const std::string& file_key, const LoadOptions& opts);

// Assigns every tensor of `m` (named_tensors()) from `tensors`. `source` names the file in errors.
void load_state_dict(Module& m, const std::map<std::string, Tensor>& tensors, const LoadOptions& opts = {},
                     const std::string& source = "state_dict");
// Same, from a safetensors file (tensors are views of its mapping).
void load_safetensors(Module& m, const io::SafeTensors& file, const LoadOptions& opts = {});
void load_safetensors(Module& m, const std::string& path, const LoadOptions& opts = {});

// The state_dict of `m` (contiguous float32/int64 tensors by name), e.g. to write_safetensors it.
std::map<std::string, Tensor> state_dict(Module& m);

}  // namespace cortex::models
