#include "box_iou/box_iou.h"
#include "common/array.h"
#include "common/registry.h"
#ifdef VT_OPS_WITH_CUDA
#include "common/cuda_utils.h"
#endif

namespace vt_ops {
namespace {

void box_overlap_entry(const Array& boxes1, const Array& boxes2, const Array& out, int mode,
                 std::uintptr_t stream) {
  check_shape(boxes1, "boxes1", {-1, 4});
  check_shape(boxes2, "boxes2", {-1, 4});
  const int64_t n = boxes1.shape(0), m = boxes2.shape(0);
  check_shape(out, "out", {n, m});
  check_dtype_as(boxes2, "boxes2", boxes1, "boxes1");
  check_dtype_as(out, "out", boxes1, "boxes1");
  check_arg(mode == 0 || mode == 1, "mode: expected 0 (IoU) or 1 (IoA)");
  const auto overlap_mode = static_cast<OverlapMode>(mode);
  const Device device = common_device({{&boxes1, "boxes1"}, {&boxes2, "boxes2"}, {&out, "out"}});
  dispatch_floating(boxes1, "boxes1", [&](auto zero) {
    using T = decltype(zero);
    const T* b1 = data_ptr<T>(boxes1);
    const T* b2 = data_ptr<T>(boxes2);
    T* o = mutable_ptr<T>(out);
    nb::gil_scoped_release release;
    if (device == Device::CPU) {
      box_overlap_cpu<T>(b1, n, b2, m, o, overlap_mode);
    } else {
#ifdef VT_OPS_WITH_CUDA
      CudaDeviceGuard guard(boxes1.device_id());
      box_overlap_cuda<T>(b1, n, b2, m, o, overlap_mode, stream);
#else
      throw std::runtime_error("vt_ops was built without CUDA");
#endif
    }
  });
}

void bind(nb::module_& m) {
  m.def("box_overlap", &box_overlap_entry, nb::arg("boxes1"), nb::arg("boxes2"),
        nb::arg("out").noconvert(), nb::arg("mode"), nb::arg("stream") = 0,
        "Writes the pairwise IoU (mode 0) or IoA (mode 1) of two box arrays into out.");
}

}  // namespace

VT_OPS_REGISTER_BINDING(box_iou, bind);

}  // namespace vt_ops
