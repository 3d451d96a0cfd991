#include <array>
#include <optional>
#include <string>

#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>

#include "common/array.h"
#include "common/registry.h"
#include "deform_conv/deform_conv.h"
#ifdef VT_OPS_WITH_CUDA
#include "common/cuda_utils.h"
#endif

namespace vt_ops {
namespace {

using Pair = std::array<int64_t, 2>;

// Shape of a chunk from input, offset and the convolution parameters; checks
// every array against it (the Python layer has already given friendly errors).
DeformConvShape deform_shape(const Array& input, const Array& offset, const std::optional<Array>& mask,
                             Pair kernel, Pair stride, Pair padding, Pair dilation,
                             int64_t deformable_groups) {
  check_shape(input, "input", {-1, -1, -1, -1});
  DeformConvShape s{};
  s.batch = input.shape(0);
  s.channels = input.shape(1);
  s.height = input.shape(2);
  s.width = input.shape(3);
  s.kernel_h = kernel[0];
  s.kernel_w = kernel[1];
  s.stride_h = stride[0];
  s.stride_w = stride[1];
  s.pad_h = padding[0];
  s.pad_w = padding[1];
  s.dilation_h = dilation[0];
  s.dilation_w = dilation[1];
  s.deformable_groups = deformable_groups;
  check_arg(s.kernel_h > 0 && s.kernel_w > 0, "kernel_size: expected positive values");
  check_arg(s.stride_h > 0 && s.stride_w > 0, "stride: expected positive values");
  check_arg(s.pad_h >= 0 && s.pad_w >= 0, "padding: expected non-negative values");
  check_arg(s.dilation_h > 0 && s.dilation_w > 0, "dilation: expected positive values");
  check_arg(deformable_groups > 0 && s.channels % deformable_groups == 0,
            "deformable_groups: expected a positive divisor of the input channels");
  s.out_h = (s.height + 2 * s.pad_h - s.dilation_h * (s.kernel_h - 1) - 1) / s.stride_h + 1;
  s.out_w = (s.width + 2 * s.pad_w - s.dilation_w * (s.kernel_w - 1) - 1) / s.stride_w + 1;
  check_arg(s.out_h > 0 && s.out_w > 0, "input: too small for the kernel, padding and dilation");
  const int64_t kk = s.kernel_size();
  check_shape(offset, "offset", {s.batch, 2 * deformable_groups * kk, s.out_h, s.out_w});
  check_dtype_as(offset, "offset", input, "input");
  if (mask) {
    check_shape(*mask, "mask", {s.batch, deformable_groups * kk, s.out_h, s.out_w});
    check_dtype_as(*mask, "mask", input, "input");
  }
  return s;
}

template <class T>
const T* optional_ptr(const std::optional<Array>& a) {
  return a ? data_ptr<T>(*a) : nullptr;
}

Device devices(const Array& input, const Array& offset, const std::optional<Array>& mask,
               const Array& other, const char* other_name) {
  const Device d = common_device({{&input, "input"}, {&offset, "offset"}, {&other, other_name}});
  if (mask) common_device({{&input, "input"}, {&*mask, "mask"}});
  return d;
}

[[noreturn]] void no_cuda() { throw std::runtime_error("vt_ops was built without CUDA"); }

void deform_im2col_entry(const Array& input, const Array& offset, const std::optional<Array>& mask,
                         const Array& columns, Pair kernel, Pair stride, Pair padding,
                         Pair dilation, int64_t deformable_groups, std::uintptr_t stream) {
  const DeformConvShape s =
      deform_shape(input, offset, mask, kernel, stride, padding, dilation, deformable_groups);
  check_shape(columns, "columns", {s.batch, s.channels * s.kernel_size(), s.out_size()});
  check_dtype_as(columns, "columns", input, "input");
  const Device device = devices(input, offset, mask, columns, "columns");
  dispatch_floating(input, "input", [&](auto zero) {
    using T = decltype(zero);
    const T *x = data_ptr<T>(input), *off = data_ptr<T>(offset), *m = optional_ptr<T>(mask);
    T* cols = mutable_ptr<T>(columns);
    nb::gil_scoped_release release;
    if (device == Device::CPU) {
      deform_im2col_cpu<T>(x, off, m, cols, s);
    } else {
#ifdef VT_OPS_WITH_CUDA
      CudaDeviceGuard guard(input.device_id());
      deform_im2col_cuda<T>(x, off, m, cols, s, stream);
#else
      no_cuda();
#endif
    }
  });
}

void deform_col2im_entry(const Array& columns, const Array& offset, const std::optional<Array>& mask,
                         const Array& grad_input, Pair kernel, Pair stride, Pair padding,
                         Pair dilation, int64_t deformable_groups, std::uintptr_t stream) {
  const DeformConvShape s =
      deform_shape(grad_input, offset, mask, kernel, stride, padding, dilation, deformable_groups);
  check_shape(columns, "columns", {s.batch, s.channels * s.kernel_size(), s.out_size()});
  check_dtype_as(columns, "columns", grad_input, "grad_input");
  const Device device = devices(grad_input, offset, mask, columns, "columns");
  dispatch_floating(grad_input, "grad_input", [&](auto zero) {
    using T = decltype(zero);
    const T *cols = data_ptr<T>(columns), *off = data_ptr<T>(offset), *m = optional_ptr<T>(mask);
    T* gx = mutable_ptr<T>(grad_input);
    nb::gil_scoped_release release;
    if (device == Device::CPU) {
      deform_col2im_cpu<T>(cols, off, m, gx, s);
    } else {
#ifdef VT_OPS_WITH_CUDA
      CudaDeviceGuard guard(grad_input.device_id());
      deform_col2im_cuda<T>(cols, off, m, gx, s, stream);
#else
      no_cuda();
#endif
    }
  });
}

void deform_col2im_coord_entry(const Array& columns, const Array& input, const Array& offset,
                               const std::optional<Array>& mask, const Array& grad_offset,
                               const std::optional<Array>& grad_mask, Pair kernel, Pair stride,
                               Pair padding, Pair dilation, int64_t deformable_groups,
                               std::uintptr_t stream) {
  const DeformConvShape s =
      deform_shape(input, offset, mask, kernel, stride, padding, dilation, deformable_groups);
  check_shape(columns, "columns", {s.batch, s.channels * s.kernel_size(), s.out_size()});
  check_dtype_as(columns, "columns", input, "input");
  check_shape(grad_offset, "grad_offset",
              {s.batch, 2 * deformable_groups * s.kernel_size(), s.out_h, s.out_w});
  check_dtype_as(grad_offset, "grad_offset", input, "input");
  check_arg(!grad_mask || mask, "grad_mask: given without mask");
  if (grad_mask) {
    check_shape(*grad_mask, "grad_mask",
                {s.batch, deformable_groups * s.kernel_size(), s.out_h, s.out_w});
    check_dtype_as(*grad_mask, "grad_mask", input, "input");
    common_device({{&input, "input"}, {&*grad_mask, "grad_mask"}});
  }
  const Device device = devices(input, offset, mask, columns, "columns");
  common_device({{&input, "input"}, {&grad_offset, "grad_offset"}});
  dispatch_floating(input, "input", [&](auto zero) {
    using T = decltype(zero);
    const T *cols = data_ptr<T>(columns), *x = data_ptr<T>(input), *off = data_ptr<T>(offset),
            *m = optional_ptr<T>(mask);
    T* go = mutable_ptr<T>(grad_offset);
    T* gm = grad_mask ? mutable_ptr<T>(*grad_mask) : nullptr;
    nb::gil_scoped_release release;
    if (device == Device::CPU) {
      deform_col2im_coord_cpu<T>(cols, x, off, m, go, gm, s);
    } else {
#ifdef VT_OPS_WITH_CUDA
      CudaDeviceGuard guard(input.device_id());
      deform_col2im_coord_cuda<T>(cols, x, off, m, go, gm, s, stream);
#else
      no_cuda();
#endif
    }
  });
}

void bind(nb::module_& m) {
  m.def("deform_im2col", &deform_im2col_entry, nb::arg("input"), nb::arg("offset"),
        nb::arg("mask").none(), nb::arg("columns").noconvert(), nb::arg("kernel_size"),
        nb::arg("stride"), nb::arg("padding"), nb::arg("dilation"),
        nb::arg("deformable_groups"), nb::arg("stream") = 0,
        "Writes the deformable im2col of input (times mask, when given) into columns.");
  m.def("deform_col2im", &deform_col2im_entry, nb::arg("columns"), nb::arg("offset"),
        nb::arg("mask").none(), nb::arg("grad_input").noconvert(), nb::arg("kernel_size"),
        nb::arg("stride"), nb::arg("padding"), nb::arg("dilation"),
        nb::arg("deformable_groups"), nb::arg("stream") = 0,
        "Adds the deformable col2im of columns (the input gradient) into grad_input.");
  m.def("deform_col2im_coord", &deform_col2im_coord_entry, nb::arg("columns"), nb::arg("input"),
        nb::arg("offset"), nb::arg("mask").none(), nb::arg("grad_offset").noconvert(),
        nb::arg("grad_mask").none(), nb::arg("kernel_size"), nb::arg("stride"),
        nb::arg("padding"), nb::arg("dilation"), nb::arg("deformable_groups"),
        nb::arg("stream") = 0,
        "Writes the offset (and mask) gradients given the column gradient.");
}

}  // namespace

VT_OPS_REGISTER_BINDING(deform_conv, bind);

}  // namespace vt_ops
