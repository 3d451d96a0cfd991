#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>
#include <vector>

#include "coco_match/coco_match.h"
#include "common/parallel.h"

namespace vt_ops {
namespace coco {
namespace {

// Groups per task: enough work to amortise scheduling on small groups.
constexpr int64_t kGroupGrain = 64;

template <class PairFn>
void for_each_group_pair(const Groups& groups, double* out, PairFn&& pair) {
  parallel_for(0, groups.n, kGroupGrain, [&](int64_t b, int64_t e) {
    for (int64_t g = b; g < e; ++g) {
      const int64_t d0 = groups.dt_off[g], nd = groups.dt_off[g + 1] - d0;
      const int64_t g0 = groups.gt_off[g], ng = groups.gt_off[g + 1] - g0;
      double* o = out + groups.iou_off[g];
      for (int64_t d = 0; d < nd; ++d)
        for (int64_t j = 0; j < ng; ++j) o[d * ng + j] = pair(d0 + d, g0 + j);
    }
  });
}

// numpy's add.reduce of a contiguous float64 vector: the first element plus the
// pairwise sum of the rest (8 accumulators below 128 elements), so OKS sums match.
double numpy_sum(const double* a, int64_t n) {
  if (n == 0) return 0.0;
  const double first = a[0];
  ++a;
  --n;
  double res;
  if (n < 8) {
    res = 0.;
    for (int64_t i = 0; i < n; ++i) res += a[i];
  } else {
    // COCO keypoint vectors are far below numpy's 128-element block size.
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    int64_t i;
    for (i = 8; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
  }
  return first + res;
}

}  // namespace

void grouped_box_iou(const double* dt, const double* gt, const uint8_t* crowd,
                     const Groups& groups, double* out) {
  for_each_group_pair(groups, out, [&](int64_t d, int64_t j) {
    return coco_box_iou_pair(dt + 4 * d, gt + 4 * j, crowd[j] != 0);
  });
}

void grouped_rle_iou(const PackedRles& dt, const double* dt_box, const PackedRles& gt,
                     const double* gt_box, const uint8_t* crowd, const Groups& groups,
                     double* out) {
  for_each_group_pair(groups, out, [&](int64_t d, int64_t j) {
    return rle_iou_pair(dt[d], gt[j], dt_box + 4 * d, gt_box + 4 * j, crowd[j] != 0);
  });
}

void grouped_oks(const double* dt, const double* gt, const double* gt_box,
                 const double* gt_area, const double* sigmas, int64_t k, const Groups& groups,
                 double* out) {
  std::vector<double> vars(k);
  for (int64_t i = 0; i < k; ++i) vars[i] = (sigmas[i] * 2) * (sigmas[i] * 2);
  const double eps = DBL_EPSILON;  // np.spacing(1)
  parallel_for(0, groups.n, kGroupGrain, [&](int64_t b, int64_t e) {
    std::vector<double> terms(k);
    for (int64_t g = b; g < e; ++g) {
      const int64_t d0 = groups.dt_off[g], nd = groups.dt_off[g + 1] - d0;
      const int64_t g0 = groups.gt_off[g], ng = groups.gt_off[g + 1] - g0;
      double* o = out + groups.iou_off[g];
      if (nd == 0 || ng == 0) continue;
      for (int64_t j = 0; j < ng; ++j) {
        const double* gk = gt + (g0 + j) * 3 * k;
        int64_t k1 = 0;
        for (int64_t i = 0; i < k; ++i) k1 += gk[3 * i + 2] > 0;
        const double* bb = gt_box + 4 * (g0 + j);
        const double x0 = bb[0] - bb[2], x1 = bb[0] + bb[2] * 2;
        const double y0 = bb[1] - bb[3], y1 = bb[1] + bb[3] * 2;
        const double area = gt_area[g0 + j] + eps;
        for (int64_t d = 0; d < nd; ++d) {
          const double* dk = dt + (d0 + d) * 3 * k;
          int64_t n = 0;
          for (int64_t i = 0; i < k; ++i) {
            double dx, dy;
            if (k1 > 0) {
              if (!(gk[3 * i + 2] > 0)) continue;
              dx = dk[3 * i] - gk[3 * i];
              dy = dk[3 * i + 1] - gk[3 * i + 1];
            } else {
              dx = std::max(0.0, x0 - dk[3 * i]) + std::max(0.0, dk[3 * i] - x1);
              dy = std::max(0.0, y0 - dk[3 * i + 1]) + std::max(0.0, dk[3 * i + 1] - y1);
            }
            const double err = (dx * dx + dy * dy) / vars[i] / area / 2;
            terms[n++] = std::exp(-err);
          }
          o[d * ng + j] = numpy_sum(terms.data(), n) / static_cast<double>(n);
        }
      }
    }
  });
}

void match(const MatchInputs& in, const Groups& groups, int8_t* dt_state, int64_t* npig) {
  const int64_t A = in.num_areas, T = in.num_thrs, D = in.num_dt;
  parallel_for(0, groups.n, kGroupGrain, [&](int64_t b, int64_t e) {
    std::vector<int64_t> order;
    std::vector<uint8_t> gt_ig, gt_matched;
    std::vector<int64_t> dt_match;  // matched position in `order`, -1 if none
    for (int64_t g = b; g < e; ++g) {
      const int64_t d0 = groups.dt_off[g], nd = groups.dt_off[g + 1] - d0;
      const int64_t g0 = groups.gt_off[g], ng = groups.gt_off[g + 1] - g0;
      const double* ious = in.ious + groups.iou_off[g];
      order.resize(ng);
      gt_ig.resize(ng);
      gt_matched.resize(ng);
      dt_match.resize(nd);
      for (int64_t a = 0; a < A; ++a) {
        const double lo = in.area_rng[2 * a], hi = in.area_rng[2 * a + 1];
        // ground truths ignored in this area range go last (stable)
        int64_t kept = 0;
        for (int64_t j = 0; j < ng; ++j) {
          const double area = in.gt_area[g0 + j];
          if (!(in.gt_ignore[g0 + j] || area < lo || area > hi)) order[kept++] = j;
        }
        npig[a * groups.n + g] = kept;
        int64_t pos = kept;
        for (int64_t j = 0; j < ng; ++j) {
          const double area = in.gt_area[g0 + j];
          if (in.gt_ignore[g0 + j] || area < lo || area > hi) order[pos++] = j;
        }
        for (int64_t p = 0; p < ng; ++p) gt_ig[p] = p >= kept;
        for (int64_t t = 0; t < T; ++t) {
          std::fill(gt_matched.begin(), gt_matched.end(), uint8_t(0));
          const double thr = in.iou_thrs[t];
          for (int64_t d = 0; d < nd; ++d) {
            double iou = thr;
            int64_t m = -1;
            const double* row = ious + d * ng;
            for (int64_t p = 0; p < ng; ++p) {
              const int64_t j = order[p];
              if (gt_matched[p] && !in.gt_crowd[g0 + j]) continue;
              if (m > -1 && !gt_ig[m] && gt_ig[p]) break;
              if (row[j] < iou) continue;
              iou = row[j];
              m = p;
            }
            dt_match[d] = m;
            if (m > -1) gt_matched[m] = 1;
          }
          int8_t* state = dt_state + (a * T + t) * D + d0;
          for (int64_t d = 0; d < nd; ++d) {
            const int64_t m = dt_match[d];
            // pycocotools stores the matched ground-truth id and tests it against 0
            const bool matched = m > -1 && !in.gt_zero_id[g0 + order[m]];
            bool ignored = m > -1 && gt_ig[m];
            if (!matched) {
              const double area = in.dt_area[d0 + d];
              ignored = ignored || area < lo || area > hi;
            }
            state[d] = ignored ? 2 : (matched ? 1 : 0);
          }
        }
      }
    }
  });
}

void accumulate(const AccumulateInputs& in, double* precision, double* recall, double* scores) {
  const int64_t K = in.num_cats, A = in.num_areas, T = in.num_thrs, R = in.num_rec,
                M = in.num_max_dets, D = in.num_dt;
  const double eps = DBL_EPSILON;  // np.spacing(1)
  parallel_for(0, K, 1, [&](int64_t kb, int64_t ke) {
    std::vector<int64_t> sorted, kept;
    std::vector<double> rc, pr;
    for (int64_t k = kb; k < ke; ++k) {
      const int64_t begin = in.cat_off[k], end = in.cat_off[k + 1];
      // mergesort of the concatenated detections by decreasing score (stable)
      sorted.resize(end - begin);
      std::iota(sorted.begin(), sorted.end(), begin);
      std::stable_sort(sorted.begin(), sorted.end(), [&](int64_t x, int64_t y) {
        return in.dt_scores[x] > in.dt_scores[y];
      });
      for (int64_t a = 0; a < A; ++a) {
        const int64_t np = in.npig[a * K + k];
        if (np == 0) continue;
        for (int64_t mi = 0; mi < M; ++mi) {
          kept.clear();
          for (int64_t i : sorted)
            if (in.dt_rank[i] < in.max_dets[mi]) kept.push_back(i);
          const int64_t nd = static_cast<int64_t>(kept.size());
          rc.resize(nd);
          pr.resize(nd);
          for (int64_t t = 0; t < T; ++t) {
            const int8_t* state = in.dt_state + (a * T + t) * D;
            double tp = 0, fp = 0;
            for (int64_t i = 0; i < nd; ++i) {
              const int8_t s = state[kept[i]];
              tp += s == 1;
              fp += s == 0;
              rc[i] = tp / static_cast<double>(np);
              pr[i] = tp / (fp + tp + eps);
            }
            recall[((t * K + k) * A + a) * M + mi] = nd ? rc[nd - 1] : 0.0;
            for (int64_t i = nd - 1; i > 0; --i)
              if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
            bool in_range = true;
            for (int64_t r = 0; r < R; ++r) {
              const int64_t idx = ((((t * R + r) * K + k) * A + a) * M + mi);
              int64_t pi = nd;
              if (in_range) {
                pi = std::lower_bound(rc.begin(), rc.end(), in.rec_thrs[r]) - rc.begin();
                in_range = pi < nd;  // pycocotools stops filling at the first miss
              }
              precision[idx] = in_range ? pr[pi] : 0.0;
              scores[idx] = in_range ? in.dt_scores[kept[pi]] : 0.0;
            }
          }
        }
      }
    }
  });
}

}  // namespace coco
}  // namespace vt_ops
