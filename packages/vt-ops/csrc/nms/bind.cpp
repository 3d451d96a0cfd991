#include <nanobind/stl/optional.h>

#include <optional>

#include "common/array.h"
#include "common/registry.h"
#include "nms/nms.h"
#ifdef VT_OPS_WITH_CUDA
#include "common/cuda_utils.h"
#endif

namespace vt_ops {
namespace {

void check_int64(const Array& a, const char* name) {
  if (!has_dtype<int64_t>(a)) throw nb::type_error((std::string(name) + ": expected int64").c_str());
}

// Writes the kept indices to keep[:count[0]] and their number (or a negative
// status, see nms.h) to count[0]. On CUDA, order, mask and removed are the
// caller-allocated sort order and workspaces, and the result is asynchronous.
void nms_entry(const Array& boxes, const Array& scores, std::optional<Array> idxs,
               std::optional<Array> order, const Array& keep, const Array& count,
               std::optional<Array> mask, std::optional<Array> removed, bool rotated,
               double iou_threshold, double score_threshold, int64_t max_output,
               std::uintptr_t stream) {
  const int box_dim = rotated ? 5 : 4;
  check_shape(boxes, "boxes", {-1, box_dim});
  const int64_t n = boxes.shape(0);
  check_shape(scores, "scores", {n});
  check_dtype_as(scores, "scores", boxes, "boxes");
  check_shape(keep, "keep", {n});
  check_int64(keep, "keep");
  check_shape(count, "count", {1});
  check_int64(count, "count");
  if (idxs) {
    check_shape(*idxs, "idxs", {n});
    check_int64(*idxs, "idxs");
  }
  check_arg(iou_threshold >= 0, "iou_threshold: expected a non-negative number");
  NmsOptions options;
  options.iou_threshold = iou_threshold;
  options.score_threshold = score_threshold;
  options.max_output = max_output;
  const Device device = common_device({{&boxes, "boxes"}, {&scores, "scores"}, {&keep, "keep"},
                                       {&count, "count"}});
  if (idxs) common_device({{&boxes, "boxes"}, {&*idxs, "idxs"}});
  dispatch_floating(boxes, "boxes", [&](auto zero) {
    using T = decltype(zero);
    const T* b = data_ptr<T>(boxes);
    const T* s = data_ptr<T>(scores);
    const int64_t* c = idxs ? data_ptr<int64_t>(*idxs) : nullptr;
    int64_t* k = mutable_ptr<int64_t>(keep);
    int64_t* out_count = mutable_ptr<int64_t>(count);
    if (device == Device::CPU) {
      nb::gil_scoped_release release;
      *out_count = nms_cpu<T>(b, box_dim, s, c, n, options, k);
      return;
    }
#ifdef VT_OPS_WITH_CUDA
    check_arg(order && mask && removed, "order, mask and removed are required on CUDA");
    const int64_t col_blocks = (n + 63) / 64;
    check_shape(*order, "order", {n});
    check_int64(*order, "order");
    check_shape(*mask, "mask", {n * col_blocks});
    check_int64(*mask, "mask");
    check_shape(*removed, "removed", {col_blocks});
    check_int64(*removed, "removed");
    common_device({{&boxes, "boxes"}, {&*order, "order"}, {&*mask, "mask"},
                   {&*removed, "removed"}});
    nb::gil_scoped_release release;
    CudaDeviceGuard guard(boxes.device_id());
    nms_cuda<T>(b, box_dim, s, c, data_ptr<int64_t>(*order), n, options,
                reinterpret_cast<uint64_t*>(mutable_ptr<int64_t>(*mask)),
                reinterpret_cast<uint64_t*>(mutable_ptr<int64_t>(*removed)), k, out_count,
                stream);
#else
    throw std::runtime_error("vt_ops was built without CUDA");
#endif
  });
}

void bind(nb::module_& m) {
  m.def("nms", &nms_entry, nb::arg("boxes"), nb::arg("scores"), nb::arg("idxs").none(),
        nb::arg("order").none(), nb::arg("keep").noconvert(), nb::arg("count").noconvert(),
        nb::arg("mask").none(), nb::arg("removed").none(), nb::arg("rotated"),
        nb::arg("iou_threshold"), nb::arg("score_threshold"), nb::arg("max_output"),
        nb::arg("stream") = 0,
        "Non-maximum suppression; writes kept indices to keep and their number to count.");
}

}  // namespace

VT_OPS_REGISTER_BINDING(nms, bind);

}  // namespace vt_ops
