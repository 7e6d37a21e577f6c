// EventDecoder: decodes input records into one reused InteractionEvent and,
// in steady state, takes nothing from the heap.
//
// Why not the obvious ways (both measured by tests/engine/engine_alloc_test.cc):
// - A protobuf arena, reset per record, frees every string with it; protobuf
//   3.21 keeps arena strings as std::string, so each string longer than the
//   15-byte inline buffer (survey comments, complaint text) took one heap
//   allocation per record.
// - One reused heap message keeps its strings' buffers across Clear(), but
//   Clear() deletes every sub-message (occurred_at, the body oneof and the
//   Timestamps and Durations inside it), and the event type changes almost
//   every record.
//
// So: a reused heap message, whose sub-messages are taken out before Clear()
// and parked, one per field, cleared but with their own strings' buffers.
// Before parsing, a pass over the record's wire bytes finds which
// sub-message fields it carries and puts exactly those parked objects back;
// protobuf's own parser then merges into them. Field presence is therefore
// exactly the record's, and the parser still does all validation.
//
// What can still allocate: a string longer than any the field held before
// (its buffer grows, then is reused); a sub-message field seen for the first
// time; `attributes` map entries (protobuf's Map frees its nodes on Clear()),
// and unknown fields. One per shard; not thread-safe.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "cx/v1/event.pb.h"

namespace cxpulse {

class EventDecoder {
 public:
  EventDecoder();
  EventDecoder(const EventDecoder&) = delete;
  EventDecoder& operator=(const EventDecoder&) = delete;

  // The decoded event, valid until the next call; null if it does not decode.
  const cx::v1::InteractionEvent* Decode(const void* data, size_t size);

  // Sub-message fields put back and taken out through the reflection API
  // rather than generated accessors: 0 for this build's schema (tested).
  size_t ReflectedFields() const;

 private:
  // One singular sub-message field of a message type, and where its parked
  // object lives.
  struct SubField {
    const google::protobuf::FieldDescriptor* field;
    // Of the message holding the field: looked up once, as GetReflection()
    // goes through a std::call_once (a thread-local lookup) on every call.
    const google::protobuf::Reflection* reflection;
    size_t slot;      // index into parked_
    size_t plan;      // index into plans_ of the field's message type
    int oneof = -1;   // index into oneof_stamp_ if the field is a oneof member
    // The generated unsafe_arena_set_allocated_<field> and
    // unsafe_arena_release_<field>, for a field of the schema
    // (event_decoder.cc's table); null: through `reflection`, which costs a
    // field-offset lookup and a thread-local lookup on each call.
    void (*set)(google::protobuf::Message* parent, google::protobuf::Message* sub) = nullptr;
    google::protobuf::Message* (*release)(google::protobuf::Message* parent) = nullptr;
  };
  // A message type's sub-message fields, findable by field number.
  struct Plan {
    std::vector<SubField> fields;
    std::vector<int> by_number;  // field number -> index into fields, or -1
    const SubField* Find(uint64_t number) const {
      if (number >= by_number.size() || by_number[number] < 0) return nullptr;
      return &fields[static_cast<size_t>(by_number[number])];
    }
  };
  struct Installed {
    google::protobuf::Message* parent;
    const SubField* sub;
  };

  size_t BuildPlan(const google::protobuf::Descriptor* type, int depth);
  // Puts parked sub-messages back into `message` for the sub-message fields
  // its wire bytes [p, end) carry. False when it could not read them to the
  // end as the parser will (malformed bytes, a group, an over-long tag): the
  // parser may then replace a oneof member put back here, so the record is
  // untracked.
  [[nodiscard]] bool Install(google::protobuf::Message* message, const Plan& plan, const uint8_t* p,
                             const uint8_t* end, int depth);
  // Takes back what Install put in, children first, and clears it.
  void ParkInstalled();
  // The general way, for a record whose sub-messages Install could not
  // track: takes every sub-message out of `message`, recursively.
  void ParkAll(google::protobuf::Message* message, const Plan& plan);
  void Park(google::protobuf::Message* parent, const SubField& s);

  std::vector<Plan> plans_;  // plans_[0]: InteractionEvent
  std::vector<std::unique_ptr<google::protobuf::Message>> parked_;  // one per slot, made up front
  // What Install put into the current record, in order.
  std::vector<Installed> installed_;
  // Whether installed_ is all the record holds: false when the record named
  // two members of one oneof (the parser deletes the one put back first).
  bool tracked_ = true;
  // Per slot and per oneof, the record that last used it (dedupes repeated fields).
  std::vector<uint64_t> slot_stamp_;
  std::vector<uint64_t> oneof_stamp_;
  uint64_t record_ = 0;
  cx::v1::InteractionEvent event_;
};

// Why a decoded event cannot be run through the rules ("event has no
// body", ...), or empty if it can. The daemon dead-letters such an event as
// invalid; `cxpulse replay` reports and skips it.
std::string_view IncompleteEvent(const cx::v1::InteractionEvent& event);

}  // namespace cxpulse
