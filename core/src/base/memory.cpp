// Tracking CPU allocator: wraps whatever allocator LibTorch had and counts live bytes and
// the peak. Each allocation carries a small context (the wrapped DataPtr and its size) so
// the deleter can both free through the original allocator and subtract the bytes.
#include "base/memory.hpp"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <torch/version.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <string>

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define ATTNLAB_ALLOCATE_CONST
#define ATTNLAB_ALLOCATOR_HAS_COPY_DATA 1
#else
#define ATTNLAB_ALLOCATE_CONST const
#define ATTNLAB_ALLOCATOR_HAS_COPY_DATA 0
#endif

namespace attnlab::memory {
namespace {

std::atomic<std::int64_t> live_bytes{0};
std::atomic<std::int64_t> peak_bytes{0};

void raise_peak(std::int64_t now) {
  std::int64_t seen = peak_bytes.load(std::memory_order_relaxed);
  while (now > seen && !peak_bytes.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
  }
}

struct TrackedAllocation {
  c10::DataPtr inner;
  std::int64_t bytes;
};

void release(void* context) {
  auto* allocation = static_cast<TrackedAllocation*>(context);
  live_bytes.fetch_sub(allocation->bytes, std::memory_order_relaxed);
  delete allocation;  // frees through the wrapped allocator's deleter
}

class TrackingAllocator final : public c10::Allocator {
 public:
  explicit TrackingAllocator(c10::Allocator* wrapped) : wrapped_(wrapped) {}

  c10::DataPtr allocate(size_t n) ATTNLAB_ALLOCATE_CONST override {
    c10::DataPtr inner = wrapped_->allocate(n);
    void* data = inner.get();
    const auto device = inner.device();
    raise_peak(live_bytes.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed) +
               static_cast<std::int64_t>(n));
    auto* allocation = new TrackedAllocation{std::move(inner), static_cast<std::int64_t>(n)};
    return {data, allocation, &release, device};
  }

  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }

#if ATTNLAB_ALLOCATOR_HAS_COPY_DATA
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
#endif

 private:
  c10::Allocator* wrapped_;
};

std::once_flag install_once;
bool installed = false;

std::int64_t read_status_kib(const char* key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(key) + ":";
  while (std::getline(status, line))
    if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size()));
  return 0;
}

}  // namespace

void install_cpu_tracker() {
  std::call_once(install_once, [] {
    static TrackingAllocator tracker(c10::GetCPUAllocator());
    c10::SetCPUAllocator(&tracker, /*priority=*/100);
    installed = true;
  });
}

bool cpu_tracker_installed() { return installed; }
std::int64_t cpu_current_bytes() { return live_bytes.load(); }
std::int64_t cpu_peak_bytes() { return peak_bytes.load(); }
void reset_cpu_peak() { peak_bytes.store(live_bytes.load()); }

std::int64_t peak_rss_bytes() { return read_status_kib("VmHWM") * 1024; }

bool reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  if (!clear) return false;
  clear << "5";
  return static_cast<bool>(clear.flush());
}

}  // namespace attnlab::memory

#ifdef ATTNLAB_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

namespace attnlab::memory {
namespace {
// StatType::AGGREGATE is 0 in every LibTorch; the enum itself moved between namespaces
// (CUDACachingAllocator in 1.13/2.0, c10::CachingAllocator, then c10::CachingDeviceAllocator).
constexpr std::size_t kAggregateStat = 0;
auto aggregate_allocated() {
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device());
  return stats.allocated_bytes[kAggregateStat];
}
// A CUDA LibTorch on a machine without a GPU (CI's CUDA build): the allocator's calls would
// throw "no CUDA-capable device", and nothing was allocated there, so 0 and no-op.
bool have_device() { return c10::cuda::device_count() > 0; }
}  // namespace
std::int64_t cuda_current_bytes() { return have_device() ? aggregate_allocated().current : 0; }
std::int64_t cuda_peak_bytes() { return have_device() ? aggregate_allocated().peak : 0; }
void reset_cuda_peak() {
  if (have_device()) c10::cuda::CUDACachingAllocator::resetPeakStats(c10::cuda::current_device());
}
}  // namespace attnlab::memory
#else
namespace attnlab::memory {
std::int64_t cuda_current_bytes() { return 0; }
std::int64_t cuda_peak_bytes() { return 0; }
void reset_cuda_peak() {}
}  // namespace attnlab::memory
#endif
