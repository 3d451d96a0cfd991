#include <vector>

#include "box_iou/box_iou.h"
#include "common/parallel.h"

namespace vt_ops {

template <class T>
void box_overlap_cpu(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out,
                     OverlapMode mode) {
  std::vector<T> area2(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) area2[j] = box_area(boxes2 + 4 * j);
  const int64_t rows_per_task = m > 0 ? (16384 + m - 1) / m : n;
  parallel_for(0, n, rows_per_task, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T* a = boxes1 + 4 * i;
      const T area_a = box_area(a);
      T* row = out + i * m;
      for (int64_t j = 0; j < m; ++j) row[j] = box_overlap(a, area_a, boxes2 + 4 * j, area2[j], mode);
    }
  });
}

template void box_overlap_cpu<float>(const float*, int64_t, const float*, int64_t, float*,
                                     OverlapMode);
template void box_overlap_cpu<double>(const double*, int64_t, const double*, int64_t, double*,
                                      OverlapMode);

}  // namespace vt_ops
