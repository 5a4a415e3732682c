#include "core/cpu_cache.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/error.h"

// libtorch 2.3 made c10::Allocator::allocate non-const and added the pure virtual copy_data.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define STENOSIS_ALLOCATE_CONST
#define STENOSIS_ALLOCATOR_HAS_COPY_DATA 1
#else
#define STENOSIS_ALLOCATE_CONST const
#define STENOSIS_ALLOCATOR_HAS_COPY_DATA 0
#endif

namespace stenosis {
namespace {

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(size_t limit) : limit_(limit) {}

  c10::DataPtr allocate(size_t nbytes) STENOSIS_ALLOCATE_CONST override {
    if (nbytes < kMinCachedBytes) {
      void* data = c10::alloc_cpu(nbytes);
      return {data, data, &c10::free_cpu, c10::Device(c10::DeviceType::CPU)};
    }
    void* data = Instance().AllocateLarge(nbytes);
    return {data, data, &Free, c10::Device(c10::DeviceType::CPU)};
  }

  // Free tells the two kinds of block apart, so raw allocations of any size can share it.
  c10::DeleterFnPtr raw_deleter() const override { return &Free; }

#if STENOSIS_ALLOCATOR_HAS_COPY_DATA
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
#endif

  static CachingCpuAllocator& Instance() {
    // Never destroyed: tensors may outlive static destruction at exit.
    static auto* allocator = new CachingCpuAllocator(DefaultCpuCacheLimit());
    return *allocator;
  }

  void SetLimit(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = bytes;
    TrimLocked(limit_);
  }

  void Empty() {
    std::lock_guard<std::mutex> lock(mutex_);
    TrimLocked(0);
  }

  CpuCacheStats Stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    CpuCacheStats stats;
    stats.limit_bytes = limit_;
    stats.cached_bytes = cached_bytes_;
    stats.blocks = by_size_.size();
    stats.hits = hits_;
    stats.misses = misses_;
    return stats;
  }

 private:
  // Free blocks in the order they were freed (front: least recently), indexed by size for best-fit lookup.
  using Lru = std::list<std::pair<size_t, void*>>;

  void* AllocateLarge(size_t nbytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto found = by_size_.lower_bound(nbytes);
      if (found != by_size_.end() && found->first <= nbytes + nbytes / 4) {
        void* data = found->second->second;
        cached_bytes_ -= found->first;
        lru_.erase(found->second);
        by_size_.erase(found);
        ++hits_;
        return data;
      }
      ++misses_;
    }
    void* data = nullptr;
    try {
      data = c10::alloc_cpu(nbytes);
    } catch (const c10::Error&) {
      // Out of memory with blocks still kept: give them back and try once more (throws the same error if
      // that is not enough).
      Empty();
      data = c10::alloc_cpu(nbytes);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    sizes_[data] = nbytes;
    return data;
  }

  static void Free(void* data) {
    if (data == nullptr) return;
    auto& self = Instance();
    std::unique_lock<std::mutex> lock(self.mutex_);
    auto size = self.sizes_.find(data);
    if (size == self.sizes_.end()) {
      lock.unlock();
      c10::free_cpu(data);  // a small block
      return;
    }
    const size_t nbytes = size->second;
    if (nbytes > self.limit_) {
      self.sizes_.erase(size);
      lock.unlock();
      c10::free_cpu(data);
      return;
    }
    self.TrimLocked(self.limit_ - nbytes);
    self.lru_.emplace_back(nbytes, data);
    self.by_size_.emplace(nbytes, std::prev(self.lru_.end()));
    self.cached_bytes_ += nbytes;
  }

  // Returns least recently freed blocks until at most `keep` free bytes remain.
  void TrimLocked(size_t keep) {
    while (cached_bytes_ > keep && !lru_.empty()) {
      const auto [nbytes, data] = lru_.front();
      auto range = by_size_.equal_range(nbytes);
      for (auto it = range.first; it != range.second; ++it) {
        if (it->second == lru_.begin()) {
          by_size_.erase(it);
          break;
        }
      }
      lru_.pop_front();
      sizes_.erase(data);
      cached_bytes_ -= nbytes;
      c10::free_cpu(data);
    }
  }

  mutable std::mutex mutex_;
  size_t limit_;
  size_t cached_bytes_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  Lru lru_;
  std::multimap<size_t, Lru::iterator> by_size_;
  std::unordered_map<void*, size_t> sizes_;  // every large block this allocator made, free or in use
};

std::once_flag installed_once;
std::atomic<bool> installed{false};

// The memory this process may use: physical memory, or the cgroup's limit when a container sets a lower one
// (kept blocks stay resident, so they count against it). 0 when unknown.
size_t AvailableMemory() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  size_t memory = pages > 0 && page_size > 0 ? static_cast<size_t>(pages) * page_size : 0;
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream file(path);
    unsigned long long limit = 0;
    // cgroup v2 writes "max" when there is no limit, which does not parse as a number.
    if (file >> limit && limit > 0 && (memory == 0 || limit < memory)) memory = static_cast<size_t>(limit);
  }
  return memory;
}

}  // namespace

size_t DefaultCpuCacheLimit() {
  const char* text = std::getenv("STENOSIS_CPU_CACHE_MB");
  if (text != nullptr && *text != '\0') {
    const std::string value(text);
    const bool digits = value.find_first_not_of("0123456789") == std::string::npos;
    const size_t max_mb = std::numeric_limits<size_t>::max() >> 20;
    if (!digits || value.size() > 12 || std::stoull(value) > max_mb) {
      throw Error(
          "ERR_INVALID_ARG",
          "STENOSIS_CPU_CACHE_MB must be a whole number of MiB (0 turns the cache off), got '" + value + "'");
    }
    return static_cast<size_t>(std::stoull(value)) << 20;
  }
  const size_t memory = AvailableMemory();
  const size_t cap = size_t{8} << 30;
  return memory == 0 ? cap : std::min(memory / 4, cap);
}

void InstallCpuCache() {
  std::call_once(installed_once, [] {
    c10::SetCPUAllocator(&CachingCpuAllocator::Instance(), /*priority=*/1);
    installed = true;
  });
}

void SetCpuCacheLimit(size_t bytes) { CachingCpuAllocator::Instance().SetLimit(bytes); }

CpuCacheStats GetCpuCacheStats() {
  CpuCacheStats stats = CachingCpuAllocator::Instance().Stats();
  stats.installed = installed;
  return stats;
}

}  // namespace stenosis
