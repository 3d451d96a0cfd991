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

// Stable counting sort of `in` (indices) by key[in[i]] in [0, buckets).
void counting_sort(const std::vector<int64_t>& in, const int64_t* key, int64_t buckets,
                   std::vector<int64_t>& out) {
  std::vector<int64_t> start(buckets + 1, 0);
  for (int64_t i : in) ++start[key[i] + 1];
  for (int64_t b = 0; b < buckets; ++b) start[b + 1] += start[b];
  out.resize(in.size());
  for (int64_t i : in) out[start[key[i]]++] = i;
}

}  // namespace

void group_order(const int64_t* img, const int64_t* cat, const double* score, int64_t n,
                 int64_t n_img, int64_t n_cat, bool use_cats, int64_t* order) {
  std::vector<int64_t> a(n), b;
  std::iota(a.begin(), a.end(), int64_t(0));
  counting_sort(a, img, n_img, b);  // by image
  if (use_cats) {
    counting_sort(b, cat, n_cat, a);  // then by category: (category, image) groups
    b.swap(a);
  }
  // groups are runs of equal (category,) image; sort each by score
  auto same_group = [&](int64_t x, int64_t y) {
    return img[x] == img[y] && (!use_cats || cat[x] == cat[y]);
  };
  auto before = [&](int64_t x, int64_t y) {
    if (score[x] != score[y]) return score[x] > score[y];
    return !use_cats && cat[x] < cat[y];
  };
  int64_t begin = 0;
  while (begin < n) {
    int64_t end = begin + 1;
    while (end < n && same_group(b[begin], b[end])) ++end;
    if (end - begin > 1) std::stable_sort(b.begin() + begin, b.begin() + end, before);
    begin = end;
  }
  std::copy(b.begin(), b.end(), order);
}

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
  const int64_t A = in.num_areas, T = in.num_thrs, AT = A * T;
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
        if (ng == 0) {  // nothing to match: false positives unless outside the area range
          npig[a * groups.n + g] = 0;
          for (int64_t d = 0; d < nd; ++d) {
            const double area = in.dt_area[d0 + d];
            const int8_t s = (area < lo || area > hi) ? 2 : 0;
            std::fill_n(dt_state + (d0 + d) * AT + a * T, T, s);
          }
          continue;
        }
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
          for (int64_t d = 0; d < nd; ++d) {
            const int64_t m = dt_match[d];
            // pycocotools stores the matched ground-truth id and tests it against 0
            const bool matched = m > -1 && !in.gt_zero_id[g0 + order[m]];
            bool ignored = m > -1 && gt_ig[m];
            if (!matched) {
              const double area = in.dt_area[d0 + d];
              ignored = ignored || area < lo || area > hi;
            }
            dt_state[(d0 + d) * AT + a * T + t] = ignored ? 2 : (matched ? 1 : 0);
          }
        }
      }
    }
  });
}

// pycocotools computes, over the score-sorted detections, rc = tp / npig and
// pr = tp / (fp + tp + eps), takes the running maximum of pr from the right and reads
// it at searchsorted(rc, recThrs). Both only change at true positives: the running
// maximum at a position is the maximum of pr over the true positives from there on
// (pr cannot grow between them), and rc reaches a threshold first at a true positive
// (or at position 0 for a threshold <= 0). So only the true positives are visited,
// with the same floating-point expressions, giving bit-identical results.
void accumulate(const AccumulateInputs& in, double* precision, double* recall, double* scores) {
  const int64_t K = in.num_cats, A = in.num_areas, T = in.num_thrs, R = in.num_rec,
                M = in.num_max_dets, AT = A * T;
  const double eps = DBL_EPSILON;  // np.spacing(1)
  parallel_for(0, K, 1, [&](int64_t kb, int64_t ke) {
    std::vector<int64_t> sorted, kept;
    std::vector<int8_t> state;  // the category's detection states, in sorted order
    std::vector<std::vector<int64_t>> tp_pos(T);  // position (in kept) of every true positive
    std::vector<std::vector<double>> tp_fp(T);    // false positives before it
    std::vector<double> fp(T), best;
    for (int64_t k = kb; k < ke; ++k) {
      const int64_t begin = in.cat_off[k], end = in.cat_off[k + 1], n = end - begin;
      // mergesort of the concatenated detections by decreasing score (stable)
      sorted.resize(n);
      std::iota(sorted.begin(), sorted.end(), begin);
      std::stable_sort(sorted.begin(), sorted.end(), [&](int64_t x, int64_t y) {
        return in.dt_scores[x] > in.dt_scores[y];
      });
      state.resize(n * AT);
      for (int64_t i = 0; i < n; ++i)
        std::copy_n(in.dt_state + sorted[i] * AT, AT, state.begin() + i * AT);
      for (int64_t mi = 0; mi < M; ++mi) {
        kept.clear();
        for (int64_t i = 0; i < n; ++i)
          if (in.dt_rank[sorted[i]] < in.max_dets[mi]) kept.push_back(i);
        const int64_t nd = static_cast<int64_t>(kept.size());
        for (int64_t a = 0; a < A; ++a) {
          const int64_t np = in.npig[a * K + k];
          if (np == 0) continue;
          const double npd = static_cast<double>(np);
          for (int64_t t = 0; t < T; ++t) {
            tp_pos[t].clear();
            tp_fp[t].clear();
            fp[t] = 0;
          }
          for (int64_t ii = 0; ii < nd; ++ii) {
            const int8_t* s = state.data() + kept[ii] * AT + a * T;
            bool any_tp = false;
            for (int64_t t = 0; t < T; ++t) {  // branch-free: a true positive adds 0
              fp[t] += s[t] == 0;
              any_tp |= s[t] == 1;
            }
            if (!any_tp) continue;
            for (int64_t t = 0; t < T; ++t) {
              if (s[t] == 1) {
                tp_pos[t].push_back(ii);
                tp_fp[t].push_back(fp[t]);
              }
            }
          }
          for (int64_t t = 0; t < T; ++t) {
            const int64_t ntp = static_cast<int64_t>(tp_pos[t].size());
            recall[((k * A + a) * M + mi) * T + t] = nd ? static_cast<double>(ntp) / npd : 0.0;
            // best[v] = max precision over true positives v..ntp (1-based)
            best.assign(ntp + 2, 0.0);
            for (int64_t v = ntp; v >= 1; --v) {
              const double tp = static_cast<double>(v);
              const double pr = tp / (tp_fp[t][v - 1] + tp + eps);
              best[v] = pr > best[v + 1] ? pr : best[v + 1];
            }
            bool in_range = nd > 0;
            int64_t v = 0;
            for (int64_t r = 0; r < R; ++r) {
              const int64_t idx = (((k * A + a) * M + mi) * T + t) * R + r;
              if (in_range) {
                // smallest v with v / npig >= thr, as searchsorted(rc, thr, 'left')
                const double thr = in.rec_thrs[r];
                while (v > 0 && static_cast<double>(v - 1) / npd >= thr) --v;
                while (v <= ntp && static_cast<double>(v) / npd < thr) ++v;
                in_range = v <= ntp;  // pycocotools stops filling at the first miss
              }
              if (!in_range) {
                precision[idx] = 0.0;
                scores[idx] = 0.0;
                continue;
              }
              const int64_t pos = v == 0 ? 0 : tp_pos[t][v - 1];
              precision[idx] = v == 0 ? best[1] : best[v];
              scores[idx] = in.dt_scores[sorted[kept[pos]]];
            }
          }
        }
      }
    }
  });
}

}  // namespace coco
}  // namespace vt_ops
