#include "models/module.h"

#include "autograd/autograd.h"
#include "tensor/error.h"

namespace cortex::models {

TapContext::TapContext(const std::vector<std::string>& taps, bool stop_early)
    : wanted_(taps.begin(), taps.end()), stop_early_(stop_early) {}

void TapContext::record(const std::string& name, const Tensor& value) {
  if (wanted_.count(name) != 0) got_[name] = value;
}

Tensor Module::operator()(const Tensor& x, TapContext& ctx) {
  Tensor y = forward(x, ctx);
  if (ctx.wants(name_)) ctx.record(name_, y);
  return y;
}

Tensor Module::operator()(const Tensor& x) {
  TapContext ctx;
  return (*this)(x, ctx);
}

void Module::set_name(const std::string& full_name) {
  name_ = full_name;
  for (auto& [local, m] : children_) m->set_name(full_name.empty() ? local : full_name + "." + local);
}

static void collect(const std::string& prefix, const std::vector<std::pair<std::string, Tensor*>>& own,
                    std::vector<std::pair<std::string, Tensor*>>& out) {
  for (auto& [local, t] : own) out.emplace_back(prefix.empty() ? local : prefix + "." + local, t);
}

std::vector<std::pair<std::string, Tensor*>> Module::named_parameters() {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (auto& [name, m] : named_modules()) collect(name, m->params_, out);
  return out;
}

std::vector<std::pair<std::string, Tensor*>> Module::named_buffers() {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (auto& [name, m] : named_modules()) collect(name, m->buffers_, out);
  return out;
}

std::vector<std::pair<std::string, Tensor*>> Module::named_tensors() {
  auto out = named_parameters();
  auto b = named_buffers();
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  // Names relative to this module, so a sub-tree lists its own state_dict keys.
  std::vector<std::pair<std::string, Module*>> out;
  std::vector<std::pair<std::string, Module*>> stack{{"", this}};
  while (!stack.empty()) {
    auto [name, m] = stack.back();
    stack.pop_back();
    out.emplace_back(name, m);
    for (auto it = m->children_.rbegin(); it != m->children_.rend(); ++it)
      stack.emplace_back(name.empty() ? it->first : name + "." + it->first, it->second.get());
  }
  return out;
}

std::shared_ptr<Module> Module::child(const std::string& local_name) const {
  for (auto& [n, m] : children_)
    if (n == local_name) return m;
  throw Error(detail::cat("Module '", name_, "' (", type_name(), "): no child named '", local_name, "'"));
}

void Module::train(bool on) {
  for (auto& [n, m] : named_modules()) m->training_ = on;
}

void Module::fold_batchnorm() {
  for (auto& [n, m] : children_) m->fold_batchnorm();
}

void Module::requires_grad(bool on) {
  for (auto& [n, t] : named_parameters())
    if (t->defined()) {
      if (on)
        *t = with_grad(detach(*t));
      else
        *t = detach(*t);
    }
}

void Module::to(Device device) {
  for (auto& [n, m] : named_modules()) {
    for (auto& [k, t] : m->params_)
      if (t->defined()) *t = t->to(device);
    for (auto& [k, t] : m->buffers_)
      if (t->defined()) *t = t->to(device);
  }
  // A folded batch norm's bias lives on its conv outside the state_dict: move every conv bias too.
  for (auto& [n, m] : named_modules()) m->to_extra(device);
}

void Module::set_compute_dtype(DType dt) {
  CORTEX_CHECK(dt == DType::Float32 || dt == DType::BFloat16,
               "set_compute_dtype: expected float32 or bfloat16, found ", dtype_name(dt));
  for (auto& [n, m] : named_modules()) {
    m->compute_dtype_ = dt;
    m->prepare_compute_dtype();
  }
}

void Module::register_parameter(const std::string& local, Tensor* t) {
  CORTEX_CHECK(t != nullptr && !local.empty(), "Module::register_parameter: expected a name and a tensor");
  params_.emplace_back(local, t);
}

void Module::register_buffer(const std::string& local, Tensor* t) {
  CORTEX_CHECK(t != nullptr && !local.empty(), "Module::register_buffer: expected a name and a tensor");
  buffers_.emplace_back(local, t);
}

void Module::add_child(const std::string& local, std::shared_ptr<Module> m) {
  CORTEX_CHECK(m != nullptr && !local.empty(), "Module::register_module: expected a name and a module");
  for (auto& [n, c] : children_)
    CORTEX_CHECK(n != local, "Module::register_module: duplicate child name '", local, "'");
  children_.emplace_back(local, std::move(m));
}

}  // namespace cortex::models
