#include "expr/field_path.h"

#include <type_traits>

#include "common/strings.h"
#include "common/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"

namespace cxpulse::expr {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

constexpr std::string_view kAttributes = "attributes";

bool IsBody(const FieldDescriptor* f) {
  return f->containing_oneof() != nullptr && f->containing_oneof()->name() == "body";
}

char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
char AsciiUpper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }
bool IsLowerOrDigit(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// "metric, score, comment"
std::string FieldList(const Descriptor* d) {
  std::string out;
  for (int i = 0; i < d->field_count(); ++i) Append(&out, i == 0 ? "" : ", ", d->field(i)->name());
  return out;
}

// What a path into the event may name, for "unknown field" messages.
std::string EventFieldList() {
  const Descriptor* event = cx::v1::InteractionEvent::descriptor();
  std::string fields;
  std::string bodies;
  for (int i = 0; i < event->field_count(); ++i) {
    const FieldDescriptor* f = event->field(i);
    if (IsBody(f)) {
      Append(&bodies, bodies.empty() ? "" : ", ", f->name());
    } else {
      Append(&fields, fields.empty() ? "" : ", ", f->name(), f->is_map() ? ".<name>" : "");
    }
  }
  return Cat(fields, ", or <body>.<field> for a body: ", bodies);
}

// "an int", "a timestamp", ...: what a field is, in expression terms.
std::string_view TypeWord(const FieldDescriptor* f) {
  if (f->is_map()) return "a map";
  if (f->is_repeated()) return "a list";
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return "an int";
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return "a double";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "a bool";
    case FieldDescriptor::CPPTYPE_STRING:
      return "a string";
    case FieldDescriptor::CPPTYPE_ENUM:
      return "a string (enum)";
    case FieldDescriptor::CPPTYPE_MESSAGE:
      if (f->message_type() == google::protobuf::Timestamp::descriptor()) return "a timestamp";
      if (f->message_type() == google::protobuf::Duration::descriptor()) return "a duration";
      return "a message";
  }
  return "a value";
}

// ---- Typed reads -------------------------------------------------------------
// Reflection costs a descriptor check, a field-offset lookup and, for a
// sub-message, a thread-local lookup on every read; the generated accessors
// are a load. One reader per field of the schema, keyed by (body field
// number or 0, leaf field number); a field missing here is read by
// reflection. tests/expr/field_path_test.cc walks the descriptor and holds
// every reader to the reflection read, so this table cannot drift from the
// schema unnoticed. A body accessor of an event whose body is another type
// returns the default instance, as reflection does.

using cx::v1::InteractionEvent;

// Each writes one member of the caller's Value in place: a Value returned by
// the reader and then copied would be read back in wider loads than the
// narrow stores that wrote it, which the store buffer cannot forward.
void Raw(const std::string& s, Value* v) { v->s = s; }
void Raw(int32_t x, Value* v) { v->i = x; }
void Raw(double x, Value* v) { v->d = x; }
void Raw(bool x, Value* v) { v->b = x; }
template <typename E>
  requires std::is_enum_v<E>
void Raw(E x, Value* v) {  // the number; Read turns it into its label
  v->i = static_cast<int>(x);
}
void Raw(const google::protobuf::Timestamp& t, Value* v) { v->i = ToMicros(t); }
void Raw(const google::protobuf::Duration& d, Value* v) { v->i = ToMicros(d); }

struct TypedField {
  int body;  // 0: a top-level field
  int leaf;
  void (*read)(const InteractionEvent&, Value*);
};

// field: the accessor's name; Camel: the generated type and constant names.
#define CXPULSE_TOP(field, Camel)                                         \
  TypedField {                                                            \
    0, InteractionEvent::k##Camel##FieldNumber,                           \
        [](const InteractionEvent& e, Value* v) { Raw(e.field(), v); }    \
  }
#define CXPULSE_BODY(body, Body, field, Camel)                                   \
  TypedField {                                                                   \
    InteractionEvent::k##Body##FieldNumber, cx::v1::Body::k##Camel##FieldNumber, \
        [](const InteractionEvent& e, Value* v) { Raw(e.body().field(), v); }    \
  }

constexpr TypedField kTypedFields[] = {
    CXPULSE_TOP(event_id, EventId),
    CXPULSE_TOP(occurred_at, OccurredAt),
    CXPULSE_TOP(customer_id, CustomerId),
    CXPULSE_TOP(contact_id, ContactId),
    CXPULSE_TOP(channel, Channel),
    CXPULSE_TOP(queue, Queue),
    CXPULSE_TOP(agent_id, AgentId),
    CXPULSE_TOP(reason, Reason),
    CXPULSE_TOP(segment, Segment),
    CXPULSE_BODY(contact_started, ContactStarted, direction, Direction),
    CXPULSE_BODY(answered, Answered, wait, Wait),
    CXPULSE_BODY(transferred, Transferred, to_queue, ToQueue),
    CXPULSE_BODY(transferred, Transferred, to_agent_id, ToAgentId),
    CXPULSE_BODY(abandoned, Abandoned, wait, Wait),
    CXPULSE_BODY(ended, Ended, handle_time, HandleTime),
    CXPULSE_BODY(ended, Ended, resolved, Resolved),
    CXPULSE_BODY(ended, Ended, disposition, Disposition),
    CXPULSE_BODY(callback_requested, CallbackRequested, due_at, DueAt),
    CXPULSE_BODY(callback_attempted, CallbackAttempted, connected, Connected),
    CXPULSE_BODY(survey, Survey, metric, Metric),
    CXPULSE_BODY(survey, Survey, score, Score),
    CXPULSE_BODY(survey, Survey, comment, Comment),
    CXPULSE_BODY(sentiment, Sentiment, score, Score),
    CXPULSE_BODY(case_opened, CaseOpened, case_id, CaseId),
    CXPULSE_BODY(case_opened, CaseOpened, sla_due_at, SlaDueAt),
    CXPULSE_BODY(case_closed, CaseClosed, case_id, CaseId),
    CXPULSE_BODY(complaint, Complaint, category, Category),
    CXPULSE_BODY(complaint, Complaint, text, Text),
};

#undef CXPULSE_TOP
#undef CXPULSE_BODY

}  // namespace

std::string EnumLabel(const google::protobuf::EnumValueDescriptor* value) {
  // SurveyMetric -> SURVEY_METRIC_
  const std::string& type = value->type()->name();
  std::string prefix;
  for (size_t i = 0; i < type.size(); ++i) {
    if (i > 0 && type[i] >= 'A' && type[i] <= 'Z' && IsLowerOrDigit(type[i - 1])) prefix += '_';
    prefix += AsciiUpper(type[i]);
  }
  prefix += '_';
  std::string_view name = value->name();
  if (name.size() > prefix.size() && name.starts_with(prefix)) name.remove_prefix(prefix.size());
  std::string label(name);
  for (char& c : label) c = AsciiLower(c);
  return label;
}

absl::StatusOr<FieldPath> FieldPath::Resolve(std::string_view path) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    const size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }

  FieldPath out;
  out.name_ = std::string(path);
  const Descriptor* event = cx::v1::InteractionEvent::descriptor();

  if (parts[0] == kAttributes) {
    if (parts.size() != 2) {
      return absl::InvalidArgumentError(
          Cat("\"", path, "\": an attribute is read as attributes.<name>, e.g. attributes.tier"));
    }
    out.kind_ = Kind::kAttribute;
    out.type_ = Type::kString;
    out.key_ = std::string(parts[1]);
    return out;
  }

  const FieldDescriptor* top = event->FindFieldByName(std::string(parts[0]));
  if (top == nullptr) {
    return absl::InvalidArgumentError(Cat("unknown field \"", path, "\"; an event has: ", EventFieldList()));
  }
  size_t next = 1;
  const FieldDescriptor* leaf = top;
  if (IsBody(top)) {
    const Descriptor* body = top->message_type();
    if (parts.size() == 1) {
      if (body->field_count() == 0) {
        return absl::InvalidArgumentError(Cat("\"", path, "\" is an event body with no fields to read"));
      }
      return absl::InvalidArgumentError(
          Cat("\"", path, "\" is an event body, not a value; name one of its fields: ", FieldList(body)));
    }
    leaf = body->FindFieldByName(std::string(parts[1]));
    if (leaf == nullptr) {
      if (body->field_count() == 0) {
        return absl::InvalidArgumentError(Cat("unknown field \"", path, "\"; ", parts[0], " has no fields"));
      }
      return absl::InvalidArgumentError(Cat("unknown field \"", path, "\"; ", parts[0], " has: ", FieldList(body)));
    }
    out.body_ = top;
    next = 2;
  }
  if (next < parts.size()) {
    const std::string_view known = path.substr(0, parts[next].data() - path.data() - 1);
    return absl::InvalidArgumentError(
        Cat("unknown field \"", path, "\"; ", known, " is ", TypeWord(leaf), " and has no fields"));
  }
  if (leaf->is_repeated()) {
    return absl::InvalidArgumentError(Cat("\"", path, "\" is ", TypeWord(leaf), ", which expressions cannot read"));
  }
  out.leaf_ = leaf;
  for (const TypedField& t : kTypedFields) {
    if (t.body == out.body() && t.leaf == leaf->number()) out.typed_ = t.read;
  }
  switch (leaf->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      out.kind_ = Kind::kInt32;
      out.type_ = Type::kInt;
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      out.kind_ = Kind::kInt64;
      out.type_ = Type::kInt;
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      out.kind_ = Kind::kUInt32;
      out.type_ = Type::kInt;
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      out.kind_ = Kind::kUInt64;
      out.type_ = Type::kInt;
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      out.kind_ = Kind::kDouble;
      out.type_ = Type::kDouble;
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      out.kind_ = Kind::kFloat;
      out.type_ = Type::kDouble;
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out.kind_ = Kind::kBool;
      out.type_ = Type::kBool;
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      out.kind_ = Kind::kString;
      out.type_ = Type::kString;
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      out.kind_ = Kind::kEnum;
      out.type_ = Type::kString;
      const google::protobuf::EnumDescriptor* e = leaf->enum_type();
      for (int i = 0; i < e->value_count(); ++i) {
        out.labels_.emplace_back(e->value(i)->number(), EnumLabel(e->value(i)));
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      if (leaf->message_type() == google::protobuf::Timestamp::descriptor()) {
        out.kind_ = Kind::kTimestamp;
        out.type_ = Type::kTimestamp;
      } else if (leaf->message_type() == google::protobuf::Duration::descriptor()) {
        out.kind_ = Kind::kDuration;
        out.type_ = Type::kDuration;
      } else {
        return absl::InvalidArgumentError(
            Cat("\"", path, "\" is a message; name one of its fields: ", FieldList(leaf->message_type())));
      }
      break;
  }
  return out;
}

bool FieldPath::HasLabel(std::string_view label) const {
  for (const auto& [number, l] : labels_) {
    if (l == label) return true;
  }
  return false;
}

std::string FieldPath::LabelList() const {
  std::string out;
  for (const auto& [number, label] : labels_) Append(&out, out.empty() ? "" : ", ", label);
  return out;
}

std::string_view FieldPath::LabelOf(int number) const {
  for (const auto& [n, label] : labels_) {
    if (n == number) return label;
  }
  return {};  // a number this build's schema does not know (proto3 enums are open)
}

Value FieldPath::Read(const cx::v1::InteractionEvent& event, std::string* scratch) const {
  // Every path returns `v`, so it is built in the caller's Value (NRVO).
  Value v;
  if (typed_ == nullptr) {
    v = ReadByReflection(event, scratch);
    return v;
  }
  v.type = type_;
  typed_(event, &v);
  if (kind_ == Kind::kEnum) {
    v.s = LabelOf(static_cast<int>(v.i));
    v.i = 0;
  }
  return v;
}

Value FieldPath::ReadByReflection(const cx::v1::InteractionEvent& event, std::string* scratch) const {
  Value v;
  v.type = type_;
  if (kind_ == Kind::kAttribute) {
    // The generated map: a hash lookup, no allocation for a std::string key.
    const auto& attributes = event.attributes();
    auto it = attributes.find(key_);
    if (it != attributes.end()) v.s = it->second;
    return v;
  }
  const google::protobuf::Message* message = &event;
  if (body_ != nullptr) {
    // Another body type reads the body's default instance: defaults throughout.
    message = &event.GetReflection()->GetMessage(event, body_);
  }
  const google::protobuf::Reflection* r = message->GetReflection();
  switch (kind_) {
    case Kind::kInt32:
      v.i = r->GetInt32(*message, leaf_);
      break;
    case Kind::kInt64:
      v.i = r->GetInt64(*message, leaf_);
      break;
    case Kind::kUInt32:
      v.i = r->GetUInt32(*message, leaf_);
      break;
    case Kind::kUInt64:
      v.i = static_cast<int64_t>(r->GetUInt64(*message, leaf_));
      break;
    case Kind::kDouble:
      v.d = r->GetDouble(*message, leaf_);
      break;
    case Kind::kFloat:
      v.d = r->GetFloat(*message, leaf_);
      break;
    case Kind::kBool:
      v.b = r->GetBool(*message, leaf_);
      break;
    case Kind::kString:
      // Returns the field's own storage; `scratch` is only written for
      // representations (cord) that have no std::string to point at.
      v.s = r->GetStringReference(*message, leaf_, scratch);
      break;
    case Kind::kEnum:
      v.s = LabelOf(r->GetEnumValue(*message, leaf_));
      break;
    case Kind::kTimestamp: {
      const auto* t =
          google::protobuf::DynamicCastToGenerated<google::protobuf::Timestamp>(&r->GetMessage(*message, leaf_));
      v.i = t == nullptr ? 0 : ToMicros(*t);
      break;
    }
    case Kind::kDuration: {
      const auto* d =
          google::protobuf::DynamicCastToGenerated<google::protobuf::Duration>(&r->GetMessage(*message, leaf_));
      v.i = d == nullptr ? 0 : ToMicros(*d);
      break;
    }
    case Kind::kAttribute:
      break;
  }
  return v;
}

}  // namespace cxpulse::expr
