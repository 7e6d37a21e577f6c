// ProtoJsonParser against protobuf's own JsonStringToMessage, the reference:
// for every text, the same verdict and, when accepted, the same message.
#include "codec/proto_json.h"

#include <google/protobuf/util/field_comparator.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cx/v1/event.pb.h"
#include "gen/traffic_generator.h"

namespace cxpulse {
namespace {

using cx::v1::InteractionEvent;

struct Verdict {
  bool ok = false;
  InteractionEvent event;
};

Verdict Reference(const std::string& json) {
  Verdict v;
  v.ok = google::protobuf::util::JsonStringToMessage(json, &v.event).ok();
  return v;
}

// Compares the parser with the reference on `json`; true if both accepted it.
bool ExpectSame(ProtoJsonParser& parser, const std::string& json) {
  const Verdict want = Reference(json);
  InteractionEvent got;
  const bool ok = parser.Parse(json, &got).ok();
  EXPECT_EQ(ok, want.ok) << json;
  if (ok && want.ok) {
    google::protobuf::util::DefaultFieldComparator nan_is_nan;  // "NaN" gives a NaN both ways
    nan_is_nan.set_treat_nan_as_equal(true);
    google::protobuf::util::MessageDifferencer same;
    same.set_field_comparator(&nan_is_nan);
    EXPECT_TRUE(same.Compare(got, want.event))
        << json << "\n got: " << got.ShortDebugString() << "\nwant: " << want.event.ShortDebugString();
  }
  return ok && want.ok;
}

std::string ToJson(const InteractionEvent& e, bool proto_names = false, bool defaults = false) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = proto_names;
  options.always_print_primitive_fields = defaults;
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(e, &json, options).ok());
  return json;
}

std::vector<InteractionEvent> Generated(size_t n) {
  TrafficOptions options;
  options.seed = 11;
  options.customers = 2000;
  options.time_compression = 60;  // callbacks, surveys and cases within the run
  TrafficGenerator gen(options, std::chrono::system_clock::time_point(std::chrono::seconds(1'790'000'000)));
  std::vector<InteractionEvent> out;
  auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'790'000'000));
  while (out.size() < n) {
    now += std::chrono::seconds(10);
    gen.Poll(now, &out);
  }
  out.resize(n);
  return out;
}

// One event of each body, every field set, so each field's reading is used.
std::vector<InteractionEvent> EveryBody() {
  std::vector<InteractionEvent> out;
  const auto* body = InteractionEvent::descriptor()->FindOneofByName("body");
  for (int i = 0; i < body->field_count(); ++i) {
    InteractionEvent e;
    e.set_event_id("e\"\\/\u00e9\n" + std::to_string(i));
    e.mutable_occurred_at()->set_seconds(1'790'000'000 + i);
    e.mutable_occurred_at()->set_nanos(i % 2 == 0 ? 0 : 123'456'789 / (i + 1));
    e.set_customer_id("c" + std::to_string(i));
    e.set_contact_id("k");
    e.set_channel(cx::v1::CHANNEL_CHAT);
    e.set_queue("billing");
    e.set_agent_id("a1");
    e.set_reason("outage");
    e.set_segment("vip");
    (*e.mutable_attributes())["plan"] = "gold";
    (*e.mutable_attributes())["b\u00e9"] = "";
    const auto* f = body->field(i);
    google::protobuf::Message* m = e.GetReflection()->MutableMessage(&e, f);
    const auto* d = m->GetDescriptor();
    for (int j = 0; j < d->field_count(); ++j) {
      const auto* g = d->field(j);
      const auto* r = m->GetReflection();
      switch (g->cpp_type()) {
        case google::protobuf::FieldDescriptor::CPPTYPE_STRING: r->SetString(m, g, "text " + g->name()); break;
        case google::protobuf::FieldDescriptor::CPPTYPE_BOOL: r->SetBool(m, g, true); break;
        case google::protobuf::FieldDescriptor::CPPTYPE_INT32: r->SetInt32(m, g, -7); break;
        case google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE: r->SetDouble(m, g, -0.1); break;
        case google::protobuf::FieldDescriptor::CPPTYPE_ENUM: r->SetEnumValue(m, g, 2); break;
        case google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE: {
          google::protobuf::Message* t = r->MutableMessage(m, g);
          t->GetReflection()->SetInt64(t, t->GetDescriptor()->FindFieldByName("seconds"), 95);
          t->GetReflection()->SetInt32(t, t->GetDescriptor()->FindFieldByName("nanos"), 5'000'000);
          break;
        }
        default: ADD_FAILURE() << "a field type the test does not fill: " << g->full_name();
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

TEST(ProtoJsonTest, EveryBodyAndGeneratedEventsReadAsProtobufReadsThemWithoutFallingBack) {
  ProtoJsonParser parser;
  std::vector<InteractionEvent> events = EveryBody();
  for (InteractionEvent& e : Generated(5000)) events.push_back(std::move(e));
  std::set<int> bodies;
  for (const InteractionEvent& e : events) {
    bodies.insert(e.body_case());
    for (const bool proto_names : {false, true}) {
      for (const bool defaults : {false, true}) ASSERT_TRUE(ExpectSame(parser, ToJson(e, proto_names, defaults)));
    }
  }
  EXPECT_EQ(bodies.size(), static_cast<size_t>(InteractionEvent::descriptor()->FindOneofByName("body")->field_count()));
  EXPECT_EQ(parser.fallbacks(), 0u) << "the fast path should read every event protobuf itself writes";
}

TEST(ProtoJsonTest, EdgeCasesGetProtobufsVerdict) {
  const std::string base = R"("eventId":"e1","occurredAt":"2026-11-01T09:00:00Z",)";
  const std::vector<std::string> bodies = {
      R"("queued":{})",
      R"("queued":null)",
      R"("answered":{"wait":"1.5s"})",
      R"("answered":{"wait":"-0.5s"})",
      R"("answered":{"wait":"1.000000001s"})",
      R"("answered":{"wait":"1.0000000001s"})",
      R"("answered":{"wait":"315576000000s"})",
      R"("answered":{"wait":"315576000001s"})",
      R"("answered":{"wait":"01s"})",
      R"("answered":{"wait":"+1s"})",
      R"("answered":{"wait":"1.s"})",
      R"("answered":{"wait":".5s"})",
      R"("answered":{"wait":"1"})",
      R"("answered":{"wait":{"seconds":1}})",
      R"("survey":{"score":3})",
      R"("survey":{"score":3.0})",
      R"("survey":{"score":"3"})",
      R"("survey":{"score":2147483648})",
      R"("survey":{"score":-2147483648})",
      R"("survey":{"metric":"SURVEY_METRIC_NPS"})",
      R"("survey":{"metric":2})",
      R"("survey":{"metric":"nps"})",
      R"("survey":{"metric":"SURVEY_METRIC_UNKNOWN"})",
      R"("sentiment":{"score":1})",
      R"("sentiment":{"score":-0.25e-3})",
      R"("sentiment":{"score":1e400})",
      R"("sentiment":{"score":"NaN"})",
      R"("sentiment":{"score":18446744073709551616})",
      R"("ended":{"resolved":true,"disposition":"x"})",
      R"("ended":{"resolved":"true"})",
      R"("ended":{"resolved":1})",
      R"("callbackRequested":{"dueAt":"2026-11-01T10:00:00.5Z"})",
      R"("callbackRequested":{"dueAt":"2026-11-01T10:00:00.123456789Z"})",
      R"("callbackRequested":{"dueAt":"2026-11-01T10:00:00.1234567891Z"})",
      R"("callbackRequested":{"dueAt":"2026-11-01T10:00:00+01:00"})",
      R"("callbackRequested":{"dueAt":"2026-11-01t10:00:00z"})",
      R"("callbackRequested":{"dueAt":"2026-02-29T10:00:00Z"})",
      R"("callbackRequested":{"dueAt":"2028-02-29T10:00:00Z"})",
      R"("callbackRequested":{"dueAt":"2026-11-01T10:00:60Z"})",
      R"("callbackRequested":{"dueAt":"0000-01-01T00:00:00Z"})",
      R"("callbackRequested":{"dueAt":"0001-01-01T00:00:00Z"})",
      R"("callbackRequested":{"dueAt":"9999-12-31T23:59:59.999999999Z"})",
      R"("callbackRequested":{"dueAt":"1969-12-31T23:59:59.5Z"})",
      R"("callbackRequested":{"dueAt":"2026-11-01 10:00:00Z"})",
      R"("caseOpened":{"caseId":"k","slaDueAt":"2026-11-01T10:00:00Z"},"caseClosed":{"caseId":"k"})",
      R"("complaint":{"category":"a","category":"b"})",
      R"("complaint":{"category":"\u00e9\ud83d\ude00"})",
      R"("complaint":{"category":"\ud800"})",
      R"("complaint":{"unknown":1})",
      R"("complaint":{})",
      R"("contactStarted":{"direction":"DIRECTION_OUTBOUND"},"attributes":{"a":"1","b":"2"})",
      R"("contactStarted":{},"attributes":{"a":"1","a":"2"})",
      R"("contactStarted":{},"attributes":{"a":1})",
      R"("contactStarted":{},"attributes":[])",
      R"("contactStarted":{},"attributes":{})",
      R"("contactStarted":{},"customer_id":"c1","customerId":"c2")",
      R"("contactStarted":{},"channel":"CHANNEL_SMS","event_id":"x")",
      R"("contactStarted":{},"nope":1)",
      R"("contactStarted":[])",
      R"("contactStarted":"x")",
  };
  ProtoJsonParser parser;
  int accepted = 0;
  for (const std::string& body : bodies) accepted += ExpectSame(parser, "{" + base + body + "}") ? 1 : 0;
  for (const std::string& text : {std::string(""), std::string("[]"), std::string("{}"), std::string("{} x"),
                                  std::string("{\"queued\":{}"), std::string("  {\"queued\":{}}  "), std::string("null"),
                                  std::string("{\"eventId\":\"\xff\"}"), std::string("{\"eventId\":\"a") + '\0' + "b\"}"}) {
    accepted += ExpectSame(parser, text) ? 1 : 0;
  }
  // Both verdicts occur: the cases are not all accepted, nor all refused.
  EXPECT_GT(accepted, 10);
  EXPECT_LT(accepted, static_cast<int>(bodies.size()));
}

TEST(ProtoJsonTest, CorruptedLinesGetProtobufsVerdict) {
  std::vector<std::string> lines;
  for (const InteractionEvent& e : EveryBody()) lines.push_back(ToJson(e));
  for (const InteractionEvent& e : Generated(200)) lines.push_back(ToJson(e));
  const std::string alphabet = "{}[]\":,.-+0123456789eEtrufalsn\\ uZT:s\x01\x80\xc3";
  std::mt19937_64 rng(5);
  ProtoJsonParser parser;
  int accepted = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string line = lines[rng() % lines.size()];
    for (int edits = 1 + static_cast<int>(rng() % 3); edits > 0; --edits) {
      const size_t at = rng() % line.size();
      switch (rng() % 3) {
        case 0: line[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: line.erase(at, 1); break;
        default: line.insert(line.begin() + static_cast<std::ptrdiff_t>(at), alphabet[rng() % alphabet.size()]);
      }
      if (line.empty()) line = "{";
    }
    if (ExpectSame(parser, line)) ++accepted;
    else ++refused;
    if (HasFailure()) break;
  }
  // Corruption leaves some lines valid (a digit for a digit) and breaks others.
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(refused, 1000);
}

}  // namespace
}  // namespace cxpulse
