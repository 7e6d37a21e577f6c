// FieldPath: a field of cx.v1.InteractionEvent named the way rules name it
// ("queue", "occurred_at", "survey.score", "attributes.tier"), resolved once
// against the protobuf descriptors and then read from events without
// allocating: through the generated accessor for every field of this build's
// schema (chosen once, at Resolve), by reflection for any other. Immutable
// after Resolve; Read is const and may run on any thread, each with its own
// scratch string.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "cx/v1/event.pb.h"
#include "expr/value.h"
#include "google/protobuf/descriptor.h"

namespace cxpulse::expr {

class FieldPath {
 public:
  FieldPath() = default;

  // Resolves `path`; the error message is in rule-author terms, e.g.
  // `unknown field "survey.rating"; survey has: metric, score, comment`.
  static absl::StatusOr<FieldPath> Resolve(std::string_view path);

  // Reads the field. A body field of an event whose body is another type reads
  // as its default (0, "", false, the enum's zero value); a missing attribute
  // as "". Strings view the event, this FieldPath (enum labels) or `scratch`.
  Value Read(const cx::v1::InteractionEvent& event, std::string* scratch) const;
  // The same read through the protobuf reflection API alone: Read's fallback
  // for a field without a generated accessor in field_path.cc's table, and
  // what tests hold that table to (tests/expr/field_path_test.cc).
  Value ReadByReflection(const cx::v1::InteractionEvent& event, std::string* scratch) const;
  // Whether Read goes through a generated accessor.
  bool typed() const { return typed_ != nullptr; }

  Type type() const { return type_; }
  const std::string& name() const { return name_; }
  // The oneof field number of InteractionEvent.body this path reads, or 0.
  int body() const { return body_ == nullptr ? 0 : body_->number(); }

  // Enum fields read as labels: CHANNEL_VOICE -> "voice".
  bool is_enum() const { return kind_ == Kind::kEnum; }
  bool HasLabel(std::string_view label) const;
  std::string LabelList() const;  // "unspecified, voice, chat, ..."

 private:
  enum class Kind {
    kInt32,
    kInt64,
    kUInt32,
    kUInt64,
    kDouble,
    kFloat,
    kBool,
    kString,
    kEnum,
    kTimestamp,
    kDuration,
    kAttribute
  };

  // Reads a field through its generated accessor into `out`, whose type is
  // already set; an enum reads as its number, in `i`.
  using TypedRead = void (*)(const cx::v1::InteractionEvent&, Value* out);

  std::string_view LabelOf(int number) const;

  std::string name_;
  Kind kind_ = Kind::kString;
  Type type_ = Type::kString;
  const google::protobuf::FieldDescriptor* body_ = nullptr;  // member of the body oneof, or null
  const google::protobuf::FieldDescriptor* leaf_ = nullptr;  // in the event or in the body message
  TypedRead typed_ = nullptr;                                // or null: reflection
  std::string key_;                                          // kAttribute
  std::vector<std::pair<int, std::string>> labels_;          // kEnum: (number, label), in declaration order
};

// The lower-case short name of an enum value: CHANNEL_VOICE in enum Channel ->
// "voice", SURVEY_METRIC_NPS in enum SurveyMetric -> "nps".
std::string EnumLabel(const google::protobuf::EnumValueDescriptor* value);

}  // namespace cxpulse::expr
