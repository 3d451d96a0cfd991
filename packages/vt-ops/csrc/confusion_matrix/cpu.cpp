#include <algorithm>
#include <vector>

#include "common/parallel.h"
#include "confusion_matrix/confusion_matrix.h"

namespace vt_ops {
namespace {

// Below this many pixels per thread the pool's overhead outweighs the work.
constexpr int64_t kMinPixelsPerBlock = 1 << 15;
// Label maps have long runs of one bin; incrementing the same counter back to
// back serialises on store-to-load forwarding. Four interleaved copies of the
// histogram break that chain, as long as they stay small enough for the cache.
constexpr int64_t kMaxInterleavedBins = 8192;

template <class TP, class TL>
void accumulate(const TP* pred, const TL* label, int64_t begin, int64_t end, int64_t num_classes,
                int64_t ignore_index, int64_t bins, bool interleave, int64_t* hist) {
  auto bin = [&](int64_t i) {
    return confusion_bin(static_cast<int64_t>(label[i]), static_cast<int64_t>(pred[i]),
                         num_classes, ignore_index);
  };
  int64_t i = begin;
  if (interleave) {
    int64_t* h1 = hist + bins;
    int64_t* h2 = hist + 2 * bins;
    int64_t* h3 = hist + 3 * bins;
    for (; i + 4 <= end; i += 4) {
      ++hist[bin(i)];
      ++h1[bin(i + 1)];
      ++h2[bin(i + 2)];
      ++h3[bin(i + 3)];
    }
  }
  for (; i < end; ++i) ++hist[bin(i)];
}

}  // namespace

template <class TP, class TL>
void confusion_matrix_cpu(const TP* pred, const TL* label, int64_t n, int64_t num_classes,
                          int64_t ignore_index, int64_t* counts) {
  const int64_t num_counts = confusion_num_counts(num_classes);
  const int64_t bins = num_counts + 1;  // + the scratch bin of ignored pixels
  const bool interleave = bins <= kMaxInterleavedBins;
  const int64_t copies = interleave ? 4 : 1;
  const int64_t blocks =
      std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), n / kMinPixelsPerBlock));
  // One private histogram per block: no atomics, merged once at the end.
  std::vector<int64_t> hist(static_cast<size_t>(blocks * copies * bins), 0);
  parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      accumulate(pred, label, n / blocks * b + std::min(b, n % blocks),
                 n / blocks * (b + 1) + std::min(b + 1, n % blocks), num_classes, ignore_index,
                 bins, interleave, hist.data() + b * copies * bins);
    }
  });
  for (int64_t h = 0; h < blocks * copies; ++h) {
    const int64_t* src = hist.data() + h * bins;
    for (int64_t k = 0; k < num_counts; ++k) counts[k] += src[k];
  }
}

#define VT_OPS_INSTANTIATE_CPU(TP, TL)                                                   \
  template void confusion_matrix_cpu<TP, TL>(const TP*, const TL*, int64_t, int64_t, int64_t, \
                                             int64_t*);
VT_OPS_FOR_EACH_INTEGER_PAIR(VT_OPS_INSTANTIATE_CPU)

}  // namespace vt_ops
