#include "codec/proto_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>
#include <simdjson.h>

#include <chrono>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace cxpulse {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

// n decimal digits at s[at..], into *out; false if any is not a digit.
bool Digits(std::string_view s, size_t at, size_t n, int64_t* out) {
  if (at + n > s.size()) return false;
  int64_t v = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// A fraction of a second after the '.' at s[at - 1]: 1 to 9 digits, as
// nanoseconds; *end is where it stops.
bool Nanos(std::string_view s, size_t at, int32_t* nanos, size_t* end) {
  size_t i = at;
  int64_t v = 0;
  while (i < s.size() && i - at < 9 && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
  if (i == at || (i < s.size() && s[i] >= '0' && s[i] <= '9')) return false;
  for (size_t k = i - at; k < 9; ++k) v *= 10;
  *nanos = static_cast<int32_t>(v);
  *end = i;
  return true;
}

// "YYYY-MM-DDThh:mm:ss[.f]Z", years 0001 to 9999: what protobuf writes. An
// offset, a lower-case T or Z, a leap second: not here (protobuf decides).
bool ParseTimestamp(std::string_view s, google::protobuf::Timestamp* out) {
  int64_t y, mo, d, h, mi, se;
  if (s.size() < 20 || !Digits(s, 0, 4, &y) || s[4] != '-' || !Digits(s, 5, 2, &mo) || s[7] != '-' ||
      !Digits(s, 8, 2, &d) || s[10] != 'T' || !Digits(s, 11, 2, &h) || s[13] != ':' || !Digits(s, 14, 2, &mi) ||
      s[16] != ':' || !Digits(s, 17, 2, &se)) {
    return false;
  }
  const std::chrono::year_month_day date{std::chrono::year(static_cast<int>(y)),
                                        std::chrono::month(static_cast<unsigned>(mo)),
                                        std::chrono::day(static_cast<unsigned>(d))};
  if (y < 1 || !date.ok() || h > 23 || mi > 59 || se > 59) return false;
  int32_t nanos = 0;
  size_t at = 19;
  if (s[at] == '.' && !Nanos(s, at + 1, &nanos, &at)) return false;
  if (at + 1 != s.size() || s[at] != 'Z') return false;
  out->set_seconds(std::chrono::sys_days(date).time_since_epoch().count() * int64_t{86400} + h * 3600 + mi * 60 + se);
  out->set_nanos(nanos);
  return true;
}

// "[-]S[.f]s", |S| up to 315,576,000,000 (protobuf's bound, 10,000 years).
bool ParseJsonDuration(std::string_view s, google::protobuf::Duration* out) {
  const bool negative = !s.empty() && s[0] == '-';
  size_t i = negative ? 1 : 0;
  const size_t start = i;
  int64_t seconds = 0;
  while (i < s.size() && i - start < 12 && s[i] >= '0' && s[i] <= '9') seconds = seconds * 10 + (s[i++] - '0');
  if (i == start || seconds > 315'576'000'000) return false;
  int32_t nanos = 0;
  if (i < s.size() && s[i] == '.' && !Nanos(s, i + 1, &nanos, &i)) return false;
  if (i + 1 != s.size() || s[i] != 's') return false;
  out->set_seconds(negative ? -seconds : seconds);
  out->set_nanos(negative ? -nanos : nanos);
  return true;
}

// A JSON number as a double, as protobuf reads a floating field (its text
// through strtod; simdjson's reading is correctly rounded too).
bool NumberAsDouble(element v, double* out) {
  switch (v.type()) {
    case element_type::DOUBLE: return v.get_double().get(*out) == simdjson::SUCCESS;
    case element_type::INT64: *out = static_cast<double>(v.get_int64().value_unsafe()); return true;
    case element_type::UINT64: *out = static_cast<double>(v.get_uint64().value_unsafe()); return true;
    default: return false;
  }
}

// A JSON integer within [lo, hi].
bool Integer(element v, int64_t lo, int64_t hi, int64_t* out) {
  if (v.type() != element_type::INT64) return false;
  const int64_t n = v.get_int64().value_unsafe();
  if (n < lo || n > hi) return false;
  *out = n;
  return true;
}

// The protobuf wire encoding, appended to a string.
void Varint(uint64_t v, std::string* out) {
  char bytes[10];
  size_t n = 0;
  while (v >= 0x80) {
    bytes[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  bytes[n++] = static_cast<char>(v);
  out->append(bytes, n);
}
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2 };
void Tag(int number, WireType type, std::string* out) { Varint((static_cast<uint64_t>(number) << 3) | type, out); }
void LengthDelimited(int number, std::string_view bytes, std::string* out) {
  Tag(number, kLengthDelimited, out);
  Varint(bytes.size(), out);
  out->append(bytes.data(), bytes.size());
}
// Timestamp and Duration alike: seconds = 1, nanos = 2 (negative int32s as 10-byte varints, as protobuf does).
void SecondsNanos(int64_t seconds, int32_t nanos, std::string* out) {
  if (seconds != 0) {
    Tag(1, kVarint, out);
    Varint(static_cast<uint64_t>(seconds), out);
  }
  if (nanos != 0) {
    Tag(2, kVarint, out);
    Varint(static_cast<uint64_t>(static_cast<int64_t>(nanos)), out);
  }
}

}  // namespace

struct ProtoJsonParser::Impl {
  simdjson::dom::parser parser;
  std::string padded;                // the text, copied with simdjson's padding after it
  std::vector<std::string> nested;   // a nested message's encoding, by depth
  std::unique_ptr<Message> fallback;  // protobuf's parser reads into this
  const Descriptor* fallback_type = nullptr;

  // A message type's fields by both the names proto3 JSON accepts. Few
  // types, so found by a scan; held by pointer, as a caller keeps its type's
  // while a nested type's is added.
  struct Fields {
    const Descriptor* type;
    absl::flat_hash_map<std::string_view, const FieldDescriptor*> by_name;
  };
  std::vector<std::unique_ptr<Fields>> fields;
  absl::flat_hash_map<const EnumDescriptor*, absl::flat_hash_map<std::string_view, int>> enums;

  const Fields& FieldsOf(const Descriptor* d) {
    for (const auto& f : fields) {
      if (f->type == d) return *f;
    }
    auto& added = fields.emplace_back(std::make_unique<Fields>(Fields{d, {}}));
    for (int i = 0; i < d->field_count(); ++i) {
      added->by_name.emplace(d->field(i)->json_name(), d->field(i));
      added->by_name.emplace(d->field(i)->name(), d->field(i));
    }
    return *added;
  }

  // The field named `name`; `next` is the index of the field after the
  // previous one, where a writer that follows field order (protobuf's does)
  // has put this one.
  static const FieldDescriptor* Field(const Fields& table, std::string_view name, int next) {
    if (next < table.type->field_count()) {
      const FieldDescriptor* f = table.type->field(next);
      if (f->json_name() == name || f->name() == name) return f;
    }
    auto f = table.by_name.find(name);
    return f == table.by_name.end() ? nullptr : f->second;
  }

  bool EnumNumber(const EnumDescriptor* e, std::string_view name, int* out) {
    auto [it, added] = enums.try_emplace(e);
    if (added) {
      for (int i = 0; i < e->value_count(); ++i) it->second.emplace(e->value(i)->name(), e->value(i)->number());
    }
    auto v = it->second.find(name);
    if (v == it->second.end()) return false;
    *out = v->second;
    return true;
  }

  // Sized once: a caller holds the buffer of its depth while deeper ones are used.
  Impl() : nested(kMostDepth + 2) {}
  // Looked up once: each descriptor() call goes through a std::call_once.
  const Descriptor* const timestamp = google::protobuf::Timestamp::descriptor();
  const Descriptor* const duration = google::protobuf::Duration::descriptor();

  std::string& Nested(int depth) {
    std::string& out = nested[static_cast<size_t>(depth)];
    out.clear();
    return out;
  }

  // Each returns false to leave the text to protobuf's parser. `depth`
  // bounds the recursion as protobuf's parser does.
  static constexpr int kMostDepth = 100;
  bool Object(element json, const Descriptor* d, int depth, std::string* out) {
    object obj;
    if (depth > kMostDepth || json.get_object().get(obj) != simdjson::SUCCESS) return false;
    const Fields& table = FieldsOf(d);
    uint64_t seen = 0, oneofs = 0;
    int next = 0;
    for (const auto field : obj) {
      const FieldDescriptor* f = Field(table, field.key, next);
      if (f == nullptr || f->index() >= 64 || field.value.is_null()) return false;
      next = f->index() + 1;
      const uint64_t bit = uint64_t{1} << f->index();
      if ((seen & bit) != 0) return false;  // a field given twice
      seen |= bit;
      if (const auto* oneof = f->containing_oneof(); oneof != nullptr) {
        if (oneof->index() >= 64 || (oneofs & (uint64_t{1} << oneof->index())) != 0) return false;  // two members
        oneofs |= uint64_t{1} << oneof->index();
      }
      if (f->is_map() ? !Map(field.value, f, depth, out) : f->is_repeated() || !Singular(field.value, f, depth, out)) {
        return false;
      }
    }
    return true;
  }

  bool Singular(element v, const FieldDescriptor* f, int depth, std::string* out) {
    std::string_view text;
    int64_t n = 0;
    const int number = f->number();
    switch (f->type()) {
      case FieldDescriptor::TYPE_STRING:
        if (v.get_string().get(text) != simdjson::SUCCESS) return false;
        LengthDelimited(number, text, out);
        return true;
      case FieldDescriptor::TYPE_ENUM: {
        int e = 0;
        if (v.get_string().get(text) != simdjson::SUCCESS || !EnumNumber(f->enum_type(), text, &e)) return false;
        Tag(number, kVarint, out);
        Varint(static_cast<uint64_t>(static_cast<int64_t>(e)), out);
        return true;
      }
      case FieldDescriptor::TYPE_BOOL:
        if (v.type() != element_type::BOOL) return false;
        Tag(number, kVarint, out);
        Varint(v.get_bool().value_unsafe() ? 1 : 0, out);
        return true;
      case FieldDescriptor::TYPE_INT32:
      case FieldDescriptor::TYPE_UINT32:
      case FieldDescriptor::TYPE_INT64:
        if (f->type() == FieldDescriptor::TYPE_INT32
                ? !Integer(v, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max(), &n)
            : f->type() == FieldDescriptor::TYPE_UINT32
                ? !Integer(v, 0, std::numeric_limits<uint32_t>::max(), &n)
                : !Integer(v, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), &n)) {
          return false;
        }
        Tag(number, kVarint, out);
        Varint(static_cast<uint64_t>(n), out);
        return true;
      case FieldDescriptor::TYPE_DOUBLE: {
        double x = 0;
        if (!NumberAsDouble(v, &x)) return false;
        uint64_t bits = 0;
        std::memcpy(&bits, &x, sizeof bits);
        Tag(number, kFixed64, out);
        for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(bits >> (8 * i)));
        return true;
      }
      case FieldDescriptor::TYPE_MESSAGE: {
        const Descriptor* type = f->message_type();
        std::string& body = Nested(depth);
        if (type == timestamp || type == duration) {
          if (v.get_string().get(text) != simdjson::SUCCESS) return false;
          if (type == timestamp) {
            google::protobuf::Timestamp t;
            if (!ParseTimestamp(text, &t)) return false;
            SecondsNanos(t.seconds(), t.nanos(), &body);
          } else {
            google::protobuf::Duration d;
            if (!ParseJsonDuration(text, &d)) return false;
            SecondsNanos(d.seconds(), d.nanos(), &body);
          }
        } else if (type->file()->name().rfind("google/protobuf/", 0) == 0) {
          return false;  // other well-known types (Struct, Any, wrappers) have JSON forms of their own
        } else if (!Object(v, type, depth + 1, &body)) {
          return false;
        }
        LengthDelimited(number, body, out);
        return true;
      }
      default:  // uint64 (quoted when large), float (range-checked by protobuf), sint, fixed, bytes
        return false;
    }
  }

  // map<string, string>, each key once: an entry message (key = 1, value = 2) per key.
  bool Map(element v, const FieldDescriptor* f, int depth, std::string* out) {
    const Descriptor* entry_type = f->message_type();
    object obj;
    if (entry_type->map_key()->type() != FieldDescriptor::TYPE_STRING ||
        entry_type->map_value()->type() != FieldDescriptor::TYPE_STRING || v.get_object().get(obj) != simdjson::SUCCESS) {
      return false;
    }
    size_t i = 0;
    for (const auto field : obj) {
      std::string_view text;
      if (field.value.get_string().get(text) != simdjson::SUCCESS) return false;
      size_t j = 0;
      for (const auto earlier : obj) {
        if (j++ == i) break;
        if (earlier.key == field.key) return false;  // a key given twice
      }
      ++i;
      std::string& entry = Nested(depth);
      LengthDelimited(1, field.key, &entry);
      LengthDelimited(2, text, &entry);
      LengthDelimited(f->number(), entry, out);
    }
    return true;
  }
};

ProtoJsonParser::ProtoJsonParser() : impl_(std::make_unique<Impl>()) {}
ProtoJsonParser::~ProtoJsonParser() = default;

absl::Status ProtoJsonParser::ToWire(std::string_view json, const Descriptor* type, std::string* wire) {
  wire->clear();
  impl_->padded.resize(json.size() + simdjson::SIMDJSON_PADDING);
  std::memcpy(impl_->padded.data(), json.data(), json.size());
  element root;
  if (impl_->parser.parse(impl_->padded.data(), json.size(), false).get(root) == simdjson::SUCCESS &&
      impl_->Object(root, type, 0, wire)) {
    return absl::OkStatus();
  }
  ++fallbacks_;
  wire->clear();
  if (impl_->fallback_type != type) {
    impl_->fallback.reset(google::protobuf::MessageFactory::generated_factory()->GetPrototype(type)->New());
    impl_->fallback_type = type;
  }
  impl_->fallback->Clear();
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), impl_->fallback.get());
  if (!status.ok()) return absl::InvalidArgumentError(status.message().as_string());
  impl_->fallback->SerializeToString(wire);
  return absl::OkStatus();
}

absl::Status ProtoJsonParser::Parse(std::string_view json, Message* message) {
  message->Clear();
  if (absl::Status s = ToWire(json, message->GetDescriptor(), &wire_); !s.ok()) return s;
  if (!message->ParseFromString(wire_)) return absl::InternalError("the encoding of a parsed JSON text does not decode");
  return absl::OkStatus();
}

}  // namespace cxpulse
