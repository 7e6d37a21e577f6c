// FieldPath reads the schema's fields through a table of generated accessors
// (expr/field_path.cc). These tests walk the InteractionEvent descriptor, so a
// field added to the schema without a reader, or a reader that reads the
// wrong field, fails here rather than reading differently from reflection.
#include "expr/field_path.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cx/v1/event.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace cxpulse::expr {
namespace {

using cx::v1::InteractionEvent;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

bool IsBody(const FieldDescriptor* f) {
  return f->containing_oneof() != nullptr && f->containing_oneof()->name() == "body";
}

// Sets every singular scalar field of `m` to a value other than its default
// and unlike any other field's (`seed` varies it); sub-messages (Timestamp,
// Duration) likewise. An enum gets `enum_number`, which may be one the
// schema does not declare (proto3 enums are open).
void Fill(Message* m, int seed, int enum_number) {
  const google::protobuf::Reflection* r = m->GetReflection();
  const google::protobuf::Descriptor* d = m->GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_repeated() || f->containing_oneof() != nullptr) continue;
    const int v = seed * 100 + f->number();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: r->SetInt32(m, f, -v); break;
      case FieldDescriptor::CPPTYPE_INT64: r->SetInt64(m, f, 1'700'000'000 + v); break;
      case FieldDescriptor::CPPTYPE_UINT32: r->SetUInt32(m, f, static_cast<uint32_t>(v)); break;
      case FieldDescriptor::CPPTYPE_UINT64: r->SetUInt64(m, f, static_cast<uint64_t>(v)); break;
      case FieldDescriptor::CPPTYPE_DOUBLE: r->SetDouble(m, f, v + 0.25); break;
      case FieldDescriptor::CPPTYPE_FLOAT: r->SetFloat(m, f, static_cast<float>(v) + 0.5f); break;
      case FieldDescriptor::CPPTYPE_BOOL: r->SetBool(m, f, true); break;
      case FieldDescriptor::CPPTYPE_STRING: r->SetString(m, f, "value-" + std::to_string(v)); break;
      case FieldDescriptor::CPPTYPE_ENUM: r->SetEnumValue(m, f, enum_number); break;
      case FieldDescriptor::CPPTYPE_MESSAGE: Fill(r->MutableMessage(m, f), seed + 1, enum_number); break;
    }
  }
}

// Events to read every path from: empty; top-level fields only; and for each
// body type, that body with every field set, with each enum at a declared
// value and at one the schema does not know.
std::vector<InteractionEvent> Events() {
  std::vector<InteractionEvent> events(1);
  const google::protobuf::Descriptor* d = InteractionEvent::descriptor();
  for (int enum_number : {2, 99}) {
    InteractionEvent top;
    Fill(&top, 1, enum_number);
    events.push_back(top);
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* body = d->field(i);
      if (!IsBody(body)) continue;
      InteractionEvent e = top;
      Fill(e.GetReflection()->MutableMessage(&e, body), 3 + i, enum_number);
      events.push_back(e);
    }
  }
  return events;
}

// Every path a rule may name that reads a field: the top-level fields (the
// attributes map aside: it is read through the generated map either way) and
// every field of every body.
std::vector<std::string> AllPaths() {
  std::vector<std::string> paths;
  const google::protobuf::Descriptor* d = InteractionEvent::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_map()) continue;
    if (!IsBody(f)) {
      paths.push_back(f->name());
      continue;
    }
    for (int j = 0; j < f->message_type()->field_count(); ++j) {
      paths.push_back(f->name() + "." + f->message_type()->field(j)->name());
    }
  }
  return paths;
}

TEST(FieldPathTest, EveryFieldOfTheSchemaHasATypedReader) {
  const std::vector<std::string> paths = AllPaths();
  EXPECT_GE(paths.size(), 28u);
  for (const std::string& path : paths) {
    auto resolved = FieldPath::Resolve(path);
    ASSERT_TRUE(resolved.ok()) << path << ": " << resolved.status();
    EXPECT_TRUE(resolved->typed()) << path << " is read by reflection: add it to kTypedFields";
  }
}

TEST(FieldPathTest, TypedReadsReadExactlyWhatReflectionReads) {
  const std::vector<InteractionEvent> events = Events();
  size_t non_default = 0;
  for (const std::string& path : AllPaths()) {
    auto resolved = FieldPath::Resolve(path);
    ASSERT_TRUE(resolved.ok()) << path;
    const FieldPath& field = *resolved;
    for (size_t k = 0; k < events.size(); ++k) {
      const InteractionEvent& e = events[k];
      std::string typed_scratch, reflection_scratch;
      const Value a = field.Read(e, &typed_scratch);
      const Value b = field.ReadByReflection(e, &reflection_scratch);
      SCOPED_TRACE(path + " in event " + std::to_string(k) + ": " + e.ShortDebugString());
      EXPECT_EQ(a.type, b.type);
      EXPECT_EQ(a.type, field.type());
      EXPECT_EQ(a.b, b.b);
      EXPECT_EQ(a.i, b.i);
      EXPECT_EQ(a.d, b.d);
      EXPECT_EQ(a.s, b.s);
      // Both view the same bytes: the event's own string, or the label.
      EXPECT_EQ(a.s.data(), b.s.data());
      if (a.b || a.i != 0 || a.d != 0 || !a.s.empty()) ++non_default;
    }
  }
  // The events did set the fields: most reads are not defaults.
  EXPECT_GT(non_default, AllPaths().size() * 2);
}

TEST(FieldPathTest, AFieldSetReadsItsValueAndAnotherBodyReadsDefaults) {
  InteractionEvent e;
  e.set_queue("billing");
  e.set_channel(cx::v1::CHANNEL_CHAT);
  e.mutable_survey()->set_score(4);
  e.mutable_survey()->set_metric(cx::v1::SURVEY_METRIC_NPS);
  e.mutable_occurred_at()->set_seconds(10);
  std::string scratch;
  EXPECT_EQ(FieldPath::Resolve("queue")->Read(e, &scratch).s, "billing");
  EXPECT_EQ(FieldPath::Resolve("channel")->Read(e, &scratch).s, "chat");
  EXPECT_EQ(FieldPath::Resolve("survey.score")->Read(e, &scratch).i, 4);
  EXPECT_EQ(FieldPath::Resolve("survey.metric")->Read(e, &scratch).s, "nps");
  EXPECT_EQ(FieldPath::Resolve("occurred_at")->Read(e, &scratch).i, 10'000'000);
  EXPECT_EQ(FieldPath::Resolve("ended.handle_time")->Read(e, &scratch).i, 0);
  EXPECT_EQ(FieldPath::Resolve("complaint.text")->Read(e, &scratch).s, "");
  EXPECT_EQ(FieldPath::Resolve("contact_started.direction")->Read(e, &scratch).s, "unspecified");
  EXPECT_FALSE(FieldPath::Resolve("attributes.tier")->typed());
}

}  // namespace
}  // namespace cxpulse::expr
