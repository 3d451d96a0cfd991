#include "box_iou/box_iou.h"
#include "common/cuda_utils.h"

namespace vt_ops {
namespace {

constexpr int kTile = 32;

// One thread per (i, j); each block stages a tile of boxes2 in shared memory.
template <class T>
__global__ void box_overlap_kernel(const T* __restrict__ boxes1, int64_t n,
                                   const T* __restrict__ boxes2, int64_t m, T* __restrict__ out,
                                   OverlapMode mode) {
  __shared__ T tile[kTile * 4];
  const int64_t j0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y;
  const int t = threadIdx.y * blockDim.x + threadIdx.x;
  if (t < kTile * 4 && j0 * 4 + t < m * 4) tile[t] = boxes2[j0 * 4 + t];
  __syncthreads();
  const int64_t j = j0 + threadIdx.x;
  if (i >= n || j >= m) return;
  T a[4] = {boxes1[4 * i], boxes1[4 * i + 1], boxes1[4 * i + 2], boxes1[4 * i + 3]};
  const T* b = tile + 4 * threadIdx.x;
  out[i * m + j] = box_overlap(a, box_area(a), b, box_area(b), mode);
}

}  // namespace

template <class T>
void box_overlap_cuda(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out,
                      OverlapMode mode, std::uintptr_t stream) {
  if (n == 0 || m == 0) return;
  const dim3 block(kTile, 8);
  const dim3 grid(static_cast<unsigned>(ceil_div(m, kTile)), static_cast<unsigned>(ceil_div(n, 8)));
  box_overlap_kernel<T><<<grid, block, 0, as_stream(stream)>>>(boxes1, n, boxes2, m, out, mode);
  VT_CUDA_CHECK_LAUNCH("box_overlap_kernel");
}

template void box_overlap_cuda<float>(const float*, int64_t, const float*, int64_t, float*,
                                      OverlapMode, std::uintptr_t);
template void box_overlap_cuda<double>(const double*, int64_t, const double*, int64_t, double*,
                                       OverlapMode, std::uintptr_t);

}  // namespace vt_ops
