#include "runtime/thread_pool.h"

#include <algorithm>

namespace pyrt::runtime {

#if !PYRT_THREADS

ThreadPool::ThreadPool(unsigned) {}
ThreadPool::~ThreadPool() = default;
unsigned ThreadPool::hardware_threads() { return 1; }
void ThreadPool::run(unsigned n, const std::function<void(unsigned)>& fn) {
  for (unsigned i = 0; i < n; ++i) fn(i);
}

#else

ThreadPool::ThreadPool(unsigned threads) {
  threads = std::max(1u, threads);
  workers_.reserve(threads - 1);
  for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this] { worker(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

unsigned ThreadPool::hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

void ThreadPool::drain() {
  for (;;) {
    unsigned i;
    {
      std::lock_guard<std::mutex> lock(m_);
      if (next_ >= n_) return;
      i = next_++;
    }
    (*fn_)(i);
  }
}

void ThreadPool::worker() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(m_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    drain();
    {
      std::lock_guard<std::mutex> lock(m_);
      if (--working_ == 0) done_.notify_one();
    }
  }
}

void ThreadPool::run(unsigned n, const std::function<void(unsigned)>& fn) {
  if (n == 0) return;
  std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
  if (workers_.empty() || n == 1 || !busy.owns_lock()) {  // alone: no pool, one task, or the pool is busy
    for (unsigned i = 0; i < n; ++i) fn(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(m_);
    fn_ = &fn;
    n_ = n;
    next_ = 0;
    working_ = static_cast<unsigned>(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  drain();
  std::unique_lock<std::mutex> lock(m_);
  done_.wait(lock, [&] { return working_ == 0; });  // every worker has left drain(): fn may go
  fn_ = nullptr;
}

#endif  // PYRT_THREADS

}  // namespace pyrt::runtime
