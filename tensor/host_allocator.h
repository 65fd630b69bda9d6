// Host memory for CPU tensors: 64-byte aligned blocks, with large blocks (>= 32 MiB) kept in a
// cache when freed and handed out again for the next request of the same rounded size; smaller
// blocks come from glibc's heap, with its thresholds fixed so that it keeps freed memory for reuse
// instead of mapping and unmapping it (host_allocator.cpp).
//
// Why: glibc serves blocks above its mmap threshold (at most 32 MiB) with a fresh mmap each time,
// so every forward pass of a backbone at batch 64 page-faults and zeroes its activations again.
// Measured on ResNet-50, batch 64, one thread: 6.57 s without the cache, 4.39 s with it
// (bench/RESULTS.md). The cache holds at most CORTEX_HOST_CACHE_MB megabytes (default 4096);
// beyond that, freed blocks go back to the system.
#pragma once
#include <cstddef>

namespace cortex::host {

void* allocate(size_t nbytes);             // never null: throws cortex::Error when out of memory
void deallocate(void* p, size_t nbytes);   // nbytes as given to allocate
size_t cached_bytes();                     // bytes held in the cache, not in use
void empty_cache();                        // returns every cached block to the system

}  // namespace cortex::host
