// A small persistent thread pool for CPU kernels.
//
// Why not OpenMP: the torch wheels bundle their own OpenMP runtime, and a
// second copy in the same process (or a fork after a parallel region, as
// DataLoader workers do) is a known source of hangs. This pool is fork-safe:
// a child process notices the pid change and starts a fresh pool.
#pragma once

#include <cstdint>
#include <functional>

namespace vt_ops {

// Number of threads CPU kernels use (including the calling thread).
int get_num_threads();
// Set it; n <= 0 restores the default (VT_OPS_NUM_THREADS, OMP_NUM_THREADS,
// else the CPUs this process may run on).
void set_num_threads(int n);

void parallel_for_impl(int64_t begin, int64_t end, int64_t grain,
                       const std::function<void(int64_t, int64_t)>& fn);

// Calls fn(b, e) on disjoint sub-ranges covering [begin, end). Ranges shorter
// than `grain` run on the calling thread. Nested calls run serially.
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& fn) {
  if (end <= begin) return;
  if (grain < 1) grain = 1;
  if (end - begin <= grain || get_num_threads() == 1) {
    fn(begin, end);
    return;
  }
  parallel_for_impl(begin, end, grain, std::function<void(int64_t, int64_t)>(std::ref(fn)));
}

}  // namespace vt_ops
