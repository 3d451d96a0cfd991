// Non-maximum suppression of axis-aligned (x1, y1, x2, y2) or rotated
// (cx, cy, w, h, angle) boxes, optionally per category.
//
// Contract shared by the CPU and CUDA kernels: candidates are the boxes with
// score > score_threshold, visited by decreasing score with ties broken by
// increasing index (a stable sort). A box is kept unless a kept box of the same
// category has IoU > iou_threshold with it. Kept indices are written in visiting
// order, at most max_output of them (max_output < 0: no limit).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace vt_ops {

struct NmsOptions {
  double iou_threshold = 0.5;
  double score_threshold = -INFINITY;
  int64_t max_output = -1;
};

// The largest T not above t: for every T value v, v > t (compared in double, as
// torchvision does) exactly when v > nms_threshold_as<T>(t).
template <class T>
inline T nms_threshold_as(double t) {
  T r = static_cast<T>(t);
  if (static_cast<double>(r) > t) r = std::nextafter(r, -std::numeric_limits<T>::infinity());
  return r;
}

// Values of *count other than a number of kept boxes.
constexpr int64_t kNmsNonFiniteBoxes = -1;
constexpr int64_t kNmsNonFiniteScores = -2;

// boxes: n x box_dim (4 or 5); idxs: n categories or nullptr; keep: room for n.
template <class T>
int64_t nms_cpu(const T* boxes, int box_dim, const T* scores, const int64_t* idxs, int64_t n,
                const NmsOptions& options, int64_t* keep);

#ifdef VT_OPS_WITH_CUDA
// order: the n indices sorted by decreasing score (stable), computed by the
// caller's library. Workspaces: mask holds n * ceil(n / 64) words, removed
// ceil(n / 64). keep (n) and count (1) are device memory; the count (or a
// negative status) is written asynchronously on `stream`.
template <class T>
void nms_cuda(const T* boxes, int box_dim, const T* scores, const int64_t* idxs,
              const int64_t* order, int64_t n, const NmsOptions& options, uint64_t* mask,
              uint64_t* removed, int64_t* keep, int64_t* count, std::uintptr_t stream);
#endif

}  // namespace vt_ops
