// PartitionCounts: one partition's own share of a KPI aggregator's bucket
// ring, kept beside the shard's sum when changes are tracked, so that share
// can be checkpointed, restored into the sum, or taken out of it when the
// partition moves. Plain values, not atomics: only the shard thread reads
// them. Cells are numbered in the order the partition first uses them, so
// a partition pays for the cells it counts in, not for every label.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace cxpulse {

class PartitionCounts {
 public:
  static constexpr int64_t kNoBucket = std::numeric_limits<int64_t>::min() / 2;

  struct Bucket {
    int64_t id = kNoBucket;
    bool dirty = false;    // changed since it was last checkpointed
    bool written = false;  // its record is in the changelog
    std::vector<double> values;  // local cell * counts_per_cell + count
  };

  // `ring` and `cells` as the aggregator's; `counts_per_cell` values per cell.
  PartitionCounts(int64_t ring, size_t cells, size_t counts_per_cell)
      : ring_(ring), per_cell_(counts_per_cell), local_(cells, kNoCell), buckets_(static_cast<size_t>(ring)) {}

  // The counts of `cell` in bucket `id`, to add to: the bucket is dirty, and
  // made empty first if its slot held an older bucket. Allocates only the
  // first time the partition counts in a cell.
  double* Values(int64_t id, size_t cell) {
    const size_t local = Local(cell);
    Bucket& b = buckets_[SlotOf(id)];
    if (b.id != id) {
      if (b.written) gone_.push_back(b.id);
      b.id = id;
      b.written = false;
      std::fill(b.values.begin(), b.values.end(), 0);
    }
    b.dirty = true;
    return &b.values[local * per_cell_];
  }

  // Slot `slot` of the ring.
  Bucket& bucket(int64_t slot) { return buckets_[static_cast<size_t>(slot)]; }
  size_t SlotOf(int64_t id) const { return static_cast<size_t>(((id % ring_) + ring_) % ring_); }
  // The aggregator's cell of local cell `local`, and how many there are.
  size_t cell(size_t local) const { return cells_[local]; }
  size_t local_cells() const { return cells_.size(); }
  // Buckets whose records are in the changelog but that left the ring since
  // the last checkpoint; the caller writes their tombstones and clears this.
  std::vector<int64_t>& gone() { return gone_; }

 private:
  static constexpr uint32_t kNoCell = std::numeric_limits<uint32_t>::max();

  size_t Local(size_t cell) {
    if (local_[cell] == kNoCell) {
      local_[cell] = static_cast<uint32_t>(cells_.size());
      cells_.push_back(cell);
      for (Bucket& b : buckets_) b.values.resize(cells_.size() * per_cell_);
    }
    return local_[cell];
  }

  const int64_t ring_;
  const size_t per_cell_;
  std::vector<uint32_t> local_;  // aggregator cell -> local cell
  std::vector<size_t> cells_;    // local cell -> aggregator cell
  std::vector<Bucket> buckets_;  // by slot, as the aggregator's ring
  std::vector<int64_t> gone_;
};

}  // namespace cxpulse
