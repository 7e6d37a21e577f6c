// Time-ordered rings of (time, event id) entries in size classes, for
// per-key state (engine/engine.cc, "Storage for per-key state").
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "common/time.h"
#include "engine/slab.h"
#include "engine/text.h"

namespace cxpulse {

struct RingEntry {
  Micros time = 0;
  Text<16> event_id;
};

// Ring entries of one rule in one partition, in size classes: a key's ring
// starts in a one-entry block, moves to a block of `base` entries at its
// second entry, then doubles while it must hold more, up to `most`. Most
// keys never leave the first (a customer with one contact in the window);
// a count rule's ring holds every event of its window up to `most`, so its
// {count} is the true number (rules/README.md).
class Rings {
 public:
  explicit Rings(uint32_t base = 1, uint32_t most = 1) {
    classes_.emplace_back(1);
    base = std::max<uint32_t>(1, base);
    most = std::max(base, most);
    for (uint32_t w = base;; w = std::min(most, 2 * w)) {
      classes_.emplace_back(w);
      if (w == most) break;
    }
  }
  uint32_t classes() const { return static_cast<uint32_t>(classes_.size()); }
  Slab<RingEntry>& Class(uint32_t c) { return classes_[c]; }
  const Slab<RingEntry>& Class(uint32_t c) const { return classes_[c]; }
  // The blocks of `base` entries (a sequence's evidence, one per step).
  Slab<RingEntry>& base() { return classes_[1]; }
  uint32_t most() const { return classes_.back().width(); }

 private:
  std::vector<Slab<RingEntry>> classes_;
};

// Up to the largest class's width of (time, event id) entries, oldest first,
// kept sorted: events may arrive out of order within the allowed lateness.
struct Ring {
  // block: class << 28 | block number; a block number is below 2^28 while
  // a slab has fewer than 4096 chunks, some 260 million blocks.
  static constexpr uint32_t kClassShift = 28;
  static constexpr uint32_t kBlockMask = (1u << kClassShift) - 1;
  uint32_t block = Slab<RingEntry>::kNone;
  uint16_t head = 0;
  uint16_t size : 15 = 0;
  // An entry still in the window was forgotten to make room, so `size` is a
  // lower bound. Cleared when the oldest entry leaves the window: the
  // forgotten ones were older still.
  uint16_t lossy : 1 = 0;

  uint32_t ClassOf() const { return block >> kClassShift; }
  uint32_t Capacity(const Rings& r) const { return r.Class(ClassOf()).width(); }
  RingEntry* Slots(Rings& r) const { return r.Class(ClassOf()).Block(block & kBlockMask); }
  RingEntry& At(Rings& r, uint32_t i) const { return Slots(r)[(head + i) % Capacity(r)]; }
  void PopOldest(Rings& r) {
    head = static_cast<uint16_t>((head + 1) % Capacity(r));
    size = static_cast<uint16_t>(size - 1);
    lossy = 0;
  }
  void Push(Rings& r, Micros t, std::string_view id);
  // After entries left the window: a ring of the doubled classes at a
  // quarter full or less moves down a class, so the blocks of each class
  // follow how many keys need them now, not the most any key ever did.
  void Fit(Rings& r);
  void MoveTo(Rings& r, uint32_t to_class);
  void Release(Rings& r) {
    if (block == Slab<RingEntry>::kNone) return;
    r.Class(ClassOf()).Give(block & kBlockMask);
    *this = Ring{};
  }
};
static_assert(sizeof(Ring) == 8);

inline void Ring::MoveTo(Rings& r, uint32_t to_class) {
  const uint32_t to_block = r.Class(to_class).Take();
  RingEntry* to = r.Class(to_class).Block(to_block);
  for (uint32_t i = 0; i < size; ++i) std::swap(to[i], At(r, i));  // the ids keep their buffers
  r.Class(ClassOf()).Give(block & kBlockMask);
  block = to_class << kClassShift | to_block;
  head = 0;
}

inline void Ring::Fit(Rings& r) {
  if (ClassOf() >= 2 && size <= Capacity(r) / 4) MoveTo(r, ClassOf() - 1);
}

inline void Ring::Push(Rings& r, Micros t, std::string_view id) {
  if (block == Slab<RingEntry>::kNone) block = r.Class(0).Take();
  if (size == Capacity(r) && ClassOf() + 1 < r.classes()) MoveTo(r, ClassOf() + 1);
  const uint32_t cap = Capacity(r);
  RingEntry* slots = Slots(r);
  RingEntry& slot = slots[(head + size) % cap];
  slot.time = t;
  slot.event_id.Assign(id);
  if (size < cap) {
    size = static_cast<uint16_t>(size + 1);
  } else {
    head = static_cast<uint16_t>((head + 1) % cap);
    lossy = 1;
  }
  for (uint32_t i = size - 1u; i > 0 && slots[(head + i - 1) % cap].time > slots[(head + i) % cap].time; --i) {
    std::swap(slots[(head + i - 1) % cap], slots[(head + i) % cap]);
  }
}

}  // namespace cxpulse
