// ROIAlign (axis-aligned, torchvision/detectron2 semantics) and ROIAlignRotated
// (detectron2), forward and backward. Sampling math: common/bilinear.h.
//
// Layouts: input / grad_input N x C x H x W, rois K x 5 (batch, x1, y1, x2, y2)
// or K x 6 (batch, cx, cy, w, h, angle), output / grad_output K x C x PH x PW.
// Backward adds into grad_input, which the caller zero-fills.
#pragma once

#include <cstdint>

namespace vt_ops {

struct RoiAlignShape {
  int64_t batch, channels, height, width, num_rois;
  int pooled_h, pooled_w;
};

struct RoiAlignParams {
  double spatial_scale;
  int sampling_ratio;
  bool aligned;  // axis-aligned ROIs only
  bool rotated;  // rois are K x 6 rotated boxes
};

template <class T>
void roi_align_forward_cpu(const T* input, const T* rois, T* output, const RoiAlignShape& s,
                           const RoiAlignParams& p);
// Deterministic: threads own disjoint channel ranges and visit ROIs in order.
template <class T>
void roi_align_backward_cpu(const T* grad_output, const T* rois, T* grad_input,
                            const RoiAlignShape& s, const RoiAlignParams& p);

#ifdef VT_OPS_WITH_CUDA
template <class T>
void roi_align_forward_cuda(const T* input, const T* rois, T* output, const RoiAlignShape& s,
                            const RoiAlignParams& p, std::uintptr_t stream);
// Not deterministic: overlapping ROIs accumulate into grad_input with atomicAdd.
template <class T>
void roi_align_backward_cuda(const T* grad_output, const T* rois, T* grad_input,
                             const RoiAlignShape& s, const RoiAlignParams& p,
                             std::uintptr_t stream);
#endif

}  // namespace vt_ops
