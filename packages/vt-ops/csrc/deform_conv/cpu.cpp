// CPU deformable im2col / col2im. The sampling taps of a (image, deformable
// group, kernel position) depend on the offsets only, not on the channel, so
// each task computes them once for a tile of output pixels ("a plan") and
// reuses them for every channel of the deformable group.
#include <algorithm>
#include <vector>

#include "common/parallel.h"
#include "deform_conv/deform_conv.h"
#include "deform_conv/sampling.h"

namespace vt_ops {
namespace {

using deform::bilinear_taps;
using deform::Taps;
using deform::tap_value;

// Output pixels per plan: the plan (~50 bytes a pixel) stays in L2.
constexpr int64_t kTile = 1024;

// Fewer multiply-adds than this per parallel_for range are not worth a thread wake-up.
constexpr int64_t kMinWorkPerRange = 1 << 16;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// parallel_for grain for tasks of `work_per_task` multiply-adds each.
int64_t grain_for(int64_t work_per_task) {
  return std::max<int64_t>(1, kMinWorkPerRange / std::max<int64_t>(1, work_per_task));
}

// Taps of output pixels [p0, p0 + n) for kernel position k of one image and
// deformable group, structure-of-arrays: index[t * n + q], weight[t * n + q], ...
template <class T>
struct Plan {
  std::vector<int64_t> index;
  std::vector<T> weight, dweight_dy, dweight_dx, mask;

  // Fills the plan. offset/mask point at this image and deformable group.
  // With fold_mask the mask multiplies the weights (im2col/col2im); otherwise
  // it is kept apart and the derivatives are filled too (coordinate gradient).
  void build(const DeformConvShape& s, const T* offset, const T* mask_ptr, int64_t k, int64_t p0,
             int64_t n, bool fold_mask) {
    index.resize(4 * n);
    weight.resize(4 * n);
    if (!fold_mask) {
      dweight_dy.resize(4 * n);
      dweight_dx.resize(4 * n);
      mask.resize(n);
    }
    const int64_t L = s.out_size();
    const int64_t ki = k / s.kernel_w, kj = k % s.kernel_w;
    const T* off_y = offset + 2 * k * L;
    const T* off_x = off_y + L;
    const T* m = mask_ptr ? mask_ptr + k * L : nullptr;
    Taps<T> t;
    for (int64_t q = 0; q < n; ++q) {
      const int64_t p = p0 + q;
      const int64_t oy = p / s.out_w, ox = p % s.out_w;
      const T y = T(oy * s.stride_h - s.pad_h + ki * s.dilation_h) + off_y[p];
      const T x = T(ox * s.stride_w - s.pad_w + kj * s.dilation_w) + off_x[p];
      bilinear_taps(y, x, s.height, s.width, t);
      const T scale = (fold_mask && m) ? m[p] : T(1);
      for (int c = 0; c < 4; ++c) {
        index[c * n + q] = t.index[c];
        weight[c * n + q] = t.weight[c] * scale;
      }
      if (!fold_mask) {
        for (int c = 0; c < 4; ++c) {
          dweight_dy[c * n + q] = t.dweight_dy[c];
          dweight_dx[c * n + q] = t.dweight_dx[c];
        }
        mask[q] = m ? m[p] : T(1);
      }
    }
  }
};

// Work items (image, deformable group, kernel position, pixel tile); a task
// covers every channel of its deformable group.
struct TileTasks {
  int64_t kk, tiles, L;
  explicit TileTasks(const DeformConvShape& s)
      : kk(s.kernel_size()), tiles(ceil_div(s.out_size(), kTile)), L(s.out_size()) {}
  int64_t count(const DeformConvShape& s) const { return s.batch * s.deformable_groups * kk * tiles; }
  // -> (image * deformable_groups + group, kernel position, first pixel, pixels)
  void decode(int64_t task, int64_t& bd, int64_t& k, int64_t& p0, int64_t& n) const {
    const int64_t tile = task % tiles;
    k = (task / tiles) % kk;
    bd = task / (tiles * kk);
    p0 = tile * kTile;
    n = std::min(kTile, L - p0);
  }
};

template <class T>
T sample(const T* src, const int64_t* idx, const T* w, int64_t n, int64_t q) {
  return w[q] * tap_value(src, idx[q]) + w[n + q] * tap_value(src, idx[n + q]) +
         w[2 * n + q] * tap_value(src, idx[2 * n + q]) +
         w[3 * n + q] * tap_value(src, idx[3 * n + q]);
}

}  // namespace

template <class T>
void deform_im2col_cpu(const T* input, const T* offset, const T* mask, T* columns,
                       const DeformConvShape& s) {
  const TileTasks tasks(s);
  const int64_t kk = s.kernel_size(), L = s.out_size(), HW = s.height * s.width;
  const int64_t cpg = s.channels_per_group(), dg = s.deformable_groups;
  const int64_t grain = grain_for(4 * cpg * std::min(L, kTile));
  parallel_for(0, tasks.count(s), grain, [&](int64_t begin, int64_t end) {
    Plan<T> plan;
    for (int64_t task = begin; task < end; ++task) {
      int64_t bd, k, p0, n;
      tasks.decode(task, bd, k, p0, n);
      plan.build(s, offset + bd * 2 * kk * L, mask ? mask + bd * kk * L : nullptr, k, p0, n, true);
      const int64_t* idx = plan.index.data();
      const T* w = plan.weight.data();
      const int64_t c_begin = (bd / dg) * s.channels + (bd % dg) * cpg;  // image * C + channel
      int64_t c = c_begin;
      // Four channels at a time: the plan is loaded once for four output rows.
      for (; c + 4 <= c_begin + cpg; c += 4) {
        const T* s0 = input + c * HW;
        const T* s1 = s0 + HW;
        const T* s2 = s1 + HW;
        const T* s3 = s2 + HW;
        T* r0 = columns + (c * kk + k) * L + p0;
        T* r1 = r0 + kk * L;
        T* r2 = r1 + kk * L;
        T* r3 = r2 + kk * L;
        for (int64_t q = 0; q < n; ++q) {
          const int64_t i0 = idx[q], i1 = idx[n + q], i2 = idx[2 * n + q], i3 = idx[3 * n + q];
          const T w0 = w[q], w1 = w[n + q], w2 = w[2 * n + q], w3 = w[3 * n + q];
          if (i0 >= 0 && i3 >= 0) {  // all four corners inside (the common case)
            r0[q] = w0 * s0[i0] + w1 * s0[i1] + w2 * s0[i2] + w3 * s0[i3];
            r1[q] = w0 * s1[i0] + w1 * s1[i1] + w2 * s1[i2] + w3 * s1[i3];
            r2[q] = w0 * s2[i0] + w1 * s2[i1] + w2 * s2[i2] + w3 * s2[i3];
            r3[q] = w0 * s3[i0] + w1 * s3[i1] + w2 * s3[i2] + w3 * s3[i3];
          } else {
            r0[q] = sample(s0, idx, w, n, q);
            r1[q] = sample(s1, idx, w, n, q);
            r2[q] = sample(s2, idx, w, n, q);
            r3[q] = sample(s3, idx, w, n, q);
          }
        }
      }
      for (; c < c_begin + cpg; ++c) {
        const T* src = input + c * HW;
        T* row = columns + (c * kk + k) * L + p0;
        for (int64_t q = 0; q < n; ++q) row[q] = sample(src, idx, w, n, q);
      }
    }
  });
}

template <class T>
void deform_col2im_cpu(const T* columns, const T* offset, const T* mask, T* grad_input,
                       const DeformConvShape& s) {
  const int64_t kk = s.kernel_size(), L = s.out_size(), HW = s.height * s.width;
  const int64_t cpg = s.channels_per_group(), dg = s.deformable_groups;
  // A task owns the grad_input planes of a block of channels (no two tasks
  // write the same memory); blocks stay inside one deformable group.
  const int64_t want = std::max<int64_t>(1, 4 * get_num_threads());
  const int64_t block = std::clamp<int64_t>(
      ceil_div(s.batch * s.channels, want), 4, std::max<int64_t>(4, cpg));
  const int64_t blocks_per_group = ceil_div(cpg, block);
  const int64_t tiles = ceil_div(L, kTile);
  const int64_t grain = grain_for(4 * std::min(block, cpg) * kk * L);
  parallel_for(0, s.batch * dg * blocks_per_group, grain, [&](int64_t begin, int64_t end) {
    Plan<T> plan;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t bd = task / blocks_per_group;
      const int64_t c0 = (bd / dg) * s.channels + (bd % dg) * cpg + (task % blocks_per_group) * block;
      const int64_t c1 = std::min(c0 + block, (bd / dg) * s.channels + (bd % dg + 1) * cpg);
      for (int64_t k = 0; k < kk; ++k) {
        for (int64_t tile = 0; tile < tiles; ++tile) {
          const int64_t p0 = tile * kTile, n = std::min(kTile, L - p0);
          plan.build(s, offset + bd * 2 * kk * L, mask ? mask + bd * kk * L : nullptr, k, p0, n,
                     true);
          const int64_t* idx = plan.index.data();
          const T* w = plan.weight.data();
          for (int64_t c = c0; c < c1; ++c) {
            const T* row = columns + (c * kk + k) * L + p0;
            T* dst = grad_input + c * HW;
            for (int64_t q = 0; q < n; ++q) {
              const T g = row[q];
              for (int t = 0; t < 4; ++t) {
                const int64_t i = idx[t * n + q];
                if (i >= 0) dst[i] += w[t * n + q] * g;
              }
            }
          }
        }
      }
    }
  });
}

template <class T>
void deform_col2im_coord_cpu(const T* columns, const T* input, const T* offset, const T* mask,
                             T* grad_offset, T* grad_mask, const DeformConvShape& s) {
  const TileTasks tasks(s);
  const int64_t kk = s.kernel_size(), L = s.out_size(), HW = s.height * s.width;
  const int64_t cpg = s.channels_per_group(), dg = s.deformable_groups;
  const int64_t grain = grain_for(4 * cpg * std::min(L, kTile));
  parallel_for(0, tasks.count(s), grain, [&](int64_t begin, int64_t end) {
    Plan<T> plan;
    // acc[t * n + q] = sum over channels of column gradient * value of tap t.
    // The tap weights and derivatives do not depend on the channel, so the
    // offset and mask gradients are linear combinations of these four sums.
    std::vector<T> acc;
    for (int64_t task = begin; task < end; ++task) {
      int64_t bd, k, p0, n;
      tasks.decode(task, bd, k, p0, n);
      plan.build(s, offset + bd * 2 * kk * L, mask ? mask + bd * kk * L : nullptr, k, p0, n, false);
      const int64_t* idx = plan.index.data();
      acc.assign(4 * n, T(0));
      T* a = acc.data();
      const int64_t c_begin = (bd / dg) * s.channels + (bd % dg) * cpg;
      for (int64_t c = c_begin; c < c_begin + cpg; ++c) {
        const T* src = input + c * HW;
        const T* row = columns + (c * kk + k) * L + p0;
        for (int64_t q = 0; q < n; ++q) {
          const T g = row[q];
          const int64_t i0 = idx[q], i1 = idx[n + q], i2 = idx[2 * n + q], i3 = idx[3 * n + q];
          if (i0 >= 0 && i3 >= 0) {
            a[q] += g * src[i0];
            a[n + q] += g * src[i1];
            a[2 * n + q] += g * src[i2];
            a[3 * n + q] += g * src[i3];
          } else {
            a[q] += g * tap_value(src, i0);
            a[n + q] += g * tap_value(src, i1);
            a[2 * n + q] += g * tap_value(src, i2);
            a[3 * n + q] += g * tap_value(src, i3);
          }
        }
      }
      T* go_y = grad_offset + (bd * 2 * kk + 2 * k) * L + p0;
      T* go_x = go_y + L;
      T* gm = grad_mask ? grad_mask + (bd * kk + k) * L + p0 : nullptr;
      const T* w = plan.weight.data();
      const T* dy = plan.dweight_dy.data();
      const T* dx = plan.dweight_dx.data();
      for (int64_t q = 0; q < n; ++q) {
        T sy = 0, sx = 0, sv = 0;
        for (int t = 0; t < 4; ++t) {
          sy += dy[t * n + q] * a[t * n + q];
          sx += dx[t * n + q] * a[t * n + q];
          sv += w[t * n + q] * a[t * n + q];
        }
        go_y[q] = plan.mask[q] * sy;
        go_x[q] = plan.mask[q] * sx;
        if (gm) gm[q] = sv;
      }
    }
  });
}

#define VT_DEFORM_INSTANTIATE(T)                                                            \
  template void deform_im2col_cpu<T>(const T*, const T*, const T*, T*,                     \
                                     const DeformConvShape&);                               \
  template void deform_col2im_cpu<T>(const T*, const T*, const T*, T*,                     \
                                     const DeformConvShape&);                               \
  template void deform_col2im_coord_cpu<T>(const T*, const T*, const T*, const T*, T*, T*, \
                                           const DeformConvShape&);
VT_DEFORM_INSTANTIATE(float)
VT_DEFORM_INSTANTIATE(double)
#undef VT_DEFORM_INSTANTIATE

}  // namespace vt_ops
