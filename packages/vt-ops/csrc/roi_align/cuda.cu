// CUDA ROIAlign: one thread per output element (k, c, ph, pw). The backward
// pass scatters with atomicAdd, so its float sums are not bitwise
// deterministic when ROIs overlap (the CPU backward is).
#include "common/bilinear.h"
#include "common/cuda_utils.h"
#include "roi_align/roi_align.h"

namespace vt_ops {
namespace {

constexpr int kThreads = 256;

template <class T, bool Rotated>
__device__ RoiAlignGeometry<T> geometry(const T* roi, const RoiAlignShape& s,
                                        const RoiAlignParams& p) {
  const T scale = static_cast<T>(p.spatial_scale);
  return Rotated ? roi_align_rotated_geometry(roi, scale, s.pooled_h, s.pooled_w, p.sampling_ratio)
                 : roi_align_geometry(roi, scale, s.pooled_h, s.pooled_w, p.sampling_ratio,
                                      p.aligned);
}

template <class T, bool Rotated>
__global__ void roi_align_forward_kernel(const T* __restrict__ input, const T* __restrict__ rois,
                                         T* __restrict__ output, RoiAlignShape s,
                                         RoiAlignParams p, int64_t total) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int pw = static_cast<int>(index % s.pooled_w);
    const int ph = static_cast<int>((index / s.pooled_w) % s.pooled_h);
    const int64_t c = (index / (s.pooled_w * s.pooled_h)) % s.channels;
    const int64_t k = index / (s.pooled_w * s.pooled_h * s.channels);
    const RoiAlignGeometry<T> g = geometry<T, Rotated>(rois + k * (Rotated ? 6 : 5), s, p);
    T acc = T(0);
    if (g.batch >= 0 && g.batch < s.batch) {
      const T* plane = input + (g.batch * s.channels + c) * s.height * s.width;
      for (int iy = 0; iy < g.grid_h; ++iy) {
        for (int ix = 0; ix < g.grid_w; ++ix) {
          T y, x;
          roi_sample_point<T, Rotated>(g, ph, pw, iy, ix, &y, &x);
          int64_t off[4];
          T w[4];
          if (!bilinear_taps(y, x, static_cast<int>(s.height), static_cast<int>(s.width), off, w))
            continue;
          acc += w[0] * plane[off[0]] + w[1] * plane[off[1]] + w[2] * plane[off[2]] +
                 w[3] * plane[off[3]];
        }
      }
    }
    output[index] = acc * g.inv_count;
  }
}

template <class T, bool Rotated>
__global__ void roi_align_backward_kernel(const T* __restrict__ grad_output,
                                          const T* __restrict__ rois, T* __restrict__ grad_input,
                                          RoiAlignShape s, RoiAlignParams p, int64_t total) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int pw = static_cast<int>(index % s.pooled_w);
    const int ph = static_cast<int>((index / s.pooled_w) % s.pooled_h);
    const int64_t c = (index / (s.pooled_w * s.pooled_h)) % s.channels;
    const int64_t k = index / (s.pooled_w * s.pooled_h * s.channels);
    const RoiAlignGeometry<T> g = geometry<T, Rotated>(rois + k * (Rotated ? 6 : 5), s, p);
    if (g.batch < 0 || g.batch >= s.batch) continue;
    const T grad = grad_output[index] * g.inv_count;
    T* plane = grad_input + (g.batch * s.channels + c) * s.height * s.width;
    for (int iy = 0; iy < g.grid_h; ++iy) {
      for (int ix = 0; ix < g.grid_w; ++ix) {
        T y, x;
        roi_sample_point<T, Rotated>(g, ph, pw, iy, ix, &y, &x);
        int64_t off[4];
        T w[4];
        if (!bilinear_taps(y, x, static_cast<int>(s.height), static_cast<int>(s.width), off, w))
          continue;
        for (int t = 0; t < 4; ++t) atomicAdd(plane + off[t], w[t] * grad);
      }
    }
  }
}

int64_t num_blocks(int64_t total) {
  const int64_t blocks = ceil_div(total, kThreads);
  return blocks < 65535 * 8 ? blocks : 65535 * 8;
}

}  // namespace

template <class T>
void roi_align_forward_cuda(const T* input, const T* rois, T* output, const RoiAlignShape& s,
                            const RoiAlignParams& p, std::uintptr_t stream) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  if (total == 0) return;
  const unsigned blocks = static_cast<unsigned>(num_blocks(total));
  if (p.rotated)
    roi_align_forward_kernel<T, true>
        <<<blocks, kThreads, 0, as_stream(stream)>>>(input, rois, output, s, p, total);
  else
    roi_align_forward_kernel<T, false>
        <<<blocks, kThreads, 0, as_stream(stream)>>>(input, rois, output, s, p, total);
  VT_CUDA_CHECK_LAUNCH("roi_align_forward_kernel");
}

template <class T>
void roi_align_backward_cuda(const T* grad_output, const T* rois, T* grad_input,
                             const RoiAlignShape& s, const RoiAlignParams& p,
                             std::uintptr_t stream) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  if (total == 0) return;
  const unsigned blocks = static_cast<unsigned>(num_blocks(total));
  if (p.rotated)
    roi_align_backward_kernel<T, true>
        <<<blocks, kThreads, 0, as_stream(stream)>>>(grad_output, rois, grad_input, s, p, total);
  else
    roi_align_backward_kernel<T, false>
        <<<blocks, kThreads, 0, as_stream(stream)>>>(grad_output, rois, grad_input, s, p, total);
  VT_CUDA_CHECK_LAUNCH("roi_align_backward_kernel");
}

#define VT_INSTANTIATE(T)                                                                    \
  template void roi_align_forward_cuda<T>(const T*, const T*, T*, const RoiAlignShape&,      \
                                          const RoiAlignParams&, std::uintptr_t);            \
  template void roi_align_backward_cuda<T>(const T*, const T*, T*, const RoiAlignShape&,     \
                                           const RoiAlignParams&, std::uintptr_t);
VT_INSTANTIATE(float)
VT_INSTANTIATE(double)
#undef VT_INSTANTIATE

}  // namespace vt_ops
