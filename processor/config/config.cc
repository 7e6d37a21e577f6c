#include "config/config.h"
#include "common/strings.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/yaml_errors.h"

namespace cxpulse {
namespace {

// Each reader checks the node's type so a typo gives a positioned message
// instead of a yaml-cpp exception with no file name.
absl::Status ReadString(const std::string& file, const YAML::Node& node, std::string* out) {
  if (!node.IsScalar()) return ErrorAt(file, node, "expected a string");
  *out = node.Scalar();
  return absl::OkStatus();
}

absl::Status ReadDuration(const std::string& file, const YAML::Node& node, Micros* out) {
  if (!node.IsScalar()) return ErrorAt(file, node, "expected a duration such as 30s");
  absl::StatusOr<Micros> d = ParseDuration(node.Scalar());
  if (!d.ok()) return ErrorAt(file, node, Message(d.status()));
  *out = *d;
  return absl::OkStatus();
}

absl::Status ReadInt(const std::string& file, const YAML::Node& node, int* out) {
  int value = 0;
  if (!node.IsScalar() || !YAML::convert<int>::decode(node, value)) {
    return ErrorAt(file, node, "expected an integer");
  }
  *out = value;
  return absl::OkStatus();
}

absl::Status ReadDouble(const std::string& file, const YAML::Node& node, double* out) {
  double value = 0;
  if (!node.IsScalar() || !YAML::convert<double>::decode(node, value)) {
    return ErrorAt(file, node, "expected a number");
  }
  *out = value;
  return absl::OkStatus();
}

absl::Status CheckKeys(const std::string& file, const YAML::Node& map,
                       std::initializer_list<std::string_view> allowed) {
  if (!map.IsMap()) return ErrorAt(file, map, "expected a mapping");
  for (const auto& kv : map) {
    const std::string& k = kv.first.Scalar();
    bool known = false;
    for (std::string_view a : allowed) known = known || k == a;
    if (!known) return ErrorAt(file, kv.first, Cat("unknown key \"", k, "\""));
  }
  return absl::OkStatus();
}

// Each window costs a bucket of counters per (queue, channel) per `bucket`.
constexpr Micros kMaxKpiBuckets = 1440;

// `{threshold: 30s, objective: 0.85}`; keys left out keep `*out`'s values.
absl::Status ReadServiceLevel(const std::string& file, const YAML::Node& node, ServiceLevel* out) {
  if (auto s = CheckKeys(file, node, {"threshold", "objective"}); !s.ok()) return s;
  if (node["threshold"]) {
    if (auto s = ReadDuration(file, node["threshold"], &out->threshold); !s.ok()) return s;
    if (out->threshold < 0) return ErrorAt(file, node["threshold"], "must not be negative");
  }
  if (node["objective"]) {
    if (auto s = ReadDouble(file, node["objective"], &out->objective); !s.ok()) return s;
    if (!(out->objective >= 0 && out->objective <= 1)) return ErrorAt(file, node["objective"], "must be between 0 and 1");
  }
  return absl::OkStatus();
}

absl::Status ParseKpiQueues(const std::string& file, const YAML::Node& queues, KpiConfig* k) {
  if (!queues.IsMap()) return ErrorAt(file, queues, "expected a mapping of queue names");
  for (const auto& kv : queues) {
    const std::string& name = kv.first.Scalar();
    if (name.empty() || name == "other") return ErrorAt(file, kv.first, Cat("\"", name, "\" is not a queue name"));
    ServiceLevel sl = k->service_level;
    if (!kv.second.IsNull()) {
      if (auto s = CheckKeys(file, kv.second, {"service_level"}); !s.ok()) return s;
      if (kv.second["service_level"]) {
        if (auto s = ReadServiceLevel(file, kv.second["service_level"], &sl); !s.ok()) return s;
      }
    }
    k->queues[name] = sl;
  }
  return absl::OkStatus();
}

absl::Status ParseKpiWindows(const std::string& file, const YAML::Node& windows, KpiConfig* k) {
  if (!windows.IsSequence() || windows.size() == 0) return ErrorAt(file, windows, "expected a list of durations");
  k->windows.clear();
  for (const YAML::Node& w : windows) {
    KpiWindow window;
    if (auto s = ReadDuration(file, w, &window.length); !s.ok()) return s;
    window.label = w.Scalar();
    if (window.length <= 0 || window.length % k->bucket != 0) {
      return ErrorAt(file, w, Cat("must be a positive multiple of the bucket (", FormatDuration(k->bucket), ")"));
    }
    if (window.length / k->bucket > kMaxKpiBuckets) {
      return ErrorAt(file, w, Cat("more than ", kMaxKpiBuckets, " buckets: make the bucket longer"));
    }
    for (const KpiWindow& other : k->windows) {
      if (other.label == window.label) return ErrorAt(file, w, "duplicate window");
    }
    k->windows.push_back(window);
  }
  return absl::OkStatus();
}

absl::Status ParseKpi(const std::string& file, const YAML::Node& kpi, KpiConfig* k) {
  if (auto s = CheckKeys(file, kpi, {"windows", "bucket", "repeat_window", "callback_grace", "max_queues",
                                     "service_level", "queues"});
      !s.ok()) {
    return s;
  }
  // The bucket and the default service level first: windows and queues depend on them.
  if (kpi["bucket"]) {
    if (auto s = ReadDuration(file, kpi["bucket"], &k->bucket); !s.ok()) return s;
    if (k->bucket <= 0) return ErrorAt(file, kpi["bucket"], "must be positive");
  }
  if (kpi["service_level"]) {
    if (auto s = ReadServiceLevel(file, kpi["service_level"], &k->service_level); !s.ok()) return s;
  }
  if (kpi["windows"]) {
    if (auto s = ParseKpiWindows(file, kpi["windows"], k); !s.ok()) return s;
  } else {
    for (const KpiWindow& w : k->windows) {
      if (w.length % k->bucket != 0 || w.length / k->bucket > kMaxKpiBuckets) {
        return ErrorAt(file, kpi["bucket"], Cat("the default window ", w.label, " must be a multiple of it"));
      }
    }
  }
  if (kpi["repeat_window"]) {
    if (auto s = ReadDuration(file, kpi["repeat_window"], &k->repeat_window); !s.ok()) return s;
    if (k->repeat_window <= 0) return ErrorAt(file, kpi["repeat_window"], "must be positive");
  }
  if (kpi["callback_grace"]) {
    if (auto s = ReadDuration(file, kpi["callback_grace"], &k->callback_grace); !s.ok()) return s;
    if (k->callback_grace < 0) return ErrorAt(file, kpi["callback_grace"], "must not be negative");
  }
  if (kpi["max_queues"]) {
    if (auto s = ReadInt(file, kpi["max_queues"], &k->max_queues); !s.ok()) return s;
    if (k->max_queues < 0) return ErrorAt(file, kpi["max_queues"], "must not be negative");
  }
  if (kpi["queues"]) return ParseKpiQueues(file, kpi["queues"], k);
  return absl::OkStatus();
}

absl::Status Parse(const std::string& file, const YAML::Node& root, const std::string& base_dir,
                   Config* config) {
  if (!root.IsDefined() || root.IsNull()) return absl::OkStatus();
  if (auto s = CheckKeys(file, root, {"kafka", "rules", "admin", "engine", "kpi"}); !s.ok()) return s;

  if (const YAML::Node kafka = root["kafka"]) {
    KafkaConfig& k = config->kafka;
    if (auto s = CheckKeys(file, kafka,
                           {"brokers", "embedded_partitions", "group_id", "topics", "properties"});
        !s.ok()) {
      return s;
    }
    if (kafka["brokers"]) {
      if (auto s = ReadString(file, kafka["brokers"], &k.brokers); !s.ok()) return s;
    }
    if (kafka["embedded_partitions"]) {
      if (auto s = ReadInt(file, kafka["embedded_partitions"], &k.embedded_partitions); !s.ok()) return s;
      if (k.embedded_partitions < 1) return ErrorAt(file, kafka["embedded_partitions"], "must be at least 1");
    }
    if (kafka["group_id"]) {
      if (auto s = ReadString(file, kafka["group_id"], &k.group_id); !s.ok()) return s;
    }
    if (const YAML::Node topics = kafka["topics"]) {
      if (auto s = CheckKeys(file, topics, {"input", "findings", "dead_letter", "changelog"}); !s.ok()) return s;
      if (topics["input"]) {
        if (auto s = ReadString(file, topics["input"], &k.input_topic); !s.ok()) return s;
      }
      if (topics["findings"]) {
        if (auto s = ReadString(file, topics["findings"], &k.findings_topic); !s.ok()) return s;
      }
      if (topics["dead_letter"]) {
        if (auto s = ReadString(file, topics["dead_letter"], &k.dead_letter_topic); !s.ok()) return s;
      }
      if (topics["changelog"]) {
        if (auto s = ReadString(file, topics["changelog"], &k.changelog_topic); !s.ok()) return s;
      }
    }
    if (const YAML::Node props = kafka["properties"]) {
      if (!props.IsMap()) return ErrorAt(file, props, "expected a mapping of librdkafka properties");
      for (const auto& kv : props) {
        if (!kv.second.IsScalar()) return ErrorAt(file, kv.second, "expected a scalar value");
        // These carry cxpulse's delivery guarantees; they have their own keys or are fixed.
        for (const auto& [owned, instead] : {std::pair{"group.id", "kafka.group_id"},
                                             std::pair{"bootstrap.servers", "kafka.brokers"},
                                             std::pair{"enable.auto.commit", "engine.delivery"},
                                             std::pair{"enable.auto.offset.store", "engine.delivery"},
                                             std::pair{"transactional.id", "engine.delivery"},
                                             std::pair{"isolation.level", "engine.delivery"}}) {
          if (kv.first.Scalar() == owned) {
            return ErrorAt(file, kv.first, Cat("\"", owned, "\" is set by cxpulse (see ", instead, ")"));
          }
        }
        k.properties[kv.first.Scalar()] = kv.second.Scalar();
      }
    }
  }

  if (const YAML::Node rules = root["rules"]) {
    if (auto s = ReadString(file, rules, &config->rules_path); !s.ok()) return s;
  }
  std::filesystem::path rules_path(config->rules_path);
  if (rules_path.is_relative() && !base_dir.empty()) {
    config->rules_path = (std::filesystem::path(base_dir) / rules_path).lexically_normal().string();
  }

  if (const YAML::Node admin = root["admin"]) {
    if (auto s = CheckKeys(file, admin, {"address"}); !s.ok()) return s;
    if (admin["address"]) {
      if (auto s = ReadString(file, admin["address"], &config->admin_address); !s.ok()) return s;
    }
  }

  if (const YAML::Node engine = root["engine"]) {
    EngineConfig& e = config->engine;
    if (auto s = CheckKeys(file, engine, {"allowed_lateness", "idle_partition_timeout", "commit_interval", "max_future_skew",
                                           "max_keys_per_rule", "centre_max_held_events", "delivery", "drain_timeout"});
        !s.ok()) {
      return s;
    }
    if (engine["allowed_lateness"]) {
      if (auto s = ReadDuration(file, engine["allowed_lateness"], &e.allowed_lateness); !s.ok()) return s;
    }
    if (engine["idle_partition_timeout"]) {
      if (auto s = ReadDuration(file, engine["idle_partition_timeout"], &e.idle_partition_timeout); !s.ok()) {
        return s;
      }
    }
    if (engine["commit_interval"]) {
      if (auto s = ReadDuration(file, engine["commit_interval"], &e.commit_interval); !s.ok()) return s;
      if (e.commit_interval <= 0) return ErrorAt(file, engine["commit_interval"], "must be positive");
    }
    if (engine["drain_timeout"]) {
      if (auto s = ReadDuration(file, engine["drain_timeout"], &e.drain_timeout); !s.ok()) return s;
      if (e.drain_timeout <= 0) return ErrorAt(file, engine["drain_timeout"], "must be positive");
    }
    if (engine["max_keys_per_rule"]) {
      int n = 0;
      if (auto s = ReadInt(file, engine["max_keys_per_rule"], &n); !s.ok()) return s;
      if (n < 1) return ErrorAt(file, engine["max_keys_per_rule"], "must be at least 1");
      e.max_keys_per_rule = n;
    }
    if (engine["max_future_skew"]) {
      if (auto s = ReadDuration(file, engine["max_future_skew"], &e.max_future_skew); !s.ok()) return s;
    }
    if (const YAML::Node delivery = engine["delivery"]) {
      std::string d;
      if (auto s = ReadString(file, delivery, &d); !s.ok()) return s;
      if (d == "exactly_once") e.delivery = Delivery::kExactlyOnce;
      else if (d == "at_least_once") e.delivery = Delivery::kAtLeastOnce;
      else return ErrorAt(file, delivery, Cat("unknown delivery \"", d, "\" (exactly_once or at_least_once)"));
    }
    if (engine["centre_max_held_events"]) {
      int n = 0;
      if (auto s = ReadInt(file, engine["centre_max_held_events"], &n); !s.ok()) return s;
      if (n < 1) return ErrorAt(file, engine["centre_max_held_events"], "must be at least 1");
      e.centre_max_held_events = n;
    }
  }

  if (const YAML::Node kpi = root["kpi"]) return ParseKpi(file, kpi, &config->kpi);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Config> ParseConfig(const std::string& text, const std::string& name,
                                   const std::string& base_dir) {
  Config config;
  try {
    YAML::Node root = YAML::Load(text);
    if (absl::Status s = Parse(name, root, base_dir, &config); !s.ok()) return s;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(Cat(Where(name, e.mark), ": ", e.msg));
  }
  return config;
}

absl::StatusOr<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(Cat(path, ": cannot open config file"));
  std::stringstream text;
  text << in.rdbuf();
  std::string base = std::filesystem::path(path).parent_path().string();
  return ParseConfig(text.str(), path, base);
}

}  // namespace cxpulse
