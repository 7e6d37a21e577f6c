// EventDecoder: decodes input records into an InteractionEvent on a protobuf
// arena whose first block is preallocated, and resets it for each record.
// Decoding into one reused heap message is not enough: protobuf frees and
// re-allocates the `body` oneof (and its timestamps) whenever the event type
// changes, which is almost every event. On the arena, steady state takes no
// memory from the heap (tests/engine/engine_alloc_test.cc). One per shard;
// not thread-safe.
#pragma once

#include <google/protobuf/arena.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "cx/v1/event.pb.h"

namespace cxpulse {

class EventDecoder {
 public:
  // Room for any realistic event; a larger one makes the arena take one
  // more block from the heap, returned at the next record.
  static constexpr size_t kBlockSize = 256 * 1024;

  EventDecoder() : block_(kBlockSize), arena_(Options(block_)) {}
  EventDecoder(const EventDecoder&) = delete;
  EventDecoder& operator=(const EventDecoder&) = delete;

  // The decoded event, valid until the next call; null if it does not decode.
  const cx::v1::InteractionEvent* Decode(const void* data, size_t size) {
    arena_.Reset();
    auto* event = google::protobuf::Arena::CreateMessage<cx::v1::InteractionEvent>(&arena_);
    return event->ParseFromArray(data, static_cast<int>(size)) ? event : nullptr;
  }

 private:
  static google::protobuf::ArenaOptions Options(std::vector<char>& block) {
    google::protobuf::ArenaOptions o;
    o.initial_block = block.data();
    o.initial_block_size = block.size();
    return o;
  }

  std::vector<char> block_;  // before arena_: the arena is built on it
  google::protobuf::Arena arena_;
};

}  // namespace cxpulse
