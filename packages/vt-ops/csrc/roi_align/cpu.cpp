// CPU ROIAlign. Per ROI, the sampling points of every bin are reduced once to
// a list of (pixel offset, weight) taps; the channel loop (roi_blocked.h) then
// only gathers (forward) or scatters (backward), several channels at a time so
// that the independent accumulations overlap.
//
// Taps that several sampling points of a bin share are merged, so e.g. 2x2
// points over a 1-pixel bin read at most 9 pixels, not 16. Axis-aligned ROIs
// are separable: a bin's taps are the outer product of its (merged) row taps
// and column taps; rotated bins sort and merge their taps.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "common/bilinear.h"
#include "roi_align/roi_align.h"
#include "roi_align/roi_blocked.h"

namespace vt_ops {
namespace {

constexpr int64_t kTapBudget = int64_t(1) << 20;  // taps planned at once (~12 MB in float)

template <class T>
struct RoiTaps {
  int64_t batch = 0;
  std::vector<int64_t> offset;  // y * width + x
  std::vector<T> weight;        // includes 1 / (points per bin)
  std::vector<int64_t> begin;   // bin b's taps are [begin[b], begin[b + 1])
  // per-axis scratch of the separable (axis-aligned) case
  std::vector<int> y_idx, x_idx, y_begin, x_begin;
  std::vector<T> y_w, x_w;
  std::vector<std::pair<int64_t, T>> bin_scratch;  // rotated case
};

// Sums the taps of the last bin (those from `first` on) that share a pixel.
template <class T>
void merge_bin_taps(RoiTaps<T>& taps, size_t first) {
  const size_t n = taps.offset.size() - first;
  if (n <= 4) return;  // one sampling point: four distinct pixels
  auto& pairs = taps.bin_scratch;
  pairs.clear();
  for (size_t i = first; i < taps.offset.size(); ++i)
    pairs.emplace_back(taps.offset[i], taps.weight[i]);
  std::sort(pairs.begin(), pairs.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t out = first;
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (out > first && taps.offset[out - 1] == pairs[i].first) {
      taps.weight[out - 1] += pairs[i].second;
    } else {
      taps.offset[out] = pairs[i].first;
      taps.weight[out] = pairs[i].second;
      ++out;
    }
  }
  taps.offset.resize(out);
  taps.weight.resize(out);
}

// Row (or column) taps of every bin along one axis, shared taps merged.
template <class T>
void axis_taps(T start, T bin, int pooled, int grid, int size, std::vector<int>& idx,
               std::vector<T>& w, std::vector<int>& begin) {
  idx.clear();
  w.clear();
  begin.assign(static_cast<size_t>(pooled) + 1, 0);
  auto add = [&](int first, int i, T wt) {
    if (wt == T(0)) return;
    for (int j = static_cast<int>(idx.size()) - 1; j >= first; --j) {
      if (idx[j] == i) {
        w[j] += wt;
        return;
      }
    }
    idx.push_back(i);
    w.push_back(wt);
  };
  for (int p = 0; p < pooled; ++p) {
    const int first = static_cast<int>(idx.size());
    begin[p] = first;
    for (int i = 0; i < grid; ++i) {
      int lo, hi;
      T w_lo, w_hi;
      if (!bilinear_axis(roi_sample_coord(start, bin, p, i, grid), size, &lo, &hi, &w_lo, &w_hi))
        continue;
      add(first, lo, w_lo);
      add(first, hi, w_hi);
    }
  }
  begin[pooled] = static_cast<int>(idx.size());
}

template <class T>
void build_taps(const RoiAlignGeometry<T>& g, const RoiAlignShape& s, bool rotated,
                RoiTaps<T>& taps) {
  const int height = static_cast<int>(s.height), width = static_cast<int>(s.width);
  taps.offset.clear();
  taps.weight.clear();
  taps.begin.assign(static_cast<size_t>(s.pooled_h) * s.pooled_w + 1, 0);
  int64_t bin = 0;
  if (!rotated) {
    axis_taps(g.start_h, g.bin_h, s.pooled_h, g.grid_h, height, taps.y_idx, taps.y_w,
              taps.y_begin);
    axis_taps(g.start_w, g.bin_w, s.pooled_w, g.grid_w, width, taps.x_idx, taps.x_w,
              taps.x_begin);
    for (int ph = 0; ph < s.pooled_h; ++ph) {
      for (int pw = 0; pw < s.pooled_w; ++pw) {
        for (int a = taps.y_begin[ph]; a < taps.y_begin[ph + 1]; ++a) {
          const int64_t row = static_cast<int64_t>(taps.y_idx[a]) * width;
          const T wy = taps.y_w[a] * g.inv_count;
          for (int b = taps.x_begin[pw]; b < taps.x_begin[pw + 1]; ++b) {
            taps.offset.push_back(row + taps.x_idx[b]);
            taps.weight.push_back(wy * taps.x_w[b]);
          }
        }
        taps.begin[++bin] = static_cast<int64_t>(taps.offset.size());
      }
    }
    return;
  }
  for (int ph = 0; ph < s.pooled_h; ++ph) {
    for (int pw = 0; pw < s.pooled_w; ++pw) {
      const size_t first = taps.offset.size();
      for (int iy = 0; iy < g.grid_h; ++iy) {
        for (int ix = 0; ix < g.grid_w; ++ix) {
          T y, x;
          roi_sample_point<T, true>(g, ph, pw, iy, ix, &y, &x);
          int64_t off[4];
          T w[4];
          if (!bilinear_taps(y, x, height, width, off, w)) continue;
          for (int t = 0; t < 4; ++t) {
            if (w[t] == T(0)) continue;
            taps.offset.push_back(off[t]);
            taps.weight.push_back(w[t] * g.inv_count);
          }
        }
      }
      merge_bin_taps(taps, first);
      taps.begin[++bin] = static_cast<int64_t>(taps.offset.size());
    }
  }
}

template <class T>
RoiAlignGeometry<T> geometry(const T* roi, const RoiAlignShape& s, const RoiAlignParams& p) {
  const T scale = static_cast<T>(p.spatial_scale);
  return p.rotated ? roi_align_rotated_geometry(roi, scale, s.pooled_h, s.pooled_w, p.sampling_ratio)
                   : roi_align_geometry(roi, scale, s.pooled_h, s.pooled_w, p.sampling_ratio,
                                        p.aligned);
}

// out[j * bins + b] = sum of the taps of bin b over channel plane j, j < B.
template <int B, class T>
void gather_bins(const T* in, int64_t hw, const RoiTaps<T>& taps, int64_t bins, T* out) {
  const int64_t* off = taps.offset.data();
  const T* w = taps.weight.data();
  for (int64_t b = 0; b < bins; ++b) {
    T acc[B] = {};
    for (int64_t t = taps.begin[b]; t < taps.begin[b + 1]; ++t) {
      const T wt = w[t];
      const T* src = in + off[t];
      for (int j = 0; j < B; ++j) acc[j] += wt * src[j * hw];
    }
    for (int j = 0; j < B; ++j) out[j * bins + b] = acc[j];
  }
}

// The transpose of gather_bins: grad planes j < B receive grad[j * bins + b] * weight.
template <int B, class T>
void scatter_bins(const T* grad, int64_t bins, const RoiTaps<T>& taps, int64_t hw, T* gin) {
  const int64_t* off = taps.offset.data();
  const T* w = taps.weight.data();
  for (int64_t b = 0; b < bins; ++b) {
    T g[B];
    for (int j = 0; j < B; ++j) g[j] = grad[j * bins + b];
    for (int64_t t = taps.begin[b]; t < taps.begin[b + 1]; ++t) {
      const T wt = w[t];
      T* dst = gin + off[t];
      for (int j = 0; j < B; ++j) dst[j * hw] += wt * g[j];
    }
  }
}

// An upper bound on the taps of one ROI, at most kTapBudget (sizes its batch of plans).
template <class T>
int64_t taps_bound(const RoiAlignGeometry<T>& g, const RoiAlignShape& s, bool rotated) {
  const double bins = static_cast<double>(s.pooled_h) * s.pooled_w;
  double per_bin = 4.0 * std::max(g.grid_h, 0) * std::max(g.grid_w, 0);
  if (!rotated) {
    const double bh = std::min<double>(std::abs(g.bin_h), static_cast<double>(s.height));
    const double bw = std::min<double>(std::abs(g.bin_w), static_cast<double>(s.width));
    per_bin = std::min(per_bin, (bh + 3) * (bw + 3));
  }
  return static_cast<int64_t>(std::max(1.0, std::min(bins * per_bin, double(kTapBudget))));
}

// Plans every ROI and calls body(taps, k, c0, c1) per ROI and channel block.
template <class T, class Body>
void for_roi_taps(const T* rois, const RoiAlignShape& s, const RoiAlignParams& p, bool split_rois,
                  Body&& body) {
  const int roi_width = p.rotated ? 6 : 5;
  check_roi_batch_indices(rois, s.num_rois, roi_width, s.batch);
  roi_channel_blocked<RoiTaps<T>>(
      s.num_rois, s.channels, kRoiChannelBlock, split_rois, kTapBudget,
      [&](int64_t k) { return taps_bound(geometry(rois + k * roi_width, s, p), s, p.rotated); },
      [&](int64_t k, RoiTaps<T>& taps) {
        const RoiAlignGeometry<T> g = geometry(rois + k * roi_width, s, p);
        taps.batch = g.batch;
        build_taps(g, s, p.rotated, taps);
      },
      [&](int64_t k, const RoiTaps<T>& taps, int64_t c0, int64_t c1) { body(taps, k, c0, c1); });
}

}  // namespace

template <class T>
void roi_align_forward_cpu(const T* input, const T* rois, T* output, const RoiAlignShape& s,
                           const RoiAlignParams& p) {
  const int64_t hw = s.height * s.width, bins = static_cast<int64_t>(s.pooled_h) * s.pooled_w;
  const int64_t C = s.channels;
  for_roi_taps(rois, s, p, /*split_rois=*/true,
               [&](const RoiTaps<T>& taps, int64_t k, int64_t c0, int64_t c1) {
                 const T* in = input + (taps.batch * C + c0) * hw;
                 T* out = output + (k * C + c0) * bins;
                 if (c1 - c0 == kRoiChannelBlock) {
                   gather_bins<kRoiChannelBlock>(in, hw, taps, bins, out);
                 } else {
                   for (int64_t c = 0; c < c1 - c0; ++c)
                     gather_bins<1>(in + c * hw, hw, taps, bins, out + c * bins);
                 }
               });
}

template <class T>
void roi_align_backward_cpu(const T* grad_output, const T* rois, T* grad_input,
                            const RoiAlignShape& s, const RoiAlignParams& p) {
  const int64_t hw = s.height * s.width, bins = static_cast<int64_t>(s.pooled_h) * s.pooled_w;
  const int64_t C = s.channels;
  // Tasks own whole channel blocks and visit the ROIs in order: no two threads
  // write one grad_input element and the sums do not depend on the threads.
  for_roi_taps(rois, s, p, /*split_rois=*/false,
               [&](const RoiTaps<T>& taps, int64_t k, int64_t c0, int64_t c1) {
                 const T* grad = grad_output + (k * C + c0) * bins;
                 T* gin = grad_input + (taps.batch * C + c0) * hw;
                 if (c1 - c0 == kRoiChannelBlock) {
                   scatter_bins<kRoiChannelBlock>(grad, bins, taps, hw, gin);
                 } else {
                   for (int64_t c = 0; c < c1 - c0; ++c)
                     scatter_bins<1>(grad + c * bins, bins, taps, hw, gin + c * hw);
                 }
               });
}

#define VT_INSTANTIATE(T)                                                                   \
  template void roi_align_forward_cpu<T>(const T*, const T*, T*, const RoiAlignShape&,      \
                                         const RoiAlignParams&);                            \
  template void roi_align_backward_cpu<T>(const T*, const T*, T*, const RoiAlignShape&,     \
                                          const RoiAlignParams&);
VT_INSTANTIATE(float)
VT_INSTANTIATE(double)
#undef VT_INSTANTIATE

}  // namespace vt_ops
