#include "engine/rule_set.h"
#include "common/strings.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "common/hash.h"
#include "common/yaml_errors.h"

namespace cxpulse {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

const Descriptor* EventDescriptor() { return cx::v1::InteractionEvent::descriptor(); }

// The oneof member of InteractionEvent.body called `name`, or null.
const FieldDescriptor* BodyField(std::string_view name) {
  const FieldDescriptor* f = EventDescriptor()->FindFieldByName(std::string(name));
  if (f == nullptr || f->containing_oneof() == nullptr || f->containing_oneof()->name() != "body") {
    return nullptr;
  }
  return f;
}

std::string BodyNames() {
  std::vector<std::string> names;
  const auto* oneof = EventDescriptor()->FindOneofByName("body");
  for (int i = 0; i < oneof->field_count(); ++i) names.push_back(oneof->field(i)->name());
  return absl::StrJoin(names, ", ");
}

// Collects every error of a load, so `check` shows them all at once.
class Errors {
 public:
  void Add(std::string_view file, const YAML::Node& node, std::string_view message) {
    lines_.push_back(Cat(Where(file, node.Mark()), ": ", message));
  }
  void AddLine(std::string line) { lines_.push_back(std::move(line)); }
  bool empty() const { return lines_.empty(); }
  size_t size() const { return lines_.size(); }
  std::string Join() const { return absl::StrJoin(lines_, "\n"); }

 private:
  std::vector<std::string> lines_;
};

constexpr std::string_view kRuleKeys[] = {"name",     "family",  "kind",   "on",        "expect",
                                          "key",      "window",  "threshold", "cooldown", "within",
                                          "deadline", "severity", "summary", "labels",    "escalate_to"};

bool ParseFamily(std::string_view s, cx::v1::Family* out) {
  if (s == "prevention") *out = cx::v1::FAMILY_PREVENTION;
  else if (s == "gap") *out = cx::v1::FAMILY_GAP;
  else if (s == "escalation") *out = cx::v1::FAMILY_ESCALATION;
  else return false;
  return true;
}

bool ParseSeverity(std::string_view s, cx::v1::Severity* out) {
  if (s == "info") *out = cx::v1::SEVERITY_INFO;
  else if (s == "warning") *out = cx::v1::SEVERITY_WARNING;
  else if (s == "critical") *out = cx::v1::SEVERITY_CRITICAL;
  else return false;
  return true;
}

// Reads one rule mapping. Returns false (with errors added) if it is invalid.
bool CompileRule(const std::string& file, const YAML::Node& node, Errors* errors, Rule* rule) {
  const size_t before = errors->size();
  auto fail = [&](const YAML::Node& at, std::string_view msg) { errors->Add(file, at, msg); };
  if (!node.IsMap()) {
    fail(node, "a rule must be a mapping");
    return false;
  }
  for (const auto& kv : node) {
    std::string_view k = kv.first.Scalar();
    if (std::find(std::begin(kRuleKeys), std::end(kRuleKeys), k) == std::end(kRuleKeys)) {
      fail(kv.first, Cat("unknown rule field \"", k, "\""));
    }
  }
  rule->source = Where(file, node.Mark());
  rule->version = Hex64(StableHash().Add(YAML::Dump(node)).value()).substr(0, 12);

  auto scalar = [&](std::string_view field, bool required) -> const YAML::Node {
    YAML::Node v = node[std::string(field)];
    if (!v) {
      if (required) fail(node, Cat("rule is missing \"", field, "\""));
      return v;
    }
    if (!v.IsScalar()) {
      fail(v, Cat("\"", field, "\" must be a scalar"));
      return YAML::Node(YAML::NodeType::Undefined);
    }
    return v;
  };
  auto duration = [&](std::string_view field, bool required, Micros* out) {
    YAML::Node v = scalar(field, required);
    if (!v) return;
    absl::StatusOr<Micros> d = ParseDuration(v.Scalar());
    if (!d.ok()) {
      fail(v, Message(d.status()));
    } else if (*d <= 0) {
      fail(v, Cat("\"", field, "\" must be positive"));
    } else {
      *out = *d;
    }
  };
  auto body = [&](std::string_view field, int* out) {
    YAML::Node v = scalar(field, true);
    if (!v) return;
    const FieldDescriptor* f = BodyField(v.Scalar());
    if (f == nullptr) {
      fail(v, Cat("unknown event type \"", v.Scalar(), "\"; one of: ", BodyNames()));
    } else {
      *out = f->number();
    }
  };

  if (YAML::Node v = scalar("name", true)) {
    rule->name = v.Scalar();
    if (rule->name.empty() || !std::all_of(rule->name.begin(), rule->name.end(), [](char c) {
          return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
        })) {
      fail(v, "rule name must be letters, digits and underscores");
    }
  }
  if (YAML::Node v = scalar("family", true); v && !ParseFamily(v.Scalar(), &rule->family)) {
    fail(v, Cat("unknown family \"", v.Scalar(), "\"; one of: prevention, gap, escalation"));
  }
  if (YAML::Node v = scalar("severity", true); v && !ParseSeverity(v.Scalar(), &rule->severity)) {
    fail(v, Cat("unknown severity \"", v.Scalar(), "\"; one of: info, warning, critical"));
  }
  body("on", &rule->on_body);

  if (YAML::Node key = node["key"]) {
    std::vector<YAML::Node> items;
    if (key.IsScalar()) items.push_back(key);
    else if (key.IsSequence()) for (const auto& k : key) items.push_back(k);
    else fail(key, "\"key\" must be a field name or a list of them");
    for (const YAML::Node& k : items) {
      absl::StatusOr<FieldReader> reader = FieldReader::Resolve(k.IsScalar() ? k.Scalar() : "");
      if (!reader.ok()) fail(k, Message(reader.status()));
      else rule->key.push_back(*std::move(reader));
    }
    if (items.empty() && key.IsSequence()) fail(key, "\"key\" needs at least one field");
  } else {
    fail(node, "rule is missing \"key\"");
  }

  YAML::Node kind = scalar("kind", true);
  if (kind && kind.Scalar() == "count") {
    rule->kind = RuleKind::kCount;
    duration("window", true, &rule->window);
    if (YAML::Node t = scalar("threshold", true)) {
      int n = 0;
      if (!YAML::convert<int>::decode(t, n) || n < 1 || n > 1000) {
        fail(t, "\"threshold\" must be an integer from 1 to 1000");
      } else {
        rule->threshold = n;
      }
    }
    rule->cooldown = rule->window;  // default: one finding per key per window
    duration("cooldown", false, &rule->cooldown);
    for (std::string_view f : {"expect", "within", "deadline"}) {
      if (node[std::string(f)]) fail(node[std::string(f)], Cat("\"", f, "\" is for absence rules"));
    }
  } else if (kind && kind.Scalar() == "absence") {
    rule->kind = RuleKind::kAbsence;
    body("expect", &rule->expect_body);
    duration("within", false, &rule->within);
    if (YAML::Node d = scalar("deadline", false)) {
      // "<on body>.<timestamp field>", e.g. callback_requested.due_at
      std::string_view text = d.Scalar();
      size_t dot = text.find('.');
      const FieldDescriptor* on = dot == std::string_view::npos ? nullptr : BodyField(text.substr(0, dot));
      const FieldDescriptor* f =
          on == nullptr ? nullptr : on->message_type()->FindFieldByName(std::string(text.substr(dot + 1)));
      if (on == nullptr || on->number() != rule->on_body) {
        fail(d, "\"deadline\" must name a field of the \"on\" event, e.g. callback_requested.due_at");
      } else if (f == nullptr) {
        fail(d, Cat("unknown field \"", text.substr(dot + 1), "\" in ", on->message_type()->name()));
      } else if (f->type() != FieldDescriptor::TYPE_MESSAGE ||
                 f->message_type() != google::protobuf::Timestamp::descriptor()) {
        fail(d, Cat("type mismatch: \"", text, "\" is not a timestamp"));
      } else {
        rule->deadline_field = f;
      }
    }
    if (!node["within"] && !node["deadline"]) {
      fail(node, "an absence rule needs a bound: \"within\" (a duration) or \"deadline\" (a timestamp field)");
    }
    if (node["within"] && node["deadline"]) fail(node["within"], "give \"within\" or \"deadline\", not both");
    for (std::string_view f : {"window", "threshold", "cooldown"}) {
      if (node[std::string(f)]) fail(node[std::string(f)], Cat("\"", f, "\" is for count rules"));
    }
  } else if (kind) {
    fail(kind, Cat("unknown rule kind \"", kind.Scalar(), "\"; supported: count, absence"));
  }

  if (YAML::Node v = scalar("summary", false)) rule->summary = v.Scalar();
  if (YAML::Node v = scalar("escalate_to", false)) rule->escalate_to = v.Scalar();
  if (YAML::Node labels = node["labels"]) {
    if (!labels.IsMap()) {
      fail(labels, "\"labels\" must be a mapping");
    } else {
      for (const auto& kv : labels) {
        if (!kv.second.IsScalar()) fail(kv.second, "label values must be strings");
        else rule->labels[kv.first.Scalar()] = kv.second.Scalar();
      }
    }
  }
  return errors->size() == before;
}

absl::Status CollectFiles(const std::vector<std::string>& paths, std::vector<std::string>* files) {
  namespace fs = std::filesystem;
  for (const std::string& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(p, ec)) {
        const std::string ext = entry.path().extension().string();
        // *_test.yaml files are rule unit tests, not rules.
        const std::string stem = entry.path().stem().string();
        if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml") &&
            !(stem.size() > 5 && stem.ends_with("_test"))) {
          found.push_back(entry.path().string());
        }
      }
      std::sort(found.begin(), found.end());
      files->insert(files->end(), found.begin(), found.end());
    } else if (fs::exists(p, ec)) {
      files->push_back(p);
    } else {
      return absl::NotFoundError(Cat(p, ": no such rule file or directory"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FieldReader> FieldReader::Resolve(std::string_view name) {
  FieldReader r;
  r.name_ = std::string(name);
  r.field_ = EventDescriptor()->FindFieldByName(r.name_);
  if (r.field_ == nullptr || r.field_->containing_oneof() != nullptr || r.field_->is_repeated() ||
      r.field_->is_map()) {
    return absl::InvalidArgumentError(
        Cat("unknown key field \"", name,
                     "\"; one of: customer_id, contact_id, channel, queue, agent_id, reason, segment"));
  }
  if (r.field_->type() == FieldDescriptor::TYPE_ENUM) {
    const auto* e = r.field_->enum_type();
    int max = 0;
    for (int i = 0; i < e->value_count(); ++i) max = std::max(max, e->value(i)->number());
    r.enum_labels_.assign(static_cast<size_t>(max) + 1, "");
    for (int i = 0; i < e->value_count(); ++i) {
      r.enum_labels_[static_cast<size_t>(e->value(i)->number())] = EnumLabel(e->value(i));
    }
  } else if (r.field_->type() != FieldDescriptor::TYPE_STRING) {
    return absl::InvalidArgumentError(Cat("type mismatch: key field \"", name, "\" is not a string or enum"));
  }
  return r;
}

std::string_view FieldReader::Read(const cx::v1::InteractionEvent& event) const {
  const auto* reflection = event.GetReflection();
  if (field_->type() == FieldDescriptor::TYPE_ENUM) {
    const int v = reflection->GetEnumValue(event, field_);
    return v >= 0 && static_cast<size_t>(v) < enum_labels_.size() ? std::string_view(enum_labels_[static_cast<size_t>(v)])
                                                                  : std::string_view("other");
  }
  // GetStringReference returns the field's own storage for plain string
  // fields; the scratch is only used for cords, which the schema has none of.
  static thread_local std::string scratch;
  return reflection->GetStringReference(event, field_, &scratch);
}

std::string EnumLabel(const google::protobuf::EnumValueDescriptor* value) {
  // CHANNEL_VOICE in enum Channel -> "voice"
  std::string name = value->name();
  std::string prefix = value->type()->name();
  std::string upper_prefix;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (i > 0 && absl::ascii_isupper(static_cast<unsigned char>(prefix[i]))) upper_prefix += '_';
    upper_prefix += absl::ascii_toupper(static_cast<unsigned char>(prefix[i]));
  }
  upper_prefix += '_';
  if (name.starts_with(upper_prefix)) name = name.substr(upper_prefix.size());
  return absl::AsciiStrToLower(name);
}

std::string_view BodyLabel(cx::v1::InteractionEvent::BodyCase body) {
  static const std::array<std::string, kMaxBodyCase> kLabels = [] {
    std::array<std::string, kMaxBodyCase> labels;
    labels.fill("unknown");
    const auto* oneof = EventDescriptor()->FindOneofByName("body");
    for (int i = 0; i < oneof->field_count(); ++i) {
      labels[static_cast<size_t>(oneof->field(i)->number())] = oneof->field(i)->name();
    }
    labels[0] = "none";
    return labels;
  }();
  const auto i = static_cast<size_t>(body);
  return i < kLabels.size() ? std::string_view(kLabels[i]) : std::string_view("unknown");
}

RuleSet::RuleSet(std::vector<Rule> rules) : rules_(std::move(rules)) {
  for (size_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = rules_[i];
    by_body_[static_cast<size_t>(r.on_body)].push_back(static_cast<int>(i));
    if (r.kind == RuleKind::kAbsence && r.expect_body != r.on_body) {
      by_body_[static_cast<size_t>(r.expect_body)].push_back(static_cast<int>(i));
    }
  }
}

absl::StatusOr<std::shared_ptr<const RuleSet>> LoadRuleSet(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  if (absl::Status s = CollectFiles(paths, &files); !s.ok()) return s;
  Errors errors;
  std::vector<Rule> rules;
  absl::flat_hash_map<std::string, std::string> first_seen;  // name -> source
  for (const std::string& file : files) {
    std::ifstream in(file);
    if (!in) {
      errors.AddLine(Cat(file, ": cannot open"));
      continue;
    }
    std::stringstream text;
    text << in.rdbuf();
    YAML::Node root;
    try {
      root = YAML::Load(text.str());
    } catch (const YAML::Exception& e) {
      errors.AddLine(Cat(Where(file, e.mark), ": ", e.msg));
      continue;
    }
    if (!root.IsMap() || !root["rules"] || !root["rules"].IsSequence()) {
      errors.Add(file, root, "a rule file is a mapping with a \"rules\" list");
      continue;
    }
    for (const auto& kv : root) {
      if (kv.first.Scalar() != "rules") errors.Add(file, kv.first, Cat("unknown top-level key \"", kv.first.Scalar(), "\""));
    }
    for (const YAML::Node& node : root["rules"]) {
      Rule rule;
      if (!CompileRule(file, node, &errors, &rule)) continue;
      auto [it, inserted] = first_seen.try_emplace(rule.name, rule.source);
      if (!inserted) {
        errors.Add(file, node["name"], Cat("duplicate rule name \"", rule.name, "\" (first defined at ", it->second, ")"));
        continue;
      }
      rules.push_back(std::move(rule));
    }
  }
  if (!errors.empty()) return absl::InvalidArgumentError(errors.Join());
  return std::make_shared<const RuleSet>(std::move(rules));
}

}  // namespace cxpulse
