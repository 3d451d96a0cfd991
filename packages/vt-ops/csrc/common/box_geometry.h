// Axis-aligned box geometry shared by the CPU and CUDA kernels.
// Boxes are (x1, y1, x2, y2); a box with x2 < x1 or y2 < y1 has zero area.
#pragma once

#include "common/macros.h"

namespace vt_ops {

template <class T>
VT_HOST_DEVICE T clamp_min0(T v) {
  return v > T(0) ? v : T(0);
}

// a * b rounded on its own: device code would otherwise fuse a product and a
// following addition into one FMA, and CUDA IoUs would differ from CPU ones in
// the last bit (and NMS decisions at exact ties with the threshold).
VT_HOST_DEVICE float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
VT_HOST_DEVICE double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

template <class T>
VT_HOST_DEVICE bool box_has_nan(const T* b) {
  return b[0] != b[0] || b[1] != b[1] || b[2] != b[2] || b[3] != b[3];
}

template <class T>
VT_HOST_DEVICE T box_area(const T* b) {
  return mul_rn(clamp_min0(b[2] - b[0]), clamp_min0(b[3] - b[1]));
}

// Intersection area of (ax1, ay1, ax2, ay2) and (bx1, by1, bx2, by2); scalar
// arguments so that loops over structure-of-arrays boxes vectorise.
template <class T>
VT_HOST_DEVICE T box_intersection(T ax1, T ay1, T ax2, T ay2, T bx1, T by1, T bx2, T by2) {
  const T x1 = ax1 > bx1 ? ax1 : bx1;
  const T y1 = ay1 > by1 ? ay1 : by1;
  const T x2 = ax2 < bx2 ? ax2 : bx2;
  const T y2 = ay2 < by2 ? ay2 : by2;
  return mul_rn(clamp_min0(x2 - x1), clamp_min0(y2 - y1));
}

template <class T>
VT_HOST_DEVICE T box_intersection(const T* a, const T* b) {
  return box_intersection(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]);
}

// IoU as torchvision's NMS computes it, term for term, so suppression decisions
// agree bit for bit: areas are precomputed, and two empty boxes give 0/0 = NaN,
// which suppresses nothing.
template <class T>
VT_HOST_DEVICE T nms_box_iou(T ax1, T ay1, T ax2, T ay2, T area_a, T bx1, T by1, T bx2, T by2,
                             T area_b) {
  const T inter = box_intersection(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2);
  return inter / (area_a + area_b - inter);
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
