// Axis-aligned box geometry shared by the CPU and CUDA kernels.
// Boxes are (x1, y1, x2, y2); a box with x2 < x1 or y2 < y1 has zero area.
#pragma once

#include "common/macros.h"

namespace vt_ops {

template <class T>
VT_HOST_DEVICE T clamp_min0(T v) {
  return v > T(0) ? v : T(0);
}

template <class T>
VT_HOST_DEVICE bool box_has_nan(const T* b) {
  return b[0] != b[0] || b[1] != b[1] || b[2] != b[2] || b[3] != b[3];
}

template <class T>
VT_HOST_DEVICE T box_area(const T* b) {
  return clamp_min0(b[2] - b[0]) * clamp_min0(b[3] - b[1]);
}

template <class T>
VT_HOST_DEVICE T box_intersection(const T* a, const T* b) {
  const T x1 = a[0] > b[0] ? a[0] : b[0];
  const T y1 = a[1] > b[1] ? a[1] : b[1];
  const T x2 = a[2] < b[2] ? a[2] : b[2];
  const T y2 = a[3] < b[3] ? a[3] : b[3];
  return clamp_min0(x2 - x1) * clamp_min0(y2 - y1);
}

enum class OverlapMode : int { IoU = 0, IoA = 1 };

// IoU (inter / union) or IoA (inter / area of b). Disjoint or empty boxes give
// 0 (detectron2's convention: no 0/0 NaN for two empty boxes); a NaN
// coordinate gives NaN.
template <class T>
VT_HOST_DEVICE T box_overlap(const T* a, T area_a, const T* b, T area_b, OverlapMode mode) {
  if (box_has_nan(a) || box_has_nan(b)) return a[0] + a[1] + a[2] + a[3] + b[0] + b[1] + b[2] + b[3];
  const T inter = box_intersection(a, b);
  if (!(inter > T(0))) return T(0);
  return mode == OverlapMode::IoU ? inter / (area_a + area_b - inter) : inter / area_b;
}

}  // namespace vt_ops
