// EventTimeMerge: the events of N partitions as one stream in event-time
// order, for the centre-wide rules (rule_set.h: RuleScope::kCentre), which
// must see the whole topic in the order (occurred_at, event_id) whatever the
// partition layout. Each partition keeps its own Watermark; an event is held
// until every partition that can still deliver something older has a
// watermark above it, then released in order. One thread owns a merge.
//
// Which partitions hold the release back: one that has said nothing yet
// holds back everything; so does one at its end before its first event, for
// the idle timeout of wall clock (any partition may still bring events
// older than another's: the topic's producers run on), then nothing; one
// that has had events holds back what is at or above its watermark, which
// follows the wall clock once it has been idle (Watermark). So a quiet or
// empty partition delays centre findings by the idle timeout, no more, and
// what it brings after that and older than what went is late, as for the
// shards' idle partitions.
//
// Held events are kept in their wire form: the daemon has it already (the
// record's payload), the caller decodes a released one (daemon: its
// EventDecoder), and copying bytes into a slot's string reuses the slot's
// buffer. A slot holding a decoded InteractionEvent instead would allocate on
// every copy: protobuf's Clear() deletes the body and Timestamp
// sub-messages that CopyFrom then makes again (tests/engine/
// engine_alloc_test.cc measures both). Once warm (slots and heap at the
// most ever held), pushing and releasing allocate nothing; at most
// `capacity` events are held: beyond it, the oldest is released early.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"
#include "cx/v1/event.pb.h"
#include "engine/watermark.h"

namespace cxpulse {

class EventTimeMerge final {
 public:
  struct Options {
    Micros allowed_lateness = 30 * kMicrosPerSecond;  // per partition, as the shards have it
    Micros idle_timeout = 10 * kMicrosPerSecond;
    size_t capacity = 1 << 18;  // events held at most
  };

  // Partitions 0 .. partitions-1 take part; none has said anything yet.
  EventTimeMerge(Options options, int32_t partitions);

  enum class Outcome {
    kHeld,    // kept, to be released in order
    kPassed,  // not kept (`keep` false); it moved its partition's watermark
    kLate,    // older than its partition's watermark, or than what was released
  };

  // The record at `offset` of `partition`: `event` decoded, `encoded` its wire
  // form. Moves the partition's watermark; with `keep` (a centre rule can use
  // the event) holds it for release. A late event changes nothing.
  [[nodiscard]] Outcome Push(int32_t partition, int64_t offset, const cx::v1::InteractionEvent& event,
                             std::string_view encoded, bool keep, Micros wall_now);

  // The partition is at its end (the consumer said so). Before its first
  // event, that makes it empty: it holds nothing back once it has been so
  // for the idle timeout.
  void MarkAtEnd(int32_t partition, Micros wall_now);

  // Moves a partition's watermark to at least `to` (a rule test's advance,
  // the end of a replay).
  void AdvancePartition(int32_t partition, Micros to, Micros wall_now);

  // Below this time no partition can still deliver an event: the lowest
  // watermark among the partitions that hold the release back, or
  // Watermark::kNone while one has said nothing (or none has had an event).
  Micros LowWatermark(Micros wall_now) const;

  // A released event; `encoded` is valid until the next call that changes
  // the merge.
  struct Released {
    int32_t partition;
    int64_t offset;
    Micros time;
    std::string_view encoded;
  };

  // The next held event below the merged watermark (raised first to the
  // low watermark), in (occurred_at, event_id) order, then partition and
  // offset; null when there is none. Call until null, then move the
  // consumer's clock to watermark().
  const Released* Next(Micros wall_now);

  // The merged watermark: the stream released so far is complete below it.
  // It never moves back (a partition that starts delivering late can lower
  // the low watermark, not this); a pushed event below it is refused as
  // late, so what is released stays in order.
  Micros watermark() const { return released_; }

  // The input is over: the next held event in order, whatever the
  // watermarks, or null. Nothing may be pushed after.
  const Released* NextAtEnd();

  // Full: the caller makes room before pushing an event to keep, with the
  // oldest held event, released out of turn (counted in forced()). Null
  // when there is room. Pushing to keep while full refuses the event.
  const Released* NextToMakeRoom();
  bool full() const { return heap_.size() >= options_.capacity; }

  // The lowest offset still held, per partition (INT64_MAX: none), into
  // `out` (resized to the partition count). A consumer commits no further.
  void LowestHeldOffsets(std::vector<int64_t>* out) const;

  int32_t partitions() const { return static_cast<int32_t>(partitions_.size()); }
  size_t held() const { return heap_.size(); }
  uint64_t late() const { return late_; }      // events a centre rule could use, refused as late
  uint64_t forced() const { return forced_; }  // released out of turn because the merge was full

 private:
  enum class Said { kNothing, kEmpty, kEvents };
  struct Partition {
    Watermark watermark;
    Said said = Said::kNothing;
    Micros empty_since = 0;  // kEmpty: when it was first found at its end
  };
  struct Slot {
    Micros time = 0;
    int32_t partition = 0;
    int64_t offset = 0;
    std::string event_id;
    std::string encoded;
  };
  // A held slot, its time beside it so that ordering the heap mostly
  // compares times in the heap's own array, not in slots all over memory.
  struct Held {
    Micros time;
    uint32_t slot;
  };
  bool Before(const Held& a, const Held& b) const;  // a sorts before b
  void Recycle();                             // frees the slot handed out last
  const Released* Pop();

  Options options_;
  std::vector<Partition> partitions_;
  std::vector<Slot> slots_;       // grows to the most ever held
  std::vector<uint32_t> free_;    // free slot numbers
  std::vector<Held> heap_;        // held slots, a min-heap by Before
  uint32_t handed_out_ = UINT32_MAX;  // the slot of the last Released, freed at the next call
  Released out_{};
  Micros released_ = Watermark::kNone;
  uint64_t late_ = 0;
  uint64_t forced_ = 0;
};

}  // namespace cxpulse
