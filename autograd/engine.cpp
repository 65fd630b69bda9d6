// The autodiff engine: recording (record), the reverse walk (backward, grad), forward mode (jvp),
// and the transforms built on them (vjp, jacobian, hvp). Rules live in autograd/ops_*.cpp.
#include <algorithm>
#include <atomic>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "autograd/rules.h"

namespace cortex {
namespace {

thread_local bool t_grad_mode = true;
thread_local bool t_fw_mode = true;  // off while a JVP rule runs, so a JVP costs one pass
thread_local int t_jvp_depth = 0;    // > 0 while the function given to jvp runs
thread_local int t_batch_dims = 0;
std::atomic<uint64_t> g_seq{0};

AutogradMeta& meta(const Tensor& t) {
  auto& m = t.autograd_meta();
  if (!m) m = std::make_shared<AutogradMeta>();
  return *m;
}

struct FwOff {
  bool prev = t_fw_mode;
  FwOff() { t_fw_mode = false; }
  ~FwOff() { t_fw_mode = prev; }
};
struct GradMode {
  bool prev = t_grad_mode;
  explicit GradMode(bool on) { t_grad_mode = on; }
  ~GradMode() { t_grad_mode = prev; }
};

// Derivative d must have shape (batch, *shape) (batch = whatever leading dims are there).
void check_derivative_shape(const Tensor& d, const Shape& shape, const char* what, const std::string& op) {
  const size_t nb = static_cast<size_t>(t_batch_dims);
  bool ok = d.shape().size() == shape.size() + nb && std::equal(shape.begin(), shape.end(), d.shape().begin() + nb);
  CORTEX_CHECK(ok, op, ": ", what, " has shape ", shape_str(d.shape()), " but expected ",
               nb ? "[B, " + shape_str(shape).substr(1) : shape_str(shape));
}

}  // namespace

// ---------------------------------------------------------------- per-tensor state

Tensor& set_requires_grad(Tensor& t, bool on) {
  CORTEX_CHECK(!on || is_floating(t.dtype()), "requires_grad: only float tensors can require grad, found ",
               dtype_name(t.dtype()));
  if (!on && !t.autograd_meta()) return t;
  AutogradMeta& m = meta(t);
  CORTEX_CHECK(!m.grad_fn || on, "requires_grad(false) on a non-leaf tensor: use detach()");
  m.requires_grad = on;
  return t;
}
Tensor with_grad(const Tensor& t) {
  Tensor d = detach(t);
  set_requires_grad(d, true);
  return d;
}
bool requires_grad(const Tensor& t) {
  return t.defined() && t.autograd_meta() && t.autograd_meta()->requires_grad;
}
bool is_leaf(const Tensor& t) { return !t.autograd_meta() || !t.autograd_meta()->grad_fn; }
Tensor grad_of(const Tensor& t) { return t.autograd_meta() ? t.autograd_meta()->grad : Tensor(); }
void zero_grad(const Tensor& t) {
  if (t.autograd_meta()) t.autograd_meta()->grad = Tensor();
}
void retain_grad(const Tensor& t) {
  CORTEX_CHECK(requires_grad(t), "retain_grad: the tensor does not require grad");
  meta(t).retains_grad = true;
}
std::shared_ptr<Node> grad_fn(const Tensor& t) { return t.autograd_meta() ? t.autograd_meta()->grad_fn : nullptr; }
Tensor detach(const Tensor& t) {
  if (!t.defined()) return t;
  return Tensor(t.storage(), t.shape(), t.strides(), t.offset(), t.dtype());
}
Tensor tangent_of(const Tensor& t) {
  return t.defined() && t.autograd_meta() ? t.autograd_meta()->tangent : Tensor();
}

bool grad_mode_enabled() { return t_grad_mode; }
NoGradGuard::NoGradGuard() : prev_(t_grad_mode) { t_grad_mode = false; }
NoGradGuard::~NoGradGuard() { t_grad_mode = prev_; }
BatchedScope::BatchedScope(int dims) : prev_(t_batch_dims) {
  CORTEX_CHECK(dims == 0 || dims == 1, "BatchedScope: 0 or 1 batch dims, found ", dims);
  t_batch_dims = dims;
}
BatchedScope::~BatchedScope() { t_batch_dims = prev_; }
int derivative_batch_dims() { return t_batch_dims; }

// ---------------------------------------------------------------- recording

std::vector<Tensor> Node::unpack_outputs(bool link) {
  std::vector<Tensor> outs;
  for (size_t i = 0; i < saved_outputs.size(); ++i) {
    const Tensor& s = saved_outputs[i];
    if (!s.defined()) { outs.emplace_back(); continue; }
    CORTEX_CHECK(s.storage()->version == output_versions[i], name, ": an output saved for the backward pass was ",
                 "modified in place (version ", s.storage()->version.load(), ", saved at ", output_versions[i], ")");
    Tensor t = detach(s);
    if (link && is_floating(t.dtype())) {
      AutogradMeta& m = meta(t);
      m.requires_grad = true;
      m.grad_fn = shared_from_this();
      m.output_nr = static_cast<int>(i);
    }
    outs.push_back(t);
  }
  return outs;
}

bool needs_autograd(const std::vector<Tensor>& inputs) {
  for (const Tensor& t : inputs) {
    if (!t.defined() || !t.autograd_meta()) continue;
    if (t_grad_mode && t.autograd_meta()->requires_grad) return true;
    if (t_fw_mode && t.autograd_meta()->tangent.defined()) return true;
  }
  return false;
}

std::vector<Tensor> record(const char* name, const std::vector<Tensor>& inputs, std::vector<Tensor> outputs,
                           VjpFn vjp, JvpFn jvp, bool save_outputs) {
  bool any_grad = false, any_tangent = false;
  for (const Tensor& t : inputs) {
    if (!t.defined() || !t.autograd_meta()) continue;
    any_grad |= t_grad_mode && t.autograd_meta()->requires_grad;
    any_tangent |= t_fw_mode && t.autograd_meta()->tangent.defined();
  }
  if (!any_grad && !any_tangent) return outputs;
  // An output that already carries autograd state (a kernel handed back its input) gets its own handle.
  for (Tensor& o : outputs)
    if (o.defined() && o.autograd_meta()) o = detach(o);

  if (any_grad) {
    auto node = std::make_shared<Node>();
    node->name = name;
    node->seq = g_seq++;
    for (const Tensor& in : inputs) {
      Edge e;
      if (requires_grad(in)) {
        const auto& m = in.autograd_meta();
        if (m->grad_fn) {
          e.node = m->grad_fn;
          e.output_nr = m->output_nr;
        } else {
          e.leaf = m;
        }
      }
      node->next.push_back(e);
      node->input_storages.push_back(in.defined() ? std::weak_ptr<Storage>(in.storage()) : std::weak_ptr<Storage>());
      node->input_versions.push_back(in.defined() ? in.storage()->version.load() : 0);
      node->input_shapes.push_back(in.defined() ? in.shape() : Shape{});
    }
    node->save_outputs = save_outputs;
    for (size_t i = 0; i < outputs.size(); ++i) {
      const Tensor& o = outputs[i];
      node->output_shapes.push_back(o.defined() ? o.shape() : Shape{});
      node->output_dtypes.push_back(o.defined() ? o.dtype() : DType::Float32);
      node->output_devices.push_back(o.defined() ? o.device() : Device::cpu());
      if (save_outputs) {
        node->saved_outputs.push_back(detach(o));
        node->output_versions.push_back(o.defined() ? o.storage()->version.load() : 0);
      }
      if (o.defined() && is_floating(o.dtype())) {
        AutogradMeta& m = meta(o);
        m.requires_grad = true;
        m.grad_fn = node;
        m.output_nr = static_cast<int>(i);
        node->output_metas.push_back(o.autograd_meta());
      } else {
        node->output_metas.emplace_back();
      }
    }
    node->vjp = std::move(vjp);
  }

  if (any_tangent) {
    std::vector<Tensor> tin;
    for (const Tensor& in : inputs) tin.push_back(t_fw_mode ? tangent_of(in) : Tensor());
    std::vector<Tensor> tout;
    {
      FwOff off;
      std::vector<Tensor> outs_plain;
      for (const Tensor& o : outputs) outs_plain.push_back(detach(o));
      tout = jvp(tin, outs_plain);
    }
    CORTEX_CHECK(tout.size() == outputs.size(), name, ": JVP returned ", tout.size(), " tangents for ", outputs.size(),
                 " outputs");
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (!tout[i].defined() || !outputs[i].defined() || !is_floating(outputs[i].dtype())) continue;
      check_derivative_shape(tout[i], outputs[i].shape(), "the JVP's output tangent", name);
      meta(outputs[i]).tangent = tout[i];
    }
  }
  return outputs;
}

Tensor record1(const char* name, const std::vector<Tensor>& inputs, Tensor output, VjpFn vjp, JvpFn jvp,
               bool save_outputs) {
  return record(name, inputs, {std::move(output)}, std::move(vjp), std::move(jvp), save_outputs)[0];
}

// ---------------------------------------------------------------- the reverse walk

namespace {

struct Task {
  bool create_graph = false;
  bool retain_graph = false;
  bool accumulate = true;  // backward(): into leaves' .grad; grad(): capture only
  // grad(): where each requested input's gradient is found
  std::unordered_map<const Node*, std::vector<std::pair<int, size_t>>> node_capture;  // (output_nr, slot)
  std::unordered_map<const AutogradMeta*, std::vector<size_t>> leaf_capture;
  std::vector<Tensor> captured;
};

Tensor accumulate(const Tensor& acc, const Tensor& g) { return acc.defined() ? add(acc, g) : g; }

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& root_grads, Task& task) {
  // VJPs run with forward mode off, so a reverse pass inside jvp would silently drop every tangent
  // (forward-over-reverse). Refuse rather than return zeros; hvp uses reverse-over-reverse instead.
  CORTEX_CHECK(t_jvp_depth == 0, "backward/grad: reverse mode inside jvp (forward-over-reverse) is not supported; "
               "use hvp or grad(..., create_graph=true) twice");
  // 1. Discover the graph and count, for each node, the edges that point to it.
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> order;  // discovery order
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack;
  for (const Tensor& r : roots) {
    Node* n = grad_fn(r).get();
    if (n && seen.insert(n).second) stack.push_back(n);
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    order.push_back(n);
    for (const Edge& e : n->next) {
      if (!e.node) continue;
      deps[e.node.get()]++;
      if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
    }
  }
  // 2. For grad(): only nodes on a path to a requested input need their VJP run.
  std::unordered_set<Node*> needed;
  if (!task.accumulate) {
    // Fixed point over the discovered nodes (children before parents is not guaranteed by DFS order).
    bool changed = true;
    while (changed) {
      changed = false;
      for (Node* n : order) {
        if (needed.count(n)) continue;
        bool need = task.node_capture.count(n) > 0;
        for (const Edge& e : n->next) {
          if (need) break;
          if (e.leaf && task.leaf_capture.count(e.leaf.get())) need = true;
          if (e.node && needed.count(e.node.get())) need = true;
        }
        if (need) { needed.insert(n); changed = true; }
      }
    }
  }
  // 3. Seed the buffers with the root gradients.
  std::unordered_map<Node*, std::vector<Tensor>> buffers;
  auto deliver_leaf = [&](const std::shared_ptr<AutogradMeta>& leaf, const Tensor& g) {
    if (task.accumulate) leaf->grad = accumulate(leaf->grad, task.create_graph ? g : detach(g));
    auto it = task.leaf_capture.find(leaf.get());
    if (it != task.leaf_capture.end())
      for (size_t slot : it->second) task.captured[slot] = accumulate(task.captured[slot], g);
  };
  for (size_t i = 0; i < roots.size(); ++i) {
    const auto& m = roots[i].autograd_meta();
    if (m->grad_fn) {
      auto& buf = buffers[m->grad_fn.get()];
      buf.resize(m->grad_fn->next.empty() ? 1 : m->grad_fn->output_shapes.size());
      buf[m->output_nr] = accumulate(buf[m->output_nr], root_grads[i]);
    } else {
      deliver_leaf(m, root_grads[i]);
    }
  }
  // 4. Run the nodes, latest first among those whose consumers are all done.
  std::priority_queue<std::pair<uint64_t, Node*>> ready;
  for (Node* n : order)
    if (deps[n] == 0) ready.push({n->seq, n});
  while (!ready.empty()) {
    Node* n = ready.top().second;
    ready.pop();
    std::vector<Tensor> grads = std::move(buffers[n]);
    buffers.erase(n);
    grads.resize(n->output_shapes.size());
    bool any = false;
    for (const Tensor& g : grads) any |= g.defined();

    if (any) {
      CORTEX_CHECK(!n->released, n->name, ": trying to backward through the graph a second time (its saved values ",
                   "were freed); pass retain_graph=true to the first backward");
      // Outputs that received no gradient get zeros of the right (batched) shape.
      Shape batch;
      for (const Tensor& g : grads)
        if (g.defined()) { batch.assign(g.shape().begin(), g.shape().begin() + t_batch_dims); break; }
      for (size_t i = 0; i < grads.size(); ++i)
        if (!grads[i].defined()) {
          Shape s = batch;
          s.insert(s.end(), n->output_shapes[i].begin(), n->output_shapes[i].end());
          grads[i] = zeros(s, n->output_dtypes[i], n->output_devices[i]);
        }
      // Captures for grad() and retain_grad.
      if (auto it = task.node_capture.find(n); it != task.node_capture.end())
        for (auto [nr, slot] : it->second) task.captured[slot] = accumulate(task.captured[slot], grads[nr]);
      if (task.accumulate)
        for (size_t i = 0; i < n->output_metas.size(); ++i)
          if (auto m = n->output_metas[i].lock(); m && m->retains_grad)
            m->grad = accumulate(m->grad, task.create_graph ? grads[i] : detach(grads[i]));

      if (task.accumulate || needed.count(n)) {
        for (size_t i = 0; i < n->input_storages.size(); ++i) {
          auto st = n->input_storages[i].lock();
          CORTEX_CHECK(!st || st->version == n->input_versions[i], n->name, ": input ", i,
                       " saved for the backward pass was modified in place (version ", st ? st->version.load() : 0,
                       ", saved at ", n->input_versions[i], ")");
        }
        std::vector<Tensor> in_grads;
        {
          GradMode gm(task.create_graph);
          FwOff off;
          in_grads = n->vjp(grads, n->unpack_outputs(task.create_graph));
        }
        CORTEX_CHECK(in_grads.size() == n->next.size(), n->name, ": VJP returned ", in_grads.size(),
                     " gradients for ", n->next.size(), " inputs");
        for (size_t i = 0; i < n->next.size(); ++i) {
          const Edge& e = n->next[i];
          if (!e.active() || !in_grads[i].defined()) continue;
          check_derivative_shape(in_grads[i], n->input_shapes[i], "the VJP's input gradient", n->name);
          if (e.node) {
            auto& buf = buffers[e.node.get()];
            buf.resize(e.node->output_shapes.size());
            buf[e.output_nr] = accumulate(buf[e.output_nr], in_grads[i]);
          } else {
            deliver_leaf(e.leaf, in_grads[i]);
          }
        }
      }
    }
    if (!task.retain_graph) {
      n->released = true;
      n->vjp = nullptr;
      n->saved_outputs.clear();
    }
    for (const Edge& e : n->next)
      if (e.node && --deps[e.node.get()] == 0) ready.push({e.node->seq, e.node.get()});
  }
}

std::vector<Tensor> root_gradients(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs,
                                   const char* who) {
  CORTEX_CHECK(grad_outputs.empty() || grad_outputs.size() == outputs.size(), who, ": ", grad_outputs.size(),
               " grad_outputs for ", outputs.size(), " outputs");
  std::vector<Tensor> gs;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& y = outputs[i];
    CORTEX_CHECK(y.defined(), who, ": output ", i, " is undefined");
    CORTEX_CHECK(requires_grad(y), who, ": output ", i, " does not require grad (no input that requires grad ",
                 "reached it, or it was computed under NoGradGuard)");
    Tensor g = grad_outputs.empty() ? Tensor() : grad_outputs[i];
    if (!g.defined()) {
      CORTEX_CHECK(y.numel() == 1 && t_batch_dims == 0, who, ": output ", i, " has shape ", shape_str(y.shape()),
                   "; a gradient can be implied only for a one-element output: pass grad_outputs");
      g = ones(y.shape(), y.dtype(), y.device());
    } else {
      check_derivative_shape(g, y.shape(), "grad_output", who);
      CORTEX_CHECK(g.dtype() == y.dtype() && g.device() == y.device(), who, ": grad_output ", i, " is ",
                   dtype_name(g.dtype()), " on ", g.device().str(), " but the output is ", dtype_name(y.dtype()),
                   " on ", y.device().str());
    }
    gs.push_back(g);
  }
  return gs;
}

}  // namespace

void backward(const Tensor& output, const Tensor& grad_output, bool retain_graph, bool create_graph) {
  backward(std::vector<Tensor>{output}, grad_output.defined() ? std::vector<Tensor>{grad_output} : std::vector<Tensor>{},
           retain_graph, create_graph);
}

void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs, bool retain_graph,
              bool create_graph) {
  Task task;
  task.create_graph = create_graph;
  task.retain_graph = retain_graph || create_graph;
  task.accumulate = true;
  run_backward(outputs, root_gradients(outputs, grad_outputs, "backward"), task);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool create_graph, std::optional<bool> retain_graph,
                         bool materialize_zeros) {
  Task task;
  task.create_graph = create_graph;
  task.retain_graph = retain_graph.value_or(create_graph);
  task.accumulate = false;
  task.captured.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    CORTEX_CHECK(requires_grad(inputs[i]), "grad: input ", i, " does not require grad");
    const auto& m = inputs[i].autograd_meta();
    if (m->grad_fn) task.node_capture[m->grad_fn.get()].push_back({m->output_nr, i});
    else task.leaf_capture[m.get()].push_back(i);
  }
  run_backward(outputs, root_gradients(outputs, grad_outputs, "grad"), task);
  std::vector<Tensor> out = std::move(task.captured);
  Shape batch;
  if (t_batch_dims && !grad_outputs.empty() && grad_outputs[0].defined())
    batch.assign(grad_outputs[0].shape().begin(), grad_outputs[0].shape().begin() + t_batch_dims);
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].defined()) {
      if (!create_graph) out[i] = detach(out[i]);
    } else if (materialize_zeros) {
      Shape s = batch;
      s.insert(s.end(), inputs[i].shape().begin(), inputs[i].shape().end());
      out[i] = zeros(s, inputs[i].dtype(), inputs[i].device());
    }
  }
  return out;
}

// ---------------------------------------------------------------- transforms

JvpResult jvp(const Fn& f, const std::vector<Tensor>& primals, const std::vector<Tensor>& tangents) {
  CORTEX_CHECK(primals.size() == tangents.size(), "jvp: ", primals.size(), " primals but ", tangents.size(),
               " tangents");
  // One level of tangents only: an inner jvp would detach the outer tangents and return zeros.
  CORTEX_CHECK(t_jvp_depth == 0, "jvp: nested forward mode (jvp inside jvp) is not supported");
  std::vector<Tensor> duals;
  for (size_t i = 0; i < primals.size(); ++i) {
    CORTEX_CHECK(primals[i].defined() && tangents[i].defined(), "jvp: primal or tangent ", i, " is undefined");
    check_derivative_shape(tangents[i], primals[i].shape(), "tangent", "jvp");
    CORTEX_CHECK(tangents[i].dtype() == primals[i].dtype() && tangents[i].device() == primals[i].device(),
                 "jvp: tangent ", i, " is ", dtype_name(tangents[i].dtype()), " on ", tangents[i].device().str(),
                 " but its primal is ", dtype_name(primals[i].dtype()), " on ", primals[i].device().str());
    CORTEX_CHECK(is_floating(primals[i].dtype()), "jvp: primal ", i, " must be a float tensor, found ",
                 dtype_name(primals[i].dtype()));
    Tensor d = detach(primals[i]);
    meta(d).tangent = tangents[i];
    duals.push_back(d);
  }
  std::vector<Tensor> outs;
  {
    struct Depth {  // restores the mode and depth even when f throws
      bool prev = t_fw_mode;
      Depth() { t_fw_mode = true; ++t_jvp_depth; }
      ~Depth() { t_fw_mode = prev; --t_jvp_depth; }
    } depth;
    outs = f(duals);
  }
  JvpResult r;
  Shape batch(tangents.empty() ? Shape{} : Shape(tangents[0].shape().begin(), tangents[0].shape().begin() + t_batch_dims));
  for (const Tensor& o : outs) {
    Tensor t = tangent_of(o);
    if (!t.defined()) {
      Shape s = batch;
      s.insert(s.end(), o.shape().begin(), o.shape().end());
      t = zeros(s, o.dtype(), o.device());
    }
    r.outputs.push_back(detach(o));
    r.tangents.push_back(t);
  }
  return r;
}

VjpResult vjp(const Fn& f, const std::vector<Tensor>& primals) {
  std::vector<Tensor> leaves;
  for (const Tensor& p : primals) leaves.push_back(with_grad(p));
  std::vector<Tensor> outs = f(leaves);
  VjpResult r;
  r.outputs = outs;
  r.pullback = [outs, leaves](const std::vector<Tensor>& cots) {
    return grad(outs, leaves, cots, /*create_graph=*/false, /*retain_graph=*/true);
  };
  return r;
}

namespace {
// Rows start..start+c of the identity of size n, shaped (c, *shape).
Tensor basis_chunk(int64_t start, int64_t c, int64_t n, const Shape& shape, DType dt, Device dev) {
  Tensor e = zeros({c, n}, dt);
  for (int64_t i = 0; i < c; ++i) e.select(0, i).select(0, start + i).fill_(1.0);
  Shape s{c};
  s.insert(s.end(), shape.begin(), shape.end());
  return e.view(s).to(dev);
}
}  // namespace

Tensor jacobian(const Fn1& f, const Tensor& x, JacobianMode mode, int64_t chunk) {
  CORTEX_CHECK(x.defined() && is_floating(x.dtype()), "jacobian: x must be a float tensor");
  const int64_t n = x.numel();
  Tensor xl = with_grad(x);
  Tensor y;
  {
    NoGradGuard ng;
    if (mode == JacobianMode::Auto) y = f(detach(x));
  }
  if (mode == JacobianMode::Auto) mode = n < y.numel() ? JacobianMode::Forward : JacobianMode::Reverse;
  std::vector<Tensor> pieces;
  Shape yshape;
  if (mode == JacobianMode::Forward) {
    const int64_t c0 = chunk > 0 ? chunk : std::max<int64_t>(n, 1);
    for (int64_t s = 0; s < n; s += c0) {
      const int64_t c = std::min(c0, n - s);
      BatchedScope bs(1);
      // No tape: the Jacobian is not differentiable, and a tape here would keep every chunk's
      // activations alive (through parameters that require grad) until the end.
      NoGradGuard ng;
      JvpResult r = jvp([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in[0])}; }, {x},
                        {basis_chunk(s, c, n, x.shape(), x.dtype(), x.device())});
      yshape = r.outputs[0].shape();
      pieces.push_back(r.tangents[0].reshape({c, -1}));  // (c, m): columns s..s+c of J
    }
    if (n == 0) {
      NoGradGuard ng;
      yshape = f(detach(x)).shape();
      pieces.push_back(zeros({0, shape_numel(yshape)}, x.dtype(), x.device()));
    }
    Tensor cols = kernels::concat(pieces, 0);  // (n, m)
    Shape out = yshape;
    out.insert(out.end(), x.shape().begin(), x.shape().end());
    return cols.t().contiguous().view(out);
  }
  Tensor yl = f(xl);
  yshape = yl.shape();
  const int64_t m = yl.numel();
  if (!requires_grad(yl)) {  // f does not depend on x
    Shape out = yshape;
    out.insert(out.end(), x.shape().begin(), x.shape().end());
    return zeros(out, x.dtype(), x.device());
  }
  const int64_t c0 = chunk > 0 ? chunk : std::max<int64_t>(m, 1);
  for (int64_t s = 0; s < m; s += c0) {
    const int64_t c = std::min(c0, m - s);
    BatchedScope bs(1);
    auto g = grad({yl}, {xl}, {basis_chunk(s, c, m, yshape, yl.dtype(), yl.device())}, false, true);
    pieces.push_back(g[0].reshape({c, n}));  // rows s..s+c of J
  }
  Shape out = yshape;
  out.insert(out.end(), x.shape().begin(), x.shape().end());
  if (m == 0) return zeros(out, x.dtype(), x.device());
  return kernels::concat(pieces, 0).view(out);
}

Tensor hvp(const Fn1& f, const Tensor& x, const Tensor& v) {
  CORTEX_CHECK(v.shape() == x.shape(), "hvp: v has shape ", shape_str(v.shape()), " but x has ", shape_str(x.shape()));
  Tensor xl = with_grad(x);
  Tensor y = f(xl);
  CORTEX_CHECK(y.numel() == 1, "hvp: f must return one element, found shape ", shape_str(y.shape()));
  Tensor g = grad({y}, {xl}, {}, /*create_graph=*/true)[0];
  Tensor s = sum(mul(g, v));
  if (!requires_grad(s)) return zeros_like(x);  // f is linear in x
  return grad({s}, {xl})[0];
}

// ---------------------------------------------------------------- hooks for Tensor methods

namespace {

void on_view(const Tensor& base, const Tensor& view, const ViewFn& reapply) {
  if (!needs_autograd({base})) return;
  const Shape bs = base.shape(), vs = view.shape();
  const int64_t n = base.numel(), m = view.numel();
  // A view that keeps the element order (reshape of a contiguous tensor) moves derivatives by reshape.
  const bool same_order = base.is_contiguous() && view.is_contiguous() && n == m && view.offset() == base.offset();
  // Otherwise: the index (into base's elements) of each view element, made by re-applying the view.
  auto index = [reapply, bs, n]() { return reapply(arange(0, static_cast<double>(n), 1, DType::Int64).view(bs)).reshape({-1}); };
  Tensor v = view;
  Tensor out = record1(
      "view", {base}, v,
      [same_order, bs, n, m, index](const std::vector<Tensor>& g, const std::vector<Tensor>&) -> std::vector<Tensor> {
        if (same_order) return {rules::breshape(g[0], bs)};
        Tensor flat = rules::breshape(g[0], {m});
        Shape zs = rules::bshape(g[0]);
        zs.push_back(n);
        Tensor gx = index_add(zeros(zs, g[0].dtype(), g[0].device()), rules::nb(), index(), flat);
        return {rules::breshape(gx, bs)};
      },
      [same_order, vs, n, index, reapply](const std::vector<Tensor>& t, const std::vector<Tensor>&) -> std::vector<Tensor> {
        if (!t[0].defined()) return {Tensor()};
        if (same_order) return {rules::breshape(t[0], vs)};
        if (rules::nb() == 0) return {reapply(t[0]).contiguous()};
        return {rules::breshape(index_select(rules::breshape(t[0], {n}), rules::nb(), index()), vs)};
      });
  // record1 may hand back a new handle only when the view already had autograd state; views are
  // fresh, so `out` is `view` and the caller's handle now carries the node.
  (void)out;
}

void on_copy(const Tensor& src, const Tensor& out) {
  if (!needs_autograd({src})) return;
  const DType sd = src.dtype(), od = out.dtype();
  const Device sdev = src.device(), odev = out.device();
  if (!is_floating(od)) return;  // casting to integers ends differentiation
  record1(
      "copy", {src}, out,
      [sd, sdev](const std::vector<Tensor>& g, const std::vector<Tensor>&) -> std::vector<Tensor> {
        return {g[0].to(sd).to(sdev)};
      },
      [od, odev](const std::vector<Tensor>& t, const std::vector<Tensor>&) -> std::vector<Tensor> {
        return {t[0].defined() ? t[0].to(od).to(odev) : Tensor()};
      });
}

void on_inplace(const Tensor& dst, const Tensor& src) {
  const bool involved = (t_grad_mode && (requires_grad(dst) || requires_grad(src))) ||
                        (t_fw_mode && (tangent_of(dst).defined() || tangent_of(src).defined()));
  CORTEX_CHECK(!involved, "copy_/fill_: in-place writes into or from a tensor that requires grad (or carries a ",
               "tangent) are not differentiable; build a new tensor instead (where, concat, ...), or write under "
               "NoGradGuard");
}

const bool g_hooks_installed = [] {
  DerivedHooks h;
  h.on_view = &on_view;
  h.on_copy = &on_copy;
  h.on_inplace = &on_inplace;
  set_derived_hooks(h);
  return true;
}();

}  // namespace
}  // namespace cortex
