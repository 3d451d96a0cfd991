#include <algorithm>

#include "box_iou/box_iou.h"
#include "common/cuda_utils.h"

namespace vt_ops {
namespace {

constexpr int kTile = 32;

// One thread per column j, striding over the rows; each block stages a tile
// of boxes2 in shared memory.
template <class T>
__global__ void box_overlap_kernel(const T* __restrict__ boxes1, int64_t n,
                                   const T* __restrict__ boxes2, int64_t m, T* __restrict__ out,
                                   OverlapMode mode) {
  __shared__ T tile[kTile * 4];
  const int64_t j0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int t = threadIdx.y * blockDim.x + threadIdx.x;
  if (t < kTile * 4 && j0 * 4 + t < m * 4) tile[t] = boxes2[j0 * 4 + t];
  __syncthreads();
  const int64_t j = j0 + threadIdx.x;
  if (j >= m) return;
  const T* b = tile + 4 * threadIdx.x;
  const T area_b = box_area(b);
  // Rows stride over the grid: gridDim.y is capped at 65535.
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; i < n;
       i += static_cast<int64_t>(gridDim.y) * blockDim.y) {
    T a[4] = {boxes1[4 * i], boxes1[4 * i + 1], boxes1[4 * i + 2], boxes1[4 * i + 3]};
    out[i * m + j] = box_overlap(a, box_area(a), b, area_b, mode);
  }
}

}  // namespace

template <class T>
void box_overlap_cuda(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out,
                      OverlapMode mode, std::uintptr_t stream) {
  if (n == 0 || m == 0) return;
  const dim3 block(kTile, 8);
  const dim3 grid(static_cast<unsigned>(ceil_div(m, kTile)),
                  static_cast<unsigned>(std::min<int64_t>(ceil_div(n, 8), 65535)));
  box_overlap_kernel<T><<<grid, block, 0, as_stream(stream)>>>(boxes1, n, boxes2, m, out, mode);
  VT_CUDA_CHECK_LAUNCH("box_overlap_kernel");
}

template void box_overlap_cuda<float>(const float*, int64_t, const float*, int64_t, float*,
                                      OverlapMode, std::uintptr_t);
template void box_overlap_cuda<double>(const double*, int64_t, const double*, int64_t, double*,
                                       OverlapMode, std::uintptr_t);

}  // namespace vt_ops
