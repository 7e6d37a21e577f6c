// Reads librdkafka's statistics (JSON, statistics.interval.ms) for what the
// watermarks need: when each partition's leader was last heard from while
// the consumer had fetched everything it had. A partition idle at its end
// and a broker that stopped answering look the same from the records alone
// (none arrive); only the broker connection tells them apart. Pure
// functions; the pipeline calls them on the control thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/time.h"

namespace cxpulse {

struct StatsClock {
  Micros wall_now = 0;    // the wall clock now
  Micros steady_now = 0;  // the monotonic clock now (librdkafka's "ts" is on it)
};

// A partition heard from: at wall time `at`, its leader had nothing past
// offset `through` (the fetcher's next offset). Records up to there may still
// wait in the consumer's queues: the time holds for the partition only once
// its shard has read through `through`.
struct Heard {
  int32_t partition;
  Micros at;
  int64_t through;
};

// For each partition of `topic` that is fetched up to its broker's high
// watermark, whose fetch is active and whose leader is up: the wall time of
// the consumer's last receive from that leader, less `fetch_wait` (a fetch
// response may have been held that long). Partitions not listed were not
// heard from. Empty if `json` does not parse.
std::vector<Heard> HeardFromStats(std::string_view json, const std::string& topic, StatsClock clock,
                                  Micros fetch_wait);

}  // namespace cxpulse
