#include "common/array.h"
#include "common/registry.h"
#include "roi_align/checks.h"
#include "roi_pool/roi_pool.h"
#ifdef VT_OPS_WITH_CUDA
#include "common/cuda_utils.h"
#endif

namespace vt_ops {
namespace {

void check_argmax(const Array& argmax, const RoiAlignShape& s) {
  check_shape(argmax, "argmax", {s.num_rois, s.channels, s.pooled_h, s.pooled_w});
  check_arg(s.height * s.width < (int64_t(1) << 31),
            "input: height * width must be below 2**31 (argmax is int32)");
  if (!has_dtype<int32_t>(argmax)) throw nb::type_error("argmax: expected int32");
}

void roi_pool_forward_entry(const Array& input, const Array& rois, const Array& output,
                            const Array& argmax, double spatial_scale, std::uintptr_t stream) {
  const RoiAlignShape s = check_roi_shapes(input, "input", rois, 5, output, "output");
  check_argmax(argmax, s);
  const Device device = common_device(
      {{&input, "input"}, {&rois, "rois"}, {&output, "output"}, {&argmax, "argmax"}});
  dispatch_floating(input, "input", [&](auto zero) {
    using T = decltype(zero);
    const T* x = data_ptr<T>(input);
    const T* r = data_ptr<T>(rois);
    T* out = mutable_ptr<T>(output);
    int32_t* arg = mutable_ptr<int32_t>(argmax);
    nb::gil_scoped_release release;
    if (device == Device::CPU) {
      roi_pool_forward_cpu<T>(x, r, out, arg, s, spatial_scale);
    } else {
#ifdef VT_OPS_WITH_CUDA
      CudaDeviceGuard guard(input.device_id());
      roi_pool_forward_cuda<T>(x, r, out, arg, s, spatial_scale, stream);
#else
      throw std::runtime_error("vt_ops was built without CUDA");
#endif
    }
  });
}

void roi_pool_backward_entry(const Array& grad_output, const Array& rois, const Array& argmax,
                             const Array& grad_input, std::uintptr_t stream) {
  const RoiAlignShape s =
      check_roi_shapes(grad_input, "grad_input", rois, 5, grad_output, "grad_output");
  check_argmax(argmax, s);
  const Device device = common_device({{&grad_output, "grad_output"},
                                       {&rois, "rois"},
                                       {&argmax, "argmax"},
                                       {&grad_input, "grad_input"}});
  dispatch_floating(grad_input, "grad_input", [&](auto zero) {
    using T = decltype(zero);
    const T* g = data_ptr<T>(grad_output);
    const T* r = data_ptr<T>(rois);
    const int32_t* arg = data_ptr<int32_t>(argmax);
    T* gin = mutable_ptr<T>(grad_input);
    nb::gil_scoped_release release;
    if (device == Device::CPU) {
      roi_pool_backward_cpu<T>(g, r, arg, gin, s);
    } else {
#ifdef VT_OPS_WITH_CUDA
      CudaDeviceGuard guard(grad_input.device_id());
      roi_pool_backward_cuda<T>(g, r, arg, gin, s, stream);
#else
      throw std::runtime_error("vt_ops was built without CUDA");
#endif
    }
  });
}

void bind(nb::module_& m) {
  m.def("roi_pool_forward", &roi_pool_forward_entry, nb::arg("input"), nb::arg("rois"),
        nb::arg("output").noconvert(), nb::arg("argmax").noconvert(), nb::arg("spatial_scale"),
        nb::arg("stream") = 0, "Writes ROIPool of input (and the argmax) into output, argmax.");
  m.def("roi_pool_backward", &roi_pool_backward_entry, nb::arg("grad_output"), nb::arg("rois"),
        nb::arg("argmax"), nb::arg("grad_input").noconvert(), nb::arg("stream") = 0,
        "Adds the input gradient of ROIPool into (zeroed) grad_input.");
}

}  // namespace

VT_OPS_REGISTER_BINDING(roi_pool, bind);

}  // namespace vt_ops
