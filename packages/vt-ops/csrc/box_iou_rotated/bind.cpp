#include "box_iou_rotated/box_iou_rotated.h"
#include "common/array.h"
#include "common/registry.h"
#ifdef VT_OPS_WITH_CUDA
#include "common/cuda_utils.h"
#endif

namespace vt_ops {
namespace {

void box_iou_rotated_entry(const Array& boxes1, const Array& boxes2, const Array& out,
                           std::uintptr_t stream) {
  check_shape(boxes1, "boxes1", {-1, 5});
  check_shape(boxes2, "boxes2", {-1, 5});
  const int64_t n = boxes1.shape(0), m = boxes2.shape(0);
  check_shape(out, "out", {n, m});
  check_dtype_as(boxes2, "boxes2", boxes1, "boxes1");
  check_dtype_as(out, "out", boxes1, "boxes1");
  const Device device = common_device({{&boxes1, "boxes1"}, {&boxes2, "boxes2"}, {&out, "out"}});
  dispatch_floating(boxes1, "boxes1", [&](auto zero) {
    using T = decltype(zero);
    const T* b1 = data_ptr<T>(boxes1);
    const T* b2 = data_ptr<T>(boxes2);
    T* o = mutable_ptr<T>(out);
    nb::gil_scoped_release release;
    if (device == Device::CPU) {
      box_iou_rotated_cpu<T>(b1, n, b2, m, o);
    } else {
#ifdef VT_OPS_WITH_CUDA
      CudaDeviceGuard guard(boxes1.device_id());
      box_iou_rotated_cuda<T>(b1, n, b2, m, o, stream);
#else
      throw std::runtime_error("vt_ops was built without CUDA");
#endif
    }
  });
}

void bind(nb::module_& m) {
  m.def("box_iou_rotated", &box_iou_rotated_entry, nb::arg("boxes1"), nb::arg("boxes2"),
        nb::arg("out").noconvert(), nb::arg("stream") = 0,
        "Writes the pairwise IoU of two rotated box arrays (N x 5, M x 5) into out.");
}

}  // namespace

VT_OPS_REGISTER_BINDING(box_iou_rotated, bind);

}  // namespace vt_ops
