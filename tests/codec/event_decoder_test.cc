// EventDecoder reuses one message and its parked sub-messages across records,
// so each record must decode to exactly what a fresh parse gives: the same
// fields, the same presence (an event without occurred_at after one with it),
// the same body, and the same verdict on bad bytes.
#include "codec/event_decoder.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "gen/traffic_generator.h"

namespace cxpulse {
namespace {

using cx::v1::InteractionEvent;
using google::protobuf::util::MessageDifferencer;

// Decodes `wire` with `decoder` and checks it against a fresh parse.
void ExpectSameAsFreshParse(EventDecoder& decoder, const std::string& wire, const std::string& what) {
  InteractionEvent fresh;
  const bool fresh_ok = fresh.ParseFromString(wire);
  const InteractionEvent* decoded = decoder.Decode(wire.data(), wire.size());
  ASSERT_EQ(decoded != nullptr, fresh_ok) << what;
  if (decoded == nullptr) return;
  std::string diff;
  MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differencer.Compare(fresh, *decoded)) << what << ": " << diff;
}

TEST(EventDecoderTest, GeneratedTrafficDecodesAsAFreshParseDoes) {
  TrafficOptions options;
  options.seed = 11;
  options.customers = 500;
  options.contacts_per_second = 2;
  const auto start = std::chrono::system_clock::time_point(std::chrono::seconds(1'767'603'600));
  TrafficGenerator gen(options, start);
  std::vector<InteractionEvent> events;
  for (auto t = start; events.size() < 20'000; t += std::chrono::minutes(1)) gen.Poll(t, &events);

  EventDecoder decoder;
  std::vector<bool> bodies_seen(64, false);
  for (size_t i = 0; i < events.size(); ++i) {
    bodies_seen[static_cast<size_t>(events[i].body_case())] = true;
    ExpectSameAsFreshParse(decoder, events[i].SerializeAsString(), "event " + std::to_string(i));
    if (HasFailure()) return;
  }
  // The stream really switched between body types (what makes reuse hard).
  int kinds = 0;
  for (bool seen : bodies_seen) kinds += seen;
  EXPECT_GE(kinds, 10);
}

TEST(EventDecoderTest, PresenceAndOddRecordsMatchAFreshParse) {
  InteractionEvent full;
  full.set_event_id("e-with-a-rather-long-identifier-0001");
  full.set_customer_id("c1");
  full.mutable_occurred_at()->set_seconds(1'767'603'600);
  full.mutable_answered()->mutable_wait()->set_seconds(42);
  (*full.mutable_attributes())["tier"] = "gold";

  InteractionEvent bare;  // no occurred_at, an answered body without its wait
  bare.set_customer_id("c2");
  bare.mutable_answered();

  InteractionEvent survey;
  survey.set_customer_id("c3");
  survey.mutable_survey()->set_score(2);
  survey.mutable_survey()->set_comment("a comment well past the inline string buffer");

  EventDecoder decoder;
  for (int round = 0; round < 3; ++round) {  // each after each, with objects parked
    ExpectSameAsFreshParse(decoder, full.SerializeAsString(), "full");
    ExpectSameAsFreshParse(decoder, bare.SerializeAsString(), "bare");
    ExpectSameAsFreshParse(decoder, survey.SerializeAsString(), "survey");
    ExpectSameAsFreshParse(decoder, InteractionEvent().SerializeAsString(), "empty");
    // Two records back to back: protobuf merges them, the last body wins.
    ExpectSameAsFreshParse(decoder, full.SerializeAsString() + survey.SerializeAsString(), "full+survey");
    ExpectSameAsFreshParse(decoder, full.SerializeAsString() + full.SerializeAsString(), "full+full");
  }
}

// Every sub-message field of the schema goes through the decoder's table of
// generated accessors; one it misses would still decode (by reflection),
// only slower, so this is what notices.
TEST(EventDecoderTest, EverySubMessageFieldHasGeneratedAccessors) {
  EXPECT_EQ(EventDecoder().ReflectedFields(), 0u);
}

// Every body type, with and without its own sub-messages, after every other
// (and after itself), with and without occurred_at: each put back and taken
// out through its accessor decodes as a fresh parse does.
TEST(EventDecoderTest, EveryBodyAfterEveryOtherMatchesAFreshParse) {
  std::vector<std::string> records;
  const google::protobuf::Descriptor* d = InteractionEvent::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* body = d->field(i);
    if (body->containing_oneof() == nullptr) continue;
    for (bool inner : {false, true}) {
      InteractionEvent e;
      e.set_customer_id("c-" + body->name());
      if (inner) e.mutable_occurred_at()->set_seconds(1'767'603'600 + i);
      google::protobuf::Message* m = e.GetReflection()->MutableMessage(&e, body);
      for (int j = 0; inner && j < m->GetDescriptor()->field_count(); ++j) {
        const google::protobuf::FieldDescriptor* f = m->GetDescriptor()->field(j);
        if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
        google::protobuf::Message* sub = m->GetReflection()->MutableMessage(m, f);
        sub->GetReflection()->SetInt64(sub, sub->GetDescriptor()->FindFieldByName("seconds"), 40 + j);
      }
      records.push_back(e.SerializeAsString());
    }
  }
  EXPECT_EQ(records.size(), 26u);
  EventDecoder decoder;
  for (size_t a = 0; a < records.size(); ++a) {
    for (size_t b = 0; b < records.size(); ++b) {
      ExpectSameAsFreshParse(decoder, records[a], "record " + std::to_string(a));
      ExpectSameAsFreshParse(decoder, records[b], "record " + std::to_string(b) + " after " + std::to_string(a));
      if (HasFailure()) return;
    }
  }
}

TEST(EventDecoderTest, BadBytesFailAsAFreshParseFails) {
  InteractionEvent e;
  e.set_customer_id("c1");
  e.mutable_occurred_at()->set_seconds(1'767'603'600);
  e.mutable_complaint()->set_text("the product arrived broken and nobody called back");
  const std::string wire = e.SerializeAsString();

  EventDecoder decoder;
  ExpectSameAsFreshParse(decoder, "not a protobuf at all, just text", "text");
  ExpectSameAsFreshParse(decoder, std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11), "bad varint");
  for (size_t cut = 1; cut < wire.size(); ++cut) {
    ExpectSameAsFreshParse(decoder, wire.substr(0, cut), "cut at " + std::to_string(cut));
  }
  ExpectSameAsFreshParse(decoder, wire, "whole, after failures");
  std::string bad_utf8 = e.SerializeAsString();
  bad_utf8[bad_utf8.find("c1") + 1] = '\xc3';  // half of a two-byte sequence
  ExpectSameAsFreshParse(decoder, bad_utf8, "invalid UTF-8 in a string");
}

// Records the pre-scan cannot read to the end as the parser does: an unknown
// field encoded as a group (valid protobuf, kept as an unknown field) and a
// tag longer than the parser's 32 bits. A oneof member after them is seen
// only by the parser, which replaces (deletes) the member put back before;
// the records after must still decode right (and, under ASan, touch no freed
// memory).
TEST(EventDecoderTest, RecordsThePreScanCannotFollowStillDecodeRight) {
  InteractionEvent answered;
  answered.set_customer_id("c1");
  answered.mutable_answered()->mutable_wait()->set_seconds(5);
  InteractionEvent abandoned;
  abandoned.mutable_abandoned();
  const std::string group("\x9b\x06\x08\x01\x9c\x06", 6);  // field 99 as a group holding field 1 = 1
  const std::string long_tag("\xc2\x81\x80\x80\x70\x00", 6);  // field 24 (abandoned), 5-byte tag, high bits set
  for (const std::string& odd : {answered.SerializeAsString() + group + abandoned.SerializeAsString(),
                                 answered.SerializeAsString() + long_tag}) {
    EventDecoder decoder;
    for (int round = 0; round < 3; ++round) {
      ExpectSameAsFreshParse(decoder, odd, "odd record");
      ExpectSameAsFreshParse(decoder, answered.SerializeAsString(), "answered after it");
      ExpectSameAsFreshParse(decoder, abandoned.SerializeAsString(), "abandoned after it");
    }
  }
}

}  // namespace
}  // namespace cxpulse
