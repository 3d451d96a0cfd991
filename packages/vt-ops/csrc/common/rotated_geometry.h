// Rotated-box geometry shared by the CPU and CUDA kernels (rotated IoU and
// rotated NMS).
//
// A rotated box is (cx, cy, w, h, angle) with the angle in degrees,
// counter-clockwise in image coordinates (y pointing down), as detectron2.
// Intersections are exact convex-polygon clipping (Sutherland-Hodgman of one
// rectangle by the four edges of the other), computed around the midpoint of
// the two centres for precision. An axis-aligned bounding-box test rejects
// disjoint pairs before the polygon work: it is what makes rotated NMS fast.
#pragma once

#include <math.h>

#include "common/macros.h"

namespace vt_ops {

VT_HOST_DEVICE float vt_sin(float x) { return sinf(x); }
VT_HOST_DEVICE double vt_sin(double x) { return sin(x); }
VT_HOST_DEVICE float vt_cos(float x) { return cosf(x); }
VT_HOST_DEVICE double vt_cos(double x) { return cos(x); }
template <class T>
VT_HOST_DEVICE T vt_abs(T x) {
  return x < T(0) ? -x : x;
}

template <class T>
struct Point2 {
  T x, y;
};

// A rotated box prepared once for many pair tests: centre, the offsets of
// corners 0 and 1 from the centre (corners 2 and 3 are their mirror images),
// the half extents of its axis-aligned bounding box, and its area (0 when
// w <= 0 or h <= 0: such a box overlaps nothing). `nan` is true when any
// parameter is NaN.
template <class T>
struct RotatedBox {
  T cx, cy;
  T ox0, oy0, ox1, oy1;
  T ex, ey;
  T area;
  bool nan;
};

template <class T>
VT_HOST_DEVICE RotatedBox<T> make_rotated_box(const T* b) {
  RotatedBox<T> r;
  r.cx = b[0];
  r.cy = b[1];
  const T w = b[2], h = b[3];
  const T theta = b[4] * T(3.14159265358979323846 / 180.0);
  const T c = vt_cos(theta) * T(0.5), s = vt_sin(theta) * T(0.5);
  // detectron2's corner order (box_iou_rotated_utils.h get_rotated_vertices).
  r.ox0 = s * h + c * w;
  r.oy0 = c * h - s * w;
  r.ox1 = c * w - s * h;
  r.oy1 = -c * h - s * w;
  const T ax0 = vt_abs(r.ox0), ax1 = vt_abs(r.ox1), ay0 = vt_abs(r.oy0), ay1 = vt_abs(r.oy1);
  r.ex = ax0 > ax1 ? ax0 : ax1;
  r.ey = ay0 > ay1 ? ay0 : ay1;
  r.area = (w > T(0) && h > T(0)) ? w * h : T(0);
  r.nan = b[0] != b[0] || b[1] != b[1] || w != w || h != h || b[4] != b[4];
  return r;
}

// True when the bounding boxes are certainly disjoint, from the centre
// differences and the sums of the half extents. The small relative margin
// keeps borderline pairs on the exact path, so the rejection never changes a
// result; NaN gives false (the exact path handles it). Branch-free, so CPU
// loops over many pairs vectorise.
template <class T>
VT_HOST_DEVICE bool rotated_bounds_disjoint(T dx, T dy, T ex_sum, T ey_sum) {
  const T margin = T(1) + T(1e-4);
  return (vt_abs(dx) > ex_sum * margin) | (vt_abs(dy) > ey_sum * margin);
}

template <class T>
VT_HOST_DEVICE bool rotated_bounds_disjoint(const RotatedBox<T>& a, const RotatedBox<T>& b) {
  return rotated_bounds_disjoint(a.cx - b.cx, a.cy - b.cy, a.ex + b.ex, a.ey + b.ey);
}

// Corners relative to (sx, sy), in the order of make_rotated_box. For w, h > 0
// they run clockwise in a y-up frame (detectron2's order), whatever the angle.
template <class T>
VT_HOST_DEVICE void rotated_corners(const RotatedBox<T>& r, T sx, T sy, Point2<T>* p) {
  const T x = r.cx - sx, y = r.cy - sy;
  p[0] = {x + r.ox0, y + r.oy0};
  p[1] = {x + r.ox1, y + r.oy1};
  p[2] = {x - r.ox0, y - r.oy0};
  p[3] = {x - r.ox1, y - r.oy1};
}

// Area of the intersection of two rotated boxes with positive areas.
template <class T>
VT_HOST_DEVICE T rotated_intersection_area(const RotatedBox<T>& a, const RotatedBox<T>& b) {
  // Convex clipping of a quadrilateral by 4 half-planes has at most 8 vertices;
  // the capacity bound only guards against rounding in degenerate cases.
  constexpr int kCap = 16;
  const T sx = (a.cx + b.cx) * T(0.5), sy = (a.cy + b.cy) * T(0.5);
  Point2<T> clip[4];
  rotated_corners(b, sx, sy, clip);
  Point2<T> buf[2][kCap];
  rotated_corners(a, sx, sy, buf[0]);
  int n = 4, cur = 0;
  for (int k = 0; k < 4 && n >= 3; ++k) {
    const Point2<T> p = clip[k], q = clip[(k + 1) & 3];
    const T ex = q.x - p.x, ey = q.y - p.y;
    const Point2<T>* in = buf[cur];
    Point2<T>* out = buf[cur ^ 1];
    int m = 0;
    // Clockwise clip polygon: the inside of edge p->q is where cross(q - p, v - p) <= 0.
    T d_prev = ex * (in[n - 1].y - p.y) - ey * (in[n - 1].x - p.x);
    Point2<T> v_prev = in[n - 1];
    for (int i = 0; i < n; ++i) {
      const Point2<T> v = in[i];
      const T d = ex * (v.y - p.y) - ey * (v.x - p.x);
      if ((d <= T(0)) != (d_prev <= T(0)) && m < kCap) {
        // The signs differ strictly, so d_prev - d is nonzero.
        const T t = d_prev / (d_prev - d);
        out[m++] = {v_prev.x + t * (v.x - v_prev.x), v_prev.y + t * (v.y - v_prev.y)};
      }
      if (d <= T(0) && m < kCap) out[m++] = v;
      d_prev = d;
      v_prev = v;
    }
    n = m;
    cur ^= 1;
  }
  if (n < 3) return T(0);
  const Point2<T>* poly = buf[cur];
  T twice = T(0);
  for (int i = 0; i < n; ++i) {
    const Point2<T> u = poly[i], v = poly[i + 1 < n ? i + 1 : 0];
    twice += u.x * v.y - u.y * v.x;
  }
  T inter = vt_abs(twice) * T(0.5);
  const T bound = a.area < b.area ? a.area : b.area;
  return inter < bound ? inter : bound;
}

// IoU of two prepared rotated boxes. Disjoint or empty boxes give 0 (as the
// axis-aligned box_overlap); a NaN parameter gives NaN.
template <class T>
VT_HOST_DEVICE T rotated_box_iou(const RotatedBox<T>& a, const RotatedBox<T>& b) {
  if (a.nan || b.nan) return T(NAN);
  if (!(a.area > T(0)) || !(b.area > T(0)) || rotated_bounds_disjoint(a, b)) return T(0);
  const T inter = rotated_intersection_area(a, b);
  if (!(inter > T(0))) return T(0);
  return inter / (a.area + b.area - inter);
}

// Cheap test for NMS: false when IoU(a, b) <= thr is certain from the
// bounding boxes and areas alone. The intersection lies in the intersection
// of the two axis-aligned bounding boxes (and is at most the smaller area), and
// the IoU grows with the intersection, so that bound gives an upper bound of the
// IoU. Inputs: centre differences, half extents, areas; margins make the bound
// looser than rounding, so a rejection never changes a decision.
template <class T>
VT_HOST_DEVICE bool rotated_iou_may_exceed(T dx, T dy, T ex_a, T ey_a, T area_a, T ex_b, T ey_b,
                                           T area_b, T thr) {
  const T margin = T(1) + T(1e-4);
  const T min_ex = ex_a < ex_b ? ex_a : ex_b, min_ey = ey_a < ey_b ? ey_a : ey_b;
  T wx = (ex_a + ex_b) * margin - vt_abs(dx);
  T wy = (ey_a + ey_b) * margin - vt_abs(dy);
  wx = wx < T(2) * margin * min_ex ? wx : T(2) * margin * min_ex;
  wy = wy < T(2) * margin * min_ey ? wy : T(2) * margin * min_ey;
  const T lo = area_a < area_b ? area_a : area_b;
  T bound = (wx > T(0) ? wx : T(0)) * (wy > T(0) ? wy : T(0));
  bound = bound < lo ? bound : lo;
  // One comparison, no branches: CPU loops over many pairs vectorise. (An empty
  // box gives bound 0, which never exceeds a threshold >= 0.)
  return bound * margin > thr * (area_a + area_b - bound);
}

// IoU(a, b) > thr by exact polygon intersection, for boxes with finite parameters.
template <class T>
VT_HOST_DEVICE bool rotated_exact_iou_exceeds(const RotatedBox<T>& a, const RotatedBox<T>& b,
                                              T thr) {
  const T inter = rotated_intersection_area(a, b);
  return inter > T(0) && inter / (a.area + b.area - inter) > thr;
}

// IoU(a, b) > thr, for NMS on boxes with finite parameters.
template <class T>
VT_HOST_DEVICE bool rotated_iou_exceeds(const RotatedBox<T>& a, const RotatedBox<T>& b, T thr) {
  return rotated_iou_may_exceed(a.cx - b.cx, a.cy - b.cy, a.ex, a.ey, a.area, b.ex, b.ey, b.area,
                                thr) &&
         rotated_exact_iou_exceeds(a, b, thr);
}

}  // namespace vt_ops
