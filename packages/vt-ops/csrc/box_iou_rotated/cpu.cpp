#include <cmath>
#include <vector>

#include "box_iou_rotated/box_iou_rotated.h"
#include "common/parallel.h"

namespace vt_ops {

// Each row in two passes: the bounding-box test over contiguous arrays
// (vectorised) writes 0 for the pairs it rejects, then the exact IoU fills in
// the others.
template <class T>
void box_iou_rotated_cpu(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out) {
  std::vector<RotatedBox<T>> prepared(static_cast<size_t>(m));
  std::vector<T> cx(m), cy(m), ex(m), ey(m);
  std::vector<int64_t> nan_columns;  // the bounding-box test would reject them as disjoint
  for (int64_t j = 0; j < m; ++j) {
    const RotatedBox<T>& b = prepared[j] = make_rotated_box(boxes2 + 5 * j);
    if (b.nan) nan_columns.push_back(j);
    cx[j] = b.cx;
    cy[j] = b.cy;
    ex[j] = b.ex;
    ey[j] = b.ey;
  }
  const int64_t rows_per_task = m > 0 ? (4096 + m - 1) / m : n;
  parallel_for(0, n, rows_per_task, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const RotatedBox<T> a = make_rotated_box(boxes1 + 5 * i);
      const T acx = a.cx, acy = a.cy, aex = a.ex, aey = a.ey;
      const T* __restrict pcx = cx.data();
      const T* __restrict pcy = cy.data();
      const T* __restrict pex = ex.data();
      const T* __restrict pey = ey.data();
      T* __restrict row = out + i * m;
      if (a.nan) {
        for (int64_t j = 0; j < m; ++j) row[j] = T(NAN);
        continue;
      }
      for (int64_t j = 0; j < m; ++j)
        row[j] = rotated_bounds_disjoint(acx - pcx[j], acy - pcy[j], aex + pex[j], aey + pey[j])
                     ? T(0)
                     : T(1);
      for (int64_t j = 0; j < m; ++j)
        if (row[j] != T(0)) row[j] = rotated_box_iou(a, prepared[j]);
      for (const int64_t j : nan_columns) row[j] = T(NAN);
    }
  });
}

template void box_iou_rotated_cpu<float>(const float*, int64_t, const float*, int64_t, float*);
template void box_iou_rotated_cpu<double>(const double*, int64_t, const double*, int64_t,
                                          double*);

}  // namespace vt_ops
