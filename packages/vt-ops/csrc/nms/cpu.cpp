// CPU NMS: one stable sort, then greedy suppression over contiguous,
// score-ordered copies of the candidates (structure of arrays, so the inner
// loop vectorises), dropping suppressed boxes from the scan as it goes.
// Batched NMS runs the categories independently on the thread pool.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/box_geometry.h"
#include "common/parallel.h"
#include "common/rotated_geometry.h"
#include "nms/nms.h"

namespace vt_ops {
namespace {

// Flags are T (0 or 1): on baseline x86-64 (SSE2), loops that turn T
// comparisons into integers of another width, or into 64-bit integers, do not
// vectorise.
template <class T>
using FlagOf = T;

// Candidates of one group, in visiting order, as contiguous arrays.
template <class T>
struct AxisAlignedSet {
  using Flag = FlagOf<T>;
  std::vector<T> x1, y1, x2, y2, area;

  void resize(size_t n) {
    for (auto* v : {&x1, &y1, &x2, &y2, &area}) v->resize(n);
  }
  void load(int64_t p, const T* b) {
    x1[p] = b[0];
    y1[p] = b[1];
    x2[p] = b[2];
    y2[p] = b[3];
    area[p] = box_area(b);
  }
  void move(int64_t dst, int64_t src) {
    x1[dst] = x1[src];
    y1[dst] = y1[src];
    x2[dst] = x2[src];
    y2[dst] = y2[src];
    area[dst] = area[src];
  }
  // removed[j] |= IoU(i, j) > thr for j in [begin, end).
  void suppress(int64_t i, int64_t begin, int64_t end, T thr, Flag* __restrict removed) const {
    const T ix1 = x1[i], iy1 = y1[i], ix2 = x2[i], iy2 = y2[i], ia = area[i];
    const T* __restrict px1 = x1.data();
    const T* __restrict py1 = y1.data();
    const T* __restrict px2 = x2.data();
    const T* __restrict py2 = y2.data();
    const T* __restrict pa = area.data();
    for (int64_t j = begin; j < end; ++j) {
      const T ovr = nms_box_iou(ix1, iy1, ix2, iy2, ia, px1[j], py1[j], px2[j], py2[j], pa[j]);
      removed[j] = ovr > thr ? Flag(1) : removed[j];
    }
  }
};

// Rotated candidates: the fields of the cheap rejection test as contiguous
// arrays (the scan over them is the hot loop), and the prepared boxes for the
// exact test of the few pairs that pass it.
template <class T>
struct RotatedSet {
  using Flag = FlagOf<T>;
  std::vector<RotatedBox<T>> box;
  std::vector<T> cx, cy, ex, ey, area;
  std::vector<Flag> candidate;

  void resize(size_t n) {
    box.resize(n);
    for (auto* v : {&cx, &cy, &ex, &ey, &area}) v->resize(n);
  }
  void load(int64_t p, const T* b) {
    box[p] = make_rotated_box(b);
    cx[p] = box[p].cx;
    cy[p] = box[p].cy;
    ex[p] = box[p].ex;
    ey[p] = box[p].ey;
    area[p] = box[p].area;
  }
  void move(int64_t dst, int64_t src) {
    box[dst] = box[src];
    cx[dst] = cx[src];
    cy[dst] = cy[src];
    ex[dst] = ex[src];
    ey[dst] = ey[src];
    area[dst] = area[src];
  }
  // Two passes: the cheap test over contiguous arrays (vectorised, no
  // branches), then the exact test for the few pairs that pass it.
  void suppress(int64_t i, int64_t begin, int64_t end, T thr, Flag* __restrict removed) {
    const RotatedBox<T>& a = box[i];
    if (!(a.area > T(0))) return;
    candidate.resize(box.size());
    Flag* __restrict cand = candidate.data();
    const T* __restrict pcx = cx.data();
    const T* __restrict pcy = cy.data();
    const T* __restrict pex = ex.data();
    const T* __restrict pey = ey.data();
    const T* __restrict parea = area.data();
    const T acx = a.cx, acy = a.cy, aex = a.ex, aey = a.ey, aarea = a.area;
    for (int64_t j = begin; j < end; ++j)
      cand[j] = rotated_iou_may_exceed(acx - pcx[j], acy - pcy[j], aex, aey, aarea, pex[j], pey[j],
                                       parea[j], thr)
                    ? Flag(1)
                    : Flag(0);
    for (int64_t j = begin; j < end; ++j)
      if (cand[j] != Flag(0) && removed[j] == Flag(0) && rotated_exact_iou_exceeds(a, box[j], thr))
        removed[j] = Flag(1);
  }
};

// Greedy NMS over the first n entries of `set`; ids[p] names entry p. Writes
// the ids of kept entries to kept and returns how many (at most max_output).
template <class Set, class T>
int64_t greedy_nms(Set& set, int64_t* ids, int64_t n, T thr, int64_t max_output,
                   std::vector<typename Set::Flag>& removed, int64_t* kept) {
  removed.assign(static_cast<size_t>(n), 0);
  int64_t active = n, k = 0, since_compaction = 0;
  for (int64_t i = 0; i < active && k < max_output; ++i) {
    if (removed[i]) continue;
    kept[k++] = ids[i];
    if (k == max_output) break;
    set.suppress(i, i + 1, active, thr, removed.data());
    if (++since_compaction == 8) {
      // Drop suppressed entries so later scans are shorter.
      since_compaction = 0;
      int64_t w = i + 1;
      for (int64_t j = i + 1; j < active; ++j) {
        if (removed[j]) continue;
        if (w != j) {
          set.move(w, j);
          ids[w] = ids[j];
          removed[w] = 0;
        }
        ++w;
      }
      active = w;
    }
  }
  return k;
}

template <class T>
bool all_finite(const T* x, int64_t n) {
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) ok &= std::isfinite(x[i]);
  return ok;
}

// Sorted candidates grouped by category: members[offsets[g] .. offsets[g+1])
// are the ranks (positions in the sorted order) of group g, increasing.
void group_by_category(const std::vector<int64_t>& cat, std::vector<int64_t>& offsets,
                       std::vector<int64_t>& members) {
  const int64_t n = static_cast<int64_t>(cat.size());
  members.resize(cat.size());
  offsets.clear();
  if (n == 0) {
    offsets.push_back(0);
    return;
  }
  const auto [lo_it, hi_it] = std::minmax_element(cat.begin(), cat.end());
  const int64_t lo = *lo_it, hi = *hi_it;
  // Counting sort when the labels span a small range (the usual case), else a
  // sort by (label, rank). The difference is computed without overflow.
  const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
  if (span < static_cast<uint64_t>(4 * n + 1024)) {
    std::vector<int64_t> count(span + 2, 0);
    for (int64_t r = 0; r < n; ++r) ++count[static_cast<uint64_t>(cat[r]) - lo + 1];
    for (size_t c = 1; c < count.size(); ++c) count[c] += count[c - 1];
    for (size_t c = 0; c + 1 < count.size(); ++c)
      if (count[c + 1] > count[c]) offsets.push_back(count[c]);
    offsets.push_back(n);
    for (int64_t r = 0; r < n; ++r) members[count[static_cast<uint64_t>(cat[r]) - lo]++] = r;
  } else {
    for (int64_t r = 0; r < n; ++r) members[r] = r;
    std::sort(members.begin(), members.end(), [&](int64_t a, int64_t b) {
      return cat[a] < cat[b] || (cat[a] == cat[b] && a < b);
    });
    for (int64_t p = 0; p < n; ++p)
      if (p == 0 || cat[members[p]] != cat[members[p - 1]]) offsets.push_back(p);
    offsets.push_back(n);
  }
}

template <class Set, class T>
int64_t nms_impl(const T* boxes, int box_dim, const T* scores, const int64_t* idxs, int64_t n,
                 const NmsOptions& options, int64_t* keep) {
  if (!all_finite(boxes, n * box_dim)) return kNmsNonFiniteBoxes;
  if (!all_finite(scores, n)) return kNmsNonFiniteScores;
  const int64_t max_output = options.max_output < 0 ? n : options.max_output;
  if (max_output == 0) return 0;

  // Candidates sorted by decreasing score, ties by increasing index.
  std::vector<int64_t> order;
  order.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    if (scores[i] > options.score_threshold) order.push_back(i);
  std::sort(order.begin(), order.end(), [scores](int64_t a, int64_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  const int64_t m = static_cast<int64_t>(order.size());
  const T thr = nms_threshold_as<T>(options.iou_threshold);

  if (idxs == nullptr) {
    Set set;
    set.resize(order.size());
    for (int64_t p = 0; p < m; ++p) set.load(p, boxes + box_dim * order[p]);
    std::vector<typename Set::Flag> removed;
    return greedy_nms(set, order.data(), m, thr, max_output, removed, keep);
  }

  std::vector<int64_t> cat(order.size()), offsets, members;
  for (int64_t r = 0; r < m; ++r) cat[r] = idxs[order[r]];
  group_by_category(cat, offsets, members);
  const int64_t groups = static_cast<int64_t>(offsets.size()) - 1;
  std::vector<uint8_t> kept_rank(order.size(), 0);
  parallel_for(0, groups, 1, [&](int64_t g0, int64_t g1) {
    Set set;
    std::vector<typename Set::Flag> removed;
    std::vector<int64_t> ids, kept;
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t begin = offsets[g], size = offsets[g + 1] - begin;
      set.resize(static_cast<size_t>(size));
      ids.assign(members.begin() + begin, members.begin() + begin + size);
      kept.resize(static_cast<size_t>(size));
      for (int64_t p = 0; p < size; ++p) set.load(p, boxes + box_dim * order[ids[p]]);
      const int64_t k = greedy_nms(set, ids.data(), size, thr, max_output, removed, kept.data());
      for (int64_t q = 0; q < k; ++q) kept_rank[kept[q]] = 1;
    }
  });
  int64_t k = 0;
  for (int64_t r = 0; r < m && k < max_output; ++r)
    if (kept_rank[r]) keep[k++] = order[r];
  return k;
}

}  // namespace

template <class T>
int64_t nms_cpu(const T* boxes, int box_dim, const T* scores, const int64_t* idxs, int64_t n,
                const NmsOptions& options, int64_t* keep) {
  if (box_dim == 5)
    return nms_impl<RotatedSet<T>>(boxes, box_dim, scores, idxs, n, options, keep);
  return nms_impl<AxisAlignedSet<T>>(boxes, box_dim, scores, idxs, n, options, keep);
}

template int64_t nms_cpu<float>(const float*, int, const float*, const int64_t*, int64_t,
                                const NmsOptions&, int64_t*);
template int64_t nms_cpu<double>(const double*, int, const double*, const int64_t*, int64_t,
                                 const NmsOptions&, int64_t*);

}  // namespace vt_ops
