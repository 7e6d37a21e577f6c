#include "engine/rule_compiler.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "common/hash.h"
#include "common/strings.h"
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
  void AddAt(std::string_view file, int line, int column, std::string_view message) {
    lines_.push_back(Cat(file, ":", line, ":", column, ": ", message));
  }
  void AddLine(std::string line) { lines_.push_back(std::move(line)); }
  bool empty() const { return lines_.empty(); }
  size_t size() const { return lines_.size(); }
  std::string Join() const { return absl::StrJoin(lines_, "\n"); }

 private:
  std::vector<std::string> lines_;
};

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

struct KindInfo {
  RuleKind kind;
  std::string_view name;
  std::vector<std::string_view> fields;  // allowed besides the common ones
};

const std::vector<KindInfo>& Kinds() {
  static const std::vector<KindInfo> kinds = {
      {RuleKind::kMatch, "match", {"on", "where", "cooldown"}},
      {RuleKind::kCount, "count", {"on", "where", "window", "threshold", "cooldown"}},
      {RuleKind::kSum, "sum", {"on", "where", "value", "window", "threshold", "cooldown"}},
      {RuleKind::kRatio, "ratio", {"numerator", "denominator", "window", "threshold", "min_volume", "cooldown"}},
      {RuleKind::kAbsence, "absence", {"on", "where", "expect", "within", "deadline", "on_repeat"}},
      {RuleKind::kSequence, "sequence", {"steps", "within", "cooldown"}},
      {RuleKind::kSpike, "spike", {"on", "where", "window", "baseline", "factor", "min_count", "cooldown"}},
  };
  return kinds;
}

constexpr std::string_view kCommonFields[] = {"name",    "family", "kind",        "key",  "severity",
                                              "summary", "labels", "escalate_to", "scope"};

bool ParseScope(std::string_view s, RuleScope* out) {
  if (s == "customer") *out = RuleScope::kCustomer;
  else if (s == "centre") *out = RuleScope::kCentre;
  else return false;
  return true;
}

// Compiles rule files: one instance per load, errors collected as it goes.
class Compiler {
 public:
  explicit Compiler(Errors* errors) : errors_(errors) {}

  // The file's lines, to place errors inside block scalars.
  void SetSource(const std::string& text) {
    lines_.clear();
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) lines_.push_back(l);
  }

  bool CompileRule(const std::string& file, const YAML::Node& node, Rule* rule) {
    file_ = file;
    const size_t before = errors_->size();
    if (!node.IsMap()) {
      Fail(node, "a rule must be a mapping");
      return false;
    }
    rule->source = Where(file, node.Mark());

    if (YAML::Node v = Scalar(node, "name", true)) {
      rule->name = v.Scalar();
      if (rule->name.empty() || !std::all_of(rule->name.begin(), rule->name.end(), [](char c) {
            return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
          })) {
        Fail(v, "rule name must be letters, digits and underscores");
      }
    }
    if (YAML::Node v = Scalar(node, "family", true); v && !ParseFamily(v.Scalar(), &rule->family)) {
      Fail(v, Cat("unknown family \"", v.Scalar(), "\"; one of: prevention, gap, escalation"));
    }
    if (YAML::Node v = Scalar(node, "severity", true); v && !ParseSeverity(v.Scalar(), &rule->severity)) {
      Fail(v, Cat("unknown severity \"", v.Scalar(), "\"; one of: info, warning, critical"));
    }
    const KindInfo* kind = nullptr;
    if (YAML::Node v = Scalar(node, "kind", true)) {
      for (const KindInfo& k : Kinds()) {
        if (k.name == v.Scalar()) kind = &k;
      }
      if (kind == nullptr) {
        Fail(v, Cat("unknown rule kind \"", v.Scalar(), "\"; one of: match, count, sum, ratio, absence, sequence, spike"));
      }
    }
    if (kind != nullptr) {
      rule->kind = kind->kind;
      for (const auto& kv : node) {
        const std::string& k = kv.first.Scalar();
        const bool common = std::find(std::begin(kCommonFields), std::end(kCommonFields), k) != std::end(kCommonFields);
        if (!common && std::find(kind->fields.begin(), kind->fields.end(), k) == kind->fields.end()) {
          const bool elsewhere = std::any_of(Kinds().begin(), Kinds().end(), [&](const KindInfo& other) {
            return std::find(other.fields.begin(), other.fields.end(), k) != other.fields.end();
          });
          Fail(kv.first, elsewhere ? Cat("\"", k, "\" does not apply to ", kind->name, " rules")
                                   : Cat("unknown rule field \"", k, "\""));
        }
      }
    }

    if (YAML::Node key = node["key"]) {
      std::vector<YAML::Node> items;
      if (key.IsScalar()) items.push_back(key);
      else if (key.IsSequence()) for (const auto& k : key) items.push_back(k);
      else Fail(key, "\"key\" must be a field or a list of fields");
      if (items.empty() && key.IsSequence()) Fail(key, "\"key\" needs at least one field");
      for (const YAML::Node& k : items) {
        if (std::optional<expr::Expression> e = Expr(k, nullptr)) {
          rule->key_names.push_back(k.Scalar());
          rule->key.push_back(*std::move(e));
        }
      }
    } else {
      Fail(node, "rule is missing \"key\"");
    }

    if (kind != nullptr) CompileKind(node, rule);

    if (YAML::Node v = Scalar(node, "summary", false)) {
      rule->summary = v.Scalar();
      CheckSummary(v, *rule);
    }
    if (YAML::Node v = Scalar(node, "escalate_to", false)) rule->escalate_to = v.Scalar();
    const RuleScope inferred = InferScope(rule->key_names, rule->expect.key_names);
    rule->scope = inferred;
    if (YAML::Node v = Scalar(node, "scope", false)) {
      if (ParseScope(v.Scalar(), &rule->scope)) rule->scope_explicit = true;
      else Fail(v, Cat("unknown scope \"", v.Scalar(), "\"; one of: customer, centre"));
    }
    rule->version = Version(node, rule->scope != inferred);
    if (YAML::Node labels = node["labels"]) {
      if (!labels.IsMap()) {
        Fail(labels, "\"labels\" must be a mapping");
      } else {
        for (const auto& kv : labels) {
          if (!kv.second.IsScalar()) Fail(kv.second, "label values must be strings");
          else rule->labels[kv.first.Scalar()] = kv.second.Scalar();
        }
      }
    }
    return errors_->size() == before;
  }

 private:
  void Fail(const YAML::Node& at, std::string_view msg) { errors_->Add(file_, at, msg); }

  // A hash of the rule's definition: it changes iff the rule's behaviour
  // does. A `scope:` that says what the keys imply changes nothing, so the
  // text is hashed without it, and a scope is added only when it overrides.
  static std::string Version(const YAML::Node& node, bool scope_overridden) {
    YAML::Node definition = node;
    if (node["scope"]) {
      definition = YAML::Clone(node);
      definition.remove("scope");
    }
    StableHash hash;
    hash.Add(YAML::Dump(definition));
    if (scope_overridden) hash.Add("scope overridden");
    return Hex64(hash.value()).substr(0, 12);
  }

  YAML::Node Scalar(const YAML::Node& node, std::string_view field, bool required) {
    YAML::Node v = node[std::string(field)];
    if (!v) {
      if (required) Fail(node, Cat("rule is missing \"", field, "\""));
      return v;
    }
    if (!v.IsScalar()) {
      Fail(v, Cat("\"", field, "\" must be a scalar"));
      return YAML::Node(YAML::NodeType::Undefined);
    }
    return v;
  }

  std::optional<Micros> Duration(const YAML::Node& node, std::string_view field, bool required) {
    YAML::Node v = Scalar(node, field, required);
    if (!v) return std::nullopt;
    absl::StatusOr<Micros> d = ParseDuration(v.Scalar());
    if (!d.ok()) {
      Fail(v, Message(d.status()));
      return std::nullopt;
    }
    if (*d <= 0) {
      Fail(v, Cat("\"", field, "\" must be positive"));
      return std::nullopt;
    }
    return *d;
  }

  std::optional<double> Number(const YAML::Node& node, std::string_view field, bool required, double min,
                               double max) {
    YAML::Node v = Scalar(node, field, required);
    if (!v) return std::nullopt;
    double d = 0;
    if (!YAML::convert<double>::decode(v, d) || d < min || d > max) {
      Fail(v, Cat("\"", field, "\" must be a number from ", min, " to ", max));
      return std::nullopt;
    }
    return d;
  }

  // Compiles an expression written in a YAML scalar; an error's offset in
  // the text becomes a line and column in the file.
  std::optional<expr::Expression> Expr(const YAML::Node& v, const Selector* selector) {
    if (!v.IsScalar()) {
      Fail(v, "expected an expression");
      return std::nullopt;
    }
    auto compiled = expr::Expression::Compile(v.Scalar());
    if (auto* error = std::get_if<expr::CompileError>(&compiled)) {
      const YAML::Mark mark = v.Mark();
      const size_t offset = std::min(error->offset, v.Scalar().size());
      const auto line = static_cast<size_t>(mark.line);
      const char indicator = line < lines_.size() && static_cast<size_t>(mark.column) < lines_[line].size()
                                 ? lines_[line][static_cast<size_t>(mark.column)]
                                 : '\0';
      if (indicator == '|' || indicator == '>') {
        // A block scalar: its text is the following lines, indentation
        // removed, joined by one character (a newline, or a space when
        // folded). Walk them to find the line the offset falls on.
        size_t remaining = offset;
        size_t l = line + 1;
        const size_t indent = l < lines_.size() ? lines_[l].find_first_not_of(' ') : 0;
        while (l + 1 < lines_.size() && remaining > lines_[l].size() - std::min(indent, lines_[l].size())) {
          remaining -= lines_[l].size() - std::min(indent, lines_[l].size()) + 1;
          ++l;
        }
        errors_->AddAt(file_, static_cast<int>(l) + 1, static_cast<int>(indent + remaining) + 1, error->message);
      } else {
        // A quoted scalar's text starts one column after its mark.
        const int quoted = indicator == '"' || indicator == '\'' ? 1 : 0;
        errors_->AddAt(file_, mark.line + 1, mark.column + 1 + quoted + static_cast<int>(offset), error->message);
      }
      return std::nullopt;
    }
    expr::Expression e = std::get<expr::Expression>(std::move(compiled));
    if (selector != nullptr) {
      for (int body : e.BodiesReferenced()) {
        if (body != selector->body && selector->body != 0) {
          Fail(v, Cat("the expression reads ", BodyLabel(static_cast<cx::v1::InteractionEvent::BodyCase>(body)),
                      " fields but applies to ",
                      BodyLabel(static_cast<cx::v1::InteractionEvent::BodyCase>(selector->body)), " events"));
          return std::nullopt;
        }
      }
    }
    return e;
  }

  // `on: <body>` plus optional `where:` (and `key:` when allow_key) in `node`.
  bool CompileSelector(const YAML::Node& node, bool allow_key, Selector* out) {
    if (node.IsScalar()) {  // shorthand: just the event type
      const FieldDescriptor* f = BodyField(node.Scalar());
      if (f == nullptr) {
        Fail(node, Cat("unknown event type \"", node.Scalar(), "\"; one of: ", BodyNames()));
        return false;
      }
      out->body = f->number();
      return true;
    }
    if (!node.IsMap()) {
      Fail(node, "expected an event type or a mapping with \"on\" and \"where\"");
      return false;
    }
    for (const auto& kv : node) {
      const std::string& k = kv.first.Scalar();
      if (k != "on" && k != "where" && !(allow_key && k == "key")) Fail(kv.first, Cat("unknown selector field \"", k, "\""));
    }
    YAML::Node on = node["on"];
    if (!on) {
      Fail(node, "missing \"on\" (the event type)");
      return false;
    }
    if (!CompileSelector(on, false, out)) return false;
    if (YAML::Node where = node["where"]) {
      std::optional<expr::Expression> e = Expr(where, out);
      if (!e) return false;
      if (e->type() != expr::Type::kBool) {
        Fail(where, Cat("\"where\" must be a condition (bool), not ", expr::TypeName(e->type())));
        return false;
      }
      out->where = std::move(e);
    }
    if (YAML::Node key = node["key"]; allow_key && key) {
      std::vector<YAML::Node> items;
      if (key.IsScalar()) items.push_back(key);
      else if (key.IsSequence()) for (const auto& k : key) items.push_back(k);
      for (const YAML::Node& k : items) {
        std::optional<expr::Expression> e = Expr(k, out);
        if (!e) return false;
        out->key_names.push_back(k.Scalar());
        out->key.push_back(*std::move(e));
      }
    }
    return true;
  }

  // The rule-level `on` and `where` of single-selector kinds.
  void TopSelector(const YAML::Node& node, Rule* rule) {
    YAML::Node on = node["on"];
    if (!on) {
      Fail(node, "rule is missing \"on\"");
      return;
    }
    if (!CompileSelector(on, false, &rule->on)) return;
    if (YAML::Node where = node["where"]) {
      std::optional<expr::Expression> e = Expr(where, &rule->on);
      if (!e) return;
      if (e->type() != expr::Type::kBool) {
        Fail(where, Cat("\"where\" must be a condition (bool), not ", expr::TypeName(e->type())));
        return;
      }
      rule->on.where = std::move(e);
    }
  }

  void CompileKind(const YAML::Node& node, Rule* rule) {
    switch (rule->kind) {
      case RuleKind::kMatch:
        TopSelector(node, rule);
        rule->cooldown = Duration(node, "cooldown", false).value_or(0);
        break;
      case RuleKind::kCount:
        TopSelector(node, rule);
        rule->window = Duration(node, "window", true).value_or(0);
        if (YAML::Node t = Scalar(node, "threshold", true)) {
          int n = 0;
          if (!YAML::convert<int>::decode(t, n) || n < 1 || n > 1000) Fail(t, "\"threshold\" must be an integer from 1 to 1000");
          rule->threshold = n;
        }
        rule->cooldown = Duration(node, "cooldown", false).value_or(rule->window);
        break;
      case RuleKind::kSum: {
        TopSelector(node, rule);
        rule->window = Duration(node, "window", true).value_or(0);
        rule->cooldown = Duration(node, "cooldown", false).value_or(rule->window);
        YAML::Node v = node["value"];
        if (!v) {
          Fail(node, "rule is missing \"value\" (what to add up)");
          break;
        }
        rule->value = Expr(v, &rule->on);
        if (!rule->value) break;
        const expr::Type t = rule->value->type();
        if (t != expr::Type::kInt && t != expr::Type::kDouble && t != expr::Type::kDuration) {
          Fail(v, Cat("type mismatch: \"value\" must be a number or a duration, not ", expr::TypeName(t)));
          break;
        }
        if (YAML::Node th = Scalar(node, "threshold", true)) {
          if (t == expr::Type::kDuration) {
            absl::StatusOr<Micros> d = ParseDuration(th.Scalar());
            if (!d.ok()) Fail(th, Cat("type mismatch: \"value\" is a duration, so \"threshold\" must be one: ", Message(d.status())));
            else rule->threshold = static_cast<double>(*d);
          } else if (!YAML::convert<double>::decode(th, rule->threshold)) {
            Fail(th, "type mismatch: \"threshold\" must be a number");
          }
        }
        break;
      }
      case RuleKind::kRatio: {
        YAML::Node num = node["numerator"], den = node["denominator"];
        if (!num) Fail(node, "rule is missing \"numerator\"");
        else CompileSelector(num, false, &rule->on);
        if (!den) Fail(node, "rule is missing \"denominator\"");
        else CompileSelector(den, false, &rule->denominator);
        rule->window = Duration(node, "window", true).value_or(0);
        rule->threshold = Number(node, "threshold", true, 0, 1).value_or(0);
        rule->min_volume = static_cast<int64_t>(Number(node, "min_volume", false, 1, 1e9).value_or(1));
        rule->cooldown = Duration(node, "cooldown", false).value_or(rule->window);
        break;
      }
      case RuleKind::kAbsence: {
        TopSelector(node, rule);
        if (YAML::Node e = node["expect"]) CompileSelector(e, true, &rule->expect);
        else Fail(node, "rule is missing \"expect\" (the follow-up that should come)");
        if (node["within"]) rule->within = Duration(node, "within", true).value_or(0);
        if (YAML::Node d = Scalar(node, "deadline", false)) {
          // "<on body>.<timestamp field>", e.g. callback_requested.due_at
          const std::string& text = d.Scalar();
          const size_t dot = text.find('.');
          const FieldDescriptor* on = dot == std::string::npos ? nullptr : BodyField(text.substr(0, dot));
          const FieldDescriptor* f = on == nullptr ? nullptr : on->message_type()->FindFieldByName(text.substr(dot + 1));
          if (on == nullptr || on->number() != rule->on.body) {
            Fail(d, "\"deadline\" must name a timestamp of the \"on\" event, e.g. callback_requested.due_at");
          } else if (f == nullptr) {
            Fail(d, Cat("unknown field \"", text.substr(dot + 1), "\" in ", on->message_type()->name()));
          } else if (f->type() != FieldDescriptor::TYPE_MESSAGE ||
                     f->message_type() != google::protobuf::Timestamp::descriptor()) {
            Fail(d, Cat("type mismatch: \"", text, "\" is not a timestamp"));
          } else {
            rule->deadline_field = f;
          }
        }
        if (!node["within"] && !node["deadline"]) {
          Fail(node, "an absence rule needs a bound: \"within\" (a duration) or \"deadline\" (a timestamp field)");
        }
        if (node["within"] && node["deadline"]) Fail(node["within"], "give \"within\" or \"deadline\", not both");
        if (YAML::Node r = Scalar(node, "on_repeat", false)) {
          if (r.Scalar() == "replace") rule->on_repeat = OnRepeat::kReplace;
          else if (r.Scalar() == "keep") rule->on_repeat = OnRepeat::kKeep;
          else Fail(r, Cat("unknown on_repeat \"", r.Scalar(), "\"; one of: replace, keep"));
        }
        break;
      }
      case RuleKind::kSequence: {
        YAML::Node steps = node["steps"];
        if (!steps || !steps.IsSequence() || steps.size() < 2) {
          Fail(steps ? steps : node, "a sequence rule needs \"steps\": a list of at least two events");
        } else {
          for (const YAML::Node& s : steps) {
            Selector sel;
            if (CompileSelector(s, false, &sel)) rule->steps.push_back(std::move(sel));
          }
        }
        if (!node["within"]) Fail(node, "a sequence rule needs a bound: \"within\" (a duration)");
        else rule->within = Duration(node, "within", true).value_or(0);
        rule->cooldown = Duration(node, "cooldown", false).value_or(0);
        break;
      }
      case RuleKind::kSpike:
        TopSelector(node, rule);
        rule->window = Duration(node, "window", true).value_or(0);
        rule->baseline = Duration(node, "baseline", true).value_or(0);
        if (rule->baseline > 0 && rule->window > 0 && rule->baseline < 2 * rule->window) {
          Fail(node["baseline"], "\"baseline\" must be at least twice the window");
        }
        rule->threshold = Number(node, "factor", true, 1.01, 1e6).value_or(0);
        rule->min_volume = static_cast<int64_t>(Number(node, "min_count", false, 1, 1e9).value_or(10));
        rule->cooldown = Duration(node, "cooldown", false).value_or(rule->window);
        break;
    }
  }

  void CheckSummary(const YAML::Node& v, const Rule& rule) {
    const std::string& t = v.Scalar();
    for (size_t open = t.find('{'); open != std::string::npos; open = t.find('{', open + 1)) {
      const size_t close = t.find('}', open);
      if (close == std::string::npos) break;
      const std::string name = t.substr(open + 1, close - open - 1);
      static const std::vector<std::string> kBuiltins = {"rule", "count", "value", "window", "due_at", "since",
                                                         "ratio", "baseline", "severity"};
      if (std::find(kBuiltins.begin(), kBuiltins.end(), name) == kBuiltins.end() &&
          std::find(rule.key_names.begin(), rule.key_names.end(), name) == rule.key_names.end()) {
        Fail(v, Cat("unknown placeholder {", name, "} in summary; use a key field or one of: rule, count, value, "
                    "window, due_at, since, ratio, baseline, severity"));
      }
    }
  }

  Errors* errors_;
  std::string file_;
  std::vector<std::string> lines_;
};

}  // namespace

absl::StatusOr<std::vector<std::string>> RuleFiles(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const std::string& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(p, ec)) {
        const std::string ext = entry.path().extension().string();
        const std::string stem = entry.path().stem().string();
        if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml") && !stem.ends_with("_test")) {
          found.push_back(entry.path().string());
        }
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(p, ec)) {
      files.push_back(p);
    } else {
      return absl::NotFoundError(Cat(p, ": no such rule file or directory"));
    }
  }
  return files;
}

absl::StatusOr<std::shared_ptr<const RuleSet>> LoadRuleSet(const std::vector<std::string>& paths) {
  absl::StatusOr<std::vector<std::string>> files = RuleFiles(paths);
  if (!files.ok()) return files.status();
  Errors errors;
  Compiler compiler(&errors);
  std::vector<Rule> rules;
  absl::flat_hash_map<std::string, std::string> first_seen;  // name -> source
  for (const std::string& file : *files) {
    std::ifstream in(file);
    if (!in) {
      errors.AddLine(Cat(file, ": cannot open"));
      continue;
    }
    std::stringstream text;
    text << in.rdbuf();
    YAML::Node root;
    compiler.SetSource(text.str());
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
      if (!compiler.CompileRule(file, node, &rule)) continue;
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
