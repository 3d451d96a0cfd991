// COCO run-length encoded (RLE) masks, bit-compatible with pycocotools' maskApi.
//
// An RLE mask of height h and width w is a list of counts: alternating runs of
// 0s and 1s (starting with 0s) over the pixels in column-major order. The
// compressed form is pycocotools' LEB128-like string (6 bits per character).
// Every function here reproduces maskApi.c exactly, including its integer
// types, so that areas, boxes and IoUs match pycocotools bit for bit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vt_ops {
namespace coco {

// A read-only RLE: `m` counts of an h x w mask.
struct RleView {
  const uint32_t* cnts = nullptr;
  int64_t m = 0;
  int64_t h = 0;
  int64_t w = 0;
};

// Packed RLEs: counts of RLE i are counts[offsets[i] : offsets[i + 1]], its size sizes[2i:2i+2].
struct PackedRles {
  const uint32_t* counts = nullptr;
  const int64_t* offsets = nullptr;
  const int64_t* sizes = nullptr;
  int64_t n = 0;
  RleView operator[](int64_t i) const {
    return RleView{counts + offsets[i], offsets[i + 1] - offsets[i], sizes[2 * i], sizes[2 * i + 1]};
  }
};

// Number of counts in the compressed string s (characters that end a value).
size_t rle_string_length(const char* s, size_t len);
// Decodes the compressed string s (length len) into out, which holds
// rle_string_length(s, len) counts; throws std::invalid_argument on a malformed string.
void rle_from_string(const char* s, size_t len, uint32_t* out);
// Appends the compressed string of the counts to out.
void rle_to_string(const uint32_t* cnts, int64_t m, std::string& out);
// Rasterises the polygon with k points xy[2k] into an h x w mask (rleFrPoly).
void rle_from_polygon(const double* xy, int64_t k, int64_t h, int64_t w,
                      std::vector<uint32_t>& out);
// The mask of box (x, y, w, h) (rleFrBbox: the box as a 4-point polygon).
void rle_from_bbox(const double* bb, int64_t h, int64_t w, std::vector<uint32_t>& out);
// Union (or intersection) of n RLEs; masks of different sizes give an empty 0 x 0 RLE.
void rle_merge(const RleView* rles, int64_t n, bool intersect, std::vector<uint32_t>& out,
               int64_t& h, int64_t& w);
// Counts of a column-major h x w uint8 mask (any nonzero byte is foreground only where it
// differs from the previous one, exactly as rleEncode).
void rle_encode(const uint8_t* mask, int64_t h, int64_t w, std::vector<uint32_t>& out);
// Writes the h*w column-major pixels; false when the counts overrun the mask.
bool rle_decode(const RleView& r, uint8_t* mask);
uint32_t rle_area(const RleView& r);
// (x, y, w, h) of the tight box around the mask (rleToBbox).
void rle_to_bbox(const RleView& r, double* bb);

// pycocotools' bbIou for one pair of (x, y, w, h) boxes: intersection over union, or over
// the detection's area when the ground truth is a crowd region.
inline double coco_box_iou_pair(const double* d, const double* g, bool crowd) {
  const double ga = g[2] * g[3], da = d[2] * d[3];
  const double w = (d[2] + d[0] < g[2] + g[0] ? d[2] + d[0] : g[2] + g[0]) -
                   (d[0] > g[0] ? d[0] : g[0]);
  if (w <= 0) return 0;
  const double h = (d[3] + d[1] < g[3] + g[1] ? d[3] + d[1] : g[3] + g[1]) -
                   (d[1] > g[1] ? d[1] : g[1]);
  if (h <= 0) return 0;
  const double i = w * h;
  const double u = crowd ? da : da + ga - i;
  return i / u;
}

// pycocotools' rleIou for one pair, given both masks' boxes (from rle_to_bbox): 0 when
// the boxes do not overlap, -1 when the mask sizes differ.
double rle_iou_pair(const RleView& dt, const RleView& gt, const double* dt_box,
                    const double* gt_box, bool crowd);

}  // namespace coco
}  // namespace vt_ops
