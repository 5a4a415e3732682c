// One dedicated thread that runs every libtorch job of the process, in submission order.
//
// Why one thread: libtorch's OpenMP team and allocator caches are per calling thread. A training step that
// hops between libuv's pool threads spins up several teams and runs markedly slower than the same step in
// Python; pinned to one long-lived thread it matches Python. The thread count is set on this thread (OpenMP's
// setting is per thread), before the first job runs.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace stenosis {

class Engine {
 public:
  // The engine of all model work (forward, backward, optimizer, checkpoints); started on first use and never
  // destroyed (its thread idles on a condition variable).
  static Engine& Instance();
  // A second engine for data preparation (preprocessing, augmentation), so that the next batch is prepared
  // while the current one trains. One intra-op thread by default: it should not compete with the model.
  static Engine& Data();

  void Submit(std::function<void()> job);
  // Runs job on the engine thread and waits for it; exceptions propagate to the caller.
  void RunSync(const std::function<void()>& job);

  // Intra-op threads for libtorch; applied on the engine thread before the next job.
  void SetNumThreads(int threads);
  int NumThreads() const;

 private:
  explicit Engine(int threads);
  void Loop();

  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  int threads_ = 0;
  bool threads_dirty_ = true;
  std::thread::id thread_id_;
};

// Number of threads used when the user sets none: the machine's cores.
int DefaultNumThreads();

}  // namespace stenosis
