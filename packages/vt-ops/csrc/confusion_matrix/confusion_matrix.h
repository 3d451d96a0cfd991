// Confusion matrix of two integer label maps: one bincount over
// label * C + pred, skipping pixels whose label is ignore_index.
#pragma once

#include <cstdint>

#include "common/macros.h"

namespace vt_ops {

// Layout of the int64 counts buffer the kernels accumulate into:
//   [0, C*C)   cell label * C + pred,
//   C*C        pixels whose label is neither ignore_index nor in [0, C),
//   C*C + 1    pixels with a valid label but a prediction outside [0, C).
// Kernels also use a scratch bin C*C + 2 for ignored pixels, so that every
// pixel lands in some bin without a branch.
VT_HOST_DEVICE int64_t confusion_num_counts(int64_t num_classes) {
  return num_classes * num_classes + 2;
}

VT_HOST_DEVICE int64_t confusion_bin(int64_t label, int64_t pred, int64_t num_classes,
                                     int64_t ignore_index) {
  const int64_t cells = num_classes * num_classes;
  if (label == ignore_index) return cells + 2;
  // One unsigned comparison tests 0 <= x < C.
  if (static_cast<uint64_t>(label) >= static_cast<uint64_t>(num_classes)) return cells;
  if (static_cast<uint64_t>(pred) >= static_cast<uint64_t>(num_classes)) return cells + 1;
  return label * num_classes + pred;
}

// Adds the n pixels of (pred, label) to counts (confusion_num_counts(C) entries).
template <class TP, class TL>
void confusion_matrix_cpu(const TP* pred, const TL* label, int64_t n, int64_t num_classes,
                          int64_t ignore_index, int64_t* counts);

#ifdef VT_OPS_WITH_CUDA
template <class TP, class TL>
void confusion_matrix_cuda(const TP* pred, const TL* label, int64_t n, int64_t num_classes,
                           int64_t ignore_index, int64_t* counts, int device,
                           std::uintptr_t stream);
#endif

// Explicit instantiations for every (pred, label) pair of integer dtypes.
#define VT_OPS_FOR_EACH_INTEGER_PAIR_WITH(M, TP) \
  M(TP, uint8_t)                                 \
  M(TP, int8_t)                                  \
  M(TP, int16_t)                                 \
  M(TP, uint16_t)                                \
  M(TP, int32_t)                                 \
  M(TP, int64_t)
#define VT_OPS_FOR_EACH_INTEGER_PAIR(M)          \
  VT_OPS_FOR_EACH_INTEGER_PAIR_WITH(M, uint8_t)  \
  VT_OPS_FOR_EACH_INTEGER_PAIR_WITH(M, int8_t)   \
  VT_OPS_FOR_EACH_INTEGER_PAIR_WITH(M, int16_t)  \
  VT_OPS_FOR_EACH_INTEGER_PAIR_WITH(M, uint16_t) \
  VT_OPS_FOR_EACH_INTEGER_PAIR_WITH(M, int32_t)  \
  VT_OPS_FOR_EACH_INTEGER_PAIR_WITH(M, int64_t)

}  // namespace vt_ops
