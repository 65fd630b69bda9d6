#include "models/load.h"

#include <set>
#include <sstream>

#include "autograd/autograd.h"
#include "models/layers.h"
#include "tensor/error.h"

namespace cortex::models {

std::string map_key(const std::string& file_key, const LoadOptions& opts) {
  if (file_key.compare(0, opts.prefix.size(), opts.prefix) != 0) return "";
  std::string k = file_key.substr(opts.prefix.size());
  for (auto& [from, to] : opts.rename) {
    if (k == from) {
      k = to;
      break;
    }
    if (k.size() > from.size() && k.compare(0, from.size(), from) == 0 && k[from.size()] == '.') {
      k = to + k.substr(from.size());
      break;
    }
  }
  for (auto& ig : opts.ignore)
    if (k.compare(0, ig.size(), ig) == 0) return "";
  return k;
}

namespace {
// At most 20 names per category, so one error stays readable for a whole wrong checkpoint.
void list(std::ostringstream& os, const char* what, const std::vector<std::string>& v) {
  if (v.empty()) return;
  os << "; " << what << " (" << v.size() << "): ";
  for (size_t i = 0; i < v.size() && i < 20; ++i) os << (i ? ", " : "") << v[i];
  if (v.size() > 20) os << ", ... and " << v.size() - 20 << " more";
}
}  // namespace

void load_state_dict(Module& m, const std::map<std::string, Tensor>& tensors, const LoadOptions& opts,
                     const std::string& source) {
  std::map<std::string, Tensor> mapped;  // model key -> tensor
  std::map<std::string, std::string> origin;
  std::vector<std::string> duplicate;
  for (auto& [fk, t] : tensors) {
    std::string k = map_key(fk, opts);
    if (k.empty()) continue;
    if (mapped.count(k)) duplicate.push_back(fk + " (also " + origin[k] + ")");
    mapped[k] = t;
    origin[k] = fk;
  }
  for (auto& [n, sub] : m.named_modules()) {
    auto* bn = dynamic_cast<BatchNorm2d*>(sub);
    CORTEX_CHECK(!bn || !bn->folded(), source, ": cannot load into a model whose batch norms are folded ('", n,
                 "'); load first, then fold");
  }
  auto targets = m.named_tensors();
  std::vector<std::string> missing, bad_shape, bad_dtype, unexpected;
  std::set<std::string> used;
  for (auto& [k, dst] : targets) {
    auto it = mapped.find(k);
    if (it == mapped.end()) {
      missing.push_back(opts.prefix + k);
      continue;
    }
    used.insert(k);
    const Tensor& src = it->second;
    if (src.shape() != dst->shape())
      bad_shape.push_back(origin[k] + " expected " + shape_str(dst->shape()) + " found " + shape_str(src.shape()));
    else if (src.dtype() != dst->dtype())
      bad_dtype.push_back(origin[k] + " expected " + dtype_name(dst->dtype()) + " found " + dtype_name(src.dtype()));
  }
  for (auto& [k, t] : mapped)
    if (!used.count(k)) unexpected.push_back(origin[k]);
  if (!missing.empty() || !bad_shape.empty() || !bad_dtype.empty() || !unexpected.empty() || !duplicate.empty()) {
    std::ostringstream os;
    os << source << ": weights do not match the model";
    list(os, "missing keys", missing);
    list(os, "unexpected keys", unexpected);
    list(os, "shape mismatches", bad_shape);
    list(os, "dtype mismatches", bad_dtype);
    list(os, "keys mapped twice", duplicate);
    throw Error(os.str());
  }
  // Assign only after everything matched, so a failed load leaves the model as it was.
  for (auto& [k, dst] : targets) *dst = mapped.at(k);
}

void load_safetensors(Module& m, const io::SafeTensors& file, const LoadOptions& opts) {
  std::map<std::string, Tensor> tensors;
  for (auto& k : file.keys())
    if (!map_key(k, opts).empty()) tensors[k] = file.get(k);
  load_state_dict(m, tensors, opts, file.path());
}

void load_safetensors(Module& m, const std::string& path, const LoadOptions& opts) {
  load_safetensors(m, io::SafeTensors::open(path), opts);
}

std::map<std::string, Tensor> state_dict(Module& m) {
  std::map<std::string, Tensor> out;
  for (auto& [k, t] : m.named_tensors()) out[k] = detach(*t).contiguous();
  return out;
}

}  // namespace cortex::models
