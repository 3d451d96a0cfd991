#include <cmath>
#include <limits>
#include <vector>

#include "box_iou/box_iou.h"
#include "common/parallel.h"

namespace vt_ops {
namespace {

// boxes2 as contiguous arrays, with 0 or NaN per box: adding it to a result
// propagates NaN coordinates without a branch, so the row loop vectorises.
template <class T>
struct BoxColumns {
  std::vector<T> x1, y1, x2, y2, area, nan;
};

template <class T>
T nan_term(const T* b) {
  return box_has_nan(b) ? std::numeric_limits<T>::quiet_NaN() : T(0);
}

// One output row; the same arithmetic as box_overlap (box_geometry.h).
template <class T, OverlapMode Mode>
void overlap_row(const T* a, const BoxColumns<T>& c, int64_t m, T* __restrict row) {
  const T ax1 = a[0], ay1 = a[1], ax2 = a[2], ay2 = a[3];
  const T area_a = box_area(a), nan_a = nan_term(a);
  const T* __restrict x1 = c.x1.data();
  const T* __restrict y1 = c.y1.data();
  const T* __restrict x2 = c.x2.data();
  const T* __restrict y2 = c.y2.data();
  const T* __restrict area = c.area.data();
  const T* __restrict nan = c.nan.data();
  for (int64_t j = 0; j < m; ++j) {
    const T inter = box_intersection(ax1, ay1, ax2, ay2, x1[j], y1[j], x2[j], y2[j]);
    T denom = area[j];
    if constexpr (Mode == OverlapMode::IoU) denom = area_a + denom - inter;
    // Where inter > 0, denom >= inter > 0; where inter == 0 (disjoint or empty
    // boxes) the floor turns 0/0 into 0. A floor rather than a branch keeps the
    // loop vectorised (GCC turns `x / (c ? d : 1)` back into a branch).
    denom = denom > std::numeric_limits<T>::min() ? denom : std::numeric_limits<T>::min();
    row[j] = inter / denom + (nan_a + nan[j]);
  }
}

}  // namespace

template <class T>
void box_overlap_cpu(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out,
                     OverlapMode mode) {
  BoxColumns<T> c;
  for (auto* v : {&c.x1, &c.y1, &c.x2, &c.y2, &c.area, &c.nan}) v->resize(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) {
    const T* b = boxes2 + 4 * j;
    c.x1[j] = b[0];
    c.y1[j] = b[1];
    c.x2[j] = b[2];
    c.y2[j] = b[3];
    c.area[j] = box_area(b);
    c.nan[j] = nan_term(b);
  }
  const int64_t rows_per_task = m > 0 ? (16384 + m - 1) / m : n;
  parallel_for(0, n, rows_per_task, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (mode == OverlapMode::IoU)
        overlap_row<T, OverlapMode::IoU>(boxes1 + 4 * i, c, m, out + i * m);
      else
        overlap_row<T, OverlapMode::IoA>(boxes1 + 4 * i, c, m, out + i * m);
    }
  });
}

template void box_overlap_cpu<float>(const float*, int64_t, const float*, int64_t, float*,
                                     OverlapMode);
template void box_overlap_cpu<double>(const double*, int64_t, const double*, int64_t, double*,
                                      OverlapMode);

}  // namespace vt_ops
