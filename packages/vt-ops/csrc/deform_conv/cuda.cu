// CUDA deformable im2col / col2im: one thread per output element, the
// sampling math shared with the CPU kernels (sampling.h).
#include <algorithm>

#include "common/cuda_utils.h"
#include "deform_conv/deform_conv.h"
#include "deform_conv/sampling.h"

namespace vt_ops {
namespace {

using deform::bilinear_taps;
using deform::Taps;
using deform::tap_value;

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>(ceil_div(n, kThreads), int64_t(1) << 20));
}

#define VT_GRID_STRIDE_LOOP(i, n)                                               \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; \
       i < (n); i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// Taps of output pixel p (of an image and deformable group whose offsets start
// at `offset`) for kernel position k.
template <class T>
__device__ __forceinline__ void taps_at(const DeformConvShape& s, const T* offset, int64_t k,
                                        int64_t p, Taps<T>& t) {
  const int64_t L = s.out_size();
  const int64_t oy = p / s.out_w, ox = p % s.out_w;
  const int64_t ki = k / s.kernel_w, kj = k % s.kernel_w;
  const T y = T(oy * s.stride_h - s.pad_h + ki * s.dilation_h) + offset[2 * k * L + p];
  const T x = T(ox * s.stride_w - s.pad_w + kj * s.dilation_w) + offset[(2 * k + 1) * L + p];
  bilinear_taps(y, x, s.height, s.width, t);
}

// One thread per (image, channel, output pixel), looping over kernel positions.
template <class T>
__global__ void im2col_kernel(const T* __restrict__ input, const T* __restrict__ offset,
                              const T* __restrict__ mask, T* __restrict__ columns,
                              DeformConvShape s) {
  const int64_t L = s.out_size(), kk = s.kernel_size(), cpg = s.channels_per_group();
  const int64_t n = s.batch * s.channels * L;
  VT_GRID_STRIDE_LOOP(i, n) {
    const int64_t p = i % L;
    const int64_t bc = i / L;  // image * channels + channel
    const int64_t bd = (bc / s.channels) * s.deformable_groups + (bc % s.channels) / cpg;
    const T* plane = input + bc * s.height * s.width;
    const T* off = offset + bd * 2 * kk * L;
    const T* m = mask ? mask + bd * kk * L : nullptr;
    Taps<T> t;
    for (int64_t k = 0; k < kk; ++k) {
      taps_at(s, off, k, p, t);
      T v = T(0);
      for (int c = 0; c < 4; ++c) v += t.weight[c] * tap_value(plane, t.index[c]);
      columns[(bc * kk + k) * L + p] = m ? v * m[k * L + p] : v;
    }
  }
}

// One thread per column element; atomics because taps of different pixels overlap.
template <class T>
__global__ void col2im_kernel(const T* __restrict__ columns, const T* __restrict__ offset,
                              const T* __restrict__ mask, T* __restrict__ grad_input,
                              DeformConvShape s) {
  const int64_t L = s.out_size(), kk = s.kernel_size(), cpg = s.channels_per_group();
  const int64_t n = s.batch * s.channels * kk * L;
  VT_GRID_STRIDE_LOOP(i, n) {
    const int64_t p = i % L;
    const int64_t k = (i / L) % kk;
    const int64_t bc = i / (L * kk);
    const int64_t bd = (bc / s.channels) * s.deformable_groups + (bc % s.channels) / cpg;
    const T* off = offset + bd * 2 * kk * L;
    Taps<T> t;
    taps_at(s, off, k, p, t);
    T g = columns[i];
    if (mask) g *= mask[(bd * kk + k) * L + p];
    T* plane = grad_input + bc * s.height * s.width;
    for (int c = 0; c < 4; ++c)
      if (t.index[c] >= 0) atomicAdd(plane + t.index[c], t.weight[c] * g);
  }
}

// One thread per (image, deformable group, kernel position, output pixel),
// summing over the channels of the group.
template <class T>
__global__ void coord_kernel(const T* __restrict__ columns, const T* __restrict__ input,
                             const T* __restrict__ offset, const T* __restrict__ mask,
                             T* __restrict__ grad_offset, T* __restrict__ grad_mask,
                             DeformConvShape s) {
  const int64_t L = s.out_size(), kk = s.kernel_size(), cpg = s.channels_per_group();
  const int64_t HW = s.height * s.width;
  const int64_t n = s.batch * s.deformable_groups * kk * L;
  VT_GRID_STRIDE_LOOP(i, n) {
    const int64_t p = i % L;
    const int64_t k = (i / L) % kk;
    const int64_t bd = i / (L * kk);
    Taps<T> t;
    taps_at(s, offset + bd * 2 * kk * L, k, p, t);
    const int64_t c0 = (bd / s.deformable_groups) * s.channels + (bd % s.deformable_groups) * cpg;
    T acc[4] = {T(0), T(0), T(0), T(0)};
    for (int64_t c = c0; c < c0 + cpg; ++c) {
      const T g = columns[(c * kk + k) * L + p];
      const T* plane = input + c * HW;
      for (int q = 0; q < 4; ++q) acc[q] += g * tap_value(plane, t.index[q]);
    }
    T sy = T(0), sx = T(0), sv = T(0);
    for (int q = 0; q < 4; ++q) {
      sy += t.dweight_dy[q] * acc[q];
      sx += t.dweight_dx[q] * acc[q];
      sv += t.weight[q] * acc[q];
    }
    const T m = mask ? mask[(bd * kk + k) * L + p] : T(1);
    grad_offset[(bd * 2 * kk + 2 * k) * L + p] = m * sy;
    grad_offset[(bd * 2 * kk + 2 * k + 1) * L + p] = m * sx;
    if (grad_mask) grad_mask[(bd * kk + k) * L + p] = sv;
  }
}

}  // namespace

template <class T>
void deform_im2col_cuda(const T* input, const T* offset, const T* mask, T* columns,
                        const DeformConvShape& s, std::uintptr_t stream) {
  const int64_t n = s.batch * s.channels * s.out_size();
  if (n == 0) return;
  im2col_kernel<T><<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(input, offset, mask,
                                                                      columns, s);
  VT_CUDA_CHECK_LAUNCH("deform im2col_kernel");
}

template <class T>
void deform_col2im_cuda(const T* columns, const T* offset, const T* mask, T* grad_input,
                        const DeformConvShape& s, std::uintptr_t stream) {
  const int64_t n = s.batch * s.channels * s.kernel_size() * s.out_size();
  if (n == 0) return;
  col2im_kernel<T><<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(columns, offset, mask,
                                                                      grad_input, s);
  VT_CUDA_CHECK_LAUNCH("deform col2im_kernel");
}

template <class T>
void deform_col2im_coord_cuda(const T* columns, const T* input, const T* offset, const T* mask,
                              T* grad_offset, T* grad_mask, const DeformConvShape& s,
                              std::uintptr_t stream) {
  const int64_t n = s.batch * s.deformable_groups * s.kernel_size() * s.out_size();
  if (n == 0) return;
  coord_kernel<T><<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(
      columns, input, offset, mask, grad_offset, grad_mask, s);
  VT_CUDA_CHECK_LAUNCH("deform coord_kernel");
}

#define VT_DEFORM_INSTANTIATE(T)                                                              \
  template void deform_im2col_cuda<T>(const T*, const T*, const T*, T*,                      \
                                      const DeformConvShape&, std::uintptr_t);               \
  template void deform_col2im_cuda<T>(const T*, const T*, const T*, T*,                      \
                                      const DeformConvShape&, std::uintptr_t);               \
  template void deform_col2im_coord_cuda<T>(const T*, const T*, const T*, const T*, T*, T*,  \
                                            const DeformConvShape&, std::uintptr_t);
VT_DEFORM_INSTANTIATE(float)
VT_DEFORM_INSTANTIATE(double)
#undef VT_DEFORM_INSTANTIATE

}  // namespace vt_ops
