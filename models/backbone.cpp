#include "models/backbone.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "models/cnn.h"
#include "models/vit.h"
#include "tensor/error.h"

namespace cortex::models {

namespace {
const std::string kGrid = ":grid";
bool is_grid(const std::string& t) {
  return t.size() > kGrid.size() && t.compare(t.size() - kGrid.size(), kGrid.size(), kGrid) == 0;
}
}  // namespace

std::map<std::string, Tensor> Backbone::features(const Tensor& x, const std::vector<std::string>& taps,
                                                 bool stop_early) {
  std::set<std::string> modules;
  for (auto& [n, m] : named_modules())
    if (!n.empty()) modules.insert(n);
  std::vector<std::string> wanted;
  for (auto& t : taps) {
    const std::string base = is_grid(t) ? t.substr(0, t.size() - kGrid.size()) : t;
    if (base == "output") continue;
    if (!modules.count(base)) {
      std::ostringstream os;
      os << type_name() << ": unknown tap '" << t << "'; taps are module names such as ";
      int k = 0;
      for (auto& n : tap_names()) {
        if (n.find('.') != std::string::npos && k > 0) continue;  // top-level names keep the list short
        os << (k++ ? ", " : "") << n;
        if (k >= 12) break;
      }
      throw Error(os.str());
    }
    wanted.push_back(base);
  }
  // Asking for "output" (or for no tap) runs the whole forward.
  const bool want_output = std::find(taps.begin(), taps.end(), "output") != taps.end();
  TapContext ctx(wanted, stop_early && !want_output);
  Tensor out = (*this)(x, ctx);
  std::map<std::string, Tensor> result;
  for (auto& t : taps) {
    if (t == "output") continue;
    const std::string base = is_grid(t) ? t.substr(0, t.size() - kGrid.size()) : t;
    auto it = ctx.values().find(base);
    CORTEX_CHECK(it != ctx.values().end(), type_name(), ": tap '", base, "' was not reached by the forward pass");
    result[t] = is_grid(t) ? to_grid(t, it->second) : it->second;
  }
  if (!ctx.done()) result["output"] = out;
  return result;
}

std::vector<std::string> Backbone::tap_names() {
  std::vector<std::string> out;
  for (auto& [n, m] : named_modules())
    if (!n.empty()) out.push_back(n);
  return out;
}

Tensor Backbone::to_grid(const std::string& tap, const Tensor&) {
  throw Error(detail::cat(type_name(), ": tap '", tap, "': only ViTs have token grids"));
}

const Shape& shape_of(const Shapes& s, const std::string& key, const char* arch) {
  auto it = s.find(key);
  CORTEX_CHECK(it != s.end(), arch, ": the weights have no '", key, "' (needed to read the layer sizes)");
  return it->second;
}

Shapes shapes_of(const io::SafeTensors& file, const LoadOptions& opts) {
  Shapes s;
  for (auto& k : file.keys()) {
    std::string m = map_key(k, opts);
    if (!m.empty()) s[m] = file.info(k).shape;
  }
  return s;
}

ModelConfig config_from_json(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(source + ": invalid JSON: " + e.what());
  }
  CORTEX_CHECK(j.is_object(), source, ": expected a JSON object, found ", j.type_name());
  static const std::set<std::string> known = {"arch",       "layout", "heads",  "patch_size",
                                              "image_size", "activation", "num_register_tokens", "ln_eps",
                                              "prefix"};
  ModelConfig c;
  for (auto& [k, v] : j.items()) {
    CORTEX_CHECK(known.count(k), source, ": unknown key '", k,
                 "' (known: arch, layout, heads, patch_size, image_size, activation, num_register_tokens, ln_eps, prefix)");
    const bool want_str = k == "arch" || k == "layout" || k == "activation" || k == "prefix";
    if (want_str) {
      CORTEX_CHECK(v.is_string(), source, ": '", k, "' must be a string, found ", v.type_name());
    } else if (k == "ln_eps") {
      CORTEX_CHECK(v.is_number() && v.get<double>() > 0, source, ": 'ln_eps' must be a positive number, found ", v.dump());
    } else {
      CORTEX_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0, source, ": '", k,
                   "' must be a non-negative integer, found ", v.dump());
    }
  }
  CORTEX_CHECK(j.contains("arch"), source, ": missing 'arch' (alexnet, vgg, resnet or vit)");
  c.arch = j["arch"].get<std::string>();
  CORTEX_CHECK(c.arch == "alexnet" || c.arch == "vgg" || c.arch == "resnet" || c.arch == "vit", source,
               ": 'arch' must be alexnet, vgg, resnet or vit, found '", c.arch, "'");
  if (j.contains("layout")) c.layout = j["layout"].get<std::string>();
  if (j.contains("heads")) c.heads = j["heads"].get<int64_t>();
  if (j.contains("patch_size")) c.patch_size = j["patch_size"].get<int64_t>();
  if (j.contains("image_size")) c.image_size = j["image_size"].get<int64_t>();
  if (j.contains("activation")) c.activation = j["activation"].get<std::string>();
  if (j.contains("num_register_tokens")) c.num_register_tokens = j["num_register_tokens"].get<int64_t>();
  if (j.contains("ln_eps")) c.ln_eps = j["ln_eps"].get<double>();
  if (j.contains("prefix")) c.prefix = j["prefix"].get<std::string>();
  if (c.arch == "vit") {
    CORTEX_CHECK(!c.layout.empty(), source, ": a vit needs 'layout' (torchvision, clip, timm, dinov2 or mae)");
    parse_vit_layout(c.layout);
    CORTEX_CHECK(c.heads > 0, source, ": a vit needs 'heads' (the number of attention heads)");
  }
  if (!c.activation.empty()) parse_act(c.activation);
  return c;
}

ModelConfig config_from_file(const std::string& path) {
  std::ifstream f(path);
  CORTEX_CHECK(f.good(), path, ": cannot open the config file");
  std::stringstream ss;
  ss << f.rdbuf();
  return config_from_json(ss.str(), path);
}

ModelConfig config_for_arch(const std::string& name) {
  ModelConfig c;
  auto vit = [&](const std::string& layout, int64_t heads, int64_t size) {
    c.arch = "vit";
    c.layout = layout;
    c.heads = heads;
    c.image_size = size;
    return c;
  };
  if (name == "alexnet") {
    c.arch = "alexnet";
    return c;
  }
  for (const char* v : {"vgg11", "vgg13", "vgg16", "vgg19"})
    if (name == v || name == std::string(v) + "_bn") {
      c.arch = "vgg";
      return c;
    }
  for (const char* r : {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"})
    if (name == r) {
      c.arch = "resnet";
      return c;
    }
  if (name == "vit_b_16" || name == "vit_b_32") return vit("torchvision", 12, 224);
  if (name == "vit_l_16" || name == "vit_l_32") return vit("torchvision", 16, 224);
  if (name == "vit_h_14") return vit("torchvision", 16, 224);
  if (name == "clip_vit_b_16" || name == "clip_vit_b_32") {
    vit("clip", 12, 224);
    c.prefix = "visual.";
    return c;
  }
  if (name == "clip_vit_l_14") {
    vit("clip", 16, 224);
    c.prefix = "visual.";
    return c;
  }
  const bool reg = name.size() > 4 && name.substr(name.size() - 4) == "_reg";
  const std::string base = reg ? name.substr(0, name.size() - 4) : name;
  if (base == "dinov2_vits14") return vit("dinov2", 6, 518);
  if (base == "dinov2_vitb14") return vit("dinov2", 12, 518);
  if (base == "dinov2_vitl14") return vit("dinov2", 16, 518);
  if (base == "dinov2_vitg14") return vit("dinov2", 24, 518);
  if (name == "mae_vit_b_16") return vit("mae", 12, 224);
  if (name == "mae_vit_l_16") return vit("mae", 16, 224);
  if (name == "mae_vit_h_14") return vit("mae", 16, 224);
  throw Error("unknown architecture '" + name +
              "' (alexnet, vgg11/13/16/19[_bn], resnet18/34/50/101/152, vit_b_16, vit_b_32, vit_l_16, "
              "clip_vit_b_16, clip_vit_b_32, clip_vit_l_14, dinov2_vit{s,b,l,g}14[_reg], mae_vit_b_16, mae_vit_l_16)");
}

std::shared_ptr<Backbone> load_backbone(const ModelConfig& cfg, const io::SafeTensors& file) {
  LoadOptions opts;
  opts.prefix = cfg.prefix;
  if (cfg.arch == "vit" && cfg.layout == "mae") opts.ignore = {"decoder", "mask_token"};  // MAE's pretraining decoder
  if (cfg.arch == "vit" && cfg.layout == "dinov2") {
    // DINOv2's own checkpoints (torch.hub) differ from timm's names only here.
    opts.rename = {{"register_tokens", "reg_token"}};
    opts.ignore = {"mask_token"};
  }
  const Shapes s = shapes_of(file, opts);
  std::shared_ptr<Backbone> m;
  if (cfg.arch == "alexnet") {
    m = std::make_shared<AlexNet>(alexnet_spec(s));
  } else if (cfg.arch == "vgg") {
    m = std::make_shared<VGG>(vgg_spec(s));
  } else if (cfg.arch == "resnet") {
    m = std::make_shared<ResNet>(resnet_spec(s));
  } else if (cfg.arch == "vit") {
    ViTSpec spec = vit_spec(parse_vit_layout(cfg.layout), s, cfg);
    if (cfg.layout == "dinov2" && file.contains(cfg.prefix + "mask_token")) {
      // A checkpoint of DINOv2's own code (only it stores mask_token): its position resampling.
      spec.pos_interp_antialias = false;
      spec.pos_interp_offset = 0.1;
    }
    m = std::make_shared<ViT>(spec);
  } else {
    throw Error("load_backbone: expected arch alexnet, vgg, resnet or vit, found '" + cfg.arch + "'");
  }
  load_safetensors(*m, file, opts);
  if (cfg.image_size > 0) m->image_size = cfg.image_size;
  return m;
}

std::shared_ptr<Backbone> load_backbone(const ModelConfig& cfg, const std::string& path) {
  return load_backbone(cfg, io::SafeTensors::open(path));
}

}  // namespace cortex::models
