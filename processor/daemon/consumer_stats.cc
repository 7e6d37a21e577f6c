#include "daemon/consumer_stats.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <charconv>
#include <map>

namespace cxpulse {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

const Value* Field(const Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}

double Number(const Struct& s, const std::string& name, double missing) {
  const Value* v = Field(s, name);
  return v != nullptr && v->kind_case() == Value::kNumberValue ? v->number_value() : missing;
}

std::string_view Text(const Struct& s, const std::string& name) {
  const Value* v = Field(s, name);
  return v != nullptr && v->kind_case() == Value::kStringValue ? std::string_view(v->string_value()) : "";
}

const Struct* Object(const Struct& s, const std::string& name) {
  const Value* v = Field(s, name);
  return v != nullptr && v->kind_case() == Value::kStructValue ? &v->struct_value() : nullptr;
}

}  // namespace

std::vector<Heard> HeardFromStats(std::string_view json, const std::string& topic, StatsClock clock,
                                  Micros fetch_wait) {
  std::vector<Heard> out;
  Struct stats;
  if (!google::protobuf::util::JsonStringToMessage(google::protobuf::StringPiece(json.data(), json.size()), &stats)
           .ok()) {
    return out;
  }
  // When the statistics were taken, on the wall clock ("ts": librdkafka's
  // monotonic clock, in microseconds).
  const double ts = Number(stats, "ts", -1);
  if (ts < 0) return out;
  const Micros taken = clock.wall_now - std::max<Micros>(0, clock.steady_now - static_cast<Micros>(ts));

  std::map<int64_t, Micros> last_receive;  // by broker id
  if (const Struct* brokers = Object(stats, "brokers")) {
    for (const auto& [name, value] : brokers->fields()) {
      if (value.kind_case() != Value::kStructValue) continue;
      const Struct& b = value.struct_value();
      const double rxidle = Number(b, "rxidle", -1);  // microseconds since the last receive; -1: none yet
      // Up for less than two fetch waits and a stats interval: what its
      // partitions say (their high watermarks) may be from before it went
      // away, so "at its end" is not known yet (broker_faults_test).
      const double up_for = Number(b, "stateage", -1);
      if (Text(b, "state") != "UP" || rxidle < 0 || up_for < static_cast<double>(2 * fetch_wait + kMicrosPerSecond)) {
        continue;
      }
      last_receive[static_cast<int64_t>(Number(b, "nodeid", -1))] = taken - static_cast<Micros>(rxidle);
    }
  }
  const Struct* topics = Object(stats, "topics");
  const Struct* t = topics != nullptr ? Object(*topics, topic) : nullptr;
  const Struct* partitions = t != nullptr ? Object(*t, "partitions") : nullptr;
  if (partitions == nullptr) return out;
  for (const auto& [id, value] : partitions->fields()) {
    int32_t p = -1;
    if (std::from_chars(id.data(), id.data() + id.size(), p).ec != std::errc() || p < 0) continue;  // -1: internal
    if (value.kind_case() != Value::kStructValue) continue;
    const Struct& part = value.struct_value();
    const double hi = Number(part, "hi_offset", -1), next = Number(part, "next_offset", -1);
    if (Text(part, "fetch_state") != "active" || hi < 0 || next < hi) continue;  // behind, or not fetching
    auto leader = last_receive.find(static_cast<int64_t>(Number(part, "leader", -1)));
    if (leader == last_receive.end()) continue;
    out.push_back({p, leader->second - fetch_wait, static_cast<int64_t>(next)});
  }
  return out;
}

}  // namespace cxpulse
