#include "core/engine.h"

#include <ATen/Parallel.h>

#include <future>

#include "core/error.h"

namespace stenosis {

int DefaultNumThreads() {
  unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : static_cast<int>(cores);
}

Engine& Engine::Instance() {
  static Engine* engine = new Engine(DefaultNumThreads());
  return *engine;
}

Engine& Engine::Data() {
  static Engine* engine = new Engine(1);
  return *engine;
}

Engine::Engine(int threads) : threads_(threads) {
  std::thread thread([this] { Loop(); });
  thread_id_ = thread.get_id();
  thread.detach();
}

void Engine::Submit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  ready_.notify_one();
}

void Engine::RunSync(const std::function<void()>& job) {
  if (std::this_thread::get_id() == thread_id_) {
    job();
    return;
  }
  std::promise<void> done;
  auto result = done.get_future();
  Submit([&] {
    try {
      job();
      done.set_value();
    } catch (...) {
      done.set_exception(std::current_exception());
    }
  });
  result.get();
}

void Engine::SetNumThreads(int threads) {
  if (threads < 1)
    throw Error("ERR_INVALID_ARG", "threads must be a positive integer, got " + std::to_string(threads));
  std::lock_guard<std::mutex> lock(mutex_);
  threads_ = threads;
  threads_dirty_ = true;
}

int Engine::NumThreads() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return threads_;
}

void Engine::Loop() {
  for (;;) {
    std::function<void()> job;
    int threads = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      ready_.wait(lock, [this] { return !jobs_.empty(); });
      job = std::move(jobs_.front());
      jobs_.pop_front();
      if (threads_dirty_) {
        threads = threads_;
        threads_dirty_ = false;
      }
    }
    if (threads > 0) at::set_num_threads(threads);
    // Jobs report their own errors; one that throws anyway must not end the engine.
    try {
      job();
    } catch (...) {
    }
  }
}

}  // namespace stenosis
