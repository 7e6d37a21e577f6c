// Reads a Prometheus text exposition: one sample matching the metric name
// and a subset of its labels in any order, the sum of a metric over all its
// series, or every sample line parsed.
#pragma once

#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace cxpulse::testing {

inline std::optional<double> Sample(const std::string& text, const std::string& name,
                                    const std::map<std::string, std::string>& labels = {}) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t name_end = line.find_first_of("{ ");
    if (line.compare(0, name_end, name) != 0 || name_end != name.size()) continue;
    bool all = true;
    for (const auto& [k, v] : labels) all = all && line.find(k + "=\"" + v + "\"") != std::string::npos;
    if (!all) continue;
    return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return std::nullopt;
}

// One sample line of a Prometheus text exposition.
struct SampleLine {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

inline std::vector<SampleLine> ParseExposition(const std::string& text) {
  std::vector<SampleLine> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    SampleLine s;
    const size_t name_end = line.find_first_of("{ ");
    if (name_end == std::string::npos) continue;
    s.name = line.substr(0, name_end);
    size_t pos = name_end;
    if (line[pos] == '{') {
      const size_t close = line.find('}', pos);
      if (close == std::string::npos) continue;
      const std::string labels = line.substr(pos + 1, close - pos - 1);
      for (size_t at = 0; at < labels.size();) {
        const size_t eq = labels.find("=\"", at);
        const size_t end = labels.find('"', eq + 2);
        if (eq == std::string::npos || end == std::string::npos) break;
        s.labels[labels.substr(at, eq - at)] = labels.substr(eq + 2, end - eq - 2);
        at = end + 1;
        if (at < labels.size() && labels[at] == ',') ++at;
      }
      pos = close + 1;
    }
    s.value = std::stod(line.substr(line.rfind(' ') + 1));
    out.push_back(std::move(s));
  }
  return out;
}

// The sum of every series of `name` (0 if it has none).
inline double SumOf(const std::vector<SampleLine>& samples, const std::string& name) {
  double sum = 0;
  for (const SampleLine& s : samples) sum += s.name == name ? s.value : 0;
  return sum;
}

// The first series of `name`, whatever its labels.
inline std::optional<double> ValueOf(const std::vector<SampleLine>& samples, const std::string& name) {
  for (const SampleLine& s : samples) {
    if (s.name == name) return s.value;
  }
  return std::nullopt;
}

}  // namespace cxpulse::testing
