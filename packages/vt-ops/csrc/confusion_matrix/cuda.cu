#include <algorithm>

#include "common/cuda_utils.h"
#include "confusion_matrix/confusion_matrix.h"

namespace vt_ops {
namespace {

constexpr int kThreads = 256;
constexpr int kBlocksPerSM = 4;

// Label maps have long runs of one bin, so the lanes of a warp usually hit the
// same counter: lanes with equal bins elect a leader that adds their count
// once, instead of 32 atomics serialising on one address.
template <class Counter, class Value>
__device__ __forceinline__ void warp_aggregated_add(Counter* hist, int64_t bin, bool active) {
  const unsigned peers = __match_any_sync(0xffffffffu, static_cast<unsigned long long>(bin));
  const int lane = threadIdx.x & 31;
  if (active && lane == __ffs(peers) - 1) atomicAdd(hist + bin, static_cast<Value>(__popc(peers)));
}

// Loops over warp-aligned windows so that all 32 lanes take part in every
// __match_any_sync; lanes past the end fall into the scratch bin.
template <class TP, class TL, class F>
__device__ __forceinline__ void for_each_bin(const TP* pred, const TL* label, int64_t n,
                                             int64_t num_classes, int64_t ignore_index, F&& add) {
  const int64_t scratch = num_classes * num_classes + 2;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.x + (threadIdx.x & ~31u);
       base < n; base += stride) {
    const int64_t i = base + (threadIdx.x & 31);
    const int64_t bin = i < n ? confusion_bin(static_cast<int64_t>(label[i]),
                                              static_cast<int64_t>(pred[i]), num_classes,
                                              ignore_index)
                              : scratch;
    add(bin, bin != scratch);
  }
}

// Per-block histogram in shared memory (32-bit counters), flushed once.
template <class TP, class TL>
__global__ void confusion_matrix_shared_kernel(const TP* __restrict__ pred,
                                               const TL* __restrict__ label, int64_t n,
                                               int64_t num_classes, int64_t ignore_index,
                                               unsigned long long* __restrict__ counts) {
  extern __shared__ unsigned int hist[];
  const int64_t num_counts = confusion_num_counts(num_classes);
  for (int64_t k = threadIdx.x; k <= num_counts; k += blockDim.x) hist[k] = 0;
  __syncthreads();
  for_each_bin(pred, label, n, num_classes, ignore_index, [&](int64_t bin, bool) {
    warp_aggregated_add<unsigned int, unsigned int>(hist, bin, true);
  });
  __syncthreads();
  for (int64_t k = threadIdx.x; k < num_counts; k += blockDim.x) {
    if (hist[k] != 0) atomicAdd(counts + k, static_cast<unsigned long long>(hist[k]));
  }
}

// Many classes: the histogram does not fit in shared memory, add to global memory.
template <class TP, class TL>
__global__ void confusion_matrix_global_kernel(const TP* __restrict__ pred,
                                               const TL* __restrict__ label, int64_t n,
                                               int64_t num_classes, int64_t ignore_index,
                                               unsigned long long* __restrict__ counts) {
  for_each_bin(pred, label, n, num_classes, ignore_index, [&](int64_t bin, bool counted) {
    warp_aggregated_add<unsigned long long, unsigned long long>(counts, bin, counted);
  });
}

}  // namespace

template <class TP, class TL>
void confusion_matrix_cuda(const TP* pred, const TL* label, int64_t n, int64_t num_classes,
                           int64_t ignore_index, int64_t* counts, int device,
                           std::uintptr_t stream) {
  if (n == 0) return;
  int sms = 0, max_shared = 0;
  cuda_check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
             "cudaDeviceGetAttribute");
  cuda_check(
      cudaDeviceGetAttribute(&max_shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
      "cudaDeviceGetAttribute");
  // Enough blocks to fill the GPU, and enough that no block counts 2^31 pixels
  // into a 32-bit shared counter.
  const int64_t blocks = std::max<int64_t>(
      std::min<int64_t>(ceil_div(n, kThreads), static_cast<int64_t>(sms) * kBlocksPerSM),
      ceil_div(n, int64_t{1} << 31));
  auto* out = reinterpret_cast<unsigned long long*>(counts);
  const int64_t shared_bytes = (confusion_num_counts(num_classes) + 1) * sizeof(unsigned int);
  if (shared_bytes <= max_shared) {
    auto kernel = confusion_matrix_shared_kernel<TP, TL>;
    if (shared_bytes > 48 * 1024) {
      cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(shared_bytes)),
                 "cudaFuncSetAttribute");
    }
    kernel<<<static_cast<unsigned>(blocks), kThreads, static_cast<size_t>(shared_bytes),
             as_stream(stream)>>>(pred, label, n, num_classes, ignore_index, out);
    VT_CUDA_CHECK_LAUNCH("confusion_matrix_shared_kernel");
  } else {
    confusion_matrix_global_kernel<TP, TL><<<static_cast<unsigned>(blocks), kThreads, 0,
                                             as_stream(stream)>>>(pred, label, n, num_classes,
                                                                  ignore_index, out);
    VT_CUDA_CHECK_LAUNCH("confusion_matrix_global_kernel");
  }
}

#define VT_OPS_INSTANTIATE_CUDA(TP, TL)                                                    \
  template void confusion_matrix_cuda<TP, TL>(const TP*, const TL*, int64_t, int64_t, int64_t, \
                                              int64_t*, int, std::uintptr_t);
VT_OPS_FOR_EACH_INTEGER_PAIR(VT_OPS_INSTANTIATE_CUDA)

}  // namespace vt_ops
