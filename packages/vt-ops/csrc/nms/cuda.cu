// CUDA NMS: a bitmask kernel marks, for each candidate (in score order), the
// later candidates of its category it suppresses, 64 per word; one block then
// walks the words in order to pick the kept boxes, without copying the mask to
// the host.
#include "common/box_geometry.h"
#include "common/cuda_utils.h"
#include "common/rotated_geometry.h"
#include "nms/nms.h"

namespace vt_ops {
namespace {

constexpr int kBits = 64;
constexpr int kGatherThreads = 256;
// Dynamic shared memory for the removed words, below the 48 KiB default with the static part.
constexpr int64_t kMaxSharedWords = 6000;

template <class T, int Dim>
struct NmsGeometry;

template <class T>
struct NmsGeometry<T, 4> {
  struct Box {
    T x1, y1, x2, y2, area;
  };
  __device__ static Box load(const T* b) {
    return {b[0], b[1], b[2], b[3], box_area(b)};
  }
  __device__ static bool suppresses(const Box& a, const Box& b, T thr) {
    return nms_box_iou(a.x1, a.y1, a.x2, a.y2, a.area, b.x1, b.y1, b.x2, b.y2, b.area) > thr;
  }
};

template <class T>
struct NmsGeometry<T, 5> {
  using Box = RotatedBox<T>;
  __device__ static Box load(const T* b) { return make_rotated_box(b); }
  __device__ static bool suppresses(const Box& a, const Box& b, T thr) {
    return rotated_iou_exceeds(a, b, thr);
  }
};

// Block (row block, column block), one thread per row: bit c of
// mask[i * col_blocks + col_block] says candidate i suppresses candidate
// col_block * 64 + c. Only column blocks at or after the row block are needed.
template <class T, int Dim>
__global__ void nms_mask_kernel(const T* __restrict__ boxes, const int64_t* __restrict__ idxs,
                                const int64_t* __restrict__ order, int64_t n, T thr,
                                int64_t col_blocks, uint64_t* __restrict__ mask) {
  using Geo = NmsGeometry<T, Dim>;
  const int64_t row_block = blockIdx.y, col_block = blockIdx.x;
  if (row_block > col_block) return;
  __shared__ typename Geo::Box cols[kBits];
  __shared__ int64_t col_cat[kBits];
  const int t = threadIdx.x;
  const int64_t col_start = col_block * kBits, row_start = row_block * kBits;
  const int col_size = static_cast<int>(min(n - col_start, static_cast<int64_t>(kBits)));
  const int row_size = static_cast<int>(min(n - row_start, static_cast<int64_t>(kBits)));
  if (t < col_size) {
    const int64_t k = order[col_start + t];
    cols[t] = Geo::load(boxes + Dim * k);
    col_cat[t] = idxs ? idxs[k] : 0;
  }
  __syncthreads();
  if (t >= row_size) return;
  const int64_t i = row_start + t, k = order[i];
  const typename Geo::Box box = Geo::load(boxes + Dim * k);
  const int64_t cat = idxs ? idxs[k] : 0;
  uint64_t bits = 0;
  for (int c = row_block == col_block ? t + 1 : 0; c < col_size; ++c)
    if (col_cat[c] == cat && Geo::suppresses(box, cols[c], thr)) bits |= 1ULL << c;
  mask[i * col_blocks + col_block] = bits;
}

// One block: checks the inputs are finite, then walks the candidates in order.
// Every thread follows the same control flow (all decisions read shared or
// read-only memory after a barrier), so the barriers inside the loop are safe.
template <class T, int Dim>
__global__ void nms_gather_kernel(const T* __restrict__ boxes, const T* __restrict__ scores,
                                  const int64_t* __restrict__ order, int64_t n,
                                  double score_threshold, int64_t max_output,
                                  const uint64_t* __restrict__ mask, int64_t col_blocks,
                                  uint64_t* removed_global, int64_t* __restrict__ keep,
                                  int64_t* __restrict__ count) {
  extern __shared__ uint64_t removed_shared[];
  uint64_t* removed = col_blocks <= kMaxSharedWords ? removed_shared : removed_global;
  __shared__ int bad;
  const int t = threadIdx.x;
  if (t == 0) bad = 0;
  __syncthreads();
  int local = 0;
  for (int64_t e = t; e < n * Dim; e += blockDim.x) local |= isfinite(boxes[e]) ? 0 : 1;
  for (int64_t e = t; e < n; e += blockDim.x) local |= isfinite(scores[e]) ? 0 : 2;
  if (local) atomicOr(&bad, local);
  for (int64_t j = t; j < col_blocks; j += blockDim.x) removed[j] = 0;
  __syncthreads();
  if (bad) {
    if (t == 0) *count = (bad & 1) ? kNmsNonFiniteBoxes : kNmsNonFiniteScores;
    return;
  }
  int64_t k = 0;
  bool done = max_output <= 0;
  for (int64_t block = 0; block < col_blocks && !done; ++block) {
    uint64_t current = removed[block];
    __syncthreads();
    for (int bit = 0; bit < kBits; ++bit) {
      const int64_t i = block * kBits + bit;
      if (i >= n) break;
      if ((current >> bit) & 1) continue;
      const int64_t index = order[i];
      if (!(scores[index] > score_threshold)) {  // sorted: no later candidate passes
        done = true;
        break;
      }
      if (t == 0) keep[k] = index;
      if (++k >= max_output) {
        done = true;
        break;
      }
      const uint64_t* row = mask + i * col_blocks;
      for (int64_t j = block + t; j < col_blocks; j += blockDim.x) removed[j] |= row[j];
      __syncthreads();
      current = removed[block];
      __syncthreads();
    }
  }
  if (t == 0) *count = k;
}

template <class T, int Dim>
void launch(const T* boxes, const T* scores, const int64_t* idxs, const int64_t* order, int64_t n,
            const NmsOptions& options, uint64_t* mask, uint64_t* removed, int64_t* keep,
            int64_t* count, cudaStream_t stream) {
  const int64_t col_blocks = ceil_div(n, kBits);
  const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(col_blocks));
  nms_mask_kernel<T, Dim><<<grid, kBits, 0, stream>>>(
      boxes, idxs, order, n, nms_threshold_as<T>(options.iou_threshold), col_blocks, mask);
  VT_CUDA_CHECK_LAUNCH("nms_mask_kernel");
  const size_t shared = col_blocks <= kMaxSharedWords ? col_blocks * sizeof(uint64_t) : 0;
  const int64_t max_output = options.max_output < 0 ? n : options.max_output;
  nms_gather_kernel<T, Dim><<<1, kGatherThreads, shared, stream>>>(
      boxes, scores, order, n, options.score_threshold, max_output, mask, col_blocks, removed,
      keep, count);
  VT_CUDA_CHECK_LAUNCH("nms_gather_kernel");
}

}  // namespace

template <class T>
void nms_cuda(const T* boxes, int box_dim, const T* scores, const int64_t* idxs,
              const int64_t* order, int64_t n, const NmsOptions& options, uint64_t* mask,
              uint64_t* removed, int64_t* keep, int64_t* count, std::uintptr_t stream) {
  const cudaStream_t s = as_stream(stream);
  if (n == 0) {
    cuda_check(cudaMemsetAsync(count, 0, sizeof(int64_t), s), "cudaMemsetAsync");
    return;
  }
  if (ceil_div(n, kBits) > 65535)
    throw std::invalid_argument("boxes: CUDA NMS supports at most 4194240 boxes");
  if (box_dim == 5)
    launch<T, 5>(boxes, scores, idxs, order, n, options, mask, removed, keep, count, s);
  else
    launch<T, 4>(boxes, scores, idxs, order, n, options, mask, removed, keep, count, s);
}

template void nms_cuda<float>(const float*, int, const float*, const int64_t*, const int64_t*,
                              int64_t, const NmsOptions&, uint64_t*, uint64_t*, int64_t*,
                              int64_t*, std::uintptr_t);
template void nms_cuda<double>(const double*, int, const double*, const int64_t*,
                               const int64_t*, int64_t, const NmsOptions&, uint64_t*, uint64_t*,
                               int64_t*, int64_t*, std::uintptr_t);

}  // namespace vt_ops
