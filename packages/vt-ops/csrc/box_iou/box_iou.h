// Pairwise overlap matrices (IoU or IoA) of axis-aligned boxes.
#pragma once

#include <cstdint>

#include "common/box_geometry.h"

namespace vt_ops {

// out[i * m + j] = overlap(boxes1[i], boxes2[j]); boxes are n x 4 and m x 4.
template <class T>
void box_overlap_cpu(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out,
                     OverlapMode mode);

#ifdef VT_OPS_WITH_CUDA
template <class T>
void box_overlap_cuda(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out,
                      OverlapMode mode, std::uintptr_t stream);
#endif

}  // namespace vt_ops
