#include "runtime/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace pyrt::runtime {

#if !PYRT_THREADS

ThreadPool::ThreadPool(unsigned) {}
ThreadPool::~ThreadPool() = default;
unsigned ThreadPool::hardware_threads() { return 1; }
void ThreadPool::run(unsigned n, const std::function<void(unsigned)>& fn) {
  for (unsigned i = 0; i < n; ++i) fn(i);
}

#else

namespace {

constexpr int64_t kSpinMicros = 200;  // a worker's spin before it sleeps; the caller's before it yields

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#else
  std::this_thread::yield();
#endif
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ThreadPool::ThreadPool(unsigned threads) {
  threads = std::max(1u, threads);
  workers_.reserve(threads - 1);
  for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this] { worker(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

unsigned ThreadPool::hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

void ThreadPool::drain() {
  for (unsigned i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n_;) (*fn_)(i);
}

void ThreadPool::worker() {
  uint64_t seen = 0;
  for (;;) {
    // spin for a new job (checking the clock every 64 pauses), then sleep until one comes
    int64_t until = -1;
    for (unsigned spins = 0;; ++spins) {
      if (stop_.load(std::memory_order_acquire)) return;
      if (generation_.load(std::memory_order_acquire) != seen) break;
      if (spins % 64 == 63) {
        const int64_t t = now_us();
        if (until < 0) {
          until = t + kSpinMicros;
        } else if (t > until) {
          std::unique_lock<std::mutex> lock(m_);
          ++sleepers_;
          wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
          --sleepers_;
          until = -1;
        }
      }
      cpu_relax();
    }
    seen = generation_.load(std::memory_order_acquire);
    drain();
    working_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(unsigned n, const std::function<void(unsigned)>& fn) {
  if (n == 0) return;
  std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
  if (workers_.empty() || n == 1 || !busy.owns_lock()) {  // alone: no pool, one task, or the pool is busy
    for (unsigned i = 0; i < n; ++i) fn(i);
    return;
  }
  // every worker has left the previous job (working_ reached 0 before the last run returned)
  fn_ = &fn;
  n_ = n;
  next_.store(0, std::memory_order_relaxed);
  working_.store(static_cast<unsigned>(workers_.size()), std::memory_order_relaxed);
  bool sleeping;
  {
    // under m_: a worker about to sleep either sees the new generation in its wait predicate or is
    // counted in sleepers_ and notified
    std::lock_guard<std::mutex> lock(m_);
    generation_.fetch_add(1, std::memory_order_release);
    sleeping = sleepers_ > 0;
  }
  if (sleeping) wake_.notify_all();
  drain();
  // every worker has left drain(), so fn may go: spin, then yield the core to them
  const int64_t until = now_us() + kSpinMicros;
  for (unsigned spins = 0; working_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins % 64 == 63 && now_us() > until) std::this_thread::yield();
    else cpu_relax();
  }
  fn_ = nullptr;
}

#endif  // PYRT_THREADS

}  // namespace pyrt::runtime
