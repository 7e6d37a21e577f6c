#include "common/yaml_message.h"

#include <algorithm>

#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "common/yaml_errors.h"
#include "engine/rule_set.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/time_util.h"

namespace cxpulse {
namespace {

using google::protobuf::FieldDescriptor;
using ProtoMessage = google::protobuf::Message;
using google::protobuf::Reflection;

absl::Status SetScalar(const std::string& file, const YAML::Node& v, const FieldDescriptor* f, Micros base,
                       ProtoMessage* m) {
  const Reflection* r = m->GetReflection();
  auto bad = [&](std::string_view what) {
    return ErrorAt(file, v, Cat("\"", f->name(), "\" ", what, ", not \"", v.Scalar(), "\""));
  };
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      r->SetString(m, f, v.Scalar());
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool b = false;
      if (!YAML::convert<bool>::decode(v, b)) return bad("takes true or false");
      r->SetBool(m, f, b);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64: {
      int64_t i = 0;
      if (!YAML::convert<int64_t>::decode(v, i)) return bad("takes an integer");
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_INT32) r->SetInt32(m, f, static_cast<int32_t>(i));
      else if (f->cpp_type() == FieldDescriptor::CPPTYPE_INT64) r->SetInt64(m, f, i);
      else if (f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32) r->SetUInt32(m, f, static_cast<uint32_t>(i));
      else r->SetUInt64(m, f, static_cast<uint64_t>(i));
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      double d = 0;
      if (!YAML::convert<double>::decode(v, d)) return bad("takes a number");
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) r->SetDouble(m, f, d);
      else r->SetFloat(m, f, static_cast<float>(d));
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* e = f->enum_type();
      std::vector<std::string> names;
      for (int i = 0; i < e->value_count(); ++i) {
        const std::string label = EnumLabel(e->value(i));
        if (label == v.Scalar() || e->value(i)->name() == v.Scalar()) {
          r->SetEnum(m, f, e->value(i));
          return absl::OkStatus();
        }
        if (e->value(i)->number() != 0) names.push_back(label);
      }
      return bad(Cat("is one of ", absl::StrJoin(names, ", ")));
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      ProtoMessage* sub = r->MutableMessage(m, f);
      if (f->message_type() == google::protobuf::Timestamp::descriptor()) {
        auto* ts = static_cast<google::protobuf::Timestamp*>(sub);
        if (absl::StatusOr<Micros> d = ParseDuration(v.Scalar()); d.ok()) {
          SetTimestamp(base + *d, ts);
        } else if (!google::protobuf::util::TimeUtil::FromString(v.Scalar(), ts)) {
          return bad("takes an RFC 3339 time or an offset such as 90s");
        }
        return absl::OkStatus();
      }
      if (f->message_type() == google::protobuf::Duration::descriptor()) {
        absl::StatusOr<Micros> d = ParseDuration(v.Scalar());
        if (!d.ok()) return bad("takes a duration such as 90s");
        auto* dur = static_cast<google::protobuf::Duration*>(sub);
        dur->set_seconds(*d / kMicrosPerSecond);
        dur->set_nanos(static_cast<int32_t>((*d % kMicrosPerSecond) * 1000));
        return absl::OkStatus();
      }
      return bad("takes a mapping");
    }
  }
  return bad("has an unsupported type");
}

}  // namespace

absl::Status YamlToMessage(const std::string& file, const YAML::Node& node, Micros base, ProtoMessage* m,
                           const std::vector<std::string>& skip) {
  if (node.IsNull()) return absl::OkStatus();  // "ended: {}" or "queued:" with nothing under it
  if (!node.IsMap()) return ErrorAt(file, node, Cat("expected a mapping of ", m->GetDescriptor()->name(), " fields"));
  const auto* d = m->GetDescriptor();
  for (const auto& kv : node) {
    const std::string& name = kv.first.Scalar();
    if (std::find(skip.begin(), skip.end(), name) != skip.end()) continue;
    const FieldDescriptor* f = d->FindFieldByName(name);
    if (f == nullptr) {
      std::vector<std::string> names;
      for (int i = 0; i < d->field_count(); ++i) names.push_back(d->field(i)->name());
      return ErrorAt(file, kv.first,
                     Cat("unknown field \"", name, "\" in ", d->name(), "; one of: ", absl::StrJoin(names, ", ")));
    }
    const YAML::Node& v = kv.second;
    if (f->is_map()) {
      if (!v.IsMap()) return ErrorAt(file, v, Cat("\"", name, "\" takes a mapping"));
      const auto* entry = f->message_type();
      for (const auto& e : v) {
        ProtoMessage* item = m->GetReflection()->AddMessage(m, f);
        item->GetReflection()->SetString(item, entry->field(0), e.first.Scalar());
        if (!e.second.IsScalar()) return ErrorAt(file, e.second, "expected a string");
        item->GetReflection()->SetString(item, entry->field(1), e.second.Scalar());
      }
    } else if (f->is_repeated()) {
      return ErrorAt(file, kv.first, Cat("\"", name, "\" is a list; lists are not supported here"));
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !v.IsScalar()) {
      absl::Status s = YamlToMessage(file, v, base, m->GetReflection()->MutableMessage(m, f));
      if (!s.ok()) return s;
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && v.IsNull()) {
      m->GetReflection()->MutableMessage(m, f);  // present, empty
    } else if (!v.IsScalar()) {
      return ErrorAt(file, v, Cat("\"", name, "\" takes a single value"));
    } else {
      absl::Status s = SetScalar(file, v, f, base, m);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace cxpulse
