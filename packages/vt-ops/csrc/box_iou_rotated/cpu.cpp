#include <vector>

#include "box_iou_rotated/box_iou_rotated.h"
#include "common/parallel.h"

namespace vt_ops {

template <class T>
void box_iou_rotated_cpu(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out) {
  std::vector<RotatedBox<T>> prepared2(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) prepared2[j] = make_rotated_box(boxes2 + 5 * j);
  const int64_t rows_per_task = m > 0 ? (4096 + m - 1) / m : n;
  parallel_for(0, n, rows_per_task, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const RotatedBox<T> a = make_rotated_box(boxes1 + 5 * i);
      T* row = out + i * m;
      for (int64_t j = 0; j < m; ++j) row[j] = rotated_box_iou(a, prepared2[j]);
    }
  });
}

template void box_iou_rotated_cpu<float>(const float*, int64_t, const float*, int64_t, float*);
template void box_iou_rotated_cpu<double>(const double*, int64_t, const double*, int64_t,
                                          double*);

}  // namespace vt_ops
