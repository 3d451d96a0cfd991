// Self-registration of op bindings: each csrc/<op>/bind.cpp registers its
// functions, and module.cpp binds them all, so adding an op touches no
// central list.
#pragma once

#include <nanobind/nanobind.h>

namespace vt_ops {

using BindFn = void (*)(nanobind::module_&);

int register_binding(const char* name, BindFn fn);
void bind_all(nanobind::module_& m);

}  // namespace vt_ops

#define VT_OPS_REGISTER_BINDING(name, fn) \
  [[maybe_unused]] static const int vt_ops_binding_##name = ::vt_ops::register_binding(#name, fn)
