// CUDA ROIPool: one thread per output element; the backward pass scatters
// with atomicAdd (not bitwise deterministic when ROIs share a maximum).
#include <cfloat>

#include "common/bilinear.h"
#include "common/cuda_utils.h"
#include "roi_pool/roi_pool.h"

namespace vt_ops {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void roi_pool_forward_kernel(const T* __restrict__ input, const T* __restrict__ rois,
                                        T* __restrict__ output, int32_t* __restrict__ argmax,
                                        RoiAlignShape s, T spatial_scale, int64_t total) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int pw = static_cast<int>(index % s.pooled_w);
    const int ph = static_cast<int>((index / s.pooled_w) % s.pooled_h);
    const int64_t c = (index / (s.pooled_w * s.pooled_h)) % s.channels;
    const int64_t k = index / (s.pooled_w * s.pooled_h * s.channels);
    const RoiPoolGeometry<T> g = roi_pool_geometry(rois + k * 5, spatial_scale, s.pooled_h,
                                                   s.pooled_w);
    const RoiPoolWindow r = roi_pool_window(g, ph, pw, static_cast<int>(s.height),
                                            static_cast<int>(s.width));
    T best = r.empty() ? T(0) : T(-FLT_MAX);
    int32_t where = -1;
    if (g.batch >= 0 && g.batch < s.batch) {
      const T* plane = input + (g.batch * s.channels + c) * s.height * s.width;
      for (int h = r.h0; h < r.h1; ++h) {
        for (int w = r.w0; w < r.w1; ++w) {
          const int32_t idx = h * static_cast<int32_t>(s.width) + w;
          if (plane[idx] > best) {
            best = plane[idx];
            where = idx;
          }
        }
      }
    } else {
      best = T(0);
    }
    output[index] = best;
    argmax[index] = where;
  }
}

template <class T>
__global__ void roi_pool_backward_kernel(const T* __restrict__ grad_output,
                                         const T* __restrict__ rois,
                                         const int32_t* __restrict__ argmax,
                                         T* __restrict__ grad_input, RoiAlignShape s,
                                         int64_t total) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t c = (index / (s.pooled_w * s.pooled_h)) % s.channels;
    const int64_t k = index / (s.pooled_w * s.pooled_h * s.channels);
    const int64_t n = static_cast<int64_t>(rois[k * 5]);
    const int64_t a = argmax[index];
    if (n < 0 || n >= s.batch || a < 0 || a >= s.height * s.width) continue;
    atomicAdd(grad_input + (n * s.channels + c) * s.height * s.width + a, grad_output[index]);
  }
}

unsigned num_blocks(int64_t total) {
  const int64_t blocks = ceil_div(total, kThreads);
  return static_cast<unsigned>(blocks < 65535 * 8 ? blocks : 65535 * 8);
}

}  // namespace

template <class T>
void roi_pool_forward_cuda(const T* input, const T* rois, T* output, int32_t* argmax,
                           const RoiAlignShape& s, double spatial_scale, std::uintptr_t stream) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  if (total == 0) return;
  roi_pool_forward_kernel<T><<<num_blocks(total), kThreads, 0, as_stream(stream)>>>(
      input, rois, output, argmax, s, static_cast<T>(spatial_scale), total);
  VT_CUDA_CHECK_LAUNCH("roi_pool_forward_kernel");
}

template <class T>
void roi_pool_backward_cuda(const T* grad_output, const T* rois, const int32_t* argmax,
                            T* grad_input, const RoiAlignShape& s, std::uintptr_t stream) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  if (total == 0) return;
  roi_pool_backward_kernel<T><<<num_blocks(total), kThreads, 0, as_stream(stream)>>>(
      grad_output, rois, argmax, grad_input, s, total);
  VT_CUDA_CHECK_LAUNCH("roi_pool_backward_kernel");
}

#define VT_INSTANTIATE(T)                                                                    \
  template void roi_pool_forward_cuda<T>(const T*, const T*, T*, int32_t*,                   \
                                         const RoiAlignShape&, double, std::uintptr_t);      \
  template void roi_pool_backward_cuda<T>(const T*, const T*, const int32_t*, T*,            \
                                          const RoiAlignShape&, std::uintptr_t);
VT_INSTANTIATE(float)
VT_INSTANTIATE(double)
#undef VT_INSTANTIATE

}  // namespace vt_ops
