// The loop structure of the CPU ROI kernels (host only).
//
// Each ROI first gets a plan (its sampling taps or pooling windows), built in
// parallel over ROIs. The channel loop then runs with channel blocks outermost:
// a task walks many ROIs over the same few channel planes, which stay in cache,
// instead of streaming every channel of the feature map through the cache for
// each ROI (the access pattern that makes ROI kernels memory bound).
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/parallel.h"

namespace vt_ops {

// Channels a CPU ROI task handles together: enough independent accumulations
// to hide latency, few enough planes to stay in cache.
constexpr int kRoiChannelBlock = 8;

// Throws unless every ROI's batch index (its first of `roi_width` values) is in [0, batch).
template <class T>
void check_roi_batch_indices(const T* rois, int64_t num_rois, int roi_width, int64_t batch) {
  for (int64_t k = 0; k < num_rois; ++k) {
    const T b = rois[k * roi_width];
    if (!(b >= T(0) && b < static_cast<T>(batch)))
      throw std::invalid_argument("rois: batch index out of range at row " + std::to_string(k));
  }
}

// Plans are built for batches of ROIs whose summed cost(k) stays below
// `budget` (bounding the memory of the plans), then
// body(k, plan_k, c0, c1) runs for every ROI k and channel block [c0, c1).
// With split_rois = false every task owns whole channel blocks and visits the
// ROIs in order, so accumulating bodies (backward passes) are race free and
// their sums do not depend on the number of threads.
template <class Plan, class Cost, class Build, class Body>
void roi_channel_blocked(int64_t num_rois, int64_t channels, int64_t block, bool split_rois,
                         int64_t budget, Cost&& cost, Build&& build, Body&& body) {
  std::vector<Plan> plans;
  const int64_t blocks = (channels + block - 1) / block;
  if (blocks == 0) return;
  const int64_t threads = get_num_threads();
  for (int64_t k0 = 0; k0 < num_rois;) {
    int64_t k1 = k0 + 1, used = cost(k0);
    while (k1 < num_rois) {
      const int64_t c = cost(k1);
      if (used + c > budget) break;
      used += c;
      ++k1;
    }
    const int64_t n = k1 - k0;
    if (static_cast<int64_t>(plans.size()) < n) plans.resize(static_cast<size_t>(n));
    parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) build(k0 + i, plans[i]);
    });
    const int64_t chunks =
        split_rois ? std::min(n, std::max<int64_t>(1, (4 * threads + blocks - 1) / blocks)) : 1;
    parallel_for(0, blocks * chunks, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t c0 = (t / chunks) * block;
        const int64_t c1 = std::min(channels, c0 + block);
        const int64_t chunk = t % chunks;
        for (int64_t i = n * chunk / chunks; i < n * (chunk + 1) / chunks; ++i)
          body(k0 + i, plans[i], c0, c1);
      }
    });
    k0 = k1;
  }
}

}  // namespace vt_ops
