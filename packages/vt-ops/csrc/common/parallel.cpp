#include "common/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#include <unistd.h>

namespace vt_ops {
namespace {

thread_local bool tl_in_parallel = false;

int env_threads(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  try {
    return std::max(0, std::stoi(v));
  } catch (...) {
    return 0;
  }
}

int default_num_threads() {
  if (int n = env_threads("VT_OPS_NUM_THREADS")) return n;
  if (int n = env_threads("OMP_NUM_THREADS")) return n;
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

class Pool {
 public:
  explicit Pool(int nthreads) : nthreads_(nthreads), pid_(getpid()) {
    for (int i = 0; i + 1 < nthreads_; ++i) workers_.emplace_back([this] { worker_loop(); });
  }

  // Joins the workers. Only called from set_num_threads in the owning process.
  void shutdown() {
    std::lock_guard<std::mutex> call_lock(call_mu_);  // let a running parallel_for finish
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_work_.notify_all();
    for (auto& t : workers_) t.join();
  }

  int nthreads() const { return nthreads_; }
  pid_t pid() const { return pid_; }

  void run(int64_t begin, int64_t end, int64_t grain,
           const std::function<void(int64_t, int64_t)>& fn) {
    std::lock_guard<std::mutex> call_lock(call_mu_);
    const int64_t n = end - begin;
    const int64_t target_chunks = static_cast<int64_t>(nthreads_) * 4;
    chunk_ = std::max(grain, (n + target_chunks - 1) / target_chunks);
    num_chunks_ = (n + chunk_ - 1) / chunk_;
    begin_ = begin;
    end_ = end;
    fn_ = &fn;
    error_ = nullptr;
    next_chunk_.store(0);
    {
      std::lock_guard<std::mutex> lk(mu_);
      active_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    cv_work_.notify_all();
    run_chunks();
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_done_.wait(lk, [this] { return active_ == 0; });
    }
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      std::unique_lock<std::mutex> lk(mu_);
      cv_work_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      lk.unlock();
      run_chunks();
      lk.lock();
      if (--active_ == 0) cv_done_.notify_one();
    }
  }

  void run_chunks() {
    tl_in_parallel = true;
    for (;;) {
      const int64_t c = next_chunk_.fetch_add(1);
      if (c >= num_chunks_) break;
      const int64_t b = begin_ + c * chunk_;
      const int64_t e = std::min(end_, b + chunk_);
      try {
        (*fn_)(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lk(error_mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
    tl_in_parallel = false;
  }

  const int nthreads_;
  const pid_t pid_;
  std::vector<std::thread> workers_;
  std::mutex call_mu_, mu_, error_mu_;
  std::condition_variable cv_work_, cv_done_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t begin_ = 0, end_ = 0, chunk_ = 1, num_chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  int active_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

std::mutex g_pool_mu;
Pool* g_pool = nullptr;  // intentionally leaked: workers may outlive static destructors
int g_requested = 0;     // 0: default

Pool& pool() {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  if (g_pool == nullptr || g_pool->pid() != getpid()) {
    // After fork() the child has no worker threads: start a new pool, leak the old one.
    g_pool = new Pool(g_requested > 0 ? g_requested : default_num_threads());
  }
  return *g_pool;
}

}  // namespace

int get_num_threads() {
  if (tl_in_parallel) return 1;
  return pool().nthreads();
}

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  g_requested = n > 0 ? n : 0;
  if (g_pool != nullptr && g_pool->pid() == getpid()) g_pool->shutdown();
  g_pool = nullptr;
}

void parallel_for_impl(int64_t begin, int64_t end, int64_t grain,
                       const std::function<void(int64_t, int64_t)>& fn) {
  if (tl_in_parallel) {
    fn(begin, end);
    return;
  }
  pool().run(begin, end, grain, fn);
}

}  // namespace vt_ops
