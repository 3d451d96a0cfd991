#include <algorithm>

#include "box_iou_rotated/box_iou_rotated.h"
#include "common/cuda_utils.h"

namespace vt_ops {
namespace {

constexpr int kTile = 32;

// One thread per column j, striding over the rows; each block prepares a tile
// of boxes2 in shared memory.
template <class T>
__global__ void box_iou_rotated_kernel(const T* __restrict__ boxes1, int64_t n,
                                       const T* __restrict__ boxes2, int64_t m,
                                       T* __restrict__ out) {
  __shared__ RotatedBox<T> tile[kTile];
  const int64_t j0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int t = threadIdx.y * blockDim.x + threadIdx.x;
  if (t < kTile && j0 + t < m) tile[t] = make_rotated_box(boxes2 + 5 * (j0 + t));
  __syncthreads();
  const int64_t j = j0 + threadIdx.x;
  if (j >= m) return;
  // Rows stride over the grid: gridDim.y is capped at 65535.
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; i < n;
       i += static_cast<int64_t>(gridDim.y) * blockDim.y)
    out[i * m + j] = rotated_box_iou(make_rotated_box(boxes1 + 5 * i), tile[threadIdx.x]);
}

}  // namespace

template <class T>
void box_iou_rotated_cuda(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out,
                          std::uintptr_t stream) {
  if (n == 0 || m == 0) return;
  const dim3 block(kTile, 8);
  const dim3 grid(static_cast<unsigned>(ceil_div(m, kTile)),
                  static_cast<unsigned>(std::min<int64_t>(ceil_div(n, 8), 65535)));
  box_iou_rotated_kernel<T><<<grid, block, 0, as_stream(stream)>>>(boxes1, n, boxes2, m, out);
  VT_CUDA_CHECK_LAUNCH("box_iou_rotated_kernel");
}

template void box_iou_rotated_cuda<float>(const float*, int64_t, const float*, int64_t, float*,
                                          std::uintptr_t);
template void box_iou_rotated_cuda<double>(const double*, int64_t, const double*, int64_t,
                                           double*, std::uintptr_t);

}  // namespace vt_ops
