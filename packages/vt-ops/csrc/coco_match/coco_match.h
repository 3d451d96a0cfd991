// COCO evaluation kernels (pycocotools' COCOeval.evaluateImg and accumulate), over
// groups: a group is one (image, category) pair, or one image when categories are
// ignored. Detections and ground truths are laid out group by group (offsets
// dt_off / gt_off, length num_groups + 1), detections of a group sorted by
// decreasing score. The overlaps of group g form a row-major D_g x G_g block of
// `ious` starting at iou_off[g].
#pragma once

#include <cstdint>

#include "coco_mask/coco_mask.h"

namespace vt_ops {
namespace coco {

struct Groups {
  const int64_t* dt_off;
  const int64_t* gt_off;
  const int64_t* iou_off;
  int64_t n;
};

// The order pycocotools visits detections in: by group (category-major (category,
// image) groups, or images when use_cats is false), then by decreasing score, then (without
// categories) by category, then by input position. Stable counting sorts by image and
// category, then a stable sort by score inside each group. img / cat are positions in
// [0, n_img) / [0, n_cat).
void group_order(const int64_t* img, const int64_t* cat, const double* score, int64_t n,
                 int64_t n_img, int64_t n_cat, bool use_cats, int64_t* order);

// Box overlaps ((x, y, w, h), pycocotools' bbIou with the crowd rule) of every group.
void grouped_box_iou(const double* dt, const double* gt, const uint8_t* crowd,
                     const Groups& groups, double* out);
// Mask overlaps (pycocotools' rleIou) of every group; dt_box / gt_box from rle_to_bbox.
void grouped_rle_iou(const PackedRles& dt, const double* dt_box, const PackedRles& gt,
                     const double* gt_box, const uint8_t* crowd, const Groups& groups,
                     double* out);
// Object keypoint similarity (pycocotools' computeOks) of every group. dt: D x 3K,
// gt: G x 3K (x, y, visibility), gt_box: G x 4, gt_area: G, sigmas: K.
void grouped_oks(const double* dt, const double* gt, const double* gt_box,
                 const double* gt_area, const double* sigmas, int64_t k, const Groups& groups,
                 double* out);

struct MatchInputs {
  const double* ious;
  const uint8_t* gt_ignore;    // iscrowd (or no keypoints): ignored in every area range
  const uint8_t* gt_crowd;     // may be matched by several detections
  const double* gt_area;
  const uint8_t* gt_zero_id;   // pycocotools records a match to ground truth id 0 as "no match"
  const double* dt_area;
  const double* area_rng;      // A x 2
  int64_t num_areas;
  const double* iou_thrs;      // T, already capped at 1 - 1e-10
  int64_t num_thrs;
  int64_t num_dt;
};

// Greedy matching (evaluateImg) of every group and area range. Writes
// dt_state[(d * A + a) * T + t]: 0 false positive, 1 true positive, 2 ignored,
// and npig[a * num_groups + g]: the number of non-ignored ground truths.
void match(const MatchInputs& in, const Groups& groups, int8_t* dt_state, int64_t* npig);

struct AccumulateInputs {
  const double* dt_scores;
  const int64_t* dt_rank;      // rank of the detection within its group
  const int8_t* dt_state;      // num_dt x A x T
  int64_t num_dt;
  const int64_t* cat_off;      // K + 1: detections of category k, in image order
  int64_t num_cats;
  const int64_t* npig;         // A x K
  int64_t num_areas;
  int64_t num_thrs;
  const double* rec_thrs;
  int64_t num_rec;
  const int64_t* max_dets;
  int64_t num_max_dets;
};

// pycocotools' accumulate: precision / scores (K x A x M x T x R) and recall (K x A x M x T),
// each category's block contiguous (pycocotools' T x R x K x A x M is a transposed view);
// entries of categories without non-ignored ground truth are left untouched (-1).
void accumulate(const AccumulateInputs& in, double* precision, double* recall, double* scores);

}  // namespace coco
}  // namespace vt_ops
