// Bilinear sampling and ROI geometry shared by the CPU and CUDA kernels of
// roi_align, roi_align_rotated and roi_pool, so both backends compute the same
// sample points and weights (torchvision's and detectron2's conventions).
#pragma once

#include <cmath>
#include <cstdint>

#include "common/macros.h"

namespace vt_ops {

template <class T>
VT_HOST_DEVICE T vt_ceil(T v) {
#if defined(__CUDA_ARCH__)
  return ceil(v);
#else
  return std::ceil(v);
#endif
}

template <class T>
VT_HOST_DEVICE T vt_floor(T v) {
#if defined(__CUDA_ARCH__)
  return floor(v);
#else
  return std::floor(v);
#endif
}

template <class T>
VT_HOST_DEVICE T vt_round(T v) {  // half away from zero, as std::round
#if defined(__CUDA_ARCH__)
  return round(v);
#else
  return std::round(v);
#endif
}

template <class T>
VT_HOST_DEVICE void vt_sincos(T angle, T* s, T* c) {
#if defined(__CUDA_ARCH__)
  *s = sin(angle);
  *c = cos(angle);
#else
  *s = std::sin(angle);
  *c = std::cos(angle);
#endif
}

// The two neighbours of continuous coordinate `c` along an axis of `size`
// pixels and their interpolation weights. Samples farther than one pixel
// outside the map contribute nothing (returns false); samples in the border
// band clamp to the edge pixel. Bilinear interpolation in 2D is the product of
// this along y and x, which lets the CPU kernels precompute each axis once.
template <class T>
VT_HOST_DEVICE bool bilinear_axis(T c, int size, int* lo, int* hi, T* w_lo, T* w_hi) {
  if (size <= 0 || c < T(-1) || c > T(size)) return false;
  if (c <= T(0)) c = T(0);
  int l = static_cast<int>(c);
  if (l >= size - 1) {
    l = size - 1;
    *hi = l;
    c = T(l);
  } else {
    *hi = l + 1;
  }
  *lo = l;
  const T frac = c - T(l);
  *w_lo = T(1) - frac;
  *w_hi = frac;
  return true;
}

// The four taps (flat offsets y * width + x and weights) of a bilinear sample
// at (y, x); false when the sample lies outside the map.
template <class T>
VT_HOST_DEVICE bool bilinear_taps(T y, T x, int height, int width, int64_t offset[4], T weight[4]) {
  int y0, y1, x0, x1;
  T wy0, wy1, wx0, wx1;
  if (!bilinear_axis(y, height, &y0, &y1, &wy0, &wy1) ||
      !bilinear_axis(x, width, &x0, &x1, &wx0, &wx1))
    return false;
  offset[0] = static_cast<int64_t>(y0) * width + x0;
  offset[1] = static_cast<int64_t>(y0) * width + x1;
  offset[2] = static_cast<int64_t>(y1) * width + x0;
  offset[3] = static_cast<int64_t>(y1) * width + x1;
  weight[0] = wy0 * wx0;
  weight[1] = wy0 * wx1;
  weight[2] = wy1 * wx0;
  weight[3] = wy1 * wx1;
  return true;
}

// Where the sampling points of one ROI lie. Bin (ph, pw) averages
// grid_h x grid_w points; point (iy, ix) of that bin is at
//   yy = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h   (xx likewise)
// in feature-map coordinates (axis-aligned), or relative to the ROI centre and
// then rotated by the ROI angle (rotated).
template <class T>
struct RoiAlignGeometry {
  int64_t batch;
  T start_h, start_w, bin_h, bin_w;
  int grid_h, grid_w;
  T inv_count;
  T center_h, center_w, cos_t, sin_t;  // rotated ROIs only
};

// float -> int without undefined behaviour for out-of-range values (huge or
// negative ROI sizes saturate instead of wrapping).
template <class T>
VT_HOST_DEVICE int saturate_int(T v) {
  const T limit = T(1 << 28);
  return static_cast<int>(v < -limit ? -limit : (v > limit ? limit : v));
}

template <class T>
VT_HOST_DEVICE int roi_sampling_grid(int sampling_ratio, T roi_size, int pooled) {
  return sampling_ratio > 0 ? sampling_ratio
                            : saturate_int(vt_ceil(roi_size / static_cast<T>(pooled)));
}

// torchvision.ops.roi_align: roi = (batch, x1, y1, x2, y2). aligned=True
// shifts by half a pixel (detectron2's ROIAlignV2); aligned=False forces ROIs
// to be at least 1x1.
template <class T>
VT_HOST_DEVICE RoiAlignGeometry<T> roi_align_geometry(const T* roi, T spatial_scale, int pooled_h,
                                                      int pooled_w, int sampling_ratio,
                                                      bool aligned) {
  RoiAlignGeometry<T> g;
  const T offset = aligned ? T(0.5) : T(0);
  g.batch = static_cast<int64_t>(roi[0]);
  g.start_w = roi[1] * spatial_scale - offset;
  g.start_h = roi[2] * spatial_scale - offset;
  T roi_w = roi[3] * spatial_scale - offset - g.start_w;
  T roi_h = roi[4] * spatial_scale - offset - g.start_h;
  if (!aligned) {
    roi_w = roi_w > T(1) ? roi_w : T(1);
    roi_h = roi_h > T(1) ? roi_h : T(1);
  }
  g.bin_h = roi_h / static_cast<T>(pooled_h);
  g.bin_w = roi_w / static_cast<T>(pooled_w);
  g.grid_h = roi_sampling_grid(sampling_ratio, roi_h, pooled_h);
  g.grid_w = roi_sampling_grid(sampling_ratio, roi_w, pooled_w);
  const int64_t count = static_cast<int64_t>(g.grid_h) * g.grid_w;
  g.inv_count = T(1) / static_cast<T>(count > 1 ? count : 1);
  g.center_h = g.center_w = T(0);
  g.cos_t = T(1);
  g.sin_t = T(0);
  return g;
}

// detectron2's ROIAlignRotated: roi = (batch, cx, cy, w, h, angle in degrees,
// counter-clockwise), continuous coordinates (always the half-pixel shift).
template <class T>
VT_HOST_DEVICE RoiAlignGeometry<T> roi_align_rotated_geometry(const T* roi, T spatial_scale,
                                                              int pooled_h, int pooled_w,
                                                              int sampling_ratio) {
  RoiAlignGeometry<T> g;
  g.batch = static_cast<int64_t>(roi[0]);
  g.center_w = roi[1] * spatial_scale - T(0.5);
  g.center_h = roi[2] * spatial_scale - T(0.5);
  const T roi_w = roi[3] * spatial_scale;
  const T roi_h = roi[4] * spatial_scale;
  const T theta = roi[5] * static_cast<T>(3.14159265358979323846 / 180.0);
  vt_sincos(theta, &g.sin_t, &g.cos_t);
  g.bin_h = roi_h / static_cast<T>(pooled_h);
  g.bin_w = roi_w / static_cast<T>(pooled_w);
  g.grid_h = roi_sampling_grid(sampling_ratio, roi_h, pooled_h);
  g.grid_w = roi_sampling_grid(sampling_ratio, roi_w, pooled_w);
  const int64_t count = static_cast<int64_t>(g.grid_h) * g.grid_w;
  g.inv_count = T(1) / static_cast<T>(count > 1 ? count : 1);
  g.start_h = -roi_h / T(2);
  g.start_w = -roi_w / T(2);
  return g;
}

// Coordinate of sampling point i of bin p along one axis (before rotation).
template <class T>
VT_HOST_DEVICE T roi_sample_coord(T start, T bin, int p, int i, int grid) {
  return start + static_cast<T>(p) * bin +
         (static_cast<T>(i) + T(0.5)) * bin / static_cast<T>(grid);
}

// Feature-map position (y, x) of sampling point (iy, ix) of bin (ph, pw).
template <class T, bool Rotated>
VT_HOST_DEVICE void roi_sample_point(const RoiAlignGeometry<T>& g, int ph, int pw, int iy, int ix,
                                     T* y, T* x) {
  const T yy = roi_sample_coord(g.start_h, g.bin_h, ph, iy, g.grid_h);
  const T xx = roi_sample_coord(g.start_w, g.bin_w, pw, ix, g.grid_w);
  if (Rotated) {
    *y = yy * g.cos_t - xx * g.sin_t + g.center_h;
    *x = yy * g.sin_t + xx * g.cos_t + g.center_w;
  } else {
    *y = yy;
    *x = xx;
  }
}

// torchvision.ops.roi_pool: the pixel window [h0, h1) x [w0, w1) of bin
// (ph, pw) for roi = (batch, x1, y1, x2, y2); coordinates are rounded to
// pixels and malformed ROIs forced to 1x1.
struct RoiPoolWindow {
  int h0, h1, w0, w1;
  VT_HOST_DEVICE bool empty() const { return h1 <= h0 || w1 <= w0; }
};

template <class T>
struct RoiPoolGeometry {
  int64_t batch;
  int start_h, start_w;
  T bin_h, bin_w;
};

template <class T>
VT_HOST_DEVICE RoiPoolGeometry<T> roi_pool_geometry(const T* roi, T spatial_scale, int pooled_h,
                                                    int pooled_w) {
  RoiPoolGeometry<T> g;
  g.batch = static_cast<int64_t>(roi[0]);
  g.start_w = saturate_int(vt_round(roi[1] * spatial_scale));
  g.start_h = saturate_int(vt_round(roi[2] * spatial_scale));
  const int end_w = saturate_int(vt_round(roi[3] * spatial_scale));
  const int end_h = saturate_int(vt_round(roi[4] * spatial_scale));
  const int roi_w = end_w - g.start_w + 1 > 1 ? end_w - g.start_w + 1 : 1;
  const int roi_h = end_h - g.start_h + 1 > 1 ? end_h - g.start_h + 1 : 1;
  g.bin_h = static_cast<T>(roi_h) / static_cast<T>(pooled_h);
  g.bin_w = static_cast<T>(roi_w) / static_cast<T>(pooled_w);
  return g;
}

VT_HOST_DEVICE int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

template <class T>
VT_HOST_DEVICE RoiPoolWindow roi_pool_window(const RoiPoolGeometry<T>& g, int ph, int pw,
                                             int height, int width) {
  RoiPoolWindow r;
  r.h0 = clamp_int(saturate_int(vt_floor(static_cast<T>(ph) * g.bin_h)) + g.start_h, 0, height);
  r.h1 = clamp_int(saturate_int(vt_ceil(static_cast<T>(ph + 1) * g.bin_h)) + g.start_h, 0, height);
  r.w0 = clamp_int(saturate_int(vt_floor(static_cast<T>(pw) * g.bin_w)) + g.start_w, 0, width);
  r.w1 = clamp_int(saturate_int(vt_ceil(static_cast<T>(pw + 1) * g.bin_w)) + g.start_w, 0, width);
  return r;
}

}  // namespace vt_ops
