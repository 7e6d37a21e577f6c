// Fixed-width blocks by number, for per-key state (engine/engine.cc,
// "Storage for per-key state").
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace cxpulse {

// Blocks of `width` Ts by number, carved from chunks: a block never moves, a
// freed block is handed out again before a new one is carved, and a block has
// no malloc header of its own. Chunks double from 32 blocks up to 65536, so a
// pool that grows to N blocks allocates O(log N) times, and a pool whose size
// wanders around a level it has reached once allocates no more. A block's
// number is its chunk and its place there (16 bits each): finding it is a
// shift and a mask.
template <typename T>
class Slab {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  explicit Slab(uint32_t width = 1) : width_(std::max<uint32_t>(1, width)) {}

  uint32_t width() const { return width_; }
  T* Block(uint32_t b) { return &chunks_[b >> kPlaceBits][(b & kPlaceMask) * width_]; }
  const T* Block(uint32_t b) const { return &chunks_[b >> kPlaceBits][(b & kPlaceMask) * width_]; }

  uint32_t Take() {
    if (!free_.empty()) {
      const uint32_t b = free_.back();
      free_.pop_back();
      return b;
    }
    if (chunks_.empty() || carved_in_last_ == ChunkBlocks(chunks_.size() - 1)) {
      const uint32_t blocks = ChunkBlocks(chunks_.size());
      chunks_.push_back(std::make_unique<T[]>(size_t{blocks} * width_));
      carved_in_last_ = 0;
      total_ += blocks;
      // Room to free every block carved, so that Give never allocates.
      if (free_.capacity() < total_) free_.reserve(std::max<size_t>(total_, 2 * free_.capacity()));
    }
    return static_cast<uint32_t>(chunks_.size() - 1) << kPlaceBits | carved_in_last_++;
  }
  void Give(uint32_t b) { free_.push_back(b); }  // within the capacity reserved by Take

  // Block b's place in carving order: dense from 0, for a bit per block.
  static size_t Ordinal(uint32_t b) {
    const uint32_t chunk = b >> kPlaceBits;
    const size_t first = chunk < 11 ? 32 * ((size_t{1} << chunk) - 1) : 32 * size_t{2047} + ((size_t{chunk} - 11) << kPlaceBits);
    return first + (b & kPlaceMask);
  }

 private:
  static constexpr uint32_t kPlaceBits = 16;
  static constexpr uint32_t kPlaceMask = (1u << kPlaceBits) - 1;
  static uint32_t ChunkBlocks(size_t chunk) { return chunk >= 11 ? 1u << kPlaceBits : 32u << chunk; }

  std::vector<std::unique_ptr<T[]>> chunks_;
  std::vector<uint32_t> free_;
  uint32_t width_;
  uint32_t carved_in_last_ = 0;
  size_t total_ = 0;  // blocks in all chunks
};

}  // namespace cxpulse
