// The private extension module vt_ops._C: build information, thread control,
// and every op registered with VT_OPS_REGISTER_BINDING.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <vector>

#include "common/parallel.h"
#include "common/registry.h"

#ifdef VT_OPS_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace nb = nanobind;

namespace {

nb::dict build_info() {
  nb::dict info;
  info["compiler"] = std::string(VT_OPS_COMPILER);
  info["cxx_standard"] = static_cast<long>(__cplusplus);
#ifdef VT_OPS_WITH_CUDA
  info["cuda_compiled"] = true;
  info["cuda_version"] = std::to_string(CUDART_VERSION / 1000) + "." +
                         std::to_string((CUDART_VERSION % 1000) / 10);
  std::vector<std::string> archs;
  std::string s = VT_OPS_CUDA_ARCHS_STR;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) archs.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  info["cuda_architectures"] = archs;
#else
  info["cuda_compiled"] = false;
  info["cuda_version"] = nb::none();
  info["cuda_architectures"] = std::vector<std::string>{};
#endif
  info["num_threads"] = vt_ops::get_num_threads();
  return info;
}

int cuda_device_count() {
#ifdef VT_OPS_WITH_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver/device" error
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

}  // namespace

NB_MODULE(_C, m) {
  m.doc() = "vt_ops private extension: use the functions of the vt_ops package instead.";
  m.def("build_info", &build_info);
  m.def("cuda_device_count", &cuda_device_count);
  m.def("get_num_threads", &vt_ops::get_num_threads);
  m.def("set_num_threads", &vt_ops::set_num_threads, nb::arg("n"));
  vt_ops::bind_all(m);
}
