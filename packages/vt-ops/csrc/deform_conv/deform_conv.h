// Deformable convolution (v1, and v2 "modulated" with a mask) as deformable
// im2col / col2im kernels; the convolution's matrix products run in the
// caller's array library (torch, numpy or cupy matmul).
//
// Layouts (all C-contiguous, one chunk of `batch` images):
//   input    [batch, channels, height, width]
//   offset   [batch, deformable_groups * kernel_h * kernel_w * 2, out_h, out_w]
//            (dy, dx) pairs per kernel position, as torchvision and detectron2
//   mask     [batch, deformable_groups * kernel_h * kernel_w, out_h, out_w] or null (v1)
//   columns  [batch, channels * kernel_h * kernel_w, out_h * out_w]; row
//            c * kernel_h * kernel_w + i * kernel_w + j, so the rows of one
//            convolution group are contiguous and match weight.reshape(O, -1).
// Sampling point of output (oy, ox), kernel position (i, j):
//   y = oy * stride_h - pad_h + i * dilation_h + dy,  x likewise.
#pragma once

#include <cstdint>

#include "common/macros.h"

namespace vt_ops {

struct DeformConvShape {
  int64_t batch, channels, height, width;
  int64_t kernel_h, kernel_w, out_h, out_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int64_t deformable_groups;

  VT_HOST_DEVICE int64_t kernel_size() const { return kernel_h * kernel_w; }
  VT_HOST_DEVICE int64_t out_size() const { return out_h * out_w; }
  VT_HOST_DEVICE int64_t channels_per_group() const { return channels / deformable_groups; }
};

// columns = deformable im2col of input (times the mask when mask != nullptr).
template <class T>
void deform_im2col_cpu(const T* input, const T* offset, const T* mask, T* columns,
                       const DeformConvShape& s);
// grad_input += the transpose of im2col applied to columns (grad_input is not cleared).
template <class T>
void deform_col2im_cpu(const T* columns, const T* offset, const T* mask, T* grad_input,
                       const DeformConvShape& s);
// Gradient with respect to offset and mask (grad_mask may be null; it must be
// null when mask is) given the column gradient; overwrites both.
template <class T>
void deform_col2im_coord_cpu(const T* columns, const T* input, const T* offset, const T* mask,
                             T* grad_offset, T* grad_mask, const DeformConvShape& s);

#ifdef VT_OPS_WITH_CUDA
template <class T>
void deform_im2col_cuda(const T* input, const T* offset, const T* mask, T* columns,
                        const DeformConvShape& s, std::uintptr_t stream);
template <class T>
void deform_col2im_cuda(const T* columns, const T* offset, const T* mask, T* grad_input,
                        const DeformConvShape& s, std::uintptr_t stream);
template <class T>
void deform_col2im_coord_cuda(const T* columns, const T* input, const T* offset, const T* mask,
                              T* grad_offset, T* grad_mask, const DeformConvShape& s,
                              std::uintptr_t stream);
#endif

}  // namespace vt_ops
