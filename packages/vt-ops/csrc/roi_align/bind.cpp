#include "common/array.h"
#include "common/registry.h"
#include "roi_align/checks.h"
#include "roi_align/roi_align.h"
#ifdef VT_OPS_WITH_CUDA
#include "common/cuda_utils.h"
#endif

namespace vt_ops {
namespace {

void roi_align_forward_entry(const Array& input, const Array& rois, const Array& output,
                             double spatial_scale, int sampling_ratio, bool aligned, bool rotated,
                             std::uintptr_t stream) {
  const RoiAlignParams p{spatial_scale, sampling_ratio, aligned, rotated};
  const RoiAlignShape s =
      check_roi_shapes(input, "input", rois, rotated ? 6 : 5, output, "output");
  const Device device = common_device({{&input, "input"}, {&rois, "rois"}, {&output, "output"}});
  dispatch_floating(input, "input", [&](auto zero) {
    using T = decltype(zero);
    const T* x = data_ptr<T>(input);
    const T* r = data_ptr<T>(rois);
    T* out = mutable_ptr<T>(output);
    nb::gil_scoped_release release;
    if (device == Device::CPU) {
      roi_align_forward_cpu<T>(x, r, out, s, p);
    } else {
#ifdef VT_OPS_WITH_CUDA
      CudaDeviceGuard guard(input.device_id());
      roi_align_forward_cuda<T>(x, r, out, s, p, stream);
#else
      throw std::runtime_error("vt_ops was built without CUDA");
#endif
    }
  });
}

void roi_align_backward_entry(const Array& grad_output, const Array& rois,
                              const Array& grad_input, double spatial_scale, int sampling_ratio,
                              bool aligned, bool rotated, std::uintptr_t stream) {
  const RoiAlignParams p{spatial_scale, sampling_ratio, aligned, rotated};
  const RoiAlignShape s = check_roi_shapes(grad_input, "grad_input", rois, rotated ? 6 : 5,
                                           grad_output, "grad_output");
  const Device device = common_device(
      {{&grad_output, "grad_output"}, {&rois, "rois"}, {&grad_input, "grad_input"}});
  dispatch_floating(grad_input, "grad_input", [&](auto zero) {
    using T = decltype(zero);
    const T* g = data_ptr<T>(grad_output);
    const T* r = data_ptr<T>(rois);
    T* gin = mutable_ptr<T>(grad_input);
    nb::gil_scoped_release release;
    if (device == Device::CPU) {
      roi_align_backward_cpu<T>(g, r, gin, s, p);
    } else {
#ifdef VT_OPS_WITH_CUDA
      CudaDeviceGuard guard(grad_input.device_id());
      roi_align_backward_cuda<T>(g, r, gin, s, p, stream);
#else
      throw std::runtime_error("vt_ops was built without CUDA");
#endif
    }
  });
}

void bind(nb::module_& m) {
  m.def("roi_align_forward", &roi_align_forward_entry, nb::arg("input"), nb::arg("rois"),
        nb::arg("output").noconvert(), nb::arg("spatial_scale"), nb::arg("sampling_ratio"),
        nb::arg("aligned"), nb::arg("rotated"), nb::arg("stream") = 0,
        "Writes ROIAlign (rois K x 5) or ROIAlignRotated (rois K x 6) of input into output.");
  m.def("roi_align_backward", &roi_align_backward_entry, nb::arg("grad_output"), nb::arg("rois"),
        nb::arg("grad_input").noconvert(), nb::arg("spatial_scale"), nb::arg("sampling_ratio"),
        nb::arg("aligned"), nb::arg("rotated"), nb::arg("stream") = 0,
        "Adds the input gradient of ROIAlign / ROIAlignRotated into (zeroed) grad_input.");
}

}  // namespace

VT_OPS_REGISTER_BINDING(roi_align, bind);

}  // namespace vt_ops
