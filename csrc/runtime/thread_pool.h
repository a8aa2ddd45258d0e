// pyruntime: a persistent pool of worker threads for splitting one layer's work (rows of a weight, or
// samples of a batch) across cores.
//
// Created once per model (threads= at load) and reused by every run: no thread is started or joined
// while running. Between jobs a worker spins (with a pause instruction) for kSpinMicros before it sleeps on
// a condition variable, and the caller spins while the workers finish: a network's layers follow each other
// within microseconds, and waking a sleeping thread costs tens of microseconds on a VM, more than a small
// layer takes (a 90%-pruned 1024 x 1024 layer ran 0.56x as fast on two threads as on one with sleeps alone). run(n, fn) calls fn(0..n-1) on the workers and on the calling thread and returns when
// all calls are done. One run uses the pool at a time; a caller that finds it busy (another thread
// running the same model through its own session) does its tasks alone, so concurrent sessions never
// block each other or deadlock.
//
// Built with PYRT_THREADS=0 (CMake option PYRT_THREADS=OFF, for targets without pthreads) the pool has no
// workers: threads() is 1 whatever was asked, run() calls fn(0..n-1) in order on the caller, and nothing
// of <thread> or <mutex> is compiled in.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#ifndef PYRT_THREADS
#define PYRT_THREADS 1
#endif
#if PYRT_THREADS
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#endif

namespace pyrt::runtime {

class ThreadPool {
 public:
  // `threads` includes the calling thread: threads - 1 workers are started (none for 1).
  explicit ThreadPool(unsigned threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

#if PYRT_THREADS
  unsigned threads() const { return static_cast<unsigned>(workers_.size()) + 1; }
#else
  unsigned threads() const { return 1; }
#endif

  // fn must not throw. Tasks are handed out dynamically, so uneven tasks balance themselves.
  void run(unsigned n, const std::function<void(unsigned)>& fn);

  // The number of hardware threads (at least 1): what threads = 0 means.
  static unsigned hardware_threads();

 private:
#if PYRT_THREADS
  void worker();
  void drain();  // takes tasks of the current job until none is left

  std::vector<std::thread> workers_;
  std::mutex busy_;  // held for the whole of one run()
  std::mutex m_;     // guards sleepers_ and the sleep / wake hand-over
  std::condition_variable wake_;
  const std::function<void(unsigned)>* fn_ = nullptr;
  unsigned n_ = 0;
  std::atomic<unsigned> next_{0}, working_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  unsigned sleepers_ = 0;
#endif
};

}  // namespace pyrt::runtime
