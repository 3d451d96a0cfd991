#include "common/registry.h"

#include <utility>
#include <vector>

namespace vt_ops {
namespace {
std::vector<std::pair<const char*, BindFn>>& bindings() {
  static std::vector<std::pair<const char*, BindFn>> registry;
  return registry;
}
}  // namespace

int register_binding(const char* name, BindFn fn) {
  bindings().emplace_back(name, fn);
  return static_cast<int>(bindings().size());
}

void bind_all(nanobind::module_& m) {
  for (auto& [name, fn] : bindings()) fn(m);
}

}  // namespace vt_ops
