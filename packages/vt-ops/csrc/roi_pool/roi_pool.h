// ROIPool (torchvision.ops.roi_pool semantics): max over integer pixel
// windows, with the flat int32 argmax (y * W + x, -1 for empty bins) kept for
// the backward pass. Window math: common/bilinear.h.
//
// Layouts: input / grad_input N x C x H x W, rois K x 5 (batch, x1, y1, x2, y2),
// output / argmax / grad_output K x C x PH x PW. Backward adds into grad_input,
// which the caller zero-fills.
#pragma once

#include <cstdint>

#include "roi_align/roi_align.h"  // RoiAlignShape

namespace vt_ops {

template <class T>
void roi_pool_forward_cpu(const T* input, const T* rois, T* output, int32_t* argmax,
                          const RoiAlignShape& s, double spatial_scale);
// Deterministic: threads own disjoint channel ranges and visit ROIs in order.
template <class T>
void roi_pool_backward_cpu(const T* grad_output, const T* rois, const int32_t* argmax,
                           T* grad_input, const RoiAlignShape& s);

#ifdef VT_OPS_WITH_CUDA
template <class T>
void roi_pool_forward_cuda(const T* input, const T* rois, T* output, int32_t* argmax,
                           const RoiAlignShape& s, double spatial_scale, std::uintptr_t stream);
// Not deterministic when ROIs share a maximum (atomicAdd).
template <class T>
void roi_pool_backward_cuda(const T* grad_output, const T* rois, const int32_t* argmax,
                            T* grad_input, const RoiAlignShape& s, std::uintptr_t stream);
#endif

}  // namespace vt_ops
