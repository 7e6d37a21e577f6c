#include "codec/event_decoder.h"

#include <map>

#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace cxpulse {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// Deeper than any schema of ours; bounds the recursion on hostile input.
constexpr int kMaxDepth = 16;
// Field numbers up to this are found by table; a larger one is simply not
// put back (the parser creates it, which is correct, only not free).
constexpr int kMaxTableNumber = 1024;

bool ReadVarint(const uint8_t*& p, const uint8_t* end, uint64_t* value) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    const uint8_t b = *p++;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *value = v;
      return true;
    }
  }
  return false;
}

// Generated accessors for the schema's sub-message fields, by (type holding
// the field, field number). Same effect as the reflection calls they replace:
// release clears the field (and a oneof's case) and hands the object back;
// set, into a cleared message, installs it (and sets the oneof's case).
struct TypedSubField {
  const Descriptor* (*parent)();
  int number;
  void (*set)(Message* parent, Message* sub);
  Message* (*release)(Message* parent);
};

#define CXPULSE_SUB(Parent, field, Camel, Sub)                                                    \
  TypedSubField {                                                                                 \
    &Parent::descriptor, Parent::k##Camel##FieldNumber,                                           \
        [](Message* p, Message* sub) {                                                            \
          static_cast<Parent*>(p)->unsafe_arena_set_allocated_##field(static_cast<Sub*>(sub));    \
        },                                                                                        \
        [](Message* p) -> Message* { return static_cast<Parent*>(p)->unsafe_arena_release_##field(); } \
  }

using cx::v1::InteractionEvent;
using google::protobuf::Duration;
using google::protobuf::Timestamp;

const TypedSubField kTypedSubFields[] = {
    CXPULSE_SUB(InteractionEvent, occurred_at, OccurredAt, Timestamp),
    CXPULSE_SUB(InteractionEvent, contact_started, ContactStarted, cx::v1::ContactStarted),
    CXPULSE_SUB(InteractionEvent, queued, Queued, cx::v1::Queued),
    CXPULSE_SUB(InteractionEvent, answered, Answered, cx::v1::Answered),
    CXPULSE_SUB(InteractionEvent, transferred, Transferred, cx::v1::Transferred),
    CXPULSE_SUB(InteractionEvent, abandoned, Abandoned, cx::v1::Abandoned),
    CXPULSE_SUB(InteractionEvent, ended, Ended, cx::v1::Ended),
    CXPULSE_SUB(InteractionEvent, callback_requested, CallbackRequested, cx::v1::CallbackRequested),
    CXPULSE_SUB(InteractionEvent, callback_attempted, CallbackAttempted, cx::v1::CallbackAttempted),
    CXPULSE_SUB(InteractionEvent, survey, Survey, cx::v1::Survey),
    CXPULSE_SUB(InteractionEvent, sentiment, Sentiment, cx::v1::Sentiment),
    CXPULSE_SUB(InteractionEvent, case_opened, CaseOpened, cx::v1::CaseOpened),
    CXPULSE_SUB(InteractionEvent, case_closed, CaseClosed, cx::v1::CaseClosed),
    CXPULSE_SUB(InteractionEvent, complaint, Complaint, cx::v1::Complaint),
    CXPULSE_SUB(cx::v1::Answered, wait, Wait, Duration),
    CXPULSE_SUB(cx::v1::Abandoned, wait, Wait, Duration),
    CXPULSE_SUB(cx::v1::Ended, handle_time, HandleTime, Duration),
    CXPULSE_SUB(cx::v1::CallbackRequested, due_at, DueAt, Timestamp),
    CXPULSE_SUB(cx::v1::CaseOpened, sla_due_at, SlaDueAt, Timestamp),
};

#undef CXPULSE_SUB

Message* New(const FieldDescriptor* f) {
  return google::protobuf::MessageFactory::generated_factory()->GetPrototype(f->message_type())->New();
}

}  // namespace

EventDecoder::EventDecoder() {
  BuildPlan(cx::v1::InteractionEvent::descriptor(), 0);
  installed_.reserve(parked_.size());
  slot_stamp_.assign(parked_.size(), 0);
}

size_t EventDecoder::BuildPlan(const Descriptor* type, int depth) {
  const size_t index = plans_.size();
  plans_.emplace_back();
  if (depth >= kMaxDepth) return index;
  Plan plan;
  std::map<const google::protobuf::OneofDescriptor*, int> oneofs;
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* f = type->field(i);
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated() || f->number() > kMaxTableNumber) {
      continue;
    }
    SubField s{f, google::protobuf::MessageFactory::generated_factory()->GetPrototype(type)->GetReflection(),
               parked_.size(), 0};
    parked_.emplace_back(New(f));
    if (const auto* oneof = f->real_containing_oneof(); oneof != nullptr) {
      auto [it, added] = oneofs.emplace(oneof, static_cast<int>(oneof_stamp_.size()));
      if (added) oneof_stamp_.push_back(0);
      s.oneof = it->second;
    }
    for (const TypedSubField& t : kTypedSubFields) {
      if (t.parent() == type && t.number == f->number()) {
        s.set = t.set;
        s.release = t.release;
      }
    }
    s.plan = BuildPlan(f->message_type(), depth + 1);
    plan.fields.push_back(s);
    if (plan.by_number.size() <= static_cast<size_t>(f->number())) plan.by_number.resize(f->number() + 1, -1);
    plan.by_number[static_cast<size_t>(f->number())] = static_cast<int>(plan.fields.size() - 1);
  }
  plans_[index] = std::move(plan);
  return index;
}

bool EventDecoder::Install(Message* message, const Plan& plan, const uint8_t* p, const uint8_t* end, int depth) {
  if (plan.fields.empty()) return true;  // nothing to put back, nothing the parser can replace
  if (depth >= kMaxDepth) return false;
  while (p < end) {
    uint64_t tag = 0;
    // The parser reads tags as 32 bits; a longer one is not ours to guess at.
    if (!ReadVarint(p, end, &tag) || tag > UINT32_MAX) return false;
    uint64_t skip = 0;
    switch (tag & 7) {
      case 0:
        if (!ReadVarint(p, end, &skip)) return false;
        continue;
      case 1: skip = 8; break;
      case 5: skip = 4; break;
      case 2: {
        if (!ReadVarint(p, end, &skip) || skip > static_cast<uint64_t>(end - p)) return false;
        const SubField* s = plan.Find(tag >> 3);
        // A field seen again in the record merges into the object already there.
        if (s == nullptr || slot_stamp_[s->slot] == record_) break;
        if (s->oneof >= 0 && oneof_stamp_[static_cast<size_t>(s->oneof)] == record_) {
          tracked_ = false;  // a second member of a oneof: the parser replaces the first
          break;
        }
        slot_stamp_[s->slot] = record_;
        if (s->oneof >= 0) oneof_stamp_[static_cast<size_t>(s->oneof)] = record_;
        Message* sub = parked_[s->slot].release();
        if (s->set != nullptr) {
          s->set(message, sub);
        } else {
          s->reflection->UnsafeArenaSetAllocatedMessage(message, sub, s->field);
        }
        installed_.push_back({message, s});
        if (!Install(sub, plans_[s->plan], p, p + skip, depth + 1)) return false;
        break;
      }
      default: return false;  // a group (valid, as an unknown field) or a bad wire type
    }
    if (skip > static_cast<uint64_t>(end - p)) return false;
    p += skip;
  }
  return true;
}

void EventDecoder::Park(Message* parent, const SubField& s) {
  Message* sub =
      s.release != nullptr ? s.release(parent) : s.reflection->UnsafeArenaReleaseMessage(parent, s.field);
  if (sub == nullptr) return;
  sub->Clear();  // keeps its strings' buffers; its own sub-messages are parked already
  parked_[s.slot].reset(sub);
}

size_t EventDecoder::ReflectedFields() const {
  size_t n = 0;
  for (const Plan& plan : plans_) {
    for (const SubField& s : plan.fields) n += s.set == nullptr || s.release == nullptr;
  }
  return n;
}

void EventDecoder::ParkInstalled() {
  for (auto it = installed_.rbegin(); it != installed_.rend(); ++it) Park(it->parent, *it->sub);
}

void EventDecoder::ParkAll(Message* message, const Plan& plan) {
  const auto* reflection = message->GetReflection();
  for (const SubField& s : plan.fields) {
    if (!reflection->HasField(*message, s.field)) continue;
    ParkAll(reflection->MutableMessage(message, s.field), plans_[s.plan]);
    Park(message, s);
  }
}

const cx::v1::InteractionEvent* EventDecoder::Decode(const void* data, size_t size) {
  if (tracked_) {
    ParkInstalled();
  } else {
    ParkAll(&event_, plans_[0]);
    // The parser deleted the oneof member put back first, and whatever was
    // put back inside it: make their slots whole again.
    for (const Plan& plan : plans_) {
      for (const SubField& s : plan.fields) {
        if (parked_[s.slot] == nullptr) parked_[s.slot].reset(New(s.field));
      }
    }
  }
  event_.Clear();
  installed_.clear();
  tracked_ = true;
  ++record_;
  const auto* bytes = static_cast<const uint8_t*>(data);
  if (!Install(&event_, plans_[0], bytes, bytes + size, 0)) tracked_ = false;
  // ParseFromArray without its Clear(), which would delete what Install put back.
  const bool ok = event_.ParseFrom<google::protobuf::MessageLite::kMerge>(
      google::protobuf::StringPiece(static_cast<const char*>(data), size));
  // Backstop: a oneof member put back must still be set, else the parser
  // replaced (and deleted) it, and what was put back inside it, without the
  // scan having seen why. In order: a member's parent is checked before it.
  for (const Installed& i : installed_) {
    if (!tracked_) break;
    if (i.sub->oneof >= 0 && !i.sub->reflection->HasField(*i.parent, i.sub->field)) tracked_ = false;
  }
  return ok ? &event_ : nullptr;
}

std::string_view IncompleteEvent(const cx::v1::InteractionEvent& event) {
  if (event.body_case() == cx::v1::InteractionEvent::BODY_NOT_SET) return "event has no body";
  if (!event.has_occurred_at()) return "event has no occurred_at";
  if (event.customer_id().empty()) return "event has no customer_id";
  return {};
}

}  // namespace cxpulse
