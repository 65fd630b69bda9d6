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

// ---------------------------------------------------------------- levels
//
// Level 0 is the base tape. Each transform call pushes a level with a fresh id (ids only grow, so a
// tangent or a tape entry left on a tensor by a finished transform can never be taken for a new
// one's). While a rule runs, the levels it belongs to and those nested in it are hidden, so that
// only the enclosing levels see (and differentiate) the rule's computation. docs/autodiff.md,
// section "Levels", says why and what it costs.

constexpr uint64_t kNone = UINT64_MAX;

struct Level {
  uint64_t id;
  bool forward;    // a jvp level (tangents) or a reverse level (a tape)
  bool enabled;    // NoGradGuard turns every open level off
  int batch_dims;  // forward levels: tangents are (batch, *shape)
};

thread_local std::vector<Level> t_levels{Level{0, false, true, 0}};
thread_local uint64_t t_ceiling = kNone;      // levels with id >= this are hidden (a rule runs)
thread_local bool t_hide_base = false;        // a base-tape VJP without create_graph runs
thread_local uint64_t t_rule_level = kNone;   // the level whose rule runs: requires_grad() answers for it
thread_local int t_batch_dims = 0;            // BatchedScope outside rules; the rule's level inside
std::atomic<uint64_t> g_next_level{1};
std::atomic<uint64_t> g_seq{0};

const Level* find_level(uint64_t id) {
  for (const Level& l : t_levels)
    if (l.id == id) return &l;
  return nullptr;
}
bool visible(const Level& l) { return l.enabled && l.id < t_ceiling && !(l.id == 0 && t_hide_base); }

AutogradMeta& meta(const Tensor& t) {
  auto& m = t.autograd_meta();
  if (!m) m = std::make_shared<AutogradMeta>();
  return *m;
}
LevelMeta* level_meta(const Tensor& t, uint64_t level) {
  return t.defined() && t.autograd_meta() ? t.autograd_meta()->find(level) : nullptr;
}
bool takes_part(const Tensor& t, const Level& l) {
  const LevelMeta* m = level_meta(t, l.id);
  return m && (l.forward ? m->tangent.defined() : m->requires_grad);
}

// A new handle on t's storage with no autograd state (engine-internal: no stop-gradient mark).
Tensor plain(const Tensor& t) {
  if (!t.defined()) return t;
  return Tensor(t.storage(), t.shape(), t.strides(), t.offset(), t.dtype());
}
// A new handle carrying t's state at every level except `drop` (and, when below is set, only the
// levels with id < below).
Tensor copy_state(const Tensor& t, uint64_t drop, uint64_t below = kNone) {
  Tensor c = plain(t);
  if (t.defined() && t.autograd_meta())
    for (const LevelMeta& l : t.autograd_meta()->levels)
      if (l.level != drop && l.level < below) meta(c).levels.push_back(l);
  return c;
}

// The context a rule runs in: which levels are hidden, which level requires_grad() answers for, and
// the batch dims of the derivative tensors.
struct RuleScope {
  uint64_t ceiling = t_ceiling, rule = t_rule_level;
  bool hide_base = t_hide_base;
  int batch = t_batch_dims;
  RuleScope(uint64_t new_ceiling, bool new_hide_base, uint64_t rule_level, int batch_dims) {
    t_ceiling = std::min(t_ceiling, new_ceiling);
    t_hide_base = t_hide_base || new_hide_base;
    t_rule_level = rule_level;
    t_batch_dims = batch_dims;
  }
  ~RuleScope() {
    t_ceiling = ceiling;
    t_hide_base = hide_base;
    t_rule_level = rule;
    t_batch_dims = batch;
  }
};

// Opens a transform level for the duration of the transform's call of f. f runs unbatched and with
// no rule context, whatever the caller's.
struct LevelScope {
  uint64_t id = g_next_level++;
  uint64_t ceiling = t_ceiling, rule = t_rule_level;
  bool hide_base = t_hide_base;
  int batch = t_batch_dims;
  LevelScope(bool forward, int batch_dims) {
    t_levels.push_back(Level{id, forward, true, batch_dims});
    t_ceiling = kNone;
    t_hide_base = false;
    t_rule_level = kNone;
    t_batch_dims = 0;
  }
  ~LevelScope() {
    for (size_t i = t_levels.size(); i-- > 1;)
      if (t_levels[i].id == id) { t_levels.erase(t_levels.begin() + static_cast<std::ptrdiff_t>(i)); break; }
    t_ceiling = ceiling;
    t_hide_base = hide_base;
    t_rule_level = rule;
    t_batch_dims = batch;
  }
  LevelScope(const LevelScope&) = delete;
  LevelScope& operator=(const LevelScope&) = delete;
};

// Derivative d must have shape (batch, *shape) (batch = the first nb dims).
void check_derivative_shape(const Tensor& d, const Shape& shape, int nb, const char* what, const std::string& op) {
  const size_t n = static_cast<size_t>(nb);
  bool ok = d.shape().size() == shape.size() + n && std::equal(shape.begin(), shape.end(), d.shape().begin() + n);
  CORTEX_CHECK(ok, op, ": ", what, " has shape ", shape_str(d.shape()), " but expected ",
               n ? "[B, " + shape_str(shape).substr(1) : shape_str(shape));
}

// The error a transform raises when its output depends on its input only through an op without a
// derivative.
[[noreturn]] void throw_blocked(const char* who, const char* op) {
  throw Error(std::string(who) + ": no derivative can flow from the input to the output: it depends on the input " +
              "only through '" + op + "', which has no derivative (an integer or boolean result, or detach); " +
              "differentiate a float path instead");
}
const char* blocked_at(const Tensor& t, uint64_t level) {
  const LevelMeta* m = level_meta(t, level);
  return m ? m->blocked_by : nullptr;
}

}  // namespace

// ---------------------------------------------------------------- per-tensor state

Tensor& set_requires_grad(Tensor& t, bool on) {
  CORTEX_CHECK(!on || is_floating(t.dtype()), "requires_grad: only float tensors can require grad, found ",
               dtype_name(t.dtype()));
  if (!on && !t.autograd_meta()) return t;
  LevelMeta& m = meta(t).at(0);
  CORTEX_CHECK(!m.grad_fn || on, "requires_grad(false) on a non-leaf tensor: use detach()");
  m.requires_grad = on;
  return t;
}
Tensor with_grad(const Tensor& t) {
  // A new base-tape leaf. Its state at open transform levels stays, so that a leaf made inside a
  // transform's function is still differentiated by that transform.
  Tensor d = copy_state(t, 0);
  set_requires_grad(d, true);
  return d;
}
bool requires_grad(const Tensor& t) {
  if (!t.defined() || !t.autograd_meta()) return false;
  if (t_rule_level != kNone) {  // inside a rule: does this input need a gradient from the node?
    const LevelMeta* m = t.autograd_meta()->find(t_rule_level);
    return m && m->requires_grad;
  }
  for (const LevelMeta& m : t.autograd_meta()->levels)
    if (m.requires_grad && (m.level == 0 || find_level(m.level))) return true;
  return false;
}
bool is_leaf(const Tensor& t) {
  const LevelMeta* m = level_meta(t, 0);
  return !m || !m->grad_fn;
}
Tensor grad_of(const Tensor& t) { return t.autograd_meta() ? t.autograd_meta()->grad : Tensor(); }
void zero_grad(const Tensor& t) {
  if (t.autograd_meta()) t.autograd_meta()->grad = Tensor();
}
void retain_grad(const Tensor& t) {
  const LevelMeta* m = level_meta(t, 0);
  CORTEX_CHECK(m && m->requires_grad, "retain_grad: the tensor does not require grad");
  meta(t).retains_grad = true;
}
std::shared_ptr<Node> grad_fn(const Tensor& t) {
  const LevelMeta* m = level_meta(t, 0);
  return m ? m->grad_fn : nullptr;
}
Tensor detach(const Tensor& t) {
  Tensor d = plain(t);
  if (t.defined() && t.autograd_meta()) mark_blocked("detach", {t}, {d});
  return d;
}
Tensor tangent_of(const Tensor& t) {
  for (size_t i = t_levels.size(); i-- > 0;) {
    const Level& l = t_levels[i];
    if (!l.forward || !visible(l)) continue;
    const LevelMeta* m = level_meta(t, l.id);
    return m ? m->tangent : Tensor();
  }
  return Tensor();
}

bool grad_mode_enabled() {
  for (const Level& l : t_levels)
    if (!l.forward && visible(l)) return true;
  return false;
}
NoGradGuard::NoGradGuard() {
  for (Level& l : t_levels) {
    prev_.emplace_back(l.id, l.enabled);
    l.enabled = false;
  }
}
NoGradGuard::~NoGradGuard() {
  for (auto [id, on] : prev_)
    for (Level& l : t_levels)
      if (l.id == id) l.enabled = on;
}
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
    Tensor t = copy_state(s, level);
    if (link && is_floating(t.dtype())) {
      LevelMeta& m = meta(t).at(level);
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
    for (const LevelMeta& m : t.autograd_meta()->levels) {
      const Level* l = find_level(m.level);
      if (l && visible(*l) && (l->forward ? m.tangent.defined() : m.requires_grad)) return true;
    }
  }
  return false;
}

void mark_blocked(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) {
  for (const Level& l : t_levels) {
    if (!visible(l)) continue;
    const char* why = nullptr;
    for (const Tensor& in : inputs) {
      if (takes_part(in, l)) { why = name; break; }
      if (!why) why = blocked_at(in, l.id);
    }
    if (!why) continue;
    for (const Tensor& o : outputs)
      if (o.defined()) meta(o).at(l.id).blocked_by = why;
  }
}

std::vector<Tensor> record(const char* name, const std::vector<Tensor>& inputs, std::vector<Tensor> outputs,
                           VjpFn vjp, JvpFn jvp, bool save_outputs) {
  bool any_meta = false;
  for (const Tensor& t : inputs) any_meta |= t.defined() && t.autograd_meta() != nullptr;
  if (!any_meta) return outputs;
  // The open, visible levels in which an input takes part (in id order: enclosing levels first),
  // and those in which an input is only blocked.
  std::vector<Level> taking;
  std::vector<std::pair<uint64_t, const char*>> blocked;
  for (const Level& l : t_levels) {
    if (!visible(l)) continue;
    bool part = false;
    const char* why = nullptr;
    for (const Tensor& in : inputs) {
      if (takes_part(in, l)) { part = true; break; }
      if (!why) why = blocked_at(in, l.id);
    }
    if (part) taking.push_back(l);
    else if (why) blocked.emplace_back(l.id, why);
  }
  if (taking.empty() && blocked.empty()) return outputs;
  // An output that already carries autograd state (a kernel handed back its input) gets its own handle.
  for (Tensor& o : outputs)
    if (o.defined() && o.autograd_meta()) o = plain(o);
  for (auto [id, why] : blocked)
    for (const Tensor& o : outputs)
      if (o.defined()) meta(o).at(id).blocked_by = why;

  // Enclosing levels first: a rule of level L may use the outputs, and must see their state at the
  // levels below L (exp's JVP t * y differentiated by an enclosing reverse level needs y on its tape).
  std::shared_ptr<Node> base_node;
  bool transform_takes_part = false;
  for (const Level& l : taking) {
    if (l.id != 0) transform_takes_part = true;
    if (l.forward) {
      std::vector<Tensor> tin;
      for (const Tensor& in : inputs) {
        const LevelMeta* m = level_meta(in, l.id);
        tin.push_back(m ? m->tangent : Tensor());
      }
      std::vector<Tensor> tout;
      {
        RuleScope rs(l.id, false, l.id, l.batch_dims);
        tout = jvp(tin, outputs);
      }
      CORTEX_CHECK(tout.size() == outputs.size(), name, ": JVP returned ", tout.size(), " tangents for ",
                   outputs.size(), " outputs");
      for (size_t i = 0; i < outputs.size(); ++i) {
        if (!outputs[i].defined()) continue;
        if (!is_floating(outputs[i].dtype())) { meta(outputs[i]).at(l.id).blocked_by = name; continue; }
        if (!tout[i].defined()) continue;
        check_derivative_shape(tout[i], outputs[i].shape(), l.batch_dims, "the JVP's output tangent", name);
        meta(outputs[i]).at(l.id).tangent = tout[i];
      }
      continue;
    }
    auto node = std::make_shared<Node>();
    node->name = name;
    node->level = l.id;
    node->seq = g_seq++;
    for (const Tensor& in : inputs) {
      Edge e;
      if (const LevelMeta* m = level_meta(in, l.id); m && m->requires_grad) {
        if (m->grad_fn) {
          e.node = m->grad_fn;
          e.output_nr = m->output_nr;
        } else {
          e.leaf = in.autograd_meta();
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
        // The state of the levels below this one only: no cycle node -> output -> node.
        node->saved_outputs.push_back(copy_state(o, l.id, l.id));
        node->output_versions.push_back(o.defined() ? o.storage()->version.load() : 0);
      }
      if (o.defined() && is_floating(o.dtype())) {
        LevelMeta& m = meta(o).at(l.id);
        m.requires_grad = true;
        m.grad_fn = node;
        m.output_nr = static_cast<int>(i);
        node->output_metas.push_back(o.autograd_meta());
      } else {
        if (o.defined()) meta(o).at(l.id).blocked_by = name;
        node->output_metas.emplace_back();
      }
    }
    node->vjp = vjp;
    if (l.id == 0) base_node = node;
  }
  if (base_node && save_outputs) base_node->transform_state = transform_takes_part;
  return outputs;
}

Tensor record1(const char* name, const std::vector<Tensor>& inputs, Tensor output, VjpFn vjp, JvpFn jvp,
               bool save_outputs) {
  return record(name, inputs, {std::move(output)}, std::move(vjp), std::move(jvp), save_outputs)[0];
}

// ---------------------------------------------------------------- the reverse walk

namespace {

struct Task {
  uint64_t level = 0;       // whose tape is walked
  bool create_graph = false;  // base tape only: record the backward on the base tape itself
  bool retain_graph = false;
  bool accumulate = true;   // backward(): into leaves' .grad; grad(): capture only
  int batch_dims = 0;       // cotangents are (batch, *shape)
  const char* who = "backward";
  // grad(): where each requested input's gradient is found
  std::unordered_map<const Node*, std::vector<std::pair<int, size_t>>> node_capture;  // (output_nr, slot)
  std::unordered_map<const AutogradMeta*, std::vector<size_t>> leaf_capture;
  std::vector<Tensor> captured;
};

Tensor accumulate(const Tensor& acc, const Tensor& g) { return acc.defined() ? add(acc, g) : g; }

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& root_grads, Task& task) {
  // Which levels see the VJPs' computation: on the base tape, every open transform level (and the
  // base tape itself with create_graph); on a transform's tape, the levels that enclose it (those
  // nested in it, if it is still open, are hidden with it).
  const bool open = task.level != 0 && find_level(task.level) != nullptr;
  const uint64_t ceiling = task.level == 0 ? kNone : (open ? task.level : kNone);
  const bool hide_base = task.level == 0 && !task.create_graph;
  bool transform_visible = false;
  for (const Level& l : t_levels) transform_visible |= l.id != 0 && l.enabled && l.id < t_ceiling;

  // 1. Discover the graph and count, for each node, the edges that point to it.
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> order;  // discovery order
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack;
  for (const Tensor& r : roots) {
    Node* n = level_meta(r, task.level)->grad_fn.get();
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
  auto detached = [&](const Tensor& g) { return task.create_graph ? g : copy_state(g, 0); };
  auto deliver_leaf = [&](const std::shared_ptr<AutogradMeta>& leaf, const Tensor& g) {
    if (task.accumulate) leaf->grad = accumulate(leaf->grad, detached(g));
    auto it = task.leaf_capture.find(leaf.get());
    if (it != task.leaf_capture.end())
      for (size_t slot : it->second) task.captured[slot] = accumulate(task.captured[slot], g);
  };
  for (size_t i = 0; i < roots.size(); ++i) {
    LevelMeta* m = level_meta(roots[i], task.level);
    if (m->grad_fn) {
      auto& buf = buffers[m->grad_fn.get()];
      buf.resize(m->grad_fn->next.empty() ? 1 : m->grad_fn->output_shapes.size());
      buf[m->output_nr] = accumulate(buf[m->output_nr], root_grads[i]);
    } else {
      deliver_leaf(roots[i].autograd_meta(), root_grads[i]);
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
        if (g.defined()) { batch.assign(g.shape().begin(), g.shape().begin() + task.batch_dims); break; }
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
          if (auto m = n->output_metas[i].lock(); m && m->retains_grad) m->grad = accumulate(m->grad, detached(grads[i]));

      if (task.accumulate || needed.count(n)) {
        for (size_t i = 0; i < n->input_storages.size(); ++i) {
          auto st = n->input_storages[i].lock();
          CORTEX_CHECK(!st || st->version == n->input_versions[i], n->name, ": input ", i,
                       " saved for the backward pass was modified in place (version ", st ? st->version.load() : 0,
                       ", saved at ", n->input_versions[i], ")");
        }
        CORTEX_CHECK(!(n->transform_state && transform_visible), task.who, ": the base tape's backward runs inside a ",
                     "transform whose derivatives pass through '", n->name, "', which saved its output without them; ",
                     "inside jvp / vjp / jacobian / grad(f, x) use those transforms, not backward or grad on with_grad leaves");
        std::vector<Tensor> in_grads;
        {
          RuleScope rs(ceiling, hide_base, task.level, task.batch_dims);
          in_grads = n->vjp(grads, n->unpack_outputs(task.create_graph));
        }
        CORTEX_CHECK(in_grads.size() == n->next.size(), n->name, ": VJP returned ", in_grads.size(),
                     " gradients for ", n->next.size(), " inputs");
        for (size_t i = 0; i < n->next.size(); ++i) {
          const Edge& e = n->next[i];
          if (!e.active() || !in_grads[i].defined()) continue;
          check_derivative_shape(in_grads[i], n->input_shapes[i], task.batch_dims, "the VJP's input gradient", n->name);
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

// Checks one cotangent per output (implied ones for a one-element output when unbatched).
Tensor root_gradient(const Tensor& y, const Tensor& given, size_t i, int batch_dims, const char* who) {
  Tensor g = given;
  if (!g.defined()) {
    CORTEX_CHECK(y.numel() == 1 && batch_dims == 0, who, ": output ", i, " has shape ", shape_str(y.shape()),
                 "; a gradient can be implied only for a one-element output: pass grad_outputs");
    return ones(y.shape(), y.dtype(), y.device());
  }
  check_derivative_shape(g, y.shape(), batch_dims, "grad_output", who);
  CORTEX_CHECK(g.dtype() == y.dtype() && g.device() == y.device(), who, ": grad_output ", i, " is ",
               dtype_name(g.dtype()), " on ", g.device().str(), " but the output is ", dtype_name(y.dtype()), " on ",
               y.device().str());
  return g;
}

std::vector<Tensor> root_gradients(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs,
                                   const char* who) {
  CORTEX_CHECK(grad_outputs.empty() || grad_outputs.size() == outputs.size(), who, ": ", grad_outputs.size(),
               " grad_outputs for ", outputs.size(), " outputs");
  std::vector<Tensor> gs;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& y = outputs[i];
    CORTEX_CHECK(y.defined(), who, ": output ", i, " is undefined");
    const LevelMeta* m = level_meta(y, 0);
    CORTEX_CHECK(m && m->requires_grad, who, ": output ", i, " does not require grad (no input that requires grad ",
                 "reached it, or it was computed under NoGradGuard; the transforms grad(f, x), vjp and jacobian work ",
                 "under NoGradGuard)");
    gs.push_back(root_gradient(y, grad_outputs.empty() ? Tensor() : grad_outputs[i], i, t_batch_dims, who));
  }
  return gs;
}

// Zeros shaped (batch, *shape) for an input no gradient reached.
Tensor zero_derivative(const Tensor& like, const Shape& batch) {
  Shape s = batch;
  s.insert(s.end(), like.shape().begin(), like.shape().end());
  return zeros(s, like.dtype(), like.device());
}

// The gradients of sum(outputs * cotangents) with respect to `inputs` on the tape of transform level
// `level` (open or finished). An output that is not on that tape is skipped (zero derivative) unless
// it depends on the inputs only through an op without a derivative: then this throws.
std::vector<Tensor> level_grad(uint64_t level, const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                               const std::vector<Tensor>& cotangents, bool retain_graph, const char* who) {
  CORTEX_CHECK(cotangents.size() == outputs.size(), who, ": ", cotangents.size(), " cotangents for ", outputs.size(),
               " outputs");
  const int nb = t_batch_dims;
  Task task;
  task.level = level;
  task.retain_graph = retain_graph;
  task.accumulate = false;
  task.batch_dims = nb;
  task.who = who;
  task.captured.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    LevelMeta* m = level_meta(inputs[i], level);
    if (m->grad_fn) task.node_capture[m->grad_fn.get()].push_back({m->output_nr, i});
    else task.leaf_capture[inputs[i].autograd_meta().get()].push_back(i);
  }
  std::vector<Tensor> roots, seeds;
  Shape batch;
  for (size_t i = 0; i < outputs.size(); ++i) {
    CORTEX_CHECK(outputs[i].defined(), who, ": output ", i, " is undefined");
    Tensor g = root_gradient(outputs[i], cotangents[i], i, nb, who);
    batch.assign(g.shape().begin(), g.shape().begin() + nb);
    const LevelMeta* m = level_meta(outputs[i], level);
    if (!m || !m->requires_grad) {
      if (const char* why = blocked_at(outputs[i], level)) throw_blocked(who, why);
      continue;  // this output does not depend on the inputs
    }
    roots.push_back(outputs[i]);
    seeds.push_back(g);
  }
  if (!roots.empty()) run_backward(roots, seeds, task);
  std::vector<Tensor> out = std::move(task.captured);
  for (size_t i = 0; i < out.size(); ++i)
    if (!out[i].defined()) out[i] = zero_derivative(inputs[i], batch);
  return out;
}

// A handle on x that takes part in every open level exactly as x does (an identity op, so that the
// enclosing tapes and tangents reach through it), ready for a new level's state.
Tensor alias(const Tensor& x) {
  return record1(
      "alias", {x}, plain(x), [](const std::vector<Tensor>& g, const std::vector<Tensor>&) { return std::vector<Tensor>{g[0]}; },
      [](const std::vector<Tensor>& t, const std::vector<Tensor>&) { return std::vector<Tensor>{t[0]}; });
}
// A leaf of reverse level `level` with x's value and x's state at the enclosing levels.
Tensor level_leaf(const Tensor& x, uint64_t level, const char* who) {
  CORTEX_CHECK(x.defined() && is_floating(x.dtype()), who, ": the input must be a float tensor, found ",
               x.defined() ? dtype_name(x.dtype()) : "an undefined tensor");
  Tensor l = alias(x);
  meta(l).at(level).requires_grad = true;
  return l;
}

// Rows start..start+c of the identity of size n, shaped (c, *shape).
Tensor basis_chunk(int64_t start, int64_t c, int64_t n, const Shape& shape, DType dt, Device dev) {
  Tensor e = zeros({c, n}, dt);
  for (int64_t i = 0; i < c; ++i) e.select(0, i).select(0, start + i).fill_(1.0);
  Shape s{c};
  s.insert(s.end(), shape.begin(), shape.end());
  return e.view(s).to(dev);
}

Shape cat(const Shape& a, const Shape& b) {
  Shape s = a;
  s.insert(s.end(), b.begin(), b.end());
  return s;
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
  task.batch_dims = t_batch_dims;
  task.who = "backward";
  run_backward(outputs, root_gradients(outputs, grad_outputs, "backward"), task);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool create_graph, std::optional<bool> retain_graph,
                         bool materialize_zeros) {
  Task task;
  task.create_graph = create_graph;
  task.retain_graph = retain_graph.value_or(create_graph);
  task.accumulate = false;
  task.batch_dims = t_batch_dims;
  task.who = "grad";
  task.captured.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const LevelMeta* m = level_meta(inputs[i], 0);
    CORTEX_CHECK(m && m->requires_grad, "grad: input ", i, " does not require grad");
    if (m->grad_fn) task.node_capture[m->grad_fn.get()].push_back({m->output_nr, i});
    else task.leaf_capture[inputs[i].autograd_meta().get()].push_back(i);
  }
  run_backward(outputs, root_gradients(outputs, grad_outputs, "grad"), task);
  std::vector<Tensor> out = std::move(task.captured);
  Shape batch;
  if (t_batch_dims && !grad_outputs.empty() && grad_outputs[0].defined())
    batch.assign(grad_outputs[0].shape().begin(), grad_outputs[0].shape().begin() + t_batch_dims);
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].defined()) {
      if (!create_graph) out[i] = copy_state(out[i], 0);  // off the base tape; transform state stays
    } else if (materialize_zeros) {
      out[i] = zero_derivative(inputs[i], batch);
    }
  }
  return out;
}

// ---------------------------------------------------------------- transforms

JvpResult jvp(const Fn& f, const std::vector<Tensor>& primals, const std::vector<Tensor>& tangents) {
  CORTEX_CHECK(primals.size() == tangents.size(), "jvp: ", primals.size(), " primals but ", tangents.size(),
               " tangents");
  const int nb = t_batch_dims;
  for (size_t i = 0; i < primals.size(); ++i) {
    CORTEX_CHECK(primals[i].defined() && tangents[i].defined(), "jvp: primal or tangent ", i, " is undefined");
    check_derivative_shape(tangents[i], primals[i].shape(), nb, "tangent", "jvp");
    CORTEX_CHECK(tangents[i].dtype() == primals[i].dtype() && tangents[i].device() == primals[i].device(),
                 "jvp: tangent ", i, " is ", dtype_name(tangents[i].dtype()), " on ", tangents[i].device().str(),
                 " but its primal is ", dtype_name(primals[i].dtype()), " on ", primals[i].device().str());
    CORTEX_CHECK(is_floating(primals[i].dtype()), "jvp: primal ", i, " must be a float tensor, found ",
                 dtype_name(primals[i].dtype()));
  }
  const Shape batch(tangents.empty() ? Shape{} : Shape(tangents[0].shape().begin(), tangents[0].shape().begin() + nb));
  JvpResult r;
  LevelScope lv(/*forward=*/true, nb);
  std::vector<Tensor> duals;
  for (size_t i = 0; i < primals.size(); ++i) {
    Tensor d = alias(primals[i]);
    meta(d).at(lv.id).tangent = tangents[i];
    duals.push_back(d);
  }
  std::vector<Tensor> outs = f(duals);
  for (const Tensor& o : outs) {
    CORTEX_CHECK(o.defined(), "jvp: f returned an undefined tensor");
    const LevelMeta* m = level_meta(o, lv.id);
    Tensor t = m ? m->tangent : Tensor();
    if (!t.defined()) {
      if (const char* why = blocked_at(o, lv.id)) throw_blocked("jvp", why);
      t = zero_derivative(o, batch);
    }
    r.outputs.push_back(copy_state(o, lv.id));
    r.tangents.push_back(t);
  }
  return r;
}

VjpResult vjp(const Fn& f, const std::vector<Tensor>& primals) {
  std::vector<Tensor> leaves, outs;
  uint64_t id;
  {
    LevelScope lv(/*forward=*/false, 0);
    id = lv.id;
    for (const Tensor& p : primals) leaves.push_back(level_leaf(p, id, "vjp"));
    outs = f(leaves);
  }
  VjpResult r;
  r.outputs = outs;
  r.pullback = [outs, leaves, id](const std::vector<Tensor>& cots) {
    return level_grad(id, outs, leaves, cots, /*retain_graph=*/true, "vjp");
  };
  return r;
}

Tensor grad(const Fn1& f, const Tensor& x) {
  LevelScope lv(/*forward=*/false, 0);
  Tensor xl = level_leaf(x, lv.id, "grad");
  Tensor y = f(xl);
  CORTEX_CHECK(y.defined() && y.numel() == 1, "grad: f must return one element, found ",
               y.defined() ? "shape " + shape_str(y.shape()) : std::string("an undefined tensor"));
  return level_grad(lv.id, {y}, {xl}, {Tensor()}, false, "grad")[0];
}

Tensor jacobian(const Fn1& f, const Tensor& x, JacobianMode mode, int64_t chunk) {
  CORTEX_CHECK(x.defined() && is_floating(x.dtype()), "jacobian: x must be a float tensor");
  const int64_t n = x.numel();
  if (mode == JacobianMode::Auto) {
    NoGradGuard ng;
    BatchedScope unbatched(0);
    mode = n < f(plain(x)).numel() ? JacobianMode::Forward : JacobianMode::Reverse;
  }
  std::vector<Tensor> pieces;
  if (mode == JacobianMode::Forward) {
    Shape yshape;
    const int64_t c0 = chunk > 0 ? chunk : std::max<int64_t>(n, 1);
    for (int64_t s = 0; s < n; s += c0) {
      const int64_t c = std::min(c0, n - s);
      BatchedScope bs(1);
      JvpResult r = jvp([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in[0])}; }, {x},
                        {basis_chunk(s, c, n, x.shape(), x.dtype(), x.device())});
      yshape = r.outputs[0].shape();
      pieces.push_back(r.tangents[0].reshape({c, -1}));  // (c, m): columns s..s+c of J
    }
    if (n == 0) {
      NoGradGuard ng;
      BatchedScope unbatched(0);
      yshape = f(plain(x)).shape();
      pieces.push_back(zeros({0, shape_numel(yshape)}, x.dtype(), x.device()));
    }
    // Assembled with ops, so an enclosing transform differentiates the Jacobian too.
    return concat(pieces, 0).t().contiguous().view(cat(yshape, x.shape()));
  }
  LevelScope lv(/*forward=*/false, 0);
  Tensor xl = level_leaf(x, lv.id, "jacobian");
  Tensor yl = f(xl);
  CORTEX_CHECK(yl.defined(), "jacobian: f returned an undefined tensor");
  const Shape out = cat(yl.shape(), x.shape());
  const int64_t m = yl.numel();
  if (m == 0) return zeros(out, x.dtype(), x.device());
  const int64_t c0 = chunk > 0 ? chunk : std::max<int64_t>(m, 1);
  for (int64_t s = 0; s < m; s += c0) {
    const int64_t c = std::min(c0, m - s);
    BatchedScope bs(1);
    auto g = level_grad(lv.id, {yl}, {xl}, {basis_chunk(s, c, m, yl.shape(), yl.dtype(), yl.device())}, true, "jacobian");
    pieces.push_back(g[0].reshape({c, n}));  // rows s..s+c of J
  }
  return concat(pieces, 0).view(out);
}

Tensor hvp(const Fn1& f, const Tensor& x, const Tensor& v) {
  CORTEX_CHECK(x.defined() && v.defined() && v.shape() == x.shape(), "hvp: v has shape ",
               v.defined() ? shape_str(v.shape()) : "undefined", " but x has ", x.defined() ? shape_str(x.shape()) : "undefined");
  BatchedScope unbatched(0);
  return jvp([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{grad(f, in[0])}; }, {x}, {v}).tangents[0];
}

Tensor hessian(const Fn1& f, const Tensor& x, JacobianMode outer, JacobianMode inner, int64_t chunk) {
  CORTEX_CHECK(x.defined() && is_floating(x.dtype()), "hessian: x must be a float tensor");
  auto gradient = [&](const Tensor& y) {
    Tensor j = jacobian(f, y, inner, chunk);
    CORTEX_CHECK(j.numel() == y.numel(), "hessian: f must return one element, found ", j.numel() / std::max<int64_t>(y.numel(), 1),
                 " elements");
    return j.reshape(y.shape());
  };
  return jacobian(gradient, x, outer, chunk);
}

std::vector<Tensor> per_sample_grads(const Fn& losses, const std::vector<Tensor>& params, int64_t chunk) {
  LevelScope lv(/*forward=*/false, 0);
  std::vector<Tensor> leaves;
  for (const Tensor& p : params) leaves.push_back(level_leaf(p, lv.id, "per_sample_grads"));
  std::vector<Tensor> ys = losses(leaves);
  CORTEX_CHECK(ys.size() == 1 && ys[0].defined() && ys[0].dim() == 1, "per_sample_grads: the function must return ",
               "one tensor of per-sample losses, shape (N), found ", ys.size(), " tensors",
               ys.size() == 1 && ys[0].defined() ? " of shape " + shape_str(ys[0].shape()) : std::string());
  const Tensor& y = ys[0];
  const int64_t N = y.numel();
  std::vector<std::vector<Tensor>> pieces(params.size());
  const int64_t c0 = chunk > 0 ? chunk : std::max<int64_t>(N, 1);
  for (int64_t s = 0; s < N; s += c0) {
    const int64_t c = std::min(c0, N - s);
    BatchedScope bs(1);
    auto g = level_grad(lv.id, {y}, leaves, {basis_chunk(s, c, N, y.shape(), y.dtype(), y.device())}, true,
                        "per_sample_grads");
    for (size_t k = 0; k < params.size(); ++k) pieces[k].push_back(g[k]);
  }
  std::vector<Tensor> out;
  for (size_t k = 0; k < params.size(); ++k)
    out.push_back(N == 0 ? zeros(cat({0}, params[k].shape()), params[k].dtype(), params[k].device())
                         : concat(pieces[k], 0));
  return out;
}

// ---------------------------------------------------------------- hooks for Tensor methods

namespace {

// Whether the strided tensor t addresses each element of its storage at most once. Sufficient
// test: its dims of size > 1, by increasing stride, each step past the extent the smaller ones
// span (an expand's zero stride, or an as_strided overlap, fails it).
bool addresses_once(const Tensor& t) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size)
  for (int64_t i = 0; i < t.dim(); ++i)
    if (t.size(i) > 1) dims.push_back({t.strides()[size_t(i)], t.size(i)});
  std::sort(dims.begin(), dims.end());
  int64_t extent = 0;  // the largest offset the dims so far reach
  for (const auto& [stride, size] : dims) {
    if (stride <= extent) return false;
    extent += stride * (size - 1);
  }
  return true;
}

void on_view(const Tensor& base, const Tensor& view, const ViewFn& reapply) {
  if (!needs_autograd({base})) {
    mark_blocked("view", {base}, {view});  // carries a mark from an op without a derivative along
    return;
  }
  const Shape bs = base.shape(), vs = view.shape();
  const int64_t n = base.numel(), m = view.numel();
  // A view that keeps the element order (reshape of a contiguous tensor) moves derivatives by reshape.
  const bool same_order = base.is_contiguous() && view.is_contiguous() && n == m && view.offset() == base.offset();
  // Otherwise: the index (into base's elements) of each view element, made by re-applying the view.
  const Device dev = base.device();
  auto index = [reapply, bs, n, dev]() {
    return reapply(arange(0, static_cast<double>(n), 1, DType::Int64, dev).view(bs)).reshape({-1});
  };
  Tensor v = view;
  Tensor out = record1(
      "view", {base}, v,
      [same_order, bs, n, m, index, reapply](const std::vector<Tensor>& g,
                                             const std::vector<Tensor>&) -> std::vector<Tensor> {
        if (same_order) return {rules::breshape(g[0], bs)};
        if (rules::nb() == 0 && !needs_autograd({g[0]})) {
          // Plain backward of a view that reads each base element at most once (a narrow, a
          // transpose, a strided slice): g written through the same view of a zero tensor. The
          // index_add below costs an int64 arange, its reordered copy and a scattered add (about
          // 4% of a dream step: 8 narrows of the 224 px image per step).
          Tensor gx = zeros(bs, g[0].dtype(), g[0].device());
          const bool done = raw([&] {
            Tensor gv = reapply(gx);
            if (!addresses_once(gv)) return false;
            gv.copy_(g[0]);
            return true;
          });
          if (done) return {gx};
        }
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
  const DType sd = src.dtype(), od = out.dtype();
  const Device sdev = src.device(), odev = out.device();
  if (!is_floating(od)) {  // casting to integers ends differentiation
    mark_blocked("cast to an integer dtype", {src}, {out});
    return;
  }
  if (!needs_autograd({src})) {
    mark_blocked("copy", {src}, {out});
    return;
  }
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
  const bool involved = needs_autograd({dst, src});
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
