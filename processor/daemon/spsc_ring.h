// SpscRing: a bounded single-producer/single-consumer queue, the only way
// work crosses between the control thread and a shard. One thread calls
// TryPush, one other thread calls TryPop; no locks.
//
// Memory ordering (after rigtorp/SPSCQueue): the producer writes the slot,
// then publishes it with a release store of `tail_`; the consumer's acquire
// load of `tail_` makes the slot's contents visible before it reads them.
// Symmetrically the consumer releases a slot with a release store of
// `head_`. Each side caches the other's index and re-reads the shared one
// only when the cache says the ring looks full (or empty), so the common
// case touches no shared cache line. Indices sit on their own cache lines.
#pragma once

#include <atomic>
#include <cstddef>
#include <new>
#include <optional>
#include <utility>
#include <vector>

namespace cxpulse {

template <typename T>
class SpscRing {
 public:
  explicit SpscRing(size_t capacity) : slots_(capacity + 1) {}

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  // Producer thread only. False when full, and then `value` is left as it
  // was, so the caller can retry with the same object or drop it.
  [[nodiscard]] bool TryPush(T&& value) {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    const size_t next = tail + 1 == slots_.size() ? 0 : tail + 1;
    if (next == head_cache_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (next == head_cache_) return false;
    }
    slots_[tail] = std::move(value);
    tail_.store(next, std::memory_order_release);
    return true;
  }

  // Consumer thread only.
  [[nodiscard]] std::optional<T> TryPop() {
    const size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_cache_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (head == tail_cache_) return std::nullopt;
    }
    std::optional<T> value(std::move(slots_[head]));
    slots_[head] = T();
    head_.store(head + 1 == slots_.size() ? 0 : head + 1, std::memory_order_release);
    return value;
  }

 private:
  static constexpr size_t kLine = 64;
  std::vector<T> slots_;
  alignas(kLine) std::atomic<size_t> head_{0};  // written by the consumer
  alignas(kLine) size_t tail_cache_ = 0;        // the consumer's view of tail_
  alignas(kLine) std::atomic<size_t> tail_{0};  // written by the producer
  alignas(kLine) size_t head_cache_ = 0;        // the producer's view of head_
};

}  // namespace cxpulse
