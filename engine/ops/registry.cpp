#include "engine/ops/registry.h"

#include <algorithm>
#include <limits>
#include <sstream>

namespace day18 {

const Tensor& TensorStore::get(const std::string& name) const {
  auto it = t_.find(name);
  if (it == t_.end()) {
    std::string have;
    for (auto& [k, v] : t_) have += detail::concat(have.empty() ? "" : ", ", k);
    DAY18_REQUIRE(false, "missing tensor '", name, "' (have: ", have.empty() ? "none" : have, ")");
  }
  return it->second.view();
}

const Tensor& TensorStore::find_or_allocate(const std::string& name,
                                            const std::vector<int64_t>& shape, DType dtype,
                                            bool* allocated) {
  // Reuse a tensor of the same shape and dtype: running an op again allocates nothing (the
  // tour times repeated runs, and cudaMalloc inside a timed region would swamp a kernel).
  *allocated = false;
  if (auto it = t_.find(name);
      it != t_.end() && it->second.sizes() == shape && it->second.dtype() == dtype)
    return it->second.view();
  t_.insert_or_assign(name, OwnedTensor(shape, dtype,
                                        device_ == Device::cuda ? Storage::device : Storage::host));
  *allocated = true;
  return t_.at(name).view();
}

const Tensor& TensorStore::emplace(const std::string& name, const std::vector<int64_t>& shape,
                                   DType dtype, cudaStream_t stream) {
  bool allocated = false;
  const Tensor& t = find_or_allocate(name, shape, dtype, &allocated);
  if (allocated) {
    poison(t, stream);
    // No stream: the caller may write it on any stream, including a non-blocking one that does
    // not wait for the legacy default stream the memset went to.
    if (device_ == Device::cuda && stream == nullptr)
      DAY18_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  }
  return t;
}

const Tensor& TensorStore::put(const std::string& name, const Tensor& src) {
  bool allocated = false;
  const Tensor& dst = find_or_allocate(name, src.sizes(), src.dtype(), &allocated);
  copy_tensor(dst, src);
  return dst;
}

void TensorStore::put_owned(const std::string& name, OwnedTensor t) {
  DAY18_REQUIRE(device_of(t.storage()) == device_, "tensor '", name, "' is on ",
                device_name(device_of(t.storage())), ", store is on ", device_name(device_));
  t_.insert_or_assign(name, std::move(t));
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> n;
  for (auto& [k, v] : t_) n.push_back(k);
  return n;
}

std::map<std::string, Tensor> TensorStore::views() const {
  std::map<std::string, Tensor> m;
  for (auto& [k, v] : t_) m.emplace(k, v.view());
  return m;
}

TensorStore TensorStore::to(Device device) const {
  TensorStore out(device);
  for (auto& [k, v] : t_) out.put(k, v.view());
  return out;
}

std::string Attrs::str(const std::string& k) const {
  auto it = kv_.find(k);
  DAY18_REQUIRE(it != kv_.end(), "missing attribute '", k, "'");
  return it->second;
}

double Attrs::real(const std::string& k) const {
  const std::string s = str(k);
  try {
    size_t pos = 0;
    double v = std::stod(s, &pos);
    if (pos == s.size()) return v;
  } catch (const std::exception&) {
  }
  DAY18_REQUIRE(false, "attribute '", k, "': expected a number, got '", s, "'");
}

int64_t Attrs::integer(const std::string& k) const {
  const std::string s = str(k);
  try {
    size_t pos = 0;
    long long v = std::stoll(s, &pos);
    if (pos == s.size()) return v;
  } catch (const std::exception&) {
  }
  DAY18_REQUIRE(false, "attribute '", k, "': expected an integer, got '", s, "'");
}

int Attrs::int32(const std::string& k) const {
  const int64_t v = integer(k);
  DAY18_REQUIRE(v >= std::numeric_limits<int>::min() && v <= std::numeric_limits<int>::max(),
                "attribute '", k, "': ", v, " does not fit a 32-bit int");
  return static_cast<int>(v);
}

bool Attrs::boolean(const std::string& k) const {
  const std::string s = str(k);
  if (s == "1" || s == "true" || s == "True") return true;
  if (s == "0" || s == "false" || s == "False") return false;
  DAY18_REQUIRE(false, "attribute '", k, "': expected true/false, got '", s, "'");
}

OwnedTensor OpContext::scratch(const std::vector<int64_t>& shape, DType dtype) const {
  OwnedTensor t(shape, dtype, device() == Device::cuda ? Storage::device : Storage::host);
  poison(t, stream);
  return t;
}

void Attrs::set(const std::string& k, double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  kv_[k] = os.str();
}

const OpRegistry& OpRegistry::instance() {
  static const OpRegistry reg = [] {
    OpRegistry r;
    register_embedding_ops(r);
    register_layernorm_ops(r);
    register_linear_ops(r);
    register_rotary_ops(r);
    register_cache_ops(r);
    register_attention_ops(r);
    register_activation_ops(r);
    register_sampling_ops(r);
    return r;
  }();
  return reg;
}

void OpRegistry::add(OpDef op) {
  DAY18_REQUIRE(std::none_of(ops_.begin(), ops_.end(), [&](auto& o) { return o.name == op.name; }),
                "op '", op.name, "' registered twice");
  ops_.push_back(std::move(op));
}

const OpDef& OpRegistry::find(const std::string& name) const {
  for (auto& op : ops_)
    if (op.name == name) return op;
  std::string known;
  for (auto& op : ops_) known += detail::concat(known.empty() ? "" : ", ", op.name);
  DAY18_REQUIRE(false, "unknown op '", name, "' (known: ", known, ")");
}

void run_op(const OpDef& op, TensorStore& io, const Attrs& attrs, cudaStream_t stream) {
  for (auto& in : op.inputs)
    DAY18_REQUIRE(io.contains(in.name), op.name, ": missing input tensor '", in.name, "' ",
                  in.layout);
  for (auto& a : op.attrs)
    DAY18_REQUIRE(!a.default_value.empty() || attrs.has(a.name), op.name,
                  ": missing attribute '", a.name, "' (", a.doc, ")");
  OpContext ctx{io, attrs, stream};
  op.run(ctx);
  if (io.device() == Device::cuda) DAY18_CUDA_CHECK(cudaStreamSynchronize(stream));
  for (auto& out : op.outputs)
    DAY18_REQUIRE(io.contains(out.name), op.name, ": did not produce output '", out.name, "'");
}

CompareResult compare_outputs(const OpDef& op, const TensorStore& actual,
                              const TensorStore& expected, double extra_scale) {
  CompareResult total;
  for (auto& out : op.outputs) {
    TensorStore a(Device::cpu), e(Device::cpu);
    const Tensor& av = a.put(out.name, actual.get(out.name));
    const Tensor& ev = e.put(out.name, expected.get(out.name));
    Tolerance tol = scaled(default_tolerance(ev.dtype()), op.tolerance_scale * extra_scale);
    CompareResult r = compare_tensors(av, ev, tol);
    total.checked += r.checked;
    total.mismatches += r.mismatches;
    total.max_abs_err = std::max(total.max_abs_err, r.max_abs_err);
    if (!r.ok) {
      total.ok = false;
      total.report += detail::concat("\n  ", out.name, ": ", r.report);
    }
  }
  return total;
}

}  // namespace day18
