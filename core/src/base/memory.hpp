#pragma once
// Exact peak tensor memory on CPU: a tracking allocator wrapped around LibTorch's CPU
// allocator (c10::SetCPUAllocator), counting every byte of every tensor allocation.
// It does not see buffers allocated inside OpenBLAS/oneDNN; peak RSS covers those.
// On CUDA, use the caching allocator's own peak statistics (cuda_peak_bytes()).
#include <cstddef>
#include <cstdint>

namespace attnlab::memory {

// Installs the tracker once (idempotent; thread-safe). Later CPU tensors are counted.
void install_cpu_tracker();
bool cpu_tracker_installed();

std::int64_t cpu_current_bytes();
std::int64_t cpu_peak_bytes();
// Sets the peak to the current live bytes, so the next peak is measured from here.
void reset_cpu_peak();

// Peak resident set size of the process (VmHWM), and a reset via /proc/self/clear_refs
// (returns false where the kernel refuses it).
std::int64_t peak_rss_bytes();
bool reset_peak_rss();

// CUDA caching allocator: live bytes now, and the peak since the last reset (0 without CUDA).
std::int64_t cuda_current_bytes();
std::int64_t cuda_peak_bytes();
void reset_cuda_peak();

}  // namespace attnlab::memory
