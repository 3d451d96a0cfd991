#include <cfloat>
#include <vector>

#include "common/bilinear.h"
#include "roi_align/roi_blocked.h"
#include "roi_pool/roi_pool.h"

namespace vt_ops {
namespace {

constexpr int64_t kPlanBudget = int64_t(1) << 18;  // bins planned at once

// Max and first argmax (row-major) of B channel planes over every bin window.
template <int B, class T>
void max_bins(const T* in, int64_t hw, int width, const std::vector<RoiPoolWindow>& windows,
              T* out, int32_t* arg, int64_t bins) {
  for (int64_t b = 0; b < bins; ++b) {
    const RoiPoolWindow& r = windows[b];
    const bool empty = r.empty();
    T best[B];
    int32_t where[B];
    for (int j = 0; j < B; ++j) {
      best[j] = empty ? T(0) : T(-FLT_MAX);
      where[j] = -1;
    }
    for (int h = r.h0; h < r.h1; ++h) {
      for (int w = r.w0; w < r.w1; ++w) {
        const int32_t idx = h * width + w;
        for (int j = 0; j < B; ++j) {  // branch free: maxima move unpredictably
          const T v = in[j * hw + idx];
          const bool greater = v > best[j];
          best[j] = greater ? v : best[j];
          where[j] = greater ? idx : where[j];
        }
      }
    }
    for (int j = 0; j < B; ++j) {
      out[j * bins + b] = best[j];
      arg[j * bins + b] = where[j];
    }
  }
}

struct PoolPlan {
  int64_t batch = 0;
  std::vector<RoiPoolWindow> windows;
};

}  // namespace

template <class T>
void roi_pool_forward_cpu(const T* input, const T* rois, T* output, int32_t* argmax,
                          const RoiAlignShape& s, double spatial_scale) {
  check_roi_batch_indices(rois, s.num_rois, 5, s.batch);
  const int64_t hw = s.height * s.width, bins = static_cast<int64_t>(s.pooled_h) * s.pooled_w;
  const int64_t C = s.channels;
  const int height = static_cast<int>(s.height), width = static_cast<int>(s.width);
  roi_channel_blocked<PoolPlan>(
      s.num_rois, C, kRoiChannelBlock, /*split_rois=*/true, kPlanBudget,
      [&](int64_t) { return bins; },
      [&](int64_t k, PoolPlan& plan) {
        const RoiPoolGeometry<T> g =
            roi_pool_geometry(rois + k * 5, static_cast<T>(spatial_scale), s.pooled_h, s.pooled_w);
        plan.batch = g.batch;
        plan.windows.resize(static_cast<size_t>(bins));
        for (int ph = 0; ph < s.pooled_h; ++ph)
          for (int pw = 0; pw < s.pooled_w; ++pw)
            plan.windows[ph * s.pooled_w + pw] = roi_pool_window(g, ph, pw, height, width);
      },
      [&](int64_t k, const PoolPlan& plan, int64_t c0, int64_t c1) {
        const T* in = input + (plan.batch * C + c0) * hw;
        T* out = output + (k * C + c0) * bins;
        int32_t* arg = argmax + (k * C + c0) * bins;
        if (c1 - c0 == kRoiChannelBlock) {
          max_bins<kRoiChannelBlock>(in, hw, width, plan.windows, out, arg, bins);
        } else {
          for (int64_t c = 0; c < c1 - c0; ++c)
            max_bins<1>(in + c * hw, hw, width, plan.windows, out + c * bins, arg + c * bins,
                        bins);
        }
      });
}

template <class T>
void roi_pool_backward_cpu(const T* grad_output, const T* rois, const int32_t* argmax,
                           T* grad_input, const RoiAlignShape& s) {
  check_roi_batch_indices(rois, s.num_rois, 5, s.batch);
  const int64_t hw = s.height * s.width, bins = static_cast<int64_t>(s.pooled_h) * s.pooled_w;
  const int64_t C = s.channels;
  // Tasks own whole channel blocks and visit the ROIs in order (deterministic).
  roi_channel_blocked<int64_t>(
      s.num_rois, C, kRoiChannelBlock, /*split_rois=*/false, kPlanBudget,
      [&](int64_t) { return bins; },
      [&](int64_t k, int64_t& batch) { batch = static_cast<int64_t>(rois[k * 5]); },
      [&](int64_t k, int64_t batch, int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) {
          const T* g = grad_output + (k * C + c) * bins;
          const int32_t* a = argmax + (k * C + c) * bins;
          T* gin = grad_input + (batch * C + c) * hw;
          for (int64_t b = 0; b < bins; ++b) {
            if (a[b] >= 0 && a[b] < hw) gin[a[b]] += g[b];
          }
        }
      });
}

#define VT_INSTANTIATE(T)                                                                   \
  template void roi_pool_forward_cpu<T>(const T*, const T*, T*, int32_t*, const RoiAlignShape&, \
                                        double);                                            \
  template void roi_pool_backward_cpu<T>(const T*, const T*, const int32_t*, T*,            \
                                         const RoiAlignShape&);
VT_INSTANTIATE(float)
VT_INSTANTIATE(double)
#undef VT_INSTANTIATE

}  // namespace vt_ops
