#include "common/array.h"
#include "common/registry.h"
#include "confusion_matrix/confusion_matrix.h"
#ifdef VT_OPS_WITH_CUDA
#include "common/cuda_utils.h"
#endif

namespace vt_ops {
namespace {

void confusion_matrix_entry(const Array& pred, const Array& label, int64_t num_classes,
                            int64_t ignore_index, const Array& counts, std::uintptr_t stream) {
  check_arg(num_classes >= 1, "num_classes: expected a positive number");
  check_arg(pred.size() == label.size(), "pred and label must have the same number of elements");
  check_shape(counts, "counts", {confusion_num_counts(num_classes)});
  if (!has_dtype<int64_t>(counts)) throw nb::type_error("counts: expected int64");
  const Device device = common_device({{&pred, "pred"}, {&label, "label"}, {&counts, "counts"}});
  const int64_t n = static_cast<int64_t>(pred.size());
  int64_t* out = mutable_ptr<int64_t>(counts);
  dispatch_integer(pred, "pred", [&](auto pred_zero) {
    using TP = decltype(pred_zero);
    dispatch_integer(label, "label", [&](auto label_zero) {
      using TL = decltype(label_zero);
      const TP* p = data_ptr<TP>(pred);
      const TL* l = data_ptr<TL>(label);
      nb::gil_scoped_release release;
      if (device == Device::CPU) {
        confusion_matrix_cpu<TP, TL>(p, l, n, num_classes, ignore_index, out);
      } else {
#ifdef VT_OPS_WITH_CUDA
        CudaDeviceGuard guard(pred.device_id());
        confusion_matrix_cuda<TP, TL>(p, l, n, num_classes, ignore_index, out,
                                      static_cast<int>(pred.device_id()), stream);
#else
        throw std::runtime_error("vt_ops was built without CUDA");
#endif
      }
    });
  });
}

void bind(nb::module_& m) {
  m.def("confusion_matrix", &confusion_matrix_entry, nb::arg("pred"), nb::arg("label"),
        nb::arg("num_classes"), nb::arg("ignore_index"), nb::arg("counts").noconvert(),
        nb::arg("stream") = 0,
        "Adds the label-major confusion counts of two integer label maps to counts "
        "(C*C cells, then the numbers of out-of-range labels and predictions).");
}

}  // namespace

VT_OPS_REGISTER_BINDING(confusion_matrix, bind);

}  // namespace vt_ops
