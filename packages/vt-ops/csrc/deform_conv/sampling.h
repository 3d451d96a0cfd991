// Deformable sampling shared by the CPU and CUDA kernels: bilinear
// interpolation with zero padding outside the image, and its derivatives with
// respect to the sampling point, with torchvision's (and detectron2's)
// conventions.
#pragma once

#include <cstdint>

#include "common/macros.h"

namespace vt_ops {
namespace deform {

// The four taps of the bilinear sample at (y, x): corners (y0, x0), (y0, x0+1),
// (y0+1, x0), (y0+1, x0+1) as indices into an H x W plane, -1 where the corner
// lies outside the image (it reads 0). weight is the bilinear weight of each
// corner; dweight_dy / dweight_dx its derivative with respect to y / x.
template <class T>
struct Taps {
  int64_t index[4];
  T weight[4];
  T dweight_dy[4];
  T dweight_dx[4];
};

// Points with y outside [-1, H) or x outside [-1, W) (and NaN) read 0 and have
// no gradient. At exactly y == -1 the value is 0 (the only in-image row has
// weight 0) but the derivative is not, as in torchvision's
// get_coordinate_weight; the range test also keeps the float -> int
// conversion defined for any offset.
template <class T>
VT_HOST_DEVICE void bilinear_taps(T y, T x, int64_t height, int64_t width, Taps<T>& t) {
  if (!(y >= T(-1) && y < T(height) && x >= T(-1) && x < T(width))) {
    for (int k = 0; k < 4; ++k) {
      t.index[k] = -1;
      t.weight[k] = t.dweight_dy[k] = t.dweight_dx[k] = T(0);
    }
    return;
  }
  int64_t y0 = static_cast<int64_t>(y);  // truncation; floor for y >= -1 below
  int64_t x0 = static_cast<int64_t>(x);
  if (T(y0) > y) --y0;
  if (T(x0) > x) --x0;
  const T ly = y - T(y0), lx = x - T(x0);
  const T hy = T(1) - ly, hx = T(1) - lx;
  const bool y0_in = y0 >= 0, y1_in = y0 + 1 < height;
  const bool x0_in = x0 >= 0, x1_in = x0 + 1 < width;
  const int64_t base = y0 * width + x0;
  t.index[0] = (y0_in && x0_in) ? base : -1;
  t.index[1] = (y0_in && x1_in) ? base + 1 : -1;
  t.index[2] = (y1_in && x0_in) ? base + width : -1;
  t.index[3] = (y1_in && x1_in) ? base + width + 1 : -1;
  t.weight[0] = hy * hx;
  t.weight[1] = hy * lx;
  t.weight[2] = ly * hx;
  t.weight[3] = ly * lx;
  t.dweight_dy[0] = -hx;
  t.dweight_dy[1] = -lx;
  t.dweight_dy[2] = hx;
  t.dweight_dy[3] = lx;
  t.dweight_dx[0] = -hy;
  t.dweight_dx[1] = hy;
  t.dweight_dx[2] = -ly;
  t.dweight_dx[3] = ly;
}

// The value at a tap: 0 outside the image.
template <class T>
VT_HOST_DEVICE T tap_value(const T* plane, int64_t index) {
  return index >= 0 ? plane[index] : T(0);
}

}  // namespace deform
}  // namespace vt_ops
