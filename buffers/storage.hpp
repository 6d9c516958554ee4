#pragma once
// The control block behind every Buffer: a refcount and where the bytes live.

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace flowrelay::buffers {

class Pool;

/// Called once, when the last Buffer viewing external memory drops.
using ReleaseFn = void (*)(void* context, std::byte* data, std::size_t size) noexcept;

/// 64 bytes, one per chunk, kept apart from the payload. Internal: use Buffer.
struct alignas(64) Storage {
  std::atomic<std::uint32_t> refs{0};
  std::uint8_t size_class = 0;
  std::byte* data = nullptr;
  std::size_t capacity = 0;
  Pool* owner = nullptr;
  Storage* next = nullptr;         // free-list link while pooled
  ReleaseFn release_fn = nullptr;  // external memory only
  void* release_ctx = nullptr;
};
static_assert(sizeof(Storage) == 64);

}  // namespace flowrelay::buffers
