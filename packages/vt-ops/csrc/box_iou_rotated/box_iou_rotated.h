// Pairwise IoU matrix of rotated boxes (cx, cy, w, h, angle in degrees).
#pragma once

#include <cstdint>

#include "common/rotated_geometry.h"

namespace vt_ops {

// out[i * m + j] = IoU(boxes1[i], boxes2[j]); boxes are n x 5 and m x 5.
template <class T>
void box_iou_rotated_cpu(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out);

#ifdef VT_OPS_WITH_CUDA
template <class T>
void box_iou_rotated_cuda(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out,
                          std::uintptr_t stream);
#endif

}  // namespace vt_ops
