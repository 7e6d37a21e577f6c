#include "engine/event_time_merge.h"

#include <algorithm>

namespace cxpulse {

EventTimeMerge::EventTimeMerge(Options options, int32_t partitions) : options_(options) {
  options_.capacity = std::max<size_t>(1, options_.capacity);
  partitions_.assign(static_cast<size_t>(std::max(0, partitions)),
                     Partition{Watermark(options_.allowed_lateness, options_.idle_timeout), Said::kNothing, 0});
}

bool EventTimeMerge::Before(const Held& a, const Held& b) const {
  if (a.time != b.time) return a.time < b.time;  // most comparisons end here, without reading the slots
  const Slot& x = slots_[a.slot];
  const Slot& y = slots_[b.slot];
  if (const int c = x.event_id.compare(y.event_id); c != 0) return c < 0;  // byte-wise
  if (x.partition != y.partition) return x.partition < y.partition;
  return x.offset < y.offset;
}

void EventTimeMerge::Recycle() {
  if (handed_out_ == UINT32_MAX) return;
  free_.push_back(handed_out_);  // within the capacity reserved when the slot was made
  handed_out_ = UINT32_MAX;
}

EventTimeMerge::Outcome EventTimeMerge::Push(int32_t partition, int64_t offset, const cx::v1::InteractionEvent& event,
                                             std::string_view encoded, bool keep, Micros wall_now) {
  Recycle();
  if (partition < 0 || partition >= partitions()) {
    if (keep) ++late_;
    return Outcome::kLate;
  }
  Partition& part = partitions_[static_cast<size_t>(partition)];
  const Micros t = ToMicros(event.occurred_at());
  part.watermark.SetAtEnd(false, wall_now);  // a record: it was not at its end
  // Late for its partition (as the shards judge it), or behind what was
  // released already (a partition that was empty starts with old events):
  // either way it can no longer be put in order.
  if (part.watermark.IsLate(t, wall_now) || t < released_ || (keep && full())) {
    if (keep) ++late_;
    return Outcome::kLate;
  }
  part.watermark.Observe(t, wall_now);
  part.said = Said::kEvents;
  if (!keep) return Outcome::kPassed;

  uint32_t s;
  if (!free_.empty()) {
    s = free_.back();
    free_.pop_back();
  } else {
    s = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
    // Room for every slot in the free list and the heap: releasing never allocates.
    if (free_.capacity() < slots_.size()) free_.reserve(2 * slots_.size());
    if (heap_.capacity() < slots_.size()) heap_.reserve(2 * slots_.size());
  }
  Slot& slot = slots_[s];
  slot.time = t;
  slot.partition = partition;
  slot.offset = offset;
  slot.event_id.assign(event.event_id());
  slot.encoded.assign(encoded.data(), encoded.size());
  heap_.push_back(Held{t, s});
  std::push_heap(heap_.begin(), heap_.end(), [this](const Held& a, const Held& b) { return Before(b, a); });
  return Outcome::kHeld;
}

void EventTimeMerge::MarkAtEnd(int32_t partition, Micros wall_now) {
  if (partition < 0 || partition >= partitions()) return;
  Partition& part = partitions_[static_cast<size_t>(partition)];
  part.watermark.SetAtEnd(true, wall_now);  // its watermark may idle forward now
  if (part.said != Said::kNothing) return;
  part.said = Said::kEmpty;
  part.empty_since = wall_now;
}

void EventTimeMerge::AdvancePartition(int32_t partition, Micros to, Micros wall_now) {
  if (partition < 0 || partition >= partitions()) return;
  Partition& part = partitions_[static_cast<size_t>(partition)];
  part.watermark.AdvanceTo(to, wall_now);
  part.said = Said::kEvents;
}

Micros EventTimeMerge::LowWatermark(Micros wall_now) const {
  Micros low = Watermark::kNone;
  bool any = false;
  for (const Partition& p : partitions_) {
    // It may still bring the oldest event of all: nothing below it is sure.
    if (p.said == Said::kNothing) return Watermark::kNone;
    if (p.said == Said::kEmpty) {
      if (wall_now - p.empty_since < options_.idle_timeout) return Watermark::kNone;
      continue;  // empty for the idle timeout: it holds nothing back
    }
    const Micros wm = p.watermark.Current(wall_now);
    if (!any || wm < low) low = wm;
    any = true;
  }
  return any ? low : Watermark::kNone;
}

const EventTimeMerge::Released* EventTimeMerge::Pop() {
  std::pop_heap(heap_.begin(), heap_.end(), [this](const Held& a, const Held& b) { return Before(b, a); });
  handed_out_ = heap_.back().slot;
  heap_.pop_back();
  const Slot& slot = slots_[handed_out_];
  out_ = Released{slot.partition, slot.offset, slot.time, slot.encoded};
  return &out_;
}

const EventTimeMerge::Released* EventTimeMerge::Next(Micros wall_now) {
  Recycle();
  released_ = std::max(released_, LowWatermark(wall_now));
  if (heap_.empty() || heap_.front().time >= released_) return nullptr;
  return Pop();
}

const EventTimeMerge::Released* EventTimeMerge::NextAtEnd() {
  Recycle();
  if (heap_.empty()) return nullptr;
  const Released* r = Pop();
  released_ = std::max(released_, r->time);
  return r;
}

const EventTimeMerge::Released* EventTimeMerge::NextToMakeRoom() {
  Recycle();
  if (!full()) return nullptr;
  const Released* r = Pop();
  // What comes later below it can no longer be put in order.
  released_ = std::max(released_, r->time);
  ++forced_;
  return r;
}

void EventTimeMerge::LowestHeldOffsets(std::vector<int64_t>* out) const {
  out->assign(partitions_.size(), INT64_MAX);
  for (const Held& held : heap_) {
    const Slot& slot = slots_[held.slot];
    int64_t& lowest = (*out)[static_cast<size_t>(slot.partition)];
    lowest = std::min(lowest, slot.offset);
  }
}

}  // namespace cxpulse
